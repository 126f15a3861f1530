/*
 * Units: sizes, durations, CPUs, integers and listen addresses as people
 * write them, in manifests and in command-line flags.
 *
 * Each parser takes a NUL-terminated string, stores the value and returns 0,
 * or returns -1 and fills err (code VD_EXIT_INPUT) with the reason alone,
 * e.g. "unknown unit 'X' (K, M, G, T, Ki, Mi, Gi or Ti)": the caller names
 * the value and the field ("invalid value '10X' for 'resources.memory': ").
 * Nothing is written to the output on failure.
 */
#ifndef VD_UNITS_H
#define VD_UNITS_H

#include <stddef.h>
#include <stdint.h>

#include "vd/error.h"

#define VD_KIB ((int64_t)1 << 10)
#define VD_MIB ((int64_t)1 << 20)
#define VD_GIB ((int64_t)1 << 30)
#define VD_TIB ((int64_t)1 << 40)

/* A decimal integer with an optional sign, within [min, max]. */
int vd_units_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out,
		   struct vd_error *err);

/* A size in bytes: "1048576", or a number with a binary unit, K/k, M/m, G/g,
 * T/t (x1024^n, as Docker reads them) or Ki/Mi/Gi/Ti: "512M", "1.5Gi".
 * A fraction is allowed when the result is a whole number of bytes. */
int vd_units_parse_size(const char *s, int64_t *bytes, struct vd_error *err);

/* A duration: one or more <integer><unit> with units ms, s, m, h, e.g.
 * "500ms", "1m30s". A bare number is an error (it says which unit to add). */
int vd_units_parse_duration_ms(const char *s, int64_t *ms, struct vd_error *err);

/* A number of CPUs, > 0 and <= 1024 with at most 3 decimals ("1.5"),
 * as milli-CPUs (1500). */
int vd_units_parse_milli_cpus(const char *s, int64_t *milli, struct vd_error *err);

/* A listen address HOST:PORT where HOST is an IPv4 address, an IPv6 address
 * in brackets or "localhost", and PORT 1-65535: "127.0.0.1:8000",
 * "[::1]:8000". *host is allocated (without brackets); free() it. */
int vd_units_parse_hostport(const char *s, char **host, int *port, struct vd_error *err);

/* Format BYTES for people: "256 MiB", "1.5 GiB", "9.2 MiB", "512 B" (one
 * decimal, dropped when it is zero). Returns buf. */
char *vd_units_format_size(int64_t bytes, char *buf, size_t size);

/* Format milli-CPUs as a number of CPUs: 1500 -> "1.5", 250 -> "0.25". */
char *vd_units_format_milli_cpus(int64_t milli, char *buf, size_t size);

/* Format a duration in ms the way vd_units_parse_duration_ms() reads it:
 * 90000 -> "1m30s", 500 -> "500ms", 0 -> "0s". Returns buf. */
char *vd_units_format_duration_ms(int64_t ms, char *buf, size_t size);

#endif
