/*
 * vdctl validate, run as a user runs it: the built binary ($VD_VDCTL_BIN,
 * default build/vdctl) on good and bad files, checking exit status, stdout
 * and stderr.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vdtest.h"

struct run {
	int status; /* exit status, or -1 when killed */
	char *out, *err;
};

static char *
slurp_fd(int fd)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	lseek(fd, 0, SEEK_SET);
	f = fdopen(fd, "r");
	assert_non_null(f);
	if (getdelim(&buf, &len, '\0', f) < 0) {
		free(buf);
		buf = strdup("");
	}
	fclose(f);
	return buf;
}

static int
temp_fd(void)
{
	char path[] = "/tmp/vd-test-cli-XXXXXX";
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	unlink(path);
	return fd;
}

/* Run vdctl with ARGS (NULL-terminated), stdin from STDIN_PATH or
 * /dev/null. */
static struct run
run_vdctl(const char *stdin_path, const char *const *args)
{
	const char *bin = vt_env("VD_VDCTL_BIN", "build/vdctl");
	char *argv[16];
	int out = temp_fd(), err = temp_fd(), status;
	struct run r;
	size_t n = 0;
	pid_t pid;

	argv[n++] = strdup(bin);
	for (; *args && n < 15; args++)
		argv[n++] = strdup(*args);
	argv[n] = NULL;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int in = open(stdin_path ? stdin_path : "/dev/null", O_RDONLY);

		if (in < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
			_exit(127);
		execv(bin, argv);
		fprintf(stderr, "cannot run %s: %s\n", bin, strerror(errno));
		_exit(127);
	}
	for (size_t i = 0; i < n; i++)
		free(argv[i]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	r.out = slurp_fd(out);
	r.err = slurp_fd(err);
	return r;
}

static void
run_free(struct run *r)
{
	free(r->out);
	free(r->err);
}

static char *
fixture(const char *name)
{
	static char path[4096];

	snprintf(path, sizeof(path), "%s/tests/unit/manifests/%s", vt_env("VD_ROOT", "."), name);
	return path;
}

static void
assert_contains(const char *haystack, const char *needle)
{
	if (!strstr(haystack, needle))
		fail_msg("'%s' not in:\n%s", needle, haystack);
}

static void
test_good_file(void **state)
{
	struct run r = run_vdctl(NULL, (const char *[]){ "validate",
				 fixture("good-docker-minimal.yaml"), NULL });

	(void)state;
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out, "ok\napi: docker vdctl/example-svc:latest, 1 replica x "
			    "1 cpu, 256 MiB, port 8080\n");
	assert_string_equal(r.err, "");
	run_free(&r);
}

static void
test_reference_summary(void **state)
{
	char path[4096];
	struct run r;

	(void)state;
	snprintf(path, sizeof(path), "%s", vt_path("manifests/reference.yaml"));
	r = run_vdctl(NULL, (const char *[]){ "validate", path, NULL });
	assert_int_equal(r.status, 0);
	assert_contains(r.out, "ok\nweb: docker vdctl/example-svc:latest, 3 replicas x 1.5 "
			"cpus, 1000 MiB, port 8080, balancer 127.0.0.1:8000 "
			"least-outstanding, autoscale 1-8\n");
	assert_contains(r.out, "/examples/images/vmlinuz + /");
	assert_contains(r.out, "vm-kernel: libvirt kernel /");
	assert_contains(r.out, "balancer [::1]:8001 p2c");
	run_free(&r);
}

static void
test_bad_file(void **state)
{
	char path[4096], want[8400];
	struct run r;

	(void)state;
	snprintf(path, sizeof(path), "%s", fixture("bad-many.yaml"));
	r = run_vdctl(NULL, (const char *[]){ "validate", path, NULL });
	assert_int_equal(r.status, 2);
	assert_string_equal(r.out, "");
	snprintf(want, sizeof(want), "%s:5:11: invalid value 'three' for 'replicas': "
		 "expected an integer\n%s:8:9: ", path, path);
	assert_contains(r.err, want);
	snprintf(want, sizeof(want), "\nvdctl: error: 6 errors in %s\n", path);
	assert_contains(r.err, want);
	run_free(&r);
}

static void
test_json(void **state)
{
	struct run r = run_vdctl(NULL, (const char *[]){ "validate", "--json",
				 fixture("good-multi-doc.yaml"), NULL });
	json_t *j, *s;

	(void)state;
	assert_int_equal(r.status, 0);
	j = json_loads(r.out, 0, NULL);
	assert_non_null(j);
	assert_int_equal(json_array_size(j), 3);
	assert_string_equal(json_string_value(json_object_get(json_array_get(j, 2), "service")),
			    "batch");
	/* the manifest's keys, units in their names, null where unset */
	s = json_array_get(j, 1);
	assert_string_equal(json_string_value(json_object_get(json_object_get(s, "balancer"),
							      "listen")), "127.0.0.1:8001");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(s, "health"),
							    "interval_ms")), 2000);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(s, "resources"),
							    "milli_cpus")), 1000);
	assert_true(json_is_null(json_object_get(s, "vm")));
	assert_true(json_is_null(json_object_get(s, "autoscale")));
	json_decref(j);
	run_free(&r);
}

static void
test_quiet_and_stdin(void **state)
{
	struct run r = run_vdctl(fixture("good-libvirt-disk.yaml"),
				 (const char *[]){ "validate", "-q", "-", NULL });

	(void)state;
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out, "");
	run_free(&r);
	r = run_vdctl(fixture("bad-update.yaml"), (const char *[]){ "validate", "-", NULL });
	assert_int_equal(r.status, 2);
	assert_contains(r.err, "<stdin>:6:14: 'update.max_surge' and");
	run_free(&r);
}

static void
test_usage_errors(void **state)
{
	struct run r = run_vdctl(NULL, (const char *[]){ "validate", NULL });

	(void)state;
	assert_int_equal(r.status, 2);
	assert_contains(r.err, "vdctl: error: no manifest files given (see 'vdctl validate "
			"--help')");
	run_free(&r);
	r = run_vdctl(NULL, (const char *[]){ "validate", "--frobnicate", "x.yaml", NULL });
	assert_int_equal(r.status, 2);
	assert_contains(r.err, "unknown option '--frobnicate'");
	run_free(&r);
	r = run_vdctl(NULL, (const char *[]){ "validate", "/nonexistent/web.yaml", NULL });
	assert_int_equal(r.status, 2);
	assert_contains(r.err, "/nonexistent/web.yaml: cannot read: No such file or directory");
	run_free(&r);
}

static void
test_help(void **state)
{
	struct run r = run_vdctl(NULL, (const char *[]){ "validate", "--help", NULL });

	(void)state;
	assert_int_equal(r.status, 0);
	assert_contains(r.out, "usage: vdctl validate [--json] [-q] FILE...");
	run_free(&r);
	r = run_vdctl(NULL, (const char *[]){ "help", NULL });
	assert_int_equal(r.status, 0);
	assert_contains(r.out, "validate");
	run_free(&r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_file),
		cmocka_unit_test(test_reference_summary),
		cmocka_unit_test(test_bad_file),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_quiet_and_stdin),
		cmocka_unit_test(test_usage_errors),
		cmocka_unit_test(test_help),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
