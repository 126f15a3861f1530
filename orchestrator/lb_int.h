/*
 * The balancer's insides, shared by its three files (the API is vd/lb.h):
 *
 *   lb.c           the balancer as a whole: its life (new, stop, free), its
 *                  replicas (add, drain, eject and probe back), the tick
 *                  that enforces the timeouts, and its numbers;
 *   lb_client.c    the client side: accepting connections, reading and
 *                  parsing requests, the queue, picking a replica and
 *                  sending the request to it, the proxy's own answers;
 *   lb_upstream.c  the replica side of an exchange: connections to replicas
 *                  and their pools, reading responses and relaying them to
 *                  the client, failing over, and the rewriting of response
 *                  heads while the balancer stops.
 *
 * The request path is split so that it costs no more than in one file: a
 * request's way in (client_io to lb_forward) is all in lb_client.c, its
 * response's way back (lb_upstream_io to finish) all in lb_upstream.c, and
 * the few small functions both need are static inline here. Between the two
 * a request crosses twice: lb_client_next() and lb_pump_queue() once its
 * response is relayed.
 */
#ifndef VD_LB_INT_H
#define VD_LB_INT_H

#include <http_parser.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "vd/ev.h"
#include "vd/hist.h"
#include "vd/lb.h"
#include "vd/signals.h"

#define UP_BUF 16384         /* an upstream connection's relay buffer */
#define FREE_BUFS 256        /* client buffers kept for reuse */
#define MAX_SKIP 8           /* hop-by-hop header lines left out */
/* What a client's connection is watched for while it is not writing an
 * answer: a request (or its body), and its leaving. The same mask from one
 * request to the next, so that keep-alive costs no epoll_ctl per request. */
#define CLIENT_WATCH (EPOLLIN | EPOLLRDHUP)
#define PATIENCE_RING 64     /* clients' leavings kept to learn their patience */
#define PATIENCE_MIN 10      /* ... and how many in the last minute make it known */

enum cstate {
	C_IDLE,     /* keep-alive, no request */
	C_HEAD,     /* reading a request head */
	C_QUEUED,   /* waiting for a replica */
	C_UPSTREAM, /* on a replica */
	C_CLOSING,  /* writing the proxy's own answer, then closing */
};

struct vd_lb;
struct replica;
struct upstream;

/* A client connection and the request it is on. */
struct client {
	struct vd_ev_handle h;
	struct vd_lb *lb;
	struct client *prev, *next; /* every client */
	struct client *qnext;       /* the queue */
	enum cstate state;
	http_parser p;
	char *buf;
	size_t len, cap;
	size_t parsed;   /* bytes of buf the parser has seen */
	size_t head_len; /* 0 until the head is whole */
	size_t sent;     /* bytes of buf forwarded (after the head) */
	bool head_sent, msg_done, keep_alive, idempotent, is_head, replayable;
	size_t skip_from[MAX_SKIP], skip_to[MAX_SKIP];
	int nskip;
	size_t hdr_start;
	bool hdr_in_value, hdr_skip;
	char hdr_name[24];
	size_t hdr_name_len;
	struct iovec iov[MAX_SKIP + 4];
	int niov, iov_at;
	const char *out; /* the proxy's own answer */
	size_t outlen;
	struct upstream *up;
	int64_t t_head_us, t_queued_us, t_activity_ms;
	uint64_t wait_us; /* the request's time in the queue so far */
	uint64_t cold_us; /* ... of which waiting for a first replica (none up) */
	bool cold;        /* queued while no replica was up */
	bool gone;        /* the client left while its request was on a replica:
			     the replica finishes it, its answer is dropped */
	int attempts;
	bool response_started;
	char xff[80];
	char ip[INET6_ADDRSTRLEN];
};

/* A connection to a replica: idle in its pool, or carrying one exchange. */
struct upstream {
	struct vd_ev_handle h;
	struct vd_lb *lb;
	struct replica *r;
	struct client *c;
	struct upstream *next; /* in the pool */
	http_parser p;
	bool connecting, reused, got_bytes, done, interim, no_reuse;
	/* while the balancer stops (see stop_head) */
	bool head_out; /* the response head went out, or began to before the stop */
	bool head_cut; /* what went out of it ends in the middle of a line */
	size_t held;   /* bytes of a head at buf's start, parsed, not relayed yet */
	int64_t t_start_ms, t_activity_ms;
	size_t off, len;
	char buf[UP_BUF];
};

/* A replica: where it is, its pool, whether it takes requests, its numbers. */
struct replica {
	char name[64];
	char address[80];
	struct sockaddr_storage sa;
	socklen_t salen;
	int inflight;
	bool up, draining;
	struct upstream *idle;
	int nidle;
	uint64_t requests, errors;
	int64_t next_probe_ms, backoff_ms;
	void (*drained)(void *arg, const char *name);
	void *drained_arg;
	struct vd_window total;
};

