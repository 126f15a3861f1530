/*
 * vdctl apply FILE...: make the engines run what the manifests declare.
 */
#include <getopt.h>
#include <stdio.h>

#include "cli.h"

static const char usage[] =
	"usage: vdctl apply [--dry-run] [--prune] [--overcommit] [--wait | --no-wait]\n"
	"                   [--timeout DUR] [--parallel N] FILE...\n"
	"\n"
	"Make the engines run what the manifests declare (see vdctl-manifest(5)):\n"
	"create missing replicas, resize changed cpus or memory live where the\n"
	"backend can, replace replicas whose spec changed a batch at a time\n"
	"(update.max_surge, update.max_unavailable), each new one healthy before\n"
	"the next old one goes, and remove indices past the replica count, highest\n"
	"first. Applying the same files again changes nothing.\n"
	"\n"
	"Before anything changes, the whole plan is checked against the node's\n"
	"cpus and memory, and the desired state is recorded in the state\n"
	"directory for scale, resize and the controller.\n"
	"\n"
	"options:\n"
	"   --dry-run       print the plan, change nothing\n"
	"   --prune         also remove services these files declared before and\n"
	"                   no longer do\n"
	"   --overcommit    apply even when the node lacks the cpus or memory\n"
	CLI_RUN_USAGE
	"   -h, --help      show this help\n"
	"\n"
	"exit status: 0 done; 1 an action or a health check failed; 2 invalid\n"
	"manifest or over capacity (nothing changed); 3 an engine did not answer\n";

int
cmd_apply(int argc, char **argv, struct vd_error *err)
{
	static const struct option options[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		{ "prune", no_argument, NULL, 'p' },
		{ "overcommit", no_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		CLI_RUN_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	struct vd_node_config node;
	struct vd_apply_opts o;
	struct vd_apply_result res;
	int c, r;

	cli_apply_defaults(&o, &node);
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		if ((r = cli_run_option("apply", c, optarg, &o, err)) != 0) {
			if (r < 0)
				return -1;
			continue;
		}
		switch (c) {
		case 'n':
			o.dry_run = true;
			break;
		case 'p':
			o.prune = true;
			break;
		case 'o':
			o.overcommit = true;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			return cli_unknown_option(err, "apply", options, argv[optind - 1]);
		}
	}
	if (optind == argc)
		return cli_usage_error(err, "apply", "no manifest files given");
	return cli_apply_files(argv + optind, (size_t)(argc - optind), &o, &res, err);
}
