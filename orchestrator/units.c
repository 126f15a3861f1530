/*
 * Units: the parsers and formatters behind every size, duration, CPU count
 * and listen address vdctl reads, so that a manifest and a command-line flag
 * accept exactly the same spellings.
 *
 * All arithmetic is exact and overflow-checked; nothing here allocates but
 * vd_units_parse_hostport()'s host.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vd/units.h"

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Read a run of decimal digits at *p into *v; advance *p past all of them.
 * Returns the number of digits read, or -1 when the value overflows. */
static int
read_digits(const char **p, int64_t *v)
{
	const char *s = *p;
	int64_t acc = 0;
	bool overflow = false;
	int n = 0;

	for (; is_digit(*s); s++, n += n < INT_MAX) {
		if (__builtin_mul_overflow(acc, 10, &acc) ||
		    __builtin_add_overflow(acc, *s - '0', &acc))
			overflow = true;
	}
	*p = s;
	*v = overflow ? INT64_MAX : acc;
	return overflow ? -1 : n;
}

static int
input_error(struct vd_error *err, const char *fmt, ...) VD_PRINTF(2, 3);

static int
input_error(struct vd_error *err, const char *fmt, ...)
{
	char msg[VD_ERROR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return vd_error_set(err, VD_EXIT_INPUT, "%s", msg);
}

/* ---------------------------------------------------------------- integers */

int
vd_units_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out, struct vd_error *err)
{
	const char *p = s;
	bool neg = false;
	int64_t v;
	int n;

	if (*p == '-' || *p == '+')
		neg = *p++ == '-';
	n = read_digits(&p, &v);
	if (n == 0 || *p != '\0')
		return input_error(err, "expected an integer");
	if (neg)
		v = -v;
	if (n < 0 || v < min || v > max) {
		if (max == INT64_MAX)
			return input_error(err, "must be at least %" PRId64, min);
		return input_error(err, "must be between %" PRId64 " and %" PRId64, min, max);
	}
	*out = v;
	return 0;
}

/* ------------------------------------------------------------------- sizes */

struct size_unit {
	const char *name;
	int shift; /* bytes = value << shift */
};

static const struct size_unit size_units[] = {
	{ "", 0 },
	{ "K", 10 }, { "k", 10 }, { "Ki", 10 },
	{ "M", 20 }, { "m", 20 }, { "Mi", 20 },
	{ "G", 30 }, { "g", 30 }, { "Gi", 30 },
	{ "T", 40 }, { "t", 40 }, { "Ti", 40 },
};

static int
size_unit_shift(const char *u)
{
	for (size_t i = 0; i < sizeof(size_units) / sizeof(size_units[0]); i++)
		if (strcmp(u, size_units[i].name) == 0)
			return size_units[i].shift;
	return -1;
}

/* The bytes in FRAC / 10^DIGITS of 2^SHIFT, when that is whole. */
static int
fraction_bytes(int64_t frac, int digits, int shift, int64_t *bytes)
{
	int64_t pow5 = 1;

	/* frac / 10^d * 2^s = (frac / 5^d) * 2^(s - d) */
	while (digits > 0 && frac % 10 == 0) {
		frac /= 10;
		digits--;
	}
	for (int i = 0; i < digits; i++)
		pow5 *= 5;
	if (frac % pow5)
		return -1;
	frac /= pow5;
	if (shift >= digits) {
		*bytes = frac << (shift - digits);
		return 0;
	}
	if (frac % ((int64_t)1 << (digits - shift)))
		return -1;
	*bytes = frac >> (digits - shift);
	return 0;
}

