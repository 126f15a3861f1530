/*
 * Tests of the example workload (examples/svc) as a black box.
 *
 * Each test starts the server binary ($VD_SVC_BIN, default build/svc) on a
 * free port of 127.0.0.1, talks HTTP/1.1 to it over plain sockets with the
 * tiny client below, and stops it with SIGTERM.  Concurrency is proven with
 * the started_us and finished_us the server reports for each request
 * (CLOCK_MONOTONIC), never with wall-clock upper bounds: the machines that
 * run this are small and noisy.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define START_SECONDS	5	/* give up on a server not answering by then */
#define IO_SECONDS	20	/* socket timeout: a hang fails, not blocks */

struct server {
	pid_t	 pid;
	int	 port;
};

/* A connection with its unread input, so pipelined replies can be split. */
struct client {
	int	 fd;
	size_t	 len;
	char	 buf[32768];
};

struct response {
	int	 status;
	char	 head[4096];
	char	 body[4096];
};

/* What /timeout, /heavy and /alloc report. */
struct timing {
	int		 status;
	int		 worker;
	long long	 started;
	long long	 finished;
};

/* ---------------------------------------------------------------- client */

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* Connect to 127.0.0.1:port; returns 0 or -1. */
static int
client_open(struct client *cl, int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct timeval tv = { IO_SECONDS, 0 };

	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cl->len = 0;
	if ((cl->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	setsockopt(cl->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(cl->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(cl->fd, (struct sockaddr *)&sin, sizeof(sin)) == -1) {
		close(cl->fd);
		cl->fd = -1;
		return -1;
	}
	return 0;
}

static void
client_close(struct client *cl)
{
	if (cl->fd >= 0)
		close(cl->fd);
	cl->fd = -1;
}

static int
client_send(struct client *cl, const char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		if ((n = send(cl->fd, buf, len, MSG_NOSIGNAL)) <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int
client_get(struct client *cl, const char *path)
{
	char req[4096];

	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: test\r\n\r\n",
	    path);
	return client_send(cl, req, strlen(req));
}

/* Read more input; -1 at EOF, on error or when the buffer is full. */
static int
client_fill(struct client *cl)
{
	ssize_t n;

	if (cl->len == sizeof(cl->buf))
		return -1;
	n = read(cl->fd, cl->buf + cl->len, sizeof(cl->buf) - cl->len);
	if (n <= 0)
		return -1;
	cl->len += (size_t)n;
	return 0;
}

/* Whether the server closed the connection with no more input. */
static int
client_at_eof(struct client *cl)
{
	char c;

	return cl->len == 0 && read(cl->fd, &c, 1) == 0;
}

/* Read one response; returns its status or -1. */
static int
client_response(struct client *cl, struct response *r)
{
	size_t hlen, blen;
	const char *end, *p;

	memset(r, 0, sizeof(*r));
	while ((end = memmem(cl->buf, cl->len, "\r\n\r\n", 4)) == NULL)
		if (client_fill(cl) == -1)
			return -1;
	hlen = (size_t)(end + 4 - cl->buf);
	if (hlen >= sizeof(r->head))
		return -1;
	memcpy(r->head, cl->buf, hlen);
	if (sscanf(r->head, "HTTP/1.1 %d ", &r->status) != 1)
		return -1;
	if ((p = strcasestr(r->head, "\r\nContent-Length:")) == NULL)
		return -1;
	blen = strtoul(p + 17, NULL, 10);
	if (blen >= sizeof(r->body))
		return -1;
	while (cl->len < hlen + blen)
		if (client_fill(cl) == -1)
			return -1;
	memcpy(r->body, cl->buf + hlen, blen);
	cl->len -= hlen + blen;
	memmove(cl->buf, cl->buf + hlen + blen, cl->len);
	return r->status;
}

/*
 * Read one response whose body may be large or chunked: the body into *body
 * (to free), its length into *len, the largest chunk into *chunk (0 when not
 * chunked).  Returns the status or -1; r->body is left empty.
 */
static int
client_response_data(struct client *cl, struct response *r, char **body,
    size_t *len, size_t *chunk)
{
	size_t hlen, blen = 0, cap = 0, n, want = 0;
	const char *end, *p;
	char *b = NULL, *nl;
	int chunked;

	*body = NULL;
	*len = *chunk = 0;
	memset(r, 0, sizeof(*r));
	while ((end = memmem(cl->buf, cl->len, "\r\n\r\n", 4)) == NULL)
		if (client_fill(cl) == -1)
			return -1;
	hlen = (size_t)(end + 4 - cl->buf);
	if (hlen >= sizeof(r->head))
		return -1;
	memcpy(r->head, cl->buf, hlen);
	cl->len -= hlen;
	memmove(cl->buf, cl->buf + hlen, cl->len);
	if (sscanf(r->head, "HTTP/1.1 %d ", &r->status) != 1)
		return -1;
	chunked = strcasestr(r->head, "\r\nTransfer-Encoding: chunked\r\n") !=
	    NULL;
	if (!chunked) {
		if ((p = strcasestr(r->head, "\r\nContent-Length:")) == NULL)
			return -1;
		want = strtoul(p + 17, NULL, 10);
	}
	for (;;) {
		if (chunked) {
			/* the size line, then the data and its CRLF */
			while ((nl = memchr(cl->buf, '\n', cl->len)) == NULL)
				if (client_fill(cl) == -1)
					goto fail;
			want = strtoul(cl->buf, NULL, 16);
			n = (size_t)(nl + 1 - cl->buf);
			cl->len -= n;
			memmove(cl->buf, cl->buf + n, cl->len);
			if (want > *chunk)
				*chunk = want;
			if (want == 0) {
				while (cl->len < 2)
					if (client_fill(cl) == -1)
						goto fail;
				if (memcmp(cl->buf, "\r\n", 2) != 0)
					goto fail;
				cl->len -= 2;
				memmove(cl->buf, cl->buf + 2, cl->len);
				break;
			}
		}
		if (blen + want > cap) {
			cap = blen + want + 1;
			if ((b = realloc(b, cap)) == NULL)
				goto fail;
		}
		while (want > 0) {
			if (cl->len == 0 && client_fill(cl) == -1)
				goto fail;
			n = cl->len < want ? cl->len : want;
			memcpy(b + blen, cl->buf, n);
			blen += n;
			want -= n;
			cl->len -= n;
			memmove(cl->buf, cl->buf + n, cl->len);
		}
		if (!chunked)
			break;
		while (cl->len < 2)
			if (client_fill(cl) == -1)
				goto fail;
		if (memcmp(cl->buf, "\r\n", 2) != 0)
			goto fail;
		cl->len -= 2;
		memmove(cl->buf, cl->buf + 2, cl->len);
	}
	*body = b;
	*len = blen;
	return r->status;
fail:
	free(b);
	return -1;
}

/* Whether the n bytes at p are /bytes' pattern from its start. */
static int
is_pattern(const char *p, size_t n)
{
	static const char pat[] =
	    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] != pat[i % 62])
			return 0;
	return 1;
}

/* GET path on a connection of its own; returns the status or -1. */
static int
http_get(int port, const char *path, struct response *r)
{
	struct client cl;
	int status = -1;

	if (client_open(&cl, port) == -1)
		return -1;
	if (client_get(&cl, path) == 0)
		status = client_response(&cl, r);
	client_close(&cl);
	return status;
}

/* The number after "key": in a JSON body, or -1. */
static long long
json_num(const char *body, const char *key)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	if ((p = strstr(body, pat)) == NULL)
		return -1;
	p += strlen(pat);
	if (*p < '0' || *p > '9')
		return -1;
	return strtoll(p, NULL, 10);
}

/*
 * Send GET path on n connections at once (all connected first, then all
 * written, so the requests reach the server together), then read the n
 * replies into t.
 */
static void
fire(int port, const char *path, int n, struct timing *t)
{
	static struct client cl[8];
	struct response r;
	int i;

	assert_true(n <= 8);
	for (i = 0; i < n; i++)
		assert_int_equal(client_open(&cl[i], port), 0);
	for (i = 0; i < n; i++)
		assert_int_equal(client_get(&cl[i], path), 0);
	for (i = 0; i < n; i++) {
		t[i].status = client_response(&cl[i], &r);
		t[i].worker = (int)json_num(r.body, "worker");
		t[i].started = json_num(r.body, "started_us");
		t[i].finished = json_num(r.body, "finished_us");
		client_close(&cl[i]);
		assert_int_equal(t[i].status, 200);
		assert_true(t[i].started > 0);
		assert_true(t[i].finished >= t[i].started);
	}
}

/* How many of the n intervals [started, finished) contain the instant us. */
static int
running_at(const struct timing *t, int n, long long us)
{
	int i, count = 0;

	for (i = 0; i < n; i++)
		if (t[i].started <= us && us < t[i].finished)
			count++;
	return count;
}

/* ---------------------------------------------------------------- server */

static int
free_port(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int fd, port = -1;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return -1;
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
		port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

static const char *
svc_bin(void)
{
	const char *bin = getenv("VD_SVC_BIN");

	return bin != NULL && *bin != '\0' ? bin : "build/svc";
}

/* Run the server with args (NULL-terminated after argv[0]); returns the
 * pid.  quiet sends its output to /dev/null. */
static pid_t
spawn(char *const argv[], int quiet)
{
	pid_t pid;
	int fd;

	if ((pid = fork()) != 0)
		return pid;
	if (quiet && (fd = open("/dev/null", O_WRONLY)) != -1) {
		dup2(fd, 1);
		dup2(fd, 2);
	}
	execv(svc_bin(), argv);
	fprintf(stderr, "cannot run '%s': %s\n", svc_bin(), strerror(errno));
	_exit(127);
}

/* Wait up to ms for pid to exit; its wait status, or -1 if it did not. */
static int
reap(pid_t pid, long ms)
{
	uint64_t until = now_ms() + (uint64_t)ms;
	int status;

	do {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return status;
		sleep_ms(10);
	} while (now_ms() < until);
	return -1;
}

/* SIGTERM, then SIGKILL if needed; returns the wait status. */
static int
stop_server(struct server *s)
{
	int status;

	if (s->pid <= 0)
		return 0;
	kill(s->pid, SIGTERM);
	if ((status = reap(s->pid, 5000)) == -1) {
		kill(s->pid, SIGKILL);
		waitpid(s->pid, &status, 0);
	}
	s->pid = -1;
	return status;
}

/* Start a server and wait until /healthz answers; -1 when it never does. */
static int
start_server(struct server *s, const char *model, const char *workers)
{
	struct response r;
	char port[16];
	char *argv[] = { "svc", "--listen", "127.0.0.1", "--port", port,
	    "--model", (char *)(uintptr_t)model, "--workers",
	    (char *)(uintptr_t)workers, NULL };
	uint64_t until;
	int attempt;

	for (attempt = 0; attempt < 3; attempt++) {
		s->port = free_port();
		snprintf(port, sizeof(port), "%d", s->port);
		if ((s->pid = spawn(argv, 0)) == -1)
			return -1;
		until = now_ms() + START_SECONDS * 1000;
		while (now_ms() < until) {
			if (http_get(s->port, "/healthz", &r) == 200)
				return 0;
			if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
				s->pid = -1;	/* the port was taken: retry */
				break;
			}
			sleep_ms(20);
		}
		stop_server(s);
	}
	return -1;
}

static int
setup_server(void **state, const char *model, const char *workers)
{
	struct server *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return -1;
	*state = s;
	return start_server(s, model, workers);
}

static int
setup_sync(void **state)
{
	return setup_server(state, "sync", "2");
}

static int
setup_async(void **state)
{
	return setup_server(state, "async", "1");
}

static int
teardown(void **state)
{
	struct server *s = *state;

	if (s != NULL) {
		stop_server(s);
		free(s);
	}
	return 0;
}

/* ----------------------------------------------------------------- tests */

static void
test_ping_and_healthz(void **state)
{
	struct server *s = *state;
	struct response r;

	assert_int_equal(http_get(s->port, "/ping", &r), 200);
	assert_string_equal(r.body, "pong\n");
	assert_int_equal(http_get(s->port, "/healthz", &r), 200);
	assert_string_equal(r.body, "ok\n");
}

static void
test_info(void **state)
{
	struct server *s = *state;
	struct response r;

	assert_int_equal(http_get(s->port, "/info", &r), 200);
	assert_non_null(strstr(r.head, "Content-Type: application/json\r\n"));
	assert_non_null(strstr(r.body, "\"id\":\""));
	assert_null(strstr(r.body, "\"id\":\"\""));
	assert_int_equal(json_num(r.body, "port"), s->port);
	assert_int_equal(json_num(r.body, "pid"), s->pid);
	assert_true(json_num(r.body, "online_cpus") >= 1);
	assert_true(json_num(r.body, "mem_total_bytes") > 0);
	assert_true(json_num(r.body, "uptime_ms") >= 0);
	assert_true(json_num(r.body, "requests") >= 2);	/* /healthz too */
	assert_non_null(strstr(r.body, "\"cgroup_memory_limit_bytes\":"));
	assert_non_null(strstr(r.body, "\"cgroup_cpu_limit\":"));
}

static void
test_info_sync(void **state)
{
	struct server *s = *state;
	struct response r;

	test_info(state);
	assert_int_equal(http_get(s->port, "/info", &r), 200);
	assert_non_null(strstr(r.body, "\"model\":\"sync\""));
	assert_int_equal(json_num(r.body, "workers"), 2);
}

static void
test_info_async(void **state)
{
	struct server *s = *state;
	struct response r;

	test_info(state);
	assert_int_equal(http_get(s->port, "/info", &r), 200);
	assert_non_null(strstr(r.body, "\"model\":\"async\""));
	assert_int_equal(json_num(r.body, "workers"), 1);
}

static void
test_not_found(void **state)
{
	struct server *s = *state;
	struct response r;

	assert_int_equal(http_get(s->port, "/nope", &r), 404);
	assert_int_equal(http_get(s->port, "/ping/", &r), 404);
	assert_int_equal(http_get(s->port, "/", &r), 404);
}

/* A POST to a known path is 405, and its body is dropped: the next
 * request on the connection is read right. */
static void
test_method_not_allowed(void **state)
{
	static const char post[] = "POST /ping HTTP/1.1\r\nHost: t\r\n"
	    "Content-Length: 11\r\n\r\nhello=world";
	struct server *s = *state;
	struct response r;
	struct client cl;

	assert_int_equal(client_open(&cl, s->port), 0);
	assert_int_equal(client_send(&cl, post, strlen(post)), 0);
	assert_int_equal(client_response(&cl, &r), 405);
	assert_non_null(strstr(r.head, "\r\nAllow: GET\r\n"));
	assert_int_equal(client_get(&cl, "/ping"), 0);
	assert_int_equal(client_response(&cl, &r), 200);
	assert_string_equal(r.body, "pong\n");
	client_close(&cl);
}

static void
test_bad_numbers(void **state)
{
	static const char *const paths[] = {
		"/timeout", "/timeout?ms=", "/timeout?ms=abc",
		"/timeout?ms=-1", "/timeout?ms=600001", "/timeout?ms=5x",
		"/heavy?ms=99999999999999999999", "/alloc?mb=65537",
		"/alloc?size=1",
	};
	struct server *s = *state;
	struct response r;
	size_t i;

	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		assert_int_equal(http_get(s->port, paths[i], &r), 400);
		assert_non_null(strstr(r.body, "\"error\""));
	}
	assert_int_equal(http_get(s->port, "/timeout?x=1&ms=0", &r), 200);
}

