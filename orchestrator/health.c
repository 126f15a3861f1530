/*
 * Health checks: one implementation, a probe on the vd_ev loop
 * (vd_health_probe_start) that walks the steps of a check, connect, send
 * the request, read up to the status line, with one timer as its deadline.
 * The controller runs probes on its own loop; vd_health_wait() runs many of
 * them at once on a loop of its caller's for apply's health gate and for
 * `get`, and vd_health_check() is one of those.
 *
 * A probe has one timer at all times: its deadline, or a 0 ms one that
 * delivers a result known at the start (no address, no socket), so done() is
 * never called from inside vd_health_probe_start(). Every way out, done or
 * cancelled, goes through probe_close(): it takes the fd out of the loop,
 * closes it, cancels the timer, calls done() and frees the probe after the
 * round, since an event of the same round may still point at it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "vd/cleanup.h"
#include "vd/clock.h"
#include "vd/net.h"
#include "vd/health.h"

#define STATUS_MAX 256 /* a longer status line is not an answer */
#define DEFAULT_TIMEOUT_MS 1000

/* ------------------------------------------------- addresses and answers */

/* A non-blocking socket connecting to SS: the fd, or -1. */
static int
start_connect(const struct sockaddr_storage *ss, socklen_t len)
{
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (connect(fd, (const struct sockaddr *)ss, len) < 0 && errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Did the connect on fd succeed (once it is writable)? */
static bool
connected(int fd)
{
	int soerr = 0;
	socklen_t slen = sizeof(soerr);

	return getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &slen) == 0 && !soerr;
}

/* The GET of PATH ("/" when NULL) for HOST:PORT, to free(); NULL when out of
 * memory. */
static char *
http_request(const char *host, int port, const char *path, size_t *len)
{
	char *req;
	int n;

	n = asprintf(&req, "GET %s HTTP/1.1\r\nHost: %s%s%s:%d\r\nUser-Agent: vdctl-health\r\n"
		     "Connection: close\r\n\r\n", path ? path : "/", strchr(host, ':') ? "[" : "",
		     host, strchr(host, ':') ? "]" : "", port);
	if (n < 0)
		return NULL;
	*len = (size_t)n;
	return req;
}

/* What the first GOT bytes of an answer in BUF (SIZE bytes, GOT < SIZE) say:
 * a result, or -1 while the status line is incomplete and more may come. EOF
 * says no more will. The status line is all a check needs. */
static int
status_result(char *buf, size_t got, size_t size, bool eof, int *code)
{
	int status;

	if (got == 0)
		return eof ? VD_HEALTH_CLOSED : -1;
	if (strncmp(buf, "HTTP/", got < 5 ? got : 5) != 0)
		return VD_HEALTH_HTTP_BAD_REPLY;
	if (!memchr(buf, '\n', got))
		return eof || got >= size - 1 ? VD_HEALTH_HTTP_BAD_REPLY : -1;
	buf[got] = '\0';
	if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1 || status < 100 || status > 999)
		return VD_HEALTH_HTTP_BAD_REPLY;
	*code = status;
	return status >= 200 && status < 400 ? VD_HEALTH_OK : VD_HEALTH_HTTP_BAD_STATUS;
}

/* A replica's address: an IP literal and a port it was given (not 0). */
static int
replica_addr(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len)
{
	if (!host || port <= 0 || strcmp(host, "localhost") == 0)
		return -1;
	return vd_net_addr(host, port, ss, len);
}

const char *
vd_health_describe(enum vd_health_result r, int http_status, char *buf, size_t size)
{
	if (r != VD_HEALTH_HTTP_BAD_STATUS || http_status <= 0)
		snprintf(buf, size, "%s", vd_health_result_name(r));
	else
		snprintf(buf, size, "HTTP %d", http_status);
	return buf;
}

