/*
 * The event loop (orchestrator/ev.c): timers fire in order, once, and again
 * when their callback asks; cancel works before the loop runs and inside a
 * round; deferred work runs after the round; ready fds dispatch to their
 * handle; vd_ev_set/del change what is watched; vd_ev_stop and stop signals
 * end vd_ev_run; the loop's clock moves.
 *
 * Each test runs the loop in the main thread with a guard timer that stops
 * it after LIMIT_MS and fails the test. No assertion puts an upper bound on
 * a duration: a timer fires no earlier than asked, and that is all.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vdtest.h"
#include "vd/clock.h"
#include "vd/ev.h"

#define LIMIT_MS 30000 /* a run of the loop that takes longer fails */
#define MAX_LOG 64

/* What callbacks saw, in order: a tag each ('A', 'B', 'd' for deferred
 * work ...) and the loop's clock at that moment. */
static struct {
	struct vd_ev *ev;
	char log[MAX_LOG + 1];
	int64_t at_ms[MAX_LOG];
	size_t n;
	bool guard_fired;
} fx;

static void
note(char tag)
{
	assert_true(fx.n < MAX_LOG);
	fx.at_ms[fx.n] = vd_ev_now_ms(fx.ev);
	fx.log[fx.n++] = tag;
	fx.log[fx.n] = '\0';
}

static size_t
count(char tag)
{
	size_t k = 0;

	for (size_t i = 0; i < fx.n; i++)
		k += fx.log[i] == tag;
	return k;
}

static int
setup(void **state)
{
	struct vd_error err = VD_ERROR_INIT;

	(void)state;
	memset(&fx, 0, sizeof(fx));
	fx.ev = vd_ev_new(&err);
	if (!fx.ev)
		fprintf(stderr, "vd_ev_new: %s\n", err.msg);
	return fx.ev ? 0 : -1;
}

static int
teardown(void **state)
{
	(void)state;
	vd_ev_free(fx.ev);
	fx.ev = NULL;
	return 0;
}

static int64_t
on_guard(struct vd_ev *ev, void *arg)
{
	(void)arg;
	fx.guard_fired = true;
	vd_ev_stop(ev);
	return -1;
}

/* vd_ev_run() bounded by LIMIT_MS; returns what it returned. */
static int
run_bounded(void)
{
	int guard = vd_ev_timer(fx.ev, LIMIT_MS, on_guard, NULL);
	int ret;

	assert_true(guard > 0);
	ret = vd_ev_run(fx.ev);
	vd_ev_timer_cancel(fx.ev, guard);
	if (fx.guard_fired)
		fail_msg("the loop ran for %d ms; callbacks so far: '%s'", LIMIT_MS, fx.log);
	return ret;
}

/* Timer callbacks: note the tag (arg), stop, or both. */
#define TAG(c) ((void *)(intptr_t)(c))

static int64_t
on_note(struct vd_ev *ev, void *arg)
{
	(void)ev;
	note((char)(intptr_t)arg);
	return -1;
}

static int64_t
on_stop(struct vd_ev *ev, void *arg)
{
	(void)arg;
	note('S');
	vd_ev_stop(ev);
	return -1;
}

/* ------------------------------------------------------------- timers */

