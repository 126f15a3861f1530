/*
 * The tests' raw HTTP/1.x client (see httptest.h): blocking sockets with
 * timeouts, a buffer of unread input per connection, and a response reader
 * that knows the three ways a body can be framed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "httptest.h"
#include "vdtest.h"

long
vt_io_ms(void)
{
	return atol(vt_env("VD_TEST_IO_MS", "20000"));
}

/* Connect c through a new socket of FAMILY whose sends and receives time
 * out after vt_io_ms(). */
static int
conn_connect(struct vt_conn *c, int family, const struct sockaddr *sa, socklen_t salen)
{
	long ms = vt_io_ms();
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	int one = 1;

	c->len = 0;
	if ((c->fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (family == AF_INET)
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, sa, salen) < 0) {
		close(c->fd);
		c->fd = -1;
		return -1;
	}
	return 0;
}

int
vt_conn_tcp(struct vt_conn *c, int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };

	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return conn_connect(c, AF_INET, (struct sockaddr *)&sin, sizeof(sin));
}

int
vt_conn_unix(struct vt_conn *c, const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	return conn_connect(c, AF_UNIX, (struct sockaddr *)&sun, sizeof(sun));
}

void
vt_conn_close(struct vt_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->len = 0;
}

int
vt_conn_send(struct vt_conn *c, const void *data, size_t n)
{
	const char *p = data;

	while (n > 0) {
		ssize_t k = send(c->fd, p, n, MSG_NOSIGNAL);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

int
vt_conn_sendstr(struct vt_conn *c, const char *s)
{
	return vt_conn_send(c, s, strlen(s));
}

int
vt_conn_fill(struct vt_conn *c)
{
	ssize_t n;

	if (c->len == sizeof(c->buf))
		return -1;
	do
		n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	if (n == 0)
		return 1;
	c->len += (size_t)n;
	return 0;
}

void
vt_conn_consume(struct vt_conn *c, size_t n)
{
	memmove(c->buf, c->buf + n, c->len - n);
	c->len -= n;
}

bool
vt_conn_at_eof(struct vt_conn *c)
{
	return c->len == 0 && vt_conn_fill(c) == 1;
}

bool
vt_conn_closed(struct vt_conn *c)
{
	char ch;
	ssize_t n;

	if (c->len)
		return false;
	n = recv(c->fd, &ch, 1, 0);
	return n == 0 || (n < 0 && errno == ECONNRESET);
}

void
vt_resp_clear(struct vt_resp *r)
{
	free(r->body);
	memset(r, 0, sizeof(*r));
}

/* Move n bytes of input (n may be more than is buffered) to r->body. */
static int
take(struct vt_conn *c, struct vt_resp *r, size_t n)
{
	char *b = realloc(r->body, r->len + n + 1);

	if (!b)
		return -1;
	r->body = b;
	while (n > 0) {
		size_t k;

		if (c->len == 0 && vt_conn_fill(c) != 0)
			return -1;
		k = c->len < n ? c->len : n;
		memcpy(r->body + r->len, c->buf, k);
		r->len += k;
		n -= k;
		vt_conn_consume(c, k);
	}
	r->body[r->len] = '\0';
	return 0;
}

/* One line of input (without its CRLF) into line. */
static int
take_line(struct vt_conn *c, char *line, size_t size)
{
	char *nl;
	size_t n;

	while (!(nl = memchr(c->buf, '\n', c->len)))
		if (vt_conn_fill(c) != 0)
			return -1;
	n = (size_t)(nl - c->buf);
	if (n > 0 && c->buf[n - 1] == '\r')
		n--;
	if (n >= size)
		return -1;
	memcpy(line, c->buf, n);
	line[n] = '\0';
	vt_conn_consume(c, (size_t)(nl + 1 - c->buf));
	return 0;
}

/* The chunks of a chunked body, then its trailers. */
static int
take_chunks(struct vt_conn *c, struct vt_resp *r)
{
	char line[256];

	for (;;) {
		size_t n;

		if (take_line(c, line, sizeof(line)) < 0)
			return -1;
		n = strtoul(line, NULL, 16);
		if (n > r->maxchunk)
			r->maxchunk = n;
		if (n == 0)
			break;
		if (take(c, r, n) < 0 || take_line(c, line, sizeof(line)) < 0 || *line)
			return -1;
	}
	/* trailers, up to an empty line */
	do
		if (take_line(c, line, sizeof(line)) < 0)
			return -1;
	while (*line);
	return 0;
}

int
vt_read_response(struct vt_conn *c, struct vt_resp *r, bool to_head)
{
	const char *end, *p;
	size_t hlen;
	int rc;

	vt_resp_clear(r);
	while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
		if (vt_conn_fill(c) != 0)
			return -1;
	hlen = (size_t)(end + 4 - c->buf);
	if (hlen >= sizeof(r->head))
		return -1;
	memcpy(r->head, c->buf, hlen);
	r->head[hlen] = '\0';
	vt_conn_consume(c, hlen);
	if (sscanf(r->head, "HTTP/1.%*d %d ", &r->status) != 1)
		return -1;
	r->close = strcasestr(r->head, "\r\nConnection: close\r\n") != NULL;
	r->chunked = strcasestr(r->head, "\r\nTransfer-Encoding: chunked\r\n") != NULL;
	if (take(c, r, 0) < 0)
		return -1;
	if (to_head || r->status < 200 || r->status == 204 || r->status == 304)
		return r->status;
	if (r->chunked)
		return take_chunks(c, r) < 0 ? -1 : r->status;
	if ((p = strcasestr(r->head, "\r\nContent-Length:")))
		return take(c, r, strtoul(p + 17, NULL, 10)) < 0 ? -1 : r->status;
	/* to the close */
	while ((rc = vt_conn_fill(c)) == 0)
		;
	if (rc < 0 || take(c, r, c->len) < 0)
		return -1;
	r->eof = true;
	return r->status;
}

int
vt_request(struct vt_conn *c, const char *method, const char *target, const char *headers,
	   const char *body, size_t n, struct vt_resp *r)
{
	char head[2048];

	if (body)
		snprintf(head, sizeof(head), "%s %s HTTP/1.1\r\nHost: t\r\n%sContent-Length: %zu\r\n\r\n",
			 method, target, headers ? headers : "", n);
	else
		snprintf(head, sizeof(head), "%s %s HTTP/1.1\r\nHost: t\r\n%s\r\n", method, target,
			 headers ? headers : "");
	if (vt_conn_sendstr(c, head) < 0 || (body && vt_conn_send(c, body, n) < 0)) {
		vt_resp_clear(r);
		return -1;
	}
	return vt_read_response(c, r, strcmp(method, "HEAD") == 0);
}

int
vt_get_once(int port, const char *path, struct vt_resp *r)
{
	struct vt_conn *c = malloc(sizeof(*c));
	int status = -1;

	if (!c)
		return -1;
	if (vt_conn_tcp(c, port) == 0)
		status = vt_request(c, "GET", path, NULL, NULL, 0, r);
	vt_conn_close(c);
	free(c);
	return status;
}

bool
vt_has_header(const struct vt_resp *r, const char *line)
{
	char pat[256];

	snprintf(pat, sizeof(pat), "\r\n%s\r\n", line);
	return strstr(r->head, pat) != NULL;
}
