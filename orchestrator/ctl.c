/*
 * The control socket's HTTP server: a listener on the event loop, its
 * connections, and the requests they answer one at a time (see vd/ctl.h).
 *
 * A connection reads into a small buffer of its own and feeds Debian's
 * http-parser, which hands the request target and the body over as they
 * come (they are copied out, so the buffer is free again after each read).
 * The parser pauses at the end of the head (for the limits and for
 * 100-continue) and at the end of the message, where reading stops until the
 * answer is written. Answers go into a growable output buffer written as the
 * socket takes it (EPOLLOUT); nothing blocks.
 *
 * Every way a connection ends goes through conn_close(), which closes the fd,
 * tells a cut stream's owner (on_gone) and leaves the memory to be freed after
 * the loop's round, so an event of the same round, or code still holding the
 * req, never touches freed memory. Inside a call of the API (a stream write
 * that finds its client gone) the close itself is deferred (conn_cut), so
 * on_gone never runs under its owner's feet.
 *
 * Timeouts run on one tick a second.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <http_parser.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "vd/cleanup.h"
#include "vd/net.h"
#include "vd/ctl.h"
#include "vd/strbuf.h"

#define TICK_MS 1000
#define IDLE_MS 60000   /* keep-alive with no request; a read or a write stalled */
#define HEAD_MS 10000   /* a request's head must be whole within */
#define LINGER_MS 2000  /* reading what a client still sends after an error answer */
#define MAX_HEAD 16384
#define MAX_BODY ((size_t)8 << 20)
#define MAX_UNSENT ((size_t)16 << 20) /* a stream's client that lets more pile up is cut */
#define IN_BUF 16384
#define OUT_KEEP 65536  /* an output buffer larger than this is freed between requests */
#define MAX_CONNS 256
#define ACCEPT_BATCH 64

enum cstate {
	C_IDLE,    /* between requests */
	C_READ,    /* reading a request */
	C_HANDLER, /* in the handler */
	C_REPLY,   /* writing a whole answer, or the rest of an ended stream */
	C_STREAM,  /* a stream, open */
	C_LINGER,  /* after an error answer: reading what the client still sends */
	C_CLOSED,
};

struct vd_ctl {
	struct vd_ev *ev;
	struct vd_ev_handle listener;
	bool paused;   /* out of fds: accepting again at the next tick */
	bool freeing;
	vd_ctl_handler_fn fn;
	void *arg;
	char *path;    /* the unix socket, or NULL */
	dev_t dev;     /* its file, as bound */
	ino_t ino;
	int port;
	int tick;
	struct vd_ctl_req *conns;
	int nconns;
};

/* A connection. The API calls it a request: a connection answers one
 * request at a time, and the request's part is reset between them. */
struct vd_ctl_req {
	struct vd_ev_handle h;
	struct vd_ctl *ctl;
	struct vd_ctl_req *prev, *next;
	enum cstate state;
	bool cutting;        /* a deferred close is coming (conn_cut) */
	int64_t t_active_ms; /* the last byte read or written */
	int64_t t_head_ms;   /* the request's first byte */
	char in[IN_BUF];
	size_t inoff, inlen; /* what the parser has not seen is in[inoff..inlen) */
	struct vd_strbuf out;
	size_t outoff;       /* written so far of out */
	bool close_after;    /* once out is written, close instead of reading on */
	bool linger;         /* ... after reading what the client still sends */

	/* the request */
	http_parser p;
	struct vd_strbuf url, body;
	char *target;        /* path '\0' query '\0' */
	size_t head_bytes;
	bool head_done, msg_done, keep_alive, too_big, expect_continue;
	char hname[16], hval[16]; /* the header being parsed (short ones only) */
	size_t hname_len, hval_len;
	bool in_value;

	/* the stream */
	void (*on_gone)(void *arg);
	void *gone_arg;
};

static void conn_close(struct vd_ctl_req *c);
static void conn_update(struct vd_ctl_req *c);
static void conn_parse(struct vd_ctl_req *c);

/* ------------------------------------------------------------- parsing */

