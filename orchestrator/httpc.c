/*
 * A small blocking HTTP/1.1 client with one deadline per request. See
 * vd/httpc.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <http_parser.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "vd/cleanup.h"
#include "vd/clock.h"
#include "vd/net.h"
#include "vd/httpc.h"

static int
fail(struct vd_error *err, enum vd_httpc_failure *failure, enum vd_httpc_failure why,
     int errnum, const char *what)
{
	*failure = why;
	vd_error_set(err, VD_EXIT_FAILURE, "%s%s%s", what, errnum ? ": " : "",
		     errnum ? strerror(errnum) : "");
	if (err)
		err->sys_errno = errnum;
	return -1;
}

/* A non-blocking connect to one address, finished within the deadline. */
static int
connect_addr(const struct sockaddr *sa, socklen_t len, int64_t deadline, int *errnum)
{
	_cleanup_close_ int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int soerr = 0;
	socklen_t slen = sizeof(soerr);

	if (fd < 0) {
		*errnum = errno;
		return -1;
	}
	if (connect(fd, sa, len) < 0) {
		if (errno != EINPROGRESS && errno != EAGAIN) {
			*errnum = errno;
			return -1;
		}
		if (vd_net_wait(fd, POLLOUT, deadline) <= 0) {
			*errnum = ETIMEDOUT;
			return -1;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &slen) < 0 || soerr) {
			*errnum = soerr ? soerr : errno;
			return -1;
		}
	}
	return vd_steal_fd(&fd);
}

static int
connect_until(const struct vd_httpc_target *t, int64_t deadline, int *errnum)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
	int fd = -1;

	*errnum = 0;
	if (t->unix_path) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };

		if (strlen(t->unix_path) >= sizeof(sa.sun_path)) {
			*errnum = ENAMETOOLONG;
			return -1;
		}
		memcpy(sa.sun_path, t->unix_path, strlen(t->unix_path) + 1);
		return connect_addr((struct sockaddr *)&sa, sizeof(sa), deadline, errnum);
	}
	if (getaddrinfo(t->host, t->port, &hints, &ai) != 0) {
		*errnum = EHOSTUNREACH;
		return -1;
	}
	for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next)
		fd = connect_addr(a->ai_addr, a->ai_addrlen, deadline, errnum);
	freeaddrinfo(ai);
	return fd;
}

int
vd_httpc_connect(const struct vd_httpc_target *t, int timeout_ms, struct vd_error *err)
{
	enum vd_httpc_failure why;
	int errnum, fd = connect_until(t, vd_clock_ms() + timeout_ms, &errnum);

	if (fd < 0)
		return fail(err, &why, VD_HTTPC_CONNECT, errnum, "cannot connect");
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
		close(fd);
		return fail(err, &why, VD_HTTPC_IO, errno, "fcntl");
	}
	return fd;
}

/* ------------------------------------------------------------- parsing */

struct exchange {
	vd_httpc_data_fn on_data;
	void *arg;
	const char *header; /* the one header kept, or NULL */
	char *value;        /* its value, cut to size */
	size_t size, vlen;
	char field[64]; /* the header name being read */
	size_t flen;
	bool in_value, match, done, stopped;
};

/* http-parser may hand a name or a value over in pieces. */
static int
on_field(http_parser *p, const char *at, size_t n)
{
	struct exchange *x = p->data;

	if (x->in_value) {
		x->in_value = false;
		x->flen = 0;
	}
	if (x->flen + n < sizeof(x->field)) {
		memcpy(x->field + x->flen, at, n);
		x->flen += n;
	} else {
		x->flen = sizeof(x->field); /* longer than any name kept */
	}
	return 0;
}

static int
on_value(http_parser *p, const char *at, size_t n)
{
	struct exchange *x = p->data;

	if (!x->in_value) {
		x->in_value = true;
		x->match = x->header && x->flen == strlen(x->header) &&
			   strncasecmp(x->field, x->header, x->flen) == 0;
		if (x->match)
			x->vlen = 0;
	}
	if (x->match && x->vlen + 1 < x->size) {
		size_t k = n < x->size - 1 - x->vlen ? n : x->size - 1 - x->vlen;

		memcpy(x->value + x->vlen, at, k);
		x->vlen += k;
		x->value[x->vlen] = '\0';
	}
	return 0;
}

static int
on_body(http_parser *p, const char *at, size_t n)
{
	struct exchange *x = p->data;

	if (x->on_data && x->on_data(x->arg, at, n) < 0) {
		x->stopped = true;
		return -1;
	}
	return 0;
}

static int
on_complete(http_parser *p)
{
	struct exchange *x = p->data;

	x->done = true;
	return 0;
}

