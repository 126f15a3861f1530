/*
 * The autoscaling simulator (orchestrator/autosim.c, autosim_input.c):
 * whole runs on synthetic loads under each policy (deterministic: the same
 * config gives the same numbers, so their ratios are not flaky), the
 * service-time models, reading CSV and results files, and the command's
 * refusals and JSON as `vdctl autoscale simulate` gives them.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vd/autosim.h"
#include "vdtest.h"

static char dir[] = "/tmp/vd-test-autosim-XXXXXX";

/* The bench's service: 100 ms a request, 2 at once, p95 under 300 ms,
 * 1 to 12 replicas; a queue timeout long enough that nothing is dropped. */
static void
config(struct vd_autosim_config *c, const double *rate, size_t n)
{
	vd_autosim_config_defaults(c);
	c->rate = rate;
	c->nsecs = n;
	c->service = (struct vd_autosim_service){ .dist = VD_AUTOSIM_DIST_FIXED, .mean_s = 0.1 };
	c->per_replica = 2;
	c->target_p95_ms = 300;
	c->min = 1;
	c->max = 12;
	c->queue_timeout_ms = 600000;
}

/* 10 -> 150 -> 10 req/s, 60 s each. */
static double step_rate[180];

static void
step_load(void)
{
	for (size_t i = 0; i < 180; i++)
		step_rate[i] = i >= 60 && i < 120 ? 150 : 10;
}

/* ------------------------------------------------------------- runs */

/* 10 req/s of 100 ms on 2 slots: one replica at half its capacity. */
static void
test_flat(void **state)
{
	static double rate[300];
	struct vd_autosim_config c;
	struct vd_autosim_result r;

	(void)state;
	for (size_t i = 0; i < 300; i++)
		rate[i] = 10;
	config(&c, rate, 300);
	assert_int_equal(vd_autosim_run(&c, VD_AUTOSIM_VDCTL, 0, &r, NULL), 0);
	assert_int_equal(r.requests, 3000);
	assert_int_equal(r.completed, 3000);
	assert_int_equal(r.seconds_over, 0);
	assert_int_equal(r.over, 0);
	assert_int_equal(r.dropped, 0);
	assert_int_equal(r.peak, 1);
	assert_int_equal(r.ups + r.downs, 0);
	for (size_t i = 0; i < 300; i++)
		assert_int_equal(r.replicas[i], 1);
	/* evenly spaced: no request waits, each answers in 100 ms */
	assert_true(fabs(r.p95_ms[100] - 100) < 0.01);
	assert_true(fabs(r.replica_seconds - 300) < 1e-6);
	assert_true(fabs(r.lowest - 300) < 1e-6);
	assert_int_equal(r.step, -1);
	vd_autosim_result_clear(&r);
	/* none of the others moves either */
	for (int p = VD_AUTOSIM_HPA; p <= VD_AUTOSIM_KPA; p++) {
		assert_int_equal(vd_autosim_run(&c, (enum vd_autosim_policy)p, 0, &r, NULL), 0);
		assert_int_equal(r.seconds_over, 0);
		assert_int_equal(r.peak, 1);
		vd_autosim_result_clear(&r);
	}
	assert_int_equal(vd_autosim_best_fixed(&c, &r, NULL), 0);
	assert_int_equal(r.fixed, 1);
	vd_autosim_result_clear(&r);
}

/* The bench's step: vdctl is back under the target within seconds, HPA
 * (15 s periods on a 15 s old metric that a saturated replica caps at
 * 100%) takes far longer; no request fails. The best fixed count serves
 * the 15 requests in service at the step's top (150 x 100 ms) on 2 slots
 * a replica: 8, which evenly spaced arrivals of a fixed service time never
 * make wait; 7 cannot. */
