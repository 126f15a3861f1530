/*
 * The balancer: an event-driven HTTP/1.1 reverse proxy in front of a
 * service's replicas. It owns the queue and measures latency; the
 * controller and `vdctl balance` read its numbers through vd_lb_stats().
 *
 * One balancer listens on one address and runs on a vd_ev loop (one
 * thread). Clients get keep-alive; replicas are reached through pools of
 * keep-alive connections. Request and response bodies stream through (either
 * framing), never fully buffered. Each replica takes at most max_inflight
 * requests at a time (0: no limit); beyond that, requests wait in one FIFO
 * queue: queue_limit waiting is answered 503, queue_timeout waited 504.
 *
 * A replica that refuses connections, does not take them within
 * connect_timeout_ms, or resets or closes a new one before answering is
 * ejected and probed back (a connect after 0.5 s, backing off to every 5 s);
 * while no replica is up, requests are answered 503 at once. A request that
 * a replica failed before answering is tried again when it is idempotent
 * and its body is still at hand (on another replica, or on a new connection
 * when a pooled one had gone stale; three tries at most), else answered
 * 502; a response cut short is a 502 to that client alone (or, when part of
 * it was already sent, a closed connection). Replicas come and go at run
 * time: vd_lb_drain_replica() stops new requests to one and removes it once
 * its last request is answered.
 *
 * The balancer stops gracefully (vd_lb_shutdown) for the controller to stop
 * or restart without cutting a request: the listener closes at once, what is
 * in flight or queued is answered with "Connection: close", and idle
 * keep-alive clients are closed after a grace period.
 */
#ifndef VD_LB_H
#define VD_LB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vd/error.h"
#include "vd/ev.h"
#include "vd/signals.h"

/* A client gone while its request is on a replica (balancer.on_client_gone). */
enum vd_lb_client_gone { VD_LB_GONE_FINISH, VD_LB_GONE_ABORT };

/* How a request picks its replica (the manifest's balancer.policy). */
enum vd_lb_policy { VD_LB_ROUND_ROBIN, VD_LB_LEAST_OUTSTANDING, VD_LB_P2C };

struct vd_lb;

struct vd_lb_config {
	const char *listen_host; /* an IP literal or "localhost" */
	int listen_port;         /* 0: any free port (see vd_lb_port) */
	enum vd_lb_policy policy;
	int max_inflight;              /* per replica; 0 = no limit */
	int queue_limit;               /* waiting requests before 503 */
	int64_t queue_timeout_ms;      /* waited before 504 */
	int64_t idle_timeout_ms;       /* keep-alive client with no request; 0 = 60 s */
	int64_t header_timeout_ms;     /* a request head must arrive within; 0 = 10 s */
	int64_t connect_timeout_ms;    /* to a replica; 0 = 2 s */
	int64_t response_timeout_ms;   /* a replica silent this long: 504; 0 = 60 s */
	size_t max_header_bytes;       /* request head above this: 431; 0 = 16 KiB */
	int64_t signal_span_ms;        /* the longest window vd_lb_signals() reads; 0 = 60 s */
	bool hold_when_empty;          /* no replica up: queue requests (bounded by the
					  queue's limit and timeout), not answer 503 */
	bool abort_on_client_gone;     /* a client gone while its request is on a replica:
					  close that connection (false: let the replica
					  finish, its answer dropped) */
	int listen_fd;                 /* >= 0: serve this listening socket (one a
					  controller inherited from the one it
					  replaced) instead of making one; it must
					  listen on listen_host:listen_port, else
					  vd_lb_new fails and the fd stays the
					  caller's; taken on success. -1 by default */
};

/* Fill cfg with the defaults (listen 127.0.0.1:8000, least-outstanding,
 * no per-replica limit, queue 1000 / 60 s). */
void vd_lb_config_default(struct vd_lb_config *cfg);

/* Listen on cfg's address (cfg is copied) and serve on EV, which must
 * outlive the balancer. NULL, with err set, when the address is not an IP
 * literal or cannot be listened on (or out of memory). */
struct vd_lb *vd_lb_new(struct vd_ev *ev, const struct vd_lb_config *cfg, struct vd_error *err);

/* Close everything: listener, clients, replicas' connections. Safe at any
 * point, a graceful stop under way included; NULL is a no-op. Replicas
 * still draining go without their done() call. */
void vd_lb_free(struct vd_lb *lb);

/* Stop gracefully: close the listener at once (new connections are refused),
 * let every request in flight or queued finish, answer each with
 * "Connection: close" and close its connection once the response is sent;
 * keep-alive connections with no request are closed after GRACE_MS unless
 * a request starts on them first (which is then served and closed).
 * vd_lb_clients() says how many client connections remain; the caller
 * runs the loop until it is 0 (or its own deadline) and then vd_lb_free().
 * Calling it again restarts the grace period with the new GRACE_MS. */
void vd_lb_shutdown(struct vd_lb *lb, int64_t grace_ms);

/* Client connections open now. */
size_t vd_lb_clients(const struct vd_lb *lb);

/* The port it listens on (useful with listen_port 0). */
int vd_lb_port(const struct vd_lb *lb);

