/*
 * Tests of the balancer (orchestrator/lb*.c) in process, against real example
 * servers ($VD_SVC_BIN, default build/svc) as its replicas.
 *
 * The balancer is single-threaded: each test makes its event loop and its
 * balancer in the main thread and runs the loop there, while client threads
 * talk HTTP/1.1 to it over plain blocking sockets with the raw client of
 * tests/lib/httptest.c. Run-time changes (adding, draining, killing
 * replicas), the loop's stop and samples of vd_lb_stats() are made from
 * timers on the loop; the client threads never touch the balancer and tell
 * the loop they are done through an eventfd. Client threads only record what they saw: the main
 * thread asserts, after joining them.
 *
 * Every loop is bounded in count and in time (sockets time out after
 * $VD_TEST_IO_MS, 20 s by default), and no assertion puts an upper bound on
 * a duration: the machines that run this are small and noisy.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "httptest.h"
#include "vdtest.h"
#include "vd/ev.h"
#include "vd/lb.h"

#define MAX_BACKENDS 4
#define MAX_THREADS 8
#define LIMIT_MS 60000 /* a run of the loop that takes longer fails */

static const char pattern[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
#define PATTERN_LEN 62

/* ------------------------------------------------------------------ time */

static int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* -------------------------------------------------------------- helpers */

/* The number after "key": in a JSON body, or -1. */
static long long
json_num(const char *body, const char *key)
{
	char pat[64];
	const char *p;

	if (!body)
		return -1;
	snprintf(pat, sizeof(pat), "\"%s\":", key);
	if (!(p = strstr(body, pat)))
		return -1;
	return strtoll(p + strlen(pat), NULL, 10);
}

static bool
is_pattern(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != pattern[i % PATTERN_LEN])
			return false;
	return true;
}

/* n bytes that are not a pattern (xorshift). */
static char *
noise(size_t n)
{
	char *p = malloc(n);
	uint32_t x = 2463534242u;

	for (size_t i = 0; p && i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (char)(x >> 24);
	}
	return p;
}

/* ------------------------------------------------------------ backends */

struct backend {
	pid_t pid;
	int port;
	char name[16];
};

/* Start build/svc on port (0: a free one) and wait until it answers. */
static int
backend_start(struct backend *b, const char *name, const char *model, int workers, int port)
{
	char p[16], w[16];
	char *argv[] = { (char *)(uintptr_t)vt_env("VD_SVC_BIN", "build/svc"), "--listen",
			 "127.0.0.1", "--port", p, "--model", (char *)(uintptr_t)model,
			 "--workers", w, NULL };
	struct vt_resp r = { 0 };

	if (name != b->name)
		snprintf(b->name, sizeof(b->name), "%s", name);
	snprintf(w, sizeof(w), "%d", workers);
	for (int attempt = 0; attempt < 3; attempt++) {
		int64_t until = now_us() + 5000000;

		b->port = port ? port : vt_free_port();
		snprintf(p, sizeof(p), "%d", b->port);
		if ((b->pid = fork()) < 0)
			return -1;
		if (b->pid == 0) {
			int null = open("/dev/null", O_RDWR);

			dup2(null, 0);
			dup2(null, 1);
			dup2(null, 2);
			execv(argv[0], argv);
			_exit(127);
		}
		while (now_us() < until) {
			if (vt_get_once(b->port, "/healthz", &r) == 200) {
				vt_resp_clear(&r);
				return 0;
			}
			if (waitpid(b->pid, NULL, WNOHANG) == b->pid) {
				b->pid = 0; /* the port was taken: try another */
				break;
			}
			sleep_ms(20);
		}
		vt_resp_clear(&r);
		if (b->pid > 0) {
			kill(b->pid, SIGKILL);
			waitpid(b->pid, NULL, 0);
			b->pid = 0;
		}
		if (port)
			sleep_ms(200);
	}
	return -1;
}

static void
backend_kill(struct backend *b)
{
	if (b->pid > 0) {
		kill(b->pid, SIGKILL);
		waitpid(b->pid, NULL, 0);
	}
	b->pid = 0;
}

/* The backend's own count of requests (its /info asked directly, which
 * counts itself). */
static long long
backend_requests(const struct backend *b)
{
	struct vt_resp r = { 0 };
	long long n = -1;

	if (vt_get_once(b->port, "/info", &r) == 200)
		n = json_num(r.body, "requests");
	vt_resp_clear(&r);
	return n;
}

/* The connections to 127.0.0.1:port in the kernel's table of TCP sockets:
 * how many are open, and the far-end ports of those closed or closing
 * (TIME_WAIT lasts a minute, so connections closed lately count too). A port
 * can come back (tcp_tw_reuse on loopback), so a new connection counts
 * either as open or as a closed port that was not in the table before. */
struct peers {
	int open;
	uint8_t closed[8192];
};

static void
tcp_peers(int port, struct peers *p)
{
	FILE *f = fopen("/proc/net/tcp", "r");
	char line[512];

	memset(p, 0, sizeof(*p));
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		unsigned la, lp, ra, rp, st, peer;

		if (sscanf(line, " %*d: %8X:%X %8X:%X %X", &la, &lp, &ra, &rp, &st) != 5 ||
		    st == 0x0A || ((int)lp != port && (int)rp != port))
			continue;
		peer = (int)lp == port ? rp : lp;
		if (st == 0x01) /* ESTABLISHED: count the connecting side's entry */
			p->open += (int)rp == port;
		else
			p->closed[peer / 8] |= (uint8_t)(1 << (peer % 8));
	}
	fclose(f);
}

/* Connections made to the port between two looks at the table. */
static int
tcp_made(const struct peers *before, const struct peers *after)
{
	int n = after->open;

	for (int i = 0; i < 8192; i++)
		n += __builtin_popcount(after->closed[i] & ~before->closed[i]);
	return n;
}

/* ------------------------------------------------------------- fixture */

/* What a test holds: torn down whatever happened. */
static struct fixture {
	struct vd_ev *ev;
	struct vd_lb *lb;
	struct backend be[MAX_BACKENDS];
	int nbe;
	int efd;                /* client threads -> loop: all done */
	struct vd_ev_handle done;
	atomic_int running;     /* client threads not done */
	int64_t grace_ms;       /* run the loop this long after they are */
	bool timed_out;
	int64_t t0_us;          /* when the loop started */
	/* samples of vd_lb_stats, every 10 ms */
	int max_queued;
	int max_inflight;
	uint64_t max_connections;
} fx;

static int
setup(void **state)
{
	(void)state;
	memset(&fx, 0, sizeof(fx));
	fx.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	return fx.efd < 0 ? -1 : 0;
}

static int
teardown(void **state)
{
	(void)state;
	vd_lb_free(fx.lb);
	vd_ev_free(fx.ev);
	for (int i = 0; i < fx.nbe; i++)
		backend_kill(&fx.be[i]);
	close(fx.efd);
	memset(&fx, 0, sizeof(fx));
	return 0;
}

/* Start backend i of the fixture. */
static struct backend *
start(int i, const char *name, const char *model, int workers)
{
	assert_int_equal(backend_start(&fx.be[i], name, model, workers, 0), 0);
	if (i >= fx.nbe)
		fx.nbe = i + 1;
	return &fx.be[i];
}

static void
stop_loop(void)
{
	vd_ev_stop(fx.ev);
}

static int64_t
stop_timer(struct vd_ev *ev, void *arg)
{
	(void)ev;
	(void)arg;
	stop_loop();
	return -1;
}

static int64_t
limit_timer(struct vd_ev *ev, void *arg)
{
	(void)ev;
	(void)arg;
	fx.timed_out = true;
	stop_loop();
	return -1;
}

static void
on_done(struct vd_ev *ev, struct vd_ev_handle *h, uint32_t events)
{
	uint64_t v;

	(void)events;
	if (read(h->fd, &v, sizeof(v)) != sizeof(v))
		return;
	vd_ev_del(ev, h);
	if (fx.grace_ms > 0)
		vd_ev_timer(ev, fx.grace_ms, stop_timer, NULL);
	else
		stop_loop();
}

static int64_t
sample_timer(struct vd_ev *ev, void *arg)
{
	struct vd_lb_stats s;

	(void)ev;
	(void)arg;
	if (fx.lb && vd_lb_stats(fx.lb, &s, NULL) == 0) {
		if (s.queued > fx.max_queued)
			fx.max_queued = s.queued;
		if (s.inflight > fx.max_inflight)
			fx.max_inflight = s.inflight;
		if (s.connections > fx.max_connections)
			fx.max_connections = s.connections;
		free(s.replicas);
	}
	return 10;
}

/* The balancer, with cfg (NULL: the defaults) on port 0, and a replica for
 * each backend started so far. */
static void
balancer(const struct vd_lb_config *cfg)
{
	struct vd_error err = VD_ERROR_INIT;
	struct vd_lb_config def;

	if (!cfg) {
		vd_lb_config_default(&def);
		cfg = &def;
	}
	def = *cfg;
	def.listen_host = "127.0.0.1";
	def.listen_port = 0;
	fx.ev = vd_ev_new(&err);
	assert_non_null(fx.ev);
	fx.lb = vd_lb_new(fx.ev, &def, &err);
	if (!fx.lb)
		fail_msg("vd_lb_new: %s", err.msg);
	assert_true(vd_lb_port(fx.lb) > 0);
	for (int i = 0; i < fx.nbe; i++)
		if (vd_lb_add_replica(fx.lb, fx.be[i].name, "127.0.0.1", fx.be[i].port, &err) < 0)
			fail_msg("vd_lb_add_replica: %s", err.msg);
}

static int
lb_port(void)
{
	return vd_lb_port(fx.lb);
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
	uint64_t one = 1;

	w->fn(w->arg);
	if (atomic_fetch_sub(&fx.running, 1) == 1 && write(fx.efd, &one, sizeof(one)) < 0)
		abort();
	return NULL;
}

