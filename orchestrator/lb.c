/*
 * The balancer: an HTTP/1.1 reverse proxy on the event loop (see vd/lb.h).
 *
 * A client connection reads a request into a buffer of its own (allocated
 * when bytes arrive, freed when it goes idle, so idle keep-alive clients cost
 * a few hundred bytes), parses it with Debian's http-parser to find the end
 * of the head and of the message, and sends it to a replica through a pooled
 * keep-alive connection: the head rewritten as an iovec (hop-by-hop headers
 * left out, X-Forwarded-For added), then the body as it comes. The response
 * is relayed from the upstream connection's buffer as it is read, with
 * back-pressure both ways; a second parser finds where it ends so the
 * upstream connection can go back to its pool.
 *
 * Timeouts, the queue's deadline and the probes of ejected replicas run on
 * one tick every 100 ms.
 *
 * A graceful stop (vd_lb_shutdown) closes the listener and lets what is in
 * flight finish: each response still to come has its head held until it is
 * whole and rewritten to say "Connection: close" (stop_head), and its client
 * is closed once it is sent. The normal path pays for it with tests of
 * lb->stopping only: two per read from a replica, one per response.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "vd/hist.h"
#include "vd/lb.h"
#include "vd/net.h"
#include "vd/log.h"

#define TICK_MS 100
#define CLIENT_BUF 4096      /* first size of a client's buffer; it grows */
#define UP_BUF 16384         /* an upstream connection's relay buffer */
#define POOL_MAX 128         /* idle connections kept per replica */
#define FREE_BUFS 256        /* client buffers kept for reuse */
#define MAX_SKIP 8           /* hop-by-hop header lines left out */
#define MAX_ATTEMPTS 3       /* replicas tried for one idempotent request */
#define PROBE_MIN_MS 500
#define PROBE_MAX_MS 5000
#define CONN_CLOSE "Connection: close\r\n"
#define CLOSE_ROOM (sizeof(CONN_CLOSE) - 1) /* kept free in a response's buffer while stopping */

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
	int attempts;
	bool response_started;
	char xff[80];
	char ip[INET6_ADDRSTRLEN];
};

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
	struct vd_window wait, total;
};

static http_parser_settings req_settings, resp_settings, resp_stop_settings;

static void client_io(struct vd_ev *ev, struct vd_ev_handle *h, uint32_t events);
static void upstream_io(struct vd_ev *ev, struct vd_ev_handle *h, uint32_t events);
static void client_close(struct client *c);
static void answer(struct client *c, int status, enum vd_lb_error_kind why);
static void upstream_close(struct upstream *up);
static void route(struct client *c);
static void pump_queue(struct vd_lb *lb);
static void client_read(struct client *c);
static void relay(struct upstream *up);

/* ------------------------------------------------------------ answers */

static const struct {
	int status;
	const char *text;
} answers[] = {
	{ 400, "HTTP/1.1 400 Bad Request\r\nContent-Length: 12\r\nConnection: close\r\n\r\n"
	       "bad request\n" },
	{ 408, "HTTP/1.1 408 Request Timeout\r\nContent-Length: 16\r\nConnection: close\r\n\r\n"
	       "request timeout\n" },
	{ 431, "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 23\r\n"
	       "Connection: close\r\n\r\nrequest head too large\n" },
	{ 502, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 12\r\nConnection: close\r\n\r\n"
	       "bad gateway\n" },
	{ 503, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 20\r\nConnection: close\r\n"
	       "\r\nservice unavailable\n" },
	{ 504, "HTTP/1.1 504 Gateway Timeout\r\nContent-Length: 16\r\nConnection: close\r\n\r\n"
	       "gateway timeout\n" },
};

const char *
vd_lb_error_name(enum vd_lb_error_kind k)
{
	static const char *const names[] = {
		[VD_LB_ERR_CONNECT] = "connect",
		[VD_LB_ERR_RESET] = "reset",
		[VD_LB_ERR_CUT] = "cut",
		[VD_LB_ERR_NO_REPLICA] = "no_replica",
		[VD_LB_ERR_QUEUE_FULL] = "queue_full",
		[VD_LB_ERR_QUEUE_TIMEOUT] = "queue_timeout",
		[VD_LB_ERR_REPLICA_TIMEOUT] = "replica_timeout",
		[VD_LB_ERR_BAD_REQUEST] = "bad_request",
		[VD_LB_ERR_HEADER_TOO_BIG] = "header_too_big",
		[VD_LB_ERR_CLIENT_TIMEOUT] = "client_timeout",
	};

	return (unsigned)k < VD_LB_ERR_KINDS ? names[k] : "?";
}

/* ------------------------------------------------------------- buffers */

static char *
buf_get(struct vd_lb *lb)
{
	return lb->nfree ? lb->free_bufs[--lb->nfree] : malloc(CLIENT_BUF);
}

/* Give the client's buffer back once it holds nothing. */
static void
buf_release(struct client *c)
{
	struct vd_lb *lb = c->lb;

	if (!c->buf || c->len)
		return;
	if (c->cap == CLIENT_BUF && lb->nfree < FREE_BUFS)
		lb->free_bufs[lb->nfree++] = c->buf;
	else
		free(c->buf);
	c->buf = NULL;
	c->cap = 0;
}

/* Room to read into: a buffer when there is none, grown (up to the head
 * limit, or the body window) when full. false when it cannot grow. */
static bool
buf_room(struct client *c)
{
	size_t limit = c->lb->cfg.max_header_bytes + CLIENT_BUF;
	uintptr_t old = (uintptr_t)c->buf;
	char *b;

	if (!c->buf) {
		if (!(c->buf = buf_get(c->lb)))
			return false;
		c->cap = CLIENT_BUF;
	}
	if (c->len < c->cap)
		return true;
	if (c->cap >= limit)
		return false;
	b = realloc(c->buf, c->cap * 2 > limit ? limit : c->cap * 2);
	if (!b)
		return false;
	/* the head's iovec, not sent yet, points into the old buffer */
	for (int i = c->iov_at; i < c->niov; i++)
		if (c->iov[i].iov_base != c->xff)
			c->iov[i].iov_base = b + ((uintptr_t)c->iov[i].iov_base - old);
	c->buf = b;
	c->cap = c->cap * 2 > limit ? limit : c->cap * 2;
	return true;
}

/* --------------------------------------------------------- replicas */

static bool
eligible(const struct vd_lb *lb, const struct replica *r)
{
	return r->up && !r->draining &&
	       (lb->cfg.max_inflight <= 0 || r->inflight < lb->cfg.max_inflight);
}

static uint64_t
rand64(struct vd_lb *lb)
{
	lb->rng ^= lb->rng << 13;
	lb->rng ^= lb->rng >> 7;
	lb->rng ^= lb->rng << 17;
	return lb->rng;
}

