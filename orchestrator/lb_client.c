/*
 * The balancer's client side (see lb_int.h for how the balancer is split):
 * a request's way in, from the client's socket to a replica's.
 *
 * A client connection reads a request into a buffer of its own (allocated
 * when bytes arrive, freed when it goes idle, so idle keep-alive clients cost
 * a few hundred bytes), parses it with Debian's http-parser to find the end
 * of the head and of the message, picks a replica by policy (or waits in the
 * queue) and sends the request to it through a pooled keep-alive connection:
 * the head rewritten as an iovec (hop-by-hop headers left out,
 * X-Forwarded-For added), then the body as it comes. What the client cannot
 * be given from a replica it is answered by the proxy itself (400, 408, 431,
 * 502, 503, 504), and closed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "lb_int.h"

#define CLIENT_BUF 4096      /* first size of a client's buffer; it grows */
#define MAX_ATTEMPTS 3       /* replicas tried for one idempotent request */

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

/* ------------------------------------------------------------ buffers */

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

/* -------------------------------------------------- picking a replica */

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
bool
lb_any_up(const struct vd_lb *lb)
{
	for (size_t i = 0; i < lb->nreps; i++)
		if (lb->reps[i]->up && !lb->reps[i]->draining)
			return true;
	return false;
}

/* ---------------------------------------------- closing and answering */

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
		lb_levels(lb);
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
	lb_upstream_close(up);
	lb_release_slot(c, up->r); /* last: it frees a drained replica */
}

void
lb_client_close(struct client *c)
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
	lb_client_close(c);
}

/*
 * The wait a request joining the queue now can expect: the requests ahead of
 * it, itself included, times the recent service time, over the requests the
 * replicas up take at once. 0 while nothing is known (no response yet, no
 * per-replica limit, no replica up).
 */
static int64_t
expected_wait_us(const struct vd_lb *lb)
{
	int slots = 0;

	if (!lb->cfg.max_inflight || !lb->service_us)
		return 0;
	for (size_t i = 0; i < lb->nreps; i++)
		slots += lb->reps[i]->up && !lb->reps[i]->draining ? lb->cfg.max_inflight : 0;
	return slots ? (int64_t)((lb->queued + 1) * lb->service_us / slots) : 0;
}

/* Answer STATUS ourselves and close; or just close when part of a response
 * was already relayed. */
void
lb_answer(struct client *c, int status, enum vd_lb_error_kind why)
{
	struct vd_lb *lb = c->lb;

	lb->errors[why]++;
	if (status >= 502) /* an arrival the replicas did not serve */
		vd_signals_refuse(lb->sig, vd_ev_now_us(lb->ev));
	unqueue(c);
	drop_upstream(c);
	if (c->response_started || c->gone) {
		lb_client_close(c);
		return;
	}
	lb_count_response(lb, status);
	for (size_t i = 0; i < sizeof(answers) / sizeof(answers[0]); i++)
		if (answers[i].status == status)
			c->out = answers[i].text;
	if (why == VD_LB_ERR_REFUSED_EARLY && c->cap > 200) {
		/* when to try again: the wait it would have had, whole seconds */
		int after = (int)(expected_wait_us(lb) / 1000000) + 1;

		snprintf(c->buf, c->cap, "HTTP/1.1 503 Service Unavailable\r\nRetry-After: %d\r\n"
			 "Content-Length: 20\r\nConnection: close\r\n\r\nservice unavailable\n",
			 after);
		c->out = c->buf;
	}
	c->outlen = strlen(c->out);
	c->state = C_CLOSING;
	answer_flush(c);
}

/* --------------------------------------------------- parsing requests */

bool
lb_hop_by_hop(const char *name, size_t n)
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
			      lb_hop_by_hop(c->hdr_name, c->hdr_name_len);
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