/*
 * Run the loop in this thread while n client threads run fn(args + i *
 * size); it stops grace_ms after the last is done (or at LIMIT_MS, which
 * fails the test). The threads are joined before it returns.
 */
static void
run_clients(int n, void *(*fn)(void *), void *args, size_t size, int64_t grace_ms)
{
	struct worker w[MAX_THREADS];
	int limit;

	assert_true(n >= 1 && n <= MAX_THREADS);
	fx.grace_ms = grace_ms;
	fx.done.fd = fx.efd;
	fx.done.fn = on_done;
	assert_int_equal(vd_ev_add(fx.ev, &fx.done, EPOLLIN), 0);
	limit = vd_ev_timer(fx.ev, LIMIT_MS, limit_timer, NULL);
	vd_ev_timer(fx.ev, 10, sample_timer, NULL);
	atomic_store(&fx.running, n);
	fx.t0_us = now_us();
	for (int i = 0; i < n; i++) {
		w[i] = (struct worker){ 0, fn, (char *)args + (size_t)i * size };
		assert_int_equal(pthread_create(&w[i].t, NULL, worker_main, &w[i]), 0);
	}
	vd_ev_run(fx.ev);
	vd_ev_timer_cancel(fx.ev, limit);
	for (int i = 0; i < n; i++)
		pthread_join(w[i].t, NULL);
	assert_false(fx.timed_out);
}

static struct vd_lb_stats
stats(void)
{
	struct vd_lb_stats s;

	assert_int_equal(vd_lb_stats(fx.lb, &s, NULL), 0);
	return s;
}

static const struct vd_lb_replica_stats *
replica(const struct vd_lb_stats *s, const char *name)
{
	for (size_t i = 0; i < s->nreplicas; i++)
		if (strcmp(s->replicas[i].name, name) == 0)
			return &s->replicas[i];
	return NULL;
}

/* Turns: client threads send one after the other, in index order, a pause
 * between sends, so the balancer reads the requests in that order. */
static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int next;
} turns = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 };

static void
turn_wait(int i)
{
	int64_t until = now_us() + vt_io_ms() * 1000;

	pthread_mutex_lock(&turns.mu);
	while (turns.next != i && now_us() < until) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 10 * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&turns.cv, &turns.mu, &ts);
	}
	pthread_mutex_unlock(&turns.mu);
}

static void
turn_pass(void)
{
	pthread_mutex_lock(&turns.mu);
	turns.next++;
	pthread_cond_broadcast(&turns.cv);
	pthread_mutex_unlock(&turns.mu);
}

/* ---------------------------------------------------------- keep-alive */

struct seq_arg {
	int port;
	int n;            /* requests to make */
	const char *path;
	int ok;           /* answered 200 */
	int other;        /* answered another status */
	int failed;       /* no answer */
	int closes;       /* answers with Connection: close */
	int connects;     /* connections opened */
};

/* n GETs of path, one after the other, reconnecting only when the
 * balancer closes. */
static void *
seq_client(void *arg)
{
	struct seq_arg *a = arg;
	struct vt_conn *c = malloc(sizeof(*c));
	struct vt_resp r = { 0 };

	c->fd = -1;
	for (int i = 0; i < a->n; i++) {
		int status;

		if (c->fd < 0) {
			if (vt_conn_tcp(c, a->port) < 0) {
				a->failed++;
				continue;
			}
			a->connects++;
		}
		status = vt_request(c, "GET", a->path, NULL, NULL, 0, &r);
		if (status == 200)
			a->ok++;
		else if (status > 0)
			a->other++;
		else
			a->failed++;
		if (status < 0 || r.close) {
			a->closes += r.close;
			vt_conn_close(c);
		}
	}
	vt_resp_clear(&r);
	vt_conn_close(c);
	free(c);
	return NULL;
}

/* 100 requests on one client connection reach the backend over one pooled
 * connection: the kernel's table of TCP sockets (TIME_WAIT included) shows
 * what connections were made to the backend during the run (only the
 * balancer's: the test makes none then). */
static void
test_keepalive_reuse(void **state)
{
	static struct peers before, after;
	struct backend *b;
	/* a little wait each, so that the run lasts for samples of the stats */
	struct seq_arg a = { .n = 100, .path = "/timeout?ms=1" };
	struct vd_lb_stats s;
	long long r0, r1;
	int made;

	(void)state;
	b = start(0, "a", "async", 1);
	balancer(NULL);
	r0 = backend_requests(b);
	tcp_peers(b->port, &before);
	assert_int_equal(before.open, 0);
	a.port = lb_port();
	run_clients(1, seq_client, &a, sizeof(a), 0);
	tcp_peers(b->port, &after);
	r1 = backend_requests(b);

	assert_int_equal(a.ok, 100);
	assert_int_equal(a.connects, 1);
	assert_int_equal(a.closes, 0);
	assert_int_equal(fx.max_connections, 1);
	/* all 100 reached the backend (and the second /info) ... */
	assert_int_equal(r1 - r0, 101);
	/* ... over very few connections */
	made = tcp_made(&before, &after);
	assert_true(made >= 1);
	assert_true(made <= 2);
	s = stats();
	assert_int_equal(s.requests, 100);
	assert_int_equal(s.responses[2], 100);
	free(s.replicas);
}

/* ------------------------------------------------ headers and closing */

struct hdr_arg {
	int port;
	int st_echo, st_10, st_close, st_after;
	bool eof_10, eof_close, ka_after;
	char *echo;   /* what the backend saw */
	size_t echolen;
};

static void *
hdr_client(void *arg)
{
	struct hdr_arg *a = arg;
	struct vt_conn *c = malloc(sizeof(*c));
	struct vt_resp r = { 0 };

	/* hop-by-hop headers stay here; X-Forwarded-For is added */
	if (vt_conn_tcp(c, a->port) == 0) {
		a->st_echo = vt_request(c, "POST", "/echo?head=1",
					"Connection: keep-alive\r\nKeep-Alive: timeout=5\r\n"
					"Proxy-Connection: keep-alive\r\n"
					"X-Forwarded-For: 10.9.8.7\r\nX-Kept: yes\r\n",
					"hi", 2, &r);
		a->echo = r.body;
		a->echolen = r.len;
		r.body = NULL;
		/* the connection is kept for the next */
		a->st_after = vt_request(c, "GET", "/ping", NULL, NULL, 0, &r);
		a->ka_after = a->st_after == 200 && !r.close && strcmp(r.body, "pong\n") == 0;
	}
	vt_conn_close(c);
	/* HTTP/1.0: answered, then closed */
	if (vt_conn_tcp(c, a->port) == 0 && vt_conn_sendstr(c, "GET /ping HTTP/1.0\r\n\r\n") == 0) {
		a->st_10 = vt_read_response(c, &r, false);
		a->eof_10 = a->st_10 == 200 && strcmp(r.body, "pong\n") == 0 && vt_conn_at_eof(c);
	}
	vt_conn_close(c);
	/* Connection: close is honoured */
	if (vt_conn_tcp(c, a->port) == 0) {
		a->st_close = vt_request(c, "GET", "/ping", "Connection: close\r\n", NULL, 0, &r);
		a->eof_close = vt_conn_at_eof(c);
	}
	vt_conn_close(c);
	vt_resp_clear(&r);
	free(c);
	return NULL;
}

static void
test_headers_and_close(void **state)
{
	struct hdr_arg a = { 0 };
	char *seen;

	(void)state;
	start(0, "a", "sync", 2);
	balancer(NULL);
	a.port = lb_port();
	run_clients(1, hdr_client, &a, sizeof(a), 0);

	assert_int_equal(a.st_echo, 200);
	assert_non_null(a.echo);
	seen = a.echo;
	/* the head the backend got, then the body */
	assert_true(strncmp(seen, "POST /echo?head=1 HTTP/1.1\r\n", 28) == 0);
	assert_true(a.echolen > 6 && memcmp(seen + a.echolen - 6, "\r\n\r\nhi", 6) == 0);
	assert_non_null(strstr(seen, "\r\nX-Kept: yes\r\n"));
	assert_non_null(strstr(seen, "\r\nX-Forwarded-For: 10.9.8.7\r\n"));
	assert_non_null(strstr(seen, "\r\nX-Forwarded-For: 127.0.0.1\r\n"));
	assert_true(strstr(seen, "10.9.8.7") < strstr(seen, "127.0.0.1"));
	assert_null(strcasestr(seen, "\nConnection:"));
	assert_null(strcasestr(seen, "\nKeep-Alive:"));
	assert_null(strcasestr(seen, "\nProxy-Connection:"));
	assert_int_equal(a.st_after, 200);
	assert_true(a.ka_after);
	assert_int_equal(a.st_10, 200);
	assert_true(a.eof_10);
	assert_int_equal(a.st_close, 200);
	assert_true(a.eof_close);
	free(a.echo);
}

/* --------------------------------------------------------------- bodies */

struct body_arg {
	int port;
	int st_cl, st_chunked, st_bytes, st_bytes_chunked, st_head, st_after_head;
	bool echo_cl_ok, echo_chunked_ok;
	size_t bytes_len, bytes_chunked_len, maxchunk;
	bool bytes_ok, bytes_chunked_ok, bytes_chunked_framed;
	size_t head_body;   /* body bytes that came after the HEAD's head */
	bool head_eof;      /* the balancer closed after HEAD */
};

