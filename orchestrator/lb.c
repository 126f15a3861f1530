/*
 * The balancer: an HTTP/1.1 reverse proxy on the event loop (see vd/lb.h).
 * This file holds the balancer as a whole: its life (vd_lb_new, the
 * graceful stop, vd_lb_free), its replicas (added, drained, ejected and
 * probed back), the tick and its numbers. A request's way in is in
 * lb_client.c, its response's way back in lb_upstream.c; lb_int.h says how
 * they share the work.
 *
 * Timeouts, the queue's deadline and the probes of ejected replicas run on
 * one tick every 100 ms.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lb_int.h"
#include "vd/log.h"
#include "vd/net.h"

#define TICK_MS 100
#define PROBE_MIN_MS 500
#define PROBE_MAX_MS 5000

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
		[VD_LB_ERR_CLIENT_GONE] = "client_gone",
		[VD_LB_ERR_REFUSED_EARLY] = "refused_early",
	};

	return (unsigned)k < VD_LB_ERR_KINDS ? names[k] : "?";
}

/* ----------------------------------------------------------- replicas */

/* Close a replica's idle pooled connections. */
void
lb_pool_flush(struct replica *r)
{
	while (r->idle) {
		struct upstream *up = r->idle;

		r->idle = up->next;
		r->nidle--;
		up->r = NULL;
		lb_upstream_close(up);
	}
}

void
lb_eject(struct vd_lb *lb, struct replica *r)
{
	if (!r->up)
		return;
	r->up = false;
	r->backoff_ms = PROBE_MIN_MS;
	r->next_probe_ms = vd_ev_now_ms(lb->ev) + r->backoff_ms;
	/* pooled connections to it are suspect now */
	lb_pool_flush(r);
	vd_warn("balancer: replica %s (%s) ejected; probing it back", r->name, r->address);
	/* nothing left to wait for: the queue gets its answer now, not at its
	 * timeout (as HAProxy answers 503 when no server is up) */
	while (lb->qhead && !lb_any_up(lb) && !lb->cfg.hold_when_empty)
		lb_answer(lb->qhead, 503, VD_LB_ERR_NO_REPLICA);
}

/* A probe: a connect that answers at once (replicas are on loopback). Linux
 * says EINPROGRESS even then, with the handshake done: a poll that does not
 * wait tells. */
static void
probe(struct vd_lb *lb, struct replica *r)
{
	int fd = lb_socket(r->sa.ss_family), soerr = -1;
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
		lb_pump_queue(lb);
		return;
	}
	r->backoff_ms = r->backoff_ms * 2 > PROBE_MAX_MS ? PROBE_MAX_MS : r->backoff_ms * 2;
	r->next_probe_ms = vd_ev_now_ms(lb->ev) + r->backoff_ms;
}

void
lb_replica_remove(struct vd_lb *lb, struct replica *r)
{
	size_t i;

	for (i = 0; i < lb->nreps && lb->reps[i] != r; i++)
		;
	if (i == lb->nreps)
		return;
	memmove(&lb->reps[i], &lb->reps[i + 1], (lb->nreps - i - 1) * sizeof(*lb->reps));
	lb->nreps--;
	lb_pool_flush(r);
	if (r->drained)
		r->drained(r->drained_arg, r->name);
	free(r);
}

/* --------------------------------------------------------------- tick */

