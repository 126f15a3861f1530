/*
 * Tests of the health checks (orchestrator/health.c): the probes on the
 * event loop, and the blocking check over the same parsing, against real
 * listeners on 127.0.0.1 made here.
 *
 * Each server is a thread with blocking sockets that accepts one connection
 * at a time and does one thing with it (answer 200, answer 500, answer
 * something that is not HTTP, close at once, hold it and never answer). The
 * loop runs in the main thread until the expected number of results came,
 * with a safety timer; done() only records, the main thread asserts. No
 * assertion bounds a duration from above: the machines that run this are
 * small and noisy.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "vdtest.h"
#include "vd/clock.h"
#include "vd/ev.h"
#include "vd/health.h"

#define LIMIT_MS 30000 /* a run of the loop that takes longer fails */
#define MAX_HELD 16
#define NPROBES 100

static long
io_ms(void)
{
	return atol(vt_env("VD_TEST_IO_MS", "20000"));
}

/* ------------------------------------------------------------ servers */

enum smode {
	S_OK,      /* 200 */
	S_500,     /* 500 */
	S_GARBAGE, /* not HTTP */
	S_CLOSE,   /* close at once */
	S_SILENT,  /* hold the connection, never answer */
};

struct server {
	int fd, port;
	enum smode mode;
	pthread_t th;
	bool running;
	atomic_bool stop;
	int held[MAX_HELD];
	int nheld;
	int served;       /* connections accepted */
	char first[1024]; /* the first request's head */
};

static const char *const replies[] = {
	[S_OK] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
	[S_500] = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n",
	[S_GARBAGE] = "SSH-2.0-OpenSSH_9.6\r\n",
};

/* Read a request head into buf (NUL-terminated); stops at its end, at EOF,
 * or at the socket's timeout. */
