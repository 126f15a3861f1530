/*
 * The load generator (orchestrator/loadgen.c) against the example server
 * ($VD_SVC_BIN, default build/svc) started on a free port of 127.0.0.1.
 *
 * Nothing here asserts a wall-clock upper bound: arrival schedules are
 * checked by counts (how many were started, and in which second), wait
 * times by how many requests they leave room for, latencies against the
 * server's known delay from below, weights within statistical bounds.
 */
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vdtest.h"
#include "vd/loadgen.h"

struct svc {
	pid_t pid;
	int port;
};

static struct svc
svc_start(const char *model, const char *workers)
{
	const char *bin = vt_env("VD_SVC_BIN", "build/svc");
	struct svc s = { -1, vt_free_port() };
	char port[16], url[64];

	snprintf(port, sizeof(port), "%d", s.port);
	s.pid = fork();
	assert_true(s.pid >= 0);
	if (s.pid == 0) {
		freopen("/dev/null", "w", stdout);
		freopen("/dev/null", "w", stderr);
		execl(bin, bin, "--model", model, "--workers", workers, "--port", port,
		      "--listen", "127.0.0.1", (char *)NULL);
		_exit(127);
	}
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/ping", s.port);
	if (vt_wait_http(url, 10) < 0) {
		kill(s.pid, SIGKILL);
		fail_msg("%s did not answer on port %d", bin, s.port);
	}
	return s;
}

static void
svc_stop(struct svc *s)
{
	kill(s->pid, SIGTERM);
	waitpid(s->pid, NULL, 0);
}

/* Read a profile from FMT, where %d is the port, and run it. */
static void
run(int port, int threads, struct vd_load_result *r, const char *fmt)
{
	struct vd_diags d = VD_DIAGS_INIT;
	struct vd_error err = VD_ERROR_INIT;
	struct vd_load_profile *p;
	struct vd_load_opts o;
	char text[2048];

	snprintf(text, sizeof(text), fmt, port, port);
	if (vd_load_profile_parse("t.yaml", text, strlen(text), NULL, &p, &d, &err) < 0) {
		vd_diags_print(&d, stderr);
		fail_msg("%s", err.msg);
	}
	vd_load_opts_init(&o);
	o.out = NULL;
	o.threads = threads;
	if (vd_load_run(p, &o, r, &err) < 0)
		fail_msg("%s", err.msg);
	vd_load_profile_free(p);
}

static uint64_t
errors(const struct vd_load_result *r)
{
	uint64_t n = 0;

	for (int k = 0; k < VD_LOAD_ERR_KINDS; k++)
		n += r->total.errors[k];
	return n;
}

#define assert_in(v, lo, hi) do { \
	double v_ = (double)(v); \
	if (v_ < (double)(lo) || v_ > (double)(hi)) \
		fail_msg("%s = %g, not in [%g, %g]", #v, v_, (double)(lo), (double)(hi)); \
} while (0)

/* ===================================================================== */

/* 200 arrivals a second for 2 s, constant spacing: exactly 400, 200 in
 * each second, on one thread and on two. */
static void
test_constant_rate(void **state)
{
	struct svc s = svc_start("async", "1");
	struct vd_load_result r;

	(void)state;
	for (int threads = 1; threads <= 2; threads++) {
		run(s.port, threads, &r,
		    "target: http://127.0.0.1:%d\n"
		    "phases: [{duration: 2s, arrival_rate: 200}]\n"
		    "requests: [{path: /ping}]\n");
		assert_int_equal(r.total.created, 400);
		assert_int_equal(r.total.responses, 400);
		assert_int_equal(r.total.codes[200], 400);
		assert_int_equal(errors(&r), 0);
		assert_true(r.nsecs >= 2);
		/* the second an arrival lands in may slip by a tick */
		assert_in(r.timeline[0].c.created, 195, 201);
		assert_in(r.timeline[1].c.created, 195, 205);
		assert_int_equal(r.hist.count, 400);
		vd_load_result_clear(&r);
	}
	svc_stop(&s);
}

/* A ramp from 0 to 200 a second over 2 s: 200 arrivals in all, a quarter
 * of them in the first second; then Poisson arrivals at 500/s. */