static void
test_huge_headers(void **state)
{
	struct server *s = *state;
	struct response r;
	struct client cl;
	static char req[24 * 1024];
	size_t n;

	n = (size_t)snprintf(req, sizeof(req), "GET /ping HTTP/1.1\r\nX-Big: ");
	memset(req + n, 'a', 20 * 1024);
	n += 20 * 1024;
	memcpy(req + n, "\r\n\r\n", 4);
	n += 4;
	assert_int_equal(client_open(&cl, s->port), 0);
	assert_int_equal(client_send(&cl, req, n), 0);
	assert_int_equal(client_response(&cl, &r), 431);
	assert_non_null(strstr(r.head, "\r\nConnection: close\r\n"));
	client_close(&cl);
}

static void
test_malformed(void **state)
{
	static const char *const reqs[] = {
		"GARBAGE\r\n\r\n",
		"GET /ping HTTP/2.0\r\n\r\n",
		"GET ping HTTP/1.1\r\n\r\n",
		"GET /ping HTTP/1.1\r\nNoColon\r\n\r\n",
		"GET /ping HTTP/1.1\r\nContent-Length: x\r\n\r\n",
	};
	struct server *s = *state;
	struct response r;
	struct client cl;
	size_t i;

	for (i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		assert_int_equal(client_open(&cl, s->port), 0);
		assert_int_equal(client_send(&cl, reqs[i], strlen(reqs[i])), 0);
		assert_int_equal(client_response(&cl, &r), 400);
		assert_true(client_at_eof(&cl));
		client_close(&cl);
	}
	assert_int_equal(http_get(s->port, "/ping", &r), 200);
}

