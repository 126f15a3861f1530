/*
 * The sync model: N workers, each serving one request at a time.
 *
 * Like gunicorn's sync workers, but an idle keep-alive connection must not
 * pin a worker, so one poller thread (the main thread) owns every
 * connection.  It watches them with EPOLLONESHOT, reads until a request is
 * whole and puts the connection on a queue.  A free worker takes it, serves
 * that one request (sleeping through /timeout, burning through /heavy),
 * writes the reply and gives the connection back: to the queue when a
 * pipelined request is already buffered, else to epoll, re-armed.  One-shot
 * arming means exactly one thread owns a connection at any time.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>

#include "svc.h"

#define CONN_EVENTS	(EPOLLIN | EPOLLONESHOT)

static int ep = -1;

static struct {
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	struct svc_conn	*head;
	struct svc_conn	*tail;
} queue = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL };

static void
queue_push(struct svc_conn *c)
{
	pthread_mutex_lock(&queue.mu);
	c->next = NULL;
	if (queue.tail != NULL)
		queue.tail->next = c;
	else
		queue.head = c;
	queue.tail = c;
	pthread_cond_signal(&queue.cv);
	pthread_mutex_unlock(&queue.mu);
}

static struct svc_conn *
queue_pop(void)
{
	struct svc_conn *c;

	pthread_mutex_lock(&queue.mu);
	while (queue.head == NULL)
		pthread_cond_wait(&queue.cv, &queue.mu);
	c = queue.head;
	if ((queue.head = c->next) == NULL)
		queue.tail = NULL;
	pthread_mutex_unlock(&queue.mu);
	return c;
}

static void
sleep_until_us(uint64_t us)
{
	struct timespec ts = {
		.tv_sec = (time_t)(us / 1000000),
		.tv_nsec = (long)(us % 1000000) * 1000,
	};

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
	    EINTR)
		;
}

/* Send the whole reply, waiting for a slow reader; 1 when sent, else -1. */
static int
flush_wait(struct svc_conn *c)
{
	struct pollfd pfd = { .fd = c->fd, .events = POLLOUT };
	int r;

	while ((r = svc_conn_flush(c)) == 0)
		if (poll(&pfd, 1, 30 * 1000) != 1)
			return -1;
	return r;
}

/* Serve the request in c, then hand c back to the queue or the poller. */
static void
serve(struct svc_conn *c, int worker)
{
	int r;

	svc_route(&c->req, &c->rep, worker);
	if (c->rep.wait_ms >= 0) {
		sleep_until_us(c->rep.started_us +
		    (uint64_t)c->rep.wait_ms * 1000);
		svc_finish_wait(&c->rep, worker);
	}
	svc_conn_reply(c);
	r = flush_wait(c);
	svc_reply_release(&c->rep);
	if (r == -1 || c->close)
		svc_conn_close(c);
	else if (svc_conn_next(c))
		queue_push(c);
	else if (svc_conn_arm(ep, c, CONN_EVENTS) == -1)
		svc_conn_close(c);
}

static void *
worker_main(void *arg)
{
	int worker = (int)(intptr_t)arg;

	for (;;)
		serve(queue_pop(), worker);
	return NULL;
}

/* The poller's side: read what c has and queue it once a request is whole. */
static void
poll_conn(struct svc_conn *c)
{
	switch (svc_conn_read(c)) {
	case SVC_READY:
		queue_push(c);
		break;
	case SVC_AGAIN:
		if (svc_conn_arm(ep, c, CONN_EVENTS) == -1)
			svc_conn_close(c);
		break;
	default:
		svc_conn_close(c);
		break;
	}
}

static int
start_workers(int n)
{
	pthread_attr_t attr;
	pthread_t t;
	int i, err;

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	for (i = 0; i < n; i++) {
		err = pthread_create(&t, &attr, worker_main,
		    (void *)(intptr_t)i);
		if (err != 0) {
			svc_warn("cannot start worker %d: %s", i,
			    strerror(err));
			break;
		}
	}
	pthread_attr_destroy(&attr);
	return i == n ? 0 : -1;
}

int
svc_serve_sync(int lfd, int sfd)
{
	struct epoll_event ev[64];
	int i, n;

	if ((ep = svc_epoll(lfd, sfd)) == -1)
		return -1;
	if (start_workers(svc_cfg.workers) == -1)
		return -1;
	for (;;) {
		n = epoll_wait(ep, ev, 64, -1);
		if (n == -1 && errno != EINTR) {
			svc_warn("cannot wait for events: %s", strerror(errno));
			return -1;
		}
		for (i = 0; i < n; i++) {
			if (ev[i].data.ptr == SVC_EV_SIGNAL)
				return 0;
			if (ev[i].data.ptr == SVC_EV_LISTEN)
				svc_accept_all(lfd, ep, CONN_EVENTS);
			else
				poll_conn(ev[i].data.ptr);
		}
	}
}