static void
test_timers_in_order_once(void **state)
{
	static const struct {
		int64_t after;
		char tag;
	} t[] = { { 30, 'D' }, { 10, 'B' }, { 0, 'A' }, { 20, 'C' }, { 40, 'E' } };
	int64_t due[5];
	size_t k[5];

	(void)state;
	for (size_t i = 0; i < 5; i++) {
		assert_true(vd_ev_timer(fx.ev, t[i].after, on_note, TAG(t[i].tag)) > 0);
		/* the clock it counted from: vd_ev_timer() reads it */
		due[i] = vd_ev_now_ms(fx.ev) + t[i].after;
	}
	assert_true(vd_ev_timer(fx.ev, 60, on_stop, NULL) > 0);
	assert_int_equal(run_bounded(), 0);
	assert_int_equal(fx.n, 6);
	assert_int_equal(fx.log[5], 'S');

	/* each once, none earlier than asked, in the order they were due
	 * ("ABCDE" but for a machine so loaded that setting them took ms) */
	for (size_t i = 0; i < 5; i++) {
		assert_int_equal(count(t[i].tag), 1);
		k[i] = (size_t)(strchr(fx.log, t[i].tag) - fx.log);
		assert_true(fx.at_ms[k[i]] >= due[i]);
	}
	for (size_t i = 0; i < 5; i++)
		for (size_t j = 0; j < 5; j++)
			if (due[i] < due[j])
				assert_true(k[i] < k[j]);

	/* and once: another run sees only its own stop timer */
	assert_true(vd_ev_timer(fx.ev, 30, on_stop, NULL) > 0);
	assert_int_equal(run_bounded(), 0);
	assert_int_equal(fx.n, 7);
	assert_int_equal(fx.log[6], 'S');
}

/* A timer set long after the loop last read its clock (here, by a slow
 * callback) counts from the moment it is set, not from that reading, even
 * when an fd wakes the loop at once. */
static int wake[2] = { -1, -1 };
static int64_t set_at_ms;

static void
on_drain(struct vd_ev *ev, struct vd_ev_handle *h, uint32_t events)
{
	char buf[16];

	(void)ev;
	(void)events;
	while (read(h->fd, buf, sizeof(buf)) > 0)
		;
}

static int64_t
on_slow(struct vd_ev *ev, void *arg)
{
	struct timespec pause = { 0, 60 * 1000 * 1000 };

	(void)arg;
	nanosleep(&pause, NULL);
	set_at_ms = vd_clock_ms();
	assert_true(vd_ev_timer(ev, 30, on_stop, NULL) > 0);
	assert_int_equal(write(wake[1], "x", 1), 1);
	return -1;
}

static void
test_timer_counts_from_now(void **state)
{
	struct vd_ev_handle h = { .fn = on_drain };

	(void)state;
	assert_int_equal(pipe2(wake, O_NONBLOCK | O_CLOEXEC), 0);
	h.fd = wake[0];
	assert_int_equal(vd_ev_add(fx.ev, &h, EPOLLIN), 0);
	assert_true(vd_ev_timer(fx.ev, 0, on_slow, NULL) > 0);
	assert_int_equal(run_bounded(), 0);
	assert_string_equal(fx.log, "S");
	assert_true(fx.at_ms[0] >= set_at_ms + 30);
	vd_ev_del(fx.ev, &h);
	close(wake[0]);
	close(wake[1]);
}

/* Returns 10 ms four times, then -1. */
static int64_t
on_rearm(struct vd_ev *ev, void *arg)
{
	(void)arg;
	note('R');
	if (count('R') < 5)
		return 10;
	vd_ev_stop(ev);
	return -1;
}

static void
test_timer_rearms(void **state)
{
	(void)state;
	assert_true(vd_ev_timer(fx.ev, 10, on_rearm, NULL) > 0);
	assert_int_equal(run_bounded(), 0);
	assert_string_equal(fx.log, "RRRRR");
	for (size_t i = 1; i < fx.n; i++)
		assert_true(fx.at_ms[i] >= fx.at_ms[i - 1] + 10);

	/* -1 was the end of it */
	assert_true(vd_ev_timer(fx.ev, 50, on_stop, NULL) > 0);
	assert_int_equal(run_bounded(), 0);
	assert_string_equal(fx.log, "RRRRRS");
}

/* Returns 0 (the next round) twice, then -1. */
static int64_t
on_zero(struct vd_ev *ev, void *arg)
{
	(void)arg;
	note('Z');
	if (count('Z') < 3)
		return 0;
	vd_ev_stop(ev);
	return -1;
}

