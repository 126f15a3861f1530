/*
 * Manifests: good files load with every default filled in; every rule of the
 * format has a bad file whose diagnostics (line, column, message) are
 * checked in order; hostile input is refused quickly with a clear message.
 *
 * Each tests/unit/manifests/bad-*.yaml lists what it must produce in comments
 * at its end, one a line and in order:
 *     # expect: LINE:COL: a substring of the message
 * good-*.yaml files have none and must load.
 */
#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vdtest.h"
#include "vd/manifest.h"
#include "vd/state.h"

#define MAX_EXPECT 64
#define HOSTILE_SECONDS 10.0 /* "quickly", with room for valgrind */

struct expect {
	int line, col;
	char msg[512];
};

static const char *
fixture(const char *name)
{
	static char path[4096];

	snprintf(path, sizeof(path), "%s", vt_path("tests/unit/manifests/"));
	strncat(path, name, sizeof(path) - strlen(path) - 1);
	return path;
}

/* The "# expect:" lines of PATH. */
static size_t
read_expectations(const char *path, struct expect *e, size_t max)
{
	FILE *f = fopen(path, "r");
	char line[1024];
	size_t n = 0;

	if (!f)
		fail_msg("cannot open %s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		int used = 0;

		if (strncmp(line, "# expect: ", 10) != 0)
			continue;
		assert_true(n < max);
		if (sscanf(line + 10, "%d:%d: %n", &e[n].line, &e[n].col, &used) != 2 || !used)
			fail_msg("%s: malformed expectation: %s", path, line);
		snprintf(e[n].msg, sizeof(e[n].msg), "%s", line + 10 + used);
		e[n].msg[strcspn(e[n].msg, "\n")] = '\0';
		n++;
	}
	fclose(f);
	return n;
}

static void
dump_diags(const struct vd_diags *d)
{
	for (size_t i = 0; i < d->n; i++)
		print_message("   got %d:%d: %s\n", d->items[i].line, d->items[i].col,
			      d->items[i].msg);
}

static void
assert_diag(const struct vd_diags *d, size_t i, int line, int col, const char *substr)
{
	if (i >= d->n) {
		dump_diags(d);
		fail_msg("diagnostic %zu missing (want %d:%d: %s)", i, line, col, substr);
	}
	if (d->items[i].line != line || d->items[i].col != col ||
	    !strstr(d->items[i].msg, substr)) {
		dump_diags(d);
		fail_msg("diagnostic %zu is %d:%d: %s\n   want %d:%d: %s", i, d->items[i].line,
			 d->items[i].col, d->items[i].msg, line, col, substr);
	}
}

/* Load fixture NAME and hold it to its expectations. Returns the manifest
 * of a good file (to free), NULL for a bad one. */
static struct vd_manifest *
check_fixture(const char *name)
{
	struct expect e[MAX_EXPECT];
	struct vd_error err = VD_ERROR_INIT;
	struct vd_diags diags = VD_DIAGS_INIT;
	struct vd_manifest *m = NULL;
	const char *path = fixture(name);
	size_t n = read_expectations(path, e, MAX_EXPECT);
	int ret = vd_manifest_load(&path, 1, &m, &diags, &err);

	if (n == 0) {
		if (ret != 0) {
			dump_diags(&diags);
			fail_msg("%s: refused: %s", name, err.msg);
		}
		assert_non_null(m);
		assert_int_equal(diags.n, 0);
		return m;
	}
	assert_int_equal(ret, -1);
	assert_null(m);
	assert_int_equal(err.code, VD_EXIT_INPUT);
	for (size_t i = 0; i < n; i++)
		assert_diag(&diags, i, e[i].line, e[i].col, e[i].msg);
	if (diags.n != n) {
		dump_diags(&diags);
		fail_msg("%s: %zu diagnostics, want %zu", name, diags.n, n);
	}
	for (size_t i = 0; i < n; i++)
		assert_string_equal(diags.items[i].file, path);
	vd_diags_clear(&diags);
	return NULL;
}

static void
check_bad(const char *name)
{
	assert_null(check_fixture(name));
}