int
vd_units_parse_size(const char *s, int64_t *bytes, struct vd_error *err)
{
	const char *p = s;
	int64_t whole, frac = 0, fbytes = 0, total;
	int n, digits = 0, shift;

	if (*p == '-')
		return input_error(err, "sizes cannot be negative");
	n = read_digits(&p, &whole);
	if (n == 0)
		return input_error(err, "expected a size like 512M, 1.5G or 1073741824");
	if (n < 0)
		return input_error(err, "size is too large");
	if (*p == '.') {
		p++;
		digits = read_digits(&p, &frac);
		if (digits <= 0 || digits > 18)
			return input_error(err, digits ? "too many decimals"
						       : "expected digits after '.'");
	}
	shift = size_unit_shift(p);
	if (shift < 0) {
		if (strcasecmp(p, "KB") == 0 || strcasecmp(p, "MB") == 0 ||
		    strcasecmp(p, "GB") == 0 || strcasecmp(p, "TB") == 0)
			return input_error(err, "unknown unit '%s' (sizes are binary: "
					   "write '%c' or '%ci')", p, toupper((unsigned char)p[0]),
					   toupper((unsigned char)p[0]));
		return input_error(err, "unknown unit '%s' (K, M, G, T, Ki, Mi, Gi or Ti)", p);
	}
	if (digits && fraction_bytes(frac, digits, shift, &fbytes) < 0)
		return input_error(err, "not a whole number of bytes");
	if (shift >= 63 || whole > (INT64_MAX >> shift) ||
	    __builtin_add_overflow(whole << shift, fbytes, &total))
		return input_error(err, "size is too large");
	*bytes = total;
	return 0;
}

/* --------------------------------------------------------------- durations */

struct duration_unit {
	const char *name;
	int64_t ms;
};

/* "ms" before "m", so the longest unit matches */
static const struct duration_unit duration_units[] = {
	{ "ms", 1 },
	{ "s", 1000 },
	{ "m", 60 * 1000 },
	{ "h", 60 * 60 * 1000 },
};

static const struct duration_unit *
duration_unit(const char *p)
{
	for (size_t i = 0; i < sizeof(duration_units) / sizeof(duration_units[0]); i++) {
		size_t len = strlen(duration_units[i].name);

		if (strncmp(p, duration_units[i].name, len) == 0 &&
		    !(p[len] >= 'a' && p[len] <= 'z'))
			return &duration_units[i];
	}
	return NULL;
}

int
vd_units_parse_duration_ms(const char *s, int64_t *ms, struct vd_error *err)
{
	const struct duration_unit *u;
	const char *p = s;
	int64_t total = 0, v;
	int n;

	if (*p == '-')
		return input_error(err, "durations cannot be negative");
	if (*p == '\0')
		return input_error(err, "expected a duration like 500ms, 2s or 1m30s");
	while (*p) {
		const char *start = p;

		n = read_digits(&p, &v);
		if (n == 0)
			return input_error(err, "expected a duration like 500ms, 2s or 1m30s");
		if (n < 0)
			return input_error(err, "duration is too long");
		if (*p == '.')
			return input_error(err, "fractions are not allowed in durations "
					   "(use a smaller unit: '1500ms', not '1.5s')");
		if (*p == '\0') {
			if (start == s)
				return input_error(err, "durations need a unit: '%s' -> '%ss'?", s, s);
			return input_error(err, "missing unit after '%s' (ms, s, m or h)", start);
		}
		u = duration_unit(p);
		if (!u) {
			const char *end = p;

			while (*end && !is_digit(*end))
				end++;
			return input_error(err, "unknown unit '%.*s' (ms, s, m or h)",
					   (int)(end - p > 16 ? 16 : end - p), p);
		}
		p += strlen(u->name);
		if (__builtin_mul_overflow(v, u->ms, &v) ||
		    __builtin_add_overflow(total, v, &total))
			return input_error(err, "duration is too long");
	}
	*ms = total;
	return 0;
}

/* -------------------------------------------------------------------- cpus */

int
vd_units_parse_milli_cpus(const char *s, int64_t *milli, struct vd_error *err)
{
	const char *p = s;
	int64_t whole, frac = 0;
	int n;

	if (*p == '-')
		return input_error(err, "must be greater than 0");
	n = read_digits(&p, &whole);
	if (n == 0)
		return input_error(err, "expected a number of CPUs like 1 or 1.5");
	if (*p == '.') {
		if (!is_digit(*++p))
			return input_error(err, "expected digits after '.'");
		/* three digits of milli-CPUs, then only zeros */
		for (int i = 0; i < 3; i++)
			frac = frac * 10 + (is_digit(*p) ? *p++ - '0' : 0);
		while (*p == '0')
			p++;
		if (is_digit(*p))
			return input_error(err, "at most 3 decimals (milli-CPUs)");
	}
	if (*p != '\0')
		return input_error(err, "expected a number of CPUs like 1 or 1.5");
	if (n < 0 || whole > 1024 || (whole == 1024 && frac > 0))
		return input_error(err, "must be at most 1024");
	if (whole == 0 && frac == 0)
		return input_error(err, "must be greater than 0");
	*milli = whole * 1000 + frac;
	return 0;
}

