/*
 * The HTTP client (orchestrator/httpc.c) against a one-shot server: a
 * thread that accepts one connection on a unix socket, reads the request
 * head, writes a canned answer (whole, or a byte at a time so that the
 * parser sees every name and value in pieces) and closes.
 *
 * Every wait is bounded: the client's by its timeout, the server's by the
 * socket's receive timeout. No assertion bounds a duration.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "vd/httpc.h"
#include "vdtest.h"

#define TIMEOUT_MS 10000

struct server {
	int lfd;
	const char *answer; /* written after the request head */
	size_t len;         /* of answer; 0: strlen */
	int piecewise;      /* write it a byte at a time */
	char request[4096]; /* the request head as it came */
	pthread_t thread;
};

static char sock_dir[64];
static char sock_path[108];

/* Has REQ (LEN bytes) its head and the body its Content-Length says? */
static bool
request_whole(const char *req, size_t len)
{
	const char *end = strstr(req, "\r\n\r\n"), *cl = strstr(req, "Content-Length: ");

	if (!end)
		return false;
	return !cl || cl > end || len >= (size_t)(end + 4 - req) + strtoul(cl + 16, NULL, 10);
}

static void *
serve(void *arg)
{
	struct server *s = arg;
	struct timeval tv = { 10, 0 };
	size_t got = 0, len = s->len ? s->len : strlen(s->answer);
	int fd = accept(s->lfd, NULL, NULL);

	if (fd < 0)
		return NULL;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	/* the whole request, its body too: a close with some of it unread
	 * would make the client's write of the rest fail (EPIPE) */
	while (got + 1 < sizeof(s->request) && !request_whole(s->request, got)) {
		ssize_t n = read(fd, s->request + got, sizeof(s->request) - 1 - got);

		if (n <= 0)
			break;
		got += (size_t)n;
		s->request[got] = '\0';
	}
	for (size_t off = 0; off < len;) {
		ssize_t n = send(fd, s->answer + off, s->piecewise ? 1 : len - off, MSG_NOSIGNAL);

		if (n <= 0)
			break;
		off += (size_t)n;
	}
	close(fd);
	return NULL;
}

/* Listen at sock_path and serve ANSWER once in a thread. */
static void
start(struct server *s, const char *answer, int piecewise)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };

	memset(s, 0, sizeof(*s));
	s->answer = answer;
	s->piecewise = piecewise;
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", sock_path);
	unlink(sock_path);
	s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(s->lfd >= 0);
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s->lfd, 1), 0);
	assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
}

static void
stop(struct server *s)
{
	pthread_join(s->thread, NULL);
	close(s->lfd);
	unlink(sock_path);
}

static const struct vd_httpc_target target = { .unix_path = sock_path };

static const char ping[] =
	"HTTP/1.1 200 OK\r\n"
	"Content-Type: text/plain; charset=utf-8\r\n"
	"API-Version: 1.41\r\n"
	"Api-Version-Min: 1.12\r\n"
	"Docker-Experimental: false\r\n"
	"Content-Length: 2\r\n"
	"\r\n"
	"OK";

static void
get_header_case(int piecewise)
{
	struct vd_error err = VD_ERROR_INIT;
	enum vd_httpc_failure why = 0;
	struct server s;
	char v[32] = "stale";

	start(&s, ping, piecewise);
	assert_int_equal(vd_httpc_get_header(&target, "/_ping", "Api-Version", v, sizeof(v),
					     TIMEOUT_MS, &why, &err),
			 200);
	stop(&s);
	/* any case of the name; not a longer name that starts with it */
	assert_string_equal(v, "1.41");
	assert_non_null(strstr(s.request, "GET /_ping HTTP/1.1\r\n"));
}

static void
test_header_whole(void **state)
{
	(void)state;
	get_header_case(0);
}

/* A name and a value that arrive a byte at a time are still matched. */
static void
test_header_in_pieces(void **state)
{
	(void)state;
	get_header_case(1);
}