/* Parse YAML text; returns what vd_manifest_parse() returned. */
static int
parse(const char *text, size_t len, struct vd_manifest **m, struct vd_diags *diags,
      struct vd_error *err)
{
	return vd_manifest_parse("t.yaml", text, len, m, diags, err);
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Parse hostile TEXT: it must be refused within HOSTILE_SECONDS with a first
 * diagnostic at LINE:COL containing SUBSTR. Returns the diagnostics count. */
static size_t
check_refused(const char *text, size_t len, int line, int col, const char *substr)
{
	struct vd_error err = VD_ERROR_INIT;
	struct vd_diags diags = VD_DIAGS_INIT;
	struct vd_manifest *m = NULL;
	double t0 = now();
	size_t n;

	assert_int_equal(parse(text, len, &m, &diags, &err), -1);
	if (now() - t0 > HOSTILE_SECONDS)
		fail_msg("took %.1f s", now() - t0);
	assert_null(m);
	assert_int_equal(err.code, VD_EXIT_INPUT);
	assert_diag(&diags, 0, line, col, substr);
	n = diags.n;
	assert_true(n <= VD_MANIFEST_MAX_DIAGS + 1);
	vd_diags_clear(&diags);
	return n;
}

/* ============================================================ good files */

static void
test_good_docker_minimal_normal_form(void **state)
{
	struct vd_manifest *m = check_fixture("good-docker-minimal.yaml");
	json_t *got = vd_manifest_to_json(m);
	json_t *want = json_loads(
		"[{\"service\": \"api\", \"backend\": \"docker\","
		"  \"image\": \"vdctl/example-svc:latest\", \"vm\": null, \"command\": null,"
		"  \"env\": null, \"port\": 8080, \"replicas\": 1,"
		"  \"resources\": {\"milli_cpus\": 1000, \"memory_bytes\": 268435456},"
		"  \"health\": {\"http\": null, \"tcp\": true, \"interval_ms\": 2000,"
		"              \"timeout_ms\": 1000, \"retries\": 3, \"start_period_ms\": 10000},"
		"  \"balancer\": null, \"autoscale\": null,"
		"  \"update\": {\"max_surge\": 1, \"max_unavailable\": 0}}]", 0, NULL);

	(void)state;
	assert_non_null(want);
	if (!json_equal(got, want)) {
		char *s = json_dumps(got, JSON_INDENT(2));

		fail_msg("normal form:\n%s", s);
	}
	assert_int_equal(m->services[0].line, 2);
	assert_string_equal(m->services[0].file, fixture("good-docker-minimal.yaml"));
	json_decref(got);
	json_decref(want);
	vd_manifest_free(m);
}

/* Sections present but mostly empty of keys get their defaults too. */
static void
test_section_defaults(void **state)
{
	static const char text[] =
		"service: web\nbackend: docker\nimage: x\nreplicas: 2\n"
		"balancer: {listen: \"[::1]:8000\"}\n"
		"autoscale: {target_queue: 3}\n";
	struct vd_error err = VD_ERROR_INIT;
	struct vd_diags diags = VD_DIAGS_INIT;
	struct vd_manifest *m = NULL;
	json_t *got, *want;

	(void)state;
	assert_int_equal(parse(text, strlen(text), &m, &diags, &err), 0);
	got = vd_manifest_to_json(m);
	want = json_loads(
		"{\"listen\": \"[::1]:8000\", \"policy\": \"least-outstanding\","
		" \"max_inflight\": 0, \"queue_limit\": 1000, \"queue_timeout_ms\": 60000,"
		" \"on_client_gone\": \"finish\"}", 0,
		NULL);
	assert_true(json_equal(json_object_get(json_array_get(got, 0), "balancer"), want));
	json_decref(want);
	want = json_loads(
		"{\"min\": 1, \"max\": 10, \"target_p95_ms\": null, \"target_queue\": 3.0,"
		" \"up_window_ms\": 10000, \"down_window_ms\": 120000, \"cooldown_ms\": 30000,"
		" \"up_cooldown_ms\": 0, \"tolerance\": 0.1, \"utilisation\": 0.7}",
		0, NULL);
	assert_true(json_equal(json_object_get(json_array_get(got, 0), "autoscale"), want));
	assert_true(m->services[0].balancer.enabled);
	assert_true(m->services[0].autoscale.enabled);
	json_decref(want);
	json_decref(got);
	vd_manifest_free(m);
}

static void
test_good_libvirt_kernel(void **state)
{
	struct vd_manifest *m = check_fixture("good-libvirt-kernel.yaml");
	const struct vd_service *s = &m->services[0];

	(void)state;
	assert_int_equal(s->backend, VD_BACKEND_LIBVIRT);
	assert_null(s->image);
	assert_string_equal(s->vm.kernel, "/boot/vmlinuz-6.1.0-56-cloud-amd64");
	/* relative to the manifest's directory, made absolute */
	assert_true(s->vm.initrd[0] == '/');
	assert_non_null(strstr(s->vm.initrd, "/tests/unit/manifests/examples/images/svc-initrd.gz"));
	assert_string_equal(s->vm.cmdline, "console=ttyS0 quiet");
	assert_null(s->vm.disk);
	assert_int_equal(s->vm.accel, VD_ACCEL_AUTO);
	assert_int_equal(s->health.start_period_ms, 30000);
	assert_int_equal(s->memory_bytes, 32 << 20);
	assert_int_equal(s->replicas, 2);
	vd_manifest_free(m);
}

static void
test_good_libvirt_disk(void **state)
{
	struct vd_manifest *m = check_fixture("good-libvirt-disk.yaml");
	const struct vd_service *s = &m->services[0];

	(void)state;
	assert_true(s->vm.disk[0] == '/');
	assert_non_null(strstr(s->vm.disk, "/tests/unit/manifests/examples/images/svc.qcow2"));
	assert_null(s->vm.kernel);
	assert_null(s->vm.cmdline);
	assert_int_equal(s->vm.accel, VD_ACCEL_KVM);
	assert_int_equal(s->replicas, 0);
	vd_manifest_free(m);
}

static void
test_good_multi_doc(void **state)
{
	struct vd_manifest *m = check_fixture("good-multi-doc.yaml");

	(void)state;
	assert_int_equal(m->nservices, 3);
	assert_string_equal(m->services[0].name, "front");
	assert_string_equal(m->services[1].name, "back");
	assert_string_equal(m->services[2].name, "batch");
	assert_int_equal(m->services[0].line, 1);
	assert_int_equal(m->services[1].line, 9);
	assert_ptr_equal(vd_manifest_find(m, "back"), &m->services[1]);
	assert_null(vd_manifest_find(m, "nope"));
	assert_int_equal(m->services[0].balancer.policy, VD_LB_P2C);
	assert_string_equal(m->services[0].balancer.listen_host, "0.0.0.0");
	assert_string_equal(m->services[2].image,
			    "registry.example.com:5000/team/batch@sha256:0123456789abcdef");
	vd_manifest_free(m);
}

static void
test_good_values(void **state)
{
	static const char *const argv[] = { "/svc", "--name", "two words", "say \"hi\"",
					    "back slash" };
	static const char *const env[] = { "EMPTY=", "NUMBER=8080", "FLAG=true",
					   "_under_score=x=y" };
	struct vd_manifest *m = check_fixture("good-values.yaml");
	const struct vd_service *s = &m->services[0];

	(void)state;
	assert_int_equal(s->ncommand, 5);
	for (size_t i = 0; i < 5; i++)
		assert_string_equal(s->command[i], argv[i]);
	assert_null(s->command[5]);
	assert_int_equal(s->nenv, 4);
	for (size_t i = 0; i < 4; i++)
		assert_string_equal(s->env[i], env[i]);
	assert_null(s->env[4]);
	assert_int_equal(s->port, 65535);
	assert_int_equal(s->replicas, 1000);
	assert_int_equal(s->milli_cpus, 10);
	assert_int_equal(s->memory_bytes, 1610612736);
	assert_int_equal(s->health.kind, VD_HEALTH_TCP);
	assert_int_equal(s->health.interval_ms, 90000);
	assert_int_equal(s->health.timeout_ms, 500);
	assert_int_equal(s->health.retries, 100);
	assert_int_equal(s->health.start_period_ms, 0);
	assert_string_equal(s->balancer.listen_host, "localhost");
	assert_int_equal(s->balancer.listen_port, 1);
	assert_int_equal(s->balancer.max_inflight, 100000);
	assert_int_equal(s->balancer.queue_limit, 0);
	assert_int_equal(s->balancer.queue_timeout_ms, 3600000);
	assert_int_equal(s->autoscale.target_p95_ms, 250);
	assert_true(s->autoscale.target_queue == 0.5);
	assert_int_equal(s->autoscale.cooldown_ms, 0);
	assert_int_equal(s->update.max_surge, 0);
	assert_int_equal(s->update.max_unavailable, 2);
	vd_manifest_free(m);
}

/* Every key of the format appears in the reference, which validates. */
static void
test_reference_manifest(void **state)
{
	static const char *const keys[] = {
		"service", "backend", "image", "vm", "kernel", "initrd", "cmdline", "disk",
		"accel", "command", "env", "port", "replicas", "resources", "cpus", "memory",
		"health", "http", "tcp", "interval", "timeout", "retries", "start_period",
		"balancer", "listen", "policy", "max_inflight", "queue_limit", "queue_timeout",
		"on_client_gone",
		"autoscale", "min", "max", "target_p95", "target_queue", "up_window",
		"down_window", "cooldown", "up_cooldown", "tolerance", "utilisation", "update",
		"max_surge", "max_unavailable",
	};
	struct vd_error err = VD_ERROR_INIT;
	struct vd_diags diags = VD_DIAGS_INIT;
	struct vd_manifest *m = NULL;
	const char *path = vt_path("manifests/reference.yaml");
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	(void)state;
	if (vd_manifest_load(&path, 1, &m, &diags, &err) != 0) {
		dump_diags(&diags);
		fail_msg("%s", err.msg);
	}
	assert_int_equal(m->nservices, 3);
	assert_int_equal(m->services[0].health.kind, VD_HEALTH_HTTP);
	assert_int_equal(m->services[1].backend, VD_BACKEND_LIBVIRT);
	assert_non_null(m->services[1].vm.kernel);
	assert_non_null(m->services[2].vm.disk);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_int_not_equal(getdelim(&text, &len, '\0', f), -1);
	fclose(f);
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		char needle[64];

		snprintf(needle, sizeof(needle), "\n%s:", keys[i]);
		if (strstr(text, needle))
			continue;
		snprintf(needle, sizeof(needle), "  %s:", keys[i]);
		if (!strstr(text, needle))
			fail_msg("the reference manifest does not use '%s'", keys[i]);
	}
	free(text);
	vd_manifest_free(m);
}