static void
test_timer_zero_is_next_round(void **state)
{
	(void)state;
	assert_true(vd_ev_timer(fx.ev, 0, on_zero, NULL) > 0);
	assert_int_equal(run_bounded(), 0);
	assert_string_equal(fx.log, "ZZZ");
	/* not again within the round that ran it: the clock moved between */
	assert_true(fx.at_ms[1] > fx.at_ms[0]);
	assert_true(fx.at_ms[2] > fx.at_ms[1]);
}

static void
test_cancel_before_run(void **state)
{
	int id;

	(void)state;
	id = vd_ev_timer(fx.ev, 10, on_note, TAG('A'));
	assert_true(id > 0);
	assert_true(vd_ev_timer(fx.ev, 20, on_note, TAG('B')) > 0);
	vd_ev_timer_cancel(fx.ev, id);
	vd_ev_timer_cancel(fx.ev, id);     /* twice is harmless */
	vd_ev_timer_cancel(fx.ev, 999999); /* so is an unknown id */
	assert_true(vd_ev_timer(fx.ev, 50, on_stop, NULL) > 0);
	assert_int_equal(run_bounded(), 0);
	assert_string_equal(fx.log, "BS");
}

/* Two timers due in the same round, each cancelling the other: whichever
 * runs first, the other must not. */
static int ids[2];

static int64_t
on_cancel_other(struct vd_ev *ev, void *arg)
{
	int me = (int)(intptr_t)arg;

	note(me ? 'Y' : 'X');
	vd_ev_timer_cancel(ev, ids[!me]);
	return -1;
}

static void
test_cancel_inside_round(void **state)
{
	(void)state;
	/* after 0 ms, both are due in the loop's first round */
	ids[0] = vd_ev_timer(fx.ev, 0, on_cancel_other, TAG(0));
	ids[1] = vd_ev_timer(fx.ev, 0, on_cancel_other, TAG(1));
	assert_true(ids[0] > 0 && ids[1] > 0 && ids[0] != ids[1]);
	assert_true(vd_ev_timer(fx.ev, 30, on_stop, NULL) > 0);
	assert_int_equal(run_bounded(), 0);
	assert_int_equal(fx.n, 2);
	assert_int_equal(count('X') + count('Y'), 1);
	assert_int_equal(count('S'), 1);
}

/* Cancelling a timer from its own callback, then asking for it again,
 * re-arms it: the return value decides. */
static int self_id;

static int64_t
on_cancel_self(struct vd_ev *ev, void *arg)
{
	(void)arg;
	note('C');
	vd_ev_timer_cancel(ev, self_id);
	if (count('C') == 2) {
		vd_ev_stop(ev);
		return -1;
	}
	return 5;
}

static void
test_cancel_self_then_rearm(void **state)
{
	(void)state;
	self_id = vd_ev_timer(fx.ev, 0, on_cancel_self, NULL);
	assert_true(self_id > 0);
	assert_int_equal(run_bounded(), 0);
	assert_string_equal(fx.log, "CC");
}

/* ----------------------------------------------------------- deferred */

static void
on_deferred(void *arg)
{
	note((char)(intptr_t)arg);
}

static void
on_deferred_stop(void *arg)
{
	(void)arg;
	note('S');
	vd_ev_stop(fx.ev);
}

/* Defers 'd' and notes 'T'. */
static int64_t
on_timer_defers(struct vd_ev *ev, void *arg)
{
	(void)arg;
	assert_int_equal(vd_ev_defer(ev, on_deferred, TAG('d')), 0);
	note('T');
	return -1;
}

static void
test_defer_after_round(void **state)
{
	(void)state;
	/* due in the same round: both timers run before either deferral */
	assert_true(vd_ev_timer(fx.ev, 0, on_timer_defers, NULL) > 0);
	assert_true(vd_ev_timer(fx.ev, 0, on_timer_defers, NULL) > 0);
	assert_true(vd_ev_timer(fx.ev, 30, on_stop, NULL) > 0);
	assert_int_equal(run_bounded(), 0);
	assert_string_equal(fx.log, "TTddS");
}

