/*
 * Usage errors, shared by every command (and by the lean vdctl-lb binary).
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "vd/diag.h"

int
cli_usage_error(struct vd_error *err, const char *cmd, const char *fmt, ...)
{
	char msg[VD_ERROR_MSG_MAX / 2];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return vd_error_set(err, VD_EXIT_INPUT, "%s (see 'vdctl %s --help')", msg, cmd);
}

int
cli_unknown_option(struct vd_error *err, const char *cmd, const struct option *options,
		   const char *arg)
{
	char typed[64];
	struct vd_diag_guess g;
	size_t n = strcspn(arg, "=");

	snprintf(typed, sizeof(typed), "%.*s", (int)(n < sizeof(typed) ? n : sizeof(typed) - 1),
		 arg);
	vd_diag_guess_init(&g, typed + strspn(typed, "-"));
	for (const struct option *o = options; o && o->name; o++) {
		if (strncmp(typed, "--", 2) == 0 && strcmp(typed + 2, o->name) == 0)
			return cli_usage_error(err, cmd, "option '%s' needs a value", typed);
		vd_diag_guess_offer(&g, o->name);
	}
	if (g.pick)
		return cli_usage_error(err, cmd, "unknown option '%s' (did you mean '--%s'?)", arg,
				       g.pick);
	return cli_usage_error(err, cmd, "unknown option '%s'", arg);
}
