/*
 * vdctl load FILE: run the HTTP load a profile (vdctl's own, or an
 * Artillery script) describes, with a report every 10 s and a summary at
 * the end in the shape Artillery users know; --output writes the results
 * with a per-second timeline for `vdctl report`. --target, --duration and
 * --rate run a profile against another service, for another length or at
 * another rate without editing a copy of it.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "vd/loadgen.h"
#include "vd/units.h"

static const char usage[] =
	"usage: vdctl load [options] FILE\n"
	"\n"
	"Send the HTTP load FILE describes and report what the target did. FILE is\n"
	"a vdctl load profile or an Artillery script (config.target, config.phases,\n"
	"config.http.timeout, scenarios with weight and a flow of get, post, put,\n"
	"delete and think); any other key is an error naming it. See vdctl(1).\n"
	"\n"
	"Open model (phases): arrivals keep their own clock whatever the responses\n"
	"do, and latency counts from when a request was due. Closed model (users):\n"
	"each user sends, waits for the answer, waits wait_time, and again.\n"
	"\n"
	"options:\n"
	"   --target URL        send to URL (http://HOST[:PORT][/PATH]) instead of\n"
	"                       the profile's target\n"
	"   --duration DUR      run this long (e.g. 30s, 2m): a closed-model run's\n"
	"                       duration; open-model phases scaled to it in proportion\n"
	"   --rate N            N arrivals a second, for an open-model profile of one\n"
	"                       phase (a ramp becomes constant)\n"
	"   --threads N         event loops, one thread each (1)\n"
	"   --output FILE       write the results and a per-second timeline as JSON\n"
	"                       (checked before the load starts)\n"
	"   --report-every DUR  a report this often; 0 = only the summary (10s)\n"
	"   --max-vusers N      open-model users at once, unless a phase says (10000)\n"
	"   --allow-remote      allow a target other than 127.0.0.1 or [::1]\n"
	"   --check             read FILE, print what it asks for, send nothing\n"
	"   -h, --help          show this help\n"
	"\n"
	"exit status: 0 the load ran, 1 it could not run, 2 invalid FILE or options\n";

#define MAX_RATE 1e6 /* as a phase's arrival_rate */

/* A scenario's steps, when they are few enough to read on one line. */
static void
print_steps(const struct vd_load_profile *p, const struct vd_load_scenario *sc)
{
	char d[32];

	printf("%zu step%s", sc->nsteps, sc->nsteps == 1 ? "" : "s");
	if (sc->nsteps > 8)
		return;
	for (size_t i = 0; i < sc->nsteps; i++) {
		const struct vd_load_step *st = &sc->steps[i];

		if (st->request >= 0)
			printf("%s%s", i ? ", " : ": ", p->requests[st->request].name);
		else
			printf("%sthink %s", i ? ", " : ": ",
			       vd_units_format_duration_ms(st->think_ms, d, sizeof(d)));
	}
}

/* What the profile asks for. Every duration is written as vdctl writes
 * them everywhere (vd_units_format_duration_ms: 500ms, 1s500ms, 1m30s),
 * whatever units the file used, and every rate as so many a second. */
static void
print_plan(const struct vd_load_profile *p)
{
	char d[32], lo[32], hi[32];

	printf("%s: %s, %s model, target %s, %s\n", p->file,
	       p->format == VD_LOAD_ARTILLERY ? "Artillery script" : "vdctl profile",
	       p->model == VD_LOAD_OPEN ? "open" : "closed", p->target,
	       vd_units_format_duration_ms(vd_load_profile_duration_ms(p), d, sizeof(d)));
	printf("  timeout %s a request\n",
	       vd_units_format_duration_ms(p->timeout_ms, d, sizeof(d)));
	if (p->model == VD_LOAD_CLOSED) {
		printf("  %d users, %g started a second, ", p->users, p->spawn_rate);
		if (p->wait_max_ms > p->wait_min_ms)
			printf("each waiting %s to %s after an answer\n",
			       vd_units_format_duration_ms(p->wait_min_ms, lo, sizeof(lo)),
			       vd_units_format_duration_ms(p->wait_max_ms, hi, sizeof(hi)));
		else
			printf("each waiting %s after an answer\n",
			       vd_units_format_duration_ms(p->wait_min_ms, lo, sizeof(lo)));
	}
	for (size_t i = 0; i < p->nphases; i++) {
		const struct vd_load_phase *ph = &p->phases[i];

		printf("  phase %zu%s%s: %s, ", i + 1, ph->name ? " " : "",
		       ph->name ? ph->name : "",
		       vd_units_format_duration_ms(ph->duration_ms, d, sizeof(d)));
		if (ph->rate == 0 && ph->ramp_to == 0) {
			printf("a pause\n");
			continue;
		}
		if (ph->rate == ph->ramp_to)
			printf("%g arrival%s a second", ph->rate, ph->rate == 1 ? "" : "s");
		else
			printf("%g to %g arrivals a second", ph->rate, ph->ramp_to);
		printf(" (%s)", p->arrivals == VD_LOAD_POISSON ? "poisson" : "constant");
		if (ph->max_vusers)
			printf(", at most %d users at once", ph->max_vusers);
		putchar('\n');
	}
	for (size_t i = 0; i < p->nscenarios; i++) {
		printf("  scenario %s: weight %u, ", p->scenarios[i].name, p->scenarios[i].weight);
		print_steps(p, &p->scenarios[i]);
		putchar('\n');
	}
	fflush(stdout);
}

