/*
 * The command line, run as a user types it: the built binary
 * ($VD_VDCTL_BIN, default build/vdctl) with mistakes in it. Every case here
 * is refused before any engine is asked, with exit status 2.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vdtest.h"

static char dir[] = "/tmp/vd-test-cli-XXXXXX";

/* Run vdctl ARGS... (NULL-terminated) with the state directory in the
 * environment pointing at an empty directory of the test's. */
static void
vdctl(struct vt_result *r, ...)
{
	static char bin[4096];
	char *argv[16];
	size_t n = 0;
	va_list ap;
	char *a;

	snprintf(bin, sizeof(bin), "%s", vt_env("VD_VDCTL_BIN", "build/vdctl"));
	argv[n++] = bin;
	va_start(ap, r);
	while ((a = va_arg(ap, char *)) && n < 15)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	assert_int_equal(vt_run(argv, 30, r) < 0 ? -1 : 0, 0);
}

static int
group_setup(void **state)
{
	(void)state;
	if (!mkdtemp(dir))
		return -1;
	setenv("VDCTL_STATE_DIR", dir, 1);
	/* no engine may be reached: point them where none is */
	setenv("DOCKER_HOST", "unix:///nonexistent/vd-test-cli.sock", 1);
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	vt_rm_tree(dir);
	return 0;
}

static void
test_unknown_command(void **state)
{
	struct vt_result r;

	(void)state;
	vdctl(&r, "aply", "x.yaml", NULL);
	assert_exit(&r, 2);
	assert_has(r.err, "'aply' is not a vdctl command (did you mean 'apply'?)");
	vt_result_clear(&r);
	vdctl(&r, "frobnicate", NULL);
	assert_exit(&r, 2);
	assert_has(r.err, "'frobnicate' is not a vdctl command (see 'vdctl help')");
	vt_result_clear(&r);
}

static void
test_unknown_option(void **state)
{
	struct vt_result r;

	(void)state;
	vdctl(&r, "apply", "--dryrun", "x.yaml", NULL);
	assert_exit(&r, 2);
	assert_has(r.err, "unknown option '--dryrun' (did you mean '--dry-run'?)");
	vt_result_clear(&r);
	vdctl(&r, "apply", "--timeout", NULL);
	assert_exit(&r, 2);
	assert_has(r.err, "option '--timeout' needs a value");
	vt_result_clear(&r);
	vdctl(&r, "--stat-dir", "/tmp", "get", NULL);
	assert_exit(&r, 2);
	assert_has(r.err, "unknown option '--stat-dir' (did you mean '--state-dir'?)");
	vt_result_clear(&r);
	vdctl(&r, "get", "--state-dir", NULL);
	assert_exit(&r, 2);
	assert_has(r.err, "option '--state-dir' needs a value");
	vt_result_clear(&r);
}

/* Global options after the command's name are global options. */
static void
test_global_options_after(void **state)
{
	char other[64];
	struct vt_result r;

	(void)state;
	snprintf(other, sizeof(other), "%s/other", dir);
	vdctl(&r, "scale", "--state-dir", other, "nosuch=1", NULL);
	assert_exit(&r, 2);
	assert_has(r.err, "service 'nosuch' is not known here");
	assert_has(r.err, other);
	vt_result_clear(&r);
	vdctl(&r, "scale", "nosuch=1", "--state-dir=/tmp/vd-elsewhere", NULL);
	assert_exit(&r, 2);
	assert_has(r.err, "/tmp/vd-elsewhere");
	vt_result_clear(&r);
	/* after "--", an argument is the command's, whatever it looks like */
	vdctl(&r, "scale", "--", "--state-dir=x", NULL);
	assert_exit(&r, 2);
	assert_has(r.err, "'--state-dir' is not a service name");
	vt_result_clear(&r);
}

/* A service name is also a file name in the state directory: one that is a
 * path is refused by every command that takes one. */
static void
test_names_that_are_paths(void **state)
{
	struct vt_result r;

	(void)state;
	vdctl(&r, "scale", "../services/x=1", NULL);
	assert_exit(&r, 2);
	assert_has(r.err, "'../services/x' is not a service name");
	vt_result_clear(&r);
	vdctl(&r, "scale", "ok=1", "../../tmp/y=2", NULL);
	assert_exit(&r, 2);
	assert_has(r.err, "'../../tmp/y' is not a service name");
	assert_null(strstr(r.err, "'ok'")); /* refused before anything is looked up */
	vt_result_clear(&r);
	vdctl(&r, "resize", "../../tmp/y", "--cpus", "1", NULL);
	assert_exit(&r, 2);
	assert_has(r.err, "is not a service name");
	vt_result_clear(&r);
	vdctl(&r, "get", "../x", NULL);
	assert_exit(&r, 2);
	assert_has(r.err, "'../x' is not a service name");
	vt_result_clear(&r);
	vdctl(&r, "delete", "../x", NULL);
	assert_exit(&r, 2);
	vt_result_clear(&r);
}

/* Engines refuse a share of a CPU below 0.01: so do resize and validate. */
static void
test_cpu_floor(void **state)
{
	char path[96];
	struct vt_result r;
	FILE *f;

	(void)state;
	snprintf(path, sizeof(path), "%s/tiny.yaml", dir);
	assert_non_null(f = fopen(path, "w"));
	fputs("service: tiny\nbackend: docker\nimage: x\nreplicas: 1\n"
	      "resources: {cpus: 0.001}\n", f);
	fclose(f);
	vdctl(&r, "validate", path, NULL);
	assert_exit(&r, 2);
	assert_has(r.err, "engines enforce at least 0.01 cpus");
	vt_result_clear(&r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unknown_command),
		cmocka_unit_test(test_unknown_option),
		cmocka_unit_test(test_global_options_after),
		cmocka_unit_test(test_names_that_are_paths),
		cmocka_unit_test(test_cpu_floor),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