static const http_parser_settings req_settings = {
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_req_headers_complete,
	.on_message_complete = on_req_message_complete,
};

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
void
lb_build_head(struct client *c, size_t blank)
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
		lb_answer(c, 400, VD_LB_ERR_BAD_REQUEST);
		return false;
	}
	c->parsed += n;
	if (!had_head && c->head_len) {
		c->head_len = head_end(c, &blank);
		if (!c->head_len) {
			lb_answer(c, 400, VD_LB_ERR_BAD_REQUEST);
			return false;
		}
		end_header(c, c->head_len - blank);
		lb_build_head(c, blank);
		c->sent = c->head_len;
		lb->requests++;
		c->t_head_us = vd_ev_now_us(lb->ev);
		c->wait_us = c->cold_us = 0;
		vd_signals_arrive(lb->sig, c->t_head_us);
		lb_route(c);
		return c->h.fd >= 0;
	}
	if (c->state == C_HEAD && c->len >= lb->cfg.max_header_bytes) {
		lb_answer(c, 431, VD_LB_ERR_HEADER_TOO_BIG);
		return false;
	}
	return true;
}

/* ------------------------------------------------ forwarding requests */

/* Send what can be sent of the request to the replica. */
void
lb_forward(struct client *c)
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
			lb_upstream_io(lb->ev, &up->h, EPOLLERR);
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
			lb_upstream_io(lb->ev, &up->h, EPOLLERR);
			return;
		}
		c->sent += (size_t)n;
	}
	vd_ev_set(lb->ev, &up->h, EPOLLIN);
	if (c->msg_done) {
		/* a pipelined request waits its turn (client_io); no syscall when
		 * the mask is CLIENT_WATCH already, as it is but after a wait */
		vd_ev_set(lb->ev, &c->h, CLIENT_WATCH);
		return;
	}
	/* more body to come: make room by dropping what went out */
	if (c->sent == c->len && c->sent > c->head_len) {
		c->replayable = false;
		c->len = c->parsed = c->sent = 0;
		c->head_len = 0;
	}
	vd_ev_set(lb->ev, &c->h, CLIENT_WATCH);
}