/* Send requests to NAME at HOST:PORT (an IP literal or "localhost") from
 * now on; queued requests may go to it at once. -1, with err set, when NAME
 * is taken, HOST:PORT is not an address, or out of memory. */
int vd_lb_add_replica(struct vd_lb *lb, const char *name, const char *host, int port,
		      struct vd_error *err);

/* Stop sending new requests to NAME; once its last request is answered it
 * is removed and done(arg, name) called (at once if it is idle; DONE may be
 * NULL). -1 when there is no such replica. */
int vd_lb_drain_replica(struct vd_lb *lb, const char *name,
			void (*done)(void *arg, const char *name), void *arg);

enum vd_lb_error_kind {
	VD_LB_ERR_CONNECT,       /* a replica refused or did not answer a connect;
				    the 502 after three tries */
	VD_LB_ERR_RESET,         /* a replica reset or closed a request's connection
				    before answering */
	VD_LB_ERR_CUT,           /* a response was cut short or malformed (502 or
				    closed client) */
	VD_LB_ERR_NO_REPLICA,    /* no replica up (or none at all): 503 */
	VD_LB_ERR_QUEUE_FULL,    /* 503 */
	VD_LB_ERR_QUEUE_TIMEOUT, /* 504 */
	VD_LB_ERR_REPLICA_TIMEOUT, /* a replica did not answer in time: 504 */
	VD_LB_ERR_BAD_REQUEST,   /* 400 */
	VD_LB_ERR_HEADER_TOO_BIG, /* 431 */
	VD_LB_ERR_CLIENT_TIMEOUT, /* 408: a request head did not come in time (idle
				     keep-alive clients are closed uncounted) */
	VD_LB_ERR_CLIENT_GONE,    /* the client left while its request waited in the
				     queue (never sent) or was on a replica */
	VD_LB_ERR_REFUSED_EARLY,  /* 503 with Retry-After: the wait it could expect
				     was longer than queue_timeout */
	VD_LB_ERR_KINDS
};

/* Latency over a window, in microseconds. */
struct vd_lb_latency {
	uint64_t count;
	uint64_t p50, p90, p95, p99, max;
};

struct vd_lb_replica_stats {
	char name[64];
	char address[80];
	bool up;       /* false while ejected */
	bool draining;
	int inflight;
	uint64_t requests, errors;
	struct vd_lb_latency total10; /* response time over the last 10 s */
};

struct vd_lb_stats {
	int inflight;     /* requests on replicas now */
	int queued;       /* requests waiting in the queue now */
	uint64_t requests; /* request heads received */
	uint64_t responses[6]; /* by class: [1] 1xx ... [5] 5xx, the proxy's own included */
	uint64_t errors[VD_LB_ERR_KINDS];
	double rps10, rps60; /* replicas' responses relayed a second over the last
				10 s and 60 s (the proxy's own answers not counted) */
	struct vd_lb_latency wait10, wait60;   /* time in the queue, of requests
						  that waited there */
	struct vd_lb_latency total10, total60; /* head received to response relayed */
	uint64_t relayed;    /* replicas' responses relayed since the start ... */
	uint64_t relayed_us; /* ... and the sum of their times, head to response */
	size_t nreplicas;
	struct vd_lb_replica_stats *replicas; /* free() */
	uint64_t connections; /* client connections open now */
	int64_t patience_ms;  /* the median wait after which clients left, over the
				 last minute (10 at least); 0 = not known. While
				 known, requests wait at most 0.9 of it less the
				 service time (or queue_timeout when shorter) */
};

/* A snapshot of the numbers; out->replicas is the caller's to free(). -1,
 * with err set, when out of memory. */
int vd_lb_stats(struct vd_lb *lb, struct vd_lb_stats *out, struct vd_error *err);

/* What the balancer saw over the last SPAN_MS (at most its config's
 * signal_span_ms, or what vd_lb_signals_span() set): arrivals, completions
 * and refusals a second, time-weighted in-flight and queue lengths, queue
 * wait, service time and response time (vd/signals.h). */
void vd_lb_signals(struct vd_lb *lb, int64_t span_ms, struct vd_signals_window *out);

/* Keep signals for windows up to SPAN_MS from now on: a longer ring starts
 * empty, a shorter or equal one is kept. -1 when out of memory (the old
 * ring stays). */
int vd_lb_signals_span(struct vd_lb *lb, int64_t span_ms);

/* Call FN(ARG) when a request joins the queue while no replica is up (with
 * hold_when_empty: someone should start one). FN NULL: no call. */
void vd_lb_on_waiting(struct vd_lb *lb, void (*fn)(void *arg), void *arg);

/* An error kind's name as the stats line prints it ("queue_full"), or "?". */
const char *vd_lb_error_name(enum vd_lb_error_kind k);

/* The listening socket, to pass to a process that takes over (it serves it
 * with listen_fd); -1 once stopping. */
int vd_lb_listen_fd(const struct vd_lb *lb);

/* Stop accepting without emptying the listening socket's queue: the
 * listener leaves the loop and this process's fd of it is closed, so the
 * connections waiting in the kernel's queue stay for the process the
 * socket was passed to. Then vd_lb_shutdown() for the rest. */
void vd_lb_detach_listener(struct vd_lb *lb);

#endif
