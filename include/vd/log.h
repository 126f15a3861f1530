/*
 * A small leveled logger on stderr.
 *
 * Commands print their results on stdout; the logger is for what happens on
 * the way (progress, engine retries, the controller's one line per event).
 * The level comes from vd_log_set_level(), which the CLI sets from -v/-q and
 * from the VDCTL_LOG environment variable (error, warn, info, debug).
 */
#ifndef VD_LOG_H
#define VD_LOG_H

#include "vd/error.h"

enum vd_log_level {
	VD_LOG_ERROR,
	VD_LOG_WARN,
	VD_LOG_INFO,
	VD_LOG_DEBUG,
};

void vd_log_set_level(enum vd_log_level level);
enum vd_log_level vd_log_get_level(void);

/* Parse a level name; returns -1 for an unknown one. */
int vd_log_parse_level(const char *name);

/* Put a UTC timestamp before each line (for the controller's log). */
void vd_log_set_timestamps(int on);

void vd_log(enum vd_log_level level, const char *fmt, ...) VD_PRINTF(2, 3);

#define vd_error_log(...) vd_log(VD_LOG_ERROR, __VA_ARGS__)
#define vd_warn(...) vd_log(VD_LOG_WARN, __VA_ARGS__)
#define vd_info(...) vd_log(VD_LOG_INFO, __VA_ARGS__)
#define vd_debug(...) vd_log(VD_LOG_DEBUG, __VA_ARGS__)

#endif
