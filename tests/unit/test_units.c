/*
 * Units: every spelling of sizes, durations, CPUs, integers and listen
 * addresses that is accepted, and the reason given for those that are not.
 */
#include <stdlib.h>
#include <string.h>

#include "vdtest.h"
#include "vd/units.h"

struct ok_case {
	const char *in;
	int64_t want;
};

struct bad_case {
	const char *in;
	const char *reason; /* a substring of the message */
};

typedef int (*parse_fn)(const char *s, int64_t *out, struct vd_error *err);

static void
check_ok(parse_fn parse, const struct ok_case *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct vd_error err = VD_ERROR_INIT;
		int64_t v = -12345;

		if (parse(c[i].in, &v, &err) != 0)
			fail_msg("'%s' refused: %s", c[i].in, err.msg);
		if (v != c[i].want)
			fail_msg("'%s' -> %lld, want %lld", c[i].in, (long long)v,
				 (long long)c[i].want);
	}
}

static void
check_bad(parse_fn parse, const struct bad_case *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct vd_error err = VD_ERROR_INIT;
		int64_t v = -12345;

		if (parse(c[i].in, &v, &err) != -1)
			fail_msg("'%s' accepted as %lld", c[i].in, (long long)v);
		assert_int_equal(err.code, VD_EXIT_INPUT);
		assert_int_equal(v, -12345); /* untouched on failure */
		if (!strstr(err.msg, c[i].reason))
			fail_msg("'%s': message '%s' lacks '%s'", c[i].in, err.msg, c[i].reason);
	}
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void
test_size_ok(void **state)
{
	static const struct ok_case cases[] = {
		{ "0", 0 },
		{ "1048576", 1048576 },
		{ "1K", 1024 },
		{ "1k", 1024 },
		{ "1Ki", 1024 },
		{ "1000M", 1000 * VD_MIB },
		{ "256Mi", 256 * VD_MIB },
		{ "6m", 6 * VD_MIB },
		{ "1.5G", 3 * VD_GIB / 2 },
		{ "1.5Gi", 3 * VD_GIB / 2 },
		{ "0.5K", 512 },
		{ "1.25K", 1280 },
		{ "0.0009765625M", 1024 }, /* 2^-10 M: exact */
		{ "1.000K", 1024 },
		{ "1T", VD_TIB },
		{ "2t", 2 * VD_TIB },
		{ "8388607T", 8388607 * VD_TIB },
		{ "9223372036854775807", INT64_MAX },
	};

	(void)state;
	check_ok(vd_units_parse_size, cases, N(cases));
}

static void
test_size_bad(void **state)
{
	static const struct bad_case cases[] = {
		{ "", "expected a size" },
		{ "M", "expected a size" },
		{ "lots", "expected a size" },
		{ "-1G", "negative" },
		{ "10X", "unknown unit 'X'" },
		{ "1 G", "unknown unit ' G'" },
		{ "1000MB", "sizes are binary" },
		{ "1gb", "sizes are binary" },
		{ "1KiB", "unknown unit 'KiB'" },
		{ "1.1", "not a whole number of bytes" },
		{ "6.1K", "not a whole number of bytes" },
		{ "0.1K", "not a whole number of bytes" },
		{ "1.", "expected digits" },
		{ "8388608T", "too large" },
		{ "9223372036854775808", "too large" },
		{ "99999999999999999999999", "too large" },
		{ "1.0000000000000000001K", "too many decimals" },
	};

	(void)state;
	check_bad(vd_units_parse_size, cases, N(cases));
}

static void
test_duration_ok(void **state)
{
	static const struct ok_case cases[] = {
		{ "0s", 0 },
		{ "500ms", 500 },
		{ "2s", 2000 },
		{ "1m30s", 90000 },
		{ "1m", 60000 },
		{ "2h", 7200000 },
		{ "1h2m3s4ms", 3723004 },
		{ "90s", 90000 },
	};

	(void)state;
	check_ok(vd_units_parse_duration_ms, cases, N(cases));
}