/* Deferred work that defers more: it runs in the same pass. */
static void
on_deferred_chain(void *arg)
{
	(void)arg;
	note('c');
	assert_int_equal(vd_ev_defer(fx.ev, on_deferred, TAG('e')), 0);
	assert_int_equal(vd_ev_defer(fx.ev, on_deferred_stop, NULL), 0);
}

static void
test_defer_before_run_and_chained(void **state)
{
	(void)state;
	/* deferred before the loop runs: its first round runs it */
	assert_int_equal(vd_ev_defer(fx.ev, on_deferred_chain, NULL), 0);
	assert_int_equal(run_bounded(), 0);
	assert_string_equal(fx.log, "ceS");
}

static void
on_count(void *arg)
{
	++*(int *)arg;
}

static void
test_free_runs_deferred(void **state)
{
	int ran = 0;

	(void)state;
	/* many, past the first allocation */
	for (int i = 0; i < 200; i++)
		assert_int_equal(vd_ev_defer(fx.ev, on_count, &ran), 0);
	assert_int_equal(ran, 0);
	vd_ev_free(fx.ev);
	fx.ev = NULL;
	assert_int_equal(ran, 200);
}

/* ----------------------------------------------------------------- fds */

struct conn {
	int other; /* something before the handle: dispatch must not assume */
	struct vd_ev_handle h;
	int rfd, wfd;
	char tag;
	uint32_t got;
	int calls;
};

static struct conn *
conn_of(struct vd_ev_handle *h)
{
	return (struct conn *)(void *)((char *)h - offsetof(struct conn, h));
}

static void
conn_open(struct conn *c, char tag)
{
	int p[2];

	assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
	memset(c, 0, sizeof(*c));
	c->rfd = p[0];
	c->wfd = p[1];
	c->h.fd = p[0];
	c->tag = tag;
}

static void
conn_close(struct conn *c)
{
	vd_ev_del(fx.ev, &c->h);
	if (c->rfd >= 0)
		close(c->rfd);
	if (c->wfd >= 0)
		close(c->wfd);
	c->rfd = c->wfd = -1;
}

/* Reads what is there, notes the tag. */
static void
on_readable(struct vd_ev *ev, struct vd_ev_handle *h, uint32_t events)
{
	struct conn *c = conn_of(h);
	char buf[64];

	(void)ev;
	assert_ptr_equal(&c->h, h);
	c->got |= events;
	c->calls++;
	while (read(h->fd, buf, sizeof(buf)) > 0)
		;
	note(c->tag);
}

static void
test_fd_dispatch(void **state)
{
	struct conn c;

	(void)state;
	conn_open(&c, 'r');
	c.h.fn = on_readable;
	assert_int_equal(vd_ev_add(fx.ev, &c.h, EPOLLIN), 0);
	assert_int_equal(c.h.events, EPOLLIN);

	/* nothing to read: no call */
	assert_true(vd_ev_timer(fx.ev, 20, on_stop, NULL) > 0);
	assert_int_equal(run_bounded(), 0);
	assert_string_equal(fx.log, "S");

	assert_int_equal(write(c.wfd, "x", 1), 1);
	assert_true(vd_ev_timer(fx.ev, 20, on_stop, NULL) > 0);
	assert_int_equal(run_bounded(), 0);
	assert_string_equal(fx.log, "SrS");
	assert_true(c.got & EPOLLIN);

	/* the writer goes: a hang-up */
	close(c.wfd);
	c.wfd = -1;
	c.got = 0;
	assert_true(vd_ev_timer(fx.ev, 0, on_stop, NULL) > 0);
	assert_int_equal(run_bounded(), 0);
	assert_true(c.got & EPOLLHUP);
	conn_close(&c);
}

static void
on_writable(struct vd_ev *ev, struct vd_ev_handle *h, uint32_t events)
{
	struct conn *c = conn_of(h);

	c->got |= events;
	c->calls++;
	note(c->tag);
	vd_ev_stop(ev);
}

