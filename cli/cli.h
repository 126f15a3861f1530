/*
 * vdctl's command table.
 *
 * To add a command:
 *   1. write cli/<name>.c defining
 *      int cmd_<name>(int argc, char **argv, struct vd_error *err);
 *      argv[0] is the command's name; `--help` prints its usage on stdout;
 *   2. declare it below;
 *   3. add a row to the table in cli/main.c;
 *   4. describe it in man/vdctl.1.
 * A command returns the exit status (0, or 1 for diff's "changes"), or -1
 * with err filled; main prints the error once and exits with err->code.
 */
#ifndef VD_CLI_H
#define VD_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "vd/apply.h"
#include "vd/error.h"
#include "vd/manifest.h"

struct vd_cmd {
	const char *name;
	int (*fn)(int argc, char **argv, struct vd_error *err);
	const char *summary;
};

/* The table, NULL-name terminated (cli/main.c). */
extern const struct vd_cmd vd_commands[];

/* Fill err with an exit-2 usage error for command CMD; returns -1. */
int cli_usage_error(struct vd_error *err, const char *cmd, const char *fmt, ...)
	VD_PRINTF(3, 4);

/* An option getopt_long() did not take: "unknown option '--polcy' (did you
 * mean '--policy'?)", or "option '--timeout' needs a value"; exit 2. */
struct option;
int cli_unknown_option(struct vd_error *err, const char *cmd, const struct option *options,
		       const char *arg);

/* Global options: where the engines and the state directory are. */
struct cli_globals {
	const char *state_dir;   /* --state-dir, else $VDCTL_STATE_DIR, else /var/lib/vdctl */
	const char *docker_host; /* --docker-host, else $DOCKER_HOST */
	const char *libvirt_uri; /* --libvirt-uri, else $VDCTL_LIBVIRT_URI */
};
extern struct cli_globals cli_globals;

/* The node configuration the global options describe. */
void cli_node(struct vd_node_config *node);
const char *cli_state_dir(void);

/* Load manifests as one set, printing every diagnostic on stderr; -1 with
 * an exit-2 error when there is any. */
int cli_load(char *const *paths, size_t n, struct vd_manifest **m, struct vd_error *err);

/* Options shared by the commands that change replicas: --wait/--no-wait,
 * --timeout DURATION, --parallel N. cli_run_option() takes one getopt
 * result (its values are CLI_OPT_*); returns 1 if it was one of them, 0 if
 * not, -1 on a bad value. */
enum { CLI_OPT_WAIT = 1000, CLI_OPT_NO_WAIT, CLI_OPT_TIMEOUT, CLI_OPT_PARALLEL };
#define CLI_RUN_OPTIONS \
	{ "wait", no_argument, NULL, CLI_OPT_WAIT }, \
	{ "no-wait", no_argument, NULL, CLI_OPT_NO_WAIT }, \
	{ "timeout", required_argument, NULL, CLI_OPT_TIMEOUT }, \
	{ "parallel", required_argument, NULL, CLI_OPT_PARALLEL }
#define CLI_RUN_USAGE \
	"   --wait          wait until new replicas pass their health check (default)\n" \
	"   --no-wait       do not wait after the last step\n" \
	"   --timeout DUR   how long to wait for health, e.g. 90s, 5m (default 2m)\n" \
	"   --parallel N    engine calls at once (default 8)\n"
void cli_apply_defaults(struct vd_apply_opts *o, struct vd_node_config *node);
int cli_run_option(const char *cmd, int c, const char *arg, struct vd_apply_opts *o,
		   struct vd_error *err);

/* Load manifest files and apply them (or, with o->dry_run, plan them). */
int cli_apply_files(char *const *paths, size_t n, struct vd_apply_opts *o,
		    struct vd_apply_result *res, struct vd_error *err);

/* Load what apply recorded for one service (NULL: all of them). */
int cli_load_recorded(const char *service, struct vd_manifest **m, struct vd_error *err);

/* Apply services loaded from the state directory (after a change made to
 * them), keeping the manifest identity each was recorded with. */
int cli_apply_recorded(struct vd_manifest *m, struct vd_apply_opts *o, struct vd_error *err);

/* Print a controller's status (GET /v1/status) for people: only the
 * services named, when n > 0 (exit 2 for one it does not have). Returns
 * cli_status_trouble() of them, or -1. */
int cli_status_print(const json_t *st, char *const *only, size_t n, FILE *f,
		     struct vd_error *err);

/* How many of the services (those named, or all) are held or have a
 * declared balancer that does not listen. */
int cli_status_trouble(const json_t *st, char *const *only, size_t n);

int cmd_apply(int argc, char **argv, struct vd_error *err);
int cmd_autoscale(int argc, char **argv, struct vd_error *err);
int cmd_balance(int argc, char **argv, struct vd_error *err);
int cmd_controller(int argc, char **argv, struct vd_error *err);
int cmd_delete(int argc, char **argv, struct vd_error *err);
int cmd_diff(int argc, char **argv, struct vd_error *err);
int cmd_get(int argc, char **argv, struct vd_error *err);
int cmd_help(int argc, char **argv, struct vd_error *err);
int cmd_load(int argc, char **argv, struct vd_error *err);
int cmd_report(int argc, char **argv, struct vd_error *err);
int cmd_resize(int argc, char **argv, struct vd_error *err);
int cmd_scale(int argc, char **argv, struct vd_error *err);
int cmd_status(int argc, char **argv, struct vd_error *err);
int cmd_top(int argc, char **argv, struct vd_error *err);
int cmd_version(int argc, char **argv, struct vd_error *err);
int cmd_validate(int argc, char **argv, struct vd_error *err);

#endif