/* A chunked body is refused with 411, a long target with 414. */
static void
test_refused(void **state)
{
	static const char chunked[] = "POST /ping HTTP/1.1\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
	struct server *s = *state;
	struct response r;
	struct client cl;
	char path[2048];

	assert_int_equal(client_open(&cl, s->port), 0);
	assert_int_equal(client_send(&cl, chunked, strlen(chunked)), 0);
	assert_int_equal(client_response(&cl, &r), 411);
	assert_true(client_at_eof(&cl));
	client_close(&cl);

	memset(path, 'a', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	assert_int_equal(http_get(s->port, path, &r), 414);
}

static void
test_keepalive(void **state)
{
	struct server *s = *state;
	struct response r;
	struct client cl;

	assert_int_equal(client_open(&cl, s->port), 0);
	assert_int_equal(client_get(&cl, "/ping"), 0);
	assert_int_equal(client_response(&cl, &r), 200);
	assert_non_null(strstr(r.head, "\r\nConnection: keep-alive\r\n"));
	assert_int_equal(client_get(&cl, "/healthz"), 0);
	assert_int_equal(client_response(&cl, &r), 200);
	assert_string_equal(r.body, "ok\n");
	client_close(&cl);
}

/* Two requests in one write are answered one after the other, in order. */
static void
test_pipelined(void **state)
{
	static const char reqs[] = "GET /ping HTTP/1.1\r\n\r\n"
	    "GET /timeout?ms=10 HTTP/1.1\r\n\r\n"
	    "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n";
	struct server *s = *state;
	struct response r;
	struct client cl;

	assert_int_equal(client_open(&cl, s->port), 0);
	assert_int_equal(client_send(&cl, reqs, strlen(reqs)), 0);
	assert_int_equal(client_response(&cl, &r), 200);
	assert_string_equal(r.body, "pong\n");
	assert_int_equal(client_response(&cl, &r), 200);
	assert_int_equal(json_num(r.body, "ms"), 10);
	assert_int_equal(client_response(&cl, &r), 200);
	assert_string_equal(r.body, "ok\n");
	assert_true(client_at_eof(&cl));
	client_close(&cl);
}

static void
test_http10_closes(void **state)
{
	static const char req10[] = "GET /ping HTTP/1.0\r\n\r\n";
	static const char req10ka[] = "GET /ping HTTP/1.0\r\n"
	    "Connection: keep-alive\r\n\r\n";
	struct server *s = *state;
	struct response r;
	struct client cl;

	assert_int_equal(client_open(&cl, s->port), 0);
	assert_int_equal(client_send(&cl, req10, strlen(req10)), 0);
	assert_int_equal(client_response(&cl, &r), 200);
	assert_non_null(strstr(r.head, "\r\nConnection: close\r\n"));
	assert_true(client_at_eof(&cl));
	client_close(&cl);

	assert_int_equal(client_open(&cl, s->port), 0);
	assert_int_equal(client_send(&cl, req10ka, strlen(req10ka)), 0);
	assert_int_equal(client_response(&cl, &r), 200);
	assert_int_equal(client_send(&cl, req10ka, strlen(req10ka)), 0);
	assert_int_equal(client_response(&cl, &r), 200);
	client_close(&cl);
}

static void
test_connection_close(void **state)
{
	static const char req[] = "GET /ping HTTP/1.1\r\n"
	    "Connection: close\r\n\r\n";
	struct server *s = *state;
	struct response r;
	struct client cl;

	assert_int_equal(client_open(&cl, s->port), 0);
	assert_int_equal(client_send(&cl, req, strlen(req)), 0);
	assert_int_equal(client_response(&cl, &r), 200);
	assert_true(client_at_eof(&cl));
	client_close(&cl);
}

/* Two sync workers: 4 waits of 200 ms run at most 2 at a time. */
static void
test_workers_bound_concurrency(void **state)
{
	struct server *s = *state;
	struct timing t[4];
	long long first, last;
	int i;

	fire(s->port, "/timeout?ms=200", 4, t);
	first = t[0].started;
	last = t[0].finished;
	for (i = 0; i < 4; i++) {
		assert_in_range(t[i].worker, 0, 1);
		assert_true(t[i].finished - t[i].started >= 200000);
		assert_true(running_at(t, 4, t[i].started) <= 2);
		if (t[i].started < first)
			first = t[i].started;
		if (t[i].finished > last)
			last = t[i].finished;
	}
	assert_true(last - first >= 400000 - 5000);
}

/* An idle keep-alive connection holds no worker. */
static void
test_idle_keepalive_holds_no_worker(void **state)
{
	struct server *s = *state;
	struct client idle, silent;
	struct response r;
	struct timing t[2];

	assert_int_equal(client_open(&idle, s->port), 0);
	assert_int_equal(client_get(&idle, "/ping"), 0);
	assert_int_equal(client_response(&idle, &r), 200);
	assert_int_equal(client_open(&silent, s->port), 0);

	fire(s->port, "/timeout?ms=100", 2, t);
	assert_true(t[0].started < t[1].finished);
	assert_true(t[1].started < t[0].finished);
	assert_int_not_equal(t[0].worker, t[1].worker);

	assert_int_equal(client_get(&idle, "/ping"), 0);
	assert_int_equal(client_response(&idle, &r), 200);
	client_close(&idle);
	client_close(&silent);
}

/* Async: 4 waits of 200 ms all run at once. */
static void
test_waits_overlap(void **state)
{
	struct server *s = *state;
	struct timing t[4];
	long long max_started, min_finished;
	int i;

	fire(s->port, "/timeout?ms=200", 4, t);
	max_started = t[0].started;
	min_finished = t[0].finished;
	for (i = 0; i < 4; i++) {
		assert_int_equal(t[i].worker, 0);
		assert_true(t[i].finished - t[i].started >= 200000);
		if (t[i].started > max_started)
			max_started = t[i].started;
		if (t[i].finished < min_finished)
			min_finished = t[i].finished;
	}
	assert_true(max_started < min_finished);
}

/* Async: CPU work blocks the loop, so two /heavy never overlap. */
static void
test_heavy_blocks_loop(void **state)
{
	struct server *s = *state;
	struct timing t[2];

	fire(s->port, "/heavy?ms=100", 2, t);
	assert_true(t[0].finished <= t[1].started ||
	    t[1].finished <= t[0].started);
}

static void
test_alloc(void **state)
{
	struct server *s = *state;
	struct response r;

	assert_int_equal(http_get(s->port, "/alloc?mb=16", &r), 200);
	assert_int_equal(json_num(r.body, "mb"), 16);
	assert_true(json_num(r.body, "finished_us") >=
	    json_num(r.body, "started_us"));
	assert_int_equal(http_get(s->port, "/alloc?mb=0", &r), 200);
}

/* /bytes: the pattern with Content-Length or in chunks of up to 64 KiB;
 * the connection stays usable after either. */
static void
test_bytes(void **state)
{
	static const size_t sizes[] = { 0, 1, 100, 65536, 65537, 3000001 };
	struct server *s = *state;
	struct response r;
	struct client cl;
	char path[64], *body;
	size_t i, len, chunk;
	int chunked;

	assert_int_equal(client_open(&cl, s->port), 0);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		for (chunked = 0; chunked < 2; chunked++) {
			snprintf(path, sizeof(path), "/bytes?n=%zu%s", sizes[i],
			    chunked ? "&chunked=1" : "");
			assert_int_equal(client_get(&cl, path), 0);
			assert_int_equal(client_response_data(&cl, &r, &body,
			    &len, &chunk), 200);
			assert_int_equal(len, sizes[i]);
			assert_true(is_pattern(body, len));
			if (chunked) {
				assert_non_null(strstr(r.head,
				    "\r\nTransfer-Encoding: chunked\r\n"));
				assert_null(strcasestr(r.head, "Content-Length"));
				assert_true(chunk <= 65536);
				assert_true(sizes[i] < 65536 || chunk == 65536);
			} else
				assert_non_null(strstr(r.head,
				    "\r\nContent-Length: "));
			free(body);
		}
	}
	client_close(&cl);

	assert_int_equal(client_open(&cl, s->port), 0);
	assert_int_equal(client_get(&cl, "/bytes?n=67108864"), 0);
	assert_int_equal(client_response_data(&cl, &r, &body, &len, &chunk),
	    200);
	assert_int_equal(len, 67108864);
	assert_true(is_pattern(body, len));
	free(body);
	client_close(&cl);

	assert_int_equal(http_get(s->port, "/bytes?n=67108865", &r), 400);
	assert_int_equal(http_get(s->port, "/bytes", &r), 400);
	assert_int_equal(http_get(s->port, "/bytes?n=-1", &r), 400);
}