static void
test_ramp_and_poisson(void **state)
{
	struct svc s = svc_start("async", "1");
	struct vd_load_result r;

	(void)state;
	run(s.port, 1, &r,
	    "target: http://127.0.0.1:%d\n"
	    "phases: [{duration: 2s, arrival_rate: 0, ramp_to: 200}, {pause: 1s},"
	    "         {duration: 1s, arrival_count: 30}]\n"
	    "requests: [{path: /ping}]\n");
	assert_int_equal(r.total.created, 230);
	assert_int_equal(r.total.responses, 230);
	assert_in(r.timeline[0].c.created, 45, 55);
	assert_in(r.timeline[1].c.created, 145, 155);
	assert_in(r.timeline[2].c.created, 0, 3); /* the pause */
	assert_in(r.timeline[3].c.created, 25, 30);
	vd_load_result_clear(&r);

	/* 1,000 expected: within 5 standard deviations (sqrt(1000) ~ 32) */
	run(s.port, 1, &r,
	    "target: http://127.0.0.1:%d\narrivals: poisson\n"
	    "phases: [{duration: 2s, arrival_rate: 500}]\n"
	    "requests: [{path: /ping}]\n");
	assert_in(r.total.created, 840, 1160);
	assert_int_equal(r.total.responses, r.total.created);
	vd_load_result_clear(&r);
	svc_stop(&s);
}

/* Closed model: 4 users, each waiting 100 ms after each answer, for 2 s:
 * at most 21 requests each; then waits between 200 and 400 ms. */
static void
test_closed_users_and_waits(void **state)
{
	struct svc s = svc_start("async", "1");
	struct vd_load_result r;

	(void)state;
	run(s.port, 1, &r,
	    "target: http://127.0.0.1:%d\nusers: 4\nspawn_rate: 100\n"
	    "wait_time: 100ms\nduration: 2s\n"
	    "requests: [{path: /ping}]\n");
	assert_int_equal(r.total.created, 4);
	assert_int_equal(r.total.completed, 4);
	assert_int_equal(errors(&r), 0);
	assert_int_equal(r.total.responses, r.total.requests);
	assert_in(r.total.requests, 20, 4 * 21);
	assert_in(r.timeline[0].c.users, 4, 4);
	vd_load_result_clear(&r);

	run(s.port, 2, &r,
	    "target: http://127.0.0.1:%d\nusers: 3\n"
	    "wait_time: {min: 200ms, max: 400ms}\nduration: 2s\n"
	    "requests: [{path: /ping}]\n");
	assert_int_equal(r.total.created, 3);
	assert_in(r.total.requests, 3, 3 * (2000 / 200 + 1));
	vd_load_result_clear(&r);
	svc_stop(&s);
}

/* Weights 10 to 1: the share of the light request within 5 standard
 * deviations of 1/11. */
static void
test_weights(void **state)
{
	struct svc s = svc_start("async", "1");
	struct vd_load_result r;
	double n, share, sd;

	(void)state;
	run(s.port, 1, &r,
	    "target: http://127.0.0.1:%d\nusers: 2\nduration: 1s\n"
	    "requests: [{path: /ping, weight: 10}, {path: /healthz, weight: 1}]\n");
	n = (double)(r.per_request[0] + r.per_request[1]);
	assert_true(n >= 200);
	assert_int_equal(errors(&r), 0);
	share = (double)r.per_request[1] / n;
	sd = sqrt((1.0 / 11) * (10.0 / 11) / n);
	assert_in(share, 1.0 / 11 - 5 * sd, 1.0 / 11 + 5 * sd);
	vd_load_result_clear(&r);

	/* Artillery scenarios: 3 to 1 over a flow of two requests */
	run(s.port, 1, &r,
	    "config: {target: 'http://127.0.0.1:%d', phases: [{duration: 2, arrivalRate: 200}]}\n"
	    "scenarios:\n"
	    "  - {weight: 3, flow: [{get: {url: /ping}}, {think: 0.01}, {get: {url: /ping}}]}\n"
	    "  - {weight: 1, flow: [{post: {url: /echo, json: {a: [1, 2]}}}]}\n");
	n = (double)r.total.created;
	assert_int_equal(r.total.completed, r.total.created);
	assert_int_equal(r.per_request[0], r.per_request[1]);
	share = (double)r.per_request[2] / n;
	sd = sqrt(0.25 * 0.75 / n);
	assert_in(share, 0.25 - 5 * sd, 0.25 + 5 * sd);
	vd_load_result_clear(&r);
	svc_stop(&s);
}

/* Against /timeout?ms=100 every percentile is at least the delay (the
 * histogram is within 1%). */