static void
test_header_absent(void **state)
{
	struct vd_error err = VD_ERROR_INIT;
	enum vd_httpc_failure why = 0;
	struct server s;
	char v[32] = "stale";

	(void)state;
	start(&s, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", 0);
	assert_int_equal(vd_httpc_get_header(&target, "/_ping", "Api-Version", v, sizeof(v),
					     TIMEOUT_MS, &why, &err),
			 404);
	stop(&s);
	assert_string_equal(v, "");
}

/* A value longer than the room for it is cut; a name longer than any kept
 * (the client keeps 63 bytes of one) is not mistaken for it. */
static void
test_header_cut(void **state)
{
	static const char answer[] =
		"HTTP/1.1 200 OK\r\n"
		"X-Very-Long-Header-Name-That-Runs-On-Well-Past-Sixty-Four-Bytes-Api-Version: no\r\n"
		"Api-Version: 1.41.1234567890\r\n"
		"Transfer-Encoding: chunked\r\n"
		"\r\n"
		"2\r\nOK\r\n0\r\n\r\n";
	struct vd_error err = VD_ERROR_INIT;
	enum vd_httpc_failure why = 0;
	struct server s;
	char v[5];

	(void)state;
	start(&s, answer, 1);
	assert_int_equal(vd_httpc_get_header(&target, "/_ping", "api-version", v, sizeof(v),
					     TIMEOUT_MS, &why, &err),
			 200);
	stop(&s);
	assert_string_equal(v, "1.41");
}

struct body {
	char data[256];
	size_t len;
};

static int
keep(void *arg, const char *data, size_t len)
{
	struct body *b = arg;

	if (b->len + len >= sizeof(b->data))
		return -1;
	memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

/* A request with a body, and a chunked answer handed over whole. */
static void
test_request_chunked(void **state)
{
	static const char answer[] = "HTTP/1.1 201 Created\r\n"
				     "Transfer-Encoding: chunked\r\n"
				     "\r\n"
				     "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
	struct vd_error err = VD_ERROR_INIT;
	enum vd_httpc_failure why = 0;
	struct body b = { .len = 0 };
	struct server s;

	(void)state;
	start(&s, answer, 1);
	assert_int_equal(vd_httpc_request(&target, "POST", "/things?x=1", "application/json", "{}",
					  2, TIMEOUT_MS, keep, &b, &why, &err),
			 201);
	stop(&s);
	assert_string_equal(b.data, "hello world");
	assert_non_null(strstr(s.request, "POST /things?x=1 HTTP/1.1\r\n"));
	assert_non_null(strstr(s.request, "Content-Length: 2\r\n"));
}

static void
expect_failure(const char *answer, enum vd_httpc_failure want)
{
	struct vd_error err = VD_ERROR_INIT;
	enum vd_httpc_failure why = 0;
	struct server s;
	char v[8];

	start(&s, answer, 0);
	assert_int_equal(vd_httpc_get_header(&target, "/_ping", "Api-Version", v, sizeof(v),
					     TIMEOUT_MS, &why, &err),
			 -1);
	stop(&s);
	assert_int_equal(why, want);
	assert_true(err.msg[0] != '\0');
}

static void
test_closed_mid_answer(void **state)
{
	(void)state;
	expect_failure("HTTP/1.1 200 OK\r\nApi-Version: 1.", VD_HTTPC_IO);
}

static void
test_not_http(void **state)
{
	(void)state;
	expect_failure("SSH-2.0-OpenSSH_9.2\r\n\r\n", VD_HTTPC_PROTOCOL);
}

static void
test_nobody_listening(void **state)
{
	struct vd_error err = VD_ERROR_INIT;
	enum vd_httpc_failure why = 0;
	char v[8];

	(void)state;
	unlink(sock_path);
	assert_int_equal(vd_httpc_get_header(&target, "/_ping", "Api-Version", v, sizeof(v),
					     TIMEOUT_MS, &why, &err),
			 -1);
	assert_int_equal(why, VD_HTTPC_CONNECT);
	assert_int_equal(err.sys_errno, ENOENT);
}

static int
setup_dir(void **state)
{
	(void)state;
	snprintf(sock_dir, sizeof(sock_dir), "/tmp/vd-httpc-XXXXXX");
	if (!mkdtemp(sock_dir))
		return -1;
	snprintf(sock_path, sizeof(sock_path), "%s/s.sock", sock_dir);
	return 0;
}

static int
remove_dir(void **state)
{
	(void)state;
	unlink(sock_path);
	return rmdir(sock_dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_whole),    cmocka_unit_test(test_header_in_pieces),
		cmocka_unit_test(test_header_absent),   cmocka_unit_test(test_header_cut),
		cmocka_unit_test(test_request_chunked), cmocka_unit_test(test_closed_mid_answer),
		cmocka_unit_test(test_not_http),        cmocka_unit_test(test_nobody_listening),
	};

	return cmocka_run_group_tests(tests, setup_dir, remove_dir);
}