static void *
body_client(void *arg)
{
	static const char chunked_head[] = "POST /echo HTTP/1.1\r\nHost: t\r\n"
					   "Transfer-Encoding: chunked\r\n\r\n";
	struct body_arg *a = arg;
	size_t big = 5 << 20, mid = 3 << 20;
	char *data = noise(big), line[64];
	struct vt_conn *c = malloc(sizeof(*c));
	struct vt_resp r = { 0 };

	if (vt_conn_tcp(c, a->port) < 0)
		goto out;
	a->st_cl = vt_request(c, "POST", "/echo", NULL, data, big, &r);
	a->echo_cl_ok = r.len == big && memcmp(r.body, data, big) == 0;

	/* 3 MiB in chunks of uneven sizes, some with extensions, and a trailer */
	if (vt_conn_sendstr(c, chunked_head) < 0)
		goto out;
	for (size_t off = 0, n = 1, i = 0; off < mid; off += n, n = n * 5 + 3, i++) {
		if (n > 200000)
			n = 7;
		if (n > mid - off)
			n = mid - off;
		snprintf(line, sizeof(line), i % 3 ? "%zx\r\n" : "%zX;ext=%zu\r\n", n, i);
		if (vt_conn_sendstr(c, line) < 0 || vt_conn_send(c, data + off, n) < 0 ||
		    vt_conn_sendstr(c, "\r\n") < 0)
			goto out;
	}
	if (vt_conn_sendstr(c, "0\r\nX-Trailer: 1\r\n\r\n") < 0)
		goto out;
	a->st_chunked = vt_read_response(c, &r, false);
	a->echo_chunked_ok = r.len == mid && memcmp(r.body, data, mid) == 0;

	a->st_bytes = vt_request(c, "GET", "/bytes?n=20000000", NULL, NULL, 0, &r);
	a->bytes_len = r.len;
	a->bytes_ok = !r.chunked && r.len == 20000000 && is_pattern(r.body, r.len);
	a->st_bytes_chunked = vt_request(c, "GET", "/bytes?n=20000000&chunked=1", NULL, NULL, 0,
					 &r);
	a->bytes_chunked_len = r.len;
	a->maxchunk = r.maxchunk;
	a->bytes_chunked_framed = r.chunked;
	a->bytes_chunked_ok = r.len == 20000000 && is_pattern(r.body, r.len);

	/* HEAD: the backend answers 405 with a body; the client must get the
	 * head alone. The next request on the connection shows what followed. */
	a->st_head = vt_request(c, "HEAD", "/ping", NULL, NULL, 0, &r);
	if (a->st_head > 0 && !r.close) {
		a->st_after_head = vt_request(c, "GET", "/ping", NULL, NULL, 0, &r);
		if (a->st_after_head < 0)
			a->head_eof = c->len == 0;
	} else if (a->st_head > 0) {
		while (vt_conn_fill(c) == 0)
			;
		a->head_body = c->len;
		a->head_eof = true;
	}
out:
	vt_resp_clear(&r);
	vt_conn_close(c);
	free(c);
	free(data);
	return NULL;
}

static void
test_bodies(void **state)
{
	struct body_arg a = { 0 };

	(void)state;
	start(0, "a", "async", 1);
	balancer(NULL);
	a.port = lb_port();
	run_clients(1, body_client, &a, sizeof(a), 0);

	assert_int_equal(a.st_cl, 200);
	assert_true(a.echo_cl_ok);
	assert_int_equal(a.st_chunked, 200);
	assert_true(a.echo_chunked_ok);
	assert_int_equal(a.st_bytes, 200);
	assert_int_equal(a.bytes_len, 20000000);
	assert_true(a.bytes_ok);
	assert_int_equal(a.st_bytes_chunked, 200);
	assert_true(a.bytes_chunked_framed);
	assert_int_equal(a.bytes_chunked_len, 20000000);
	assert_true(a.maxchunk > 0 && a.maxchunk <= 65536);
	assert_true(a.bytes_chunked_ok);
	assert_int_equal(a.st_head, 405);
	assert_int_equal(a.head_body, 0);
	if (!a.head_eof)
		assert_int_equal(a.st_after_head, 200);
}

/* A replica slow to take the connection while a large body streams in: the
 * balancer holds what fits of the body, and relays all of it once connected.
 * The replica's port first has a listener with a full queue (so the SYN is
 * dropped and sent again a second later); the server replaces it. */

static struct {
	int lfd, dummy;
	int port;
} slow;

static int64_t
slow_timer(struct vd_ev *ev, void *arg)
{
	(void)ev;
	(void)arg;
	close(slow.lfd);
	close(slow.dummy);
	slow.lfd = slow.dummy = -1;
	/* blocks the loop while the server starts: fine here */
	if (backend_start(&fx.be[0], "a", "async", 1, slow.port) < 0)
		fx.be[0].pid = 0;
	return -1;
}

struct echo_arg {
	int port;
	size_t n;
	int status;
	bool same;
	int64_t us;
};

static void *
echo_client(void *arg)
{
	struct echo_arg *a = arg;
	struct vt_conn *c = malloc(sizeof(*c));
	struct vt_resp r = { 0 };
	char *data = noise(a->n);
	int64_t t = now_us();

	if (vt_conn_tcp(c, a->port) == 0) {
		a->status = vt_request(c, "POST", "/echo", NULL, data, a->n, &r);
		a->same = r.len == a->n && memcmp(r.body, data, a->n) == 0;
	}
	a->us = now_us() - t;
	vt_resp_clear(&r);
	vt_conn_close(c);
	free(c);
	free(data);
	return NULL;
}

