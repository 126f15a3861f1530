/*
 * Loading the state directory service by service: a damaged record, one
 * that names another service, or one whose balancer address another has
 * holds that service alone; names that are not service names never reach
 * the file system.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vdtest.h"
#include "vd/manifest.h"
#include "vd/state.h"

struct dir {
	char path[64];
};

static int
setup(void **state)
{
	struct dir *d = calloc(1, sizeof(*d));
	char sub[96];

	if (!d)
		return -1;
	snprintf(d->path, sizeof(d->path), "/tmp/vd-state-load-XXXXXX");
	if (!mkdtemp(d->path))
		return -1;
	snprintf(sub, sizeof(sub), "%s/services", d->path);
	mkdir(sub, 0755);
	*state = d;
	return 0;
}

static int
teardown(void **state)
{
	struct dir *d = *state;

	vt_rm_tree(d->path);
	free(d);
	return 0;
}

static void
write_file(const struct dir *d, const char *name, const char *text)
{
	char path[160];
	FILE *f;

	snprintf(path, sizeof(path), "%s/services/%s", d->path, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* Record a service as apply does, from a manifest text. */
static void
record(const struct dir *d, const char *yaml)
{
	struct vd_diags diags = VD_DIAGS_INIT;
	struct vd_error err = VD_ERROR_INIT;
	struct vd_manifest *m = NULL;

	if (vd_manifest_parse("t.yaml", yaml, strlen(yaml), &m, &diags, &err) < 0) {
		vd_diags_print(&diags, stderr);
		fail_msg("parse: %s", err.msg);
	}
	assert_int_equal(vd_state_save(d->path, &m->services[0], "/srv/t.yaml", &err), 0);
	vd_manifest_free(m);
}

#define WEB "service: web\nbackend: docker\nimage: x\nreplicas: 2\n"
#define API "service: api\nbackend: docker\nimage: x\nreplicas: 1\n"
#define LB(port) "balancer: {listen: \"127.0.0.1:" #port "\"}\n"

static void
test_damaged_record_holds_that_one(void **state)
{
	struct dir *d = *state;
	struct vd_error err = VD_ERROR_INIT;
	struct vd_manifest *m = NULL;
	struct vd_state_held *held = NULL;
	size_t nheld = 0;

	record(d, WEB);
	record(d, API);
	write_file(d, "web.yaml", ""); /* truncated */
	assert_int_equal(vd_state_load_all(d->path, &m, &held, &nheld, &err), 0);
	assert_int_equal(m->nservices, 1);
	assert_string_equal(m->services[0].name, "api");
	assert_int_equal(nheld, 1);
	assert_string_equal(held[0].service, "web");
	/* the reason, where it is */
	assert_non_null(strstr(held[0].why, "services/web.yaml:1:1: "));
	assert_non_null(strstr(held[0].why, "empty"));
	vd_state_held_free(held, nheld);
	vd_manifest_free(m);
}

static void
test_record_of_another_service(void **state)
{
	struct dir *d = *state;
	struct vd_diags diags = VD_DIAGS_INIT;
	struct vd_error err = VD_ERROR_INIT;
	struct vd_manifest *m = NULL;
	struct vd_state_held *held = NULL;
	size_t nheld = 0;
	char path[160], text[8192];
	FILE *f;
	size_t n;

	record(d, API);
	/* api.yaml's text as other.yaml: it declares service 'api' */
	snprintf(path, sizeof(path), "%s/services/api.yaml", d->path);
	f = fopen(path, "r");
	assert_non_null(f);
	n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	fclose(f);
	write_file(d, "other.yaml", text);
	assert_int_equal(vd_state_load(d->path, "other", &m, &diags, &err), -1);
	assert_int_equal(err.code, VD_EXIT_INPUT);
	assert_non_null(strstr(err.msg, "declares service 'api', not service 'other'"));
	assert_null(m);
	assert_int_equal(vd_state_load_all(d->path, &m, &held, &nheld, &err), 0);
	assert_int_equal(m->nservices, 1);
	assert_int_equal(nheld, 1);
	assert_string_equal(held[0].service, "other");
	vd_state_held_free(held, nheld);
	vd_manifest_free(m);
	vd_diags_clear(&diags);
}

