/*
 * Tests of the control socket's HTTP server (orchestrator/ctl.c).
 *
 * As in test_lb.c: each test makes its event loop and its listener in the
 * main thread and runs the loop there, with a handler that answers by path,
 * while client threads talk HTTP/1.x to it over plain blocking sockets (unix
 * or TCP) with the raw client of tests/lib/httptest.c. Streams are fed from
 * timers on the loop. Client threads only record what they saw; the main
 * thread asserts after joining them.
 *
 * Every wait is bounded (sockets time out after $VD_TEST_IO_MS, 20 s by
 * default; a run of the loop after LIMIT_MS fails), and no assertion puts an
 * upper bound on a duration.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "httptest.h"
#include "vdtest.h"
#include "vd/ctl.h"
#include "vd/ev.h"

#define MAX_THREADS 4
#define LIMIT_MS 60000 /* a run of the loop that takes longer fails */
#define STREAM_LINES 1000

static const char pattern[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
#define PATTERN_LEN 62

/* ------------------------------------------------------------------ time */

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ------------------------------------------------------------- fixture */

struct stream {
	struct vd_ctl_req *req;
	int timer;
	int n, sent;  /* lines to send; -1: until the client goes */
	size_t flood; /* bytes a tick instead of lines (a client that does not read) */
};

static struct fixture {
	struct vd_ev *ev;
	struct vd_ctl *ctl;
	char dir[64];
	char sock[96];
	atomic_int running; /* client threads not done */
	bool (*until)(void); /* and this, before the loop stops */
	bool timed_out;
	int calls;          /* handler calls */
	atomic_int gone;    /* on_gone calls */
	int ended;          /* streams ended */
	int gone_at_free;   /* on_gone calls when vd_ctl_free returned */
	bool freed;
} fx;

static int
setup(void **state)
{
	struct vd_error err = VD_ERROR_INIT;

	(void)state;
	memset(&fx, 0, sizeof(fx));
	snprintf(fx.dir, sizeof(fx.dir), "/tmp/vd-ctl-XXXXXX");
	if (!mkdtemp(fx.dir))
		return -1;
	snprintf(fx.sock, sizeof(fx.sock), "%s/control.sock", fx.dir);
	fx.ev = vd_ev_new(&err);
	return fx.ev ? 0 : -1;
}

static int
teardown(void **state)
{
	char path[512];
	struct dirent *e;
	DIR *d;

	(void)state;
	vd_ctl_free(fx.ctl);
	vd_ev_free(fx.ev);
	if ((d = opendir(fx.dir))) {
		while ((e = readdir(d)))
			if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
				snprintf(path, sizeof(path), "%s/%s", fx.dir, e->d_name);
				unlink(path);
			}
		closedir(d);
	}
	rmdir(fx.dir);
	memset(&fx, 0, sizeof(fx));
	return 0;
}

/* ------------------------------------------------------------- handler */

static void
stream_free(struct stream *s)
{
	vd_ev_timer_cancel(fx.ev, s->timer);
	free(s);
}

static void
on_gone(void *arg)
{
	atomic_fetch_add(&fx.gone, 1);
	stream_free(arg);
}

/* Feed a stream: 50 lines a tick (or a line every 5 ms when it has no end,
 * or FLOOD bytes), then end it. */
static int64_t
stream_tick(struct vd_ev *ev, void *arg)
{
	static char big[1 << 20];
	struct stream *s = arg;
	char line[64];

	(void)ev;
	if (s->flood) {
		memset(big, 'x', sizeof(big));
		vd_ctl_stream_write(s->req, big, s->flood < sizeof(big) ? s->flood : sizeof(big));
		return 1;
	}
	for (int i = 0; i < (s->n < 0 ? 1 : 50) && s->sent != s->n; i++) {
		int k = snprintf(line, sizeof(line), "line %d\n", s->sent++);

		vd_ctl_stream_write(s->req, line, (size_t)k);
	}
	if (s->sent == s->n) {
		vd_ctl_stream_end(s->req);
		fx.ended++;
		free(s);
		return -1;
	}
	return s->n < 0 ? 5 : 1;
}