static void
test_slow_connect_body(void **state)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct echo_arg a = { .n = 1 << 20 };
	int one = 1;

	(void)state;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	slow.port = vt_free_port();
	sin.sin_port = htons((uint16_t)slow.port);
	slow.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	slow.dummy = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(slow.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	assert_int_equal(bind(slow.lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(slow.lfd, 0), 0);
	/* one connection waiting to be accepted fills the queue */
	assert_int_equal(connect(slow.dummy, (struct sockaddr *)&sin, sizeof(sin)), 0);
	fx.be[0] = (struct backend){ 0, slow.port, "a" };
	fx.nbe = 1;
	balancer(NULL);
	vd_ev_timer(fx.ev, 300, slow_timer, NULL);
	a.port = lb_port();
	run_clients(1, echo_client, &a, sizeof(a), 0);

	assert_true(fx.be[0].pid > 0);
	assert_int_equal(a.status, 200);
	assert_true(a.same);
	assert_true(a.us >= 500000); /* the connect did wait for the SYN again */
}

/* ----------------------------------------------------------- the queue */

struct q_arg {
	int port;
	int i;            /* send turn */
	const char *path;
	int leave_ms;     /* > 0: close this long after sending, reading nothing */
	int status;       /* -2: left */
	long long started; /* at the backend */
	char body[64];
	bool retry_after; /* the answer had a Retry-After header */
};

static void *
q_client(void *arg)
{
	struct q_arg *a = arg;
	struct vt_conn *c = malloc(sizeof(*c));
	struct vt_resp r = { 0 };
	char req[256];
	bool open = vt_conn_tcp(c, a->port) == 0;

	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", a->path);
	turn_wait(a->i);
	a->status = open && vt_conn_sendstr(c, req) == 0 ? 0 : -1;
	sleep_ms(30);
	turn_pass();
	if (a->status == 0 && a->leave_ms > 0) {
		sleep_ms(a->leave_ms);
		a->status = -2;
	}
	if (a->status == 0)
		a->status = vt_read_response(c, &r, false);
	a->started = json_num(r.body, "started_us");
	a->retry_after = strstr(r.head, "\r\nRetry-After: ") != NULL;
	if (r.body)
		snprintf(a->body, sizeof(a->body), "%s", r.body);
	vt_resp_clear(&r);
	vt_conn_close(c);
	free(c);
	return NULL;
}

static void
q_run_grace(struct q_arg *a, int n, int64_t grace_ms)
{
	turns.next = 0;
	for (int i = 0; i < n; i++) {
		a[i].port = lb_port();
		a[i].i = i;
	}
	run_clients(n, q_client, a, sizeof(*a), grace_ms);
}

static void
q_run(struct q_arg *a, int n)
{
	q_run_grace(a, n, 0);
}

/* One replica taking one request at a time: the rest wait in the queue and
 * are served in the order they arrived. */
static void
test_queue_fifo(void **state)
{
	struct vd_lb_config cfg;
	struct q_arg a[6] = { 0 };
	struct vd_lb_stats s;

	(void)state;
	start(0, "a", "sync", 1);
	vd_lb_config_default(&cfg);
	cfg.max_inflight = 1;
	balancer(&cfg);
	for (int i = 0; i < 6; i++)
		a[i].path = "/timeout?ms=200";
	q_run(a, 6);

	for (int i = 0; i < 6; i++) {
		assert_int_equal(a[i].status, 200);
		assert_true(a[i].started > 0);
		if (i > 0)
			assert_true(a[i].started >= a[i - 1].started + 200000);
	}
	assert_true(fx.max_queued > 0);
	assert_int_equal(fx.max_inflight, 1);
	s = stats();
	assert_true(s.wait10.count >= 5);
	assert_true(s.wait10.p99 > 0);
	assert_int_equal(s.responses[2], 6);
	free(s.replicas);
}

/* queue_limit waiting: the next is answered 503 by the balancer itself. */
static void
test_queue_full(void **state)
{
	struct vd_lb_config cfg;
	struct q_arg a[5] = { 0 };
	struct vd_lb_stats s;
	int ok = 0, full = 0;

	(void)state;
	start(0, "a", "sync", 1);
	vd_lb_config_default(&cfg);
	cfg.max_inflight = 1;
	cfg.queue_limit = 2;
	balancer(&cfg);
	for (int i = 0; i < 5; i++)
		a[i].path = "/timeout?ms=500";
	q_run(a, 5);

	for (int i = 0; i < 5; i++) {
		if (a[i].status == 200) {
			ok++;
		} else {
			assert_int_equal(a[i].status, 503);
			assert_string_equal(a[i].body, "service unavailable\n");
			full++;
		}
	}
	/* the first three (one on the replica, two waiting) get through */
	for (int i = 0; i < 3; i++)
		assert_int_equal(a[i].status, 200);
	assert_true(full >= 1);
	s = stats();
	assert_int_equal(s.errors[VD_LB_ERR_QUEUE_FULL], (uint64_t)full);
	assert_int_equal(s.responses[5], (uint64_t)full);
	assert_int_equal(s.responses[2], (uint64_t)ok);
	free(s.replicas);
}

/* A request stuck behind a slow one longer than queue_timeout: 504. */
static void
test_queue_timeout(void **state)
{
	struct vd_lb_config cfg;
	struct q_arg a[2] = { { .path = "/timeout?ms=1000" }, { .path = "/timeout?ms=10" } };
	struct vd_lb_stats s;

	(void)state;
	start(0, "a", "sync", 1);
	vd_lb_config_default(&cfg);
	cfg.max_inflight = 1;
	cfg.queue_timeout_ms = 100;
	balancer(&cfg);
	q_run(a, 2);

	assert_int_equal(a[0].status, 200);
	assert_int_equal(a[1].status, 504);
	assert_string_equal(a[1].body, "gateway timeout\n");
	s = stats();
	assert_int_equal(s.errors[VD_LB_ERR_QUEUE_TIMEOUT], 1);
	assert_true(s.wait10.count >= 1);
	assert_true(s.wait10.max >= 100000);
	assert_int_equal(s.responses[5], 1);
	free(s.replicas);
}

/* A client that leaves while its request waits in the queue: the request is
 * dropped, never sent (the backend counts what it receives), and counted as
 * client_gone, not as a response. */
static void
test_client_gone_queued(void **state)
{
	struct vd_lb_config cfg;
	struct q_arg a[3] = { { .path = "/timeout?ms=600" },
			      { .path = "/timeout?ms=10", .leave_ms = 100 },
			      { .path = "/timeout?ms=10" } };
	struct backend *b;
	struct vd_lb_stats s;
	long long n0, n1;

	(void)state;
	b = start(0, "a", "sync", 1);
	vd_lb_config_default(&cfg);
	cfg.max_inflight = 1;
	balancer(&cfg);
	n0 = backend_requests(b);
	q_run(a, 3);
	n1 = backend_requests(b);

	assert_int_equal(a[0].status, 200);
	assert_int_equal(a[1].status, -2);
	assert_int_equal(a[2].status, 200);
	assert_int_equal(n1 - n0, 3); /* a[0], a[2] and the second /info: not a[1] */
	s = stats();
	assert_int_equal(s.errors[VD_LB_ERR_CLIENT_GONE], 1);
	assert_int_equal(s.responses[2], 2);
	assert_int_equal(s.relayed, 2);
	assert_int_equal(s.queued, 0);
	free(s.replicas);
}

static int gone_inflight = -1; /* requests on replicas 700 ms into the run */

static int64_t
gone_sample(struct vd_ev *ev, void *arg)
{
	struct vd_lb_stats s = stats();

	(void)ev;
	(void)arg;
	gone_inflight = s.inflight;
	free(s.replicas);
	return -1;
}

/* A client that leaves while its request is on a replica: by default the
 * replica finishes it (its slot held until then) and the answer is dropped;
 * with abort_on_client_gone its connection is closed at once, the slot
 * freed. Neither counts as a response. */
static void
client_gone_inflight(bool abort)
{
	struct vd_lb_config cfg;
	struct q_arg a[1] = { { .path = "/timeout?ms=1500", .leave_ms = 200 } };
	struct q_arg after[1] = { { .path = "/ping" } };
	struct vd_lb_stats s;

	start(0, "a", "sync", 2);
	vd_lb_config_default(&cfg);
	cfg.max_inflight = 1;
	cfg.abort_on_client_gone = abort;
	balancer(&cfg);
	gone_inflight = -1;
	vd_ev_timer(fx.ev, 700, gone_sample, NULL);
	q_run_grace(a, 1, 1800); /* past the replica's 1.5 s */
	assert_int_equal(a[0].status, -2);
	assert_int_equal(gone_inflight, abort ? 0 : 1);
	s = stats();
	assert_int_equal(s.errors[VD_LB_ERR_CLIENT_GONE], 1);
	assert_int_equal(s.responses[2], 0);
	assert_int_equal(s.relayed, 0);
	assert_int_equal(s.inflight, 0);
	assert_int_equal(s.total10.count, 0); /* no latency for nobody */
	free(s.replicas);
	/* and the balancer goes on */
	q_run(after, 1);
	assert_int_equal(after[0].status, 200);
}

static void
test_client_gone_inflight(void **state)
{
	(void)state;
	client_gone_inflight(false);
}

static void
test_client_gone_abort(void **state)
{
	(void)state;
	client_gone_inflight(true);
}

/* A request that could expect to wait past queue_timeout (those ahead of
 * it, itself included, x the recent service time / the replicas' slots) is
 * answered 503 with Retry-After at once; those that could not are queued
 * and served. 400 ms a request, one at a time, 2.2 s: the 6th to queue
 * would wait 2.4 s. */
static void
test_refused_early(void **state)
{
	struct vd_lb_config cfg;
	struct q_arg warm[1] = { { .path = "/timeout?ms=400" } };
	struct q_arg a[8] = { 0 };
	struct vd_lb_stats s;

	(void)state;
	start(0, "a", "sync", 1);
	vd_lb_config_default(&cfg);
	cfg.max_inflight = 1;
	cfg.queue_timeout_ms = 2200;
	balancer(&cfg);
	q_run(warm, 1); /* a service time to go by */
	assert_int_equal(warm[0].status, 200);
	for (int i = 0; i < 8; i++)
		a[i].path = "/timeout?ms=400";
	q_run(a, 8);

	for (int i = 0; i < 6; i++) /* one on the replica, five queued */
		assert_int_equal(a[i].status, 200);
	for (int i = 6; i < 8; i++) {
		assert_int_equal(a[i].status, 503);
		assert_true(a[i].retry_after);
		assert_string_equal(a[i].body, "service unavailable\n");
	}
	s = stats();
	assert_int_equal(s.errors[VD_LB_ERR_REFUSED_EARLY], 2);
	assert_int_equal(s.errors[VD_LB_ERR_QUEUE_TIMEOUT], 0);
	assert_int_equal(s.responses[2], 7);
	assert_int_equal(s.responses[5], 2);
	free(s.replicas);
}

/* Clients that leave teach the balancer their patience (the median wait
 * after which 10 or more left in the last minute): from then on a request
 * waits at most that less the service time, and one that could expect to
 * wait longer is refused at once. 300 ms a request, one at a time; twelve
 * clients leave after 400 ms; then a request that would wait 300 ms (past
 * 400 - 300) is refused early. */
static void
test_patience(void **state)
{
	struct vd_lb_config cfg;
	struct q_arg warm[1] = { { .path = "/timeout?ms=300" } };
	struct q_arg leave[7] = { 0 }, after[3] = { 0 };
	struct vd_lb_stats s;

	(void)state;
	start(0, "a", "sync", 1);
	vd_lb_config_default(&cfg);
	cfg.max_inflight = 1;
	balancer(&cfg);
	q_run(warm, 1);
	for (int round = 0; round < 2; round++) { /* six leave each time */
		for (int i = 0; i < 7; i++)
			leave[i] = (struct q_arg){ .path = "/timeout?ms=300", .leave_ms = 400 };
		q_run_grace(leave, 7, 500); /* the replica is done with those it took */
	}
	s = stats();
	assert_true(s.errors[VD_LB_ERR_CLIENT_GONE] >= 10);
	assert_true(s.patience_ms >= 400 && s.patience_ms < 5000);
	free(s.replicas);
	for (int i = 0; i < 3; i++)
		after[i].path = "/timeout?ms=300";
	q_run(after, 3);
	assert_int_equal(after[0].status, 200);
	for (int i = 1; i < 3; i++) {
		assert_int_equal(after[i].status, 503);
		assert_true(after[i].retry_after);
	}
	s = stats();
	assert_int_equal(s.errors[VD_LB_ERR_REFUSED_EARLY], 2);
	free(s.replicas);
}

/* ------------------------------------------------------- load in loops */

#define MAX_FAILS 64

struct load_arg {
	int port;
	int64_t until_us;
	const char *path;
	int ok, failed;
	int64_t fail_start_us[MAX_FAILS]; /* when each failed request was sent */
};

/* GET path again and again until until_us (at most 5000 times), on a
 * keep-alive connection; a failure is recorded and a new connection made. */
static void *
load_client(void *arg)
{
	struct load_arg *a = arg;
	struct vt_conn *c = malloc(sizeof(*c));
	struct vt_resp r = { 0 };

	c->fd = -1;
	for (int i = 0; i < 5000 && now_us() < a->until_us; i++) {
		int64_t t = now_us();
		int status = -1;

		if (c->fd >= 0 || vt_conn_tcp(c, a->port) == 0)
			status = vt_request(c, "GET", a->path, NULL, NULL, 0, &r);
		if (status == 200) {
			a->ok++;
		} else {
			if (a->failed < MAX_FAILS)
				a->fail_start_us[a->failed] = t;
			a->failed++;
		}
		if (status != 200 || r.close)
			vt_conn_close(c);
	}
	vt_resp_clear(&r);
	vt_conn_close(c);
	free(c);
	return NULL;
}

static void
load_init(struct load_arg *a, int n, const char *path, int64_t ms)
{
	for (int i = 0; i < n; i++)
		a[i] = (struct load_arg){ .port = lb_port(), .path = path,
					  .until_us = now_us() + ms * 1000 };
}

/* ------------------------------------------------------- a killed backend */

static int64_t dead_us;

static int64_t
kill_timer(struct vd_ev *ev, void *arg)
{
	(void)ev;
	backend_kill(arg);
	dead_us = now_us();
	return -1;
}

/* Two replicas under load, one killed: only requests that were on it can
 * fail (GETs are retried on the other, so few or none do); every request
 * sent after the kill succeeds, and the dead one is ejected. */
static void
test_backend_killed(void **state)
{
	struct load_arg a[4];
	struct vd_lb_stats s;
	const struct vd_lb_replica_stats *ra, *rb;
	int ok = 0, failed = 0;

	(void)state;
	start(0, "a", "async", 1);
	start(1, "b", "async", 1);
	balancer(NULL);
	load_init(a, 4, "/timeout?ms=20", 2000);
	dead_us = 0;
	vd_ev_timer(fx.ev, 500, kill_timer, &fx.be[0]);
	run_clients(4, load_client, a, sizeof(a[0]), 0);

	assert_true(dead_us > 0);
	for (int i = 0; i < 4; i++) {
		ok += a[i].ok;
		failed += a[i].failed;
		for (int k = 0; k < a[i].failed && k < MAX_FAILS; k++)
			assert_true(a[i].fail_start_us[k] < dead_us);
	}
	/* one request at a time per client: at most 4 were on it */
	assert_true(failed <= 4);
	assert_true(ok > 40);
	s = stats();
	ra = replica(&s, "a");
	rb = replica(&s, "b");
	assert_non_null(ra);
	assert_non_null(rb);
	assert_false(ra->up);
	assert_true(rb->up);
	assert_true(ra->errors > 0);
	assert_true(s.errors[VD_LB_ERR_CONNECT] + s.errors[VD_LB_ERR_RESET] > 0);
	assert_true(rb->requests > ra->requests);
	free(s.replicas);
}

/* ------------------------------------------- an ejected replica comes back */

static int64_t
restart_timer(struct vd_ev *ev, void *arg)
{
	struct backend *b = arg;
	struct vd_lb_stats s;
	const struct vd_lb_replica_stats *r;
	bool ejected;

	(void)ev;
	if (vd_lb_stats(fx.lb, &s, NULL) < 0)
		return 50;
	r = replica(&s, b->name);
	ejected = r && !r->up;
	free(s.replicas);
	if (!ejected)
		return 50; /* not yet */
	/* blocks the loop for as long as the server takes to start: fine here */
	if (backend_start(b, b->name, "async", 1, b->port) < 0)
		b->pid = 0;
	return -1;
}

/* A replica killed, ejected, then started again on its port is probed and
 * taken back. */
static void
test_ejected_comes_back(void **state)
{
	struct seq_arg a = { .n = 1, .path = "/ping" };
	struct load_arg l[2];
	struct vd_lb_stats s;
	const struct vd_lb_replica_stats *ra;
	long long before;

	(void)state;
	start(0, "a", "async", 1);
	start(1, "b", "async", 1);
	balancer(NULL);
	backend_kill(&fx.be[0]);
	a.port = lb_port();
	/* requests find it dead and eject it */
	a.n = 10;
	run_clients(1, seq_client, &a, sizeof(a), 0);
	assert_int_equal(a.ok, 10);
	s = stats();
	ra = replica(&s, "a");
	assert_non_null(ra);
	assert_false(ra->up);
	free(s.replicas);

	/* started again: load for 4 s (probes back off from 0.5 s; each client
	 * makes at most 5000 requests, so they wait a little each) */
	vd_ev_timer(fx.ev, 50, restart_timer, &fx.be[0]);
	load_init(l, 2, "/timeout?ms=5", 4000);
	run_clients(2, load_client, l, sizeof(l[0]), 0);
	assert_true(fx.be[0].pid > 0);
	assert_int_equal(l[0].failed + l[1].failed, 0);
	s = stats();
	ra = replica(&s, "a");
	assert_non_null(ra);
	assert_true(ra->up);
	before = ra->requests;
	free(s.replicas);
	assert_true(before > 0);
	assert_true(backend_requests(&fx.be[0]) > 1); /* more than its /info */
}

/* ------------------------------------------------- adding and draining */

static struct {
	int calls;
	char name[16];
	int64_t drain_us, done_us;
	uint64_t requests_at_drain; /* a's count when it was drained */
	int inflight_at_drain;
	int add_result, drain_result;
	uint64_t a_max_requests; /* the most seen for a after its drain */
} dr;

static void
drained(void *arg, const char *name)
{
	(void)arg;
	dr.calls++;
	snprintf(dr.name, sizeof(dr.name), "%s", name);
	dr.done_us = now_us();
}

static int64_t
add_timer(struct vd_ev *ev, void *arg)
{
	struct backend *b = arg;

	(void)ev;
	dr.add_result = vd_lb_add_replica(fx.lb, b->name, "127.0.0.1", b->port, NULL);
	return -1;
}

static int64_t
watch_timer(struct vd_ev *ev, void *arg)
{
	struct vd_lb_stats s;
	const struct vd_lb_replica_stats *r;

	(void)ev;
	(void)arg;
	if (vd_lb_stats(fx.lb, &s, NULL) < 0)
		return 5;
	if ((r = replica(&s, "a")) && r->draining && r->requests > dr.a_max_requests)
		dr.a_max_requests = r->requests;
	free(s.replicas);
	return 5;
}

static int64_t
drain_timer(struct vd_ev *ev, void *arg)
{
	struct vd_lb_stats s;
	const struct vd_lb_replica_stats *r;

	(void)ev;
	(void)arg;
	if (vd_lb_stats(fx.lb, &s, NULL) == 0) {
		if ((r = replica(&s, "a"))) {
			dr.requests_at_drain = r->requests;
			dr.inflight_at_drain = r->inflight;
		}
		free(s.replicas);
	}
	dr.drain_us = now_us();
	dr.drain_result = vd_lb_drain_replica(fx.lb, "a", drained, NULL);
	vd_ev_timer(fx.ev, 5, watch_timer, NULL);
	return -1;
}

/* Under load, B is added and A drained: no request fails, B takes over,
 * A gets nothing new once drained and is removed when its last is done. */
static void
test_add_and_drain(void **state)
{
	struct load_arg a[4];
	struct vd_lb_stats s;
	const struct vd_lb_replica_stats *rb;
	long long a0, a1;
	int ok = 0, failed = 0;

	(void)state;
	memset(&dr, 0, sizeof(dr));
	start(0, "a", "async", 1);
	balancer(NULL);
	start(1, "b", "async", 1); /* not a replica yet */
	a0 = backend_requests(&fx.be[0]);
	load_init(a, 4, "/timeout?ms=20", 1500);
	vd_ev_timer(fx.ev, 300, add_timer, &fx.be[1]);
	vd_ev_timer(fx.ev, 800, drain_timer, NULL);
	run_clients(4, load_client, a, sizeof(a[0]), 0);
	a1 = backend_requests(&fx.be[0]);

	for (int i = 0; i < 4; i++) {
		ok += a[i].ok;
		failed += a[i].failed;
	}
	assert_int_equal(failed, 0);
	assert_true(ok > 40);
	assert_int_equal(dr.add_result, 0);
	assert_int_equal(dr.drain_result, 0);
	/* the callback came once, once a's requests were done */
	assert_int_equal(dr.calls, 1);
	assert_string_equal(dr.name, "a");
	assert_true(dr.done_us >= dr.drain_us);
	assert_true(dr.requests_at_drain > 0);
	assert_true(dr.a_max_requests == 0 || dr.a_max_requests == dr.requests_at_drain);
	/* a's server saw exactly what was sent before the drain (and the /info) */
	assert_int_equal(a1 - a0, (long long)dr.requests_at_drain + 1);
	s = stats();
	assert_int_equal(s.nreplicas, 1);
	assert_null(replica(&s, "a"));
	rb = replica(&s, "b");
	assert_non_null(rb);
	assert_true(rb->requests > 0);
	assert_int_equal(s.responses[2], (uint64_t)ok);
	free(s.replicas);
	/* a is gone: draining it again is an error */
	assert_int_equal(vd_lb_drain_replica(fx.lb, "a", drained, NULL), -1);
}

/* ------------------------------------------------------------- refusals */

struct bad_arg {
	int port;
	int st_big, st_garbage, st_stall;
	char body_big[64], body_garbage[64], body_stall[64];
	bool eof_big, eof_garbage, eof_stall;
};

static void *
bad_client(void *arg)
{
	struct bad_arg *a = arg;
	struct vt_conn *c = malloc(sizeof(*c));
	struct vt_resp r = { 0 };
	size_t n = 20 * 1024 + 64;
	char *big = malloc(n + 1);
	int k;

	/* a 20 KiB header */
	k = snprintf(big, n, "GET /ping HTTP/1.1\r\nHost: t\r\nX-Big: ");
	memset(big + k, 'a', n - (size_t)k - 4);
	memcpy(big + n - 4, "\r\n\r\n", 4);
	if (vt_conn_tcp(c, a->port) == 0 && vt_conn_send(c, big, n) == 0) {
		a->st_big = vt_read_response(c, &r, false);
		snprintf(a->body_big, sizeof(a->body_big), "%s", r.body ? r.body : "");
		a->eof_big = vt_conn_closed(c); /* the rest of the head is unread */
	}
	vt_conn_close(c);
	/* garbage */
	if (vt_conn_tcp(c, a->port) == 0 && vt_conn_sendstr(c, "GARBAGE\r\n\r\n") == 0) {
		a->st_garbage = vt_read_response(c, &r, false);
		snprintf(a->body_garbage, sizeof(a->body_garbage), "%s", r.body ? r.body : "");
		a->eof_garbage = vt_conn_at_eof(c);
	}
	vt_conn_close(c);
	/* half a head, then nothing */
	if (vt_conn_tcp(c, a->port) == 0 &&
	    vt_conn_sendstr(c, "GET /ping HTTP/1.1\r\nHost: t\r\n") == 0) {
		a->st_stall = vt_read_response(c, &r, false);
		snprintf(a->body_stall, sizeof(a->body_stall), "%s", r.body ? r.body : "");
		a->eof_stall = vt_conn_at_eof(c);
	}
	vt_conn_close(c);
	vt_resp_clear(&r);
	free(big);
	free(c);
	return NULL;
}

static void
test_bad_requests(void **state)
{
	struct vd_lb_config cfg;
	struct bad_arg a = { 0 };
	struct vd_lb_stats s;

	(void)state;
	start(0, "a", "async", 1);
	vd_lb_config_default(&cfg);
	cfg.header_timeout_ms = 300;
	balancer(&cfg);
	a.port = lb_port();
	run_clients(1, bad_client, &a, sizeof(a), 0);

	assert_int_equal(a.st_big, 431);
	assert_string_equal(a.body_big, "request head too large\n");
	assert_true(a.eof_big);
	assert_int_equal(a.st_garbage, 400);
	assert_string_equal(a.body_garbage, "bad request\n");
	assert_true(a.eof_garbage);
	assert_int_equal(a.st_stall, 408);
	assert_string_equal(a.body_stall, "request timeout\n");
	assert_true(a.eof_stall);
	s = stats();
	assert_int_equal(s.errors[VD_LB_ERR_HEADER_TOO_BIG], 1);
	assert_int_equal(s.errors[VD_LB_ERR_BAD_REQUEST], 1);
	assert_int_equal(s.errors[VD_LB_ERR_CLIENT_TIMEOUT], 1);
	assert_int_equal(s.responses[4], 3);
	assert_int_equal(s.requests, 0); /* no head was whole */
	free(s.replicas);
	assert_int_equal(backend_requests(&fx.be[0]), 2); /* its /healthz, /info */
}

/* A pipelined request whose head is not whole when the one before it is
 * answered gets header_timeout from then, not from the first one's head. */
struct pipe_arg {
	int port;
	int st1, st2;
	char body2[16];
};

static void *
pipe_client(void *arg)
{
	struct pipe_arg *a = arg;
	struct vt_conn *c = malloc(sizeof(*c));
	struct vt_resp r = { 0 };

	if (vt_conn_tcp(c, a->port) == 0 &&
	    vt_conn_sendstr(c, "GET /timeout?ms=600 HTTP/1.1\r\nHost: t\r\n\r\n"
			       "GET /ping HTTP/1.1\r\n") == 0) {
		a->st1 = vt_read_response(c, &r, false);
		sleep_ms(150);
		if (vt_conn_sendstr(c, "Host: t\r\n\r\n") == 0)
			a->st2 = vt_read_response(c, &r, false);
		snprintf(a->body2, sizeof(a->body2), "%s", r.body ? r.body : "");
	}
	vt_resp_clear(&r);
	vt_conn_close(c);
	free(c);
	return NULL;
}

static void
test_pipelined_head_timeout(void **state)
{
	struct vd_lb_config cfg;
	struct pipe_arg a = { 0 };
	struct vd_lb_stats s;

	(void)state;
	start(0, "a", "async", 1);
	vd_lb_config_default(&cfg);
	cfg.header_timeout_ms = 400;
	balancer(&cfg);
	a.port = lb_port();
	run_clients(1, pipe_client, &a, sizeof(a), 0);

	assert_int_equal(a.st1, 200);
	assert_int_equal(a.st2, 200);
	assert_string_equal(a.body2, "pong\n");
	s = stats();
	assert_int_equal(s.errors[VD_LB_ERR_CLIENT_TIMEOUT], 0);
	free(s.replicas);
}

/* ------------------------------------------------------------- policies */

static void
spread(enum vd_lb_policy policy, int threads, int per_thread, int *got)
{
	struct vd_lb_config cfg;
	struct seq_arg a[4];
	struct vd_lb_stats s;
	long long before[3];
	const char *names[] = { "a", "b", "c" };

	start(0, "a", "async", 1);
	start(1, "b", "async", 1);
	start(2, "c", "async", 1);
	vd_lb_config_default(&cfg);
	cfg.policy = policy;
	balancer(&cfg);
	for (int i = 0; i < 3; i++)
		before[i] = backend_requests(&fx.be[i]);
	for (int i = 0; i < threads; i++)
		a[i] = (struct seq_arg){ .port = lb_port(), .n = per_thread, .path = "/ping" };
	run_clients(threads, seq_client, a, sizeof(a[0]), 0);
	for (int i = 0; i < threads; i++)
		assert_int_equal(a[i].ok, per_thread);
	s = stats();
	for (int i = 0; i < 3; i++) {
		const struct vd_lb_replica_stats *r = replica(&s, names[i]);

		assert_non_null(r);
		got[i] = (int)r->requests;
		/* the balancer's count is what the server saw */
		assert_int_equal(backend_requests(&fx.be[i]) - before[i], got[i] + 1);
	}
	assert_int_equal(got[0] + got[1] + got[2], threads * per_thread);
	free(s.replicas);
}

static void
test_round_robin(void **state)
{
	int got[3];

	(void)state;
	spread(VD_LB_ROUND_ROBIN, 1, 300, got);
	/* one request at a time: strictly in turn */
	for (int i = 0; i < 3; i++)
		assert_int_equal(got[i], 100);
}

static void
test_p2c(void **state)
{
	int got[3];

	(void)state;
	spread(VD_LB_P2C, 4, 75, got);
	for (int i = 0; i < 3; i++)
		assert_true(got[i] >= 30); /* a share each (about 100) */
}

/* ---------------------------------------------------------------- stats */

struct mix_arg {
	int port;
	int ok, notfound, bad;
};

static void *
mix_client(void *arg)
{
	struct mix_arg *a = arg;
	struct vt_conn *c = malloc(sizeof(*c));
	struct vt_resp r = { 0 };

	if (vt_conn_tcp(c, a->port) == 0) {
		for (int i = 0; i < 50; i++)
			a->ok += vt_request(c, "GET", "/timeout?ms=1", NULL, NULL, 0, &r) == 200;
		a->notfound += vt_request(c, "GET", "/nope", NULL, NULL, 0, &r) == 404;
	}
	vt_conn_close(c);
	if (vt_conn_tcp(c, a->port) == 0 && vt_conn_sendstr(c, "BAD\x01 / HTTP/1.1\r\n\r\n") == 0)
		a->bad += vt_read_response(c, &r, false) == 400;
	vt_conn_close(c);
	vt_resp_clear(&r);
	free(c);
	return NULL;
}

/* The numbers add up: heads received, responses by class, the balancer's
 * own answers, latency windows; nothing left in flight or open. */
static void
test_stats(void **state)
{
	struct mix_arg a = { 0 };
	struct vd_lb_stats s;
	uint64_t sum = 0;
	const struct vd_lb_replica_stats *r;

	(void)state;
	start(0, "a", "async", 1);
	balancer(NULL);
	a.port = lb_port();
	run_clients(1, mix_client, &a, sizeof(a), 200);
	assert_int_equal(a.ok, 50);
	assert_int_equal(a.notfound, 1);
	assert_int_equal(a.bad, 1);

	s = stats();
	for (int i = 0; i < 6; i++)
		sum += s.responses[i];
	assert_int_equal(s.requests, 51);
	assert_int_equal(s.responses[2], 50);
	assert_int_equal(s.responses[4], 2);
	assert_int_equal(sum, s.requests + s.errors[VD_LB_ERR_BAD_REQUEST]);
	assert_int_equal(s.errors[VD_LB_ERR_BAD_REQUEST], 1);
	assert_int_equal(s.inflight, 0);
	assert_int_equal(s.queued, 0);
	assert_int_equal(s.connections, 0);
	assert_int_equal(s.total10.count, 51);
	assert_true(s.total10.p50 > 0);
	assert_true(s.total10.p50 <= s.total10.p99 && s.total10.p99 <= s.total10.max);
	assert_true(s.total10.p50 >= 1000); /* /timeout?ms=1 */
	assert_int_equal(s.total60.count, 51);
	assert_true(s.rps10 > 0);
	assert_int_equal(s.nreplicas, 1);
	r = replica(&s, "a");
	assert_non_null(r);
	assert_int_equal(r->requests, 51);
	assert_int_equal(r->errors, 0);
	assert_int_equal(r->inflight, 0);
	assert_int_equal(r->total10.count, 51);
	assert_true(r->up);
	assert_false(r->draining);
	free(s.replicas);
}

/* No replica at all: 503 from the balancer. */
static void
test_no_replica(void **state)
{
	struct seq_arg a = { .n = 3, .path = "/ping" };
	struct vd_lb_stats s;

	(void)state;
	balancer(NULL);
	a.port = lb_port();
	run_clients(1, seq_client, &a, sizeof(a), 0);
	assert_int_equal(a.other, 3);
	assert_int_equal(a.closes, 3);
	s = stats();
	assert_int_equal(s.errors[VD_LB_ERR_NO_REPLICA], 3);
	assert_int_equal(s.responses[5], 3);
	free(s.replicas);
}

/* Every replica down: requests are answered 503 at once, not queued until
 * the queue's timeout; the replica is ejected. */
static void
test_all_down(void **state)
{
	struct seq_arg a = { .n = 3, .path = "/ping" };
	struct vd_lb_config cfg;
	struct vd_lb_stats s;

	(void)state;
	start(0, "a", "async", 1);
	vd_lb_config_default(&cfg);
	cfg.queue_timeout_ms = 600000; /* a wait would be visible as no answer */
	balancer(&cfg);
	backend_kill(&fx.be[0]);
	a.port = lb_port();
	run_clients(1, seq_client, &a, sizeof(a), 0);
	assert_int_equal(a.other, 3);
	assert_int_equal(a.failed, 0);
	s = stats();
	assert_int_equal(s.errors[VD_LB_ERR_NO_REPLICA], 3);
	assert_true(s.errors[VD_LB_ERR_CONNECT] >= 1);
	assert_int_equal(s.queued, 0);
	assert_int_equal(s.nreplicas, 1);
	assert_false(s.replicas[0].up);
	free(s.replicas);
}

/* ------------------------------------------------------------- stopping */

/* When a stop test calls vd_lb_shutdown (from a timer that looks every
 * 5 ms), and what it saw then. Client threads only read the flags. */
static struct {
	int64_t grace_ms;
	int inflight, queued;   /* stop once this many are on replicas and wait, */
	uint64_t responses;     /* this many 2xx were sent, */
	uint64_t connections;   /* this many clients are connected */
	bool on_first;          /* and a client said it has the first bytes */
	atomic_bool first;
	atomic_bool stopped;    /* vd_lb_shutdown was called */
	atomic_bool idle_closed; /* the idle client saw its connection closed */
	atomic_bool marked;     /* the piece client saw its mark */
	int64_t at_us;          /* when */
	size_t clients_at;      /* vd_lb_clients() just before */
	int64_t free_after_ms;  /* > 0: vd_lb_free that long after the stop */
} sd;

static int64_t
free_timer(struct vd_ev *ev, void *arg)
{
	(void)ev;
	(void)arg;
	vd_lb_free(fx.lb);
	fx.lb = NULL;
	return -1;
}

static int64_t
stop_when_timer(struct vd_ev *ev, void *arg)
{
	struct vd_lb_stats s;
	bool due;

	(void)arg;
	if (vd_lb_stats(fx.lb, &s, NULL) < 0)
		return 5;
	due = s.inflight >= sd.inflight && s.queued >= sd.queued &&
	      s.responses[2] >= sd.responses && s.connections >= sd.connections &&
	      (!sd.on_first || atomic_load(&sd.first));
	free(s.replicas);
	if (!due)
		return 5;
	sd.clients_at = vd_lb_clients(fx.lb);
	sd.at_us = now_us();
	vd_lb_shutdown(fx.lb, sd.grace_ms);
	atomic_store(&sd.stopped, true);
	if (sd.free_after_ms > 0)
		vd_ev_timer(ev, sd.free_after_ms, free_timer, NULL);
	return -1;
}

/* Stop the balancer with grace_ms once what sd asks for is seen. */
static void
stop_when(int64_t grace_ms)
{
	sd.grace_ms = grace_ms;
	vd_ev_timer(fx.ev, 5, stop_when_timer, NULL);
}

/* Wait (bounded) until flag is set. */
static bool
wait_flag(atomic_bool *flag)
{
	int64_t until = now_us() + vt_io_ms() * 1000;

	while (!atomic_load(flag) && now_us() < until)
		sleep_ms(5);
	return atomic_load(flag);
}

/* The head says Connection: close, once, and nothing of keep-alive. */
static bool
says_close(const struct vt_resp *r)
{
	const char *p = strcasestr(r->head, "\nConnection:");

	return r->close && p && !strcasestr(p + 1, "\nConnection:") &&
	       !strcasestr(r->head, "keep-alive");
}

struct stop_arg {
	int port;
	int i;               /* send turn */
	const char *path;
	bool try_connect;    /* once answered, connect again */
	int status;
	bool after_stop;     /* the answer came once the balancer was stopping */
	bool close, eof;
	bool refused;        /* the new connection was refused */
	int connect_errno;
};

static void *
stop_client(void *arg)
{
	struct stop_arg *a = arg;
	struct vt_conn *c = malloc(sizeof(*c));
	struct vt_resp r = { 0 };
	char req[256];
	bool open = vt_conn_tcp(c, a->port) == 0;

	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", a->path);
	turn_wait(a->i);
	a->status = open && vt_conn_sendstr(c, req) == 0 ? 0 : -1;
	sleep_ms(30);
	turn_pass();
	if (a->status == 0)
		a->status = vt_read_response(c, &r, false);
	a->after_stop = atomic_load(&sd.stopped);
	a->close = a->status == 200 && says_close(&r);
	a->eof = a->status == 200 && vt_conn_at_eof(c);
	vt_conn_close(c);
	if (a->try_connect) {
		a->refused = vt_conn_tcp(c, a->port) < 0 && errno == ECONNREFUSED;
		a->connect_errno = errno;
		vt_conn_close(c);
	}
	vt_resp_clear(&r);
	free(c);
	return NULL;
}

/* A slow request on the replica and one waiting in the queue when the
 * balancer stops: both are answered, with Connection: close (the replica's
 * keep-alive taken out), then closed; a new connection is refused. */
static void
test_stop_inflight(void **state)
{
	struct vd_lb_config cfg;
	struct stop_arg a[2] = { { .path = "/timeout?ms=500", .try_connect = true },
				 { .path = "/timeout?ms=100" } };
	struct vd_lb_stats s;

	(void)state;
	memset(&sd, 0, sizeof(sd));
	start(0, "a", "async", 1);
	vd_lb_config_default(&cfg);
	cfg.max_inflight = 1;
	balancer(&cfg);
	sd.inflight = 1;
	sd.queued = 1;
	stop_when(10000);
	turns.next = 0;
	for (int i = 0; i < 2; i++) {
		a[i].port = lb_port();
		a[i].i = i;
	}
	run_clients(2, stop_client, a, sizeof(a[0]), 0);

	assert_true(atomic_load(&sd.stopped));
	assert_int_equal(sd.clients_at, 2);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(a[i].status, 200);
		assert_true(a[i].after_stop);
		assert_true(a[i].close);
		assert_true(a[i].eof);
	}
	if (!a[0].refused)
		fail_msg("connect after the stop: %s", strerror(a[0].connect_errno));
	assert_int_equal(vd_lb_clients(fx.lb), 0);
	s = stats();
	assert_int_equal(s.responses[2], 2);
	assert_int_equal(s.responses[5], 0);
	assert_int_equal(s.connections, 0);
	assert_int_equal(s.inflight, 0);
	assert_int_equal(s.queued, 0);
	free(s.replicas);
}