static void
test_percentiles_known_delay(void **state)
{
	struct svc s = svc_start("async", "1");
	struct vd_load_result r;

	(void)state;
	run(s.port, 1, &r,
	    "target: http://127.0.0.1:%d\n"
	    "phases: [{duration: 2s, arrival_rate: 25}]\n"
	    "requests: [{path: '/timeout?ms=100'}]\n");
	assert_int_equal(r.total.responses, 50);
	assert_int_equal(r.hist.count, 50);
	assert_true(r.hist.min_us >= 100000);
	assert_true(vd_hist_percentile(&r.hist, 50) >= 99000);
	assert_true(vd_hist_percentile(&r.hist, 95) >= vd_hist_percentile(&r.hist, 50));
	assert_true(vd_hist_percentile(&r.hist, 99) >= vd_hist_percentile(&r.hist, 95));
	assert_true(r.hist.max_us >= vd_hist_percentile(&r.hist, 99));
	assert_true(vd_hist_percentile(&r.hist, 50) < 100000 + 2000000); /* sanity only */
	assert_true(r.timeline[0].p50_us >= 99000);
	vd_load_result_clear(&r);
	svc_stop(&s);
}

/* No latency below the server's own delay: a closed-model user's request
 * counts from when it is sent, never from a wait time's end that the loop's
 * timer (whole milliseconds) had not reached yet; an open-model request from
 * when it was due (arrival, or the end of a think time), never earlier than
 * its sending. A few hundred requests each, against /timeout?ms=5 and 20. */
static void
test_latency_not_below_delay(void **state)
{
	struct svc s = svc_start("async", "1");
	struct vd_load_result r;
	static const int delays[] = { 5, 20 };
	char text[1024];

	(void)state;
	for (size_t i = 0; i < sizeof(delays) / sizeof(delays[0]); i++) {
		int ms = delays[i];

		snprintf(text, sizeof(text),
			 "target: http://127.0.0.1:%%d\nusers: 8\nduration: 2s\n"
			 "wait_time: {min: 1ms, max: 7ms}\n"
			 "requests: [{path: '/timeout?ms=%d'}]\n", ms);
		run(s.port, 1, &r, text);
		assert_int_equal(errors(&r), 0);
		assert_true(r.hist.count >= 200);
		if (r.hist.min_us < (uint64_t)ms * 1000)
			fail_msg("closed model, /timeout?ms=%d: min latency %.3f ms", ms,
				 (double)r.hist.min_us / 1000);
		vd_load_result_clear(&r);

		snprintf(text, sizeof(text),
			 "config: {target: 'http://127.0.0.1:%%d', phases: [{duration: 2, "
			 "arrivalRate: 100}]}\n"
			 "scenarios: [{flow: [{get: {url: '/timeout?ms=%d'}}, {think: 0.003},"
			 " {get: {url: '/timeout?ms=%d'}}, {think: 0.002},"
			 " {get: {url: '/timeout?ms=%d'}}]}]\n", ms, ms, ms);
		run(s.port, 1, &r, text);
		assert_int_equal(errors(&r), 0);
		assert_int_equal(r.hist.count, 600);
		if (r.hist.min_us < (uint64_t)ms * 1000)
			fail_msg("open model, /timeout?ms=%d: min latency %.3f ms", ms,
				 (double)r.hist.min_us / 1000);
		vd_load_result_clear(&r);
	}
	svc_stop(&s);
}

/* No coordinated omission: one sync worker serves 10 requests a second of
 * /timeout?ms=100; asked for 20 a second, the arrivals still all start on
 * schedule, and latency, counted from when each was due, grows: request
 * k (due at 50k ms) cannot finish before 100(k+1) ms, so the last of 20
 * waited at least 1,050 ms and the median at least 550 ms. */
static void
test_no_coordinated_omission(void **state)
{
	struct svc s = svc_start("sync", "1");
	struct vd_load_result r;

	(void)state;
	run(s.port, 1, &r,
	    "target: http://127.0.0.1:%d\n"
	    "phases: [{duration: 1s, arrival_rate: 20}]\n"
	    "requests: [{path: '/timeout?ms=100'}]\n");
	assert_int_equal(r.total.created, 20);
	assert_in(r.timeline[0].c.created, 19, 20);
	assert_in(r.timeline[0].c.requests, 19, 20);
	assert_int_equal(r.total.responses, 20);
	assert_true(r.hist.max_us >= 1000000);
	assert_true(vd_hist_percentile(&r.hist, 50) >= 500000);
	vd_load_result_clear(&r);
	svc_stop(&s);
}

