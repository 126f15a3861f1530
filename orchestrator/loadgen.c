/*
 * The load generator's engine: virtual users on vdctl's event loop, one loop
 * a thread, sending HTTP/1.1 requests whose bytes were made when the
 * profile was read. See vd/loadgen.h.
 *
 * Open model: each thread walks the phases on its own clock and starts a
 * virtual user at each arrival, whatever the responses do; latency counts
 * from the arrival's due time, so a slow server shows as latency, not as
 * fewer requests (no coordinated omission). Closed model: users started at
 * spawn_rate loop over request, response, wait time until the duration is
 * over; latency counts from when the request goes on a connection.
 *
 * Either way, nothing is sent before it is due: the loop's timers count
 * whole milliseconds, so a wait or think time is placed on the first
 * millisecond at or after its due time (timer_at()), and a timer that still
 * comes early is set again. A latency therefore never starts before the
 * request could have been sent, and never comes out below the server's own
 * delay.
 *
 * Nothing on the path of a request allocates: users and connections come
 * from arrays sized at start, responses are parsed (http-parser, as in the
 * balancer) out of one read buffer per thread and thrown away, and timeouts
 * are a list in send order (every request has the same timeout), checked
 * every 10 ms. Counters and a histogram per thread are published once a
 * second into a ring shared under a mutex; a second is made into the
 * timeline (and the 10 s reports) once every thread has passed it.
 */
#include <errno.h>
#include <http_parser.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "vd/clock.h"
#include "vd/ev.h"
#include "vd/loadgen.h"

#define RING 64          /* seconds in flight between threads */
#define RBUF (64 << 10)  /* a thread's read buffer */
#define SWEEP_MS 10
#define SOURCES 32       /* loopback source addresses for many new connections */
#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

struct worker;

struct conn {
	struct vd_ev_handle h; /* first: the loop hands it back */
	struct worker *w;
	struct vuser *vu;         /* the user it serves, or NULL */
	struct conn *prev, *next; /* in flight, oldest first; else idle/free */
	http_parser hp;
	int64_t deadline_us;
	size_t sent;
	int err;                  /* for a failure found while connecting */
	bool inflight, reused, got_bytes, done, keep;
};

struct vuser {
	struct worker *w;
	const struct vd_load_scenario *sc;
	struct vuser *next; /* free list, or the queue for a pooled connection */
	struct conn *c;     /* own connection (own mode) or the one in use */
	size_t step;
	int req;
	int64_t due_us;      /* when the next step may run */
	int64_t start_us;    /* the current request's latency counts from here */
	int64_t deadline_us; /* while queued for a pooled connection */
	bool failed, retried;
};

struct slot {
	int64_t sec; /* -1: empty */
	struct vd_load_counts c;
	struct vd_hist h;
};

struct shared {
	const struct vd_load_profile *p;
	const struct vd_load_opts *o;
	struct vd_load_result *r;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	int64_t start_us;
	int nthreads;
	bool spread;    /* new connections from 127.0.0.1-32, for their ports */
	unsigned total_weight;
	atomic_bool stop;
	pthread_mutex_t mu;
	int64_t published[VD_LOAD_MAX_THREADS]; /* seconds before this are in */
	int64_t next_final, max_sec;
	size_t cap_secs;
	struct vd_load_counts period;
	struct vd_hist period_hist;
	int64_t period_from;
	struct slot ring[RING];
};

struct worker {
	struct shared *s;
	int index;
	pthread_t thread;
	struct vd_ev *ev;
	uint64_t rng;
	struct vuser *vusers, *free_vu;
	struct conn *conns, *free_conn, *idle;
	size_t nvusers, nconns, active;
	struct conn *fl_head, *fl_tail;  /* in flight */
	struct vuser *q_head, *q_tail;   /* waiting for a pooled connection */
	bool pool;
	unsigned next_source;
	/* open model */
	size_t phase;
	int64_t phase_start_us, next_us;
	double lam; /* the next arrival's place in the phase's count */
	bool arrivals_done;
	/* closed model */
	size_t users, spawned;
	int64_t end_us;
	/* this second */
	struct vd_load_counts cur;
	struct vd_hist cur_hist;
	int64_t cur_sec, cur_end_us;
	uint64_t *per_request;
	char rbuf[RBUF];
};

static void run_flow(struct vuser *vu);
static void user_done(struct vuser *vu);
static void start(struct conn *c, struct vuser *vu);

static const char *const err_names[] = { "ETIMEDOUT", "ECONNREFUSED", "ECONNRESET",
	"EADDRNOTAVAIL", "EPIPE", "EMFILE", "EPROTO", "EOTHER" };

const char *
vd_load_error_name(int kind)
{
	return kind >= 0 && kind < VD_LOAD_ERR_KINDS ? err_names[kind] : "?";
}