struct idle_arg {
	int port;
	bool late;         /* the late client, not the idle one */
	int st_first, st_late;
	bool first_kept;   /* the first answer kept the connection */
	bool idle_eof;     /* the idle connection was closed */
	int64_t eof_us;    /* when */
	bool late_close, late_eof;
};

/* Idle after one request: closed at the end of the grace period. */
static void *
idle_client(void *arg)
{
	struct idle_arg *a = arg;
	struct vt_conn *c = malloc(sizeof(*c));
	struct vt_resp r = { 0 };

	if (vt_conn_tcp(c, a->port) == 0) {
		a->st_first = vt_request(c, "GET", "/ping", NULL, NULL, 0, &r);
		a->first_kept = a->st_first == 200 && !r.close;
		a->idle_eof = vt_conn_closed(c);
		a->eof_us = now_us();
	}
	atomic_store(&sd.idle_closed, true);
	vt_resp_clear(&r);
	vt_conn_close(c);
	free(c);
	return NULL;
}

/* In the middle of a head when the balancer stops, and still once the grace
 * period is over: served, then closed. */
static void *
late_client(void *arg)
{
	struct idle_arg *a = arg;
	struct vt_conn *c = malloc(sizeof(*c));
	struct vt_resp r = { 0 };

	if (vt_conn_tcp(c, a->port) == 0 && vt_conn_sendstr(c, "GET /ping HTTP/1.1\r\n") == 0 &&
	    wait_flag(&sd.idle_closed) && vt_conn_sendstr(c, "Host: t\r\n\r\n") == 0) {
		a->st_late = vt_read_response(c, &r, false);
		a->late_close = a->st_late == 200 && says_close(&r);
		a->late_eof = a->st_late == 200 && vt_conn_at_eof(c);
	}
	vt_resp_clear(&r);
	vt_conn_close(c);
	free(c);
	return NULL;
}