/* Errors by kind: a refused port, a timeout; status codes by code. */
static void
test_errors_and_codes(void **state)
{
	struct svc s = svc_start("async", "1");
	struct vd_load_result r;

	(void)state;
	run(vt_free_port(), 1, &r,
	    "target: http://127.0.0.1:%d\n"
	    "phases: [{duration: 1s, arrival_rate: 20}]\n"
	    "requests: [{path: /ping}]\n");
	assert_int_equal(r.total.created, 20);
	assert_int_equal(r.total.errors[VD_LOAD_ECONNREFUSED], 20);
	assert_int_equal(r.total.failed, 20);
	assert_int_equal(r.total.responses, 0);
	vd_load_result_clear(&r);

	run(s.port, 1, &r,
	    "target: http://127.0.0.1:%d\ntimeout: 200ms\n"
	    "phases: [{duration: 1s, arrival_rate: 10}]\n"
	    "requests: [{path: '/timeout?ms=3000'}]\n");
	assert_int_equal(r.total.errors[VD_LOAD_ETIMEDOUT], 10);
	assert_int_equal(r.total.failed, 10);
	vd_load_result_clear(&r);

	run(s.port, 1, &r,
	    "target: http://127.0.0.1:%d\nusers: 1\nduration: 1s\nwait_time: 10ms\n"
	    "requests: [{path: /nothing-here}, {method: PUT, path: /ping}]\n");
	assert_true(r.total.codes[404] > 0 && r.total.codes[405] > 0);
	assert_int_equal(r.total.codes[404] + r.total.codes[405], r.total.responses);
	assert_int_equal(errors(&r), 0);
	vd_load_result_clear(&r);
	svc_stop(&s);
}

/* A pool of 2 keep-alive connections serves 100 arrivals; users that find
 * both busy wait for one. Chunked bodies are read to their end. */
static void
test_keep_alive_pool(void **state)
{
	struct svc s = svc_start("async", "1");
	struct vd_load_result r;

	(void)state;
	run(s.port, 1, &r,
	    "target: http://127.0.0.1:%d\nkeep_alive_pool: 2\n"
	    "phases: [{duration: 1s, arrival_rate: 100}]\n"
	    "requests: [{path: '/bytes?n=100000&chunked=1'}, {path: '/timeout?ms=20'}]\n");
	assert_int_equal(r.total.created, 100);
	assert_int_equal(r.total.responses, 100);
	assert_int_equal(r.total.codes[200], 100);
	assert_int_equal(errors(&r), 0);
	vd_load_result_clear(&r);
	svc_stop(&s);
}

/* The Artillery example runs unchanged but for its port; then vdctl load
 * and vdctl report as a user runs them. */
static void
test_cli_output_and_report(void **state)
{
	struct svc s = svc_start("async", "1");
	char vdctl[512];
	char prof[] = "/tmp/vd-test-load-XXXXXX", json[64], html[64];
	struct vt_result res;
	char *text = NULL, *at;
	size_t len = 0;
	FILE *f;
	int fd;

	(void)state;
	snprintf(vdctl, sizeof(vdctl), "%s", vt_env("VD_VDCTL_BIN", "build/vdctl"));
	f = fopen(vt_path("examples/load/artillery.yml"), "r");
	assert_non_null(f);
	assert_true(getdelim(&text, &len, '\0', f) > 0);
	fclose(f);
	at = strstr(text, "127.0.0.1:8080");
	assert_non_null(at);
	fd = mkstemp(prof);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	fprintf(f, "%.*s127.0.0.1:%d%s", (int)(at - text), text, s.port, at + 14);
	fclose(f);
	free(text);
	snprintf(json, sizeof(json), "%s.json", prof);
	snprintf(html, sizeof(html), "%s.html", prof);

	vt_run((char *[]){ vdctl, "load", "--report-every", "5s", "--output", json,
			   prof, NULL }, 120, &res);
	assert_int_equal(res.status, 0);
	assert_non_null(strstr(res.out, "Metrics for period to: 5s"));
	assert_non_null(strstr(res.out, "Summary report"));
	assert_non_null(strstr(res.out, "vusers.created: "));
	assert_non_null(strstr(res.out, "http.codes.200: "));
	assert_null(strstr(res.out, "errors."));
	vt_result_clear(&res);

	vt_run((char *[]){ vdctl, "report", json, "--html", html, NULL }, 30, &res);
	assert_int_equal(res.status, 0);
	vt_result_clear(&res);
	f = fopen(html, "r");
	assert_non_null(f);
	text = NULL;
	assert_true(getdelim(&text, &len, '\0', f) > 0);
	fclose(f);
	at = text;
	for (int i = 0; i < 3; i++) {
		at = strstr(at, "<svg");
		assert_non_null(at);
		at++;
	}
	assert_non_null(strstr(text, "Response time"));
	assert_null(strstr(text, "<script"));
	free(text);

	/* an unsupported key: exit 2, FILE:LINE:COL */
	f = fopen(prof, "w");
	fprintf(f, "config:\n  target: http://127.0.0.1:%d\n  phases: [{duration: 1, "
		"arrivalRate: 1}]\n  plugins: {}\nscenarios: [{flow: [{get: {url: /}}]}]\n",
		s.port);
	fclose(f);
	vt_run((char *[]){ vdctl, "load", prof, NULL }, 30, &res);
	assert_int_equal(res.status, 2);
	assert_non_null(strstr(res.err, ":4:3: 'config.plugins' is not supported"));
	vt_result_clear(&res);
	unlink(prof);
	unlink(json);
	unlink(html);
	svc_stop(&s);
}