/* A header line ended: remember the one header that matters here. */
static void
end_header(struct vd_ctl_req *c)
{
	if (c->in_value && c->hname_len == 6 && strncasecmp(c->hname, "expect", 6) == 0 &&
	    c->hval_len == 12 && strncasecmp(c->hval, "100-continue", 12) == 0)
		c->expect_continue = true;
	c->in_value = false;
	c->hname_len = c->hval_len = 0;
}

/* Append a piece of a header's name or value; longer than buf: no match. */
static void
add_piece(char *buf, size_t size, size_t *len, const char *at, size_t n)
{
	if (*len + n < size) {
		memcpy(buf + *len, at, n);
		*len += n;
	} else {
		*len = size;
	}
}

static int
on_url(http_parser *p, const char *at, size_t n)
{
	struct vd_ctl_req *c = p->data;

	vd_strbuf_append(&c->url, at, n);
	return 0;
}

static int
on_header_field(http_parser *p, const char *at, size_t n)
{
	struct vd_ctl_req *c = p->data;

	if (c->head_done) /* trailers */
		return 0;
	if (c->in_value)
		end_header(c);
	add_piece(c->hname, sizeof(c->hname), &c->hname_len, at, n);
	return 0;
}

static int
on_header_value(http_parser *p, const char *at, size_t n)
{
	struct vd_ctl_req *c = p->data;

	if (c->head_done)
		return 0;
	c->in_value = true;
	add_piece(c->hval, sizeof(c->hval), &c->hval_len, at, n);
	return 0;
}

/* The head is whole: pause, so the caller checks it before the body. */
static int
on_headers_complete(http_parser *p)
{
	struct vd_ctl_req *c = p->data;

	end_header(c);
	c->head_done = true;
	c->keep_alive = http_should_keep_alive(p);
	http_parser_pause(p, 1);
	return 0;
}

static int
on_body(http_parser *p, const char *at, size_t n)
{
	struct vd_ctl_req *c = p->data;

	if (c->body.len + n > MAX_BODY) { /* chunked: the length was not known */
		c->too_big = true;
		return -1;
	}
	vd_strbuf_append(&c->body, at, n);
	return 0;
}

static int
on_message_complete(http_parser *p)
{
	struct vd_ctl_req *c = p->data;

	c->msg_done = true;
	http_parser_pause(p, 1); /* what follows is the next request's */
	return 0;
}