const char *
vd_health_result_name(enum vd_health_result r)
{
	static const char *const names[] = {
		[VD_HEALTH_OK] = "healthy",
		[VD_HEALTH_NO_ADDRESS] = "no address",
		[VD_HEALTH_CONNECT_FAIL] = "connection refused",
		[VD_HEALTH_TIMEOUT] = "timed out",
		[VD_HEALTH_HTTP_BAD_STATUS] = "bad HTTP status",
		[VD_HEALTH_HTTP_BAD_REPLY] = "not an HTTP answer",
		[VD_HEALTH_CLOSED] = "closed without answering",
	};

	return (unsigned)r < sizeof(names) / sizeof(names[0]) ? names[r] : "unknown";
}

/* ------------------------------------------------- the check on the loop */

enum pstate {
	P_CONNECTING, /* waiting for EPOLLOUT */
	P_SENDING,    /* the request, maybe in pieces */
	P_READING,    /* up to the status line */
	P_CLOSED,     /* done or cancelled; freed after the round */
};

struct vd_health_probe {
	struct vd_ev_handle h; /* first: the loop hands it back */
	struct vd_ev *ev;
	enum pstate state;
	enum vd_health_kind kind;
	enum vd_health_result result; /* what the timer delivers */
	int code;                     /* the HTTP status, once one came */
	int timer;                    /* 0: none */
	bool watched;                 /* the fd went into epoll at least once */
	vd_health_done_fn done;
	void *arg;
	char *req; /* HTTP only */
	size_t reqlen, sent, got;
	char resp[STATUS_MAX];
};

static void
probe_free(void *arg)
{
	struct vd_health_probe *p = arg;

	free(p->req);
	free(p);
}

/* The one way out: NOTIFY says whether done() hears of R. */
static void
probe_close(struct vd_health_probe *p, enum vd_health_result r, bool notify)
{
	if (p->state == P_CLOSED)
		return;
	p->state = P_CLOSED;
	if (p->h.fd >= 0) {
		vd_ev_del(p->ev, &p->h);
		close(p->h.fd);
		p->h.fd = -1;
	}
	if (p->timer > 0) {
		vd_ev_timer_cancel(p->ev, p->timer);
		p->timer = 0;
	}
	if (notify)
		p->done(p->arg, r, p->code);
	/* an event of this round may still point at the handle; with no room
	 * to defer, a probe whose fd was never watched can go at once, and one
	 * that was is left behind rather than risk a use after free */
	if (vd_ev_defer(p->ev, probe_free, p) < 0 && !p->watched)
		probe_free(p);
}

static int64_t
on_timer(struct vd_ev *ev, void *arg)
{
	struct vd_health_probe *p = arg;

	(void)ev;
	p->timer = 0; /* fired: not to be cancelled */
	probe_close(p, p->result, true);
	return -1;
}

/* Send what is left of the request; then wait for the answer. */
static void
probe_send(struct vd_health_probe *p)
{
	while (p->sent < p->reqlen) {
		ssize_t n = send(p->h.fd, p->req + p->sent, p->reqlen - p->sent, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return; /* EPOLLOUT again */
		if (n <= 0) {
			probe_close(p, VD_HEALTH_CLOSED, true);
			return;
		}
		p->sent += (size_t)n;
	}
	p->state = P_READING;
	if (vd_ev_set(p->ev, &p->h, EPOLLIN) < 0)
		probe_close(p, VD_HEALTH_CLOSED, true);
}

/* Read once (the loop is level-triggered) and see whether the status line
 * is whole. */
static void
probe_read(struct vd_health_probe *p)
{
	ssize_t n = recv(p->h.fd, p->resp + p->got, sizeof(p->resp) - 1 - p->got, 0);
	int res;

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0)
		p->got += (size_t)n;
	res = status_result(p->resp, p->got, sizeof(p->resp), n <= 0, &p->code);
	if (res >= 0)
		probe_close(p, (enum vd_health_result)res, true);
}

static void
on_io(struct vd_ev *ev, struct vd_ev_handle *h, uint32_t events)
{
	struct vd_health_probe *p = (struct vd_health_probe *)h;

	(void)ev;
	(void)events;
	switch (p->state) {
	case P_CONNECTING:
		if (!connected(p->h.fd)) {
			probe_close(p, VD_HEALTH_CONNECT_FAIL, true);
		} else if (p->kind == VD_HEALTH_TCP) {
			probe_close(p, VD_HEALTH_OK, true);
		} else {
			p->state = P_SENDING;
			probe_send(p);
		}
		break;
	case P_SENDING:
		probe_send(p);
		break;
	case P_READING:
		probe_read(p);
		break;
	case P_CLOSED:
		break;
	}
}