/* Fill n bytes with something that is not a pattern. */
static void
scramble(char *p, size_t n)
{
	uint32_t x = 2463534242u;
	size_t i;

	for (i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (char)x;
	}
}

/* POST data with Content-Length to /echo on cl; returns what came back
 * (to free) or NULL, with its status in *status. */
static char *
echo_length(struct client *cl, const char *data, size_t n, size_t *len,
    int *status)
{
	struct response r;
	size_t chunk;
	char head[128], *body;

	snprintf(head, sizeof(head), "POST /echo HTTP/1.1\r\nHost: t\r\n"
	    "Content-Length: %zu\r\n\r\n", n);
	if (client_send(cl, head, strlen(head)) == -1 ||
	    client_send(cl, data, n) == -1)
		return NULL;
	*status = client_response_data(cl, &r, &body, len, &chunk);
	return body;
}

/* POST /echo: bodies with Content-Length come back byte for byte, the
 * connection kept. */
static void
test_echo_length(void **state)
{
	static const size_t sizes[] = { 0, 1, 16383, 16385, 5 << 20 };
	struct server *s = *state;
	struct client cl;
	char *data, *back;
	size_t i, len;
	int status;

	assert_non_null(data = malloc(5 << 20));
	scramble(data, 5 << 20);
	assert_int_equal(client_open(&cl, s->port), 0);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		back = echo_length(&cl, data, sizes[i], &len, &status);
		assert_int_equal(status, 200);
		assert_int_equal(len, sizes[i]);
		assert_true(len == 0 || memcmp(back, data, len) == 0);
		free(back);
	}
	client_close(&cl);
	free(data);
}