static const http_parser_settings settings = {
	.on_url = on_url,
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

/* Forget the request, for the next one on the connection. */
static void
req_reset(struct vd_ctl_req *c)
{
	vd_strbuf_free(&c->url);
	vd_strbuf_free(&c->body);
	free(c->target);
	c->target = NULL;
	http_parser_init(&c->p, HTTP_REQUEST);
	c->p.data = c;
	c->head_bytes = 0;
	c->head_done = c->msg_done = c->keep_alive = c->too_big = c->expect_continue = false;
	c->hname_len = c->hval_len = 0;
	c->in_value = false;
	c->close_after = c->linger = false;
	c->on_gone = NULL;
	c->gone_arg = NULL;
	if (c->outoff == c->out.len && c->out.cap > OUT_KEEP) {
		vd_strbuf_free(&c->out);
		c->outoff = 0;
	}
}

/* ------------------------------------------------------------- answers */

static const char *
reason(int status)
{
	const char *s = http_status_str((enum http_status)status);

	return strcmp(s, "<unknown>") == 0 ? "Status" : s;
}

/* Append the head of an answer: with Content-Length LEN, or for a stream
 * (no length, Connection: close). */
static void
put_head(struct vd_ctl_req *c, int status, const char *type, bool stream, size_t len)
{
	if (status < 100 || status > 999)
		status = 500;
	vd_strbuf_printf(&c->out, "HTTP/1.1 %d %s\r\nServer: vdctl\r\nContent-Type: %s\r\n", status,
			 reason(status), type ? type : "text/plain");
	if (!stream)
		vd_strbuf_printf(&c->out, "Content-Length: %zu\r\n", len);
	if (!c->keep_alive)
		vd_strbuf_puts(&c->out, "Connection: close\r\n");
	else if (c->p.http_major == 1 && c->p.http_minor == 0)
		vd_strbuf_puts(&c->out, "Connection: keep-alive\r\n");
	vd_strbuf_puts(&c->out, "\r\n");
}

/* A whole answer, its body in two parts (B may be NULL). */
static void
put_reply(struct vd_ctl_req *c, int status, const char *type, const char *a, size_t alen,
	  const char *b, size_t blen)
{
	put_head(c, status, type, false, alen + blen);
	if (c->p.method != HTTP_HEAD) {
		vd_strbuf_append(&c->out, a ? a : "", a ? alen : 0);
		vd_strbuf_append(&c->out, b ? b : "", b ? blen : 0);
	}
	c->state = C_REPLY;
	c->close_after = !c->keep_alive;
	c->t_active_ms = vd_ev_now_ms(c->ctl->ev);
	conn_update(c);
}

/* The server's own answer to a request it will not hand over (400, 408,
 * 413, 431, 500); the connection closes after it. */
static void
answer_error(struct vd_ctl_req *c, int status, const char *msg)
{
	char body[128];
	int n = snprintf(body, sizeof(body), "{\"error\":\"%s\"}\n", msg);

	c->keep_alive = false;
	c->linger = !c->msg_done; /* part of the request may still be coming */
	put_reply(c, status, "application/json", body, (size_t)n, NULL, 0);
}

/* ------------------------------------------------------------ requests */

/* Hand a whole request to the handler. */
static void
dispatch(struct vd_ctl_req *c)
{
	struct http_parser_url u;
	const char *url = c->url.s ? c->url.s : "", *path = "/", *query = "";
	size_t plen = 1, qlen = 0;

	if (vd_strbuf_failed(&c->url) || vd_strbuf_failed(&c->body)) {
		answer_error(c, 500, "out of memory");
		return;
	}
	http_parser_url_init(&u);
	if (http_parser_parse_url(url, c->url.len, c->p.method == HTTP_CONNECT, &u) != 0) {
		answer_error(c, 400, "bad request target");
		return;
	}
	if (u.field_set & (1 << UF_PATH)) {
		path = url + u.field_data[UF_PATH].off;
		plen = u.field_data[UF_PATH].len;
	}
	if (u.field_set & (1 << UF_QUERY)) {
		query = url + u.field_data[UF_QUERY].off;
		qlen = u.field_data[UF_QUERY].len;
	}
	if (!(c->target = malloc(plen + qlen + 2))) {
		answer_error(c, 500, "out of memory");
		return;
	}
	memcpy(c->target, path, plen);
	c->target[plen] = '\0';
	memcpy(c->target + plen + 1, query, qlen);
	c->target[plen + 1 + qlen] = '\0';
	c->state = C_HANDLER;
	c->ctl->fn(c->ctl->arg, c);
	if (c->state == C_HANDLER)
		answer_error(c, 500, "the handler gave no answer");
}

/* The head is whole: check it before the body comes. false when answered. */
static bool
check_head(struct vd_ctl_req *c)
{
	const http_parser *p = &c->p;
	bool has_length = !(p->flags & F_CHUNKED) && p->content_length != ULLONG_MAX;

	if (has_length && p->content_length > MAX_BODY) {
		answer_error(c, 413, "request body too large");
		return false;
	}
	if (c->expect_continue && p->http_major == 1 && p->http_minor >= 1 &&
	    ((p->flags & F_CHUNKED) || (has_length && p->content_length > 0))) {
		vd_strbuf_puts(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
		conn_update(c);
	}
	return c->state != C_CLOSED;
}

/* Feed the parser what was read; hand a whole request over. */
static void
conn_parse(struct vd_ctl_req *c)
{
	while (c->state == C_READ && c->inoff < c->inlen) {
		bool had_head = c->head_done;
		size_t n = http_parser_execute(&c->p, &settings, c->in + c->inoff,
					       c->inlen - c->inoff);
		enum http_errno e = HTTP_PARSER_ERRNO(&c->p);

		c->inoff += n;
		if (!had_head)
			c->head_bytes += n;
		if (e != HPE_OK && e != HPE_PAUSED) {
			answer_error(c, c->too_big ? 413 : 400,
				     c->too_big ? "request body too large" : "bad request");
			return;
		}
		if (!had_head && c->head_bytes > MAX_HEAD) {
			answer_error(c, 431, "request head too large");
			return;
		}
		if (e == HPE_PAUSED)
			http_parser_pause(&c->p, 0);
		if (!had_head && c->head_done && !check_head(c))
			return;
		if (c->msg_done) {
			dispatch(c);
			return;
		}
	}
}

/* ---------------------------------------------------------- connections */

static void
conn_release(void *arg)
{
	struct vd_ctl_req *c = arg;

	vd_strbuf_free(&c->url);
	vd_strbuf_free(&c->body);
	vd_strbuf_free(&c->out);
	free(c->target);
	free(c);
}

/* The one way a connection ends. A stream still open is cut: its owner
 * hears of it now (on_gone), and the req is freed after the round. */
static void
conn_close(struct vd_ctl_req *c)
{
	struct vd_ctl *ctl = c->ctl;
	bool gone = c->state == C_STREAM && c->on_gone;

	if (c->state == C_CLOSED)
		return;
	c->state = C_CLOSED;
	vd_ev_del(ctl->ev, &c->h);
	close(c->h.fd);
	c->h.fd = -1;
	if (c->prev)
		c->prev->next = c->next;
	else
		ctl->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	ctl->nconns--;
	if (gone)
		c->on_gone(c->gone_arg);
	vd_ev_defer(ctl->ev, conn_release, c);
}

static void
cut_later(void *arg)
{
	conn_close(arg); /* a no-op when something else closed it first */
}

/* Close from inside a call of the API: after the round, so that a stream's
 * on_gone does not run inside its owner's call. Nothing is read or written
 * meanwhile. */
static void
conn_cut(struct vd_ctl_req *c)
{
	if (c->cutting || c->state == C_CLOSED || vd_ev_defer(c->ctl->ev, cut_later, c) < 0)
		return;
	c->cutting = true;
	vd_ev_set(c->ctl->ev, &c->h, 0);
}

/* Watch what the state needs: input while reading a request, the client's
 * going away during a stream, the socket's room while output waits. */
static void
conn_update(struct vd_ctl_req *c)
{
	uint32_t events = 0;

	if (c->state == C_CLOSED || c->state == C_HANDLER || c->cutting)
		return;
	if (vd_strbuf_failed(&c->out)) {
		conn_cut(c);
		return;
	}
	switch (c->state) {
	case C_IDLE:
	case C_READ:
	case C_LINGER:
		events = EPOLLIN;
		break;
	case C_STREAM:
		events = EPOLLRDHUP;
		break;
	case C_REPLY:
		events = EPOLLOUT; /* finished from the loop, even with nothing to write */
		break;
	case C_HANDLER:
	case C_CLOSED:
		return;
	}
	if (c->outoff < c->out.len)
		events |= EPOLLOUT;
	if (vd_ev_set(c->ctl->ev, &c->h, events) < 0)
		conn_cut(c);
}

/* Write what the socket takes of the output. -1 when the client is gone. */
static int
conn_send(struct vd_ctl_req *c)
{
	while (c->outoff < c->out.len) {
		ssize_t n = send(c->h.fd, c->out.s + c->outoff, c->out.len - c->outoff,
				 MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n <= 0)
			return -1;
		c->outoff += (size_t)n;
		c->t_active_ms = vd_ev_now_ms(c->ctl->ev);
	}
	c->out.len = c->outoff = 0;
	return 0;
}

/* Drop what was written from the front of the output, once it is more than
 * what waits (so a long stream does not grow the buffer for ever). */
static void
out_compact(struct vd_ctl_req *c)
{
	size_t pending = c->out.len - c->outoff;

	if (c->outoff == 0 || c->outoff < pending)
		return;
	memmove(c->out.s, c->out.s + c->outoff, pending);
	c->out.len = pending;
	c->outoff = 0;
}

/* An answer is written: close, linger, or go on to the next request. */
static void
reply_done(struct vd_ctl_req *c)
{
	int64_t now = vd_ev_now_ms(c->ctl->ev);

	if (c->close_after && !c->linger) {
		conn_close(c);
		return;
	}
	if (c->close_after) {
		/* the client may still be sending: closing with its bytes unread
		 * would reset the connection, and the answer with it */
		shutdown(c->h.fd, SHUT_WR);
		c->state = C_LINGER;
		c->t_active_ms = now;
		return;
	}
	req_reset(c);
	c->state = c->inoff < c->inlen ? C_READ : C_IDLE;
	c->t_active_ms = c->t_head_ms = now;
	conn_parse(c);
}

static void
conn_read(struct vd_ctl_req *c)
{
	int64_t now = vd_ev_now_ms(c->ctl->ev);
	ssize_t n;

	do
		n = recv(c->h.fd, c->in, sizeof(c->in), 0);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return;
	if (n <= 0) {
		conn_close(c); /* between requests that is normal */
		return;
	}
	if (c->state == C_LINGER)
		return; /* thrown away */
	c->inoff = 0;
	c->inlen = (size_t)n;
	c->t_active_ms = now;
	if (c->state == C_IDLE) {
		c->state = C_READ;
		c->t_head_ms = now;
	}
	conn_parse(c);
}

static void
conn_io(struct vd_ev *ev, struct vd_ev_handle *h, uint32_t events)
{
	struct vd_ctl_req *c = (struct vd_ctl_req *)h;

	(void)ev;
	if (c->outoff < c->out.len && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) &&
	    conn_send(c) < 0) {
		conn_close(c);
		return;
	}
	switch (c->state) {
	case C_REPLY:
		if (c->outoff == c->out.len)
			reply_done(c);
		break;
	case C_STREAM:
		if (events & (EPOLLRDHUP | EPOLLERR | EPOLLHUP)) {
			conn_close(c); /* the client went away */
			return;
		}
		break;
	case C_IDLE:
	case C_READ:
	case C_LINGER:
		if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
			conn_read(c);
		break;
	case C_HANDLER:
	case C_CLOSED:
		return;
	}
	conn_update(c);
}

static void
conn_new(struct vd_ctl *ctl, int fd)
{
	struct vd_ctl_req *c = calloc(1, sizeof(*c));
	int one = 1;

	if (!c) {
		close(fd);
		return;
	}
	if (!ctl->path)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->h.fd = fd;
	c->h.fn = conn_io;
	c->ctl = ctl;
	c->state = C_IDLE;
	c->t_active_ms = vd_ev_now_ms(ctl->ev);
	req_reset(c);
	if (vd_ev_add(ctl->ev, &c->h, EPOLLIN) < 0) {
		close(fd);
		free(c);
		return;
	}
	c->next = ctl->conns;
	if (ctl->conns)
		ctl->conns->prev = c;
	ctl->conns = c;
	ctl->nconns++;
}

static void
accept_conns(struct vd_ev *ev, struct vd_ev_handle *h, uint32_t events)
{
	struct vd_ctl *ctl = (struct vd_ctl *)((char *)h - offsetof(struct vd_ctl, listener));

	(void)events;
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		int fd = accept4(h->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				/* the listener stays readable: wait for the tick, or
				 * the loop would spin */
				vd_ev_set(ev, h, 0);
				ctl->paused = true;
			}
			return;
		}
		if (ctl->nconns >= MAX_CONNS)
			close(fd);
		else
			conn_new(ctl, fd);
	}
}

