/*
 * The balancer's replica side (see lb_int.h for how the balancer is split):
 * a response's way back, from a replica's socket to the client's.
 *
 * Connections to replicas are kept in a pool per replica for the next
 * request. The response is relayed from the upstream connection's buffer as
 * it is read, with back-pressure both ways; a second parser finds where it
 * ends so the connection can go back to its pool. A replica that fails a
 * request before answering it has it tried again when that is safe (see
 * vd/lb.h).
 *
 * A graceful stop (vd_lb_shutdown) lets what is in flight finish: each
 * response still to come has its head held until it is whole and rewritten
 * to say "Connection: close" (stop_head), and its client is closed once it
 * is sent. The normal path pays for it with tests of lb->stopping only: two
 * per read from a replica, one per response.
 */
#include <errno.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lb_int.h"

#define POOL_MAX 128         /* idle connections kept per replica */
#define CONN_CLOSE "Connection: close\r\n"
#define CLOSE_ROOM (sizeof(CONN_CLOSE) - 1) /* kept free in a response's buffer while stopping */

/* -------------------------------------------------------- connections */

int
lb_socket(int family)
{
	int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;

	if (fd >= 0)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static void
free_upstream(void *arg)
{
	free(arg);
}

void
lb_upstream_close(struct upstream *up)
{
	if (up->h.fd < 0)
		return;
	vd_ev_del(up->lb->ev, &up->h);
	close(up->h.fd);
	up->h.fd = -1;
	/* an event of this round may still point at it */
	vd_ev_defer(up->lb->ev, free_upstream, up);
}

struct upstream *
lb_upstream_connect(struct vd_lb *lb, struct replica *r)
{
	struct upstream *up = calloc(1, sizeof(*up));
	int fd;

	if (!up)
		return NULL;
	fd = lb_socket(r->sa.ss_family);
	if (fd < 0) {
		free(up);
		return NULL;
	}
	up->h.fd = fd;
	up->h.fn = lb_upstream_io;
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

/* -------------------------------------------------- parsing responses */

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

static const http_parser_settings resp_settings = {
	.on_headers_complete = on_resp_headers_complete,
	.on_message_complete = on_resp_message_complete,
};

/* while the balancer stops */
static const http_parser_settings resp_stop_settings = {
	.on_headers_complete = on_resp_head_stop,
	.on_message_complete = on_resp_message_complete,
};

/* ------------------------------------------------- relaying responses */

static void
pool_put(struct upstream *up)
{
	struct replica *r = up->r;

	up->c = NULL;
	if (!r || r->draining || !r->up || r->nidle >= POOL_MAX || up->no_reuse) {
		lb_upstream_close(up);
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
		    !lb->stopping && !c->gone;
	double service = (double)(us > c->wait_us ? us - c->wait_us : 0);

	/* the replica's time, whoever was there to receive it */
	lb->service_us = lb->service_us ? lb->service_us + (service - lb->service_us) / 8 : service;
	if (!c->gone) { /* what clients received */
		lb_count_response(lb, up->p.status_code);
		lb->relayed++;
		lb->relayed_us += us;
		vd_hist_window_record(&lb->total, now_ms, us);
		vd_signals_complete(lb->sig, vd_ev_now_us(lb->ev), c->wait_us, us, c->cold_us);
		if (r)
			vd_hist_window_record(&r->total, now_ms, us);
	}
	up->no_reuse |= !http_should_keep_alive(&up->p);
	c->up = NULL;
	if (up->r)
		pool_put(up);
	else
		lb_upstream_close(up);
	lb_release_slot(c, r); /* last: it frees r once r is drained */
	if (keep)
		lb_client_next(c, now_ms); /* a pipelined request may start at once */
	else
		lb_client_close(c);
	lb_pump_queue(lb);
}

/* Write the relayed bytes the client can take. */
void
lb_relay(struct upstream *up)
{
	struct client *c = up->c;
	struct vd_lb *lb = c->lb;

	if (c->gone) /* nobody to send it to: read on to its end */
		up->off = up->len;
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
			lb_client_close(c);
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
	vd_ev_set(lb->ev, &c->h, c->gone ? 0 : CLIENT_WATCH);
}

/* The replica failed this request before answering: try another one. */
void
lb_upstream_failed(struct upstream *up, enum vd_lb_error_kind why, bool blame)
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
	lb_upstream_close(up);
	if (pooled && r) {
		/* the replica closed a pooled connection (it restarted, or died):
		 * its other idle ones are as stale; the retry is not counted, and
		 * goes out on a fresh connection */
		lb_pool_flush(r);
		c->attempts--;
	}
	if (blame && r && r->up)
		lb_eject(lb, r);
	lb_release_slot(c, r); /* last: it frees r once r is drained */
	if (c->gone) {
		lb_client_close(c);
		lb_pump_queue(lb);
		return;
	}
	if (c->idempotent && c->replayable && !c->response_started) {
		/* start the head again from the top */
		size_t blank = c->buf[c->head_len - 2] == '\r' ? 2 : 1;

		lb_build_head(c, blank);
		c->head_sent = false;
		c->sent = c->head_len;
		lb_route(c);
		return;
	}
	c->lb->errors[why]--; /* counted once, as the answer's */
	lb_answer(c, 502, why);
}

/* ----------------------------------------------------- while stopping */

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
		if (!colon || !lb_hop_by_hop(buf + s, (size_t)(colon - (buf + s)))) {
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

/* -------------------------------------------------- reading responses */

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
			lb_upstream_failed(up, VD_LB_ERR_RESET, !up->reused);
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
				lb_client_close(c);
			} else {
				lb->errors[VD_LB_ERR_CUT]--;
				lb_answer(c, 502, VD_LB_ERR_CUT);
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
				lb_client_close(c);
			} else {
				lb_answer(c, 502, VD_LB_ERR_CUT);
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
	lb_relay(up);
}

void
lb_upstream_io(struct vd_ev *ev, struct vd_ev_handle *h, uint32_t events)
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
		lb_upstream_close(up);
		return;
	}
	if (up->connecting) {
		if (getsockopt(h->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0 || soerr ||
		    (events & (EPOLLERR | EPOLLHUP))) {
			lb_upstream_failed(up, VD_LB_ERR_CONNECT, true);
			return;
		}
		up->connecting = false;
		lb_forward(up->c);
		return;
	}
	if (events & EPOLLOUT) {
		lb_forward(up->c);
		if (!up->c || h->fd < 0)
			return;
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		upstream_read(up);
}
