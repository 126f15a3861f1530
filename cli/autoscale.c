/*
 * vdctl autoscale SUBCOMMAND: the autoscaler's tools. `simulate` replays a
 * recorded load (a results file of `vdctl load --output`, or a CSV of
 * requests a second) through a model of one service under vdctl's policy,
 * models of Kubernetes' HPA and Knative's KPA, and the best fixed replica
 * count, and prints their figures side by side (vd/autosim.h).
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "vd/autosim.h"
#include "vd/file.h"
#include "vd/loadgen.h" /* vd_load_output_check() */
#include "vd/units.h"

#define CMD "autoscale simulate"

static const char usage[] =
	"usage: vdctl autoscale SUBCOMMAND [ARGS...]\n"
	"\n"
	"The autoscaler's tools.\n"
	"\n"
	"subcommands:\n"
	"   simulate     replay a recorded load under vdctl's policy, HPA, KPA and\n"
	"                fixed replica counts, and compare them\n"
	"\n"
	"'vdctl autoscale SUBCOMMAND --help' tells more.\n";

static const char simulate_usage[] =
	"usage: vdctl autoscale simulate [options] (--from RESULTS.json | --csv FILE)\n"
	"\n"
	"Replay a recorded arrival timeline through a queueing model of one service\n"
	"(replicas serving N requests at once behind one FIFO queue, new replicas\n"
	"serving after a start delay) under vdctl's autoscaling policy, models of\n"
	"Kubernetes' HPA and Knative's KPA, and the best fixed replica count. Print\n"
	"for each: seconds over the latency target, requests over it, dropped\n"
	"requests, replica-seconds against the lowest possible, peak replicas, and\n"
	"the time from the load's biggest rise until p95 is under the target for 5 s.\n"
	"\n"
	"input (one of):\n"
	"   --from FILE           results of `vdctl load --output`: requests a second\n"
	"                         are the arrivals; its response times are the service\n"
	"                         time unless --service-time is given\n"
	"   --csv FILE            lines of SECOND,RATE or RATE (requests a second);\n"
	"                         a header line is allowed\n"
	"\n"
	"the service:\n"
	"   --service-time DIST   100ms (fixed), exp:100ms (exponential with that mean)\n"
	"                         or quantiles p50=80ms,p95=150ms,p99=300ms\n"
	"   --per-replica N       requests a replica serves at once (1)\n"
	"   --start-delay DUR     from a replica asked for to serving (500ms)\n"
	"   --queue-timeout DUR   a request waiting longer is answered 504 (60s)\n"
	"   --manifest FILE       take the autoscale keys (target_p95, target_queue,\n"
	"   --service NAME        min, max, windows, cooldowns, tolerance, utilisation),\n"
	"                         balancer.max_inflight (as --per-replica) and\n"
	"                         queue_timeout from service NAME in FILE (NAME may be\n"
	"                         left out when FILE has one service); options given\n"
	"                         override them\n"
	"\n"
	"the policies:\n"
	"   --target-p95 DUR      the latency target (required without --manifest)\n"
	"   --min N, --max N      replicas (1, 10)\n"
	"   --initial N           replicas ready at the start (min, 1 at least)\n"
	"   --utilisation X       of a replica's slots: vdctl's, HPA's, KPA's target (0.7)\n"
	"   --tolerance X         vdctl's (0.1)\n"
	"   --target-queue N      vdctl's queue guard: requests queued a replica (off)\n"
	"   --up-window DUR       vdctl's windows (10s, 120s)\n"
	"   --down-window DUR\n"
	"   --up-cooldown DUR     vdctl's cooldowns (0s, 30s)\n"
	"   --down-cooldown DUR\n"
	"   --hpa-lag DUR         how old the metric HPA reads is (15s)\n"
	"   --policies LIST       of vdctl, hpa, kpa, fixed (all of them)\n"
	"\n"
	"the run and its output:\n"
	"   --arrivals KIND       even (spread evenly in each second) or poisson (even)\n"
	"   --seed N              for poisson arrivals and random service times (1)\n"
	"   --json                print JSON, with per-second series, not the table\n"
	"   --html FILE           also write a page of charts: load, replicas, p95\n"
	"   -h, --help            show this help\n"
	"\n"
	"exit status: 0 done, 1 it could not run, 2 invalid input or options\n";