/* ---------------------------------------------------------------- tick */

static void
check_conn(struct vd_ctl_req *c, int64_t now)
{
	switch (c->state) {
	case C_IDLE:
	case C_REPLY:
		if (now - c->t_active_ms >= IDLE_MS)
			conn_close(c);
		break;
	case C_READ:
		if ((!c->head_done && now - c->t_head_ms >= HEAD_MS) ||
		    now - c->t_active_ms >= IDLE_MS)
			answer_error(c, 408, "request timeout");
		break;
	case C_LINGER:
		if (now - c->t_active_ms >= LINGER_MS)
			conn_close(c);
		break;
	case C_HANDLER:
	case C_STREAM: /* as long as its owner wants */
	case C_CLOSED:
		break;
	}
}

static int64_t
tick(struct vd_ev *ev, void *arg)
{
	struct vd_ctl *ctl = arg;
	int64_t now = vd_ev_now_ms(ev);
	struct vd_ctl_req *c, *next;

	if (ctl->paused && vd_ev_set(ev, &ctl->listener, EPOLLIN) == 0)
		ctl->paused = false;
	for (c = ctl->conns; c; c = next) {
		next = c->next; /* c may close */
		check_conn(c, now);
	}
	return TICK_MS;
}

/* ------------------------------------------------------------ listeners */