static int
err_kind(int e)
{
	switch (e) {
	case ETIMEDOUT: return VD_LOAD_ETIMEDOUT;
	case ECONNREFUSED: return VD_LOAD_ECONNREFUSED;
	case ECONNRESET: return VD_LOAD_ECONNRESET;
	case EADDRNOTAVAIL: return VD_LOAD_EADDRNOTAVAIL;
	case EPIPE: return VD_LOAD_EPIPE;
	case EMFILE: case ENFILE: return VD_LOAD_EMFILE;
	case EPROTO: return VD_LOAD_EPROTO;
	default: return VD_LOAD_EOTHER;
	}
}

void
vd_load_opts_init(struct vd_load_opts *o)
{
	*o = (struct vd_load_opts){ .threads = 1, .report_every_s = 10, .max_vusers = 10000,
				    .out = stdout };
}

/* ================================================================ numbers */

static uint64_t
rng_next(struct worker *w)
{
	uint64_t z = (w->rng += 0x9e3779b97f4a7c15ULL); /* splitmix64 */

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* uniform in (0, 1] */
static double
rng_unit(struct worker *w)
{
	return ((double)(rng_next(w) >> 11) + 1.0) / 9007199254740992.0;
}

static const struct vd_load_scenario *
pick_scenario(struct worker *w)
{
	const struct vd_load_profile *p = w->s->p;
	uint64_t x;

	if (p->nscenarios == 1)
		return &p->scenarios[0];
	x = rng_next(w) % w->s->total_weight;
	for (size_t i = 0;; i++) {
		if (x < p->scenarios[i].weight)
			return &p->scenarios[i];
		x -= p->scenarios[i].weight;
	}
}

/* ================================================================= stats */

static void
counts_add(struct vd_load_counts *d, const struct vd_load_counts *s)
{
	d->created += s->created;
	d->completed += s->completed;
	d->failed += s->failed;
	d->skipped += s->skipped;
	d->requests += s->requests;
	d->responses += s->responses;
	d->users += s->users;
	for (int k = 0; k < VD_LOAD_ERR_KINDS; k++)
		d->errors[k] += s->errors[k];
	for (int k = 100; k < VD_LOAD_CODES; k++)
		d->codes[k] += s->codes[k];
}

/* Make second SEC (all threads are past it) into the timeline. Under mu. */
static void
finalize(struct shared *s, int64_t sec)
{
	struct slot *sl = &s->ring[sec % RING];
	struct vd_load_result *r = s->r;
	struct vd_load_sec *e;

	if ((size_t)sec >= s->cap_secs) {
		size_t cap = s->cap_secs * 2 + 64;
		struct vd_load_sec *t = reallocarray(r->timeline, cap, sizeof(*t));

		if (!t)
			return; /* the timeline stops; the totals go on */
		r->timeline = t;
		s->cap_secs = cap;
	}
	e = &r->timeline[sec];
	memset(e, 0, sizeof(*e));
	r->nsecs = (size_t)sec + 1;
	if (sl->sec == sec) {
		e->c = sl->c;
		memset(e->c.codes, 0, sizeof(e->c.codes));
		for (int k = 100; k < VD_LOAD_CODES; k++)
			e->codes[k / 100] += sl->c.codes[k];
		e->min_us = sl->h.count ? sl->h.min_us : 0;
		e->p50_us = vd_hist_percentile(&sl->h, 50);
		e->p95_us = vd_hist_percentile(&sl->h, 95);
		e->p99_us = vd_hist_percentile(&sl->h, 99);
		e->max_us = sl->h.max_us;
		e->mean_us = vd_hist_mean(&sl->h);
		counts_add(&r->total, &sl->c);
		vd_hist_merge(&r->hist, &sl->h);
		counts_add(&s->period, &sl->c);
		s->period.users = sl->c.users;
		vd_hist_merge(&s->period_hist, &sl->h);
	}
	sl->sec = -1;
	if (s->o->out && s->o->report_every_s > 0 && (sec + 1) % s->o->report_every_s == 0) {
		fprintf(s->o->out, "--------------------------------------\n"
			"Metrics for period to: %llds (width: %llds)\n"
			"--------------------------------------\n\n",
			(long long)sec + 1, (long long)(sec + 1 - s->period_from));
		vd_load_print_counts(s->o->out, &s->period, &s->period_hist,
				     (double)(sec + 1 - s->period_from));
		fflush(s->o->out);
		memset(&s->period, 0, sizeof(s->period));
		vd_hist_reset(&s->period_hist);
		s->period_from = sec + 1;
	}
}

/* Hand this second's counts to the ring; FINAL: the thread is done. */
static void
publish(struct worker *w, int64_t now_us, bool final)
{
	struct shared *s = w->s;
	int64_t sec = (now_us - s->start_us) / 1000000, min = INT64_MAX;
	struct slot *sl;

	if (sec < 0)
		sec = 0;
	w->cur.users = w->active;
	pthread_mutex_lock(&s->mu);
	sl = &s->ring[w->cur_sec % RING];
	if (sl->sec != w->cur_sec) {
		memset(&sl->c, 0, sizeof(sl->c));
		vd_hist_reset(&sl->h);
		sl->sec = w->cur_sec;
	}
	counts_add(&sl->c, &w->cur);
	vd_hist_merge(&sl->h, &w->cur_hist);
	if (w->cur_sec > s->max_sec)
		s->max_sec = w->cur_sec;
	s->published[w->index] = final ? INT64_MAX : sec;
	for (int i = 0; i < s->nthreads; i++)
		if (s->published[i] < min)
			min = s->published[i];
	while (s->next_final < min && s->next_final <= s->max_sec)
		finalize(s, s->next_final++);
	pthread_mutex_unlock(&s->mu);
	memset(&w->cur, 0, sizeof(w->cur));
	vd_hist_reset(&w->cur_hist);
	w->cur_sec = sec;
	w->cur_end_us = s->start_us + (sec + 1) * 1000000;
}

/* The counters of the current second. */
static struct vd_load_counts *
stats(struct worker *w)
{
	int64_t now = vd_ev_now_us(w->ev);

	if (now >= w->cur_end_us)
		publish(w, now, false);
	return &w->cur;
}

static int64_t
on_publish(struct vd_ev *ev, void *arg)
{
	struct worker *w = arg;
	int64_t now = vd_ev_now_us(ev);

	if (now >= w->cur_end_us)
		publish(w, now, false);
	return (w->cur_end_us - now) / 1000 + 1;
}

/* ============================================================ connections */

static void
fl_remove(struct worker *w, struct conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		w->fl_head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		w->fl_tail = c->prev;
	c->prev = c->next = NULL;
	c->inflight = false;
}

static void
fl_append(struct worker *w, struct conn *c)
{
	c->deadline_us = vd_ev_now_us(w->ev) + w->s->p->timeout_ms * 1000;
	c->inflight = true;
	c->next = NULL;
	c->prev = w->fl_tail;
	if (w->fl_tail)
		w->fl_tail->next = c;
	else
		w->fl_head = c;
	w->fl_tail = c;
}

/* close() takes the fd out of epoll: no vd_ev_del() (a system call per
 * connection); events == 0 tells the loop the handle is gone. */
static void
close_fd(struct conn *c)
{
	if (c->h.fd < 0)
		return;
	c->h.events = 0;
	close(c->h.fd);
	c->h.fd = -1;
}

/* A pooled connection is free again (fd closed) or idle (fd open): give
 * it to the first waiting user, else keep it. */
static void
pool_release(struct worker *w, struct conn *c)
{
	struct vuser *vu = w->q_head;

	c->vu = NULL;
	if (vu) {
		w->q_head = vu->next;
		if (!w->q_head)
			w->q_tail = NULL;
		start(c, vu);
		return;
	}
	if (c->h.fd >= 0) {
		c->next = w->idle;
		w->idle = c;
	} else {
		c->next = w->free_conn;
		w->free_conn = c;
	}
}

/* The request on C failed with errno E: count it, close, end the flow. */
static void
fail(struct conn *c, int e)
{
	struct worker *w = c->w;
	struct vuser *vu = c->vu;

	stats(w)->errors[err_kind(e)]++;
	fl_remove(w, c);
	close_fd(c);
	if (w->pool)
		pool_release(w, c);
	vu->failed = true;
	user_done(vu);
}

static void
fail_deferred(void *arg)
{
	struct conn *c = arg;

	fail(c, c->err);
}

/* A reused keep-alive connection closed before answering: the server
 * dropped it while idle. Try once more on a new one, as browsers do. */
static void
lost(struct conn *c, int e)
{
	struct vuser *vu = c->vu;

	if (c->reused && !c->got_bytes && !vu->retried) {
		vu->retried = true;
		fl_remove(c->w, c);
		close_fd(c);
		start(c, vu);
		return;
	}
	fail(c, e);
}

static void
do_send(struct conn *c)
{
	const struct vd_load_request *rq = &c->w->s->p->requests[c->vu->req];
	ssize_t n = send(c->h.fd, rq->wire + c->sent, rq->wire_len - c->sent, MSG_NOSIGNAL);

	if (n < 0 && errno != EAGAIN && errno != EINTR && errno != ENOTCONN) {
		lost(c, errno);
		return;
	}
	if (n > 0)
		c->sent += (size_t)n;
}

static int
on_message_complete(http_parser *hp)
{
	struct conn *c = hp->data;

	c->done = true;
	c->keep = http_should_keep_alive(hp);
	http_parser_pause(hp, 1);
	return 0;
}

static const http_parser_settings parser_settings = {
	.on_message_complete = on_message_complete,
};

static void
complete(struct conn *c)
{
	struct worker *w = c->w;
	struct vuser *vu = c->vu;
	struct vd_load_counts *st = stats(w);
	int64_t now = vd_clock_us();
	unsigned code = c->hp.status_code;

	/* now, not the round's time: the response may have come in after the
	 * round began. start_us is a time already passed when the request was
	 * issued (never a due time still ahead), so this is never negative. */
	vd_hist_record(&w->cur_hist, (uint64_t)(now - vu->start_us));
	st->responses++;
	st->codes[code >= 100 && code < VD_LOAD_CODES ? code : 0]++;
	w->per_request[vu->req]++;
	fl_remove(w, c);
	if (!c->keep)
		close_fd(c);
	if (w->pool)
		pool_release(w, c);
	vu->retried = false;
	vu->due_us = now;
	run_flow(vu);
}

static void
do_read(struct conn *c)
{
	char *buf = c->w->rbuf;

	for (;;) {
		ssize_t n = recv(c->h.fd, buf, RBUF, 0);
		size_t used;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return; /* edge-triggered: read until here, or until done */
		if (n < 0) {
			lost(c, errno);
			return;
		}
		if (n > 0)
			c->got_bytes = true;
		used = http_parser_execute(&c->hp, &parser_settings, buf, (size_t)n);
		if (c->done) {
			c->keep &= used == (size_t)n && n > 0; /* nothing unasked for */
			complete(c);
			return;
		}
		if (HTTP_PARSER_ERRNO(&c->hp) != HPE_OK) {
			fail(c, EPROTO);
			return;
		}
		if (n == 0) {
			lost(c, ECONNRESET);
			return;
		}
	}
}

/* An idle keep-alive connection stays watched: the server closing it (or
 * saying anything unasked) closes it here, and the next request opens a
 * new one. */
static void
idle_read(struct conn *c)
{
	ssize_t n = recv(c->h.fd, c->w->rbuf, RBUF, 0);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	close_fd(c);
}

/* Sockets are watched edge-triggered for both directions from the connect
 * on, so that no request costs an epoll_ctl(). Events are hints: the state
 * comes from the socket calls (a failed connect shows in send()), so an
 * event left over from a connection closed earlier in the round does no
 * harm. */
static void
on_io(struct vd_ev *ev, struct vd_ev_handle *h, uint32_t events)
{
	struct conn *c = (struct conn *)h;
	size_t len;

	(void)ev;
	(void)events;
	if (!c->inflight) {
		idle_read(c);
		return;
	}
	len = c->w->s->p->requests[c->vu->req].wire_len;
	if (c->sent < len) {
		do_send(c);
		if (c->h.fd < 0 || !c->inflight || c->sent < len)
			return;
	}
	do_read(c);
}

static void
open_conn(struct conn *c)
{
	struct shared *s = c->w->s;
	int fd = socket(s->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;

	c->reused = false;
	if (fd < 0)
		goto failed;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->h.fd = fd;
	c->h.fn = on_io;
	c->h.events = 0;
	if (s->spread) {
		struct sockaddr_in src = { .sin_family = AF_INET };

		src.sin_addr.s_addr = htonl(0x7f000001 + c->w->next_source++ % SOURCES);
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0)
			goto failed;
	}
	if (connect(fd, (struct sockaddr *)&s->addr, s->addrlen) < 0 && errno != EINPROGRESS)
		goto failed;
	if (vd_ev_add(c->w->ev, &c->h, EPOLLIN | EPOLLOUT | EPOLLET) < 0)
		goto failed;
	return;
failed:
	/* failing here could start the next user's request, and so on: later */
	c->err = errno;
	close_fd(c);
	vd_ev_defer(c->w->ev, fail_deferred, c);
}

/* Send vu's request on C, connecting first when it has no socket. A
 * closed-model request's latency counts from here (a retry on a new
 * connection keeps the first attempt's start). */
static void
start(struct conn *c, struct vuser *vu)
{
	if (c->w->s->p->model == VD_LOAD_CLOSED && !vu->retried)
		vu->start_us = vd_clock_us();
	c->vu = vu;
	vu->c = c;
	c->sent = 0;
	c->got_bytes = c->done = false;
	http_parser_init(&c->hp, HTTP_RESPONSE);
	c->hp.data = c;
	fl_append(c->w, c);
	if (c->h.fd < 0) {
		open_conn(c);
	} else {
		c->reused = true;
		do_send(c);
	}
}

/* ================================================================== users */

static void
issue(struct vuser *vu, int req)
{
	struct worker *w = vu->w;
	struct conn *c;

	stats(w)->requests++;
	vu->req = req;
	vu->start_us = vu->due_us; /* the open model's; start() sets the closed one's */
	if (!w->pool) {
		start(vu->c, vu);
	} else if ((c = w->idle)) {
		w->idle = c->next;
		start(c, vu);
	} else if ((c = w->free_conn)) {
		w->free_conn = c->next;
		start(c, vu);
	} else {
		vu->next = NULL;
		vu->deadline_us = vd_ev_now_us(w->ev) + w->s->p->timeout_ms * 1000;
		if (w->q_tail)
			w->q_tail->next = vu;
		else
			w->q_head = vu;
		w->q_tail = vu;
	}
}

/* Call fn(arg) when the loop's clock reaches DUE_US, not before. The loop
 * fires a timer once its clock, in whole ms, reaches the ms it was set in
 * plus after_ms: counting from the start of the current ms, rounded up,
 * the timer cannot come before DUE_US (vd_ev_timer() reads the clock again,
 * later or in the same ms, which only moves it later). */
static int
timer_at(struct worker *w, int64_t due_us, vd_ev_timer_fn fn, void *arg)
{
	int64_t ms_start = vd_clock_us() / 1000 * 1000;

	return vd_ev_timer(w->ev, due_us > ms_start ? (due_us - ms_start + 999) / 1000 : 0,
			   fn, arg);
}

static int64_t
on_think(struct vd_ev *ev, void *arg)
{
	struct vuser *vu = arg;

	if (vd_ev_now_us(ev) < vu->due_us)
		timer_at(vu->w, vu->due_us, on_think, vu); /* early: not yet */
	else
		run_flow(vu);
	return -1;
}

/* Go on with the flow from vu->step; vu->due_us is when it is due (an
 * open-model request's latency counts from there). */
static void
run_flow(struct vuser *vu)
{
	while (vu->step < vu->sc->nsteps) {
		const struct vd_load_step *st = &vu->sc->steps[vu->step++];

		if (st->request >= 0) {
			issue(vu, st->request);
			return;
		}
		if (st->think_ms > 0) {
			vu->due_us = vd_ev_now_us(vu->w->ev) + st->think_ms * 1000;
			timer_at(vu->w, vu->due_us, on_think, vu);
			return;
		}
	}
	user_done(vu);
}

static void
maybe_finish(struct worker *w)
{
	bool started_all = w->s->p->model == VD_LOAD_OPEN ? w->arrivals_done :
							    w->spawned == w->users;

	if (started_all && w->active == 0)
		vd_ev_stop(w->ev);
}

static void
retire(struct vuser *vu)
{
	struct worker *w = vu->w;
	struct vd_load_counts *st = stats(w);

	if (!w->pool)
		close_fd(vu->c);
	if (vu->failed && w->s->p->model == VD_LOAD_OPEN)
		st->failed++;
	else
		st->completed++;
	vu->next = w->free_vu;
	w->free_vu = vu;
	w->active--;
	maybe_finish(w);
}

/* A closed-model user begins an iteration, unless the time is up. */
static void
iterate(struct vuser *vu)
{
	struct worker *w = vu->w;

	if (vd_ev_now_us(w->ev) >= w->end_us || atomic_load(&w->s->stop)) {
		retire(vu);
		return;
	}
	vu->sc = pick_scenario(w);
	vu->step = 0;
	vu->failed = vu->retried = false;
	run_flow(vu);
}

static int64_t
on_wait(struct vd_ev *ev, void *arg)
{
	struct vuser *vu = arg;

	if (vd_ev_now_us(ev) < vu->due_us)
		timer_at(vu->w, vu->due_us, on_wait, vu); /* early: not yet */
	else
		iterate(vu);
	return -1;
}

static void
user_done(struct vuser *vu)
{
	struct worker *w = vu->w;
	const struct vd_load_profile *p = w->s->p;
	int64_t now = vd_ev_now_us(w->ev), wait_ms;

	if (p->model == VD_LOAD_OPEN) {
		retire(vu);
		return;
	}
	wait_ms = p->wait_min_ms;
	if (p->wait_max_ms > p->wait_min_ms)
		wait_ms += (int64_t)(rng_next(w) % (uint64_t)(p->wait_max_ms - p->wait_min_ms + 1));
	if (vu->failed && wait_ms == 0)
		wait_ms = 1; /* a server that refuses is not to be hammered in a loop */
	if (now + wait_ms * 1000 >= w->end_us) {
		retire(vu);
	} else if (wait_ms == 0) {
		vu->due_us = now;
		iterate(vu);
	} else {
		vu->due_us = now + wait_ms * 1000;
		timer_at(w, vu->due_us, on_wait, vu);
	}
}

/* ========================================================== the schedule */

/* Find the next open-model arrival: w->next_us, or w->arrivals_done. In a
 * phase ramping from r0 to r1 (a thread's share) over D seconds, the
 * expected count by time t is L(t) = r0 t + (r1 - r0) t^2 / 2D; arrival k
 * comes when L reaches its place lam (k, or a sum of exponential draws
 * for Poisson arrivals), t = 2 lam / (r0 + sqrt(r0^2 + 2 (r1 - r0) lam / D)). */
static void
next_arrival(struct worker *w)
{
	const struct vd_load_profile *p = w->s->p;
	double nt = w->s->nthreads;
	bool poisson = p->arrivals == VD_LOAD_POISSON;

	while (w->phase < p->nphases) {
		const struct vd_load_phase *ph = &p->phases[w->phase];
		double d = (double)ph->duration_ms / 1000, r0 = ph->rate / nt, r1 = ph->ramp_to / nt;

		if (w->lam < (r0 + r1) / 2 * d) {
			double t = w->lam <= 0 ? 0 :
				   2 * w->lam / (r0 + sqrt(r0 * r0 + 2 * (r1 - r0) * w->lam / d));

			w->next_us = w->phase_start_us + (int64_t)(t * 1e6);
			w->lam += poisson ? -log(rng_unit(w)) : 1;
			return;
		}
		w->phase_start_us += ph->duration_ms * 1000;
		w->phase++;
		w->lam = poisson ? -log(rng_unit(w)) : w->index / nt;
	}
	w->arrivals_done = true;
}

static void
arrive(struct worker *w, int64_t due_us)
{
	const struct vd_load_phase *ph = &w->s->p->phases[w->phase];
	size_t cap = w->nvusers, nt = (size_t)w->s->nthreads;
	struct vuser *vu = w->free_vu;

	if (ph->max_vusers > 0 && ((size_t)ph->max_vusers + nt - 1) / nt < cap)
		cap = ((size_t)ph->max_vusers + nt - 1) / nt;
	if (!vu || w->active >= cap) {
		stats(w)->skipped++;
		return;
	}
	w->free_vu = vu->next;
	w->active++;
	stats(w)->created++;
	vu->sc = pick_scenario(w);
	vu->step = 0;
	vu->failed = vu->retried = false;
	vu->due_us = due_us;
	run_flow(vu);
}

/* When closed-model user number i of this thread starts. */
static int64_t
spawn_time(struct worker *w, size_t i)
{
	double global = (double)(i * (size_t)w->s->nthreads + (size_t)w->index);

	return w->s->start_us + (int64_t)(global * 1e6 / w->s->p->spawn_rate);
}

static int64_t
on_tick(struct vd_ev *ev, void *arg)
{
	struct worker *w = arg;
	int64_t now = vd_ev_now_us(ev), next;

	if (w->s->p->model == VD_LOAD_OPEN) {
		while (!w->arrivals_done && w->next_us <= now) {
			arrive(w, w->next_us);
			next_arrival(w);
		}
		next = w->arrivals_done ? -1 : w->next_us;
	} else {
		while (w->spawned < w->users && spawn_time(w, w->spawned) <= now) {
			struct vuser *vu = &w->vusers[w->spawned++];

			w->active++;
			stats(w)->created++;
			vu->due_us = now;
			iterate(vu);
		}
		next = w->spawned < w->users ? spawn_time(w, w->spawned) : -1;
	}
	if (next < 0) {
		maybe_finish(w);
		return -1;
	}
	return next - now < 1000 ? 1 : (next - now + 999) / 1000;
}

static int64_t
on_sweep(struct vd_ev *ev, void *arg)
{
	struct worker *w = arg;
	int64_t now = vd_ev_now_us(ev);

	if (atomic_load(&w->s->stop)) {
		vd_ev_stop(ev);
		return -1;
	}
	while (w->fl_head && w->fl_head->deadline_us <= now)
		fail(w->fl_head, ETIMEDOUT);
	while (w->q_head && w->q_head->deadline_us <= now) {
		struct vuser *vu = w->q_head;

		w->q_head = vu->next;
		if (!w->q_head)
			w->q_tail = NULL;
		stats(w)->errors[VD_LOAD_ETIMEDOUT]++;
		vu->failed = true;
		user_done(vu);
	}
	return SWEEP_MS;
}

/* ================================================================ threads */

static void
worker_release(struct worker *w)
{
	for (size_t i = 0; w->conns && i < w->nconns; i++)
		if (w->conns[i].h.fd >= 0)
			close(w->conns[i].h.fd);
	free(w->conns);
	free(w->vusers);
	free(w->per_request);
	vd_ev_free(w->ev);
}

static int
worker_init(struct worker *w, struct shared *s, int index, size_t nvusers, size_t nconns,
	    struct vd_error *err)
{
	const struct vd_load_profile *p = s->p;

	w->s = s;
	w->index = index;
	w->rng = (uint64_t)s->start_us * 31 + (uint64_t)index * 0x632be59bd9b4e019ULL;
	w->pool = p->keep_alive_pool > 0;
	w->nvusers = nvusers;
	w->nconns = nconns;
	w->vusers = calloc(nvusers ? nvusers : 1, sizeof(*w->vusers));
	w->conns = calloc(nconns ? nconns : 1, sizeof(*w->conns));
	w->per_request = calloc(p->nrequests, sizeof(*w->per_request));
	if (!w->vusers || !w->conns || !w->per_request)
		return vd_error_errno(err, ENOMEM, "cannot start the load");
	for (size_t i = 0; i < nconns; i++) {
		w->conns[i] = (struct conn){ .h.fd = -1, .w = w };
		if (w->pool) {
			w->conns[i].next = w->free_conn;
			w->free_conn = &w->conns[i];
		}
	}
	for (size_t i = nvusers; i-- > 0;) {
		w->vusers[i].w = w;
		w->vusers[i].c = w->pool ? NULL : &w->conns[i];
		w->vusers[i].next = w->free_vu;
		w->free_vu = &w->vusers[i];
	}
	if (p->model == VD_LOAD_CLOSED) {
		w->users = nvusers;
		w->end_us = s->start_us + p->duration_ms * 1000;
	} else {
		w->phase_start_us = s->start_us;
		w->lam = p->arrivals == VD_LOAD_POISSON ? -log(rng_unit(w)) :
			 (double)index / s->nthreads;
		next_arrival(w);
	}
	vd_hist_reset(&w->cur_hist);
	w->cur_end_us = s->start_us + 1000000;
	if (!w->ev && !(w->ev = vd_ev_new(err)))
		return -1;
	return 0;
}

static int
worker_run(struct worker *w)
{
	int64_t now_ms, first;
	int ret;

	/* the loop's clock was read when it was made: the first timers are
	 * placed from the shared start */
	now_ms = vd_ev_now_ms(w->ev);
	first = w->s->p->model == VD_LOAD_OPEN ? w->next_us : spawn_time(w, 0);
	first = first / 1000 - now_ms;
	if (vd_ev_timer(w->ev, first > 0 ? first : 0, on_tick, w) < 0 ||
	    vd_ev_timer(w->ev, SWEEP_MS, on_sweep, w) < 0 ||
	    vd_ev_timer(w->ev, (w->cur_end_us / 1000) - now_ms, on_publish, w) < 0)
		return -1;
	ret = vd_ev_run(w->ev);
	publish(w, vd_ev_now_us(w->ev), true);
	return ret;
}

static void *
worker_main(void *arg)
{
	worker_run(arg);
	return NULL;
}

/* ==================================================================== run */

static int
resolve(struct shared *s, const struct vd_load_profile *p, const struct vd_load_opts *o,
	struct vd_error *err)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
	char port[16];
	int rc;

	if (!o->allow_remote && !vd_load_host_is_loopback(p->host))
		return vd_error_set(err, VD_EXIT_INPUT, "target '%s' is not 127.0.0.1 or [::1]; "
				    "pass --allow-remote to load another host", p->target);
	snprintf(port, sizeof(port), "%d", p->port);
	rc = getaddrinfo(!strcmp(p->host, "localhost") ? "127.0.0.1" : p->host, port, &hints,
			 &ai);
	if (rc != 0)
		return vd_error_set(err, VD_EXIT_INPUT, "cannot resolve '%s': %s", p->host,
				    gai_strerror(rc));
	memcpy(&s->addr, ai->ai_addr, ai->ai_addrlen);
	s->addrlen = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

/* Over about 2,000 new connections a second the ports of one source
 * address run short (each waits in TIME_WAIT after its close, and connect()
 * searches longer and longer for a free one): for a target on 127.0.0.1,
 * spread new connections over the source addresses 127.0.0.1-32. */
static bool
spread_sources(const struct shared *s)
{
	const struct sockaddr_in *in = (const struct sockaddr_in *)&s->addr;
	double peak = 0;

	if (s->addr.ss_family != AF_INET || in->sin_addr.s_addr != htonl(0x7f000001) ||
	    s->p->keep_alive_pool > 0 || s->p->model != VD_LOAD_OPEN)
		return false;
	for (size_t i = 0; i < s->p->nphases; i++)
		peak = fmax(peak, fmax(s->p->phases[i].rate, s->p->phases[i].ramp_to));
	return peak > 2000;
}

/* Users (and connections) each thread needs at once, within the fds. */
static size_t
users_per_thread(const struct vd_load_profile *p, const struct vd_load_opts *o, int nt)
{
	struct rlimit rl;
	size_t want = 0, fds;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	getrlimit(RLIMIT_NOFILE, &rl);
	fds = rl.rlim_cur > 128 ? (size_t)(rl.rlim_cur - 64) : 64;
	if (p->model == VD_LOAD_CLOSED)
		return ((size_t)p->users + (size_t)nt - 1) / (size_t)nt;
	for (size_t i = 0; i < p->nphases; i++) {
		size_t m = p->phases[i].max_vusers > 0 ? (size_t)p->phases[i].max_vusers :
							 (size_t)o->max_vusers;
		if (m > want)
			want = m;
	}
	if (!p->keep_alive_pool && want > fds)
		want = fds;
	return (want + (size_t)nt - 1) / (size_t)nt;
}

int
vd_load_run(const struct vd_load_profile *p, const struct vd_load_opts *o,
	    struct vd_load_result *r, struct vd_error *err)
{
	struct shared *s;
	struct worker *w;
	int nt = o->threads > 0 ? o->threads : 1, ret = -1, sig;
	size_t nvu, nconns;

	memset(r, 0, sizeof(*r));
	vd_hist_reset(&r->hist);
	if (nt > VD_LOAD_MAX_THREADS)
		return vd_error_set(err, VD_EXIT_INPUT, "at most %d threads", VD_LOAD_MAX_THREADS);
	if (p->model == VD_LOAD_CLOSED && p->users < nt)
		nt = p->users;
	s = calloc(1, sizeof(*s));
	w = calloc((size_t)nt, sizeof(*w));
	r->per_request = calloc(p->nrequests ? p->nrequests : 1, sizeof(*r->per_request));
	if (!s || !w || !r->per_request) {
		free(s);
		free(w);
		return vd_error_errno(err, ENOMEM, "cannot start the load");
	}
	r->nrequests = p->nrequests;
	s->p = p;
	s->o = o;
	s->r = r;
	s->nthreads = nt;
	pthread_mutex_init(&s->mu, NULL);
	vd_hist_reset(&s->period_hist);
	for (int i = 0; i < RING; i++)
		s->ring[i].sec = -1;
	for (size_t i = 0; i < p->nscenarios; i++)
		s->total_weight += p->scenarios[i].weight;
	if (resolve(s, p, o, err) < 0)
		goto out;
	nvu = users_per_thread(p, o, nt);
	s->spread = spread_sources(s);
	nconns = p->keep_alive_pool > 0 ? ((size_t)p->keep_alive_pool + (size_t)nt - 1) /
						  (size_t)nt : nvu;
	/* the first loop takes SIGINT and SIGTERM, for every thread made after */
	if (!(w[0].ev = vd_ev_new(err)) || vd_ev_stop_on_signal(w[0].ev, SIGINT, err) < 0 ||
	    vd_ev_stop_on_signal(w[0].ev, SIGTERM, err) < 0)
		goto out;
	s->start_us = vd_clock_us() + 2000; /* time for the threads to set up */
	for (int i = 0; i < nt; i++) {
		size_t mine = nvu;

		if (p->model == VD_LOAD_CLOSED)
			mine = ((size_t)p->users - (size_t)i + (size_t)nt - 1) / (size_t)nt;
		if (worker_init(&w[i], s, i, mine, p->keep_alive_pool > 0 ? nconns : mine,
				err) < 0)
			goto out;
	}
	for (int i = 1; i < nt; i++) {
		if (pthread_create(&w[i].thread, NULL, worker_main, &w[i]) != 0) {
			atomic_store(&s->stop, true);
			for (int j = 1; j < i; j++)
				pthread_join(w[j].thread, NULL);
			vd_error_errno(err, errno, "cannot start a thread");
			goto out;
		}
	}
	sig = worker_run(&w[0]);
	if (sig > 0) {
		r->interrupted = true;
		atomic_store(&s->stop, true);
	}
	for (int i = 1; i < nt; i++)
		pthread_join(w[i].thread, NULL);
	r->elapsed_ms = (vd_clock_us() - s->start_us) / 1000;
	if (s->o->out && s->o->report_every_s > 0 &&
	    s->period.created + s->period.requests + s->period.skipped > 0) {
		fprintf(o->out, "--------------------------------------\n"
			"Metrics for period to: %llds (width: %llds)\n"
			"--------------------------------------\n\n",
			(long long)s->next_final, (long long)(s->next_final - s->period_from));
		vd_load_print_counts(o->out, &s->period, &s->period_hist,
				     (double)(s->next_final - s->period_from));
	}
	for (int i = 0; i < nt; i++)
		for (size_t k = 0; k < p->nrequests; k++)
			r->per_request[k] += w[i].per_request[k];
	ret = 0;
out:
	for (int i = 0; i < nt; i++)
		worker_release(&w[i]);
	pthread_mutex_destroy(&s->mu);
	free(w);
	free(s);
	if (ret < 0)
		vd_load_result_clear(r);
	return ret;
}

void
vd_load_result_clear(struct vd_load_result *r)
{
	free(r->per_request);
	free(r->timeline);
	memset(r, 0, sizeof(*r));
	vd_hist_reset(&r->hist);
}