static void
test_duration_bad(void **state)
{
	static const struct bad_case cases[] = {
		{ "2", "durations need a unit: '2' -> '2s'?" },
		{ "", "expected a duration" },
		{ "s", "expected a duration" },
		{ "1.5s", "fractions are not allowed" },
		{ "10sec", "unknown unit 'sec'" },
		{ "1d", "unknown unit 'd'" },
		{ "1us", "unknown unit 'us'" },
		{ "-1s", "negative" },
		{ "1m30", "missing unit after '30'" },
		{ "1 s", "unknown unit ' s'" },
		{ "9999999999999999h", "too long" },
	};

	(void)state;
	check_bad(vd_units_parse_duration_ms, cases, N(cases));
}

static void
test_cpus(void **state)
{
	static const struct ok_case ok[] = {
		{ "1", 1000 },
		{ "1.5", 1500 },
		{ "0.25", 250 },
		{ "0.001", 1 },
		{ "1024", 1024000 },
		{ "2.500", 2500 },
		{ "1.50000", 1500 },
		{ "1.500000000000000000000000", 1500 },
	};
	static const struct bad_case bad[] = {
		{ "0", "greater than 0" },
		{ "0.000", "greater than 0" },
		{ "-1", "greater than 0" },
		{ "1025", "at most 1024" },
		{ "1024.001", "at most 1024" },
		{ "0.0005", "at most 3 decimals" },
		{ "lots", "expected a number of CPUs" },
		{ "1e3", "expected a number of CPUs" },
		{ ".5", "expected a number of CPUs" },
		{ "1.", "expected digits" },
		{ "2000x", "expected a number of CPUs" },
		{ "99999999999999999999", "at most 1024" },
	};

	(void)state;
	check_ok(vd_units_parse_milli_cpus, ok, N(ok));
	check_bad(vd_units_parse_milli_cpus, bad, N(bad));
}

static int
parse_port_range(const char *s, int64_t *out, struct vd_error *err)
{
	return vd_units_parse_int64(s, 1, 65535, out, err);
}

static int
parse_any_int(const char *s, int64_t *out, struct vd_error *err)
{
	return vd_units_parse_int64(s, INT64_MIN, INT64_MAX, out, err);
}

static void
test_int(void **state)
{
	static const struct ok_case ok[] = {
		{ "1", 1 }, { "+80", 80 }, { "65535", 65535 }, { "007", 7 },
	};
	static const struct bad_case bad[] = {
		{ "0", "between 1 and 65535" },
		{ "65536", "between 1 and 65535" },
		{ "-1", "between 1 and 65535" },
		{ "1.5", "expected an integer" },
		{ "three", "expected an integer" },
		{ "0x10", "expected an integer" },
		{ "", "expected an integer" },
		{ "-", "expected an integer" },
		{ "99999999999999999999", "between 1 and 65535" },
	};
	static const struct ok_case wide[] = {
		{ "-9223372036854775807", -INT64_MAX },
		{ "9223372036854775807", INT64_MAX },
	};

	(void)state;
	check_ok(parse_port_range, ok, N(ok));
	check_bad(parse_port_range, bad, N(bad));
	check_ok(parse_any_int, wide, N(wide));
}

static void
test_hostport(void **state)
{
	static const struct {
		const char *in, *host;
		int port;
	} ok[] = {
		{ "127.0.0.1:8000", "127.0.0.1", 8000 },
		{ "0.0.0.0:1", "0.0.0.0", 1 },
		{ "localhost:65535", "localhost", 65535 },
		{ "[::1]:8000", "::1", 8000 },
		{ "[::]:80", "::", 80 },
		{ "[fe80::1]:443", "fe80::1", 443 },
	};
	static const struct bad_case bad[] = {
		{ "8000", "expected HOST:PORT" },
		{ ":8000", "missing host" },
		{ "::1:8000", "IPv6 addresses need brackets" },
		{ "[::1]8000", "expected [IPV6]:PORT" },
		{ "[::1:8000", "expected [IPV6]:PORT" },
		{ "[127.0.0.1]:80", "not an IP address" },
		{ "example.com:80", "'example.com' is not an IP address or 'localhost'" },
		{ "256.0.0.1:80", "not an IP address" },
		{ "127.0.0.1:0", "between 1 and 65535" },
		{ "127.0.0.1:65536", "between 1 and 65535" },
		{ "127.0.0.1:", "expected a port" },
		{ "127.0.0.1:http", "expected a port" },
	};

	(void)state;
	for (size_t i = 0; i < N(ok); i++) {
		struct vd_error err = VD_ERROR_INIT;
		char *host = NULL;
		int port = 0;

		if (vd_units_parse_hostport(ok[i].in, &host, &port, &err) != 0)
			fail_msg("'%s' refused: %s", ok[i].in, err.msg);
		assert_string_equal(host, ok[i].host);
		assert_int_equal(port, ok[i].port);
		free(host);
	}
	for (size_t i = 0; i < N(bad); i++) {
		struct vd_error err = VD_ERROR_INIT;
		char *host = NULL;
		int port = 0;

		if (vd_units_parse_hostport(bad[i].in, &host, &port, &err) != -1)
			fail_msg("'%s' accepted", bad[i].in);
		assert_null(host);
		assert_int_equal(err.code, VD_EXIT_INPUT);
		if (!strstr(err.msg, bad[i].reason))
			fail_msg("'%s': message '%s' lacks '%s'", bad[i].in, err.msg, bad[i].reason);
	}
}