static struct vd_ctl *
ctl_new(struct vd_ev *ev, vd_ctl_handler_fn fn, void *arg, struct vd_error *err)
{
	struct vd_ctl *ctl = calloc(1, sizeof(*ctl));

	if (!ctl) {
		vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
		return NULL;
	}
	ctl->ev = ev;
	ctl->fn = fn;
	ctl->arg = arg;
	ctl->listener.fd = -1;
	ctl->listener.fn = accept_conns;
	return ctl;
}

/* Watch the listening fd (taken) and start the tick. */
static int
ctl_start(struct vd_ctl *ctl, int fd, struct vd_error *err)
{
	ctl->listener.fd = fd;
	if (vd_ev_add(ctl->ev, &ctl->listener, EPOLLIN) < 0)
		return vd_error_errno(err, errno, "epoll");
	ctl->tick = vd_ev_timer(ctl->ev, TICK_MS, tick, ctl);
	if (ctl->tick < 0) {
		vd_ev_del(ctl->ev, &ctl->listener);
		return vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
	}
	return 0;
}

static void
ctl_release(void *arg)
{
	struct vd_ctl *ctl = arg;

	free(ctl->path);
	free(ctl);
}

/* PATH made absolute, to unlink it at the end even if the process has
 * changed directory since (a daemon does). */