/* The balancer. */
struct vd_lb {
	struct vd_ev *ev;
	struct vd_lb_config cfg;
	struct vd_ev_handle listener; /* fd -1 once stopping */
	int port;
	int tick;
	bool stopping;
	int grace; /* the timer that closes idle clients when stopping, or 0 */
	struct client *clients;
	uint64_t nclients;
	struct client *qhead, *qtail;
	int queued, inflight;
	struct replica **reps;
	size_t nreps;
	unsigned rr;
	uint64_t rng;
	char *free_bufs[FREE_BUFS];
	int nfree;
	uint64_t requests, responses[6], errors[VD_LB_ERR_KINDS];
	uint64_t relayed, relayed_us; /* responses relayed and their times, since the start */
	struct vd_window wait, total;
	struct vd_signals *sig; /* per second, for the autoscaler */
	double service_us;      /* recent service time: a moving mean, 0 = none yet */
	/* how long clients wait before they leave: the ages of the last
	 * requests whose clients left (a ring), and their median over the last
	 * minute once there are enough (0: not known) */
	struct {
		int64_t at_us, age_us;
	} left[PATIENCE_RING];
	unsigned nleft;
	int64_t patience_us;
	void (*on_waiting)(void *arg);
	void *on_waiting_arg;
};

/* ------------------------------------------------- lb.c: the replicas */

/* Close a replica's idle pooled connections. */
void lb_pool_flush(struct replica *r);

/* Take R out of the rotation until a probe finds it back; the queue is
 * answered 503 when no replica is left up. */
void lb_eject(struct vd_lb *lb, struct replica *r);

/* Remove R (drained: nothing in flight) and free it, calling its drained
 * callback. */
void lb_replica_remove(struct vd_lb *lb, struct replica *r);

/* ------------------------------------------- lb_client.c: the clients */

/* Is any replica able to take requests, now or once it has room? */
bool lb_any_up(const struct vd_lb *lb);

/* Close a client, giving up its place in the queue or its exchange on a
 * replica; it is freed after the round of events. */
void lb_client_close(struct client *c);

/* Answer STATUS (one of 400, 408, 431, 502, 503, 504) ourselves, counting
 * WHY, and close; or just close when part of a response was relayed. */
void lb_answer(struct client *c, int status, enum vd_lb_error_kind why);

/* Is the header NAME (N bytes, any case) hop-by-hop? */
bool lb_hop_by_hop(const char *name, size_t n);

/* Make the iovec of the request head as it goes to the replica (BLANK: the
 * length of its blank line). */
void lb_build_head(struct client *c, size_t blank);

/* Send what can be sent of the request to the replica of c->up. */
void lb_forward(struct client *c);

/* Find a replica for a client whose head is whole: now, or in the queue;
 * answered (and closed) when there is none. */
void lb_route(struct client *c);

/* Give queued requests, oldest first, to replicas that can take them. */
void lb_pump_queue(struct vd_lb *lb);

/* A response relayed on a connection that stays: ready the client for its
 * next request (a pipelined one may be there already). */
void lb_client_next(struct client *c, int64_t now_ms);

/* Take one connection off the listener's queue; false when there is none. */
bool lb_accept_one(struct vd_lb *lb);

/* The listener's handler. */
void lb_accept_clients(struct vd_ev *ev, struct vd_ev_handle *h, uint32_t events);

/* ------------------------------------- lb_upstream.c: the replica side */

/* A non-blocking TCP socket with TCP_NODELAY, or -1. */
int lb_socket(int family);

/* A connection to R on its way (or made), watched; NULL when it failed at
 * once. */
struct upstream *lb_upstream_connect(struct vd_lb *lb, struct replica *r);

/* Close an upstream connection; it is freed after the round of events. */
void lb_upstream_close(struct upstream *up);

/* An upstream connection's handler (EPOLLERR alone: the send failed). */
void lb_upstream_io(struct vd_ev *ev, struct vd_ev_handle *h, uint32_t events);

/* Write the relayed bytes the client can take; finish the exchange when
 * the response is whole and gone. */
void lb_relay(struct upstream *up);

/* The replica failed the request before answering: count WHY, eject the
 * replica if BLAME, and retry an idempotent request or answer 502. */
void lb_upstream_failed(struct upstream *up, enum vd_lb_error_kind why, bool blame);

/* ------------------------------------------ on the path of every request */

/* The requests in flight or queued changed: the signals count time at
 * the new levels from now. */
static inline void
lb_levels(struct vd_lb *lb)
{
	vd_signals_level(lb->sig, vd_ev_now_us(lb->ev), lb->inflight, lb->queued);
}

/* How long a request may wait in the queue: queue_timeout, or less when
 * clients were seen to leave sooner, so that what is served is served to
 * someone (nine tenths of their patience, less the service time). */
static inline int64_t
lb_queue_timeout_us(const struct vd_lb *lb)
{
	int64_t t = lb->cfg.queue_timeout_ms * 1000;
	int64_t p = (int64_t)((double)lb->patience_us * 0.9 - lb->service_us);

	return lb->patience_us && p > 0 && p < t ? p : t;
}

/* Count a response by its class: [1] 1xx ... [5] 5xx, [0] anything else. */
static inline void
lb_count_response(struct vd_lb *lb, int status)
{
	int cls = status / 100;

	lb->responses[cls >= 1 && cls <= 5 ? cls : 0]++;
}

/* Give back the place a request had on R (NULL: none); a drained replica
 * goes with its last request. */
static inline void
lb_release_slot(struct client *c, struct replica *r)
{
	struct vd_lb *lb = c->lb;

	if (!r)
		return;
	r->inflight--;
	lb->inflight--;
	lb_levels(lb);
	if (r->draining && r->inflight == 0)
		lb_replica_remove(lb, r);
}

#endif