static void
test_step(void **state)
{
	struct vd_autosim_config c;
	struct vd_autosim_result v, h, k, f;

	(void)state;
	step_load();
	config(&c, step_rate, 180);
	assert_int_equal(vd_autosim_run(&c, VD_AUTOSIM_VDCTL, 0, &v, NULL), 0);
	assert_int_equal(vd_autosim_run(&c, VD_AUTOSIM_HPA, 0, &h, NULL), 0);
	assert_int_equal(vd_autosim_run(&c, VD_AUTOSIM_KPA, 0, &k, NULL), 0);
	assert_int_equal(vd_autosim_best_fixed(&c, &f, NULL), 0);
	assert_int_equal(v.step, 60);
	assert_int_equal(v.requests, 10200);
	assert_int_equal(v.completed, 10200);
	assert_int_equal(v.dropped, 0);
	assert_true(v.recover_s >= 1 && v.recover_s <= 8);
	assert_true(v.peak >= 8 && v.peak <= 12);
	assert_true(h.recover_s < 0 || h.recover_s >= 3 * v.recover_s);
	assert_true(h.seconds_over > 3 * v.seconds_over);
	assert_int_equal(h.dropped, 0);
	assert_true(k.recover_s >= 1 && k.recover_s < h.recover_s);
	assert_int_equal(f.fixed, 8);
	assert_int_equal(f.seconds_over, 0);
	assert_int_equal(f.ups + f.downs, 0);
	assert_true(fabs(f.replica_seconds - 180.0 * f.fixed) < 1e-6);
	vd_autosim_result_clear(&f);
	assert_int_equal(vd_autosim_run(&c, VD_AUTOSIM_FIXED, 7, &f, NULL), 0);
	assert_true(f.seconds_over > 50);
	vd_autosim_result_clear(&v);
	vd_autosim_result_clear(&h);
	vd_autosim_result_clear(&k);
	vd_autosim_result_clear(&f);
}

/* After the step, the long window brings vdctl back to one replica, a
 * cooldown a step (its p95 holds the count while the step's slow requests
 * are in the 120 s window); the removed replicas finish what they hold,
 * so no request fails. HPA's 300 s stabilization keeps its peak. */
static void
test_scale_down(void **state)
{
	static double rate[420];
	struct vd_autosim_config c;
	struct vd_autosim_result v, h;

	(void)state;
	for (size_t i = 0; i < 420; i++)
		rate[i] = i >= 60 && i < 120 ? 150 : 10;
	config(&c, rate, 420);
	c.queue_timeout_ms = 60000;
	assert_int_equal(vd_autosim_run(&c, VD_AUTOSIM_VDCTL, 0, &v, NULL), 0);
	assert_int_equal(vd_autosim_run(&c, VD_AUTOSIM_HPA, 0, &h, NULL), 0);
	assert_true(v.downs >= 1);
	assert_int_equal(v.replicas[419], 1);
	assert_int_equal(v.dropped, 0);
	assert_int_equal(v.completed, v.requests);
	for (size_t i = 120; i < 420; i++) /* never a second over for a scale-down */
		assert_false(v.over_s[i]);
	assert_true(v.replica_seconds < h.replica_seconds);
	assert_int_equal(h.replicas[419], 12);
	vd_autosim_result_clear(&v);
	vd_autosim_result_clear(&h);
}

/* The same config, the same numbers; Poisson arrivals differ by seed. */
static void
test_deterministic(void **state)
{
	struct vd_autosim_config c;
	struct vd_autosim_result a, b;

	(void)state;
	step_load();
	config(&c, step_rate, 180);
	c.poisson = true;
	c.service = (struct vd_autosim_service){ .dist = VD_AUTOSIM_DIST_EXP, .mean_s = 0.1 };
	assert_int_equal(vd_autosim_run(&c, VD_AUTOSIM_VDCTL, 0, &a, NULL), 0);
	assert_int_equal(vd_autosim_run(&c, VD_AUTOSIM_VDCTL, 0, &b, NULL), 0);
	assert_int_equal(a.requests, b.requests);
	assert_int_equal(a.over, b.over);
	assert_true(a.replica_seconds == b.replica_seconds);
	assert_memory_equal(a.replicas, b.replicas, 180 * sizeof(*a.replicas));
	/* about 10200 arrivals, not exactly */
	assert_true(a.requests > 9800 && a.requests < 10600);
	vd_autosim_result_clear(&b);
	c.seed = 2;
	assert_int_equal(vd_autosim_run(&c, VD_AUTOSIM_VDCTL, 0, &b, NULL), 0);
	assert_true(a.requests != b.requests || a.over != b.over);
	vd_autosim_result_clear(&a);
	vd_autosim_result_clear(&b);
	/* bursts within a second need headroom that even spacing does not */
	c.service = (struct vd_autosim_service){ .dist = VD_AUTOSIM_DIST_FIXED, .mean_s = 0.1 };
	assert_int_equal(vd_autosim_best_fixed(&c, &a, NULL), 0);
	assert_true(a.fixed > 8);
	vd_autosim_result_clear(&a);
}