static void *
idle_or_late(void *arg)
{
	struct idle_arg *a = arg;

	return a->late ? late_client(a) : idle_client(a);
}

/* An idle keep-alive client is closed once the grace period is over; one in
 * the middle of a request is not, and vd_lb_clients() comes to 0. */
static void
test_stop_idle(void **state)
{
	struct idle_arg a[2] = { { 0 }, { .late = true } };

	(void)state;
	memset(&sd, 0, sizeof(sd));
	start(0, "a", "async", 1);
	balancer(NULL);
	sd.responses = 1;
	sd.connections = 2;
	stop_when(300);
	a[0].port = a[1].port = lb_port();
	run_clients(2, idle_or_late, a, sizeof(a[0]), 0);

	assert_true(atomic_load(&sd.stopped));
	assert_int_equal(sd.clients_at, 2);
	assert_int_equal(a[0].st_first, 200);
	assert_true(a[0].first_kept);
	assert_true(a[0].idle_eof);
	/* not before the grace period (the loop's clock counts whole ms) */
	assert_true(a[0].eof_us - sd.at_us >= (sd.grace_ms - 2) * 1000);
	assert_int_equal(a[1].st_late, 200);
	assert_true(a[1].late_close);
	assert_true(a[1].late_eof);
	assert_int_equal(vd_lb_clients(fx.lb), 0);
}