static void
read_head(int fd, char *buf, size_t size)
{
	size_t got = 0;

	buf[0] = '\0';
	while (got < size - 1 && !strstr(buf, "\r\n\r\n")) {
		ssize_t n = recv(fd, buf + got, size - 1 - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
		buf[got] = '\0';
	}
}

static void
serve_one(struct server *s, int c)
{
	long ms = io_ms();
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	char head[1024];

	s->served++;
	switch (s->mode) {
	case S_CLOSE:
		close(c);
		return;
	case S_SILENT:
		if (s->nheld < MAX_HELD)
			s->held[s->nheld++] = c;
		else
			close(c);
		return;
	default:
		break;
	}
	setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	read_head(c, head, sizeof(head));
	if (s->served == 1)
		snprintf(s->first, sizeof(s->first), "%s", head);
	/* a TCP check has gone already: the send fails, which is fine */
	(void)!send(c, replies[s->mode], strlen(replies[s->mode]), MSG_NOSIGNAL);
	close(c);
}

static void *
serve(void *arg)
{
	struct server *s = arg;

	while (!atomic_load(&s->stop)) {
		struct pollfd p = { .fd = s->fd, .events = POLLIN };
		int c;

		if (poll(&p, 1, 50) <= 0)
			continue;
		c = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
		if (c >= 0)
			serve_one(s, c);
	}
	return NULL;
}

/* A socket bound to 127.0.0.1 on an ephemeral port; listening when LISTEN. */
static int
bound_socket(bool listening, int *port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int fd;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	if (listening)
		assert_int_equal(listen(fd, 256), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

static void
server_start(struct server *s, enum smode mode)
{
	memset(s, 0, sizeof(*s));
	s->mode = mode;
	s->fd = bound_socket(true, &s->port);
	atomic_store(&s->stop, false);
	assert_int_equal(pthread_create(&s->th, NULL, serve, s), 0);
	s->running = true;
}

static void
server_stop(struct server *s)
{
	if (!s->running)
		return;
	atomic_store(&s->stop, true);
	pthread_join(s->th, NULL);
	for (int i = 0; i < s->nheld; i++)
		close(s->held[i]);
	close(s->fd);
	s->running = false;
}

/* ------------------------------------------------------ loop and results */

struct tally;

/* One probe's results: done() must come exactly once. */
struct slot {
	struct tally *t;
	struct vd_health_probe *p;
	int calls;
	enum vd_health_result r;
	int code; /* the HTTP status done() heard */
	struct slot *victim; /* cancelled from done(), when set */
	int restarts;        /* started again from done() while > 0 */
	const struct vd_health_spec *spec;
	int port;
};

struct tally {
	int want, n;
};

static struct {
	struct vd_ev *ev;
	struct server srv;
	bool timed_out;
} fx;

static void
on_done(void *arg, enum vd_health_result r, int http_status)
{
	struct slot *s = arg;

	s->calls++;
	s->r = r;
	s->code = http_status;
	if (s->victim) {
		vd_health_probe_cancel(s->victim->p);
		s->victim->p = NULL;
	}
	if (s->restarts > 0) {
		s->restarts--;
		s->calls = 0;
		s->p = vd_health_probe_start(fx.ev, s->spec, "127.0.0.1", s->port, on_done, s);
		assert_non_null(s->p);
		assert_int_equal(s->calls, 0);
		return;
	}
	s->p = NULL;
	if (++s->t->n == s->t->want)
		vd_ev_stop(fx.ev);
}

static int64_t
on_limit(struct vd_ev *ev, void *arg)
{
	(void)arg;
	fx.timed_out = true;
	vd_ev_stop(ev);
	return -1;
}

static int64_t
on_stop(struct vd_ev *ev, void *arg)
{
	(void)arg;
	vd_ev_stop(ev);
	return -1;
}

/* Run the loop until T has its results (or LIMIT_MS pass: a failure). */
static void
run_until(struct tally *t)
{
	int id = vd_ev_timer(fx.ev, LIMIT_MS, on_limit, NULL);

	assert_true(id > 0);
	fx.timed_out = false;
	if (t->n < t->want)
		assert_int_equal(vd_ev_run(fx.ev), 0);
	vd_ev_timer_cancel(fx.ev, id);
	assert_false(fx.timed_out);
	assert_int_equal(t->n, t->want);
}

/* Run the loop for MS more, whatever comes. */
static void
run_for(int64_t ms)
{
	int id = vd_ev_timer(fx.ev, ms, on_stop, NULL);

	assert_true(id > 0);
	assert_int_equal(vd_ev_run(fx.ev), 0);
	vd_ev_timer_cancel(fx.ev, id);
}

static void
start(struct slot *s, struct tally *t, const struct vd_health_spec *spec, const char *host,
      int port)
{
	s->t = t;
	s->spec = spec;
	s->port = port;
	s->p = vd_health_probe_start(fx.ev, spec, host, port, on_done, s);
	assert_non_null(s->p);
	assert_int_equal(s->calls, 0); /* never from inside the call */
}

static int last_code; /* the HTTP status of check()'s answer */

/* One probe of 127.0.0.1:PORT, run to its end; returns its result. */
static enum vd_health_result
check(enum vd_health_kind kind, const char *path, int64_t timeout_ms, int port)
{
	struct vd_health_spec spec = { kind, path, timeout_ms };
	struct tally t = { .want = 1 };
	struct slot s = { 0 };

	start(&s, &t, &spec, "127.0.0.1", port);
	run_until(&t);
	assert_int_equal(s.calls, 1);
	last_code = s.code;
	return s.r;
}

static int
setup(void **state)
{
	(void)state;
	memset(&fx, 0, sizeof(fx));
	fx.ev = vd_ev_new(NULL);
	return fx.ev ? 0 : -1;
}

static int
teardown(void **state)
{
	(void)state;
	server_stop(&fx.srv);
	/* runs the frees deferred by the last round */
	vd_ev_free(fx.ev);
	fx.ev = NULL;
	return 0;
}

/* --------------------------------------------------------------- tests */

static void
test_tcp_ok(void **state)
{
	(void)state;
	server_start(&fx.srv, S_SILENT);
	assert_int_equal(check(VD_HEALTH_TCP, NULL, io_ms(), fx.srv.port), VD_HEALTH_OK);
}

static void
test_http_ok(void **state)
{
	char want[256];

	(void)state;
	server_start(&fx.srv, S_OK);
	assert_int_equal(check(VD_HEALTH_HTTP, "/healthz", io_ms(), fx.srv.port), VD_HEALTH_OK);
	server_stop(&fx.srv);
	snprintf(want, sizeof(want), "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
		 "User-Agent: vdctl-health\r\nConnection: close\r\n\r\n", fx.srv.port);
	assert_string_equal(fx.srv.first, want);
}

static void
test_http_bad_status(void **state)
{
	(void)state;
	char buf[32];

	server_start(&fx.srv, S_500);
	assert_int_equal(check(VD_HEALTH_HTTP, "/", io_ms(), fx.srv.port),
			 VD_HEALTH_HTTP_BAD_STATUS);
	/* the status is told, and said in a few characters */
	assert_int_equal(last_code, 500);
	assert_string_equal(vd_health_describe(VD_HEALTH_HTTP_BAD_STATUS, last_code, buf,
					       sizeof(buf)), "HTTP 500");
	assert_string_equal(vd_health_describe(VD_HEALTH_TIMEOUT, 0, buf, sizeof(buf)),
			    "timed out");
}

static void
test_timeout(void **state)
{
	(void)state;
	server_start(&fx.srv, S_SILENT);
	assert_int_equal(check(VD_HEALTH_HTTP, "/", 200, fx.srv.port), VD_HEALTH_TIMEOUT);
}

/* A port bound but not listening answers with a reset: refused. */
static void
test_connect_fail(void **state)
{
	struct vd_health_spec http = { VD_HEALTH_HTTP, NULL, 2000 };
	struct vd_health_spec tcp = { VD_HEALTH_TCP, NULL, 2000 };
	struct tally t = { .want = 2 };
	struct slot a = { 0 }, b = { 0 };
	int port, fd = bound_socket(false, &port);

	(void)state;
	start(&a, &t, &http, "127.0.0.1", port);
	start(&b, &t, &tcp, "127.0.0.1", port);
	run_until(&t);
	close(fd);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.r, VD_HEALTH_CONNECT_FAIL);
	assert_int_equal(b.calls, 1);
	assert_int_equal(b.r, VD_HEALTH_CONNECT_FAIL);
}

static void
test_closed(void **state)
{
	(void)state;
	server_start(&fx.srv, S_CLOSE);
	assert_int_equal(check(VD_HEALTH_HTTP, "/", io_ms(), fx.srv.port), VD_HEALTH_CLOSED);
}

static void
test_bad_reply(void **state)
{
	(void)state;
	server_start(&fx.srv, S_GARBAGE);
	assert_int_equal(check(VD_HEALTH_HTTP, "/", io_ms(), fx.srv.port),
			 VD_HEALTH_HTTP_BAD_REPLY);
}

/* No address is a result like the others: from the loop, never at once. */
static void
test_no_address(void **state)
{
	struct vd_health_spec spec = { VD_HEALTH_HTTP, NULL, 0 };
	struct tally t = { .want = 4 };
	struct slot s[4] = { 0 };

	(void)state;
	start(&s[0], &t, &spec, "127.0.0.1", 0);
	start(&s[1], &t, &spec, "127.0.0.1", -1);
	start(&s[2], &t, &spec, "", 80);
	start(&s[3], &t, &spec, "localhost", 80); /* not an IP literal */
	assert_int_equal(t.n, 0);
	run_until(&t);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(s[i].calls, 1);
		assert_int_equal(s[i].r, VD_HEALTH_NO_ADDRESS);
	}
}

/* Cancelled probes never call done: before the loop runs, in flight from
 * another probe's done(), and one whose result was already known. */
static void
test_cancel(void **state)
{
	struct vd_health_spec slow = { VD_HEALTH_HTTP, "/", 10000 };
	struct vd_health_spec quick = { VD_HEALTH_HTTP, "/", 100 };
	struct vd_health_spec fast = { VD_HEALTH_HTTP, "/", 300 };
	struct tally t = { .want = 1 }, none = { .want = 1 };
	struct slot inflight = { 0 }, early = { 0 }, noaddr = { 0 }, killer = { 0 };

	(void)state;
	server_start(&fx.srv, S_SILENT);
	start(&inflight, &none, &slow, "127.0.0.1", fx.srv.port);
	start(&early, &none, &quick, "127.0.0.1", fx.srv.port);
	start(&noaddr, &none, &quick, "127.0.0.1", 0);
	vd_health_probe_cancel(early.p);
	vd_health_probe_cancel(noaddr.p);
	killer.victim = &inflight;
	start(&killer, &t, &fast, "127.0.0.1", fx.srv.port);
	run_until(&t);
	assert_int_equal(killer.calls, 1);
	assert_int_equal(killer.r, VD_HEALTH_TIMEOUT);
	/* long enough for the cancelled ones to have fired, had they been live */
	run_for(300);
	assert_int_equal(inflight.calls, 0);
	assert_int_equal(early.calls, 0);
	assert_int_equal(noaddr.calls, 0);
	assert_int_equal(none.n, 0);
}

/* done() may start the next check. */
static void
test_restart_from_done(void **state)
{
	struct vd_health_spec spec = { VD_HEALTH_HTTP, "/", 0 };
	struct tally t = { .want = 1 };
	struct slot s = { .restarts = 4 };

	(void)state;
	server_start(&fx.srv, S_OK);
	spec.timeout_ms = io_ms();
	start(&s, &t, &spec, "127.0.0.1", fx.srv.port);
	run_until(&t);
	assert_int_equal(s.calls, 1);
	assert_int_equal(s.r, VD_HEALTH_OK);
	server_stop(&fx.srv);
	assert_int_equal(fx.srv.served, 5);
}

static void
test_many(void **state)
{
	struct vd_health_spec spec = { VD_HEALTH_HTTP, NULL, 0 };
	struct tally t = { .want = NPROBES };
	struct slot *s = calloc(NPROBES, sizeof(*s));
	char want[256];

	(void)state;
	assert_non_null(s);
	server_start(&fx.srv, S_OK);
	spec.timeout_ms = io_ms();
	for (int i = 0; i < NPROBES; i++)
		start(&s[i], &t, &spec, "127.0.0.1", fx.srv.port);
	run_until(&t);
	for (int i = 0; i < NPROBES; i++) {
		assert_int_equal(s[i].calls, 1);
		assert_int_equal(s[i].r, VD_HEALTH_OK);
	}
	free(s);
	server_stop(&fx.srv);
	assert_int_equal(fx.srv.served, NPROBES);
	snprintf(want, sizeof(want), "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n", fx.srv.port);
	assert_memory_equal(fx.srv.first, want, strlen(want));
}

/*
 * Many targets waited on at once: more than the probes let in flight (the
 * rest queue), some of them failing and checked again until the deadline,
 * some with no address. Each ends with its own result.
 */
static void
test_wait_many(void **state)
{
	struct vd_health_target *t = calloc(NPROBES, sizeof(*t));
	struct vd_service svc = { 0 };
	struct server bad;
	int ok = 0, sick = 0, none = 0;

	(void)state;
	assert_non_null(t);
	memset(&bad, 0, sizeof(bad));
	svc.health.kind = VD_HEALTH_HTTP;
	svc.health.http_path = "/ping";
	server_start(&fx.srv, S_OK);
	server_start(&bad, S_500);
	for (int i = 0; i < NPROBES; i++) {
		int port = i % 10 == 0 ? 0 : i % 3 == 0 ? bad.port : fx.srv.port;

		t[i] = (struct vd_health_target){ &svc, "127.0.0.1", port, VD_HEALTH_TIMEOUT, 0,
						  false };
		ok += port == fx.srv.port;
		sick += port == bad.port;
		none += port == 0;
	}
	assert_int_equal(vd_health_wait(t, NPROBES, vd_clock_ms() + 500, 20, (int)io_ms(), NULL,
					NULL),
			 ok);
	server_stop(&fx.srv);
	server_stop(&bad);
	for (int i = 0; i < NPROBES; i++) {
		if (t[i].port == fx.srv.port) {
			assert_true(t[i].healthy);
			assert_int_equal(t[i].result, VD_HEALTH_OK);
		} else if (t[i].port == bad.port) {
			assert_false(t[i].healthy);
			assert_int_equal(t[i].result, VD_HEALTH_HTTP_BAD_STATUS);
			assert_int_equal(t[i].http_status, 500);
		} else {
			assert_false(t[i].healthy);
			assert_int_equal(t[i].result, VD_HEALTH_NO_ADDRESS);
		}
	}
	/* every passing target once; every failing one at least once */
	assert_int_equal(fx.srv.served, ok);
	assert_true(bad.served >= sick);
	assert_true(none > 0 && sick > 0);
	free(t);
}

/* The blocking check shares the parsing: the same answers, the same codes. */
static void
test_blocking(void **state)
{
	static const struct {
		enum smode mode;
		enum vd_health_result want;
	} cases[] = {
		{ S_OK, VD_HEALTH_OK },
		{ S_500, VD_HEALTH_HTTP_BAD_STATUS },
		{ S_GARBAGE, VD_HEALTH_HTTP_BAD_REPLY },
		{ S_CLOSE, VD_HEALTH_CLOSED },
	};
	struct vd_service svc = { 0 };

	(void)state;
	svc.health.kind = VD_HEALTH_HTTP;
	svc.health.http_path = "/healthz";
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		server_start(&fx.srv, cases[i].mode);
		assert_int_equal(vd_health_check(&svc, "127.0.0.1", fx.srv.port, (int)io_ms()),
				 cases[i].want);
		server_stop(&fx.srv);
	}
	assert_int_equal(vd_health_check(&svc, "127.0.0.1", 0, 100), VD_HEALTH_NO_ADDRESS);
}

#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_tcp_ok),
		T(test_http_ok),
		T(test_http_bad_status),
		T(test_timeout),
		T(test_connect_fail),
		T(test_closed),
		T(test_bad_reply),
		T(test_no_address),
		T(test_cancel),
		T(test_restart_from_done),
		T(test_many),
		T(test_wait_many),
		T(test_blocking),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