/* vdctl report's page from a results file written here: three charts on
 * one time axis, a second without responses a gap in the response times
 * (not a fall to 0), the profile's name escaped; files that are not
 * results refused. */
static void
test_report_html(void **state)
{
	char json[] = "/tmp/vd-test-report-XXXXXX", html[64];
	struct vd_error err = VD_ERROR_INIT;
	char *text, *p95;
	FILE *f;
	int fd;

	(void)state;
	fd = mkstemp(json);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	fputs("{\"vdctl_load\": 1, \"profile\": \"<b>&load.yml\", \"model\": \"open\", "
	      "\"target\": \"http://127.0.0.1:1\", \"duration_s\": 4.0, "
	      "\"summary\": {\"requests\": 30, \"responses\": 25, \"codes\": {\"200\": 25}, "
	      "\"errors\": {}}, \"timeline\": [", f);
	for (int t = 1; t <= 4; t++)
		fprintf(f, "%s{\"t\": %d, \"users\": %d, \"created\": 5, \"responses\": %d, "
			"\"errors\": 0, \"response_time\": {\"median\": %d, \"p95\": %d, "
			"\"p99\": %d}}", t > 1 ? ", " : "", t, t, t == 3 ? 0 : 8, t == 3 ? 0 : 10,
			t == 3 ? 0 : 20, t == 3 ? 0 : 30);
	fputs("]}\n", f);
	fclose(f);
	snprintf(html, sizeof(html), "%s.html", json);

	assert_int_equal(vd_load_report_html(json, html, &err), 0);
	assert_non_null(text = vt_read_text(html));
	assert_int_equal(vt_count(text, "<svg "), 3);
	assert_int_equal(vt_count(text, "</svg>"), 3);
	assert_int_equal(vt_count(text, ">time (s)</text>"), 3);
	assert_non_null(strstr(text, ">Requests per second</text>"));
	assert_non_null(strstr(text, ">response time (ms)</text>"));
	assert_non_null(strstr(text, ">Users</text>"));
	assert_non_null(strstr(text, "&lt;b&gt;&amp;load.yml"));
	assert_null(strstr(text, "<b>"));
	assert_null(strstr(text, "<script"));
	assert_null(strstr(text, "nan"));
	/* p95's line: two runs, around second 3 */
	p95 = strstr(text, "stroke=\"#ff7f0e\" stroke-width");
	assert_non_null(p95);
	p95 = strstr(p95, " d=\"");
	assert_non_null(p95);
	assert_int_equal(vt_count(p95 + 4, "M") - vt_count(strchr(p95 + 4, '"'), "M"), 2);
	free(text);

	assert_int_equal(vd_load_report_html(html, html, &err), -1);
	assert_int_equal(err.code, VD_EXIT_INPUT);
	vd_error_clear(&err);
	f = fopen(json, "w");
	fputs("{\"timeline\": []}\n", f);
	fclose(f);
	assert_int_equal(vd_load_report_html(json, html, &err), -1);
	assert_int_equal(err.code, VD_EXIT_INPUT);
	assert_non_null(strstr(err.msg, "is not a results file"));
	unlink(json);
	unlink(html);
}

/* ========================================================= the commands */

/* Run vdctl with the arguments that follow, up to a NULL. */
static void
run_vdctl(struct vt_result *res, double timeout_s, ...)
{
	char *argv[24];
	const char *a;
	size_t n = 0;
	va_list ap;

	argv[n++] = strdup(vt_env("VD_VDCTL_BIN", "build/vdctl"));
	va_start(ap, timeout_s);
	while ((a = va_arg(ap, const char *)) && n < 23)
		argv[n++] = strdup(a);
	va_end(ap);
	argv[n] = NULL;
	vt_run(argv, timeout_s, res);
	for (size_t i = 0; i < n; i++)
		free(argv[i]);
}

/* A fresh directory under /tmp for one test's files; vt_rm_tree() it. */
static char *
tmpdir(void)
{
	char *d = strdup("/tmp/vd-test-loadgen-XXXXXX");

	assert_non_null(d);
	assert_non_null(mkdtemp(d));
	return d;
}