/* Chunked request bodies to /echo: sizes in hex of either case, chunk
 * extensions, trailers, bare LF line ends; decoded, and the next request on
 * the connection (sent in the same write) is read right. */
static void
test_echo_chunked(void **state)
{
	static const char req[] = "POST /echo HTTP/1.1\r\nHost: t\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n"
	    "5\r\nhello\r\n"
	    "1;name=value;other\r\n,\r\n"
	    "A ; x=\"quoted; still\"\r\n world!!!!\r\n"
	    "a\n and more!\n"
	    "000\r\nX-Trailer: yes\r\nOther: 2\r\n\r\n"
	    "GET /ping HTTP/1.1\r\n\r\n";
	struct server *s = *state;
	struct response r;
	struct client cl;
	char *body;
	size_t len, chunk;

	assert_int_equal(client_open(&cl, s->port), 0);
	assert_int_equal(client_send(&cl, req, strlen(req)), 0);
	assert_int_equal(client_response_data(&cl, &r, &body, &len, &chunk),
	    200);
	assert_int_equal(len, 26);
	assert_memory_equal(body, "hello, world!!!! and more!", 26);
	free(body);
	assert_int_equal(client_response(&cl, &r), 200);
	assert_string_equal(r.body, "pong\n");
	client_close(&cl);
}

