/*
 * The leveled logger: one line per call on stderr, optionally timestamped.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "vd/log.h"

static enum vd_log_level current = VD_LOG_WARN;
static int timestamps;

static const char *const names[] = {
	[VD_LOG_ERROR] = "error",
	[VD_LOG_WARN] = "warn",
	[VD_LOG_INFO] = "info",
	[VD_LOG_DEBUG] = "debug",
};

void
vd_log_set_level(enum vd_log_level level)
{
	current = level;
}

enum vd_log_level
vd_log_get_level(void)
{
	return current;
}

int
vd_log_parse_level(const char *name)
{
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(name, names[i]) == 0)
			return (int)i;
	return -1;
}

void
vd_log_set_timestamps(int on)
{
	timestamps = on;
}

void
vd_log(enum vd_log_level level, const char *fmt, ...)
{
	char line[4096];
	size_t len = 0;
	va_list ap;

	if (level > current)
		return;
	if (timestamps) {
		struct timespec ts;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		len = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
		len += (size_t)snprintf(line + len, sizeof(line) - len, ".%03ldZ ",
					ts.tv_nsec / 1000000);
	}
	len += (size_t)snprintf(line + len, sizeof(line) - len, "%s: ", names[level]);
	va_start(ap, fmt);
	if (len < sizeof(line))
		vsnprintf(line + len, sizeof(line) - len, fmt, ap);
	va_end(ap);
	/* one write per line, so lines from several threads do not interleave */
	fprintf(stderr, "%s\n", line);
}