enum {
	O_FROM = 1,
	O_CSV,
	O_SERVICE_TIME,
	O_PER_REPLICA,
	O_START_DELAY,
	O_QUEUE_TIMEOUT,
	O_MANIFEST,
	O_SERVICE,
	O_TARGET_P95,
	O_MIN,
	O_MAX,
	O_INITIAL,
	O_UTILISATION,
	O_TOLERANCE,
	O_TARGET_QUEUE,
	O_UP_WINDOW,
	O_DOWN_WINDOW,
	O_UP_COOLDOWN,
	O_DOWN_COOLDOWN,
	O_HPA_LAG,
	O_POLICIES,
	O_ARRIVALS,
	O_SEED,
	O_JSON,
	O_HTML,
	O_N
};

static const struct option options[] = {
	{ "from", required_argument, NULL, O_FROM },
	{ "csv", required_argument, NULL, O_CSV },
	{ "service-time", required_argument, NULL, O_SERVICE_TIME },
	{ "per-replica", required_argument, NULL, O_PER_REPLICA },
	{ "start-delay", required_argument, NULL, O_START_DELAY },
	{ "queue-timeout", required_argument, NULL, O_QUEUE_TIMEOUT },
	{ "manifest", required_argument, NULL, O_MANIFEST },
	{ "service", required_argument, NULL, O_SERVICE },
	{ "target-p95", required_argument, NULL, O_TARGET_P95 },
	{ "min", required_argument, NULL, O_MIN },
	{ "max", required_argument, NULL, O_MAX },
	{ "initial", required_argument, NULL, O_INITIAL },
	{ "utilisation", required_argument, NULL, O_UTILISATION },
	{ "utilization", required_argument, NULL, O_UTILISATION },
	{ "tolerance", required_argument, NULL, O_TOLERANCE },
	{ "target-queue", required_argument, NULL, O_TARGET_QUEUE },
	{ "up-window", required_argument, NULL, O_UP_WINDOW },
	{ "down-window", required_argument, NULL, O_DOWN_WINDOW },
	{ "up-cooldown", required_argument, NULL, O_UP_COOLDOWN },
	{ "down-cooldown", required_argument, NULL, O_DOWN_COOLDOWN },
	{ "hpa-lag", required_argument, NULL, O_HPA_LAG },
	{ "policies", required_argument, NULL, O_POLICIES },
	{ "arrivals", required_argument, NULL, O_ARRIVALS },
	{ "seed", required_argument, NULL, O_SEED },
	{ "json", no_argument, NULL, O_JSON },
	{ "html", required_argument, NULL, O_HTML },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* The option's name as typed: "--per-replica". */
static const char *
opt_name(int id)
{
	for (const struct option *o = options; o->name; o++)
		if (o->val == id)
			return o->name;
	return "?";
}

/* ========================================================== values */

static int
duration_opt(int id, const char *v, int64_t lo, int64_t *out, struct vd_error *err)
{
	struct vd_error why = VD_ERROR_INIT;
	int64_t ms;

	if (vd_units_parse_duration_ms(v, &ms, &why) < 0)
		return cli_usage_error(err, CMD, "invalid --%s '%s': %s", opt_name(id), v, why.msg);
	if (ms < lo || ms > 3600 * 1000)
		return cli_usage_error(err, CMD, "invalid --%s '%s': must be %s and at most 1h",
				       opt_name(id), v, lo ? "more than 0" : "0 or more");
	*out = ms;
	return 0;
}

static int
int_opt(int id, const char *v, int64_t lo, int64_t hi, int *out, struct vd_error *err)
{
	struct vd_error why = VD_ERROR_INIT;
	int64_t n;

	if (vd_units_parse_int64(v, lo, hi, &n, &why) < 0)
		return cli_usage_error(err, CMD, "invalid --%s '%s': %s", opt_name(id), v, why.msg);
	*out = (int)n;
	return 0;
}

/* A number in [lo, hi] (lo itself only when LO_OK, hi itself only when HI_OK). */
static int
number_opt(int id, const char *v, double lo, bool lo_ok, double hi, bool hi_ok, double *out,
	   struct vd_error *err)
{
	char *end;
	double x;

	errno = 0;
	x = strtod(v, &end);
	if (end == v || *end || errno || !isfinite(x) || x < lo || (x == lo && !lo_ok) || x > hi ||
	    (x == hi && !hi_ok))
		return cli_usage_error(err, CMD,
				       "invalid --%s '%s': expected a number %s %g and "
				       "%s %g",
				       opt_name(id), v, lo_ok ? "from" : "more than", lo,
				       hi_ok ? "at most" : "below", hi);
	*out = x;
	return 0;
}

/* --policies: which to run, in the order given. */
static int
policies_opt(const char *v, int *list, size_t *n, struct vd_error *err)
{
	const char *p = v;

	*n = 0;
	while (*p) {
		size_t len = strcspn(p, ",");
		bool dup = false;
		char name[16];
		int k;

		snprintf(name, sizeof(name), "%.*s", (int)(len < sizeof(name) ? len : 15), p);
		if (len >= sizeof(name) || (k = vd_autosim_policy_parse(name)) < 0)
			return cli_usage_error(err, CMD,
					       "invalid --policies: unknown policy '%.*s' "
					       "(vdctl, hpa, kpa, fixed)",
					       (int)len, p);
		for (size_t i = 0; i < *n; i++)
			dup |= list[i] == k;
		if (!dup)
			list[(*n)++] = k;
		p += len;
		if (*p == ',')
			p++;
	}
	if (!*n)
		return cli_usage_error(err, CMD, "invalid --policies '%s': no policy in it", v);
	return 0;
}

/* ======================================================== the manifest */

/* What service NAME (or the one service) of the manifest FILE says. */
static int
from_manifest(char *file, const char *name, struct vd_autosim_config *c, struct vd_error *err)
{
	char *const paths[] = { file };
	struct vd_manifest *m = NULL;
	const struct vd_service *s;

	if (cli_load(paths, 1, &m, err) < 0)
		return -1;
	if (name) {
		s = vd_manifest_find(m, name);
		if (!s) {
			vd_manifest_free(m);
			return vd_error_set(err, VD_EXIT_INPUT, "no service '%s' in '%s'", name,
					    file);
		}
	} else if (m->nservices != 1) {
		vd_manifest_free(m);
		return cli_usage_error(err, CMD, "'%s' has %zu services: say which with --service",
				       file, m->nservices);
	} else {
		s = &m->services[0];
	}
	if (s->autoscale.enabled) {
		c->min = s->autoscale.min;
		c->max = s->autoscale.max;
		c->target_p95_ms = s->autoscale.target_p95_ms;
		c->target_queue = s->autoscale.target_queue;
		c->up_window_ms = s->autoscale.up_window_ms;
		c->down_window_ms = s->autoscale.down_window_ms;
		/* cooldown: before a scale-down, after any change */
		c->down_cooldown_ms = s->autoscale.cooldown_ms;
		c->up_cooldown_ms = s->autoscale.up_cooldown_ms;
		c->tolerance = s->autoscale.tolerance;
		c->utilisation = s->autoscale.utilisation;
	}
	if (s->balancer.enabled) {
		if (s->balancer.max_inflight > 0)
			c->per_replica = s->balancer.max_inflight;
		c->queue_timeout_ms = s->balancer.queue_timeout_ms;
	}
	vd_manifest_free(m);
	return 0;
}

/* ============================================================= output */

static int
write_html(const char *path, const struct vd_autosim_config *c,
	   const struct vd_autosim_about *about, const struct vd_autosim_result *r, size_t n,
	   struct vd_error *err)
{
	struct vd_strbuf b = VD_STRBUF_INIT;
	int ret;

	vd_autosim_html(&b, c, about, r, n);
	if (vd_strbuf_failed(&b)) {
		vd_strbuf_free(&b);
		return vd_error_errno(err, ENOMEM, "cannot make the page");
	}
	ret = vd_file_write_atomic(path, b.s, b.len, err);
	vd_strbuf_free(&b);
	return ret;
}

static int
print_json(const struct vd_autosim_config *c, const struct vd_autosim_about *about,
	   const struct vd_autosim_result *r, size_t n, struct vd_error *err)
{
	json_t *root = vd_autosim_json(c, about, r, n);
	int ret;

	if (!root)
		return vd_error_errno(err, ENOMEM, "cannot print the results");
	ret = json_dumpf(root, stdout, JSON_COMPACT | JSON_REAL_PRECISION(10));
	json_decref(root);
	if (ret < 0 || fputc('\n', stdout) == EOF)
		return vd_error_errno(err, errno ? errno : EIO, "cannot print the results");
	return 0;
}

/* ============================================================ simulate */

/* The options given, last one wins; applied after the manifest's. */
static int
apply(char *const *val, struct vd_autosim_config *c, struct vd_error *err)
{
	if (val[O_SERVICE_TIME]) {
		struct vd_error why = VD_ERROR_INIT;

		if (vd_autosim_service_parse(val[O_SERVICE_TIME], &c->service, &why) < 0)
			return cli_usage_error(err, CMD, "invalid --service-time: %s", why.msg);
	}
	if ((val[O_PER_REPLICA] &&
	     int_opt(O_PER_REPLICA, val[O_PER_REPLICA], 1, 100000, &c->per_replica, err) < 0) ||
	    (val[O_MIN] &&
	     int_opt(O_MIN, val[O_MIN], 0, VD_AUTOSIM_MAX_REPLICAS, &c->min, err) < 0) ||
	    (val[O_MAX] &&
	     int_opt(O_MAX, val[O_MAX], 1, VD_AUTOSIM_MAX_REPLICAS, &c->max, err) < 0) ||
	    (val[O_INITIAL] &&
	     int_opt(O_INITIAL, val[O_INITIAL], 1, VD_AUTOSIM_MAX_REPLICAS, &c->initial, err) < 0))
		return -1;
	if ((val[O_START_DELAY] &&
	     duration_opt(O_START_DELAY, val[O_START_DELAY], 0, &c->start_delay_ms, err) < 0) ||
	    (val[O_QUEUE_TIMEOUT] && duration_opt(O_QUEUE_TIMEOUT, val[O_QUEUE_TIMEOUT], 1,
						  &c->queue_timeout_ms, err) < 0) ||
	    (val[O_TARGET_P95] &&
	     duration_opt(O_TARGET_P95, val[O_TARGET_P95], 1, &c->target_p95_ms, err) < 0) ||
	    (val[O_UP_WINDOW] &&
	     duration_opt(O_UP_WINDOW, val[O_UP_WINDOW], 1000, &c->up_window_ms, err) < 0) ||
	    (val[O_DOWN_WINDOW] &&
	     duration_opt(O_DOWN_WINDOW, val[O_DOWN_WINDOW], 1000, &c->down_window_ms, err) < 0) ||
	    (val[O_UP_COOLDOWN] &&
	     duration_opt(O_UP_COOLDOWN, val[O_UP_COOLDOWN], 0, &c->up_cooldown_ms, err) < 0) ||
	    (val[O_DOWN_COOLDOWN] && duration_opt(O_DOWN_COOLDOWN, val[O_DOWN_COOLDOWN], 0,
						  &c->down_cooldown_ms, err) < 0) ||
	    (val[O_HPA_LAG] && duration_opt(O_HPA_LAG, val[O_HPA_LAG], 0, &c->hpa_lag_ms, err) < 0))
		return -1;
	if ((val[O_UTILISATION] && number_opt(O_UTILISATION, val[O_UTILISATION], 0, false, 1, true,
					      &c->utilisation, err) < 0) ||
	    (val[O_TOLERANCE] && number_opt(O_TOLERANCE, val[O_TOLERANCE], 0, true, 1, false,
					    &c->tolerance, err) < 0) ||
	    (val[O_TARGET_QUEUE] && number_opt(O_TARGET_QUEUE, val[O_TARGET_QUEUE], 0, true, 1e6,
					       true, &c->target_queue, err) < 0))
		return -1;
	if (val[O_ARRIVALS]) {
		if (strcmp(val[O_ARRIVALS], "even") != 0 && strcmp(val[O_ARRIVALS], "poisson") != 0)
			return cli_usage_error(err, CMD, "invalid --arrivals '%s': even or poisson",
					       val[O_ARRIVALS]);
		c->poisson = strcmp(val[O_ARRIVALS], "poisson") == 0;
	}
	if (val[O_SEED]) {
		struct vd_error why = VD_ERROR_INIT;
		int64_t seed;

		if (vd_units_parse_int64(val[O_SEED], 0, INT64_MAX, &seed, &why) < 0)
			return cli_usage_error(err, CMD, "invalid --seed '%s': %s", val[O_SEED],
					       why.msg);
		c->seed = (uint64_t)seed;
	}
	return 0;
}

/* Run each policy of LIST; r gets one result each. */
static int
run_all(const struct vd_autosim_config *c, const int *list, size_t n, struct vd_autosim_result *r,
	struct vd_error *err)
{
	for (size_t i = 0; i < n; i++) {
		int ret = list[i] == VD_AUTOSIM_FIXED
				  ? vd_autosim_best_fixed(c, &r[i], err)
				  : vd_autosim_run(c, (enum vd_autosim_policy)list[i], 0, &r[i],
						   err);

		if (ret < 0)
			return -1;
	}
	return 0;
}

static int
simulate(int argc, char **argv, struct vd_error *err)
{
	char *val[O_N] = { NULL };
	int list[VD_AUTOSIM_NPOLICIES] = { VD_AUTOSIM_VDCTL, VD_AUTOSIM_HPA, VD_AUTOSIM_KPA,
					   VD_AUTOSIM_FIXED };
	struct vd_autosim_result r[VD_AUTOSIM_NPOLICIES];
	struct vd_autosim_trace trace = { 0 };
	struct vd_autosim_config c;
	struct vd_autosim_about about = { 0 };
	size_t npolicies = VD_AUTOSIM_NPOLICIES;
	bool json = false;
	int ch, ret = -1;

	opterr = 0;
	while ((ch = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		if (ch == 'h') {
			fputs(simulate_usage, stdout);
			return 0;
		}
		if (ch <= 0 || ch >= O_N)
			return cli_unknown_option(err, CMD, options, argv[optind - 1]);
		if (ch == O_JSON)
			json = true;
		else
			val[ch] = optarg;
	}
	if (optind < argc)
		return cli_usage_error(err, CMD, "unexpected argument '%s'", argv[optind]);
	if (!val[O_FROM] == !val[O_CSV])
		return cli_usage_error(
			err, CMD,
			val[O_FROM] ? "--from and --csv: give one of them"
				    : "no input: give --from RESULTS.json or --csv FILE");
	if (val[O_SERVICE] && !val[O_MANIFEST])
		return cli_usage_error(err, CMD, "--service names a service of --manifest FILE");
	if (val[O_POLICIES] && policies_opt(val[O_POLICIES], list, &npolicies, err) < 0)
		return -1;
	vd_autosim_config_defaults(&c);
	if (val[O_MANIFEST] && from_manifest(val[O_MANIFEST], val[O_SERVICE], &c, err) < 0)
		return -1;
	if (apply(val, &c, err) < 0)
		return -1;
	if (c.min > c.max)
		return cli_usage_error(err, CMD, "min %d is more than max %d%s", c.min, c.max,
				       val[O_MIN] && val[O_MAX] ? "" : " (with the manifest's)");
	if (c.initial > c.max)
		return cli_usage_error(err, CMD, "--initial %d is more than max %d", c.initial,
				       c.max);
	if (!c.target_p95_ms)
		return cli_usage_error(err, CMD,
				       val[O_MANIFEST] ? "no --target-p95 given, and the "
							 "service has no autoscale.target_p95"
						       : "no --target-p95 given");
	about.source = val[O_FROM] ? val[O_FROM] : val[O_CSV];
	/* now, not after the runs: a directory, no such directory, the input */
	if (val[O_HTML] && vd_load_output_check(val[O_HTML], about.source, err) < 0)
		return -1;
	if ((val[O_FROM] ? vd_autosim_trace_read_results(val[O_FROM], &trace, err)
			 : vd_autosim_trace_read_csv(val[O_CSV], &trace, err)) < 0)
		return -1;
	if (!val[O_SERVICE_TIME]) {
		if (!trace.has_service) {
			vd_autosim_trace_clear(&trace);
			return cli_usage_error(err, CMD, "no --service-time given%s",
					       val[O_FROM] ? ", and the results have no response "
							     "time"
							   : "");
		}
		c.service = trace.service;
		about.service_from_trace = true;
	}
	c.rate = trace.rate;
	c.nsecs = trace.nsecs;
	memset(r, 0, sizeof(r));
	if (vd_autosim_check(&c, err) < 0) {
		vd_error_wrap(err, "cannot simulate");
		goto out;
	}
	if (run_all(&c, list, npolicies, r, err) < 0)
		goto out;
	if (val[O_HTML] && write_html(val[O_HTML], &c, &about, r, npolicies, err) < 0)
		goto out;
	if (json)
		ret = print_json(&c, &about, r, npolicies, err);
	else
		vd_autosim_print(stdout, &c, &about, r, npolicies);
	if (!json)
		ret = 0;
	if (ret == 0 && val[O_HTML] && !json)
		printf("\nwrote %s\n", val[O_HTML]);
out:
	for (size_t i = 0; i < npolicies; i++)
		vd_autosim_result_clear(&r[i]);
	vd_autosim_trace_clear(&trace);
	return ret;
}

int
cmd_autoscale(int argc, char **argv, struct vd_error *err)
{
	if (argc < 2)
		return cli_usage_error(err, "autoscale", "no subcommand given (simulate)");
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(usage, stdout);
		return 0;
	}
	if (strcmp(argv[1], "simulate") == 0)
		return simulate(argc - 1, argv + 1, err);
	return cli_usage_error(err, "autoscale", "unknown subcommand '%s' (simulate)", argv[1]);
}
