/*
 * vdctl's entry point: global options, then one command from the table.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "vd/diag.h"
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
	{ "autoscale", cmd_autoscale, "simulate autoscaling policies on a recorded load" },
	{ "help", cmd_help, "show help for vdctl or one of its commands" },
	{ "validate", cmd_validate, "check manifests and print what they declare" },
	{ "version", cmd_version, "print vdctl's version" },
	{ NULL, NULL, NULL },
};

static const char usage[] =
	"usage: vdctl [-v | -q] [--log-level LEVEL] [--state-dir DIR] [--docker-host URL]\n"
	"             [--libvirt-uri URI] COMMAND [ARGS...]\n"
	"       vdctl --version | --help\n"
	"global options may also follow COMMAND (but -q, which is then the command's)\n";

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

/* The global options that take a value, and where it goes. */
static const struct {
	const char *name;
	const char **to;
} valued[] = {
	{ "--state-dir", &cli_globals.state_dir },
	{ "--docker-host", &cli_globals.docker_host },
	{ "--libvirt-uri", &cli_globals.libvirt_uri },
	{ "--log-level", NULL },
};

/*
 * Take the global option at argv[i] (before the command's name, or, with
 * after, after it: as kubectl and docker users type `vdctl get --state-dir
 * DIR`; there -q and --quiet stay the command's). Returns how many
 * arguments it took: 0 when it is none of them, -1 when its value is bad
 * (said on stderr).
 */
static int
take_global(int argc, char **argv, int i, bool after)
{
	const char *a = argv[i], *v;
	size_t len;
	int level;

	if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
		vd_log_set_level(VD_LOG_DEBUG);
		return 1;
	}
	if (!after && (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0)) {
		vd_log_set_level(VD_LOG_ERROR);
		return 1;
	}
	for (size_t k = 0; k < sizeof(valued) / sizeof(valued[0]); k++) {
		len = strlen(valued[k].name);
		if (strncmp(a, valued[k].name, len) != 0 || (a[len] && a[len] != '='))
			continue;
		if (a[len] == '=') {
			v = a + len + 1;
		} else if (i + 1 < argc) {
			v = argv[i + 1];
		} else {
			fprintf(stderr, "vdctl: error: option '%s' needs a value\n", a);
			return -1;
		}
		if (valued[k].to) {
			*valued[k].to = v;
		} else if ((level = vd_log_parse_level(v)) >= 0) {
			vd_log_set_level((enum vd_log_level)level);
		} else {
			fprintf(stderr, "vdctl: error: unknown log level '%s' (error, warn, info, "
					"debug)\n", v);
			return -1;
		}
		return a[len] == '=' ? 1 : 2;
	}
	return 0;
}

/* " (did you mean 'NAME'?)" for an unknown command or global option. */
static const char *
guess(const char *typed, bool option, char *buf, size_t size)
{
	static const char *const flags[] = { "help", "version", "verbose", "quiet", "state-dir",
					     "docker-host", "libvirt-uri", "log-level" };
	struct vd_diag_guess g;

	vd_diag_guess_init(&g, typed + strspn(typed, "-"));
	if (option)
		for (size_t k = 0; k < sizeof(flags) / sizeof(flags[0]); k++)
			vd_diag_guess_offer(&g, flags[k]);
	else
		for (const struct vd_cmd *c = vd_commands; c->name; c++)
			vd_diag_guess_offer(&g, c->name);
	if (!g.pick)
		return "";
	snprintf(buf, size, " (did you mean '%s%s'?)", option ? "--" : "", g.pick);
	return buf;
}

int
main(int argc, char **argv)
{
	struct vd_error err = VD_ERROR_INIT;
	const struct vd_cmd *cmd;
	char **args, hint[96];
	int i, n, nargs, ret;

	set_log_level_from_env();
	for (i = 1; i < argc && argv[i][0] == '-'; i += n) {
		const char *a = argv[i];

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
			return cmd_help(1, (char *[]){ "help", NULL }, &err);
		if (strcmp(a, "--version") == 0)
			return cmd_version(1, (char *[]){ "version", NULL }, &err);
		if ((n = take_global(argc, argv, i, false)) < 0)
			return VD_EXIT_INPUT;
		if (n == 0) {
			fprintf(stderr, "vdctl: error: unknown option '%s'%s\n%s", a,
				guess(a, true, hint, sizeof(hint)), usage);
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
		fprintf(stderr, "vdctl: error: '%s' is not a vdctl command%s (see 'vdctl help')\n",
			argv[i], guess(argv[i], false, hint, sizeof(hint)));
		return VD_EXIT_INPUT;
	}
	/* the command's arguments, less the global options among them (up to
	 * a "--", after which everything is the command's) */
	if (!(args = calloc((size_t)(argc - i) + 1, sizeof(*args)))) {
		fputs("vdctl: error: out of memory\n", stderr);
		return VD_EXIT_FAILURE;
	}
	args[0] = argv[i];
	nargs = 1;
	for (int k = i + 1; k < argc; k += n) {
		if (strcmp(argv[k], "--") == 0) {
			while (k < argc)
				args[nargs++] = argv[k++];
			break;
		}
		if ((n = take_global(argc, argv, k, true)) < 0) {
			free(args);
			return VD_EXIT_INPUT;
		}
		if (n == 0) {
			args[nargs++] = argv[k];
			n = 1;
		}
	}
	args[nargs] = NULL;
	/* commands parse their own options with getopt_long from argv[0] */
	optind = 1;
	ret = cmd->fn(nargs, args, &err);
	free(args);
	if (ret < 0) {
		vd_error_print(&err, "vdctl");
		return err.code ? err.code : VD_EXIT_FAILURE;
	}
	return ret;
}