/* DIR/NAME in BUF; returns BUF. */
static char *
in_dir(char buf[static 256], const char *dir, const char *name)
{
	snprintf(buf, 256, "%s/%s", dir, name);
	return buf;
}

static void
write_file(const char *path, const char *fmt, ...)
{
	FILE *f = fopen(path, "w");
	va_list ap;

	assert_non_null(f);
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	assert_int_equal(fclose(f), 0);
}

static bool
exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* A results file as vdctl load --output writes them, two seconds long. */
static void
write_results(const char *path)
{
	write_file(path, "{\"vdctl_load\": 1, \"profile\": \"p.yml\", \"model\": \"open\", "
		   "\"target\": \"http://127.0.0.1:1\", \"duration_s\": 2.0, \"summary\": "
		   "{\"requests\": 2, \"responses\": 2, \"codes\": {\"200\": 2}, \"errors\": {}}, "
		   "\"timeline\": [{\"t\": 1, \"users\": 1, \"created\": 1, \"responses\": 1, "
		   "\"errors\": 0, \"response_time\": {\"median\": 1, \"p95\": 1, \"p99\": 1}}, "
		   "{\"t\": 2, \"users\": 1, \"created\": 1, \"responses\": 1, \"errors\": 0, "
		   "\"response_time\": {\"median\": 1, \"p95\": 1, \"p99\": 1}}]}\n");
}

/* vdctl report never writes over its input, whatever name reaches it: the
 * same path, ./, a symlink, a hard link. Exit 2, the results untouched. */
static void
test_report_never_overwrites_input(void **state)
{
	static const char *const names[] = { "r.json", "./r.json", "sym.html", "hard.html" };
	char *dir = tmpdir(), json[256], html[256], *before, *after;
	struct vt_result res;

	(void)state;
	in_dir(json, dir, "r.json");
	write_results(json);
	assert_non_null(before = vt_read_text(json));
	assert_int_equal(symlink(json, in_dir(html, dir, "sym.html")), 0);
	assert_int_equal(link(json, in_dir(html, dir, "hard.html")), 0);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		run_vdctl(&res, 30, "report", json, "--html", in_dir(html, dir, names[i]), NULL);
		assert_exit(&res, 2);
		assert_has(res.err, "it is the input file");
		vt_result_clear(&res);
		after = vt_read_text(json);
		assert_string_equal(after, before);
		free(after);
	}
	/* another file is written */
	run_vdctl(&res, 30, "report", json, "--html", in_dir(html, dir, "r.html"), NULL);
	assert_exit(&res, 0);
	vt_result_clear(&res);
	assert_non_null(after = vt_read_text(html));
	assert_non_null(strstr(after, "<svg"));
	free(after);
	free(before);
	vt_rm_tree(dir);
	free(dir);
}

/* vdctl report of a file that is not there says so, naming it: exit 2, and
 * no page is made. */
static void
test_report_missing_file(void **state)
{
	char *dir = tmpdir(), json[256], html[256], msg[600];
	struct vt_result res;

	(void)state;
	in_dir(json, dir, "missing.json");
	in_dir(html, dir, "out.html");
	run_vdctl(&res, 30, "report", json, "--html", html, NULL);
	assert_exit(&res, 2);
	snprintf(msg, sizeof(msg), "cannot read '%s': No such file or directory", json);
	assert_has(res.err, msg);
	assert_null(strstr(res.err, "line -1"));
	assert_false(exists(html));
	vt_result_clear(&res);
	vt_rm_tree(dir);
	free(dir);
}

/* vdctl load --output is checked before the load runs (this one would last
 * a minute): a missing directory, a directory, the profile itself are exit
 * 2 at once; a load that cannot start, and --check, leave no file behind. */
static void
test_load_output_checked_first(void **state)
{
	static const struct {
		const char *output, *says;
	} bad[] = {
		{ "missing/r.json", "No such file or directory" },
		{ "", "Is a directory" },
		{ "p.yaml", "it is the input file" },
	};
	char *dir = tmpdir(), prof[256], json[256], msg[600];
	struct vt_result res;

	(void)state;
	in_dir(prof, dir, "p.yaml");
	write_file(prof, "target: http://127.0.0.1:%d\nusers: 1\nduration: 1m\n"
		   "wait_time: 100ms\nrequests: [{path: /ping}]\n", vt_free_port());
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		in_dir(json, dir, bad[i].output);
		run_vdctl(&res, 20, "load", "--output", json, prof, NULL);
		assert_false(res.timed_out);
		assert_exit(&res, 2);
		snprintf(msg, sizeof(msg), "cannot write '%s': %s", json, bad[i].says);
		assert_has(res.err, msg);
		assert_true(res.secs < 10);
		assert_null(strstr(res.out, "Summary report"));
		vt_result_clear(&res);
	}
	in_dir(json, dir, "r.json");
	run_vdctl(&res, 20, "load", "--check", "--output", json, prof, NULL);
	assert_exit(&res, 0);
	assert_false(exists(json));
	vt_result_clear(&res);
	/* a target that cannot be resolved: the load does not start */
	run_vdctl(&res, 60, "load", "--allow-remote", "--target", "http://vdctl-test.invalid:1",
		  "--output", json, prof, NULL);
	assert_exit(&res, 2);
	assert_has(res.err, "cannot resolve 'vdctl-test.invalid'");
	assert_false(exists(json));
	vt_result_clear(&res);
	vt_rm_tree(dir);
	free(dir);
}