struct ka_arg {
	int port;
	int st1, st2;
	bool kept, close, eof;
};

static void *
ka_client(void *arg)
{
	struct ka_arg *a = arg;
	struct vt_conn *c = malloc(sizeof(*c));
	struct vt_resp r = { 0 };

	if (vt_conn_tcp(c, a->port) == 0) {
		a->st1 = vt_request(c, "GET", "/ping", NULL, NULL, 0, &r);
		a->kept = a->st1 == 200 && !r.close;
		if (wait_flag(&sd.stopped))
			a->st2 = vt_request(c, "GET", "/ping", NULL, NULL, 0, &r);
		a->close = a->st2 == 200 && says_close(&r) && strcmp(r.body, "pong\n") == 0;
		a->eof = a->st2 == 200 && vt_conn_at_eof(c);
	}
	vt_resp_clear(&r);
	vt_conn_close(c);
	free(c);
	return NULL;
}

/* A keep-alive client that sends a request within the grace period is
 * served, told Connection: close, and closed. */
static void
test_stop_keepalive_request(void **state)
{
	struct ka_arg a = { 0 };

	(void)state;
	memset(&sd, 0, sizeof(sd));
	start(0, "a", "async", 1);
	balancer(NULL);
	sd.responses = 1;
	stop_when(10000);
	a.port = lb_port();
	run_clients(1, ka_client, &a, sizeof(a), 0);

	assert_int_equal(a.st1, 200);
	assert_true(a.kept);
	assert_int_equal(a.st2, 200);
	assert_true(a.close);
	assert_true(a.eof);
	assert_int_equal(vd_lb_clients(fx.lb), 0);
	/* the grace timer still runs: teardown's vd_lb_free cancels it */
}

/* A replica of the test's own that sends its response in pieces, 30 ms
 * apart, the first `before` of them before the balancer stops, and the last
 * only once the client has seen `mark` (when there is one). */