static void
test_fd_writable(void **state)
{
	struct conn c;

	(void)state;
	conn_open(&c, 'w');
	c.h.fd = c.wfd;
	c.h.fn = on_writable;
	assert_int_equal(vd_ev_add(fx.ev, &c.h, EPOLLOUT), 0);
	assert_int_equal(run_bounded(), 0);
	assert_string_equal(fx.log, "w");
	assert_true(c.got & EPOLLOUT);
	conn_close(&c);
}

static void
test_set_and_del(void **state)
{
	struct conn c;

	(void)state;
	conn_open(&c, 'r');
	c.h.fn = on_readable;
	assert_int_equal(vd_ev_add(fx.ev, &c.h, EPOLLIN), 0);
	assert_int_equal(write(c.wfd, "x", 1), 1);

	/* watching nothing: readable, but no call */
	assert_int_equal(vd_ev_set(fx.ev, &c.h, 0), 0);
	assert_int_equal(c.h.events, 0);
	assert_int_equal(vd_ev_set(fx.ev, &c.h, 0), 0); /* the same again: a no-op */
	assert_true(vd_ev_timer(fx.ev, 20, on_stop, NULL) > 0);
	assert_int_equal(run_bounded(), 0);
	assert_string_equal(fx.log, "S");

	/* watched again: the byte still waiting is seen */
	assert_int_equal(vd_ev_set(fx.ev, &c.h, EPOLLIN), 0);
	assert_int_equal(vd_ev_set(fx.ev, &c.h, EPOLLIN), 0);
	assert_int_equal(c.h.events, EPOLLIN);
	assert_true(vd_ev_timer(fx.ev, 20, on_stop, NULL) > 0);
	assert_int_equal(run_bounded(), 0);
	assert_string_equal(fx.log, "SrS");

	/* a change of mask on a watched fd */
	assert_int_equal(vd_ev_set(fx.ev, &c.h, EPOLLIN | EPOLLRDHUP), 0);
	assert_int_equal(c.h.events, EPOLLIN | EPOLLRDHUP);

	/* deleted: no call, though readable; del twice is harmless */
	vd_ev_del(fx.ev, &c.h);
	assert_int_equal(c.h.events, 0);
	vd_ev_del(fx.ev, &c.h);
	assert_int_equal(write(c.wfd, "y", 1), 1);
	assert_true(vd_ev_timer(fx.ev, 20, on_stop, NULL) > 0);
	assert_int_equal(run_bounded(), 0);
	assert_string_equal(fx.log, "SrSS");

	/* added again after a del */
	assert_int_equal(vd_ev_add(fx.ev, &c.h, EPOLLIN), 0);
	assert_true(vd_ev_timer(fx.ev, 20, on_stop, NULL) > 0);
	assert_int_equal(run_bounded(), 0);
	assert_string_equal(fx.log, "SrSSrS");
	conn_close(&c);
}

/* Two ready fds in one round, each pausing the other (vd_ev_set 0) or
 * deleting it: the second is not called in that round. */
static struct conn pair[2];

static void
on_pause_other(struct vd_ev *ev, struct vd_ev_handle *h, uint32_t events)
{
	struct conn *c = conn_of(h);
	struct conn *o = &pair[c == &pair[0]];

	(void)events;
	note(c->tag);
	if (c->tag == 'p' || c->tag == 'q')
		vd_ev_set(ev, &o->h, 0);
	else
		vd_ev_del(ev, &o->h);
	/* stop after the round, so the loop itself skips the other */
	vd_ev_defer(ev, on_deferred_stop, NULL);
}