static void
start_stream(struct vd_ctl_req *req, int n, size_t flood)
{
	struct stream *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	s->req = req;
	s->n = n;
	s->flood = flood;
	vd_ctl_stream_begin(req, "application/x-ndjson", on_gone, s);
	s->timer = vd_ev_timer(fx.ev, 1, stream_tick, s);
}

static int64_t
free_timer(struct vd_ev *ev, void *arg)
{
	(void)ev;
	(void)arg;
	vd_ctl_free(fx.ctl);
	fx.ctl = NULL;
	fx.gone_at_free = atomic_load(&fx.gone);
	fx.freed = true;
	return -1;
}

static void
handler(void *arg, struct vd_ctl_req *req)
{
	const char *path = vd_ctl_path(req);
	size_t len;
	const char *body = vd_ctl_body(req, &len);
	json_t *j;

	assert_ptr_equal(arg, &fx);
	fx.calls++;
	if (strcmp(path, "/json") == 0) {
		j = json_pack("{s:s, s:s, s:s, s:i}", "method", vd_ctl_method(req), "path", path,
			      "query", vd_ctl_query(req), "body", (int)len);
		vd_ctl_reply_json(req, 200, j);
		json_decref(j);
	} else if (strcmp(path, "/echo") == 0) {
		assert_int_equal(body[len], '\0');
		vd_ctl_reply(req, 200, "text/plain", body, len);
	} else if (strcmp(path, "/stream") == 0) {
		start_stream(req, STREAM_LINES, 0);
	} else if (strcmp(path, "/forever") == 0) {
		start_stream(req, -1, 0);
	} else if (strcmp(path, "/flood") == 0) {
		start_stream(req, -1, 1 << 20);
	} else if (strcmp(path, "/hold") == 0) {
		/* a stream that says one line and waits; the listener goes */
		struct stream *s = calloc(1, sizeof(*s));

		assert_non_null(s);
		s->req = req;
		vd_ctl_stream_begin(req, "text/plain", on_gone, s);
		vd_ctl_stream_write(req, "held\n", 5);
		vd_ev_timer(fx.ev, 100, free_timer, NULL);
	} else if (strcmp(path, "/free") == 0) {
		/* the listener goes from inside its handler */
		vd_ctl_reply(req, 200, "text/plain", "bye\n", 4);
		vd_ctl_free(fx.ctl);
		fx.ctl = NULL;
		fx.freed = true;
	} else if (strcmp(path, "/take") == 0) {
		/* the connection taken out of the server, answered on its fd */
		static const char ans[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
					  "Connection: close\r\n\r\ntaken";
		int fd = vd_ctl_take(req);

		assert_true(fd >= 0);
		assert_int_equal(write(fd, ans, sizeof(ans) - 1), sizeof(ans) - 1);
		close(fd);
	} else if (strcmp(path, "/silent") == 0) {
		/* no answer: the server's 500 */
	} else {
		j = json_pack("{s:s}", "error", "no such path");
		vd_ctl_reply_json(req, 404, j);
		json_decref(j);
	}
}

static void
listen_unix(void)
{
	struct vd_error err = VD_ERROR_INIT;

	fx.ctl = vd_ctl_listen_unix(fx.ev, fx.sock, handler, &fx, &err);
	if (!fx.ctl)
		fail_msg("vd_ctl_listen_unix: %s", err.msg);
}

/* ---------------------------------------------------------- the loop */

static int64_t
check_timer(struct vd_ev *ev, void *arg)
{
	(void)arg;
	if (atomic_load(&fx.running) == 0 && (!fx.until || fx.until())) {
		vd_ev_stop(ev);
		return -1;
	}
	return 5;
}

static int64_t
limit_timer(struct vd_ev *ev, void *arg)
{
	(void)arg;
	fx.timed_out = true;
	vd_ev_stop(ev);
	return -1;
}

struct worker {
	pthread_t t;
	void *(*fn)(void *);
	void *arg;
};

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	w->fn(w->arg);
	atomic_fetch_sub(&fx.running, 1);
	return NULL;
}

/* Run the loop in this thread while n client threads run fn(args + i *
 * size), until they are done and until() holds (or LIMIT_MS, which fails
 * the test). The threads are joined before it returns. */