static void
check_client(struct vd_lb *lb, struct client *c, int64_t now)
{
	struct upstream *up = c->up;

	switch (c->state) {
	case C_IDLE:
		if (now - c->t_activity_ms > lb->cfg.idle_timeout_ms)
			lb_client_close(c);
		break;
	case C_HEAD:
		if (now - c->t_head_us / 1000 > lb->cfg.header_timeout_ms)
			lb_answer(c, 408, VD_LB_ERR_CLIENT_TIMEOUT);
		break;
	case C_UPSTREAM:
		if (!up)
			break;
		if (up->connecting && now - up->t_start_ms > lb->cfg.connect_timeout_ms)
			lb_upstream_failed(up, VD_LB_ERR_CONNECT, true);
		else if (!up->connecting && now - up->t_activity_ms > lb->cfg.response_timeout_ms)
			lb_answer(c, 504, VD_LB_ERR_REPLICA_TIMEOUT);
		break;
	case C_QUEUED:
	case C_CLOSING:
		break;
	}
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* The clients' patience: the median age of the requests whose clients left
 * in the last minute, once PATIENCE_MIN did; else not known. */
static void
learn_patience(struct vd_lb *lb, int64_t now)
{
	int64_t ages[PATIENCE_RING];
	size_t n = 0;

	for (unsigned i = 0; i < PATIENCE_RING && i < lb->nleft; i++)
		if (now - lb->left[i].at_us < 60000000)
			ages[n++] = lb->left[i].age_us;
	if (n < PATIENCE_MIN) {
		lb->patience_us = 0;
		return;
	}
	qsort(ages, n, sizeof(ages[0]), cmp_i64);
	lb->patience_us = ages[n / 2];
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
	learn_patience(lb, vd_ev_now_us(ev));
	while (lb->qhead && vd_ev_now_us(ev) - lb->qhead->t_queued_us > lb_queue_timeout_us(lb)) {
		c = lb->qhead;
		vd_hist_window_record(&lb->wait, now, (uint64_t)(vd_ev_now_us(ev) - c->t_queued_us));
		lb_answer(c, 504, VD_LB_ERR_QUEUE_TIMEOUT);
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
	cfg->listen_fd = -1;
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
	if (cfg->listen_fd >= 0 && !vd_net_is_listener(cfg->listen_fd, &sa)) {
		vd_error_set(err, VD_EXIT_FAILURE, "the inherited socket does not listen on %s:%d",
			     cfg->listen_host, cfg->listen_port);
		return NULL;
	}
	if (!(lb = calloc(1, sizeof(*lb)))) {
		vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
		return NULL;
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
	if (!lb->cfg.signal_span_ms)
		lb->cfg.signal_span_ms = 60000;
	if (!(lb->sig = vd_signals_new(lb->cfg.signal_span_ms, vd_ev_now_us(ev)))) {
		vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
		free(lb);
		return NULL;
	}
	/* lb->wait and lb->total are zeroed: empty windows (vd/hist.h) */
	lb->listener.fn = lb_accept_clients;
	lb->listener.fd = cfg->listen_fd >= 0
				  ? cfg->listen_fd
				  : socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lb->listener.fd < 0 ||
	    (cfg->listen_fd < 0 &&
	     (setsockopt(lb->listener.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	      bind(lb->listener.fd, (struct sockaddr *)&sa, len) < 0 ||
	      listen(lb->listener.fd, 4096) < 0)) ||
	    getsockname(lb->listener.fd, (struct sockaddr *)&sa, &len) < 0 ||
	    vd_ev_add(ev, &lb->listener, EPOLLIN) < 0) {
		vd_error_errno(err, errno, "cannot listen on %s:%d", cfg->listen_host,
			       cfg->listen_port);
		if (lb->listener.fd >= 0 && cfg->listen_fd < 0)
			close(lb->listener.fd);
		vd_signals_free(lb->sig);
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
		lb_client_close(lb->clients);
	for (size_t i = 0; i < lb->nreps; i++) {
		struct replica *r = lb->reps[i];

		while (r->idle) {
			struct upstream *up = r->idle;

			r->idle = up->next;
			lb_upstream_close(up);
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
	vd_signals_free(lb->sig);
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
			lb_client_close(c);
	}
	return -1;
}

void
vd_lb_shutdown(struct vd_lb *lb, int64_t grace_ms)
{
	if (!lb->stopping) {
		/* connections the kernel has taken already are served, not reset
		 * (none when the listener was passed on: they are the successor's) */
		if (lb->listener.fd >= 0) {
			while (lb_accept_one(lb))
				;
			vd_ev_del(lb->ev, &lb->listener);
			close(lb->listener.fd);
			lb->listener.fd = -1;
		}
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
	lb_pump_queue(lb);
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
		lb_replica_remove(lb, r);
	return 0;
}

void
vd_lb_signals(struct vd_lb *lb, int64_t span_ms, struct vd_signals_window *out)
{
	vd_signals_read(lb->sig, vd_ev_now_us(lb->ev), span_ms, out);
}

int
vd_lb_signals_span(struct vd_lb *lb, int64_t span_ms)
{
	struct vd_signals *s;

	if (span_ms <= vd_signals_span(lb->sig))
		return 0;
	if (!(s = vd_signals_new(span_ms, vd_ev_now_us(lb->ev))))
		return -1;
	vd_signals_free(lb->sig);
	lb->sig = s;
	lb_levels(lb);
	lb->cfg.signal_span_ms = span_ms;
	return 0;
}

void
vd_lb_on_waiting(struct vd_lb *lb, void (*fn)(void *arg), void *arg)
{
	lb->on_waiting = fn;
	lb->on_waiting_arg = arg;
}

static void
latency(const struct vd_window *w, int64_t now, int64_t span, struct vd_lb_latency *out)
{
	static struct vd_hist h; /* 11 KiB: not on the stack; one thread */

	vd_hist_window_read(w, now, span, &h);
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
	out->relayed = lb->relayed;
	out->relayed_us = lb->relayed_us;
	out->connections = lb->nclients;
	out->patience_ms = lb->patience_us / 1000;
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

int
vd_lb_listen_fd(const struct vd_lb *lb)
{
	return lb->listener.fd;
}

void
vd_lb_detach_listener(struct vd_lb *lb)
{
	if (lb->listener.fd < 0)
		return;
	vd_ev_del(lb->ev, &lb->listener);
	close(lb->listener.fd);
	lb->listener.fd = -1;
}