/* Too little capacity and a short queue timeout: requests are dropped
 * (504s), and count as over the target. */
static void
test_dropped(void **state)
{
	static double rate[60];
	struct vd_autosim_config c;
	struct vd_autosim_result r;

	(void)state;
	for (size_t i = 0; i < 60; i++)
		rate[i] = 40; /* twice what one replica serves */
	config(&c, rate, 60);
	c.queue_timeout_ms = 1000;
	assert_int_equal(vd_autosim_run(&c, VD_AUTOSIM_FIXED, 1, &r, NULL), 0);
	assert_true(r.dropped > 1000);
	assert_int_equal(r.requests, r.completed + r.dropped);
	assert_true(r.over >= r.dropped);
	assert_true(r.seconds_over >= 55);
	vd_autosim_result_clear(&r);
}

/* A start delay is waited for: a replica asked for serves that much later. */
static void
test_start_delay(void **state)
{
	struct vd_autosim_config c;
	struct vd_autosim_result fast, slow;

	(void)state;
	step_load();
	config(&c, step_rate, 180);
	c.start_delay_ms = 0;
	assert_int_equal(vd_autosim_run(&c, VD_AUTOSIM_VDCTL, 0, &fast, NULL), 0);
	c.start_delay_ms = 10000;
	assert_int_equal(vd_autosim_run(&c, VD_AUTOSIM_VDCTL, 0, &slow, NULL), 0);
	assert_true(slow.recover_s > fast.recover_s);
	assert_true(slow.over > fast.over);
	vd_autosim_result_clear(&fast);
	vd_autosim_result_clear(&slow);
}

static void
test_check(void **state)
{
	static double rate[2] = { 1, 1 };
	struct vd_autosim_config c;
	struct vd_error err = VD_ERROR_INIT;

	(void)state;
	config(&c, rate, 2);
	assert_int_equal(vd_autosim_check(&c, &err), 0);
	c.min = 5;
	c.max = 3;
	assert_int_equal(vd_autosim_check(&c, &err), -1);
	assert_int_equal(err.code, VD_EXIT_INPUT);
	assert_string_equal(err.msg, "min 5 is more than max 3");
	config(&c, rate, 2);
	c.target_p95_ms = 0;
	assert_int_equal(vd_autosim_check(&c, &err), -1);
	assert_has(err.msg, "target_p95");
	config(&c, rate, 0);
	assert_int_equal(vd_autosim_check(&c, &err), -1);
	assert_string_equal(err.msg, "no second of load to simulate");
}

static void
test_needed_and_step(void **state)
{
	struct vd_autosim_config c;
	double from, to;

	(void)state;
	step_load();
	config(&c, step_rate, 180);
	/* the bench's lowest possible: ceil(rate / 14) */
	assert_int_equal(vd_autosim_needed(&c, 150), 11);
	assert_int_equal(vd_autosim_needed(&c, 14), 1);
	assert_int_equal(vd_autosim_needed(&c, 14.1), 2);
	assert_int_equal(vd_autosim_needed(&c, 0), 1); /* min */
	assert_int_equal(vd_autosim_step(step_rate, 180, &from, &to), 60);
	assert_true(from == 10 && to == 150);
	assert_int_equal(vd_autosim_step(step_rate, 60, NULL, NULL), -1);
}