static void
run_clients(int n, void *(*fn)(void *), void *args, size_t size, bool (*until)(void))
{
	struct worker w[MAX_THREADS];
	int limit, check;

	assert_true(n >= 0 && n <= MAX_THREADS);
	fx.until = until;
	fx.timed_out = false;
	atomic_store(&fx.running, n);
	limit = vd_ev_timer(fx.ev, LIMIT_MS, limit_timer, NULL);
	check = vd_ev_timer(fx.ev, 5, check_timer, NULL);
	for (int i = 0; i < n; i++) {
		w[i] = (struct worker){ 0, fn, (char *)args + (size_t)i * size };
		assert_int_equal(pthread_create(&w[i].t, NULL, worker_main, &w[i]), 0);
	}
	vd_ev_run(fx.ev);
	vd_ev_timer_cancel(fx.ev, limit);
	vd_ev_timer_cancel(fx.ev, check);
	for (int i = 0; i < n; i++)
		pthread_join(w[i].t, NULL);
	assert_false(fx.timed_out);
}

/* Run the loop for about ms, for what comes after (nothing should). */
static void
run_for(int64_t ms)
{
	fx.until = NULL;
	atomic_store(&fx.running, 0);
	vd_ev_timer(fx.ev, ms, limit_timer, NULL);
	vd_ev_run(fx.ev);
	fx.timed_out = false;
}

/* ---------------------------------------------------------- the client */

/* Connect to the listener: its unix socket (port 0) or 127.0.0.1:port. */
static int
ctl_open(struct vt_conn *c, int port)
{
	return port ? vt_conn_tcp(c, port) : vt_conn_unix(c, fx.sock);
}

static char *
patterned(size_t n)
{
	char *p = malloc(n);

	for (size_t i = 0; p && i < n; i++)
		p[i] = pattern[i % PATTERN_LEN];
	return p;
}

/* ------------------------------------------------- one exchange, raw */

/* Send RAW on a new connection, read one response, and see whether the
 * server closes after it. */
struct raw_arg {
	int port;
	const char *raw;
	size_t rawlen; /* 0: strlen */
	struct vt_resp r;
	bool eof;
};

static void *
raw_client(void *arg)
{
	struct raw_arg *a = arg;
	struct vt_conn *c = calloc(1, sizeof(*c));

	if (!c || ctl_open(c, a->port) < 0)
		goto out;
	if (vt_conn_send(c, a->raw, a->rawlen ? a->rawlen : strlen(a->raw)) < 0)
		goto out;
	if (vt_read_response(c, &a->r, false) < 0)
		goto out;
	a->eof = a->r.eof || vt_conn_at_eof(c);
out:
	if (c)
		vt_conn_close(c);
	free(c);
	return NULL;
}

/* --------------------------------------------------------------- tests */

struct get_arg {
	int port;
	struct vt_resp r;
	json_t *j;
};

static void *
get_json_client(void *arg)
{
	struct get_arg *a = arg;
	struct vt_conn *c = calloc(1, sizeof(*c));

	if (c && ctl_open(c, a->port) == 0 &&
	    vt_request(c, "GET", "/json?x=1&y=two", NULL, NULL, 0, &a->r) == 200)
		a->j = json_loads(a->r.body, 0, NULL);
	if (c)
		vt_conn_close(c);
	free(c);
	return NULL;
}

static void
check_json_answer(struct get_arg *a)
{
	assert_int_equal(a->r.status, 200);
	assert_int_equal(strncmp(a->r.head, "HTTP/1.1 200 OK\r\n", 17), 0);
	assert_true(vt_has_header(&a->r, "Content-Type: application/json"));
	assert_true(vt_has_header(&a->r, "Server: vdctl"));
	assert_false(vt_has_header(&a->r, "Connection: close"));
	assert_non_null(strstr(a->r.head, "\r\nContent-Length: "));
	/* one line */
	assert_true(a->r.len > 1);
	assert_int_equal(a->r.body[a->r.len - 1], '\n');
	assert_null(memchr(a->r.body, '\n', a->r.len - 1));
	assert_non_null(a->j);
	assert_string_equal(json_string_value(json_object_get(a->j, "method")), "GET");
	assert_string_equal(json_string_value(json_object_get(a->j, "path")), "/json");
	assert_string_equal(json_string_value(json_object_get(a->j, "query")), "x=1&y=two");
	assert_int_equal(json_integer_value(json_object_get(a->j, "body")), 0);
	json_decref(a->j);
	vt_resp_clear(&a->r);
}