static void
pause_pair(char t0, char t1)
{
	conn_open(&pair[0], t0);
	conn_open(&pair[1], t1);
	for (int i = 0; i < 2; i++) {
		pair[i].h.fn = on_pause_other;
		assert_int_equal(vd_ev_add(fx.ev, &pair[i].h, EPOLLIN), 0);
		assert_int_equal(write(pair[i].wfd, "x", 1), 1);
	}
	fx.n = 0;
	fx.log[0] = '\0';
	assert_int_equal(run_bounded(), 0);
	/* one of them, then the deferred stop (deferred once per call made) */
	assert_int_equal(fx.n, 2);
	assert_int_equal(count(t0) + count(t1), 1);
	assert_int_equal(fx.log[1], 'S');
	conn_close(&pair[0]);
	conn_close(&pair[1]);
}

static void
test_paused_in_round_not_called(void **state)
{
	(void)state;
	pause_pair('p', 'q');
	pause_pair('x', 'y');
}

/* ---------------------------------------------------------------- stop */

static void
on_readable_stop(struct vd_ev *ev, struct vd_ev_handle *h, uint32_t events)
{
	on_readable(ev, h, events);
	vd_ev_stop(ev);
}

static void
test_stop_from_io_callback(void **state)
{
	struct conn c;

	(void)state;
	conn_open(&c, 'r');
	c.h.fn = on_readable_stop;
	assert_int_equal(vd_ev_add(fx.ev, &c.h, EPOLLIN), 0);
	assert_int_equal(write(c.wfd, "x", 1), 1);
	assert_int_equal(run_bounded(), 0);
	assert_string_equal(fx.log, "r");
	conn_close(&c);
}

static void
test_stop_from_timer_leaves_the_rest(void **state)
{
	(void)state;
	/* both due in the first round: the first stops the loop, and the
	 * other waits for the next run */
	assert_true(vd_ev_timer(fx.ev, 0, on_stop, NULL) > 0);
	assert_true(vd_ev_timer(fx.ev, 0, on_stop, NULL) > 0);
	assert_int_equal(run_bounded(), 0);
	assert_string_equal(fx.log, "S");
	assert_int_equal(run_bounded(), 0);
	assert_string_equal(fx.log, "SS");
}

/* Stop signals: blocked while the test runs, the mask put back after. */
static sigset_t old_mask;

static int
setup_signals(void **state)
{
	if (pthread_sigmask(SIG_SETMASK, NULL, &old_mask) != 0)
		return -1;
	return setup(state);
}

static int
teardown_signals(void **state)
{
	struct timespec zero = { 0, 0 };
	sigset_t set;

	teardown(state);
	/* nothing may stay pending once unblocked */
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	while (sigtimedwait(&set, NULL, &zero) > 0)
		;
	return pthread_sigmask(SIG_SETMASK, &old_mask, NULL) == 0 ? 0 : -1;
}

static int64_t
on_raise(struct vd_ev *ev, void *arg)
{
	(void)ev;
	note('K');
	assert_int_equal(raise((int)(intptr_t)arg), 0);
	return -1;
}

static int64_t
on_kill(struct vd_ev *ev, void *arg)
{
	(void)ev;
	note('K');
	assert_int_equal(kill(getpid(), (int)(intptr_t)arg), 0);
	return -1;
}

static void
test_stop_signal(void **state)
{
	struct vd_error err = VD_ERROR_INIT;
	sigset_t now;
	int t;

	(void)state;
	assert_int_equal(vd_ev_stop_on_signal(fx.ev, SIGUSR1, &err), 0);
	pthread_sigmask(SIG_SETMASK, NULL, &now);
	assert_true(sigismember(&now, SIGUSR1));

	/* raise() from a callback, to the thread running the loop */
	assert_true(vd_ev_timer(fx.ev, 10, on_raise, TAG(SIGUSR1)) > 0);
	t = vd_ev_timer(fx.ev, 10000, on_note, TAG('X'));
	assert_true(t > 0);
	assert_int_equal(run_bounded(), SIGUSR1);
	assert_string_equal(fx.log, "K");

	/* a second signal joins the first; kill() to the process */
	assert_int_equal(vd_ev_stop_on_signal(fx.ev, SIGUSR2, &err), 0);
	assert_true(vd_ev_timer(fx.ev, 10, on_kill, TAG(SIGUSR2)) > 0);
	assert_int_equal(run_bounded(), SIGUSR2);
	assert_string_equal(fx.log, "KK");

	/* the first still stops it; a signal sent before the loop runs too */
	assert_int_equal(kill(getpid(), SIGUSR1), 0);
	assert_int_equal(run_bounded(), SIGUSR1);
	assert_string_equal(fx.log, "KK");

	/* a run after a stop signal starts afresh and returns 0 on vd_ev_stop */
	vd_ev_timer_cancel(fx.ev, t);
	assert_true(vd_ev_timer(fx.ev, 0, on_stop, NULL) > 0);
	assert_int_equal(run_bounded(), 0);
	assert_string_equal(fx.log, "KKS");
}

