/*
 * Usage errors, shared by every command (and by the lean vdctl-lb binary).
 */
#include <stdarg.h>
#include <stdio.h>

#include "cli.h"

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
