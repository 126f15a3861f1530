/*
 * vdctl load FILE: run the HTTP load a profile (vdctl's own, or an
 * Artillery script) describes, with a report every 10 s and a summary at
 * the end in the shape Artillery users know; --output writes the results
 * with a per-second timeline for `vdctl report`.
 */
#include <getopt.h>
#include <stdio.h>
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
	"   --threads N         event loops, one thread each (1)\n"
	"   --output FILE       write the results and a per-second timeline as JSON\n"
	"   --report-every DUR  a report this often; 0 = only the summary (10s)\n"
	"   --max-vusers N      open-model users at once, unless a phase says (10000)\n"
	"   --allow-remote      allow a target other than 127.0.0.1 or [::1]\n"
	"   --check             read FILE, print what it asks for, send nothing\n"
	"   -h, --help          show this help\n"
	"\n"
	"exit status: 0 the load ran, 1 it could not run, 2 invalid FILE or options\n";

static void
print_plan(const struct vd_load_profile *p)
{
	char d[32];

	printf("%s: %s, %s model, target %s, %s\n", p->file,
	       p->format == VD_LOAD_ARTILLERY ? "Artillery script" : "vdctl profile",
	       p->model == VD_LOAD_OPEN ? "open" : "closed", p->target,
	       vd_units_format_duration_ms(vd_load_profile_duration_ms(p), d, sizeof(d)));
	if (p->model == VD_LOAD_CLOSED) {
		char lo[32], hi[32];

		printf("  %d users, %g started a second, wait %s to %s\n", p->users,
		       p->spawn_rate, vd_units_format_duration_ms(p->wait_min_ms, lo, sizeof(lo)),
		       vd_units_format_duration_ms(p->wait_max_ms, hi, sizeof(hi)));
	}
	for (size_t i = 0; i < p->nphases; i++) {
		const struct vd_load_phase *ph = &p->phases[i];

		printf("  phase %zu%s%s: %s, %g to %g arrivals/s (%s)%s\n", i + 1,
		       ph->name ? " " : "", ph->name ? ph->name : "",
		       vd_units_format_duration_ms(ph->duration_ms, d, sizeof(d)), ph->rate, ph->ramp_to,
		       p->arrivals == VD_LOAD_POISSON ? "poisson" : "constant",
		       ph->max_vusers ? ", with a cap on users" : "");
	}
	for (size_t i = 0; i < p->nscenarios; i++)
		printf("  scenario %s: weight %u, %zu steps\n", p->scenarios[i].name,
		       p->scenarios[i].weight, p->scenarios[i].nsteps);
	fflush(stdout);
}

int
cmd_load(int argc, char **argv, struct vd_error *err)
{
	static const struct option options[] = {
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
	if (vd_load_profile_read(argv[optind], &p, &diags, err) < 0) {
		vd_diags_print(&diags, stderr);
		vd_diags_clear(&diags);
		return -1;
	}
	if (!o.allow_remote && !vd_load_host_is_loopback(p->host)) {
		vd_error_set(err, VD_EXIT_INPUT, "%s: target '%s' is not 127.0.0.1 or [::1]; "
			     "pass --allow-remote to load another host", p->file, p->target);
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