static char *
absolute(const char *path)
{
	_cleanup_free_ char *cwd = NULL;
	char *s;

	if (path[0] == '/')
		return strdup(path);
	if (!(cwd = getcwd(NULL, 0)) || asprintf(&s, "%s/%s", cwd, path) < 0)
		return NULL;
	return s;
}

struct vd_ctl *
vd_ctl_listen_unix(struct vd_ev *ev, const char *path, vd_ctl_handler_fn fn, void *arg,
		   struct vd_error *err)
{
	static unsigned seq;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	const char *slash = strrchr(path, '/');
	int dirlen = slash ? (int)(slash - path + 1) : 0, n;
	_cleanup_close_ int fd = -1;
	struct vd_ctl *ctl;
	struct stat st;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		vd_error_set(err, VD_EXIT_INPUT, "socket path '%s' is too long", path);
		return NULL;
	}
	/* a temporary name beside it, in the same directory (for the rename) */
	n = snprintf(sun.sun_path, sizeof(sun.sun_path), "%.*s.ctl-%d-%u.tmp", dirlen, path,
		     (int)getpid(), seq++);
	if (n < 0 || (size_t)n >= sizeof(sun.sun_path)) {
		vd_error_set(err, VD_EXIT_INPUT, "socket path '%s' is too long", path);
		return NULL;
	}
	if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
		vd_error_set(err, VD_EXIT_FAILURE, "'%s' exists and is not a socket", path);
		return NULL;
	}
	if (!(ctl = ctl_new(ev, fn, arg, err)))
		return NULL;
	if (!(ctl->path = absolute(path))) {
		vd_error_errno(err, errno, "cannot resolve '%s'", path);
		free(ctl);
		return NULL;
	}
	unlink(sun.sun_path); /* a leftover of a crash */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		vd_error_errno(err, errno, "cannot bind a socket in '%.*s'", dirlen ? dirlen : 1,
			       dirlen ? path : ".");
		ctl_release(ctl);
		return NULL;
	}
	/* 0600 before it listens: until then a connect is refused */
	if (chmod(sun.sun_path, 0600) < 0 || listen(fd, 128) < 0 ||
	    stat(sun.sun_path, &st) < 0) {
		vd_error_errno(err, errno, "cannot listen on '%s'", path);
		unlink(sun.sun_path);
		ctl_release(ctl);
		return NULL;
	}
	ctl->dev = st.st_dev;
	ctl->ino = st.st_ino;
	if (ctl_start(ctl, fd, err) < 0) {
		unlink(sun.sun_path);
		ctl_release(ctl);
		return NULL;
	}
	if (rename(sun.sun_path, path) < 0) {
		vd_error_errno(err, errno, "cannot listen on '%s'", path);
		unlink(sun.sun_path);
		vd_ev_timer_cancel(ev, ctl->tick);
		vd_ev_del(ev, &ctl->listener);
		ctl_release(ctl);
		return NULL;
	}
	vd_steal_fd(&fd);
	return ctl;
}

