/*
 * The async model: one thread, one epoll loop, like Node.
 *
 * A connection is watched for input while it reads, for output while a
 * reply does not fit the socket, and not at all while its /timeout waits:
 * it then sits in a min-heap ordered by deadline, and the earliest deadline
 * is epoll_wait's timeout, so waiting holds nothing.  /heavy and /alloc run
 * inline and block the loop, which is the point of the model.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "svc.h"

static int ep = -1;
static struct svc_conn **heap;
static size_t nheap, heapcap;

static void serve(struct svc_conn *);

/* ------------------------------------------------------------ timer heap */

static int
heap_push(struct svc_conn *c)
{
	struct svc_conn **h;
	size_t i, parent, cap;

	if (nheap == heapcap) {
		cap = heapcap ? heapcap * 2 : 64;
		if ((h = realloc(heap, cap * sizeof(*h))) == NULL)
			return -1;
		heap = h;
		heapcap = cap;
	}
	for (i = nheap++; i > 0; i = parent) {
		parent = (i - 1) / 2;
		if (heap[parent]->deadline_us <= c->deadline_us)
			break;
		heap[i] = heap[parent];
	}
	heap[i] = c;
	return 0;
}

static struct svc_conn *
heap_pop(void)
{
	struct svc_conn *top = heap[0], *last = heap[--nheap];
	size_t i = 0, child;

	while ((child = 2 * i + 1) < nheap) {
		if (child + 1 < nheap &&
		    heap[child + 1]->deadline_us < heap[child]->deadline_us)
			child++;
		if (last->deadline_us <= heap[child]->deadline_us)
			break;
		heap[i] = heap[child];
		i = child;
	}
	heap[i] = last;
	return top;
}

/* Milliseconds until the earliest deadline, rounded up; -1 when none. */
static int
next_timeout(void)
{
	uint64_t now;

	if (nheap == 0)
		return -1;
	now = svc_now_us();
	if (heap[0]->deadline_us <= now)
		return 0;
	return (int)((heap[0]->deadline_us - now + 999) / 1000);
}

/* ----------------------------------------------------------- connections */

/* Send what is left of the reply; once sent, go on to the next request. */
static void
write_more(struct svc_conn *c)
{
	switch (svc_conn_flush(c)) {
	case 0:
		if (svc_conn_arm(ep, c, EPOLLOUT) == -1)
			svc_conn_close(c);
		return;
	case -1:
		svc_conn_close(c);
		return;
	}
	svc_reply_release(&c->rep);
	if (c->close)
		svc_conn_close(c);
	else if (c->armed != EPOLLIN && svc_conn_arm(ep, c, EPOLLIN) == -1)
		svc_conn_close(c);
	else if (svc_conn_next(c))
		serve(c);	/* pipelined: already in the buffer */
}

static void
serve(struct svc_conn *c)
{
	svc_route(&c->req, &c->rep, 0);
	if (c->rep.wait_ms < 0) {
		svc_conn_reply(c);
		write_more(c);
		return;
	}
	c->deadline_us = c->rep.started_us + (uint64_t)c->rep.wait_ms * 1000;
	if (svc_conn_arm(ep, c, 0) == -1 || heap_push(c) == -1)
		svc_conn_close(c);
}

static void
run_timers(void)
{
	uint64_t now = svc_now_us();
	struct svc_conn *c;

	while (nheap > 0 && heap[0]->deadline_us <= now) {
		c = heap_pop();
		svc_finish_wait(&c->rep, 0);
		svc_conn_reply(c);
		write_more(c);
	}
}

static void
on_event(struct svc_conn *c)
{
	if (c->replying) {
		write_more(c);
		return;
	}
	switch (svc_conn_read(c)) {
	case SVC_READY:
		serve(c);
		break;
	case SVC_AGAIN:
		break;
	default:
		svc_conn_close(c);
		break;
	}
}

int
svc_serve_async(int lfd, int sfd)
{
	struct epoll_event ev[64];
	int i, n;

	if ((ep = svc_epoll(lfd, sfd)) == -1)
		return -1;
	for (;;) {
		n = epoll_wait(ep, ev, 64, next_timeout());
		if (n == -1 && errno != EINTR) {
			svc_warn("cannot wait for events: %s", strerror(errno));
			return -1;
		}
		for (i = 0; i < n; i++) {
			if (ev[i].data.ptr == SVC_EV_SIGNAL)
				return 0;
			if (ev[i].data.ptr == SVC_EV_LISTEN)
				svc_accept_all(lfd, ep, EPOLLIN);
			else
				on_event(ev[i].data.ptr);
		}
		run_timers();
	}
}