/* vdctl load --check writes every duration as vdctl writes durations
 * (vd_units_format_duration_ms), whatever units the file used, and rates as
 * so many a second. */
static void
test_check_durations(void **state)
{
	char *dir = tmpdir(), prof[256];
	struct vt_result res;

	(void)state;
	in_dir(prof, dir, "a.yml");
	write_file(prof, "config:\n  target: http://127.0.0.1:8080\n  http: {timeout: 2.5}\n"
		   "  phases:\n    - {duration: 90, arrivalRate: 2, rampTo: 4}\n"
		   "    - {pause: 0.5}\n    - {duration: 1.25, arrivalCount: 5}\n"
		   "scenarios:\n  - flow: [{get: {url: /a}}, {think: 0.25}, {get: {url: /b}},"
		   " {think: 61}]\n");
	run_vdctl(&res, 20, "load", "--check", prof, NULL);
	assert_exit(&res, 0);
	assert_has(res.out, ", target http://127.0.0.1:8080, 1m31s750ms\n");
	assert_has(res.out, "  timeout 2s500ms a request\n");
	assert_has(res.out, "  phase 1: 1m30s, 2 to 4 arrivals a second (constant)\n");
	assert_has(res.out, "  phase 2: 500ms, a pause\n");
	assert_has(res.out, "  phase 3: 1s250ms, 4 arrivals a second (constant)\n");
	assert_has(res.out, ": weight 1, 4 steps: GET /a, think 250ms, GET /b, think 1m1s\n");
	assert_null(strstr(res.out, "/s "));
	vt_result_clear(&res);

	in_dir(prof, dir, "c.yaml");
	write_file(prof, "target: http://127.0.0.1:8080\nusers: 3\nspawn_rate: 1.5\n"
		   "duration: 0.5\nwait_time: {min: 0.5, max: 1.5}\ntimeout: 500ms\n"
		   "requests: [{path: /}]\n");
	run_vdctl(&res, 20, "load", "--check", prof, NULL);
	assert_exit(&res, 0);
	assert_has(res.out, "closed model, target http://127.0.0.1:8080, 500ms\n");
	assert_has(res.out, "  timeout 500ms a request\n");
	assert_has(res.out, "  3 users, 1.5 started a second, each waiting 500ms to 1s500ms "
		   "after an answer\n");
	vt_result_clear(&res);
	vt_rm_tree(dir);
	free(dir);
}

/* The summary's "NAME: ....... VALUE" line's value, or -1. */
static long
summary_value(const char *text, const char *name)
{
	const char *at = strstr(text ? text : "", "Summary report");
	char key[64];

	snprintf(key, sizeof(key), "\n%s: ", name);
	if (!at || !(at = strstr(at, key)))
		return -1;
	at += strlen(key);
	at += strspn(at, ".");
	return strtol(at, NULL, 10);
}

/* The examples run as they are against any port: --target, --duration
 * (a closed run's length; open phases scaled in proportion), --rate (an
 * open profile of one phase); refused where they make no sense, exit 2. */
