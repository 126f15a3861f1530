/*
 * A small event loop: epoll, a binary heap of timers, deferred work, and
 * stop signals through a signalfd. See vd/ev.h.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "vd/clock.h"
#include "vd/ev.h"

#define EV_BATCH 256

struct timer {
	int64_t at_ms;
	int id;
	vd_ev_timer_fn fn;
	void *arg;
};

struct deferred {
	vd_ev_defer_fn fn;
	void *arg;
};

struct vd_ev {
	int epfd;
	bool stop;
	int stop_signal;
	int64_t now_us;
	struct timer *heap;
	size_t nheap, capheap;
	int next_id;
	struct deferred *work;
	size_t nwork, capwork;
	struct vd_ev_handle sig; /* the signalfd */
	sigset_t sigs;           /* what it reads: the stop signals asked for */
};

struct vd_ev *
vd_ev_new(struct vd_error *err)
{
	struct vd_ev *ev = calloc(1, sizeof(*ev));

	if (!ev) {
		vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
		return NULL;
	}
	ev->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (ev->epfd < 0) {
		vd_error_errno(err, errno, "epoll_create1");
		free(ev);
		return NULL;
	}
	ev->sig.fd = -1;
	sigemptyset(&ev->sigs);
	ev->now_us = vd_clock_us();
	return ev;
}

void
vd_ev_free(struct vd_ev *ev)
{
	if (!ev)
		return;
	for (size_t i = 0; i < ev->nwork; i++)
		ev->work[i].fn(ev->work[i].arg);
	if (ev->sig.fd >= 0)
		close(ev->sig.fd);
	close(ev->epfd);
	free(ev->heap);
	free(ev->work);
	free(ev);
}

/* ------------------------------------------------------------------ fds */

int
vd_ev_add(struct vd_ev *ev, struct vd_ev_handle *h, uint32_t events)
{
	struct epoll_event e = { .events = events, .data.ptr = h };

	h->events = events;
	return epoll_ctl(ev->epfd, EPOLL_CTL_ADD, h->fd, &e);
}

/* Watching nothing takes the fd out of epoll altogether: epoll reports
 * hang-ups and errors even on an empty mask, which would wake the loop
 * again and again while the owner waits for something else. */
int
vd_ev_set(struct vd_ev *ev, struct vd_ev_handle *h, uint32_t events)
{
	struct epoll_event e = { .events = events, .data.ptr = h };
	int op = !events ? EPOLL_CTL_DEL : !h->events ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;

	if (h->events == events)
		return 0;
	h->events = events;
	return epoll_ctl(ev->epfd, op, h->fd, op == EPOLL_CTL_DEL ? NULL : &e);
}

void
vd_ev_del(struct vd_ev *ev, struct vd_ev_handle *h)
{
	if (h->fd >= 0 && h->events)
		epoll_ctl(ev->epfd, EPOLL_CTL_DEL, h->fd, NULL);
	h->events = 0;
}

/* --------------------------------------------------------------- timers */

static void
heap_swap(struct vd_ev *ev, size_t a, size_t b)
{
	struct timer t = ev->heap[a];

	ev->heap[a] = ev->heap[b];
	ev->heap[b] = t;
}