struct piece_arg {
	int lfd;
	const char *pieces[3];
	int before;
	const char *mark;
	/* the client */
	int port;
	int status;
	char head[512];
	char body[16];
	bool eof;
	bool saw_mark; /* before the replica sent the last piece */
};

static void *
piece_replica(struct piece_arg *a)
{
	struct vt_conn *c = malloc(sizeof(*c));
	long ms = vt_io_ms();
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	c->len = 0;
	if ((c->fd = accept(a->lfd, NULL, NULL)) < 0)
		goto out;
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (!memmem(c->buf, c->len, "\r\n\r\n", 4))
		if (vt_conn_fill(c) != 0)
			goto out;
	for (int i = 0; i < 3; i++) {
		if (i == a->before && !wait_flag(&sd.stopped))
			goto out;
		if (i == 2 && a->mark && !wait_flag(&sd.marked))
			goto out;
		if (i > 0)
			sleep_ms(30);
		if (vt_conn_sendstr(c, a->pieces[i]) < 0)
			goto out;
	}
out:
	vt_conn_close(c);
	free(c);
	return NULL;
}

static void *
piece_client(struct piece_arg *a)
{
	struct vt_conn *c = malloc(sizeof(*c));
	struct vt_resp r = { 0 };

	if (vt_conn_tcp(c, a->port) == 0 &&
	    vt_conn_sendstr(c, "GET /p HTTP/1.1\r\nHost: t\r\n\r\n") == 0 && vt_conn_fill(c) == 0) {
		atomic_store(&sd.first, true);
		while (a->mark && !(a->saw_mark = memmem(c->buf, c->len, a->mark,
							   strlen(a->mark)) != NULL))
			if (vt_conn_fill(c) != 0)
				break;
		atomic_store(&sd.marked, true);
		a->status = vt_read_response(c, &r, false);
		snprintf(a->head, sizeof(a->head), "%.500s", r.head);
		snprintf(a->body, sizeof(a->body), "%s", r.body ? r.body : "");
		a->eof = a->status == 200 && vt_conn_at_eof(c);
	}
	vt_resp_clear(&r);
	vt_conn_close(c);
	free(c);
	return NULL;
}

static void *
piece_main(void *arg)
{
	struct piece_arg *a = arg;

	return a->lfd >= 0 ? piece_replica(a) : piece_client(a);
}

/* Run a piece replica and a client; the response's head as the client got it. */
static void
pieces(struct piece_arg a[2])
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	long ms = vt_io_ms();
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	struct vd_error err = VD_ERROR_INIT;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a[0].lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(a[0].lfd >= 0);
	/* accept() waits no longer than the clients' sockets do */
	setsockopt(a[0].lfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	assert_int_equal(bind(a[0].lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(a[0].lfd, 8), 0);
	assert_int_equal(getsockname(a[0].lfd, (struct sockaddr *)&sin, &len), 0);
	a[1].lfd = -1;
	a[1].mark = a[0].mark;
	balancer(NULL);
	if (vd_lb_add_replica(fx.lb, "p", "127.0.0.1", ntohs(sin.sin_port), &err) < 0)
		fail_msg("vd_lb_add_replica: %s", err.msg);
	a[1].port = lb_port();
	stop_when(10000);
	run_clients(2, piece_main, a, sizeof(a[0]), 0);
	close(a[0].lfd);
	assert_int_equal(a[1].status, 200);
	assert_true(a[1].eof);
	assert_int_equal(vd_lb_clients(fx.lb), 0);
}

/* A response whose head comes in pieces after the stop: held until whole,
 * its hop-by-hop lines taken out wherever they were, Connection: close
 * added. */
static void
test_stop_head_held(void **state)
{
	struct piece_arg a[2] = { {
		.pieces = { "HTTP/1.1 200 OK\r\nX-One: 1\r\nConnection: keep-al",
			    "ive\r\nKeep-Alive: timeout=5\r\n",
			    "X-Two: 2\r\nContent-Length: 3\r\n\r\nabc" },
		.before = 0,
	} };

	(void)state;
	memset(&sd, 0, sizeof(sd));
	sd.inflight = 1;
	pieces(a);
	assert_string_equal(a[1].head, "HTTP/1.1 200 OK\r\nX-One: 1\r\nX-Two: 2\r\n"
				       "Content-Length: 3\r\nConnection: close\r\n\r\n");
	assert_string_equal(a[1].body, "abc");
}

/* A head that began to go out before the stop: what follows is rewritten. */
static void
test_stop_head_begun(void **state)
{
	struct piece_arg a[2] = { {
		.pieces = { "HTTP/1.1 200 OK\r\nX-One: 1\r\n", "X-Two: 2\r\n",
			    "Keep-Alive: timeout=5\r\nConnection: keep-alive\r\n"
			    "Content-Length: 3\r\n\r\nabc" },
		.before = 1,
	} };

	(void)state;
	memset(&sd, 0, sizeof(sd));
	sd.on_first = true;
	pieces(a);
	assert_string_equal(a[1].head, "HTTP/1.1 200 OK\r\nX-One: 1\r\nX-Two: 2\r\n"
				       "Content-Length: 3\r\nConnection: close\r\n\r\n");
	assert_string_equal(a[1].body, "abc");
}

/* A body on its way when the balancer stops streams on: what comes is
 * relayed at once (the replica waits for the client to see "MID" before it
 * sends the rest), not held as if it were a head. The head went out as it
 * was; the connection is closed after the response all the same. */
static void
test_stop_body_streams(void **state)
{
	struct piece_arg a[2] = { {
		.pieces = { "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc", "MID", "xyz" },
		.before = 1,
		.mark = "MID",
	} };

	(void)state;
	memset(&sd, 0, sizeof(sd));
	sd.on_first = true;
	pieces(a);
	assert_true(a[1].saw_mark);
	assert_string_equal(a[1].body, "abcMIDxyz");
}

/* vd_lb_free in the middle of a stop closes what is left. */
static void
test_stop_then_free(void **state)
{
	struct stop_arg a = { .path = "/timeout?ms=300" };

	(void)state;
	memset(&sd, 0, sizeof(sd));
	start(0, "a", "async", 1);
	balancer(NULL);
	sd.inflight = 1;
	sd.free_after_ms = 50;
	stop_when(10000);
	turns.next = 0;
	a.port = lb_port();
	run_clients(1, stop_client, &a, sizeof(a), 0);
	assert_true(atomic_load(&sd.stopped));
	assert_null(fx.lb);
	assert_int_equal(a.status, -1); /* cut by the free, not answered */
}

/* A request on a connection made while no balancer accepted. */
struct passed_arg {
	struct vt_conn *c;
	struct vt_resp r;
};

static void *
passed_client(void *arg)
{
	struct passed_arg *a = arg;

	vt_request(a->c, "GET", "/ping", NULL, NULL, 0, &a->r);
	return NULL;
}

/* A listener passed on, as a controller that takes over gets it: the first
 * balancer detaches it and stops (a connection made meanwhile waits in the
 * queue, neither taken nor reset); a second one serves the same socket
 * (listen_fd) and answers that connection. A socket that does not listen on
 * the configured address is refused and left open. */
static void
test_listener_passed(void **state)
{
	struct vd_error err = VD_ERROR_INIT;
	struct passed_arg a = { calloc(1, sizeof(struct vt_conn)), { 0 } };
	struct vd_lb_config cfg;
	struct vd_lb *old;
	int fd, port;

	(void)state;
	start(0, "a", "async", 1);
	balancer(NULL);
	old = fx.lb;
	port = vd_lb_port(old);
	fd = dup(vd_lb_listen_fd(old)); /* what SCM_RIGHTS gives the other process */
	assert_true(fd >= 0);
	vd_lb_detach_listener(old);
	assert_int_equal(vd_lb_listen_fd(old), -1);
	assert_non_null(a.c);
	assert_int_equal(vt_conn_tcp(a.c, port), 0);
	vd_lb_shutdown(old, 0);
	assert_int_equal(vd_lb_clients(old), 0);
	vd_lb_free(old);
	fx.lb = NULL;

	vd_lb_config_default(&cfg);
	cfg.listen_host = "127.0.0.2";
	cfg.listen_port = port;
	cfg.listen_fd = fd;
	assert_null(vd_lb_new(fx.ev, &cfg, &err));
	assert_non_null(strstr(err.msg, "does not listen on 127.0.0.2"));
	assert_true(fcntl(fd, F_GETFD) >= 0); /* still open */
	cfg.listen_host = "127.0.0.1";
	fx.lb = vd_lb_new(fx.ev, &cfg, &err);
	if (!fx.lb)
		fail_msg("vd_lb_new: %s", err.msg);
	assert_int_equal(vd_lb_port(fx.lb), port);
	if (vd_lb_add_replica(fx.lb, "a", "127.0.0.1", fx.be[0].port, &err) < 0)
		fail_msg("vd_lb_add_replica: %s", err.msg);
	run_clients(1, passed_client, &a, sizeof(a), 0);
	assert_int_equal(a.r.status, 200);
	vt_resp_clear(&a.r);
	vt_conn_close(a.c);
	free(a.c);
}

#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_keepalive_reuse),
		T(test_headers_and_close),
		T(test_bodies),
		T(test_slow_connect_body),
		T(test_queue_fifo),
		T(test_queue_full),
		T(test_queue_timeout),
		T(test_client_gone_queued),
		T(test_client_gone_inflight),
		T(test_client_gone_abort),
		T(test_refused_early),
		T(test_patience),
		T(test_backend_killed),
		T(test_ejected_comes_back),
		T(test_add_and_drain),
		T(test_bad_requests),
		T(test_pipelined_head_timeout),
		T(test_round_robin),
		T(test_p2c),
		T(test_stats),
		T(test_no_replica),
		T(test_all_down),
		T(test_stop_inflight),
		T(test_stop_idle),
		T(test_stop_keepalive_request),
		T(test_stop_head_held),
		T(test_stop_head_begun),
		T(test_stop_body_streams),
		T(test_stop_then_free),
		T(test_listener_passed),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