static void
test_format(void **state)
{
	char buf[32];

	(void)state;
	assert_string_equal(vd_units_format_size(0, buf, sizeof(buf)), "0 B");
	assert_string_equal(vd_units_format_size(512, buf, sizeof(buf)), "512 B");
	assert_string_equal(vd_units_format_size(1024, buf, sizeof(buf)), "1 KiB");
	assert_string_equal(vd_units_format_size(1000 * VD_MIB, buf, sizeof(buf)), "1000 MiB");
	assert_string_equal(vd_units_format_size(3 * VD_GIB / 2, buf, sizeof(buf)), "1.5 GiB");
	assert_string_equal(vd_units_format_size(9646899, buf, sizeof(buf)), "9.2 MiB");
	assert_string_equal(vd_units_format_size(VD_MIB + 1, buf, sizeof(buf)), "1 MiB");
	assert_string_equal(vd_units_format_size(2 * VD_TIB, buf, sizeof(buf)), "2 TiB");
	assert_string_equal(vd_units_format_milli_cpus(1500, buf, sizeof(buf)), "1.5");
	assert_string_equal(vd_units_format_milli_cpus(1000, buf, sizeof(buf)), "1");
	assert_string_equal(vd_units_format_milli_cpus(250, buf, sizeof(buf)), "0.25");
	assert_string_equal(vd_units_format_milli_cpus(1, buf, sizeof(buf)), "0.001");
	assert_string_equal(vd_units_format_duration_ms(90000, buf, sizeof(buf)), "1m30s");
	assert_string_equal(vd_units_format_duration_ms(500, buf, sizeof(buf)), "500ms");
	assert_string_equal(vd_units_format_duration_ms(0, buf, sizeof(buf)), "0s");
	assert_string_equal(vd_units_format_duration_ms(3723004, buf, sizeof(buf)), "1h2m3s4ms");
}

/* What the formatters write, the parsers read back. */
static void
test_round_trip(void **state)
{
	static const int64_t sizes[] = { 1, 1024, 6 * VD_MIB, 3 * VD_GIB / 2, VD_TIB };
	static const int64_t durations[] = { 1, 999, 1000, 61001, 7200000 };
	char buf[32];
	int64_t v;

	(void)state;
	for (size_t i = 0; i < N(durations); i++) {
		assert_int_equal(vd_units_parse_duration_ms(vd_units_format_duration_ms(durations[i], buf,
									    sizeof(buf)), &v, NULL), 0);
		assert_int_equal(v, durations[i]);
	}
	for (size_t i = 0; i < N(sizes); i++) {
		char *p;

		vd_units_format_size(sizes[i], buf, sizeof(buf));
		/* "1.5 GiB" -> "1.5Gi" */
		if ((p = strchr(buf, ' ')))
			memmove(p, p + 1, strlen(p));
		if ((p = strstr(buf, "iB")))
			p[1] = '\0';
		if ((p = strchr(buf, 'B')))
			*p = '\0';
		assert_int_equal(vd_units_parse_size(buf, &v, NULL), 0);
		assert_int_equal(v, sizes[i]);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_size_ok),
		cmocka_unit_test(test_size_bad),
		cmocka_unit_test(test_duration_ok),
		cmocka_unit_test(test_duration_bad),
		cmocka_unit_test(test_cpus),
		cmocka_unit_test(test_int),
		cmocka_unit_test(test_hostport),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