static void
test_same_balancer_address(void **state)
{
	struct dir *d = *state;
	struct vd_error err = VD_ERROR_INIT;
	struct vd_manifest *m = NULL;
	struct vd_state_held *held = NULL;
	size_t nheld = 0;

	record(d, API LB(8500));
	record(d, WEB LB(8500));
	assert_int_equal(vd_state_load_all(d->path, &m, &held, &nheld, &err), 0);
	/* the first by name keeps it; the other is held, naming it */
	assert_int_equal(m->nservices, 1);
	assert_string_equal(m->services[0].name, "api");
	assert_int_equal(nheld, 1);
	assert_string_equal(held[0].service, "web");
	assert_non_null(strstr(held[0].why, "127.0.0.1:8500 is already used by service 'api'"));
	vd_state_held_free(held, nheld);
	vd_manifest_free(m);
}

static void
test_names_that_are_paths(void **state)
{
	static const char *const bad[] = { "../services/x", "../../tmp/y", "/etc/passwd", "a/b",
					   "", "Web", "x.yaml", "-x" };
	struct dir *d = *state;
	struct vd_diags diags = VD_DIAGS_INIT;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct vd_error err = VD_ERROR_INIT;
		struct vd_manifest *m = NULL;

		assert_int_equal(vd_state_load(d->path, bad[i], &m, &diags, &err), -1);
		assert_int_equal(err.code, VD_EXIT_INPUT);
		assert_non_null(strstr(err.msg, "is not a service name"));
		assert_null(m);
	}
	assert_int_equal(diags.n, 0);
}

static void
test_no_directory_yet(void **state)
{
	struct dir *d = *state;
	struct vd_error err = VD_ERROR_INIT;
	struct vd_manifest *m = NULL;
	struct vd_state_held *held = NULL;
	size_t nheld = 0;
	char missing[128];

	snprintf(missing, sizeof(missing), "%s/never-made", d->path);
	assert_int_equal(vd_state_load_all(missing, &m, &held, &nheld, &err), 0);
	assert_int_equal(m->nservices, 0);
	assert_int_equal(nheld, 0);
	vd_manifest_free(m);
}

static void
test_id(void **state)
{
	struct dir *d = *state;
	struct vd_error err = VD_ERROR_INIT;
	char id[VD_STATE_ID_LEN + 1], again[VD_STATE_ID_LEN + 1], sub[128];

	assert_int_equal(vd_state_id(d->path, false, id, &err), 1); /* none yet */
	assert_string_equal(id, "");
	assert_int_equal(vd_state_id(d->path, true, id, &err), 0);
	assert_int_equal(strlen(id), VD_STATE_ID_LEN);
	assert_int_equal(strspn(id, "0123456789abcdef"), VD_STATE_ID_LEN);
	assert_int_equal(vd_state_id(d->path, true, again, &err), 0);
	assert_string_equal(id, again); /* made once */
	assert_int_equal(vd_state_id(d->path, false, again, &err), 0);
	assert_string_equal(id, again);
	/* another directory, another id; a missing one is made */
	snprintf(sub, sizeof(sub), "%s/other/dir", d->path);
	assert_int_equal(vd_state_id(sub, true, again, &err), 0);
	assert_string_not_equal(id, again);
	/* a damaged one is an error, not replaced */
	write_file(d, "../id", "not an id\n");
	assert_int_equal(vd_state_id(d->path, true, again, &err), -1);
	assert_non_null(strstr(err.msg, "damaged"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_damaged_record_holds_that_one, setup, teardown),
		cmocka_unit_test_setup_teardown(test_record_of_another_service, setup, teardown),
		cmocka_unit_test_setup_teardown(test_same_balancer_address, setup, teardown),
		cmocka_unit_test_setup_teardown(test_names_that_are_paths, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_directory_yet, setup, teardown),
		cmocka_unit_test_setup_teardown(test_id, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
