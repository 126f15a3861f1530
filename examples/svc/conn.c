/*
 * Connections: reading, parsing and answering HTTP/1.1.
 *
 * Both serving models share this.  A connection reads into a fixed 16 KiB
 * buffer until it holds a whole request head (else 431), keeps what the
 * routes need (method, target, keep-alive), then reads and drops the body
 * named by Content-Length before the request counts as complete, so whoever
 * serves it never reads.  Pipelined requests stay in the buffer and are
 * taken one at a time.  A malformed head is answered 400 and the connection
 * closed; a chunked body 411.  The parser follows picohttpparser's contract:
 * it returns the length of the head, 0 while incomplete, -1 when malformed.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "svc.h"

/* A response head is under 256 bytes: any body fits after it. */
_Static_assert(SVC_OUT_MAX >= SVC_BODY_MAX + 256, "SVC_OUT_MAX too small");

/* ---------------------------------------------------------------- parser */

/* The end of the head (past its blank line) in buf, or NULL. */
static const char *
head_end(const char *buf, size_t len)
{
	const char *p = buf, *end = buf + len, *nl;

	while ((nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		if (nl + 1 < end && nl[1] == '\n')
			return nl + 2;
		if (nl + 2 < end && nl[1] == '\r' && nl[2] == '\n')
			return nl + 3;
		p = nl + 1;
	}
	return NULL;
}

/* "GET /path?query HTTP/1.1"; returns -1 when malformed. */
static int
parse_request_line(const char *p, size_t len, struct svc_request *req)
{
	const char *sp1, *sp2, *end = p + len;
	size_t tlen;

	if ((sp1 = memchr(p, ' ', len)) == NULL || sp1 == p)
		return -1;
	if ((sp2 = memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1))) == NULL)
		return -1;
	if (end - sp2 - 1 != 8 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0 ||
	    sp2[8] < '0' || sp2[8] > '9')
		return -1;
	tlen = (size_t)(sp2 - sp1 - 1);
	if (tlen == 0 || sp1[1] != '/')
		return -1;
	req->get = sp1 - p == 3 && memcmp(p, "GET", 3) == 0;
	req->keepalive = sp2[8] != '0';
	if (tlen >= sizeof(req->target))
		req->reject = 414;
	else {
		memcpy(req->target, sp1 + 1, tlen);
		req->target[tlen] = '\0';
	}
	return 0;
}

/* Whether the comma-separated list [p, end) holds token tok. */
static int
has_token(const char *p, const char *end, const char *tok)
{
	size_t n = strlen(tok);
	const char *q;

	while (p < end) {
		while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
			p++;
		for (q = p; q < end && *q != ',' && *q != ' ' && *q != '\t'; q++)
			;
		if ((size_t)(q - p) == n && strncasecmp(p, tok, n) == 0)
			return 1;
		p = q;
	}
	return 0;
}

/* Whether the header name [p, end) is name, ignoring case. */
static int
is_name(const char *p, const char *end, const char *name)
{
	size_t n = strlen(name);

	return (size_t)(end - p) == n && strncasecmp(p, name, n) == 0;
}

/* One "Name: value" line; returns -1 when malformed. */
static int
parse_header(const char *p, size_t len, struct svc_request *req)
{
	const char *colon, *v, *end = p + len;
	unsigned long long n = 0;

	if ((colon = memchr(p, ':', len)) == NULL || colon == p)
		return -1;
	if (memchr(p, ' ', (size_t)(colon - p)) != NULL ||
	    memchr(p, '\t', (size_t)(colon - p)) != NULL)
		return -1;
	for (v = colon + 1; v < end && (*v == ' ' || *v == '\t'); v++)
		;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	if (is_name(p, colon, "content-length")) {
		if (v == end)
			return -1;
		for (; v < end; v++) {
			if (*v < '0' || *v > '9' || n > (~0ULL - 9) / 10)
				return -1;
			n = n * 10 + (unsigned long long)(*v - '0');
		}
		req->clen = n;
	} else if (is_name(p, colon, "transfer-encoding")) {
		if (req->reject == 0)
			req->reject = 411;
	} else if (is_name(p, colon, "connection")) {
		if (has_token(v, end, "close"))
			req->keepalive = -1;
		else if (has_token(v, end, "keep-alive") && req->keepalive == 0)
			req->keepalive = 1;
	}
	return 0;
}

/*
 * Parse the request head at the start of buf into req.  Returns the length
 * of the head, 0 while it is incomplete, or -1 (req->reject set to 400) when
 * it is malformed.  A head that parses but must still be refused (414, 411)
 * sets req->reject and req->keepalive to 0.
 */
ssize_t
svc_parse(const char *buf, size_t len, struct svc_request *req)
{
	const char *end, *p, *nl;
	size_t n;
	int line = 0;

	memset(req, 0, sizeof(*req));
	if ((end = head_end(buf, len)) == NULL)
		return 0;
	for (p = buf; p < end; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		n = (size_t)(nl - p);
		if (n > 0 && p[n - 1] == '\r')
			n--;
		if (n == 0)
			break;
		if (memchr(p, '\0', n) != NULL || memchr(p, '\r', n) != NULL)
			goto bad;
		if (line++ == 0 ? parse_request_line(p, n, req) == -1 :
		    parse_header(p, n, req) == -1)
			goto bad;
	}
	if (line == 0)
		goto bad;
	req->keepalive = req->keepalive > 0 && req->reject == 0;
	return end - buf;
bad:
	req->reject = 400;
	req->keepalive = 0;
	return -1;
}