/* The replica for the next request, by policy, or NULL when none can take it. */
static struct replica *
pick(struct vd_lb *lb)
{
	struct replica *best = NULL, *a, *b;
	size_t n = lb->nreps, i;

	if (!n)
		return NULL;
	switch (lb->cfg.policy) {
	case VD_LB_ROUND_ROBIN:
		for (i = 0; i < n; i++) {
			struct replica *r = lb->reps[(lb->rr + i) % n];

			if (eligible(lb, r)) {
				lb->rr = (unsigned)((lb->rr + i + 1) % n);
				return r;
			}
		}
		return NULL;
	case VD_LB_P2C:
		a = lb->reps[rand64(lb) % n];
		b = lb->reps[rand64(lb) % n];
		if (eligible(lb, a) && eligible(lb, b))
			return a->inflight <= b->inflight ? a : b;
		if (eligible(lb, a) || eligible(lb, b))
			return eligible(lb, a) ? a : b;
		/* fall back to a full look, as least-outstanding */
		/* fall through */
	case VD_LB_LEAST_OUTSTANDING:
		/* ties go round the replicas, so equal load spreads evenly */
		for (i = 0; i < n; i++) {
			struct replica *r = lb->reps[(lb->rr + i) % n];

			if (eligible(lb, r) && (!best || r->inflight < best->inflight))
				best = r;
		}
		lb->rr++;
		return best;
	}
	return NULL;
}

/* Is any replica able to take requests, now or once it has room? */
static bool
any_up(const struct vd_lb *lb)
{
	for (size_t i = 0; i < lb->nreps; i++)
		if (lb->reps[i]->up && !lb->reps[i]->draining)
			return true;
	return false;
}

/* Close a replica's idle pooled connections. */
static void
pool_flush(struct replica *r)
{
	while (r->idle) {
		struct upstream *up = r->idle;

		r->idle = up->next;
		r->nidle--;
		up->r = NULL;
		upstream_close(up);
	}
}

static void
eject(struct vd_lb *lb, struct replica *r)
{
	if (!r->up)
		return;
	r->up = false;
	r->backoff_ms = PROBE_MIN_MS;
	r->next_probe_ms = vd_ev_now_ms(lb->ev) + r->backoff_ms;
	/* pooled connections to it are suspect now */
	pool_flush(r);
	vd_warn("balancer: replica %s (%s) ejected; probing it back", r->name, r->address);
	/* nothing left to wait for: the queue gets its answer now, not at its
	 * timeout (as HAProxy answers 503 when no server is up) */
	while (lb->qhead && !any_up(lb))
		answer(lb->qhead, 503, VD_LB_ERR_NO_REPLICA);
}