/* ---------------------------------------------------------- listen address */

static int
parse_port(const char *s, int *port, struct vd_error *err)
{
	const char *p = s;
	int64_t v;
	int n;

	n = read_digits(&p, &v);
	if (n == 0 || *p != '\0')
		return input_error(err, "expected a port number after ':'");
	if (n < 0 || v < 1 || v > 65535)
		return input_error(err, "port must be between 1 and 65535");
	*port = (int)v;
	return 0;
}

int
vd_units_parse_hostport(const char *s, char **host, int *port, struct vd_error *err)
{
	unsigned char addr[sizeof(struct in6_addr)];
	const char *colon, *h = s;
	size_t hlen;
	char *copy;
	bool v6 = false;

	if (*s == '[') {
		colon = strchr(s, ']');
		if (!colon || colon[1] != ':')
			return input_error(err, "expected [IPV6]:PORT, e.g. [::1]:8000");
		h = s + 1;
		hlen = (size_t)(colon - h);
		colon++;
		v6 = true;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return input_error(err, "expected HOST:PORT, e.g. 127.0.0.1:8000");
		if (memchr(s, ':', (size_t)(colon - s)))
			return input_error(err, "IPv6 addresses need brackets: [::1]:8000");
		hlen = (size_t)(colon - s);
	}
	if (hlen == 0)
		return input_error(err, "missing host before ':' (e.g. 127.0.0.1:8000)");
	if (parse_port(colon + 1, port, err) < 0)
		return -1;
	copy = strndup(h, hlen);
	if (!copy)
		return vd_error_errno(err, ENOMEM, "listen address");
	if (!(v6 ? inet_pton(AF_INET6, copy, addr) == 1
		 : strcmp(copy, "localhost") == 0 || inet_pton(AF_INET, copy, addr) == 1)) {
		input_error(err, "'%s' is not an IP address or 'localhost'", copy);
		free(copy);
		return -1;
	}
	*host = copy;
	return 0;
}

/* -------------------------------------------------------------- formatting */

char *
vd_units_format_size(int64_t bytes, char *buf, size_t size)
{
	static const char *const names[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	int i = 0;

	while (i < 4 && bytes >= ((int64_t)1 << (10 * (i + 1))))
		i++;
	if (i == 0 || bytes % ((int64_t)1 << (10 * i)) == 0) {
		snprintf(buf, size, "%" PRId64 " %s", bytes >> (10 * i), names[i]);
	} else {
		/* one decimal, rounded half up, in exact integer arithmetic */
		int64_t unit = (int64_t)1 << (10 * i);
		int64_t tenths = (bytes / unit) * 10 + ((bytes % unit) * 10 + unit / 2) / unit;

		if (tenths % 10)
			snprintf(buf, size, "%" PRId64 ".%" PRId64 " %s", tenths / 10,
				 tenths % 10, names[i]);
		else
			snprintf(buf, size, "%" PRId64 " %s", tenths / 10, names[i]);
	}
	return buf;
}

char *
vd_units_format_milli_cpus(int64_t milli, char *buf, size_t size)
{
	int64_t frac = milli % 1000;
	int width = 3;

	if (frac == 0) {
		snprintf(buf, size, "%" PRId64, milli / 1000);
		return buf;
	}
	while (frac % 10 == 0) {
		frac /= 10;
		width--;
	}
	snprintf(buf, size, "%" PRId64 ".%0*" PRId64, milli / 1000, width, frac);
	return buf;
}

char *
vd_units_format_duration_ms(int64_t ms, char *buf, size_t size)
{
	size_t len = 0;

	buf[0] = '\0';
	if (ms == 0) {
		snprintf(buf, size, "0s");
		return buf;
	}
	for (size_t i = sizeof(duration_units) / sizeof(duration_units[0]); i-- > 0;) {
		const struct duration_unit *u = &duration_units[i];

		if (ms >= u->ms && len < size) {
			len += (size_t)snprintf(buf + len, size - len, "%" PRId64 "%s",
						ms / u->ms, u->name);
			ms %= u->ms;
		}
	}
	return buf;
}
