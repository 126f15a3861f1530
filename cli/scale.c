/*
 * vdctl scale SERVICE=N...: set replica counts of applied services.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "vd/units.h"

static const char usage[] =
	"usage: vdctl scale [--wait | --no-wait] [--timeout DUR] [--parallel N]\n"
	"                   SERVICE=N...\n"
	"\n"
	"Set the replica count of services that 'vdctl apply' made, and make the\n"
	"engines match: new indices are created, the highest indices removed\n"
	"first. The new count is recorded as the service's desired state; a later\n"
	"apply of its manifest sets the manifest's count again. An autoscaled\n"
	"service is refused (exit 2): its count is the autoscaler's, within the\n"
	"bounds its manifest sets.\n"
	"\n"
	"options:\n"
	CLI_RUN_USAGE
	"   -h, --help      show this help\n"
	"\n"
	"exit status: 0 done; 1 a step failed; 2 bad arguments or unknown service;\n"
	"3 an engine did not answer\n";

/* An autoscaled service's count is the autoscaler's: -1, with err, for
 * SERVICE=N of one (or one that cannot be read). */
static int
refuse_autoscaled(char *arg, struct vd_error *err)
{
	char *eq = strchr(arg, '=');
	struct vd_manifest *m = NULL;
	int ret = 0;

	*eq = '\0';
	if (cli_load_recorded(arg, &m, err) < 0)
		ret = -1;
	else if (m->services[0].autoscale.enabled)
		ret = vd_error_set(err, VD_EXIT_INPUT, "service '%s' is autoscaled (min %d, max "
				   "%d): the autoscaler sets its count; change 'autoscale.min' "
				   "and 'autoscale.max' in its manifest and apply it, or take "
				   "'autoscale' out to set the count by hand; nothing was changed",
				   arg, m->services[0].autoscale.min,
				   m->services[0].autoscale.max);
	vd_manifest_free(m);
	*eq = '=';
	return ret;
}

int
cmd_scale(int argc, char **argv, struct vd_error *err)
{
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		CLI_RUN_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	struct vd_node_config node;
	struct vd_apply_opts o;
	int c, r;

	cli_apply_defaults(&o, &node);
	o.verb = "scale";
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		if ((r = cli_run_option("scale", c, optarg, &o, err)) != 0) {
			if (r < 0)
				return -1;
			continue;
		}
		if (c == 'h') {
			fputs(usage, stdout);
			return 0;
		}
		return cli_unknown_option(err, "scale", options, argv[optind - 1]);
	}
	if (optind == argc)
		return cli_usage_error(err, "scale", "no SERVICE=N given");
	/* every argument is checked before anything changes */
	for (int i = optind; i < argc; i++) {
		struct vd_error why = VD_ERROR_INIT;
		char *eq = strchr(argv[i], '=');
		int64_t n;

		if (!eq || eq == argv[i])
			return cli_usage_error(err, "scale", "'%s' is not SERVICE=N", argv[i]);
		*eq = '\0';
		if (!vd_manifest_valid_name(argv[i]))
			return cli_usage_error(err, "scale", "'%s' is not a service name", argv[i]);
		*eq = '=';
		if (vd_units_parse_int64(eq + 1, 0, 1000, &n, &why) < 0)
			return cli_usage_error(err, "scale", "bad count in '%s': %s", argv[i],
					       why.msg);
	}
	for (int i = optind; i < argc; i++)
		if (refuse_autoscaled(argv[i], err) < 0)
			return -1;
	for (int i = optind; i < argc; i++) {
		char *eq = strchr(argv[i], '=');
		struct vd_manifest *m = NULL;
		int ret;

		*eq = '\0';
		if (cli_load_recorded(argv[i], &m, err) < 0)
			return -1;
		m->services[0].replicas = atoi(eq + 1);
		ret = cli_apply_recorded(m, &o, err);
		vd_manifest_free(m);
		if (ret < 0)
			return -1;
	}
	return 0;
}