/* Put the request on replica r. */
static void
dispatch(struct client *c, struct replica *r)
{
	struct vd_lb *lb = c->lb;
	struct upstream *up = r->idle;

	r->inflight++;
	lb->inflight++;
	lb_levels(lb);
	r->requests++;
	c->attempts++;
	if (up) {
		r->idle = up->next;
		r->nidle--;
		up->next = NULL;
		up->reused = true;
	} else if (!(up = lb_upstream_connect(lb, r))) {
		lb->errors[VD_LB_ERR_CONNECT]++;
		r->errors++;
		lb_release_slot(c, r);
		lb_eject(lb, r);
		lb_route(c);
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
		lb_forward(c);
}

/* Find a replica for a client whose head is whole: now, or in the queue. */
void
lb_route(struct client *c)
{
	struct vd_lb *lb = c->lb;
	struct replica *r;

	if (c->attempts >= MAX_ATTEMPTS) {
		lb_answer(c, 502, VD_LB_ERR_CONNECT);
		return;
	}
	if (!lb->qhead && (r = pick(lb))) {
		dispatch(c, r);
		return;
	}
	if (!lb_any_up(lb) && !lb->cfg.hold_when_empty) {
		lb_answer(c, 503, VD_LB_ERR_NO_REPLICA);
		return;
	}
	if (lb->queued >= lb->cfg.queue_limit) {
		lb_answer(c, 503, VD_LB_ERR_QUEUE_FULL);
		return;
	}
	/* what would wait past queue_timeout (or the clients' patience) is told
	 * so now, not then */
	if (expected_wait_us(lb) > lb_queue_timeout_us(lb)) {
		lb_answer(c, 503, VD_LB_ERR_REFUSED_EARLY);
		return;
	}
	c->state = C_QUEUED;
	c->t_queued_us = vd_ev_now_us(lb->ev);
	c->cold = !lb_any_up(lb);
	c->qnext = NULL;
	if (lb->qtail)
		lb->qtail->qnext = c;
	else
		lb->qhead = c;
	lb->qtail = c;
	lb->queued++;
	lb_levels(lb);
	vd_ev_set(lb->ev, &c->h, EPOLLRDHUP); /* only whether the client leaves */
	if (lb->on_waiting && !lb_any_up(lb))
		lb->on_waiting(lb->on_waiting_arg);
}

/* Give queued requests, oldest first, to replicas that can take them. */
void
lb_pump_queue(struct vd_lb *lb)
{
	struct replica *r;

	while (lb->qhead && (r = pick(lb))) {
		struct client *c = lb->qhead;

		lb->qhead = c->qnext;
		if (!lb->qhead)
			lb->qtail = NULL;
		lb->queued--;
		c->wait_us += (uint64_t)(vd_ev_now_us(lb->ev) - c->t_queued_us);
		if (c->cold)
			c->cold_us += (uint64_t)(vd_ev_now_us(lb->ev) - c->t_queued_us);
		vd_hist_window_record(&lb->wait, vd_ev_now_ms(lb->ev),
				 (uint64_t)(vd_ev_now_us(lb->ev) - c->t_queued_us));
		dispatch(c, r); /* counts the levels */
	}
}

/* ------------------------------------------------------- client input */

/* The response is relayed and the connection stays: keep what follows the
 * message (a pipelined request) and start on it, or wait for the next. */
void
lb_client_next(struct client *c, int64_t now_ms)
{
	struct vd_lb *lb = c->lb;
	size_t rest = c->len - c->parsed;

	memmove(c->buf, c->buf + c->parsed, rest);
	c->len = rest;
	reset_request(c);
	c->state = rest ? C_HEAD : C_IDLE;
	c->t_activity_ms = now_ms;
	c->t_head_us = vd_ev_now_us(lb->ev); /* the next head's clock */
	buf_release(c);
	vd_ev_set(lb->ev, &c->h, CLIENT_WATCH);
	if (rest && parse_request(c) && c->state == C_HEAD)
		vd_ev_set(lb->ev, &c->h, CLIENT_WATCH);
}

static void
client_read(struct client *c)
{
	struct vd_lb *lb = c->lb;
	ssize_t n;

	for (;;) {
		if (!buf_room(c)) {
			if (c->state == C_HEAD)
				lb_answer(c, 431, VD_LB_ERR_HEADER_TOO_BIG);
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
			lb_client_close(c);
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
			lb_forward(c);
			return;
		}
		if (c->state != C_HEAD)
			return;
		if ((size_t)n < CLIENT_BUF / 2)
			return; /* most likely all there is for now */
	}
}

/*
 * The client closed its side, or its connection broke, while its request
 * waits in the queue (it is dropped, never sent) or is whole on a replica
 * (the replica finishes it and its answer is dropped, or with
 * abort_on_client_gone its connection is closed). Either way not a response.
 */
static void
client_gone(struct client *c)
{
	struct vd_lb *lb = c->lb;

	int64_t now = vd_ev_now_us(lb->ev);

	lb->errors[VD_LB_ERR_CLIENT_GONE]++;
	vd_signals_refuse(lb->sig, now); /* demand, not served */
	lb->left[lb->nleft % PATIENCE_RING].at_us = now;
	lb->left[lb->nleft++ % PATIENCE_RING].age_us = now - c->t_head_us;
	if (c->state == C_QUEUED || lb->cfg.abort_on_client_gone || !c->up) {
		lb_client_close(c);
		lb_pump_queue(lb); /* an aborted request's place is free */
		return;
	}
	c->gone = true;
	vd_ev_set(lb->ev, &c->h, 0);
}

static void
client_io(struct vd_ev *ev, struct vd_ev_handle *h, uint32_t events)
{
	struct client *c = (struct client *)h;

	(void)ev;
	if ((events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && !c->response_started &&
	    (c->state == C_QUEUED || (c->state == C_UPSTREAM && c->msg_done))) {
		client_gone(c);
		return;
	}
	if ((events & EPOLLIN) && c->state == C_UPSTREAM && c->msg_done) {
		/* the next request, pipelined, while this one is on a replica: it
		 * waits in the socket; only the client leaving is watched */
		vd_ev_set(c->lb->ev, &c->h, EPOLLRDHUP);
		return;
	}
	if (c->state == C_CLOSING) {
		answer_flush(c);
		return;
	}
	if ((events & EPOLLOUT) && c->up && c->up->len) {
		lb_relay(c->up);
		return;
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		client_read(c);
}

/* Take one connection off the listener's queue; false when there is none
 * (or accept fails). */
bool
lb_accept_one(struct vd_lb *lb)
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
	if (vd_ev_add(lb->ev, &c->h, CLIENT_WATCH) < 0) {
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

void
lb_accept_clients(struct vd_ev *ev, struct vd_ev_handle *h, uint32_t events)
{
	struct vd_lb *lb = (struct vd_lb *)((char *)h - offsetof(struct vd_lb, listener));

	(void)ev;
	(void)events;
	for (int i = 0; i < 256 && lb_accept_one(lb); i++)
		;
}
