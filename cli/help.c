/*
 * vdctl help [COMMAND]: the list of commands, or one command's usage.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

int
cmd_help(int argc, char **argv, struct vd_error *err)
{
	if (argc > 1 && strcmp(argv[1], "--help") != 0 && strcmp(argv[1], "-h") != 0) {
		for (const struct vd_cmd *c = vd_commands; c->name; c++) {
			if (strcmp(c->name, argv[1]) == 0) {
				char help[] = "--help";
				char *sub[] = { argv[1], help, NULL };

				return c->fn(2, sub, err);
			}
		}
		return cli_usage_error(err, "help", "'%s' is not a vdctl command", argv[1]);
	}
	printf("usage: vdctl [-v | -q] [--log-level LEVEL] [--state-dir DIR] [--docker-host URL]\n"
	       "             [--libvirt-uri URI] COMMAND [ARGS...]\n\n"
	       "vdctl runs services as replicas (Docker containers or libvirt VMs)\n"
	       "with CPU and memory limits, from declarative YAML manifests.\n\n"
	       "commands:\n");
	for (const struct vd_cmd *c = vd_commands; c->name; c++)
		printf("   %-12s %s\n", c->name, c->summary);
	printf("\n'vdctl COMMAND --help' or 'man vdctl' tells more.\n");
	return 0;
}