/* ------------------------------------------------------ service time */

static void
test_service(void **state)
{
	struct vd_autosim_service s;
	struct vd_error err = VD_ERROR_INIT;
	char buf[128];

	(void)state;
	assert_int_equal(vd_autosim_service_parse("100ms", &s, &err), 0);
	assert_int_equal(s.dist, VD_AUTOSIM_DIST_FIXED);
	assert_true(fabs(vd_autosim_service_mean(&s) - 0.1) < 1e-12);
	assert_string_equal(vd_autosim_service_format(&s, buf, sizeof(buf)), "100ms");
	assert_int_equal(vd_autosim_service_parse("exp:1s500ms", &s, &err), 0);
	assert_int_equal(s.dist, VD_AUTOSIM_DIST_EXP);
	assert_string_equal(vd_autosim_service_format(&s, buf, sizeof(buf)),
			    "exponential, mean 1s500ms");
	assert_int_equal(vd_autosim_service_parse("p0=50ms,p50=100ms,p100=150ms", &s, &err), 0);
	assert_int_equal(s.dist, VD_AUTOSIM_DIST_QUANTILES);
	assert_int_equal(s.nq, 3);
	assert_true(fabs(vd_autosim_service_mean(&s) - 0.1) < 1e-12);
	assert_string_equal(vd_autosim_service_format(&s, buf, sizeof(buf)),
			    "p0 50ms, p50 100ms, p100 150ms (mean 100ms)");
	/* flat beyond the last quantile given */
	assert_int_equal(vd_autosim_service_parse("p50=100ms,p90=200ms", &s, &err), 0);
	assert_true(fabs(vd_autosim_service_mean(&s) - (0.05 + 0.06 + 0.02)) < 1e-12);

	assert_int_equal(vd_autosim_service_parse("100", &s, &err), -1);
	assert_int_equal(err.code, VD_EXIT_INPUT);
	assert_int_equal(vd_autosim_service_parse("0ms", &s, &err), -1);
	assert_int_equal(vd_autosim_service_parse("exp:", &s, &err), -1);
	assert_int_equal(vd_autosim_service_parse("p95=100ms,p50=200ms", &s, &err), -1);
	assert_has(err.msg, "quantiles must go up");
	assert_int_equal(vd_autosim_service_parse("p50=200ms,p95=100ms", &s, &err), -1);
	assert_has(err.msg, "less than the quantile before it");
	assert_int_equal(vd_autosim_service_parse("p101=1s", &s, &err), -1);
	assert_int_equal(vd_autosim_service_parse("p50=1s,", &s, &err), -1);
}

/* Quantiles are drawn from: the run's p95 is about the p95 given. */
static void
test_service_quantiles_run(void **state)
{
	static double rate[100];
	struct vd_autosim_config c;
	struct vd_autosim_result r;
	struct vd_error err = VD_ERROR_INIT;

	(void)state;
	for (size_t i = 0; i < 100; i++)
		rate[i] = 5;
	config(&c, rate, 100);
	c.per_replica = 100; /* no waiting: response time is service time */
	assert_int_equal(vd_autosim_service_parse("p0=10ms,p50=100ms,p95=200ms,p100=400ms",
						  &c.service, &err),
			 0);
	c.target_p95_ms = 180;
	assert_int_equal(vd_autosim_run(&c, VD_AUTOSIM_FIXED, 1, &r, NULL), 0);
	/* 180 ms is 80% of the way from p50 to p95: 14% of 500 are over it */
	assert_true(r.over > 50 && r.over < 90);
	vd_autosim_result_clear(&r);
}

/* ----------------------------------------------------------- input */

static int
csv(const char *text, struct vd_autosim_trace *t, struct vd_error *err)
{
	return vd_autosim_trace_parse_csv("t.csv", text, strlen(text), t, err);
}