/* --rate's value: arrivals a second, more than 0 and at most MAX_RATE. */
static int
parse_rate(const char *s, double *rate)
{
	char *end;

	*rate = strtod(s, &end);
	return end != s && !*end && isfinite(*rate) && *rate > 0 && *rate <= MAX_RATE ? 0 : -1;
}

int
cmd_load(int argc, char **argv, struct vd_error *err)
{
	static const struct option options[] = {
		{ "target", required_argument, NULL, 'T' },
		{ "duration", required_argument, NULL, 'd' },
		{ "rate", required_argument, NULL, 'R' },
		{ "threads", required_argument, NULL, 't' },
		{ "output", required_argument, NULL, 'o' },
		{ "report-every", required_argument, NULL, 'r' },
		{ "max-vusers", required_argument, NULL, 'm' },
		{ "allow-remote", no_argument, NULL, 'a' },
		{ "check", no_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct vd_diags diags = VD_DIAGS_INIT;
	struct vd_error why = VD_ERROR_INIT;
	struct vd_load_profile *p;
	struct vd_load_result r;
	struct vd_load_opts o;
	struct vd_load_overrides ov = { NULL, 0, 0 };
	const char *output = NULL;
	bool check = false;
	int64_t v;
	int c, ret;

	vd_load_opts_init(&o);
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (c) {
		case 't':
		case 'm':
			if (vd_units_parse_int64(optarg, 1, c == 't' ? VD_LOAD_MAX_THREADS : 1000000, &v,
					   &why) < 0)
				return cli_usage_error(err, "load", "invalid --%s '%s': %s",
						       c == 't' ? "threads" : "max-vusers", optarg,
						       why.msg);
			*(c == 't' ? &o.threads : &o.max_vusers) = (int)v;
			break;
		case 'r':
			v = 0;
			if (strcmp(optarg, "0") != 0 && (vd_units_parse_duration_ms(optarg, &v, &why) < 0 ||
							 v % 1000))
				return cli_usage_error(err, "load", "invalid --report-every '%s': %s",
						       optarg, why.code ? why.msg :
						       "a whole number of seconds");
			o.report_every_s = (int)(v / 1000);
			break;
		case 'T':
			ov.target = optarg;
			break;
		case 'd':
			if (vd_units_parse_duration_ms(optarg, &ov.duration_ms, &why) < 0 ||
			    ov.duration_ms <= 0)
				return cli_usage_error(err, "load", "invalid --duration '%s': %s",
						       optarg, why.code ? why.msg :
						       "must be more than 0");
			break;
		case 'R':
			if (parse_rate(optarg, &ov.rate) < 0)
				return cli_usage_error(err, "load", "invalid --rate '%s': expected "
						       "arrivals a second, more than 0 and at "
						       "most %.0f", optarg, MAX_RATE);
			break;
		case 'o':
			output = optarg;
			break;
		case 'a':
			o.allow_remote = true;
			break;
		case 'c':
			check = true;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			return cli_unknown_option(err, "load", options, argv[optind - 1]);
		}
	}
	if (optind + 1 != argc)
		return cli_usage_error(err, "load", optind == argc ? "no FILE given" :
				       "one FILE at a time");
	if (vd_load_profile_read(argv[optind], &ov, &p, &diags, err) < 0) {
		vd_diags_print(&diags, stderr);
		vd_diags_clear(&diags);
		return -1;
	}
	if (!o.allow_remote && !vd_load_host_is_loopback(p->host)) {
		vd_error_set(err, VD_EXIT_INPUT, "%s%s '%s' is not 127.0.0.1 or [::1]; pass "
			     "--allow-remote to load another host", ov.target ? "" : p->file,
			     ov.target ? "--target" : ": target", p->target);
		vd_load_profile_free(p);
		return -1;
	}
	/* now, not after a load of many minutes */
	if (output && vd_load_output_check(output, p->file, err) < 0) {
		vd_load_profile_free(p);
		return -1;
	}
	print_plan(p);
	if (check) {
		printf("profile OK\n");
		vd_load_profile_free(p);
		return 0;
	}
	if (vd_load_run(p, &o, &r, err) < 0) {
		vd_load_profile_free(p);
		return -1;
	}
	vd_load_print_summary(stdout, p, &r);
	ret = output ? vd_load_write_json(output, p, &r, err) : 0;
	vd_load_result_clear(&r);
	vd_load_profile_free(p);
	return ret;
}