struct vd_ctl *
vd_ctl_listen_tcp(struct vd_ev *ev, const char *host, int port, vd_ctl_handler_fn fn,
		  void *arg, struct vd_error *err)
{
	struct sockaddr_storage sa;
	socklen_t len;
	_cleanup_close_ int fd = -1;
	struct vd_ctl *ctl;
	int one = 1;

	if (port < 0 || port > 65535 || vd_net_addr(host, port, &sa, &len) < 0) {
		vd_error_set(err, VD_EXIT_INPUT, "'%s:%d' is not an IP address and port", host,
			     port);
		return NULL;
	}
	fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, len) < 0 || listen(fd, 128) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
		vd_error_errno(err, errno, "cannot listen on %s:%d", host, port);
		return NULL;
	}
	if (!(ctl = ctl_new(ev, fn, arg, err)))
		return NULL;
	ctl->port = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
						   : ((struct sockaddr_in *)&sa)->sin_port);
	if (ctl_start(ctl, fd, err) < 0) {
		ctl_release(ctl);
		return NULL;
	}
	vd_steal_fd(&fd);
	return ctl;
}

struct vd_ctl *
vd_ctl_adopt(struct vd_ev *ev, int fd, const char *path, vd_ctl_handler_fn fn, void *arg,
	     struct vd_error *err)
{
	struct sockaddr_storage sa;
	socklen_t len = sizeof(sa);
	struct vd_ctl *ctl;
	struct stat st;
	/* a TCP socket: listening on the address it is bound to */
	bool ok = path ? vd_net_is_listener(fd, NULL)
		       : getsockname(fd, (struct sockaddr *)&sa, &len) == 0 &&
				 sa.ss_family != AF_UNIX && vd_net_is_listener(fd, &sa);

	if (!ok) {
		vd_error_set(err, VD_EXIT_FAILURE, "the inherited socket is not a listening %s socket",
			     path ? "unix" : "TCP");
		return NULL;
	}
	if (path && stat(path, &st) < 0) {
		vd_error_errno(err, errno, "the inherited socket's file '%s'", path);
		return NULL;
	}
	if (!(ctl = ctl_new(ev, fn, arg, err)))
		return NULL;
	if (path && !(ctl->path = absolute(path))) {
		vd_error_errno(err, errno, "cannot resolve '%s'", path);
		ctl_release(ctl);
		return NULL;
	}
	if (path) {
		ctl->dev = st.st_dev;
		ctl->ino = st.st_ino;
	} else {
		ctl->port = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
							   : ((struct sockaddr_in *)&sa)->sin_port);
	}
	if (ctl_start(ctl, fd, err) < 0) {
		ctl_release(ctl);
		return NULL;
	}
	return ctl;
}

int
vd_ctl_port(const struct vd_ctl *ctl)
{
	return ctl->port;
}

int
vd_ctl_listen_fd(const struct vd_ctl *ctl)
{
	return ctl->listener.fd;
}

