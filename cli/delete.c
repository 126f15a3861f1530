/*
 * vdctl delete FILE|SERVICE...: remove services and every replica of them.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

static const char usage[] =
	"usage: vdctl delete [--dry-run] [--timeout DUR] [--parallel N] FILE|SERVICE...\n"
	"\n"
	"Remove every replica of the services a manifest FILE declares, or of the\n"
	"SERVICEs named, on every backend that answers, and forget their desired\n"
	"state. Each replica is stopped gracefully first. Only replicas that carry\n"
	"vdctl's labels are touched.\n"
	"\n"
	"options:\n"
	"   --dry-run       print what would be removed, change nothing\n"
	"   --timeout DUR, --parallel N   as for apply\n"
	"   -h, --help      show this help\n"
	"\n"
	"exit status: 0 done; 1 a removal failed; 2 bad arguments, an unknown\n"
	"service or an invalid manifest (nothing removed); 3 no engine answered\n";

static int
add(char ***names, size_t *n, const char *name)
{
	char **v = realloc(*names, (*n + 1) * sizeof(*v));

	if (!v || !(v[*n] = strdup(name)))
		return -1;
	*names = v;
	(*n)++;
	return 0;
}

int
cmd_delete(int argc, char **argv, struct vd_error *err)
{
	static const struct option options[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		CLI_RUN_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	struct vd_node_config node;
	struct vd_apply_opts o;
	struct vd_apply_result res;
	char **names = NULL;
	size_t n = 0;
	int c, r, ret = -1;

	cli_apply_defaults(&o, &node);
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		if ((r = cli_run_option("delete", c, optarg, &o, err)) != 0) {
			if (r < 0)
				return -1;
			continue;
		}
		switch (c) {
		case 'n':
			o.dry_run = true;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			return cli_unknown_option(err, "delete", options, argv[optind - 1]);
		}
	}
	if (optind == argc)
		return cli_usage_error(err, "delete", "no FILE or SERVICE given");
	/* every argument is understood before anything is removed */
	for (int i = optind; i < argc; i++) {
		struct stat st;
		struct vd_manifest *m = NULL;

		if (stat(argv[i], &st) == 0 && S_ISREG(st.st_mode)) {
			if (cli_load(&argv[i], 1, &m, err) < 0)
				goto out;
			for (size_t j = 0; j < m->nservices; j++)
				if (add(&names, &n, m->services[j].name) < 0)
					break;
			vd_manifest_free(m);
		} else if (vd_manifest_valid_name(argv[i])) {
			/* a name given must be one that exists */
			o.must_exist = true;
			if (add(&names, &n, argv[i]) < 0)
				break;
		} else {
			cli_usage_error(err, "delete", "'%s' is neither a manifest file nor a "
					"service name", argv[i]);
			goto out;
		}
	}
	ret = vd_apply_delete_anywhere((const char *const *)names, n, &o, &res, err);
out:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return ret;
}