/* GET over the unix socket, a JSON answer; the socket is 0600, nothing
 * else is left in its directory, and it goes with the listener. */
static void
test_unix_get_json(void **state)
{
	struct get_arg a = { 0 };
	struct stat st;
	struct dirent *e;
	DIR *d;
	int files = 0;

	(void)state;
	listen_unix();
	assert_int_equal(vd_ctl_port(fx.ctl), 0);
	assert_int_equal(stat(fx.sock, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_non_null(d = opendir(fx.dir));
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			files++;
	closedir(d);
	assert_int_equal(files, 1);

	run_clients(1, get_json_client, &a, sizeof(a), NULL);
	check_json_answer(&a);
	assert_int_equal(fx.calls, 1);

	vd_ctl_free(fx.ctl);
	fx.ctl = NULL;
	assert_int_equal(lstat(fx.sock, &st), -1);
	assert_int_equal(errno, ENOENT);
}

/* A socket left at the path (a crashed controller's) is replaced; any other
 * file is not touched. */
static void
test_unix_socket_file(void **state)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct vd_error err = VD_ERROR_INIT;
	struct get_arg a = { 0 };
	struct stat st;
	int fd;

	(void)state;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", fx.sock);
	assert_true((fd = socket(AF_UNIX, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd);
	listen_unix();
	assert_int_equal(stat(fx.sock, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	run_clients(1, get_json_client, &a, sizeof(a), NULL);
	check_json_answer(&a);
	vd_ctl_free(fx.ctl);
	fx.ctl = NULL;

	assert_true((fd = open(fx.sock, O_CREAT | O_WRONLY, 0644)) >= 0);
	close(fd);
	assert_null(vd_ctl_listen_unix(fx.ev, fx.sock, handler, &fx, &err));
	assert_non_null(strstr(err.msg, "not a socket"));
	assert_int_equal(stat(fx.sock, &st), 0);
	assert_true(S_ISREG(st.st_mode));
}

struct echo_arg {
	int port;
	size_t n;
	int status, chunked_status, continue_status, final_status;
	bool same, chunked_same, continue_same;
};

static void *
echo_client(void *arg)
{
	struct echo_arg *a = arg;
	struct vt_conn *c = calloc(1, sizeof(*c));
	char *body = patterned(a->n);
	struct vt_resp r = { 0 };
	char head[256];

	if (!c || !body || ctl_open(c, a->port) < 0)
		goto out;
	/* Content-Length */
	a->status = vt_request(c, "POST", "/echo", NULL, body, a->n, &r);
	a->same = r.len == a->n && memcmp(r.body, body, a->n) == 0 &&
		  vt_has_header(&r, "Content-Type: text/plain");
	/* chunked, in three chunks */
	if (vt_conn_sendstr(c, "POST /echo HTTP/1.1\r\nHost: t\r\n"
			       "Transfer-Encoding: chunked\r\n\r\n"
			       "5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n") < 0)
		goto out;
	a->chunked_status = vt_read_response(c, &r, false);
	a->chunked_same = r.len == 11 && memcmp(r.body, "hello world", 11) == 0;
	/* Expect: 100-continue: the body goes once the server says so */
	snprintf(head, sizeof(head), "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
		 "Content-Length: %zu\r\n\r\n", a->n);
	if (vt_conn_sendstr(c, head) < 0)
		goto out;
	a->continue_status = vt_read_response(c, &r, false);
	if (a->continue_status != 100 || vt_conn_send(c, body, a->n) < 0)
		goto out;
	a->final_status = vt_read_response(c, &r, false);
	a->continue_same = r.len == a->n && memcmp(r.body, body, a->n) == 0;
out:
	vt_resp_clear(&r);
	if (c)
		vt_conn_close(c);
	free(c);
	free(body);
	return NULL;
}

/* POST bodies come to the handler whole: with a length, chunked, and after
 * a 100 Continue. */
static void
test_post_echo(void **state)
{
	struct echo_arg a = { .n = 300000 };

	(void)state;
	listen_unix();
	run_clients(1, echo_client, &a, sizeof(a), NULL);
	assert_int_equal(a.status, 200);
	assert_true(a.same);
	assert_int_equal(a.chunked_status, 200);
	assert_true(a.chunked_same);
	assert_int_equal(a.continue_status, 100);
	assert_int_equal(a.final_status, 200);
	assert_true(a.continue_same);
	assert_int_equal(fx.calls, 3);
}

struct ka_arg {
	int status[4];
	bool close[4];
	bool head_ok, eof11, pipelined, eof10, keep10, eof_close;
};

static void *
keepalive_client(void *arg)
{
	struct ka_arg *a = arg;
	struct vt_conn *c = calloc(1, sizeof(*c));
	struct vt_resp r = { 0 };
	const char *p;

	if (!c || ctl_open(c, 0) < 0)
		goto out;
	/* HTTP/1.1: GET, HEAD, GET on one connection */
	a->status[0] = vt_request(c, "GET", "/json", NULL, NULL, 0, &r);
	a->close[0] = vt_has_header(&r, "Connection: close");
	a->status[1] = vt_request(c, "HEAD", "/json", NULL, NULL, 0, &r);
	a->head_ok = (p = strstr(r.head, "Content-Length: ")) && atoi(p + 16) > 0;
	a->status[2] = vt_request(c, "GET", "/nowhere", NULL, NULL, 0, &r);
	/* two at once: answered in turn */
	if (vt_conn_sendstr(c, "GET /json HTTP/1.1\r\nHost: t\r\n\r\nGET /json?b HTTP/1.1\r\n"
			       "Host: t\r\n\r\n") < 0)
		goto out;
	a->pipelined = vt_read_response(c, &r, false) == 200 && strstr(r.body, "\"query\":\"\"") &&
		       vt_read_response(c, &r, false) == 200 && strstr(r.body, "\"query\":\"b\"");
	/* the client says close */
	a->status[3] = vt_request(c, "GET", "/json", "Connection: close\r\n", NULL, 0, &r);
	a->close[3] = vt_has_header(&r, "Connection: close");
	a->eof_close = vt_conn_at_eof(c);
	vt_conn_close(c);

	/* HTTP/1.0: closed after the answer, unless it asks for keep-alive */
	if (ctl_open(c, 0) < 0 || vt_conn_sendstr(c, "GET /json HTTP/1.0\r\n\r\n") < 0 ||
	    vt_read_response(c, &r, false) != 200)
		goto out;
	a->eof10 = vt_has_header(&r, "Connection: close") && vt_conn_at_eof(c);
	vt_conn_close(c);
	if (ctl_open(c, 0) < 0 ||
	    vt_conn_sendstr(c, "GET /json HTTP/1.0\r\nConnection: keep-alive\r\n\r\n") < 0 ||
	    vt_read_response(c, &r, false) != 200 || !vt_has_header(&r, "Connection: keep-alive") ||
	    vt_conn_sendstr(c, "GET /json HTTP/1.0\r\nConnection: keep-alive\r\n\r\n") < 0)
		goto out;
	a->keep10 = vt_read_response(c, &r, false) == 200;
out:
	vt_resp_clear(&r);
	if (c)
		vt_conn_close(c);
	free(c);
	return NULL;
}

/* Keep-alive: requests follow each other on one connection while the
 * client allows it. */
static void
test_keepalive(void **state)
{
	struct ka_arg a = { 0 };

	(void)state;
	listen_unix();
	run_clients(1, keepalive_client, &a, sizeof(a), NULL);
	assert_int_equal(a.status[0], 200);
	assert_false(a.close[0]);
	assert_int_equal(a.status[1], 200);
	assert_true(a.head_ok);
	assert_int_equal(a.status[2], 404);
	assert_true(a.pipelined);
	assert_int_equal(a.status[3], 200);
	assert_true(a.close[3]);
	assert_true(a.eof_close);
	assert_true(a.eof10);
	assert_true(a.keep10);
	assert_int_equal(fx.calls, 9);
}

struct stream_arg {
	int status;
	struct vt_resp r;
	bool whole;
	int lines_seen;
};

static void *
stream_client(void *arg)
{
	struct stream_arg *a = arg;
	struct vt_conn *c = calloc(1, sizeof(*c));
	char want[32];
	const char *p;

	if (!c || ctl_open(c, 0) < 0)
		goto out;
	a->status = vt_request(c, "GET", "/stream", NULL, NULL, 0, &a->r);
	if (a->status != 200 || !a->r.eof)
		goto out;
	a->whole = true;
	p = a->r.body;
	for (int i = 0; i < STREAM_LINES; i++) {
		int k = snprintf(want, sizeof(want), "line %d\n", i);

		if (strncmp(p, want, (size_t)k) != 0) {
			a->whole = false;
			break;
		}
		p += k;
		a->lines_seen++;
	}
	a->whole = a->whole && *p == '\0';
out:
	if (c)
		vt_conn_close(c);
	free(c);
	return NULL;
}

/* A stream of 1,000 lines comes whole and in order, and the connection
 * closes at its end. */
static void
test_stream(void **state)
{
	struct stream_arg a = { 0 };

	(void)state;
	listen_unix();
	run_clients(1, stream_client, &a, sizeof(a), NULL);
	assert_int_equal(a.status, 200);
	assert_true(vt_has_header(&a.r, "Connection: close"));
	assert_true(vt_has_header(&a.r, "Content-Type: application/x-ndjson"));
	assert_true(vt_has_header(&a.r, "Server: vdctl"));
	assert_null(strstr(a.r.head, "Content-Length"));
	assert_true(a.r.eof);
	assert_int_equal(a.lines_seen, STREAM_LINES);
	assert_true(a.whole);
	assert_int_equal(fx.ended, 1);
	assert_int_equal(atomic_load(&fx.gone), 0);
	vt_resp_clear(&a.r);
}

struct leave_arg {
	int port;
	const char *path;
	bool read;   /* read some lines before leaving; else wait for the cut */
	bool got_head, got_lines;
};

static void *
leave_client(void *arg)
{
	struct leave_arg *a = arg;
	struct vt_conn *c = calloc(1, sizeof(*c));

	if (!c || ctl_open(c, a->port) < 0)
		goto out;
	if (vt_conn_sendstr(c, a->path) < 0)
		goto out;
	if (a->read) {
		/* the head and three lines, then away */
		char *end;

		while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
			if (vt_conn_fill(c) != 0)
				goto out;
		a->got_head = strncmp(c->buf, "HTTP/1.1 200 ", 13) == 0;
		vt_conn_consume(c, (size_t)(end + 4 - c->buf));
		while (!memmem(c->buf, c->len, "line 2\n", 7))
			if (vt_conn_fill(c) != 0)
				goto out;
		a->got_lines = strncmp(c->buf, "line 0\nline 1\nline 2\n", 21) == 0;
	} else {
		/* reading nothing, until the server gives up */
		for (long waited = 0; !atomic_load(&fx.gone) && waited < vt_io_ms(); waited += 10)
			sleep_ms(10);
	}
out:
	if (c)
		vt_conn_close(c);
	free(c);
	return NULL;
}

static bool
gone_once(void)
{
	return atomic_load(&fx.gone) >= 1;
}

/* A client that leaves in the middle of a stream: on_gone, once. */
static void
test_stream_client_gone(void **state)
{
	struct leave_arg a = { .path = "GET /forever HTTP/1.1\r\nHost: t\r\n\r\n", .read = true };

	(void)state;
	listen_unix();
	run_clients(1, leave_client, &a, sizeof(a), gone_once);
	assert_true(a.got_head);
	assert_true(a.got_lines);
	run_for(100);
	assert_int_equal(atomic_load(&fx.gone), 1);
	assert_int_equal(fx.ended, 0);
}

/* A client that does not read while a stream piles up more than 16 MiB is
 * cut: on_gone, once. */
static void
test_stream_not_read(void **state)
{
	struct leave_arg a = { .path = "GET /flood HTTP/1.1\r\nHost: t\r\n\r\n" };

	(void)state;
	listen_unix();
	run_clients(1, leave_client, &a, sizeof(a), gone_once);
	run_for(100);
	assert_int_equal(atomic_load(&fx.gone), 1);
}

/* The listener freed with a stream open: on_gone is called before
 * vd_ctl_free returns, the client sees the end. */
static void
test_free_with_stream(void **state)
{
	struct raw_arg a = { .raw = "GET /hold HTTP/1.1\r\nHost: t\r\n\r\n" };
	struct stat st;

	(void)state;
	listen_unix();
	run_clients(1, raw_client, &a, sizeof(a), NULL);
	assert_true(fx.freed);
	assert_int_equal(fx.gone_at_free, 1);
	assert_int_equal(a.r.status, 200);
	assert_string_equal(a.r.body, "held\n");
	assert_true(a.eof);
	assert_int_equal(lstat(fx.sock, &st), -1);
	vt_resp_clear(&a.r);
	run_for(50);
	assert_int_equal(atomic_load(&fx.gone), 1);
}

/* Bodies over 8 MiB: 413 without reading them (and no 100 Continue), then
 * the connection closes; a head over 16 KiB: 431. */
static void
test_too_big(void **state)
{
	struct raw_arg a[3] = {
		{ .raw = "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 9000000\r\n\r\n" },
		{ .raw = "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
			 "Content-Length: 8388609\r\n\r\n" },
	};
	char *big = malloc(20000);

	(void)state;
	assert_non_null(big);
	snprintf(big, 20000, "GET /json HTTP/1.1\r\nHost: t\r\nX-Big: %0*d\r\n\r\n", 17000, 0);
	a[2].raw = big;
	listen_unix();
	run_clients(3, raw_client, a, sizeof(a[0]), NULL);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(a[i].r.status, i < 2 ? 413 : 431);
		assert_non_null(strstr(a[i].r.head, i < 2 ? " 413 Payload Too Large\r\n"
							  : " 431 Request Header Fields Too Large\r\n"));
		assert_true(vt_has_header(&a[i].r, "Connection: close"));
		assert_true(a[i].eof);
		vt_resp_clear(&a[i].r);
	}
	assert_int_equal(fx.calls, 0);
	free(big);
}

/* Not HTTP: 400, then the close. */
static void
test_bad_request(void **state)
{
	struct raw_arg a[2] = {
		{ .raw = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 garbage\r\n\r\n" },
		{ .raw = "GET /json HTTP/1.1\r\nHost: t\r\nNo colon here\r\n\r\n" },
	};

	(void)state;
	listen_unix();
	run_clients(2, raw_client, a, sizeof(a[0]), NULL);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(a[i].r.status, 400);
		assert_true(vt_has_header(&a[i].r, "Connection: close"));
		assert_true(a[i].eof);
		vt_resp_clear(&a[i].r);
	}
	assert_int_equal(fx.calls, 0);
}

/* A handler that returns without answering: 500 for it. */
static void
test_no_answer(void **state)
{
	struct raw_arg a = { .raw = "GET /silent HTTP/1.1\r\nHost: t\r\n\r\n" };

	(void)state;
	listen_unix();
	run_clients(1, raw_client, &a, sizeof(a), NULL);
	assert_int_equal(a.r.status, 500);
	assert_true(a.eof);
	assert_int_equal(fx.calls, 1);
	vt_resp_clear(&a.r);
}

/* The listener freed by its own handler: the connection closes (the
 * answer queued is dropped), nothing else happens. */
static void
test_free_in_handler(void **state)
{
	struct raw_arg a = { .raw = "GET /free HTTP/1.1\r\nHost: t\r\n\r\n" };
	struct stat st;

	(void)state;
	listen_unix();
	run_clients(1, raw_client, &a, sizeof(a), NULL);
	assert_true(fx.freed);
	assert_null(fx.ctl);
	assert_int_equal(a.r.status, 0); /* no answer: the close */
	assert_int_equal(lstat(fx.sock, &st), -1);
	assert_int_equal(fx.calls, 1);
	run_for(50);
	vt_resp_clear(&a.r);
}

/* A head that does not come whole within 10 s: 408. */
static void
test_head_timeout(void **state)
{
	struct raw_arg a = { .raw = "GET /json HTTP/1.1\r\nHost: t\r\n" };

	(void)state;
	listen_unix();
	run_clients(1, raw_client, &a, sizeof(a), NULL);
	assert_int_equal(a.r.status, 408);
	assert_true(a.eof);
	assert_int_equal(fx.calls, 0);
	vt_resp_clear(&a.r);
}

/* TCP on 127.0.0.1, port 0: vd_ctl_port says which; "localhost" is taken,
 * a host name is not. */
static void
test_tcp(void **state)
{
	struct vd_error err = VD_ERROR_INIT;
	struct get_arg a = { 0 };
	struct vd_ctl *other;

	(void)state;
	fx.ctl = vd_ctl_listen_tcp(fx.ev, "127.0.0.1", 0, handler, &fx, &err);
	if (!fx.ctl)
		fail_msg("vd_ctl_listen_tcp: %s", err.msg);
	a.port = vd_ctl_port(fx.ctl);
	assert_true(a.port > 0);
	run_clients(1, get_json_client, &a, sizeof(a), NULL);
	check_json_answer(&a);

	other = vd_ctl_listen_tcp(fx.ev, "localhost", 0, handler, &fx, &err);
	if (!other)
		fail_msg("vd_ctl_listen_tcp localhost: %s", err.msg);
	assert_true(vd_ctl_port(other) > 0);
	vd_ctl_free(other);
	assert_null(vd_ctl_listen_tcp(fx.ev, "example.com", 0, handler, &fx, &err));
	assert_int_equal(err.code, VD_EXIT_INPUT);
}

/* A request on a connection made before the server adopted its listener. */
struct queued_arg {
	struct vt_conn *c;
	struct vt_resp r;
};

static void *
queued_client(void *arg)
{
	struct queued_arg *a = arg;

	vt_request(a->c, "GET", "/json", NULL, NULL, 0, &a->r);
	return NULL;
}

/* A listener handed to another server, as a controller that takes over
 * gets it: the old server detaches (a connection made meanwhile waits in
 * the queue; the socket file stays when it is freed), the new one adopts it
 * and answers that connection, and unlinks the file when it goes. Not a
 * listening socket: refused, the fd left alone. A connection taken out of
 * the server is answered on its own fd. */
static void
test_adopt(void **state)
{
	struct vd_error err = VD_ERROR_INIT;
	struct queued_arg q = { calloc(1, sizeof(struct vt_conn)), { 0 } };
	struct raw_arg t = { .raw = "GET /take HTTP/1.1\r\nHost: x\r\n\r\n" };
	struct vd_ctl *old;
	struct stat st;
	int fd, plain;

	(void)state;
	listen_unix();
	old = fx.ctl;
	fd = dup(vd_ctl_listen_fd(old)); /* what SCM_RIGHTS gives the other process */
	assert_true(fd >= 0);
	vd_ctl_detach(old);
	assert_int_equal(vd_ctl_listen_fd(old), -1);
	assert_non_null(q.c);
	assert_int_equal(vt_conn_unix(q.c, fx.sock), 0);
	vd_ctl_free(old);
	fx.ctl = NULL;
	assert_int_equal(stat(fx.sock, &st), 0);

	plain = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_null(vd_ctl_adopt(fx.ev, plain, fx.sock, handler, &fx, &err));
	assert_non_null(strstr(err.msg, "not a listening unix socket"));
	assert_true(fcntl(plain, F_GETFD) >= 0); /* still open */
	close(plain);
	fx.ctl = vd_ctl_adopt(fx.ev, fd, fx.sock, handler, &fx, &err);
	if (!fx.ctl)
		fail_msg("vd_ctl_adopt: %s", err.msg);
	run_clients(1, queued_client, &q, sizeof(q), NULL);
	assert_int_equal(q.r.status, 200);
	vt_resp_clear(&q.r);
	vt_conn_close(q.c);
	free(q.c);

	run_clients(1, raw_client, &t, sizeof(t), NULL);
	assert_int_equal(t.r.status, 200);
	assert_string_equal(t.r.body, "taken");
	vt_resp_clear(&t.r);

	vd_ctl_free(fx.ctl);
	fx.ctl = NULL;
	assert_int_equal(stat(fx.sock, &st), -1);
}

#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_unix_get_json),
		T(test_unix_socket_file),
		T(test_post_echo),
		T(test_keepalive),
		T(test_stream),
		T(test_stream_client_gone),
		T(test_stream_not_read),
		T(test_free_with_stream),
		T(test_too_big),
		T(test_bad_request),
		T(test_no_answer),
		T(test_free_in_handler),
		T(test_tcp),
		T(test_head_timeout),
		T(test_adopt),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