/* A signal the thread blocked for its own reasons is not a stop signal: the
 * loop reads only those it was asked for. */
static void
test_only_the_stop_signals(void **state)
{
	struct vd_error err = VD_ERROR_INIT;
	struct timespec zero = { 0, 0 };
	sigset_t other;

	(void)state;
	sigemptyset(&other);
	sigaddset(&other, SIGUSR2);
	assert_int_equal(pthread_sigmask(SIG_BLOCK, &other, NULL), 0);
	assert_int_equal(vd_ev_stop_on_signal(fx.ev, SIGUSR1, &err), 0);
	assert_int_equal(kill(getpid(), SIGUSR2), 0);
	assert_true(vd_ev_timer(fx.ev, 50, on_stop, NULL) > 0);
	assert_int_equal(run_bounded(), 0); /* stopped by the timer, not by SIGUSR2 */
	assert_string_equal(fx.log, "S");
	/* and SIGUSR2 is still pending, for whoever blocked it */
	assert_int_equal(sigtimedwait(&other, NULL, &zero), SIGUSR2);
}

/* --------------------------------------------------------------- clock */

static int64_t
on_clock(struct vd_ev *ev, void *arg)
{
	int64_t *seen = arg;

	seen[0] = vd_ev_now_ms(ev);
	seen[1] = vd_ev_now_us(ev);
	vd_ev_stop(ev);
	return -1;
}

static void
test_now_advances(void **state)
{
	int64_t t0_ms, t0_us, seen[2] = { 0, 0 };

	(void)state;
	t0_ms = vd_ev_now_ms(fx.ev);
	t0_us = vd_ev_now_us(fx.ev);
	assert_true(t0_ms > 0);
	assert_int_equal(t0_ms, t0_us / 1000);

	assert_true(vd_ev_timer(fx.ev, 25, on_clock, seen) > 0);
	assert_int_equal(run_bounded(), 0);
	assert_true(seen[0] >= t0_ms + 25);
	assert_true(seen[1] >= t0_us + 25000 - 1000); /* ms granularity */
	assert_int_equal(seen[0], seen[1] / 1000);
	/* the monotonic clock, read once a round: never ahead of it */
	assert_true(seen[0] <= vd_clock_ms());
	assert_true(vd_ev_now_ms(fx.ev) >= seen[0]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_timers_in_order_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timer_counts_from_now, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timer_rearms, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timer_zero_is_next_round, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_before_run, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_inside_round, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_self_then_rearm, setup, teardown),
		cmocka_unit_test_setup_teardown(test_defer_after_round, setup, teardown),
		cmocka_unit_test_setup_teardown(test_defer_before_run_and_chained, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_runs_deferred, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fd_dispatch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fd_writable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_and_del, setup, teardown),
		cmocka_unit_test_setup_teardown(test_paused_in_round_not_called, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_from_io_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_from_timer_leaves_the_rest, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_stop_signal, setup_signals, teardown_signals),
		cmocka_unit_test_setup_teardown(test_only_the_stop_signals, setup_signals,
						teardown_signals),
		cmocka_unit_test_setup_teardown(test_now_advances, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