/* ----------------------------------------------------------- connections */

static void
consume(struct svc_conn *c, size_t n)
{
	memmove(c->in, c->in + n, c->inlen - n);
	c->inlen -= n;
}

/* An epoll fd watching the listening socket and the signalfd, or -1. */
int
svc_epoll(int lfd, int sfd)
{
	struct epoll_event lev = { .events = EPOLLIN, .data.ptr = SVC_EV_LISTEN };
	struct epoll_event sev = { .events = EPOLLIN, .data.ptr = SVC_EV_SIGNAL };
	int ep;

	if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1 ||
	    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) == -1 ||
	    epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &sev) == -1) {
		svc_warn("cannot set up epoll: %s", strerror(errno));
		return -1;
	}
	return ep;
}

/*
 * Accept every pending connection on lfd and register each with ep for
 * events.  Allocation failures drop the connection; others are reported.
 */
void
svc_accept_all(int lfd, int ep, uint32_t events)
{
	struct timespec pause = { 0, 10 * 1000 * 1000 };
	struct svc_conn *c;
	int fd, on = 1;

	for (;;) {
		fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN)
				return;
			svc_warn("cannot accept: %s", strerror(errno));
			nanosleep(&pause, NULL);	/* EMFILE: do not spin */
			return;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
		if ((c = calloc(1, sizeof(*c))) == NULL) {
			close(fd);
			continue;
		}
		c->fd = fd;
		if (svc_conn_arm(ep, c, events) == -1)
			svc_conn_close(c);
	}
}

/* Watch c for events (0: stop watching); returns -1 when epoll fails,
 * and c is then the caller's to close. */
int
svc_conn_arm(int ep, struct svc_conn *c, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = c };
	int op;

	if (events == 0)
		op = EPOLL_CTL_DEL;
	else
		op = c->armed ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	/* set first: once armed, c may belong to another thread */
	c->armed = events;
	if (epoll_ctl(ep, op, c->fd, &ev) == -1) {
		svc_warn("cannot watch connection: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Take the next request out of what c has read.  Returns 1 when c->req
 * holds a whole request (body dropped), also a refused one, and 0 when more
 * input is needed.  Reads nothing.
 */
int
svc_conn_next(struct svc_conn *c)
{
	ssize_t used;
	size_t n;

	if (c->discard == 0) {
		used = svc_parse(c->in, c->inlen, &c->req);
		if (used == 0 && c->inlen < sizeof(c->in))
			return 0;
		if (used == 0) {
			c->req.reject = 431;
			c->req.keepalive = 0;
		}
		if (used <= 0 || c->req.reject != 0)
			return 1;
		consume(c, (size_t)used);
		c->discard = c->req.clen;
	}
	n = c->inlen < c->discard ? c->inlen : (size_t)c->discard;
	consume(c, n);
	c->discard -= n;
	return c->discard == 0;
}

/* Read until a request is whole (SVC_READY), the socket is dry (SVC_AGAIN)
 * or it is closed or failed (SVC_EOF). */
int
svc_conn_read(struct svc_conn *c)
{
	ssize_t n;

	for (;;) {
		if (svc_conn_next(c))
			return SVC_READY;
		n = read(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen);
		if (n > 0)
			c->inlen += (size_t)n;
		else if (n == -1 && errno == EAGAIN)
			return SVC_AGAIN;
		else if (n == 0 || errno != EINTR)
			return SVC_EOF;
	}
}

static const char *
reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 411: return "Length Required";
	case 414: return "URI Too Long";
	case 431: return "Request Header Fields Too Large";
	default: return "Internal Server Error";
	}
}

/* Put the response for c->rep into c->out, to be sent by svc_conn_flush. */
void
svc_conn_reply(struct svc_conn *c)
{
	struct svc_reply *rep = &c->rep;
	int n;

	c->close = !c->req.keepalive;
	n = snprintf(c->out, sizeof(c->out), "HTTP/1.1 %d %s\r\n"
	    "Content-Type: %s\r\nContent-Length: %zu\r\n%sConnection: %s\r\n\r\n",
	    rep->status, reason(rep->status), rep->type, rep->bodylen,
	    rep->status == 405 ? "Allow: GET\r\n" : "",
	    c->close ? "close" : "keep-alive");
	memcpy(c->out + n, rep->body, rep->bodylen);
	c->outlen = (size_t)n + rep->bodylen;
	c->outoff = 0;
}

/* Send what is left of c->out: 1 when all is sent, 0 when the socket is
 * full, -1 when the connection failed. */
int
svc_conn_flush(struct svc_conn *c)
{
	ssize_t n;

	while (c->outoff < c->outlen) {
		n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff,
		    MSG_NOSIGNAL);
		if (n > 0)
			c->outoff += (size_t)n;
		else if (n == -1 && errno == EAGAIN)
			return 0;
		else if (n == 0 || errno != EINTR)
			return -1;
	}
	return 1;
}

/*
 * The one way a connection ends.  What the client already sent and nobody
 * read is drained first: closing with unread input makes the kernel send a
 * reset, which can destroy a 400 or 431 reply before the client reads it.
 */
void
svc_conn_close(struct svc_conn *c)
{
	char junk[4096];
	int i;

	shutdown(c->fd, SHUT_WR);
	for (i = 0; i < 64 && read(c->fd, junk, sizeof(junk)) > 0; i++)
		;
	close(c->fd);
	svc_reply_release(&c->rep);
	free(c);
}