static void
heap_up(struct vd_ev *ev, size_t i)
{
	while (i > 0 && ev->heap[(i - 1) / 2].at_ms > ev->heap[i].at_ms) {
		heap_swap(ev, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void
heap_down(struct vd_ev *ev, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < ev->nheap && ev->heap[l].at_ms < ev->heap[m].at_ms)
			m = l;
		if (r < ev->nheap && ev->heap[r].at_ms < ev->heap[m].at_ms)
			m = r;
		if (m == i)
			return;
		heap_swap(ev, i, m);
		i = m;
	}
}

static int
heap_push(struct vd_ev *ev, struct timer t)
{
	if (ev->nheap == ev->capheap) {
		size_t cap = ev->capheap ? ev->capheap * 2 : 16;
		struct timer *h = realloc(ev->heap, cap * sizeof(*h));

		if (!h)
			return -1;
		ev->heap = h;
		ev->capheap = cap;
	}
	ev->heap[ev->nheap++] = t;
	heap_up(ev, ev->nheap - 1);
	return 0;
}

static void
heap_remove(struct vd_ev *ev, size_t i)
{
	ev->heap[i] = ev->heap[--ev->nheap];
	if (i < ev->nheap) {
		heap_down(ev, i);
		heap_up(ev, i);
	}
}

int
vd_ev_timer(struct vd_ev *ev, int64_t after_ms, vd_ev_timer_fn fn, void *arg)
{
	struct timer t;

	/* from now, not from the start of the round: a timer set before the
	 * loop runs would fire early */
	ev->now_us = vd_clock_us();
	t = (struct timer){ vd_ev_now_ms(ev) + after_ms, 0, fn, arg };

	if (++ev->next_id <= 0)
		ev->next_id = 1;
	t.id = ev->next_id;
	return heap_push(ev, t) < 0 ? -1 : t.id;
}

void
vd_ev_timer_cancel(struct vd_ev *ev, int id)
{
	for (size_t i = 0; i < ev->nheap; i++) {
		if (ev->heap[i].id == id) {
			heap_remove(ev, i);
			return;
		}
	}
}

static void
run_timers(struct vd_ev *ev)
{
	int64_t now = vd_ev_now_ms(ev);

	while (ev->nheap && ev->heap[0].at_ms <= now && !ev->stop) {
		struct timer t = ev->heap[0];
		int64_t again;

		heap_remove(ev, 0);
		again = t.fn(ev, t.arg);
		if (again >= 0) {
			/* 0 means "next round", not "again in this one" */
			t.at_ms = now + (again > 0 ? again : 1);
			heap_push(ev, t);
		}
	}
}

/* ms until the next timer, for epoll_wait: -1 when there is none */
static int
next_timeout(const struct vd_ev *ev)
{
	int64_t d;

	if (ev->nwork)
		return 0;
	if (!ev->nheap)
		return -1;
	d = ev->heap[0].at_ms - vd_ev_now_ms(ev);
	return d <= 0 ? 0 : d > 60000 ? 60000 : (int)d;
}

/* ----------------------------------------------------------- deferred */

int
vd_ev_defer(struct vd_ev *ev, vd_ev_defer_fn fn, void *arg)
{
	if (ev->nwork == ev->capwork) {
		size_t cap = ev->capwork ? ev->capwork * 2 : 64;
		struct deferred *w = realloc(ev->work, cap * sizeof(*w));

		if (!w)
			return -1;
		ev->work = w;
		ev->capwork = cap;
	}
	ev->work[ev->nwork++] = (struct deferred){ fn, arg };
	return 0;
}

static void
run_deferred(struct vd_ev *ev)
{
	/* deferred work may defer more: run until none is left */
	for (size_t i = 0; i < ev->nwork; i++)
		ev->work[i].fn(ev->work[i].arg);
	ev->nwork = 0;
}

/* ------------------------------------------------------------- signals */

static void
on_signal(struct vd_ev *ev, struct vd_ev_handle *h, uint32_t events)
{
	struct signalfd_siginfo si;

	(void)events;
	if (read(h->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		ev->stop_signal = (int)si.ssi_signo;
		ev->stop = true;
	}
}

int
vd_ev_stop_on_signal(struct vd_ev *ev, int signo, struct vd_error *err)
{
	sigset_t one;

	/* the loop listens to the signals it was asked for, and only those:
	 * others the thread blocks for its own reasons stay blocked, unread */
	sigemptyset(&one);
	sigaddset(&one, signo);
	if ((errno = pthread_sigmask(SIG_BLOCK, &one, NULL)) != 0)
		return vd_error_errno(err, errno, "pthread_sigmask");
	sigaddset(&ev->sigs, signo);
	if (ev->sig.fd >= 0)
		return signalfd(ev->sig.fd, &ev->sigs, 0) < 0 ? vd_error_errno(err, errno, "signalfd")
							      : 0;
	ev->sig.fd = signalfd(-1, &ev->sigs, SFD_NONBLOCK | SFD_CLOEXEC);
	if (ev->sig.fd < 0)
		return vd_error_errno(err, errno, "signalfd");
	ev->sig.fn = on_signal;
	return vd_ev_add(ev, &ev->sig, EPOLLIN) < 0 ? vd_error_errno(err, errno, "epoll") : 0;
}

/* ---------------------------------------------------------------- loop */

int
vd_ev_run(struct vd_ev *ev)
{
	struct epoll_event events[EV_BATCH];

	ev->stop = false;
	ev->stop_signal = 0;
	while (!ev->stop) {
		int n = epoll_wait(ev->epfd, events, EV_BATCH, next_timeout(ev));

		ev->now_us = vd_clock_us();
		if (n < 0 && errno != EINTR)
			return -1;
		for (int i = 0; i < n && !ev->stop; i++) {
			struct vd_ev_handle *h = events[i].data.ptr;

			/* closed or paused earlier in this round: nothing watched */
			if (h->events)
				h->fn(ev, h, events[i].events);
		}
		run_deferred(ev);
		run_timers(ev);
		run_deferred(ev);
	}
	return ev->stop_signal;
}

void
vd_ev_stop(struct vd_ev *ev)
{
	ev->stop = true;
}

int64_t
vd_ev_now_ms(const struct vd_ev *ev)
{
	return ev->now_us / 1000;
}

int64_t
vd_ev_now_us(const struct vd_ev *ev)
{
	return ev->now_us;
}
