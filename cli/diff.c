/*
 * vdctl diff FILE...: what apply would do, with diff's exit status.
 */
#include <getopt.h>
#include <stdio.h>

#include "cli.h"

static const char usage[] =
	"usage: vdctl diff [--prune] FILE...\n"
	"\n"
	"Print what 'vdctl apply' would change, phase by phase, and change nothing:\n"
	"no engine call that changes anything, nothing recorded.\n"
	"\n"
	"options:\n"
	"   --prune     include the removal of services no longer declared\n"
	"   -h, --help  show this help\n"
	"\n"
	"exit status, as diff(1): 0 nothing would change; 1 something would;\n"
	"2 invalid manifest or over capacity; 3 an engine did not answer\n";

int
cmd_diff(int argc, char **argv, struct vd_error *err)
{
	static const struct option options[] = {
		{ "prune", no_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct vd_node_config node;
	struct vd_apply_opts o;
	struct vd_apply_result res;
	int c, ret;

	cli_apply_defaults(&o, &node);
	o.dry_run = true; /* reads the state directory, records nothing */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (c) {
		case 'p':
			o.prune = true;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			return cli_unknown_option(err, "diff", options, argv[optind - 1]);
		}
	}
	if (optind == argc)
		return cli_usage_error(err, "diff", "no manifest files given");
	ret = cli_apply_files(argv + optind, (size_t)(argc - optind), &o, &res, err);
	/* as the help says: what apply would refuse is an error, not a change */
	return ret < 0 ? -1 : res.refused ? VD_EXIT_INPUT : res.changed ? 1 : 0;
}