/* ============================================================ round trip */

static void
assert_same_str(const char *a, const char *b, const char *field)
{
	if (!a != !b || (a && strcmp(a, b) != 0))
		fail_msg("'%s' differs: '%s' then '%s'", field, a ? a : "(null)", b ? b : "(null)");
}

static void
assert_same_strv(char *const *a, size_t na, char *const *b, size_t nb, const char *field)
{
	if (na != nb || !a != !b)
		fail_msg("'%s' differs: %zu then %zu items", field, na, nb);
	for (size_t i = 0; i < na; i++)
		assert_same_str(a[i], b[i], field);
	if (a)
		assert_null(b[nb]);
}

#define SAME(field) \
	do { \
		if (a->field != b->field) \
			fail_msg("'%s' differs in service '%s'", #field, a->name); \
	} while (0)

/* Every field of two services but where they were read from (file, line). */
static void
assert_same_service(const struct vd_service *a, const struct vd_service *b)
{
	/* A new field changes these sizes: compare it below, and give it a key in
	 * the table of orchestrator/manifest.c, which both reads and writes it. */
	_Static_assert(sizeof(struct vd_service) == 312, "compare every field");
	_Static_assert(sizeof(a->vm) == 40 && sizeof(a->health) == 48 &&
			       sizeof(a->balancer) == 48 && sizeof(a->autoscale) == 80 &&
			       sizeof(a->update) == 8,
		       "compare every field");

	assert_same_str(a->name, b->name, "name");
	SAME(backend);
	assert_same_str(a->image, b->image, "image");
	assert_same_str(a->vm.kernel, b->vm.kernel, "vm.kernel");
	assert_same_str(a->vm.initrd, b->vm.initrd, "vm.initrd");
	assert_same_str(a->vm.cmdline, b->vm.cmdline, "vm.cmdline");
	assert_same_str(a->vm.disk, b->vm.disk, "vm.disk");
	SAME(vm.accel);
	assert_same_strv(a->command, a->ncommand, b->command, b->ncommand, "command");
	assert_same_strv(a->env, a->nenv, b->env, b->nenv, "env");
	SAME(port);
	SAME(replicas);
	SAME(milli_cpus);
	SAME(memory_bytes);
	SAME(health.kind);
	assert_same_str(a->health.http_path, b->health.http_path, "health.http_path");
	SAME(health.interval_ms);
	SAME(health.timeout_ms);
	SAME(health.start_period_ms);
	SAME(health.retries);
	SAME(balancer.enabled);
	assert_same_str(a->balancer.listen_host, b->balancer.listen_host, "balancer.listen_host");
	SAME(balancer.listen_port);
	SAME(balancer.policy);
	SAME(balancer.max_inflight);
	SAME(balancer.queue_limit);
	SAME(balancer.queue_timeout_ms);
	SAME(balancer.on_client_gone);
	SAME(autoscale.enabled);
	SAME(autoscale.min);
	SAME(autoscale.max);
	SAME(autoscale.target_p95_ms);
	SAME(autoscale.target_queue);
	SAME(autoscale.up_window_ms);
	SAME(autoscale.down_window_ms);
	SAME(autoscale.cooldown_ms);
	SAME(autoscale.up_cooldown_ms);
	SAME(autoscale.tolerance);
	SAME(autoscale.utilisation);
	SAME(update.max_surge);
	SAME(update.max_unavailable);
}

/* Each service of PATH recorded in the state directory DIR and read back,
 * then as compact JSON (the controller's API) parsed again: the same
 * service each time. Returns how many. */
static size_t
round_trip_file(const char *path, const char *dir)
{
	struct vd_error err = VD_ERROR_INIT;
	struct vd_diags diags = VD_DIAGS_INIT;
	struct vd_manifest *m = NULL;
	size_t n;

	if (vd_manifest_load(&path, 1, &m, &diags, &err) != 0) {
		dump_diags(&diags);
		fail_msg("%s: %s", path, err.msg);
	}
	for (size_t i = 0; i < m->nservices; i++) {
		const struct vd_service *s = &m->services[i];
		struct vd_manifest *back = NULL;
		json_t *j = vd_manifest_service_json(s, 0);
		char *text = json_dumps(j, JSON_COMPACT | VD_MANIFEST_JSON_PRECISION);

		if (vd_state_save(dir, s, path, &err) < 0 ||
		    vd_state_load(dir, s->name, &back, &diags, &err) < 0) {
			dump_diags(&diags);
			fail_msg("%s: service '%s' does not come back from the state directory: %s",
				 path, s->name, err.msg);
		}
		assert_int_equal(back->nservices, 1);
		assert_same_service(s, &back->services[0]);
		vd_manifest_free(back);
		if (vd_manifest_parse("api", text, strlen(text), &back, &diags, &err) < 0) {
			dump_diags(&diags);
			fail_msg("%s: service '%s' as JSON is refused: %s\n%s", path, s->name, err.msg,
				 text);
		}
		assert_same_service(s, &back->services[0]);
		vd_manifest_free(back);
		free(text);
		json_decref(j);
		assert_int_equal(vd_state_remove(dir, s->name, &err), 0);
	}
	n = m->nservices;
	vd_manifest_free(m);
	return n;
}

/* The serializer and the parser agree on every field of every service of
 * the reference and of the good fixtures. */
static void
test_round_trip(void **state)
{
	char dir[] = "/tmp/vd-test-state-XXXXXX", sub[64];
	size_t n = 0;
	glob_t g;

	(void)state;
	assert_non_null(mkdtemp(dir));
	n += round_trip_file(vt_path("manifests/reference.yaml"), dir);
	assert_int_equal(glob(fixture("good-*.yaml"), 0, NULL, &g), 0);
	for (size_t i = 0; i < g.gl_pathc; i++)
		n += round_trip_file(g.gl_pathv[i], dir);
	globfree(&g);
	assert_true(n >= 10);
	snprintf(sub, sizeof(sub), "%s/services", dir);
	assert_int_equal(rmdir(sub), 0);
	assert_int_equal(rmdir(dir), 0);
}

/* Values the state file must keep exactly: fractions of CPUs up to the
 * limit, a queue target with many digits, durations that are not whole
 * seconds, and the other backend's defaults. */
static void
test_round_trip_values(void **state)
{
	static const char text[] =
		"service: a\nbackend: docker\nimage: x\nreplicas: 1\n"
		"resources: {cpus: 1023.999, memory: 6Mi}\n"
		"health: {http: /h, interval: 1h1m1s1ms, timeout: 1ms, start_period: 0s}\n"
		"balancer: {listen: \"0.0.0.0:1\", queue_timeout: 90001ms, max_inflight: 1}\n"
		"autoscale: {target_queue: 0.123456789012, cooldown: 0s, min: 0, max: 1000}\n"
		"---\n"
		"service: b\nbackend: libvirt\nvm: {kernel: /k, accel: tcg}\nreplicas: 0\n"
		"command: \"/svc 'a b' \\\"c\\\"\"\nenv: {E: '', F: \"x=y\"}\n"
		"resources: {cpus: 0.1}\nautoscale: {target_p95: 1ms}\n";
	char dir[] = "/tmp/vd-test-state-XXXXXX", path[64];
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/m.yaml", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(round_trip_file(path, dir), 2);
	unlink(path);
	snprintf(path, sizeof(path), "%s/services", dir);
	assert_int_equal(rmdir(path), 0);
	assert_int_equal(rmdir(dir), 0);
}

/* ============================================================= bad files */

static void
test_yaml_syntax(void **state)
{
	(void)state;
	check_bad("bad-syntax.yaml");
	check_bad("bad-tab.yaml");
}

static void
test_unknown_keys(void **state)
{
	(void)state;
	check_bad("bad-unknown-keys.yaml");
}

static void
test_duplicate_keys(void **state)
{
	(void)state;
	check_bad("bad-duplicate-keys.yaml");
}

static void
test_wrong_types(void **state)
{
	(void)state;
	check_bad("bad-types.yaml");
}

static void
test_out_of_range(void **state)
{
	(void)state;
	check_bad("bad-ranges.yaml");
}

static void
test_unknown_enum_values(void **state)
{
	(void)state;
	check_bad("bad-enums.yaml");
}

static void
test_other_backend_keys(void **state)
{
	(void)state;
	check_bad("bad-backend-keys.yaml");
}

static void
test_missing_required(void **state)
{
	(void)state;
	check_bad("bad-missing.yaml");
}

static void
test_duplicate_service(void **state)
{
	(void)state;
	check_bad("bad-duplicate-service.yaml");
}

static void
test_duplicate_listen(void **state)
{
	(void)state;
	check_bad("bad-duplicate-listen.yaml");
}

static void
test_empty_file(void **state)
{
	static const char *const empties[] = { "", "\n\n", "# comment\n", "---\n", "---\n...\n",
					       "---\n---\n", "~\n" };

	(void)state;
	check_bad("bad-empty.yaml");
	for (size_t i = 0; i < sizeof(empties) / sizeof(empties[0]); i++)
		check_refused(empties[i], strlen(empties[i]), 1, 1, "empty manifest");
}

static void
test_vm_rules(void **state)
{
	(void)state;
	check_bad("bad-vm.yaml");
}

static void
test_autoscale_rules(void **state)
{
	(void)state;
	check_bad("bad-autoscale.yaml");
}

static void
test_update_rules(void **state)
{
	(void)state;
	check_bad("bad-update.yaml");
}

static void
test_health_rules(void **state)
{
	(void)state;
	check_bad("bad-health.yaml");
}

static void
test_units_in_manifest(void **state)
{
	(void)state;
	check_bad("bad-units.yaml");
}

static void
test_command_rules(void **state)
{
	(void)state;
	check_bad("bad-command.yaml");
}

static void
test_env_rules(void **state)
{
	(void)state;
	check_bad("bad-env.yaml");
}

static void
test_anchors_aliases_tags(void **state)
{
	(void)state;
	check_bad("bad-yaml-features.yaml");
}

static void
test_documents_not_mappings(void **state)
{
	(void)state;
	check_bad("bad-documents.yaml");
}

static void
test_names(void **state)
{
	(void)state;
	check_bad("bad-names.yaml");
}

static void
test_listen_addresses(void **state)
{
	(void)state;
	check_bad("bad-listen.yaml");
}

/* Every error of a file, not the first: in file order, with the summary. */
static void
test_all_errors_in_file_order(void **state)
{
	struct vd_error err = VD_ERROR_INIT;
	struct vd_diags diags = VD_DIAGS_INIT;
	struct vd_manifest *m = NULL;
	const char *path = fixture("bad-many.yaml");
	char want[4200];

	(void)state;
	check_bad("bad-many.yaml");
	assert_int_equal(vd_manifest_load(&path, 1, &m, &diags, &err), -1);
	assert_int_equal(diags.n, 6);
	for (size_t i = 1; i < diags.n; i++) {
		const struct vd_diag *a = &diags.items[i - 1], *b = &diags.items[i];

		assert_true(a->line < b->line || (a->line == b->line && a->col <= b->col));
	}
	snprintf(want, sizeof(want), "6 errors in %s", path);
	assert_string_equal(err.msg, want);
	vd_diags_clear(&diags);
}

/* Every fixture in the directory, so a new one cannot go untested. */
static void
test_every_fixture(void **state)
{
	glob_t g;

	(void)state;
	assert_int_equal(glob(fixture("*.yaml"), 0, NULL, &g), 0);
	assert_true(g.gl_pathc >= 20);
	for (size_t i = 0; i < g.gl_pathc; i++) {
		const char *name = strrchr(g.gl_pathv[i], '/') + 1;
		struct expect e[MAX_EXPECT];
		struct vd_manifest *m;

		if (strncmp(name, "bad-", 4) == 0)
			assert_true(read_expectations(g.gl_pathv[i], e, MAX_EXPECT) > 0);
		else if (strncmp(name, "good-", 5) != 0)
			fail_msg("%s: fixtures are named good-* or bad-*", name);
		m = check_fixture(name);
		vd_manifest_free(m);
	}
	globfree(&g);
}

/* Files load as one set: names and listen addresses are unique across them. */
static void
test_set_across_files(void **state)
{
	struct vd_error err = VD_ERROR_INIT;
	struct vd_diags diags = VD_DIAGS_INIT;
	struct vd_manifest *m = NULL;
	char one[4096], two[4096], want[8300];
	const char *paths[] = { one, two };

	(void)state;
	snprintf(one, sizeof(one), "%s", fixture("good-set-one.yaml"));
	snprintf(two, sizeof(two), "%s", fixture("good-set-two.yaml"));
	assert_int_equal(vd_manifest_load(paths, 2, &m, &diags, &err), -1);
	assert_int_equal(diags.n, 2);
	snprintf(want, sizeof(want), "duplicate service name 'shop' (first declared at %s:3:10)",
		 one);
	assert_diag(&diags, 0, 2, 10, want);
	assert_string_equal(diags.items[0].file, two);
	snprintf(want, sizeof(want), "is already used by service 'shop' (%s:8:11)", one);
	assert_diag(&diags, 1, 7, 11, want);
	snprintf(want, sizeof(want), "2 errors in %s", two);
	assert_string_equal(err.msg, want);
	vd_diags_clear(&diags);
}

static void
test_errors_in_several_files(void **state)
{
	struct vd_error err = VD_ERROR_INIT;
	struct vd_diags diags = VD_DIAGS_INIT;
	struct vd_manifest *m = NULL;
	char one[4096], two[4096];
	const char *paths[] = { one, two };

	(void)state;
	snprintf(one, sizeof(one), "%s", fixture("bad-update.yaml"));
	snprintf(two, sizeof(two), "%s", fixture("bad-syntax.yaml"));
	assert_int_equal(vd_manifest_load(paths, 2, &m, &diags, &err), -1);
	assert_int_equal(diags.n, 2);
	assert_string_equal(diags.items[0].file, one);
	assert_string_equal(diags.items[1].file, two);
	assert_string_equal(err.msg, "2 errors in 2 files");
	vd_diags_clear(&diags);
}

static void
test_unreadable_file(void **state)
{
	struct vd_error err = VD_ERROR_INIT;
	struct vd_diags diags = VD_DIAGS_INIT;
	struct vd_manifest *m = NULL;
	const char *paths[] = { "/nonexistent/web.yaml", "/" };

	(void)state;
	assert_int_equal(vd_manifest_load(paths, 2, &m, &diags, &err), -1);
	assert_int_equal(err.code, VD_EXIT_INPUT);
	assert_int_equal(diags.n, 2);
	assert_string_equal(diags.items[0].file, "/nonexistent/web.yaml");
	assert_int_equal(diags.items[0].line, 0);
	assert_string_equal(diags.items[0].msg, "cannot read: No such file or directory");
	assert_string_equal(diags.items[1].msg, "cannot read: Is a directory");
	vd_diags_clear(&diags);
}

/* A bad value does not also produce errors from rules that depend on it. */
static void
test_no_follow_on_errors(void **state)
{
	static const char text[] =
		"service: web\nbackend: docker\nimage: x\nreplicas: 1\n"
		"autoscale: {min: lots, max: 3, target_p95: 1s}\n"
		"update: {max_surge: x, max_unavailable: 0}\n"
		"health: {tcp: maybe}\n";
	struct vd_error err = VD_ERROR_INIT;
	struct vd_diags diags = VD_DIAGS_INIT;
	struct vd_manifest *m = NULL;

	(void)state;
	assert_int_equal(parse(text, strlen(text), &m, &diags, &err), -1);
	assert_int_equal(diags.n, 3);
	assert_diag(&diags, 0, 5, 18, "'autoscale.min': expected an integer");
	assert_diag(&diags, 1, 6, 21, "'update.max_surge': expected an integer");
	assert_diag(&diags, 2, 7, 15, "'health.tcp': expected true or false");
	vd_diags_clear(&diags);
}

static void
test_service_name_in_messages(void **state)
{
	/* the name comes after the mistake; the message still names it */
	static const char text[] =
		"replica: 1\nresources: {cpu: 1}\nservice: late\nbackend: docker\nimage: x\n";
	struct vd_error err = VD_ERROR_INIT;
	struct vd_diags diags = VD_DIAGS_INIT;
	struct vd_manifest *m = NULL;

	(void)state;
	assert_int_equal(parse(text, strlen(text), &m, &diags, &err), -1);
	assert_diag(&diags, 0, 1, 1,
		    "unknown key 'replica' in service 'late' (did you mean 'replicas'?)");
	assert_diag(&diags, 1, 1, 1, "missing required key 'replicas' in service 'late'");
	assert_diag(&diags, 2, 2, 13,
		    "unknown key 'cpu' in 'resources' of service 'late' (did you mean 'cpus'?)");
	assert_string_equal(err.msg, "3 errors in t.yaml");
	vd_diags_clear(&diags);
}

/* ========================================================= hostile input */

static void
test_billion_laughs(void **state)
{
	static const char text[] =
		"a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
		"b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
		"c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
		"d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
		"e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
		"f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
		"g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
		"h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
		"i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n"
		"service: lol\nbackend: docker\nimage: x\nreplicas: *i\n";
	struct vd_error err = VD_ERROR_INIT;
	struct vd_diags diags = VD_DIAGS_INIT;
	struct vd_manifest *m = NULL;
	double t0 = now();

	(void)state;
	assert_int_equal(parse(text, strlen(text), &m, &diags, &err), -1);
	assert_true(now() - t0 < HOSTILE_SECONDS);
	assert_diag(&diags, 0, 1, 1, "unknown key 'a'");
	assert_diag(&diags, 1, 1, 4, "YAML anchors (&a) are not supported in manifests");
	/* each anchor once; its aliases add nothing */
	assert_int_equal(diags.n, 18);
	vd_diags_clear(&diags);

	check_refused("x: *nowhere\n", 12, 1, 1, "unknown key 'x'");
	/* an alias for a required key counts as given, but not as valid */
	assert_int_equal(check_refused("service: *n\n", 12, 1, 1,
				       "missing required key 'backend'"), 3);
}

static void
test_deep_nesting(void **state)
{
	size_t depth = 1000, len = 0;
	char *flow = malloc(2 * depth + 8), *block = malloc(depth * (depth + 4));

	(void)state;
	len = (size_t)sprintf(flow, "a: ");
	memset(flow + len, '[', depth);
	memset(flow + len + depth, ']', depth);
	len += 2 * depth;
	/* the root mapping is level 1, so the 32nd '[' (column 35) is level 33 */
	check_refused(flow, len, 1, 35, "nesting deeper than 32 levels");

	len = 0;
	for (size_t i = 0; i < depth; i++)
		len += (size_t)sprintf(block + len, "%*sk:\n", (int)i, "");
	check_refused(block, len, 33, 33, "nesting deeper than 32 levels");
	free(flow);
	free(block);
}

static void
test_huge_scalar(void **state)
{
	size_t len = (1 << 20) + 20;
	char *text = malloc(len);

	(void)state;
	memcpy(text, "service: ", 9);
	memset(text + 9, 'x', len - 10);
	text[len - 1] = '\n';
	check_refused(text, len, 1, 10, "value of 1 MiB is over the limit of 64 KiB");
	free(text);
}

static void
test_huge_file(void **state)
{
	size_t len = 5 << 20;
	char *text = malloc(len);
	char path[] = "/tmp/vd-test-manifest-XXXXXX";
	struct vd_error err = VD_ERROR_INIT;
	struct vd_diags diags = VD_DIAGS_INIT;
	struct vd_manifest *m = NULL;
	const char *paths[] = { path };
	int fd;

	(void)state;
	for (size_t i = 0; i < len; i++)
		text[i] = i % 64 == 63 ? '\n' : '#';
	check_refused(text, len, 1, 1, "file is 5 MiB; manifests are limited to 4 MiB");

	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
	assert_int_equal(vd_manifest_load(paths, 1, &m, &diags, &err), -1);
	assert_int_equal(diags.n, 1);
	assert_diag(&diags, 0, 1, 1, "file is 5 MiB; manifests are limited to 4 MiB");
	vd_diags_clear(&diags);
	unlink(path);
	free(text);
}

static void
test_random_binary(void **state)
{
	size_t len = 64 << 10;
	unsigned char *buf = malloc(len);

	(void)state;
	for (unsigned seed = 1; seed <= 20; seed++) {
		struct vd_error err = VD_ERROR_INIT;
		struct vd_diags diags = VD_DIAGS_INIT;
		struct vd_manifest *m = NULL;

		srand(seed);
		for (size_t i = 0; i < len; i++)
			buf[i] = (unsigned char)rand();
		assert_int_equal(vd_manifest_parse("bin", (const char *)buf, len, &m, &diags,
						   &err), -1);
		assert_int_equal(err.code, VD_EXIT_INPUT);
		assert_true(diags.n >= 1 && diags.n <= VD_MANIFEST_MAX_DIAGS + 1);
		vd_diags_clear(&diags);
	}
	free(buf);
}

static void
test_nul_bytes(void **state)
{
	static const char text[] = "service: web\nbackend: dock\0er\nimage: x\n";
	static const char escaped[] =
		"service: web\nbackend: docker\nimage: x\nreplicas: 1\nenv: {A: \"a\\0b\"}\n";

	(void)state;
	check_refused(text, sizeof(text) - 1, 2, 14,
		      "control characters are not allowed (character U+0000)");
	check_refused(escaped, strlen(escaped), 5, 10, "NUL characters are not allowed");
	/* a value cut for the message is not cut inside a UTF-8 character */
	check_refused("service: \xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
		      "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
		      "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9x\xc3\xa9\n", 52, 1, 1,
		      "missing required key 'backend'");
	check_refused("\x80" "abc", 4, 1, 1, "not valid UTF-8 text: invalid leading UTF-8 "
		      "octet (byte 0x80)");
	check_refused("\xff\xfe\xfd", 3, 1, 3, "not valid text: incomplete UTF-16 character");
	check_refused("service: w\xc3\n", 12, 1, 11, "not valid UTF-8");
	/* a character cut short is told by its own first byte, not by the
	 * newline (or the end) that cut it */
	check_refused("service: abc\nbackend: dock\xc3\n", 28, 2, 14,
		      "not valid UTF-8 text: byte 0xC3 begins a character that is cut short");
	check_refused("service: abc\nbackend: d\xe2\x82x\n", 28, 2, 11,
		      "not valid UTF-8 text: byte 0xE2 begins a character that is cut short");
	check_refused("service: abc\nbackend: dock\xc3", 27, 2, 14,
		      "not valid UTF-8 text: byte 0xC3 begins a character that is cut short");
}

static void
test_too_many_nodes(void **state)
{
	size_t n = VD_MANIFEST_MAX_NODES + 10, len;
	char *text = malloc(2 * n + 16);

	(void)state;
	len = (size_t)sprintf(text, "a: [");
	for (size_t i = 0; i < n; i++) {
		text[len++] = '1';
		text[len++] = ',';
	}
	text[len - 1] = ']';
	/* nodes: the mapping, 'a', the list, then the items from column 5 on;
	 * node 100001 is item 99998, at column 5 + 2 * 99997 */
	assert_int_equal(check_refused(text, len, 1, 199999, "more than 100000 YAML nodes "
				       "in one file; manifests are limited to that"), 1);
	free(text);
}

/* 40,000 keys: duplicates are found by sorting, and the errors stop at the
 * limit with a last line saying so. */
static void
test_too_many_errors(void **state)
{
	size_t n = 40000, len = 0;
	char *text = malloc(n * 16);
	struct vd_error err = VD_ERROR_INIT;
	struct vd_diags diags = VD_DIAGS_INIT;
	struct vd_manifest *m = NULL;
	double t0 = now();

	(void)state;
	for (size_t i = 0; i < n; i++)
		len += (size_t)sprintf(text + len, "k%zu: 1\n", i % 1000);
	assert_int_equal(parse(text, len, &m, &diags, &err), -1);
	assert_true(now() - t0 < HOSTILE_SECONDS);
	assert_int_equal(diags.n, VD_MANIFEST_MAX_DIAGS + 1);
	assert_string_equal(diags.items[diags.n - 1].msg,
			    "too many errors (100); not checking the rest of the file");
	vd_diags_clear(&diags);
	free(text);
}

/* ================================================================ output */

static void
test_diags_print(void **state)
{
	static const char text[] = "service: web\nbackend: docker\nimage: x\nreplicas: 1\n"
				   "replica: 2\n";
	struct vd_error err = VD_ERROR_INIT;
	struct vd_diags diags = VD_DIAGS_INIT;
	struct vd_manifest *m = NULL;
	const char *paths[] = { "/nonexistent.yaml" };
	char *out = NULL;
	size_t size = 0;
	FILE *f;

	(void)state;
	assert_int_equal(parse(text, strlen(text), &m, &diags, &err), -1);
	assert_string_equal(err.msg, "1 error in t.yaml");
	/* diagnostics accumulate across calls until cleared */
	assert_int_equal(vd_manifest_load(paths, 1, &m, &diags, &err), -1);
	assert_int_equal(diags.n, 2);
	f = open_memstream(&out, &size);
	vd_diags_print(&diags, f);
	fclose(f);
	assert_string_equal(out,
			    "t.yaml:5:1: unknown key 'replica' in service 'web' "
			    "(did you mean 'replicas'?)\n"
			    "/nonexistent.yaml: cannot read: No such file or directory\n");
	free(out);
	vd_diags_clear(&diags);
	assert_int_equal(diags.n, 0);
	assert_null(diags.items);
}

static void
test_enum_names(void **state)
{
	(void)state;
	assert_string_equal(vd_manifest_backend_name(VD_BACKEND_DOCKER), "docker");
	assert_string_equal(vd_manifest_backend_name(VD_BACKEND_LIBVIRT), "libvirt");
	assert_string_equal(vd_manifest_accel_name(VD_ACCEL_TCG), "tcg");
	assert_string_equal(vd_manifest_policy_name(VD_LB_ROUND_ROBIN), "round-robin");
	assert_string_equal(vd_manifest_policy_name(VD_LB_LEAST_OUTSTANDING), "least-outstanding");
	assert_string_equal(vd_manifest_policy_name(VD_LB_P2C), "p2c");
	assert_string_equal(vd_manifest_health_name(VD_HEALTH_HTTP), "http");
	assert_string_equal(vd_manifest_backend_name((enum vd_backend)7), "unknown");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_docker_minimal_normal_form),
		cmocka_unit_test(test_section_defaults),
		cmocka_unit_test(test_good_libvirt_kernel),
		cmocka_unit_test(test_good_libvirt_disk),
		cmocka_unit_test(test_good_multi_doc),
		cmocka_unit_test(test_good_values),
		cmocka_unit_test(test_reference_manifest),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_round_trip_values),
		cmocka_unit_test(test_yaml_syntax),
		cmocka_unit_test(test_unknown_keys),
		cmocka_unit_test(test_duplicate_keys),
		cmocka_unit_test(test_wrong_types),
		cmocka_unit_test(test_out_of_range),
		cmocka_unit_test(test_unknown_enum_values),
		cmocka_unit_test(test_other_backend_keys),
		cmocka_unit_test(test_missing_required),
		cmocka_unit_test(test_duplicate_service),
		cmocka_unit_test(test_duplicate_listen),
		cmocka_unit_test(test_empty_file),
		cmocka_unit_test(test_vm_rules),
		cmocka_unit_test(test_autoscale_rules),
		cmocka_unit_test(test_update_rules),
		cmocka_unit_test(test_health_rules),
		cmocka_unit_test(test_units_in_manifest),
		cmocka_unit_test(test_command_rules),
		cmocka_unit_test(test_env_rules),
		cmocka_unit_test(test_anchors_aliases_tags),
		cmocka_unit_test(test_documents_not_mappings),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_listen_addresses),
		cmocka_unit_test(test_all_errors_in_file_order),
		cmocka_unit_test(test_every_fixture),
		cmocka_unit_test(test_set_across_files),
		cmocka_unit_test(test_errors_in_several_files),
		cmocka_unit_test(test_unreadable_file),
		cmocka_unit_test(test_no_follow_on_errors),
		cmocka_unit_test(test_service_name_in_messages),
		cmocka_unit_test(test_billion_laughs),
		cmocka_unit_test(test_deep_nesting),
		cmocka_unit_test(test_huge_scalar),
		cmocka_unit_test(test_huge_file),
		cmocka_unit_test(test_random_binary),
		cmocka_unit_test(test_nul_bytes),
		cmocka_unit_test(test_too_many_nodes),
		cmocka_unit_test(test_too_many_errors),
		cmocka_unit_test(test_diags_print),
		cmocka_unit_test(test_enum_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