static int
nonblocking_socket(int family)
{
	int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;

	if (fd >= 0)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* A probe: a connect that answers at once (replicas are on loopback). Linux
 * says EINPROGRESS even then, with the handshake done: a poll that does not
 * wait tells. */
static void
probe(struct vd_lb *lb, struct replica *r)
{
	int fd = nonblocking_socket(r->sa.ss_family), soerr = -1;
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	socklen_t len = sizeof(soerr);
	bool ok = fd >= 0 && (connect(fd, (struct sockaddr *)&r->sa, r->salen) == 0 ||
			      (errno == EINPROGRESS && poll(&pfd, 1, 0) == 1 &&
			       getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 &&
			       soerr == 0));

	if (fd >= 0)
		close(fd);
	if (ok) {
		r->up = true;
		vd_info("balancer: replica %s (%s) is back", r->name, r->address);
		pump_queue(lb);
		return;
	}
	r->backoff_ms = r->backoff_ms * 2 > PROBE_MAX_MS ? PROBE_MAX_MS : r->backoff_ms * 2;
	r->next_probe_ms = vd_ev_now_ms(lb->ev) + r->backoff_ms;
}

static void
replica_remove(struct vd_lb *lb, struct replica *r)
{
	size_t i;

	for (i = 0; i < lb->nreps && lb->reps[i] != r; i++)
		;
	if (i == lb->nreps)
		return;
	memmove(&lb->reps[i], &lb->reps[i + 1], (lb->nreps - i - 1) * sizeof(*lb->reps));
	lb->nreps--;
	pool_flush(r);
	if (r->drained)
		r->drained(r->drained_arg, r->name);
	free(r);
}

static void
release_slot(struct client *c, struct replica *r)
{
	struct vd_lb *lb = c->lb;

	if (!r)
		return;
	r->inflight--;
	lb->inflight--;
	if (r->draining && r->inflight == 0)
		replica_remove(lb, r);
}

/* ------------------------------------------------------------ metrics */

static void
count_response(struct vd_lb *lb, int status)
{
	int cls = status / 100;

	lb->responses[cls >= 1 && cls <= 5 ? cls : 0]++;
}

/* ------------------------------------------------------------ clients */

static void
free_client(void *arg)
{
	struct client *c = arg;

	free(c->buf);
	free(c);
}

/* Take a waiting client out of the queue. */
static void
unqueue(struct client *c)
{
	struct vd_lb *lb = c->lb;
	struct client **pp = &lb->qhead, *prev = NULL;

	if (c->state != C_QUEUED)
		return;
	while (*pp && *pp != c) {
		prev = *pp;
		pp = &(*pp)->qnext;
	}
	if (*pp) {
		*pp = c->qnext;
		if (lb->qtail == c)
			lb->qtail = prev;
		lb->queued--;
	}
	c->state = C_HEAD;
}

/* Give up the exchange a client has on a replica: a connection left in the
 * middle of a response cannot be reused. */
static void
drop_upstream(struct client *c)
{
	struct upstream *up = c->up;

	if (!up)
		return;
	up->c = NULL;
	c->up = NULL;
	upstream_close(up);
	release_slot(c, up->r); /* last: it frees a drained replica */
}

static void
client_close(struct client *c)
{
	struct vd_lb *lb = c->lb;

	if (c->h.fd < 0)
		return;
	unqueue(c);
	drop_upstream(c);
	vd_ev_del(lb->ev, &c->h);
	close(c->h.fd);
	c->h.fd = -1;
	if (c->prev)
		c->prev->next = c->next;
	else
		lb->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	lb->nclients--;
	vd_ev_defer(lb->ev, free_client, c);
}

/* Write what can be written of the proxy's own answer; close when done. */
static void
answer_flush(struct client *c)
{
	while (c->outlen) {
		ssize_t n = send(c->h.fd, c->out, c->outlen, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			vd_ev_set(c->lb->ev, &c->h, EPOLLOUT);
			return;
		}
		if (n <= 0)
			break;
		c->out += n;
		c->outlen -= (size_t)n;
	}
	client_close(c);
}

/* Answer STATUS ourselves and close; or just close when part of a response
 * was already relayed. */
static void
answer(struct client *c, int status, enum vd_lb_error_kind why)
{
	struct vd_lb *lb = c->lb;

	lb->errors[why]++;
	unqueue(c);
	drop_upstream(c);
	if (c->response_started) {
		client_close(c);
		return;
	}
	count_response(lb, status);
	for (size_t i = 0; i < sizeof(answers) / sizeof(answers[0]); i++)
		if (answers[i].status == status)
			c->out = answers[i].text;
	c->outlen = strlen(c->out);
	c->state = C_CLOSING;
	answer_flush(c);
}

/* -------------------------------------------------- parsing requests */

static bool
hop_by_hop(const char *name, size_t n)
{
	return (n == 10 && strncasecmp(name, "connection", 10) == 0) ||
	       (n == 10 && strncasecmp(name, "keep-alive", 10) == 0) ||
	       (n == 16 && strncasecmp(name, "proxy-connection", 16) == 0);
}

/* The header line that just ended is left out when it is hop-by-hop. */
static void
end_header(struct client *c, size_t end)
{
	if (c->hdr_in_value && c->hdr_skip && c->nskip < MAX_SKIP) {
		c->skip_from[c->nskip] = c->hdr_start;
		c->skip_to[c->nskip++] = end;
	}
	c->hdr_in_value = false;
	c->hdr_skip = false;
	c->hdr_name_len = 0;
}

static int
on_header_field(http_parser *p, const char *at, size_t n)
{
	struct client *c = p->data;

	if (c->hdr_in_value || c->hdr_name_len == 0) {
		end_header(c, (size_t)(at - c->buf));
		c->hdr_start = (size_t)(at - c->buf);
	}
	if (c->hdr_name_len + n < sizeof(c->hdr_name)) {
		memcpy(c->hdr_name + c->hdr_name_len, at, n);
		c->hdr_name_len += n;
	} else {
		c->hdr_name_len = sizeof(c->hdr_name); /* long: not hop-by-hop */
	}
	return 0;
}

static int
on_header_value(http_parser *p, const char *at, size_t n)
{
	struct client *c = p->data;

	(void)at;
	(void)n;
	if (!c->hdr_in_value) {
		c->hdr_in_value = true;
		c->hdr_skip = c->hdr_name_len < sizeof(c->hdr_name) &&
			      hop_by_hop(c->hdr_name, c->hdr_name_len);
	}
	return 0;
}

static int
on_req_headers_complete(http_parser *p)
{
	struct client *c = p->data;

	c->head_len = 1; /* known to be whole; its length is found after */
	c->keep_alive = http_should_keep_alive(p);
	c->is_head = p->method == HTTP_HEAD;
	c->idempotent = p->method == HTTP_GET || p->method == HTTP_HEAD ||
			p->method == HTTP_PUT || p->method == HTTP_DELETE ||
			p->method == HTTP_OPTIONS;
	return 0;
}

static int
on_req_message_complete(http_parser *p)
{
	struct client *c = p->data;

	c->msg_done = true;
	http_parser_pause(p, 1); /* pipelined bytes wait for the next exchange */
	return 0;
}

/* Where the head ends: after its blank line. */
static size_t
head_end(const struct client *c, size_t *blank)
{
	for (size_t i = 0; i + 1 < c->len; i++) {
		if (c->buf[i] != '\n')
			continue;
		if (c->buf[i + 1] == '\n') {
			*blank = 1;
			return i + 2;
		}
		if (i + 2 < c->len && c->buf[i + 1] == '\r' && c->buf[i + 2] == '\n') {
			*blank = 2;
			return i + 3;
		}
	}
	return 0;
}

/* The head as it goes to the replica: hop-by-hop lines left out,
 * X-Forwarded-For added before the blank line. */
static void
build_head(struct client *c, size_t blank)
{
	size_t from = 0, end = c->head_len - blank;

	c->niov = 0;
	for (int i = 0; i < c->nskip; i++) {
		if (c->skip_from[i] > from)
			c->iov[c->niov++] = (struct iovec){ c->buf + from, c->skip_from[i] - from };
		from = c->skip_to[i];
	}
	if (end > from)
		c->iov[c->niov++] = (struct iovec){ c->buf + from, end - from };
	c->iov[c->niov].iov_base = c->xff;
	c->iov[c->niov++].iov_len = (size_t)snprintf(c->xff, sizeof(c->xff),
						     "X-Forwarded-For: %s\r\n", c->ip);
	c->iov[c->niov++] = (struct iovec){ c->buf + end, blank };
	c->iov_at = 0;
}

static void
reset_request(struct client *c)
{
	http_parser_init(&c->p, HTTP_REQUEST);
	c->p.data = c;
	c->parsed = c->head_len = c->sent = 0;
	c->head_sent = c->msg_done = c->response_started = false;
	c->nskip = 0;
	c->hdr_in_value = c->hdr_skip = false;
	c->hdr_name_len = 0;
	c->attempts = 0;
	c->replayable = true;
}

/* Parse what arrived. Returns false when the client was answered/closed. */
static bool
parse_request(struct client *c)
{
	struct vd_lb *lb = c->lb;
	size_t n, blank = 0;
	bool had_head = c->head_len != 0;

	if (c->msg_done || c->parsed == c->len)
		return true;
	n = http_parser_execute(&c->p, &req_settings, c->buf + c->parsed, c->len - c->parsed);
	if (HTTP_PARSER_ERRNO(&c->p) != HPE_OK && HTTP_PARSER_ERRNO(&c->p) != HPE_PAUSED) {
		answer(c, 400, VD_LB_ERR_BAD_REQUEST);
		return false;
	}
	c->parsed += n;
	if (!had_head && c->head_len) {
		c->head_len = head_end(c, &blank);
		if (!c->head_len) {
			answer(c, 400, VD_LB_ERR_BAD_REQUEST);
			return false;
		}
		end_header(c, c->head_len - blank);
		build_head(c, blank);
		c->sent = c->head_len;
		lb->requests++;
		c->t_head_us = vd_ev_now_us(lb->ev);
		route(c);
		return c->h.fd >= 0;
	}
	if (c->state == C_HEAD && c->len >= lb->cfg.max_header_bytes) {
		answer(c, 431, VD_LB_ERR_HEADER_TOO_BIG);
		return false;
	}
	return true;
}

/* ------------------------------------------------ forwarding requests */

/* Send what can be sent of the request to the replica. */
static void
forward(struct client *c)
{
	struct upstream *up = c->up;
	struct vd_lb *lb = c->lb;
	ssize_t n;

	if (!c->head_sent) {
		struct msghdr m = { .msg_iov = c->iov + c->iov_at,
				    .msg_iovlen = (size_t)(c->niov - c->iov_at) };

		n = sendmsg(up->h.fd, &m, MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			vd_ev_set(lb->ev, &up->h, EPOLLIN | EPOLLOUT);
			return;
		}
		if (n < 0) {
			/* a pooled connection the replica had closed: try again */
			up->no_reuse = true;
			upstream_io(lb->ev, &up->h, EPOLLERR);
			return;
		}
		while (n > 0 && c->iov_at < c->niov) {
			struct iovec *v = &c->iov[c->iov_at];

			if ((size_t)n >= v->iov_len) {
				n -= (ssize_t)v->iov_len;
				c->iov_at++;
			} else {
				v->iov_base = (char *)v->iov_base + n;
				v->iov_len -= (size_t)n;
				n = 0;
			}
		}
		if (c->iov_at < c->niov) {
			vd_ev_set(lb->ev, &up->h, EPOLLIN | EPOLLOUT);
			return;
		}
		c->head_sent = true;
	}
	/* the body: what is parsed of it so far */
	while (c->sent < c->parsed) {
		n = send(up->h.fd, c->buf + c->sent, c->parsed - c->sent, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			vd_ev_set(lb->ev, &up->h, EPOLLIN | EPOLLOUT);
			vd_ev_set(lb->ev, &c->h, 0);
			return;
		}
		if (n <= 0) {
			up->no_reuse = true;
			upstream_io(lb->ev, &up->h, EPOLLERR);
			return;
		}
		c->sent += (size_t)n;
	}
	vd_ev_set(lb->ev, &up->h, EPOLLIN);
	if (c->msg_done) {
		vd_ev_set(lb->ev, &c->h, 0); /* pipelined requests wait their turn */
		return;
	}
	/* more body to come: make room by dropping what went out */
	if (c->sent == c->len && c->sent > c->head_len) {
		c->replayable = false;
		c->len = c->parsed = c->sent = 0;
		c->head_len = 0;
	}
	vd_ev_set(lb->ev, &c->h, EPOLLIN);
}

static struct upstream *
upstream_connect(struct vd_lb *lb, struct replica *r)
{
	struct upstream *up = calloc(1, sizeof(*up));
	int fd;

	if (!up)
		return NULL;
	fd = nonblocking_socket(r->sa.ss_family);
	if (fd < 0) {
		free(up);
		return NULL;
	}
	up->h.fd = fd;
	up->h.fn = upstream_io;
	up->lb = lb;
	up->r = r;
	up->t_start_ms = vd_ev_now_ms(lb->ev);
	if (connect(fd, (struct sockaddr *)&r->sa, r->salen) < 0) {
		if (errno != EINPROGRESS) {
			close(fd);
			free(up);
			return NULL;
		}
		up->connecting = true;
	}
	if (vd_ev_add(lb->ev, &up->h, up->connecting ? EPOLLOUT : EPOLLIN) < 0) {
		close(fd);
		free(up);
		return NULL;
	}
	return up;
}

/* Put the request on replica r. */
static void
dispatch(struct client *c, struct replica *r)
{
	struct vd_lb *lb = c->lb;
	struct upstream *up = r->idle;

	r->inflight++;
	lb->inflight++;
	r->requests++;
	c->attempts++;
	if (up) {
		r->idle = up->next;
		r->nidle--;
		up->next = NULL;
		up->reused = true;
	} else if (!(up = upstream_connect(lb, r))) {
		lb->errors[VD_LB_ERR_CONNECT]++;
		r->errors++;
		release_slot(c, r);
		eject(lb, r);
		route(c);
		return;
	}
	up->c = c;
	c->up = up;
	c->state = C_UPSTREAM;
	http_parser_init(&up->p, HTTP_RESPONSE);
	up->p.data = up;
	up->got_bytes = up->done = up->interim = false;
	up->off = up->len = 0;
	up->t_activity_ms = vd_ev_now_ms(lb->ev);
	if (!up->connecting)
		forward(c);
}

/* Find a replica for a client whose head is whole: now, or in the queue. */
static void
route(struct client *c)
{
	struct vd_lb *lb = c->lb;
	struct replica *r;

	if (c->attempts >= MAX_ATTEMPTS) {
		answer(c, 502, VD_LB_ERR_CONNECT);
		return;
	}
	if (!lb->qhead && (r = pick(lb))) {
		dispatch(c, r);
		return;
	}
	if (!any_up(lb)) {
		answer(c, 503, VD_LB_ERR_NO_REPLICA);
		return;
	}
	if (lb->queued >= lb->cfg.queue_limit) {
		answer(c, 503, VD_LB_ERR_QUEUE_FULL);
		return;
	}
	c->state = C_QUEUED;
	c->t_queued_us = vd_ev_now_us(lb->ev);
	c->qnext = NULL;
	if (lb->qtail)
		lb->qtail->qnext = c;
	else
		lb->qhead = c;
	lb->qtail = c;
	lb->queued++;
	vd_ev_set(lb->ev, &c->h, 0);
}

/* Give queued requests, oldest first, to replicas that can take them. */
static void
pump_queue(struct vd_lb *lb)
{
	struct replica *r;

	while (lb->qhead && (r = pick(lb))) {
		struct client *c = lb->qhead;

		lb->qhead = c->qnext;
		if (!lb->qhead)
			lb->qtail = NULL;
		lb->queued--;
		vd_window_record(&lb->wait, vd_ev_now_ms(lb->ev),
				 (uint64_t)(vd_ev_now_us(lb->ev) - c->t_queued_us));
		dispatch(c, r);
	}
}

/* -------------------------------------------------- relaying responses */

static int
on_resp_headers_complete(http_parser *p)
{
	struct upstream *up = p->data;

	if (p->status_code >= 100 && p->status_code < 200 && p->status_code != 101)
		return 0;
	/* a response to HEAD has no body, whatever its headers say */
	return up->c && up->c->is_head ? 1 : 0;
}

/* While the balancer stops: the parser pauses on the last LF of a final
 * response head, so that upstream_read() knows where the head ends. */
static int
on_resp_head_stop(http_parser *p)
{
	int skip = on_resp_headers_complete(p);

	if (p->status_code < 100 || p->status_code >= 200 || p->status_code == 101)
		http_parser_pause(p, 1);
	return skip;
}

static int
on_resp_message_complete(http_parser *p)
{
	struct upstream *up = p->data;

	if (p->status_code >= 100 && p->status_code < 200 && p->status_code != 101)
		up->interim = true; /* 100 Continue and the like: the answer follows */
	else
		up->done = true;
	http_parser_pause(p, 1);
	return 0;
}

static void
pool_put(struct upstream *up)
{
	struct replica *r = up->r;

	up->c = NULL;
	if (!r || r->draining || !r->up || r->nidle >= POOL_MAX || up->no_reuse) {
		upstream_close(up);
		return;
	}
	up->next = r->idle;
	r->idle = up;
	r->nidle++;
	up->reused = true;
}

/* The response is whole and relayed: account, recycle, go on. */
static void
finish(struct client *c)
{
	struct vd_lb *lb = c->lb;
	struct upstream *up = c->up;
	struct replica *r = up->r;
	int64_t now_ms = vd_ev_now_ms(lb->ev);
	uint64_t us = (uint64_t)(vd_ev_now_us(lb->ev) - c->t_head_us);
	bool keep = c->keep_alive && http_should_keep_alive(&up->p) && !up->no_reuse &&
		    !lb->stopping;

	count_response(lb, up->p.status_code);
	vd_window_record(&lb->total, now_ms, us);
	if (r)
		vd_window_record(&r->total, now_ms, us);
	up->no_reuse |= !http_should_keep_alive(&up->p);
	c->up = NULL;
	if (up->r)
		pool_put(up);
	else
		upstream_close(up);
	release_slot(c, r); /* last: it frees r once r is drained */
	if (!keep) {
		client_close(c);
	} else {
		/* keep what follows the message (a pipelined request) */
		size_t rest = c->len - c->parsed;

		memmove(c->buf, c->buf + c->parsed, rest);
		c->len = rest;
		reset_request(c);
		c->state = rest ? C_HEAD : C_IDLE;
		c->t_activity_ms = now_ms;
		c->t_head_us = vd_ev_now_us(lb->ev); /* the next head's clock */
		buf_release(c);
		vd_ev_set(lb->ev, &c->h, EPOLLIN);
		if (rest && parse_request(c) && c->state == C_HEAD)
			vd_ev_set(lb->ev, &c->h, EPOLLIN);
	}
	pump_queue(lb);
}

/* Write the relayed bytes the client can take. */
static void
relay(struct upstream *up)
{
	struct client *c = up->c;
	struct vd_lb *lb = c->lb;

	while (up->off < up->len) {
		ssize_t n = send(c->h.fd, up->buf + up->off, up->len - up->off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			/* the client is slow: stop reading the replica until it drains */
			vd_ev_set(lb->ev, &up->h, 0);
			vd_ev_set(lb->ev, &c->h, EPOLLOUT);
			return;
		}
		if (n <= 0) {
			client_close(c);
			return;
		}
		c->response_started = true;
		up->off += (size_t)n;
	}
	up->off = up->len = 0;
	if (up->done) {
		finish(c);
		return;
	}
	vd_ev_set(lb->ev, &up->h, EPOLLIN);
	vd_ev_set(lb->ev, &c->h, c->msg_done ? 0 : EPOLLIN);
}

/* The replica failed this request before answering: try another one. */
static void
upstream_failed(struct upstream *up, enum vd_lb_error_kind why, bool blame)
{
	struct client *c = up->c;
	struct vd_lb *lb = c->lb;
	struct replica *r = up->r;
	bool pooled = up->reused;

	lb->errors[why]++;
	if (r)
		r->errors++;
	c->up = NULL;
	up->c = NULL;
	upstream_close(up);
	if (pooled && r) {
		/* the replica closed a pooled connection (it restarted, or died):
		 * its other idle ones are as stale; the retry is not counted, and
		 * goes out on a fresh connection */
		pool_flush(r);
		c->attempts--;
	}
	if (blame && r && r->up)
		eject(lb, r);
	release_slot(c, r); /* last: it frees r once r is drained */
	if (c->idempotent && c->replayable && !c->response_started) {
		/* start the head again from the top */
		size_t blank = c->buf[c->head_len - 2] == '\r' ? 2 : 1;

		build_head(c, blank);
		c->head_sent = false;
		c->sent = c->head_len;
		route(c);
		return;
	}
	c->lb->errors[why]--; /* counted once, as the answer's */
	answer(c, 502, why);
}

/*
 * Make the response head that ends at END in buf (after its blank line) say
 * "Connection: close": its hop-by-hop lines from FROM on are left out, with
 * the lines folded into them, and the header is added before the blank line.
 * LEN bytes are in buf, with room for CLOSE_ROOM more; returns the new LEN.
 * A blank line that began in an earlier read gets nothing added.
 */
static size_t
say_close(char *buf, size_t from, size_t end, size_t len)
{
	size_t blank = end >= 2 && buf[end - 2] == '\r' ? end - 2 : end - 1;
	size_t s = from, e;
	const char *nl, *colon;

	while (s < blank) {
		nl = memchr(buf + s, '\n', blank - s);
		e = nl ? (size_t)(nl - buf) + 1 : blank;
		colon = memchr(buf + s, ':', e - s);
		if (!colon || !hop_by_hop(buf + s, (size_t)(colon - (buf + s)))) {
			s = e;
			continue;
		}
		while (e < blank && (buf[e] == ' ' || buf[e] == '\t')) {
			nl = memchr(buf + e, '\n', blank - e);
			e = nl ? (size_t)(nl - buf) + 1 : blank;
		}
		memmove(buf + s, buf + e, len - e);
		len -= e - s;
		blank -= e - s;
	}
	if (blank == 0 || buf[blank - 1] != '\n')
		return len;
	memmove(buf + blank + CLOSE_ROOM, buf + blank, len - blank);
	memcpy(buf + blank, CONN_CLOSE, CLOSE_ROOM);
	return len + CLOSE_ROOM;
}

/*
 * While the balancer stops, after a read of a response was parsed: USED bytes
 * of up->buf are the parser's, HEAD_END is where a final response head ends
 * in them (0: not in them), RESP_AT where the final response begins (after
 * any 1xx answers; 0 when it began at the start or before).
 *
 * A head not sent yet is held at the start of the buffer until it is whole
 * (returns true: nothing to relay yet), then rewritten by say_close(). A head
 * that does not fit the buffer, that begins after a 1xx answer in a read it
 * does not end in, or that had begun to go out when the stop came, goes on as
 * it comes: only the lines of the read where it ends are rewritten (from its
 * first whole line). The client's connection closes after it all the same.
 */
static bool
stop_head(struct upstream *up, size_t *used, size_t head_end, size_t resp_at)
{
	size_t from = resp_at;
	const char *nl;

	up->held = 0;
	if (head_end) {
		if (!resp_at && up->head_out && up->head_cut) {
			nl = memchr(up->buf, '\n', head_end);
			from = nl ? (size_t)(nl - up->buf) + 1 : head_end;
		}
		*used = say_close(up->buf, from, head_end, *used);
		up->head_out = true;
	} else if (!up->head_out && !up->done && resp_at < *used) {
		if (!resp_at && *used + CLOSE_ROOM < sizeof(up->buf)) {
			up->held = *used;
			return true;
		}
		up->head_out = true;
		up->head_cut = up->buf[*used - 1] != '\n';
	} else if (up->head_out && *used > resp_at) {
		up->head_cut = up->buf[*used - 1] != '\n';
	}
	if (up->done)
		up->head_out = up->head_cut = false; /* the next response is new */
	return false;
}

static void
upstream_read(struct upstream *up)
{
	struct client *c = up->c;
	struct vd_lb *lb = c->lb;
	const http_parser_settings *settings = &resp_settings;
	size_t at = 0, room = sizeof(up->buf), total, used, head_end = 0, resp_at = 0;
	ssize_t n;

	if (up->len)
		return; /* the client has not taken the last read yet */
	if (lb->stopping) {
		/* after what is held, with room to add "Connection: close" */
		settings = &resp_stop_settings;
		at = up->held;
		room = sizeof(up->buf) - CLOSE_ROOM - at;
	}
	n = recv(up->h.fd, up->buf + at, room, 0);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		if (!up->got_bytes) {
			/* a pooled connection may have been closed by the replica
			 * while idle: that is not the replica's fault */
			upstream_failed(up, VD_LB_ERR_RESET, !up->reused);
			return;
		}
		/* the end of a response that runs to the close, or a cut */
		http_parser_execute(&up->p, settings, NULL, 0);
		if (up->done) {
			up->no_reuse = true;
			finish(c);
		} else {
			lb->errors[VD_LB_ERR_CUT]++;
			if (up->r)
				up->r->errors++;
			if (c->response_started) {
				client_close(c);
			} else {
				lb->errors[VD_LB_ERR_CUT]--;
				answer(c, 502, VD_LB_ERR_CUT);
			}
		}
		return;
	}
	up->got_bytes = true;
	up->t_activity_ms = vd_ev_now_ms(lb->ev);
	total = at + (size_t)n;
	used = at;
	while (used < total && !up->done) {
		size_t k = http_parser_execute(&up->p, settings, up->buf + used, total - used);

		used += k;
		if (HTTP_PARSER_ERRNO(&up->p) == HPE_PAUSED && up->interim) {
			http_parser_init(&up->p, HTTP_RESPONSE);
			up->p.data = up;
			up->interim = false;
			resp_at = used;
			continue;
		}
		if (HTTP_PARSER_ERRNO(&up->p) == HPE_PAUSED && !up->done) {
			/* stopping: on the head's last LF, which is parsed again */
			head_end = used + 1;
			http_parser_pause(&up->p, 0);
			continue;
		}
		if (HTTP_PARSER_ERRNO(&up->p) != HPE_OK && HTTP_PARSER_ERRNO(&up->p) != HPE_PAUSED) {
			up->no_reuse = true;
			if (c->response_started) {
				lb->errors[VD_LB_ERR_CUT]++;
				client_close(c);
			} else {
				answer(c, 502, VD_LB_ERR_CUT);
			}
			return;
		}
		if (k == 0)
			break;
	}
	/* bytes past the end of the response: the connection is not clean */
	if (up->done && used < total)
		up->no_reuse = true;
	if (lb->stopping && stop_head(up, &used, head_end, resp_at))
		return;
	up->off = 0;
	up->len = used;
	relay(up);
}