struct vd_health_probe *
vd_health_probe_start(struct vd_ev *ev, const struct vd_health_spec *spec, const char *host,
		      int port, vd_health_done_fn done, void *arg)
{
	struct vd_health_probe *p = calloc(1, sizeof(*p));
	struct sockaddr_storage ss;
	socklen_t len;
	int64_t after;

	if (!p)
		return NULL;
	p->h.fd = -1;
	p->h.fn = on_io;
	p->ev = ev;
	p->kind = spec->kind;
	p->done = done;
	p->arg = arg;
	p->result = VD_HEALTH_TIMEOUT;
	after = spec->timeout_ms > 0 ? spec->timeout_ms : DEFAULT_TIMEOUT_MS;
	if (replica_addr(host, port, &ss, &len) < 0) {
		p->result = VD_HEALTH_NO_ADDRESS;
		after = 0;
	} else if (p->kind == VD_HEALTH_HTTP &&
		   !(p->req = http_request(host, port, spec->http_path, &p->reqlen))) {
		free(p);
		return NULL;
	} else if ((p->h.fd = start_connect(&ss, len)) < 0 ||
		   vd_ev_add(ev, &p->h, EPOLLOUT) < 0) {
		/* no socket, refused at once, or the loop cannot take it */
		if (p->h.fd >= 0)
			close(p->h.fd);
		p->h.fd = -1;
		p->h.events = 0;
		p->result = VD_HEALTH_CONNECT_FAIL;
		after = 0;
	} else {
		p->watched = true;
	}
	p->timer = vd_ev_timer(ev, after, on_timer, p);
	if (p->timer < 0) {
		p->timer = 0;
		if (p->h.fd >= 0) {
			vd_ev_del(ev, &p->h);
			close(p->h.fd);
		}
		probe_free(p);
		return NULL;
	}
	return p;
}

void
vd_health_probe_cancel(struct vd_health_probe *p)
{
	if (p)
		probe_close(p, VD_HEALTH_OK, false);
}

/* -------------------------------------------------- many checks, waiting */

/*
 * Probes in flight at once: a thousand connects at the same moment, each
 * through its own docker-proxy, time out by the hundred on two cores and
 * are checked again (a no-op apply of 1,000 replicas took 13 s that way,
 * against 3.1 s 32 at a time: tests/bench/apply.sh). The rest wait
 * their turn in a queue, their deadline not yet started.
 */
#define WAIT_IN_FLIGHT 32

struct waiting {
	struct vd_ev *ev;
	struct vd_health_target *t;
	size_t n, pending;
	size_t inflight;
	struct slot **queue; /* slots due a check, in turn: a ring of n */
	size_t qhead, qlen;
	int64_t until_ms; /* 0: one check each */
	int retry_ms, timeout_ms;
	vd_health_pass_fn on_pass;
	void *arg;
	struct slot {
		struct waiting *w;
		struct vd_health_probe *probe;
		int timer;
	} *slots;
	int passed;
};

static void start_slot(struct slot *s);

/* A check of S is due: now, or when one in flight ends. */
static void
due_slot(struct slot *s)
{
	struct waiting *w = s->w;

	if (w->inflight < WAIT_IN_FLIGHT)
		start_slot(s);
	else
		w->queue[(w->qhead + w->qlen++) % w->n] = s;
}

/* A check ended: the next in the queue takes its place (and the one after
 * it, should that one fail to start). */
static void
check_ended(struct waiting *w)
{
	w->inflight--;
	while (w->qlen && w->inflight < WAIT_IN_FLIGHT) {
		struct slot *s = w->queue[w->qhead];

		w->qhead = (w->qhead + 1) % w->n;
		w->qlen--;
		start_slot(s);
	}
}