static void
test_csv(void **state)
{
	struct vd_autosim_trace t;
	struct vd_error err = VD_ERROR_INIT;

	(void)state;
	assert_int_equal(csv("second,requests_per_second\n0,10\n1,12.5\r\n2, 0\n", &t, &err), 0);
	assert_int_equal(t.nsecs, 3);
	assert_true(t.rate[0] == 10 && t.rate[1] == 12.5 && t.rate[2] == 0);
	assert_false(t.has_service);
	vd_autosim_trace_clear(&t);
	/* one number a line, comments and blank lines, no final newline */
	assert_int_equal(csv("# rate\n\n10\n  20\n30", &t, &err), 0);
	assert_int_equal(t.nsecs, 3);
	assert_true(t.rate[2] == 30);
	vd_autosim_trace_clear(&t);
	/* seconds from any start, e.g. a Unix time */
	assert_int_equal(csv("1700000000,5\n1700000001,6\n", &t, &err), 0);
	assert_int_equal(t.nsecs, 2);
	vd_autosim_trace_clear(&t);

	assert_int_equal(csv("0,10\n2,10\n", &t, &err), -1);
	assert_int_equal(err.code, VD_EXIT_INPUT);
	assert_string_equal(err.msg, "t.csv:2: second 2 after 0 (seconds follow one another)");
	assert_null(t.rate);
	assert_int_equal(csv("10\n-1\n", &t, &err), -1);
	assert_string_equal(err.msg, "t.csv:2: rate -1 is not from 0 to 1e+06");
	assert_int_equal(csv("10\nten\n", &t, &err), -1);
	assert_string_equal(err.msg, "t.csv:2: 'ten' is not SECOND,RATE or RATE");
	assert_int_equal(csv("0,10\n5\n", &t, &err), -1);
	assert_string_equal(err.msg, "t.csv:2: 1 column here, 2 before");
	assert_int_equal(csv("0,10,3\n", &t, &err), -1);
	assert_has(err.msg, "t.csv:1: more than 2 columns");
	assert_int_equal(csv("0.5,10\n", &t, &err), -1);
	assert_has(err.msg, "is not a whole number");
	assert_int_equal(csv("rate\n# nothing\n", &t, &err), -1);
	assert_string_equal(err.msg, "t.csv: no second of load in it");
	assert_int_equal(csv("", &t, &err), -1);
	assert_int_equal(csv("10\nnan\n", &t, &err), -1);
}