/* A 3 MiB chunked body, sent in uneven chunks a piece at a time. */
static void
test_echo_chunked_large(void **state)
{
	static const char head[] = "POST /echo HTTP/1.1\r\nHost: t\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n";
	struct server *s = *state;
	size_t total = 3 << 20, off = 0, n, len, chunk;
	struct response r;
	struct client cl;
	char *data, *body, line[32];

	assert_non_null(data = malloc(total));
	scramble(data, total);
	assert_int_equal(client_open(&cl, s->port), 0);
	assert_int_equal(client_send(&cl, head, strlen(head)), 0);
	for (n = 1; off < total; n = n * 3 + 7) {
		if (n > total - off)
			n = total - off;
		snprintf(line, sizeof(line), "%zX\r\n", n);
		assert_int_equal(client_send(&cl, line, strlen(line)), 0);
		assert_int_equal(client_send(&cl, data + off, n), 0);
		assert_int_equal(client_send(&cl, "\r\n", 2), 0);
		off += n;
		if (n > 100000)
			n = 1;
	}
	assert_int_equal(client_send(&cl, "0\r\n\r\n", 5), 0);
	assert_int_equal(client_response_data(&cl, &r, &body, &len, &chunk),
	    200);
	assert_non_null(strstr(r.head, "\r\nContent-Length: 3145728\r\n"));
	assert_int_equal(len, total);
	assert_memory_equal(body, data, total);
	free(body);
	client_close(&cl);
	free(data);
}

