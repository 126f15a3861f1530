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
 *
 * The one route that wants its body (POST /echo) gets it whole in memory, up
 * to SVC_DATA_MAX (else 413), framed by Content-Length or chunked (decoded
 * here: chunk extensions and trailers are read and dropped).  A reply can
 * stream a large body after its head: /echo's, or /bytes' pattern, with
 * Content-Length or in chunks.
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
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

/* Where a kept request body is: c->body */
enum {
	BODY_NONE,	/* not reading one */
	BODY_DATA,	/* c->left bytes of it (or of a chunk) to come */
	BODY_CRLF,	/* the line end after a chunk's data */
	BODY_SIZE,	/* a chunk-size line */
	BODY_TRAILER,	/* trailer lines, up to an empty one */
};

/* /bytes' body comes from here: SVC_CHUNK bytes from any offset. */
static char pattern[SVC_CHUNK + SVC_PATTERN_LEN];
static pthread_once_t pattern_once = PTHREAD_ONCE_INIT;

static void
pattern_fill(void)
{
	size_t i;

	for (i = 0; i < sizeof(pattern); i++)
		pattern[i] = SVC_PATTERN[i % SVC_PATTERN_LEN];
}

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
	req->post = sp1 - p == 4 && memcmp(p, "POST", 4) == 0;
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
		req->hasclen = 1;
	} else if (is_name(p, colon, "transfer-encoding")) {
		/* chunked alone; other codings, or a second header, are not
		 * supported */
		if (req->chunked || !is_name(v, end, "chunked")) {
			if (req->reject == 0)
				req->reject = 411;
		} else
			req->chunked = 1;
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
	if (req->chunked && req->hasclen)
		goto bad;	/* two framings: a smuggling attempt */
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

/* Refuse the request with status once its head is taken: the connection
 * closes after the answer, as the rest of the body is not read.  Returns 1,
 * as svc_conn_next does for a refused request. */
static int
refuse(struct svc_conn *c, int status)
{
	c->req.reject = status;
	c->req.keepalive = 0;
	c->body = BODY_NONE;
	return 1;
}

/* Room for n more bytes at c->req.body; -1 when out of memory. */
static int
body_room(struct svc_conn *c, size_t n)
{
	size_t cap = c->bodycap ? c->bodycap : 4096;
	char *p;

	if (c->req.bodylen + n <= c->bodycap)
		return 0;
	while (cap < c->req.bodylen + n)
		cap *= 2;
	if ((p = realloc(c->req.body, cap)) == NULL)
		return -1;
	c->req.body = p;
	c->bodycap = cap;
	return 0;
}

/* Free the kept body (also as it was before a request was taken). */
static void
body_free(struct svc_conn *c)
{
	free(c->req.body);
	c->req.body = NULL;
	c->req.bodylen = 0;
	c->bodycap = 0;
	c->body = BODY_NONE;
}

/*
 * Start keeping the body of the request whose head, head bytes at c->in, was
 * just parsed; the head itself is kept first when with_head.  Returns 1 when
 * the request is refused, else 0.
 */
static int
body_start(struct svc_conn *c, size_t head, int with_head)
{
	c->bodyhead = with_head ? head : 0;
	c->trailer = 0;
	if (!c->req.chunked && c->req.clen > SVC_DATA_MAX)
		return refuse(c, 413);
	if (body_room(c, c->bodyhead + (c->req.chunked ? 0 : c->req.clen)) == -1)
		return refuse(c, 500);
	memcpy(c->req.body, c->in, c->bodyhead);
	c->req.bodylen = c->bodyhead;
	c->left = c->req.clen;
	c->body = c->req.chunked ? BODY_SIZE : BODY_DATA;
	return 0;
}

/*
 * A chunk-size line, without its line end: 1*HEXDIG, then optional chunk
 * extensions (";" name ["=" value], which are dropped).  Returns 1 when the
 * request is refused, else 0.
 */
static int
chunk_size(struct svc_conn *c, const char *p, size_t len)
{
	unsigned long long size = 0, data = c->req.bodylen - c->bodyhead;
	size_t i;
	int d;

	for (i = 0; i < len; i++) {
		if (p[i] >= '0' && p[i] <= '9')
			d = p[i] - '0';
		else if ((p[i] | 0x20) >= 'a' && (p[i] | 0x20) <= 'f')
			d = (p[i] | 0x20) - 'a' + 10;
		else
			break;
		if (size > SVC_DATA_MAX)
			return refuse(c, 413);
		size = size * 16 + (unsigned long long)d;
	}
	if (i == 0)
		return refuse(c, 400);
	while (i < len && (p[i] == ' ' || p[i] == '\t'))
		i++;
	if (i < len && p[i] != ';')
		return refuse(c, 400);
	for (; i < len; i++)
		if (((unsigned char)p[i] < 0x20 && p[i] != '\t') || p[i] == 0x7f)
			return refuse(c, 400);
	if (size == 0) {
		c->body = BODY_TRAILER;
		return 0;
	}
	if (data + size > SVC_DATA_MAX)
		return refuse(c, 413);
	if (body_room(c, (size_t)size) == -1)
		return refuse(c, 500);
	c->left = size;
	c->body = BODY_DATA;
	return 0;
}

/*
 * Read the kept body from c->in as far as it goes.  Returns 1 when it is
 * whole (or the request is refused), 0 when more input is needed.
 */
static int
body_read(struct svc_conn *c)
{
	const char *nl;
	size_t n;

	for (;;) {
		switch (c->body) {
		case BODY_DATA:
			n = c->inlen < c->left ? c->inlen : (size_t)c->left;
			memcpy(c->req.body + c->req.bodylen, c->in, n);
			c->req.bodylen += n;
			c->left -= n;
			consume(c, n);
			if (c->left > 0)
				return 0;
			if (!c->req.chunked) {
				c->body = BODY_NONE;
				return 1;
			}
			c->body = BODY_CRLF;
			break;
		case BODY_CRLF:
			if (c->inlen == 0 || (c->inlen == 1 && c->in[0] == '\r'))
				return 0;
			if (c->in[0] == '\n')
				consume(c, 1);
			else if (c->in[0] == '\r' && c->in[1] == '\n')
				consume(c, 2);
			else
				return refuse(c, 400);
			c->body = BODY_SIZE;
			break;
		case BODY_SIZE:
		case BODY_TRAILER:
			if ((nl = memchr(c->in, '\n', c->inlen)) == NULL)
				return c->inlen == sizeof(c->in) ? refuse(c, 400) : 0;
			n = (size_t)(nl - c->in);
			if (n > 0 && c->in[n - 1] == '\r')
				n--;
			if (c->body == BODY_SIZE) {
				if (chunk_size(c, c->in, n))
					return 1;
			} else if (n == 0) {
				c->body = BODY_NONE;
				consume(c, (size_t)(nl + 1 - c->in));
				return 1;
			} else if ((c->trailer += n) > SVC_HDR_MAX ||
			    memchr(c->in, ':', n) == NULL)
				return refuse(c, 400);
			consume(c, (size_t)(nl + 1 - c->in));
			break;
		default:
			return 1;
		}
	}
}

/*
 * Take the next request out of what c has read.  Returns 1 when c->req
 * holds a whole request (body dropped, or kept when its route wants it),
 * also a refused one, and 0 when more input is needed.  Reads nothing.
 */
int
svc_conn_next(struct svc_conn *c)
{
	ssize_t used;
	size_t n;
	int keep;

	if (c->body != BODY_NONE)
		return body_read(c);
	if (c->discard == 0) {
		body_free(c);
		used = svc_parse(c->in, c->inlen, &c->req);
		if (used == 0 && c->inlen < sizeof(c->in))
			return 0;
		if (used == 0) {
			c->req.reject = 431;
			c->req.keepalive = 0;
		}
		if (used <= 0 || c->req.reject != 0)
			return 1;
		if ((keep = svc_route_keeps_body(&c->req)) != 0) {
			if (body_start(c, (size_t)used, keep == 2))
				return 1;
			consume(c, (size_t)used);
			return body_read(c);
		}
		if (c->req.chunked)
			return refuse(c, 411);
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
	case 413: return "Content Too Large";
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
	char allow[32] = "", length[48];
	int n;

	c->close = !c->req.keepalive;
	if (rep->status == 405)
		snprintf(allow, sizeof(allow), "Allow: %s\r\n",
		    rep->allow != NULL ? rep->allow : "GET");
	if (rep->stream && rep->chunked)
		snprintf(length, sizeof(length),
		    "Transfer-Encoding: chunked\r\n");
	else
		snprintf(length, sizeof(length), "Content-Length: %zu\r\n",
		    rep->stream ? rep->datalen : rep->bodylen);
	n = snprintf(c->out, sizeof(c->out), "HTTP/1.1 %d %s\r\n"
	    "Content-Type: %s\r\n%s%sConnection: %s\r\n\r\n",
	    rep->status, reason(rep->status), rep->type, length, allow,
	    c->close ? "close" : "keep-alive");
	if (rep->stream)
		pthread_once(&pattern_once, pattern_fill);
	else {
		memcpy(c->out + n, rep->body, rep->bodylen);
		n += (int)rep->bodylen;
	}
	c->outlen = (size_t)n;
	c->outoff = 0;
	c->dataoff = 0;
	c->seglen = c->segoff = 0;
	c->replying = 1;
}

/*
 * The next piece of a streamed body into c->seg (and, when chunked, its
 * framing into c->out); 0 when there is none left.  A chunk's closing CRLF
 * goes out in front of the next chunk's size line.
 */
static int
next_piece(struct svc_conn *c)
{
	struct svc_reply *rep = &c->rep;
	size_t left, n;

	if (!rep->stream || c->dataoff > rep->datalen)
		return 0;
	left = rep->datalen - c->dataoff;
	if (!rep->chunked && left == 0)
		return 0;
	n = left < SVC_CHUNK || (rep->data != NULL && !rep->chunked) ?
	    left : SVC_CHUNK;
	c->seg = rep->data != NULL ? rep->data + c->dataoff :
	    pattern + c->dataoff % SVC_PATTERN_LEN;
	c->seglen = n;
	c->segoff = 0;
	if (rep->chunked)
		c->outlen = (size_t)snprintf(c->out, sizeof(c->out),
		    "%s%zx\r\n%s", c->dataoff > 0 ? "\r\n" : "", n,
		    n == 0 ? "\r\n" : "");
	else
		c->outlen = 0;
	c->outoff = 0;
	/* past the end once the last chunk (or all the data) is handed out */
	c->dataoff += n == 0 ? 1 : n;
	return 1;
}

/* Send what is left of c->out, and of a streamed body: 1 when all is sent,
 * 0 when the socket is full, -1 when the connection failed. */
int
svc_conn_flush(struct svc_conn *c)
{
	const char *p;
	size_t *off, len;
	ssize_t n;

	for (;;) {
		if (c->outoff < c->outlen) {
			p = c->out;
			off = &c->outoff;
			len = c->outlen;
		} else if (c->segoff < c->seglen) {
			p = c->seg;
			off = &c->segoff;
			len = c->seglen;
		} else if (next_piece(c))
			continue;
		else
			break;
		n = send(c->fd, p + *off, len - *off, MSG_NOSIGNAL);
		if (n > 0)
			*off += (size_t)n;
		else if (n == -1 && errno == EAGAIN)
			return 0;
		else if (n == 0 || errno != EINTR)
			return -1;
	}
	c->replying = 0;
	c->rep.data = NULL;
	body_free(c);
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
	free(c->req.body);
	free(c);
}