void
vd_ctl_detach(struct vd_ctl *ctl)
{
	if (ctl->listener.fd < 0)
		return;
	vd_ev_del(ctl->ev, &ctl->listener);
	close(ctl->listener.fd);
	ctl->listener.fd = -1;
	ctl->paused = false;
}

void
vd_ctl_free(struct vd_ctl *ctl)
{
	struct stat st;

	if (!ctl || ctl->freeing)
		return;
	ctl->freeing = true;
	vd_ev_timer_cancel(ctl->ev, ctl->tick);
	while (ctl->conns)
		conn_close(ctl->conns); /* a stream's on_gone runs here */
	/* unless another process has put its own socket there since, or
	 * holds this one now (vd_ctl_detach) */
	if (ctl->listener.fd >= 0 && ctl->path && stat(ctl->path, &st) == 0 &&
	    st.st_dev == ctl->dev && st.st_ino == ctl->ino)
		unlink(ctl->path);
	vd_ctl_detach(ctl);
	/* an event of this round may still point at the listener */
	vd_ev_defer(ctl->ev, ctl_release, ctl);
}

/* ------------------------------------------------------------- the req */

const char *
vd_ctl_method(const struct vd_ctl_req *req)
{
	return http_method_str((enum http_method)req->p.method);
}

const char *
vd_ctl_path(const struct vd_ctl_req *req)
{
	return req->target ? req->target : "/";
}

const char *
vd_ctl_query(const struct vd_ctl_req *req)
{
	return req->target ? req->target + strlen(req->target) + 1 : "";
}

const char *
vd_ctl_body(const struct vd_ctl_req *req, size_t *len)
{
	if (len)
		*len = req->body.len;
	return req->body.s ? req->body.s : "";
}

void
vd_ctl_reply(struct vd_ctl_req *req, int status, const char *content_type, const char *body,
	     size_t len)
{
	if (req->state != C_HANDLER)
		return;
	put_reply(req, status, content_type, body, len, NULL, 0);
}

void
vd_ctl_reply_json(struct vd_ctl_req *req, int status, const json_t *j)
{
	static const char oops[] = "{\"error\":\"cannot serialise the answer\"}\n";
	_cleanup_free_ char *s = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;

	if (req->state != C_HANDLER)
		return;
	if (!s)
		put_reply(req, 500, "application/json", oops, sizeof(oops) - 1, NULL, 0);
	else
		put_reply(req, status, "application/json", s, strlen(s), "\n", 1);
}

void
vd_ctl_stream_begin(struct vd_ctl_req *req, const char *content_type, void (*on_gone)(void *arg),
		    void *arg)
{
	if (req->state != C_HANDLER)
		return;
	req->keep_alive = false;
	put_head(req, 200, content_type, true, 0);
	req->on_gone = on_gone;
	req->gone_arg = arg;
	req->state = C_STREAM;
	conn_update(req);
}

void
vd_ctl_stream_write(struct vd_ctl_req *req, const char *data, size_t len)
{
	if (req->state != C_STREAM || req->cutting || req->p.method == HTTP_HEAD || !len)
		return;
	if (req->out.len - req->outoff + len > MAX_UNSENT) {
		/* the loop may not have had a turn to write: try once now */
		if (conn_send(req) < 0 || req->out.len - req->outoff + len > MAX_UNSENT) {
			conn_cut(req);
			return;
		}
	}
	out_compact(req);
	vd_strbuf_append(&req->out, data, len);
	conn_update(req);
}

int
vd_ctl_take(struct vd_ctl_req *req)
{
	int fd = req->h.fd;

	if (req->state != C_HANDLER)
		return -1;
	vd_ev_del(req->ctl->ev, &req->h);
	req->h.fd = -1;
	conn_close(req); /* no stream: no on_gone; the memory goes after the round */
	return fd;
}

void
vd_ctl_stream_end(struct vd_ctl_req *req)
{
	if (req->state != C_STREAM)
		return;
	req->state = C_REPLY; /* a cut coming (conn_cut) closes it without on_gone */
	req->close_after = true;
	req->t_active_ms = vd_ev_now_ms(req->ctl->ev);
	conn_update(req);
}