static char *
write_file(const char *name, const char *text)
{
	static char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static void
test_results(void **state)
{
	struct vd_autosim_trace t;
	struct vd_error err = VD_ERROR_INIT;
	char *path;

	(void)state;
	/* three seconds as `vdctl load --output` writes them; the third had
	 * no response */
	path = write_file(
		"r.json",
		"{\"vdctl_load\": 1, \"profile\": \"p.yaml\", \"summary\": {}, \"timeline\": [\n"
		" {\"t\": 1, \"requests\": 10, \"responses\": 10, \"response_time\": {\"min\": 100,"
		" \"median\": 101, \"p95\": 110, \"p99\": 120, \"max\": 130, \"mean\": 102}},\n"
		" {\"t\": 2, \"requests\": 150, \"responses\": 140, \"response_time\": {\"min\": 100,"
		" \"median\": 103, \"p95\": 400, \"p99\": 900, \"max\": 950, \"mean\": 150}},\n"
		" {\"t\": 3, \"requests\": 12, \"responses\": 0, \"response_time\": {\"min\": 0,"
		" \"median\": 0, \"p95\": 0, \"p99\": 0, \"max\": 0, \"mean\": 0}}]}\n");
	assert_int_equal(vd_autosim_trace_read_results(path, &t, &err), 0);
	assert_int_equal(t.nsecs, 3);
	assert_true(t.rate[0] == 10 && t.rate[1] == 150 && t.rate[2] == 12);
	/* the hint: the median over the seconds with responses of each */
	assert_true(t.has_service);
	assert_int_equal(t.service.dist, VD_AUTOSIM_DIST_QUANTILES);
	assert_int_equal(t.service.nq, 4);
	assert_true(fabs(t.service.q[1] - 0.5) < 1e-12);
	assert_true(fabs(t.service.value_s[0] - 0.100) < 1e-9);
	assert_true(fabs(t.service.value_s[1] - 0.102) < 1e-9);
	assert_true(fabs(t.service.value_s[2] - 0.255) < 1e-9);
	vd_autosim_trace_clear(&t);

	path = write_file("other.json", "{\"timeline\": []}\n");
	assert_int_equal(vd_autosim_trace_read_results(path, &t, &err), -1);
	assert_int_equal(err.code, VD_EXIT_INPUT);
	assert_has(err.msg, "is not a results file of vdctl load --output");
	path = write_file("bad.json", "{\"vdctl_load\": 1, \"timeline\": [{\"t\": 1}]}\n");
	assert_int_equal(vd_autosim_trace_read_results(path, &t, &err), -1);
	assert_has(err.msg, "timeline[0]: no requests");
	path = write_file("broken.json", "{\"vdctl_load\": 1,\n");
	assert_int_equal(vd_autosim_trace_read_results(path, &t, &err), -1);
	assert_has(err.msg, "cannot read");
	assert_int_equal(vd_autosim_trace_read_csv("/nonexistent/x.csv", &t, &err), -1);
	assert_int_equal(err.code, VD_EXIT_INPUT);
	assert_string_equal(err.msg, "cannot read '/nonexistent/x.csv': No such file or directory");
	assert_int_equal(vd_autosim_trace_read_csv(dir, &t, &err), -1);
	assert_int_equal(err.code, VD_EXIT_INPUT);
}

/* ----------------------------------------------------- the command */

static void
vdctl(struct vt_result *r, char **args)
{
	static char bin[4096];
	char *argv[32];
	size_t n = 0;

	snprintf(bin, sizeof(bin), "%s", vt_env("VD_VDCTL_BIN", "build/vdctl"));
	argv[n++] = bin;
	while (*args && n < 31)
		argv[n++] = *args++;
	argv[n] = NULL;
	assert_int_equal(vt_run(argv, 60, r) < 0 ? -1 : 0, 0);
}

static void
test_command(void **state)
{
	char csvp[4096], html[4096 + 16];
	struct vt_result r;
	json_error_t je;
	json_t *j, *res;
	FILE *f;

	(void)state;
	snprintf(csvp, sizeof(csvp), "%s/step.csv", dir);
	snprintf(html, sizeof(html), "%s/step.html", dir);
	f = fopen(csvp, "w");
	assert_non_null(f);
	fputs("second,rps\n", f);
	for (int i = 0; i < 180; i++)
		fprintf(f, "%d,%d\n", i, i >= 60 && i < 120 ? 150 : 10);
	fclose(f);

	vdctl(&r, (char *[]){ "autoscale", "simulate", "--csv", csvp, "--service-time", "100ms",
			      "--per-replica", "2", "--target-p95", "300ms", "--max", "12",
			      "--json", "--html", html, NULL });
	assert_exit(&r, 0);
	j = json_loads(r.out, 0, &je);
	assert_non_null(j);
	res = json_object_get(j, "results");
	assert_int_equal(json_array_size(res), 4);
	assert_string_equal(json_string_value(json_object_get(json_array_get(res, 0), "policy")),
			    "vdctl");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(res, 3), "fixed")), 8);
	assert_int_equal(json_array_size(json_object_get(json_array_get(res, 1), "p95_ms")), 180);
	json_decref(j);
	vt_result_clear(&r);
	assert_int_equal(access(html, R_OK), 0);

	/* the table, with some policies */
	vdctl(&r, (char *[]){ "autoscale", "simulate", "--csv", csvp, "--service-time", "100ms",
			      "--per-replica", "2", "--target-p95", "300ms", "--max", "12",
			      "--policies", "vdctl,fixed", NULL });
	assert_exit(&r, 0);
	assert_has(r.out, "POLICY");
	assert_has(r.out, "\nvdctl ");
	assert_has(r.out, "\nfixed 8 ");
	assert_null(strstr(r.out, "\nhpa "));
	vt_result_clear(&r);

	/* mistakes: exit 2, and nothing written */
	unlink(html);
	vdctl(&r, (char *[]){ "autoscale", "simulate", "--csv", csvp, "--service-time", "100ms",
			      "--html", html, NULL });
	assert_exit(&r, 2);
	assert_has(r.err, "no --target-p95 given");
	vt_result_clear(&r);
	assert_int_equal(access(html, F_OK), -1);
	vdctl(&r,
	      (char *[]){ "autoscale", "simulate", "--csv", csvp, "--target-p95", "300ms", NULL });
	assert_exit(&r, 2);
	assert_has(r.err, "no --service-time given");
	vt_result_clear(&r);
	vdctl(&r, (char *[]){ "autoscale", "simulate", "--csv", csvp, "--target-p95", "300ms",
			      "--service-time", "100ms", "--min", "5", "--max", "3", NULL });
	assert_exit(&r, 2);
	assert_has(r.err, "min 5 is more than max 3");
	vt_result_clear(&r);
	vdctl(&r, (char *[]){ "autoscale", "simulate", "--csv", csvp, "--target-p95", "300ms",
			      "--service-time", "100ms", "--policies", "vdctl,k8s", NULL });
	assert_exit(&r, 2);
	assert_has(r.err, "unknown policy 'k8s'");
	vt_result_clear(&r);
	vdctl(&r, (char *[]){ "autoscale", "simulate", "--csv", csvp, "--target-p95", "300ms",
			      "--service-time", "100ms", "--html", csvp, NULL });
	assert_exit(&r, 2);
	assert_has(r.err, "it is the input file");
	vt_result_clear(&r);
	vdctl(&r, (char *[]){ "autoscale", "simulate", "--target-p95", "300ms", NULL });
	assert_exit(&r, 2);
	assert_has(r.err, "no input: give --from RESULTS.json or --csv FILE");
	vt_result_clear(&r);
	vdctl(&r, (char *[]){ "autoscale", "simulate", "--csv", "/nonexistent.csv", "--target-p95",
			      "300ms", "--service-time", "100ms", NULL });
	assert_exit(&r, 2);
	assert_has(r.err, "cannot read '/nonexistent.csv'");
	vt_result_clear(&r);
	vdctl(&r, (char *[]){ "autoscale", "simulate", "--csv", csvp, "--target-p95", "300",
			      "--service-time", "100ms", NULL });
	assert_exit(&r, 2);
	assert_has(r.err, "invalid --target-p95 '300'");
	vt_result_clear(&r);
	vdctl(&r, (char *[]){ "autoscale", "simulat", NULL });
	assert_exit(&r, 2);
	assert_has(r.err, "unknown subcommand 'simulat'");
	vt_result_clear(&r);
	vdctl(&r, (char *[]){ "autoscale", "--help", NULL });
	assert_exit(&r, 0);
	assert_has(r.out, "simulate");
	vt_result_clear(&r);
}

static int
group_setup(void **state)
{
	(void)state;
	return mkdtemp(dir) ? 0 : -1;
}

static int
group_teardown(void **state)
{
	(void)state;
	vt_rm_tree(dir);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_flat),       cmocka_unit_test(test_step),
		cmocka_unit_test(test_scale_down), cmocka_unit_test(test_deterministic),
		cmocka_unit_test(test_dropped),    cmocka_unit_test(test_start_delay),
		cmocka_unit_test(test_check),      cmocka_unit_test(test_needed_and_step),
		cmocka_unit_test(test_service),    cmocka_unit_test(test_service_quantiles_run),
		cmocka_unit_test(test_csv),        cmocka_unit_test(test_results),
		cmocka_unit_test(test_command),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