static int64_t
retry_slot(struct vd_ev *ev, void *arg)
{
	struct slot *s = arg;

	(void)ev;
	s->timer = 0;
	due_slot(s);
	return -1;
}

static void
slot_over(struct waiting *w)
{
	if (--w->pending == 0)
		vd_ev_stop(w->ev);
}

static void
slot_done(void *arg, enum vd_health_result r, int code)
{
	struct slot *s = arg;
	struct waiting *w = s->w;
	struct vd_health_target *t = &w->t[s - w->slots];

	s->probe = NULL;
	t->result = r;
	t->http_status = code;
	check_ended(w);
	if (r == VD_HEALTH_OK) {
		t->healthy = true;
		w->passed++;
		if (w->on_pass)
			w->on_pass(w->arg, (size_t)(s - w->slots));
		slot_over(w);
	} else if (w->until_ms && vd_clock_ms() + w->retry_ms < w->until_ms &&
		   (s->timer = vd_ev_timer(w->ev, w->retry_ms, retry_slot, s)) > 0) {
		return; /* again, a little later */
	} else {
		s->timer = 0;
		slot_over(w);
	}
}

static void
start_slot(struct slot *s)
{
	struct waiting *w = s->w;
	struct vd_health_target *t = &w->t[s - w->slots];
	const struct vd_service *svc = t->svc;
	struct vd_health_spec spec = { svc->health.kind, svc->health.http_path,
				       w->timeout_ms > 0 ? w->timeout_ms : svc->health.timeout_ms };

	if (!(s->probe = vd_health_probe_start(w->ev, &spec, t->host, t->port, slot_done, s))) {
		t->result = VD_HEALTH_CLOSED; /* out of memory: a failed check */
		slot_over(w);
		return;
	}
	w->inflight++;
}

/* The whole wait is over: whatever is still under way is not needed. */
static int64_t
give_up(struct vd_ev *ev, void *arg)
{
	(void)arg;
	vd_ev_stop(ev);
	return -1;
}

int
vd_health_wait(struct vd_health_target *t, size_t n, int64_t until_ms, int retry_ms,
	       int timeout_ms, vd_health_pass_fn on_pass, void *arg)
{
	struct vd_error err = VD_ERROR_INIT;
	struct waiting w = { .t = t, .n = n, .pending = n, .until_ms = until_ms,
			     .retry_ms = retry_ms > 0 ? retry_ms : 20, .timeout_ms = timeout_ms,
			     .on_pass = on_pass, .arg = arg };
	int64_t left = until_ms - vd_clock_ms();

	for (size_t i = 0; i < n; i++) {
		t[i].healthy = false;
		t[i].result = VD_HEALTH_TIMEOUT;
	}
	if (n == 0)
		return 0;
	if (!(w.ev = vd_ev_new(&err)) || !(w.slots = calloc(n, sizeof(*w.slots))) ||
	    !(w.queue = calloc(n, sizeof(*w.queue)))) {
		vd_ev_free(w.ev);
		free(w.slots);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		w.slots[i].w = &w;
		due_slot(&w.slots[i]);
	}
	if (w.pending && (!until_ms || vd_ev_timer(w.ev, left > 0 ? left : 0, give_up, NULL) > 0))
		vd_ev_run(w.ev);
	for (size_t i = 0; i < n; i++) {
		if (w.slots[i].probe)
			vd_health_probe_cancel(w.slots[i].probe);
		if (w.slots[i].timer > 0)
			vd_ev_timer_cancel(w.ev, w.slots[i].timer);
	}
	vd_ev_free(w.ev); /* frees the cancelled probes */
	free(w.queue);
	free(w.slots);
	return w.passed;
}

enum vd_health_result
vd_health_check(const struct vd_service *svc, const char *host, int port, int timeout_ms)
{
	struct vd_health_target t = { svc, host, port, VD_HEALTH_TIMEOUT, 0, false };

	if (vd_health_wait(&t, 1, 0, 0, timeout_ms, NULL, NULL) < 0)
		return VD_HEALTH_CLOSED;
	return t.result;
}