static void
test_load_overrides(void **state)
{
	static const char *const examples[] = { "examples/load/closed.yaml",
		"examples/load/open.yaml", "examples/load/artillery.yml" };
	static const struct {
		const char *opt, *value, *file, *says;
	} bad[] = {
		{ "--rate", "5", "examples/load/closed.yaml",
		  "--rate is for the open model, and '" },
		{ "--rate", "5", "examples/load/open.yaml",
		  "--rate sets the rate of a profile with one phase, and '" },
		{ "--rate", "0", "examples/load/open.yaml", "invalid --rate '0'" },
		{ "--rate", "-3", "examples/load/open.yaml", "invalid --rate '-3'" },
		{ "--rate", "fast", "examples/load/open.yaml", "invalid --rate 'fast'" },
		{ "--rate", "2000000", "examples/load/open.yaml", "invalid --rate '2000000'" },
		{ "--duration", "0s", "examples/load/open.yaml",
		  "invalid --duration '0s': must be more than 0" },
		{ "--duration", "30", "examples/load/open.yaml", "invalid --duration '30'" },
		{ "--duration", "soon", "examples/load/open.yaml", "invalid --duration 'soon'" },
		{ "--duration", "3ms", "examples/load/artillery.yml",
		  "has 4 phases, which need 1ms each at least" },
		{ "--target", "https://127.0.0.1:1", "examples/load/open.yaml",
		  "invalid --target 'https://127.0.0.1:1': https targets" },
		{ "--target", "127.0.0.1:8080", "examples/load/open.yaml",
		  "invalid --target '127.0.0.1:8080': expected http://HOST[:PORT][/PATH]" },
		{ "--target", "http://10.1.2.3:8080", "examples/load/open.yaml",
		  "--target 'http://10.1.2.3:8080' is not 127.0.0.1 or [::1]" },
	};
	struct svc s = svc_start("async", "1");
	char *dir = tmpdir(), target[64], prof[256], json[256];
	struct vt_result res;
	json_t *j;

	(void)state;
	snprintf(target, sizeof(target), "http://127.0.0.1:%d", s.port);
	in_dir(json, dir, "r.json");
	for (size_t i = 0; i < sizeof(examples) / sizeof(examples[0]); i++) {
		run_vdctl(&res, 60, "load", "--report-every", "0", "--target", target,
			  "--duration", "2s", "--output", json, vt_path(examples[i]), NULL);
		assert_exit(&res, 0);
		assert_has(res.out, target);
		assert_true(summary_value(res.out, "http.codes.200") > 0);
		assert_int_equal(summary_value(res.out, "http.responses"),
				 summary_value(res.out, "http.requests"));
		assert_null(strstr(res.out, "errors."));
		assert_true(res.secs < 30);
		vt_result_clear(&res);
		j = json_load_file(json, 0, NULL);
		assert_non_null(j);
		assert_string_equal(json_string_value(json_object_get(j, "target")), target);
		assert_true(json_number_value(json_object_get(j, "duration_s")) < 5);
		json_decref(j);
	}

	/* --rate: one phase ramping from 10 to 20 a second, run at 40 */
	in_dir(prof, dir, "one.yaml");
	write_file(prof, "target: http://127.0.0.1:1\n"
		   "phases: [{duration: 1s, arrival_rate: 10, ramp_to: 20}]\n"
		   "requests: [{path: /ping}]\n");
	run_vdctl(&res, 60, "load", "--report-every", "0", "--target", target, "--rate", "40",
		  prof, NULL);
	assert_exit(&res, 0);
	assert_has(res.out, "phase 1: 1s, 40 arrivals a second (constant)\n");
	assert_int_equal(summary_value(res.out, "vusers.created"), 40);
	assert_int_equal(summary_value(res.out, "http.codes.200"), 40);
	vt_result_clear(&res);

	/* refused, before anything is sent */
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		run_vdctl(&res, 20, "load", bad[i].opt, bad[i].value, vt_path(bad[i].file), NULL);
		if (res.status != 2 || !strstr(res.err, bad[i].says))
			fprintf(stderr, "vdctl load %s %s %s\n", bad[i].opt, bad[i].value,
				bad[i].file);
		assert_exit(&res, 2);
		assert_has(res.err, bad[i].says);
		assert_null(strstr(res.out, "Summary report"));
		vt_result_clear(&res);
	}
	run_vdctl(&res, 20, "load", "--help", NULL);
	assert_exit(&res, 0);
	assert_has(res.out, "--target URL");
	assert_has(res.out, "--duration DUR");
	assert_has(res.out, "--rate N");
	vt_result_clear(&res);
	vt_rm_tree(dir);
	free(dir);
	svc_stop(&s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_constant_rate),
		cmocka_unit_test(test_ramp_and_poisson),
		cmocka_unit_test(test_closed_users_and_waits),
		cmocka_unit_test(test_weights),
		cmocka_unit_test(test_percentiles_known_delay),
		cmocka_unit_test(test_latency_not_below_delay),
		cmocka_unit_test(test_no_coordinated_omission),
		cmocka_unit_test(test_errors_and_codes),
		cmocka_unit_test(test_keep_alive_pool),
		cmocka_unit_test(test_cli_output_and_report),
		cmocka_unit_test(test_report_html),
		cmocka_unit_test(test_report_never_overwrites_input),
		cmocka_unit_test(test_report_missing_file),
		cmocka_unit_test(test_load_output_checked_first),
		cmocka_unit_test(test_check_durations),
		cmocka_unit_test(test_load_overrides),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
