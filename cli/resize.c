/*
 * vdctl resize SERVICE [--cpus X] [--memory SIZE]: change a service's limits.
 */
#include <getopt.h>
#include <stdio.h>

#include "cli.h"
#include "vd/units.h"

static const char usage[] =
	"usage: vdctl resize [--cpus N] [--memory SIZE] [--wait | --no-wait]\n"
	"                    [--timeout DUR] [--parallel N] SERVICE\n"
	"\n"
	"Change the cpus and memory of every replica of a service that 'vdctl\n"
	"apply' made. Docker containers are resized live; VMs are resized live\n"
	"(vCPU hot-plug, balloon) within the ceiling they were made with (twice\n"
	"their first size) and replaced one batch at a time beyond it. The new\n"
	"size is recorded as the service's desired state.\n"
	"\n"
	"options:\n"
	"   --cpus N        CPUs per replica, fractions allowed: 0.5, 1.5\n"
	"   --memory SIZE   memory per replica: 512Mi, 1G, ...\n"
	CLI_RUN_USAGE
	"   -h, --help      show this help\n"
	"\n"
	"exit status: 0 done; 1 a step failed; 2 bad arguments, unknown service or\n"
	"over capacity; 3 an engine did not answer\n";

int
cmd_resize(int argc, char **argv, struct vd_error *err)
{
	static const struct option options[] = {
		{ "cpus", required_argument, NULL, 'c' },
		{ "memory", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		CLI_RUN_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	struct vd_node_config node;
	struct vd_apply_opts o;
	struct vd_error why = VD_ERROR_INIT;
	struct vd_manifest *m = NULL;
	struct vd_service *s;
	int64_t cpus = 0, mem = 0, floor;
	int c, r, ret;

	cli_apply_defaults(&o, &node);
	o.verb = "resize";
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		if ((r = cli_run_option("resize", c, optarg, &o, err)) != 0) {
			if (r < 0)
				return -1;
			continue;
		}
		switch (c) {
		case 'c':
			if (vd_units_parse_milli_cpus(optarg, &cpus, &why) < 0)
				return cli_usage_error(err, "resize", "invalid --cpus '%s': %s",
						       optarg, why.msg);
			break;
		case 'm':
			if (vd_units_parse_size(optarg, &mem, &why) < 0)
				return cli_usage_error(err, "resize", "invalid --memory '%s': %s",
						       optarg, why.msg);
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			return cli_unknown_option(err, "resize", options, argv[optind - 1]);
		}
	}
	if (optind + 1 != argc)
		return cli_usage_error(err, "resize", "give exactly one SERVICE");
	if (!cpus && !mem)
		return cli_usage_error(err, "resize", "nothing to change: give --cpus or --memory");
	if (cli_load_recorded(argv[optind], &m, err) < 0)
		return -1;
	s = &m->services[0];
	/* the manifest's floors: what Docker accepts, what a VM boots in */
	floor = vd_driver_min_memory(s->backend);
	if (mem && (mem < floor || mem > VD_TIB)) {
		char f[32];

		vd_manifest_free(m);
		return cli_usage_error(err, "resize", "--memory must be between %s and 1 TiB for "
				       "%s replicas", vd_units_format_size(floor, f, sizeof(f)),
				       vd_manifest_backend_name(s->backend));
	}
	if (cpus && cpus < vd_driver_min_milli_cpus(s->backend)) {
		char f[16];

		vd_manifest_free(m);
		return cli_usage_error(err, "resize", "--cpus must be at least %s: engines enforce "
				       "no less", vd_units_format_milli_cpus(vd_driver_min_milli_cpus(
							 s->backend), f, sizeof(f)));
	}
	if (cpus)
		s->milli_cpus = cpus;
	if (mem)
		s->memory_bytes = mem;
	ret = cli_apply_recorded(m, &o, err);
	vd_manifest_free(m);
	return ret;
}