/* /echo?head=1 puts the request head in front of the body. */
static void
test_echo_head(void **state)
{
	static const char req[] = "POST /echo?head=1 HTTP/1.1\r\nHost: t\r\n"
	    "X-Forwarded-For: 10.1.2.3\r\nContent-Length: 3\r\n\r\nabc";
	struct server *s = *state;
	struct response r;
	struct client cl;
	char *body;
	size_t len, chunk;

	assert_int_equal(client_open(&cl, s->port), 0);
	assert_int_equal(client_send(&cl, req, strlen(req)), 0);
	assert_int_equal(client_response_data(&cl, &r, &body, &len, &chunk),
	    200);
	assert_int_equal(len, strlen(req));
	assert_memory_equal(body, req, len);
	free(body);
	client_close(&cl);
}

/* What /echo refuses: GET (405, Allow: POST), a body over 64 MiB (413),
 * broken chunked framing (400), Content-Length with chunked (400); each
 * closes the connection.  Other paths still refuse chunked bodies (411). */
static void
test_echo_refused(void **state)
{
	static const struct {
		const char	*req;
		int		 status;
	} cases[] = {
		{ "POST /echo HTTP/1.1\r\nContent-Length: 67108865\r\n\r\n",
		    413 },
		{ "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		    "4000001\r\n", 413 },
		{ "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		    "2000000\r\n", -2 },	/* 32 MiB, fine so far */
		{ "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		    "fffffffffffffffffffff\r\n", 413 },
		{ "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		    "zz\r\n", 400 },
		{ "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		    "3\r\nabcX\r\n", 400 },
		{ "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		    "0\r\nno colon\r\n\r\n", 400 },
		{ "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
		    "Content-Length: 3\r\n\r\n0\r\n\r\n", 400 },
		{ "POST /echo HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
		    411 },
		{ "POST /bytes HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
		    "0\r\n\r\n", 411 },
		{ "GET /echo HTTP/1.1\r\n\r\n", 405 },
	};
	struct server *s = *state;
	struct response r;
	struct client cl;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(client_open(&cl, s->port), 0);
		assert_int_equal(client_send(&cl, cases[i].req,
		    strlen(cases[i].req)), 0);
		if (cases[i].status == -2) {
			/* no answer yet: the server waits for the data */
			struct timeval tv = { 0, 300 * 1000 };

			setsockopt(cl.fd, SOL_SOCKET, SO_RCVTIMEO, &tv,
			    sizeof(tv));
			assert_int_equal(client_fill(&cl), -1);
			assert_int_equal(cl.len, 0);
			client_close(&cl);
			continue;
		}
		assert_int_equal(client_response(&cl, &r), cases[i].status);
		if (cases[i].status == 405) {
			assert_non_null(strstr(r.head, "\r\nAllow: POST\r\n"));
			client_close(&cl);
			continue;
		}
		assert_true(client_at_eof(&cl));
		client_close(&cl);
	}
	assert_int_equal(http_get(s->port, "/ping", &r), 200);
}

static void
test_sigterm_exits_zero(void **state)
{
	struct server *s = *state;
	int status;

	status = stop_server(s);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* Exit status of the server run with one flag and a value (or NULL). */
static int
run_flags(const char *flag, const char *value)
{
	char *argv[] = { "svc", (char *)(uintptr_t)flag,
	    (char *)(uintptr_t)value, NULL };
	int status;
	pid_t pid;

	pid = spawn(argv, 1);
	assert_true(pid > 0);
	status = reap(pid, 5000);
	if (status == -1) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return -1;
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void
test_flags(void **state)
{
	(void)state;
	assert_int_equal(run_flags("--help", NULL), 0);
	assert_int_equal(run_flags("--bogus", NULL), 2);
	assert_int_equal(run_flags("--workers", "0"), 2);
	assert_int_equal(run_flags("--workers", "257"), 2);
	assert_int_equal(run_flags("--model", "threads"), 2);
	assert_int_equal(run_flags("--port", "70000"), 2);
}

/* Each test on a fresh server of one model, named after it. */
#define SYNC(t)		{ "sync: " #t, t, setup_sync, teardown, NULL }
#define ASYNC(t)	{ "async: " #t, t, setup_async, teardown, NULL }

int
main(void)
{
	const struct CMUnitTest tests[] = {
		SYNC(test_ping_and_healthz),
		SYNC(test_info_sync),
		SYNC(test_not_found),
		SYNC(test_method_not_allowed),
		SYNC(test_bad_numbers),
		SYNC(test_huge_headers),
		SYNC(test_malformed),
		SYNC(test_refused),
		SYNC(test_keepalive),
		SYNC(test_pipelined),
		SYNC(test_http10_closes),
		SYNC(test_connection_close),
		SYNC(test_workers_bound_concurrency),
		SYNC(test_idle_keepalive_holds_no_worker),
		SYNC(test_alloc),
		SYNC(test_bytes),
		SYNC(test_echo_length),
		SYNC(test_echo_chunked),
		SYNC(test_echo_chunked_large),
		SYNC(test_echo_head),
		SYNC(test_echo_refused),
		SYNC(test_sigterm_exits_zero),
		ASYNC(test_ping_and_healthz),
		ASYNC(test_info_async),
		ASYNC(test_method_not_allowed),
		ASYNC(test_huge_headers),
		ASYNC(test_malformed),
		ASYNC(test_refused),
		ASYNC(test_keepalive),
		ASYNC(test_pipelined),
		ASYNC(test_http10_closes),
		ASYNC(test_waits_overlap),
		ASYNC(test_heavy_blocks_loop),
		ASYNC(test_alloc),
		ASYNC(test_bytes),
		ASYNC(test_echo_length),
		ASYNC(test_echo_chunked),
		ASYNC(test_echo_chunked_large),
		ASYNC(test_echo_head),
		ASYNC(test_echo_refused),
		ASYNC(test_sigterm_exits_zero),
		cmocka_unit_test(test_flags),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