static void
upstream_io(struct vd_ev *ev, struct vd_ev_handle *h, uint32_t events)
{
	struct upstream *up = (struct upstream *)h;
	int soerr = 0;
	socklen_t len = sizeof(soerr);

	(void)ev;
	if (!up->c) {
		/* idle in the pool: the replica closed it (or sent junk) */
		struct replica *r = up->r;
		struct upstream **pp = r ? &r->idle : NULL;

		while (pp && *pp && *pp != up)
			pp = &(*pp)->next;
		if (pp && *pp) {
			*pp = up->next;
			r->nidle--;
		}
		upstream_close(up);
		return;
	}
	if (up->connecting) {
		if (getsockopt(h->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0 || soerr ||
		    (events & (EPOLLERR | EPOLLHUP))) {
			upstream_failed(up, VD_LB_ERR_CONNECT, true);
			return;
		}
		up->connecting = false;
		forward(up->c);
		return;
	}
	if (events & EPOLLOUT) {
		forward(up->c);
		if (!up->c || h->fd < 0)
			return;
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		upstream_read(up);
}

static void
free_upstream(void *arg)
{
	free(arg);
}

static void
upstream_close(struct upstream *up)
{
	if (up->h.fd < 0)
		return;
	vd_ev_del(up->lb->ev, &up->h);
	close(up->h.fd);
	up->h.fd = -1;
	/* an event of this round may still point at it */
	vd_ev_defer(up->lb->ev, free_upstream, up);
}

/* ------------------------------------------------------ client input */

static void
client_read(struct client *c)
{
	struct vd_lb *lb = c->lb;
	ssize_t n;

	for (;;) {
		if (!buf_room(c)) {
			if (c->state == C_HEAD)
				answer(c, 431, VD_LB_ERR_HEADER_TOO_BIG);
			else
				vd_ev_set(lb->ev, &c->h, 0); /* body window full: wait */
			return;
		}
		n = recv(c->h.fd, c->buf + c->len, c->cap - c->len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			buf_release(c);
			return;
		}
		if (n <= 0) {
			/* the client closed (or reset): between requests that is normal */
			client_close(c);
			return;
		}
		c->len += (size_t)n;
		c->t_activity_ms = vd_ev_now_ms(lb->ev);
		if (c->state == C_IDLE) {
			c->state = C_HEAD;
			c->t_head_us = vd_ev_now_us(lb->ev);
		}
		if (!parse_request(c))
			return;
		/* a body streaming to a replica goes out as it comes */
		if (c->state == C_UPSTREAM && c->up && !c->up->connecting && c->head_sent) {
			forward(c);
			return;
		}
		if (c->state != C_HEAD)
			return;
		if ((size_t)n < CLIENT_BUF / 2)
			return; /* most likely all there is for now */
	}
}

static void
client_io(struct vd_ev *ev, struct vd_ev_handle *h, uint32_t events)
{
	struct client *c = (struct client *)h;

	(void)ev;
	if (c->state == C_CLOSING) {
		answer_flush(c);
		return;
	}
	if ((events & EPOLLOUT) && c->up && c->up->len) {
		relay(c->up);
		return;
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		client_read(c);
}

/* Take one connection off the listener's queue; false when there is none
 * (or accept fails). */
static bool
accept_one(struct vd_lb *lb)
{
	struct sockaddr_storage sa;
	socklen_t len = sizeof(sa);
	int fd = accept4(lb->listener.fd, (struct sockaddr *)&sa, &len,
			 SOCK_NONBLOCK | SOCK_CLOEXEC);
	struct client *c;
	int one = 1;

	if (fd < 0)
		return false;
	if (!(c = calloc(1, sizeof(*c)))) {
		close(fd);
		return true;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->h.fd = fd;
	c->h.fn = client_io;
	c->lb = lb;
	c->state = C_IDLE;
	c->t_activity_ms = vd_ev_now_ms(lb->ev);
	if (sa.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, c->ip, sizeof(c->ip));
	else
		inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, c->ip, sizeof(c->ip));
	reset_request(c);
	if (vd_ev_add(lb->ev, &c->h, EPOLLIN) < 0) {
		close(fd);
		free(c);
		return true;
	}
	c->next = lb->clients;
	if (lb->clients)
		lb->clients->prev = c;
	lb->clients = c;
	lb->nclients++;
	return true;
}

static void
accept_clients(struct vd_ev *ev, struct vd_ev_handle *h, uint32_t events)
{
	struct vd_lb *lb = (struct vd_lb *)((char *)h - offsetof(struct vd_lb, listener));

	(void)ev;
	(void)events;
	for (int i = 0; i < 256 && accept_one(lb); i++)
		;
}

/* ---------------------------------------------------------------- tick */

static void
check_client(struct vd_lb *lb, struct client *c, int64_t now)
{
	struct upstream *up = c->up;

	switch (c->state) {
	case C_IDLE:
		if (now - c->t_activity_ms > lb->cfg.idle_timeout_ms)
			client_close(c);
		break;
	case C_HEAD:
		if (now - c->t_head_us / 1000 > lb->cfg.header_timeout_ms)
			answer(c, 408, VD_LB_ERR_CLIENT_TIMEOUT);
		break;
	case C_UPSTREAM:
		if (!up)
			break;
		if (up->connecting && now - up->t_start_ms > lb->cfg.connect_timeout_ms)
			upstream_failed(up, VD_LB_ERR_CONNECT, true);
		else if (!up->connecting && now - up->t_activity_ms > lb->cfg.response_timeout_ms)
			answer(c, 504, VD_LB_ERR_REPLICA_TIMEOUT);
		break;
	case C_QUEUED:
	case C_CLOSING:
		break;
	}
}

static int64_t
tick(struct vd_ev *ev, void *arg)
{
	struct vd_lb *lb = arg;
	int64_t now = vd_ev_now_ms(ev);
	struct client *c, *next;

	for (c = lb->clients; c; c = next) {
		next = c->next; /* c may close */
		check_client(lb, c, now);
	}
	/* the queue is oldest first: only its head can be due */
	while (lb->qhead &&
	       vd_ev_now_us(ev) - lb->qhead->t_queued_us > lb->cfg.queue_timeout_ms * 1000) {
		c = lb->qhead;
		vd_window_record(&lb->wait, now, (uint64_t)(vd_ev_now_us(ev) - c->t_queued_us));
		answer(c, 504, VD_LB_ERR_QUEUE_TIMEOUT);
	}
	for (size_t i = 0; i < lb->nreps; i++)
		if (!lb->reps[i]->up && now >= lb->reps[i]->next_probe_ms)
			probe(lb, lb->reps[i]);
	return TICK_MS;
}

/* ------------------------------------------------------------ the API */

void
vd_lb_config_default(struct vd_lb_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->listen_host = "127.0.0.1";
	cfg->listen_port = 8000;
	cfg->policy = VD_LB_LEAST_OUTSTANDING;
	cfg->queue_limit = 1000;
	cfg->queue_timeout_ms = 60000;
}

struct vd_lb *
vd_lb_new(struct vd_ev *ev, const struct vd_lb_config *cfg, struct vd_error *err)
{
	struct vd_lb *lb;
	struct sockaddr_storage sa;
	socklen_t len;
	int one = 1;

	if (vd_net_addr(cfg->listen_host, cfg->listen_port, &sa, &len) < 0) {
		vd_error_set(err, VD_EXIT_INPUT, "listen address '%s' is not an IP address",
			     cfg->listen_host);
		return NULL;
	}
	if (!(lb = calloc(1, sizeof(*lb)))) {
		vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
		return NULL;
	}
	if (!req_settings.on_message_complete) {
		req_settings.on_header_field = on_header_field;
		req_settings.on_header_value = on_header_value;
		req_settings.on_headers_complete = on_req_headers_complete;
		req_settings.on_message_complete = on_req_message_complete;
		resp_settings.on_headers_complete = on_resp_headers_complete;
		resp_settings.on_message_complete = on_resp_message_complete;
		resp_stop_settings = resp_settings;
		resp_stop_settings.on_headers_complete = on_resp_head_stop;
	}
	lb->ev = ev;
	lb->cfg = *cfg;
	if (!lb->cfg.idle_timeout_ms)
		lb->cfg.idle_timeout_ms = 60000;
	if (!lb->cfg.header_timeout_ms)
		lb->cfg.header_timeout_ms = 10000;
	if (!lb->cfg.connect_timeout_ms)
		lb->cfg.connect_timeout_ms = 2000;
	if (!lb->cfg.response_timeout_ms)
		lb->cfg.response_timeout_ms = 60000;
	if (!lb->cfg.max_header_bytes)
		lb->cfg.max_header_bytes = 16384;
	lb->rng = 0x9e3779b97f4a7c15ULL ^ (uint64_t)vd_ev_now_us(ev);
	/* lb->wait and lb->total are zeroed: empty windows (vd/hist.h) */
	lb->listener.fn = accept_clients;
	lb->listener.fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lb->listener.fd < 0 ||
	    setsockopt(lb->listener.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(lb->listener.fd, (struct sockaddr *)&sa, len) < 0 ||
	    listen(lb->listener.fd, 4096) < 0 ||
	    getsockname(lb->listener.fd, (struct sockaddr *)&sa, &len) < 0 ||
	    vd_ev_add(ev, &lb->listener, EPOLLIN) < 0) {
		vd_error_errno(err, errno, "cannot listen on %s:%d", cfg->listen_host,
			       cfg->listen_port);
		if (lb->listener.fd >= 0)
			close(lb->listener.fd);
		free(lb);
		return NULL;
	}
	lb->port = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
						  : ((struct sockaddr_in *)&sa)->sin_port);
	lb->tick = vd_ev_timer(ev, TICK_MS, tick, lb);
	return lb;
}

void
vd_lb_free(struct vd_lb *lb)
{
	if (!lb)
		return;
	vd_ev_timer_cancel(lb->ev, lb->tick);
	if (lb->grace > 0)
		vd_ev_timer_cancel(lb->ev, lb->grace);
	while (lb->clients)
		client_close(lb->clients);
	for (size_t i = 0; i < lb->nreps; i++) {
		struct replica *r = lb->reps[i];

		while (r->idle) {
			struct upstream *up = r->idle;

			r->idle = up->next;
			upstream_close(up);
		}
		free(r);
	}
	free(lb->reps);
	if (lb->listener.fd >= 0) {
		vd_ev_del(lb->ev, &lb->listener);
		close(lb->listener.fd);
	}
	for (int i = 0; i < lb->nfree; i++)
		free(lb->free_bufs[i]);
	free(lb);
}

int
vd_lb_port(const struct vd_lb *lb)
{
	return lb->port;
}

/* The grace is over: keep-alive clients with no request are closed (no
 * client becomes idle any more: each is closed after its response). */
static int64_t
grace_over(struct vd_ev *ev, void *arg)
{
	struct vd_lb *lb = arg;
	struct client *c, *next;

	(void)ev;
	lb->grace = 0;
	for (c = lb->clients; c; c = next) {
		next = c->next;
		if (c->state == C_IDLE)
			client_close(c);
	}
	return -1;
}

void
vd_lb_shutdown(struct vd_lb *lb, int64_t grace_ms)
{
	if (!lb->stopping) {
		/* connections the kernel has taken already are served, not reset */
		while (accept_one(lb))
			;
		vd_ev_del(lb->ev, &lb->listener);
		close(lb->listener.fd);
		lb->listener.fd = -1;
		/* a response begun already may have sent some of its head as it
		 * was (or all of it: there is no knowing, so it is not held) */
		for (struct client *c = lb->clients; c; c = c->next)
			if (c->up && c->up->got_bytes && !c->up->done)
				c->up->head_out = c->up->head_cut = true;
		lb->stopping = true;
	}
	if (lb->grace > 0)
		vd_ev_timer_cancel(lb->ev, lb->grace);
	lb->grace = vd_ev_timer(lb->ev, grace_ms > 0 ? grace_ms : 0, grace_over, lb);
	if (lb->grace < 0)
		grace_over(lb->ev, lb);
}

size_t
vd_lb_clients(const struct vd_lb *lb)
{
	return (size_t)lb->nclients;
}

static struct replica *
find_replica(struct vd_lb *lb, const char *name)
{
	for (size_t i = 0; i < lb->nreps; i++)
		if (strcmp(lb->reps[i]->name, name) == 0)
			return lb->reps[i];
	return NULL;
}

int
vd_lb_add_replica(struct vd_lb *lb, const char *name, const char *host, int port,
		  struct vd_error *err)
{
	struct replica *r, **v;

	if (find_replica(lb, name))
		return vd_error_set(err, VD_EXIT_INPUT, "replica '%s' is already there", name);
	if (!(r = calloc(1, sizeof(*r))))
		return vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
	if (vd_net_addr(host, port, &r->sa, &r->salen) < 0 || port < 1 || port > 65535) {
		free(r);
		return vd_error_set(err, VD_EXIT_INPUT, "replica '%s': '%s:%d' is not an IP "
				    "address and port", name, host, port);
	}
	if (!(v = realloc(lb->reps, (lb->nreps + 1) * sizeof(*v)))) {
		free(r);
		return vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
	}
	snprintf(r->name, sizeof(r->name), "%s", name);
	snprintf(r->address, sizeof(r->address), strchr(host, ':') ? "[%s]:%d" : "%s:%d", host,
		 port);
	r->up = true; /* r->total is zeroed: an empty window, not resident yet */
	lb->reps = v;
	lb->reps[lb->nreps++] = r;
	pump_queue(lb);
	return 0;
}

int
vd_lb_drain_replica(struct vd_lb *lb, const char *name,
		    void (*done)(void *arg, const char *name), void *arg)
{
	struct replica *r = find_replica(lb, name);

	if (!r)
		return -1;
	r->draining = true;
	r->drained = done;
	r->drained_arg = arg;
	if (r->inflight == 0)
		replica_remove(lb, r);
	return 0;
}

static void
latency(const struct vd_window *w, int64_t now, int64_t span, struct vd_lb_latency *out)
{
	static struct vd_hist h; /* 11 KiB: not on the stack; one thread */

	vd_window_read(w, now, span, &h);
	out->count = h.count;
	out->p50 = vd_hist_percentile(&h, 50);
	out->p90 = vd_hist_percentile(&h, 90);
	out->p95 = vd_hist_percentile(&h, 95);
	out->p99 = vd_hist_percentile(&h, 99);
	out->max = vd_hist_percentile(&h, 100);
}

/* Responses a second over a window: its count over the time it covers
 * (whole slots back from now). */
static double
rate(uint64_t count, int64_t now, int64_t span)
{
	int64_t from = (now - span) / VD_WINDOW_SLOT_MS * VD_WINDOW_SLOT_MS;

	return now > from ? (double)count * 1000.0 / (double)(now - from) : 0;
}

int
vd_lb_stats(struct vd_lb *lb, struct vd_lb_stats *out, struct vd_error *err)
{
	int64_t now = vd_ev_now_ms(lb->ev);

	memset(out, 0, sizeof(*out));
	out->inflight = lb->inflight;
	out->queued = lb->queued;
	out->requests = lb->requests;
	out->connections = lb->nclients;
	memcpy(out->responses, lb->responses, sizeof(out->responses));
	memcpy(out->errors, lb->errors, sizeof(out->errors));
	latency(&lb->wait, now, 10000, &out->wait10);
	latency(&lb->wait, now, 60000, &out->wait60);
	latency(&lb->total, now, 10000, &out->total10);
	latency(&lb->total, now, 60000, &out->total60);
	out->rps10 = rate(out->total10.count, now, 10000);
	out->rps60 = rate(out->total60.count, now, 60000);
	out->nreplicas = lb->nreps;
	out->replicas = calloc(lb->nreps + 1, sizeof(*out->replicas));
	if (!out->replicas)
		return vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
	for (size_t i = 0; i < lb->nreps; i++) {
		struct replica *r = lb->reps[i];
		struct vd_lb_replica_stats *s = &out->replicas[i];

		snprintf(s->name, sizeof(s->name), "%s", r->name);
		snprintf(s->address, sizeof(s->address), "%s", r->address);
		s->up = r->up;
		s->draining = r->draining;
		s->inflight = r->inflight;
		s->requests = r->requests;
		s->errors = r->errors;
		latency(&r->total, now, 10000, &s->total10);
	}
	return 0;
}
