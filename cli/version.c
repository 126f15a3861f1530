/*
 * vdctl version: the release and the commit it was built from.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

int
cmd_version(int argc, char **argv, struct vd_error *err)
{
	if (argc > 1) {
		if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
			printf("usage: vdctl version\n\nPrint vdctl's version and the "
			       "commit it was built from.\n");
			return 0;
		}
		return cli_usage_error(err, "version", "unexpected argument '%s'", argv[1]);
	}
	printf("vdctl %s (%s)\n", VD_VERSION, VD_GIT_REV);
	return 0;
}
