/*
 * vdctl's entry point: global options, then one command from the table.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "vd/log.h"

const struct vd_cmd vd_commands[] = {
	{ "apply", cmd_apply, "make the engines run what manifests declare" },
	{ "diff", cmd_diff, "show what apply would change, change nothing" },
	{ "get", cmd_get, "list replicas, their state and health" },
	{ "scale", cmd_scale, "set a service's replica count" },
	{ "resize", cmd_resize, "set a service's cpus and memory, live" },
	{ "delete", cmd_delete, "remove services and their replicas" },
	{ "controller", cmd_controller,
	  "run the daemon that heals replicas, runs balancers and serves status" },
	{ "status", cmd_status, "show services, replicas and traffic" },
	{ "top", cmd_top, "show status, refreshed every second" },
	{ "balance", cmd_balance, "run the HTTP balancer in front of given backends" },
	{ "load", cmd_load, "send HTTP load from a load profile or an Artillery script" },
	{ "report", cmd_report, "draw a load's results.json as an HTML page of charts" },
	{ "help", cmd_help, "show help for vdctl or one of its commands" },
	{ "validate", cmd_validate, "check manifests and print what they declare" },
	{ "version", cmd_version, "print vdctl's version" },
	{ NULL, NULL, NULL },
};

static const char usage[] =
	"usage: vdctl [-v | -q] [--log-level LEVEL] [--state-dir DIR] [--docker-host URL]\n"
	"             [--libvirt-uri URI] COMMAND [ARGS...]\n"
	"       vdctl --version | --help\n";

struct cli_globals cli_globals;

static const struct vd_cmd *
find_command(const char *name)
{
	for (const struct vd_cmd *c = vd_commands; c->name; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

static void
set_log_level_from_env(void)
{
	const char *env = getenv("VDCTL_LOG");
	int level;

	if (env && (level = vd_log_parse_level(env)) >= 0)
		vd_log_set_level((enum vd_log_level)level);
	else
		vd_log_set_level(VD_LOG_INFO);
}

int
main(int argc, char **argv)
{
	struct vd_error err = VD_ERROR_INIT;
	const struct vd_cmd *cmd;
	int i, ret, level;

	set_log_level_from_env();
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			return cmd_help(1, (char *[]){ "help", NULL }, &err);
		} else if (strcmp(a, "--version") == 0) {
			return cmd_version(1, (char *[]){ "version", NULL }, &err);
		} else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
			vd_log_set_level(VD_LOG_DEBUG);
		} else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
			vd_log_set_level(VD_LOG_ERROR);
		} else if (strcmp(a, "--state-dir") == 0 && i + 1 < argc) {
			cli_globals.state_dir = argv[++i];
		} else if (strcmp(a, "--docker-host") == 0 && i + 1 < argc) {
			cli_globals.docker_host = argv[++i];
		} else if (strcmp(a, "--libvirt-uri") == 0 && i + 1 < argc) {
			cli_globals.libvirt_uri = argv[++i];
		} else if (strcmp(a, "--log-level") == 0 && i + 1 < argc) {
			if ((level = vd_log_parse_level(argv[++i])) < 0) {
				fprintf(stderr, "vdctl: error: unknown log level '%s' "
						"(error, warn, info, debug)\n", argv[i]);
				return VD_EXIT_INPUT;
			}
			vd_log_set_level((enum vd_log_level)level);
		} else {
			fprintf(stderr, "vdctl: error: unknown option '%s'\n%s", a, usage);
			return VD_EXIT_INPUT;
		}
	}
	if (i == argc) {
		fputs(usage, stderr);
		fputs("run 'vdctl help' for the list of commands\n", stderr);
		return VD_EXIT_INPUT;
	}
	cmd = find_command(argv[i]);
	if (!cmd) {
		fprintf(stderr, "vdctl: error: '%s' is not a vdctl command "
				"(see 'vdctl help')\n", argv[i]);
		return VD_EXIT_INPUT;
	}
	/* commands parse their own options with getopt_long from argv[0] */
	optind = 1;
	ret = cmd->fn(argc - i, argv + i, &err);
	if (ret < 0) {
		vd_error_print(&err, "vdctl");
		return err.code ? err.code : VD_EXIT_FAILURE;
	}
	return ret;
}