static const http_parser_settings settings = {
	.on_header_field = on_field,
	.on_header_value = on_value,
	.on_body = on_body,
	.on_message_complete = on_complete,
};

static int
send_all(int fd, const char *data, size_t len, int64_t deadline)
{
	while (len) {
		ssize_t n = send(fd, data, len, MSG_NOSIGNAL);

		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (vd_net_wait(fd, POLLOUT, deadline) <= 0)
				return -1;
			continue;
		}
		if (n <= 0)
			return -1;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

static int
roundtrip(const struct vd_httpc_target *t, const char *method, const char *path,
	  const char *content_type, const char *body, size_t len, int timeout_ms,
	  struct exchange *x, enum vd_httpc_failure *failure, struct vd_error *err)
{
	int64_t deadline = vd_clock_ms() + timeout_ms;
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *head = NULL;
	http_parser p;
	char buf[16384];
	int errnum, n;

	if ((fd = connect_until(t, deadline, &errnum)) < 0)
		return fail(err, failure, errnum == ETIMEDOUT ? VD_HTTPC_TIMEOUT : VD_HTTPC_CONNECT,
			    errnum, "cannot connect");
	if (body)
		n = asprintf(&head, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: vdctl\r\n"
			     "Connection: close\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n",
			     method, path, t->unix_path ? "localhost" : t->host,
			     content_type ? content_type : "application/json", len);
	else
		n = asprintf(&head, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: vdctl\r\n"
			     "Connection: close\r\n%s\r\n", method, path,
			     t->unix_path ? "localhost" : t->host,
			     strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0
				     ? "Content-Length: 0\r\n" : "");
	if (n < 0) {
		head = NULL;
		return fail(err, failure, VD_HTTPC_IO, ENOMEM, "cannot make the request");
	}
	if (send_all(fd, head, (size_t)n, deadline) < 0 ||
	    (body && send_all(fd, body, len, deadline) < 0))
		return fail(err, failure, vd_clock_ms() >= deadline ? VD_HTTPC_TIMEOUT : VD_HTTPC_IO,
			    errno, "cannot send the request");
	http_parser_init(&p, HTTP_RESPONSE);
	p.data = x;
	while (!x->done) {
		ssize_t got;
		int w = vd_net_wait(fd, POLLIN, deadline);

		if (w == 0)
			return fail(err, failure, VD_HTTPC_TIMEOUT, 0, "timed out waiting for the answer");
		if (w < 0)
			return fail(err, failure, VD_HTTPC_IO, errno, "poll");
		got = recv(fd, buf, sizeof(buf), 0);
		if (got < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (got < 0)
			return fail(err, failure, VD_HTTPC_IO, errno, "cannot read the answer");
		/* 0 bytes tells the parser the connection closed: the end of a
		 * close-delimited body, or of an answer cut short */
		if (http_parser_execute(&p, &settings, buf, (size_t)got) != (size_t)got &&
		    !x->done) {
			if (x->stopped)
				return fail(err, failure, VD_HTTPC_IO, 0,
					    "the answer could not be kept (out of memory)");
			if (got > 0)
				return fail(err, failure, VD_HTTPC_PROTOCOL, 0,
					    http_errno_description(HTTP_PARSER_ERRNO(&p)));
		}
		if (got == 0 && !x->done)
			return fail(err, failure, VD_HTTPC_IO, 0, "the connection closed mid-answer");
	}
	return (int)p.status_code;
}

int
vd_httpc_request(const struct vd_httpc_target *t, const char *method, const char *path,
		 const char *content_type, const char *body, size_t len, int timeout_ms,
		 vd_httpc_data_fn on_data, void *arg, enum vd_httpc_failure *failure,
		 struct vd_error *err)
{
	struct exchange x = { .on_data = on_data, .arg = arg };

	return roundtrip(t, method, path, content_type, body, len, timeout_ms, &x, failure, err);
}

int
vd_httpc_get_header(const struct vd_httpc_target *t, const char *path, const char *name,
		    char *value, size_t size, int timeout_ms, enum vd_httpc_failure *failure,
		    struct vd_error *err)
{
	struct exchange x = { .header = name, .value = value, .size = size };

	if (size)
		value[0] = '\0';
	return roundtrip(t, "GET", path, NULL, NULL, 0, timeout_ms, &x, failure, err);
}

char *
vd_httpc_escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = malloc(strlen(s) * 3 + 1), *o = out;

	if (!out)
		return NULL;
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || strchr("-._~", ch)) {
			*o++ = (char)ch;
		} else {
			*o++ = '%';
			*o++ = hex[ch >> 4];
			*o++ = hex[ch & 15];
		}
	}
	*o = '\0';
	return out;
}
