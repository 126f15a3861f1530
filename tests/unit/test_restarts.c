/*
 * The restart book: the back-off arithmetic on a clock the tests hold, the
 * sick marks, forgetting a service, and the book's JSON and file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vdtest.h"
#include "vd/restarts.h"

static void
test_first_is_immediate_then_doubles(void **state)
{
	struct vd_restarts b = { 0 };
	const struct vd_restart_mark *m;
	int64_t now = 1000000;

	(void)state;
	assert_true(vd_restarts_replace(&b, "web", 0, "exited (code 1)", now));
	m = vd_restarts_find(&b, "web", 0, false);
	assert_non_null(m);
	assert_int_equal(m->restarts, 1);
	assert_int_equal(m->backoff_ms, VD_RESTARTS_FIRST_MS);
	assert_int_equal(m->hold_until, now + VD_RESTARTS_FIRST_MS);
	assert_string_equal(m->reason, "exited (code 1)");
	/* held back: nothing changes until the hold ends */
	assert_false(vd_restarts_replace(&b, "web", 0, "again", now + VD_RESTARTS_FIRST_MS - 1));
	m = vd_restarts_find(&b, "web", 0, false);
	assert_int_equal(m->restarts, 1);
	assert_string_equal(m->reason, "exited (code 1)");
	/* each next wait is twice the last */
	now += VD_RESTARTS_FIRST_MS;
	for (int64_t want = 2 * VD_RESTARTS_FIRST_MS; want <= VD_RESTARTS_MAX_MS; want *= 2) {
		assert_true(vd_restarts_replace(&b, "web", 0, "again", now));
		m = vd_restarts_find(&b, "web", 0, false);
		assert_int_equal(m->backoff_ms, want);
		assert_int_equal(m->hold_until, now + want);
		now += want;
	}
	/* and never more than the cap */
	for (int i = 0; i < 5; i++) {
		assert_true(vd_restarts_replace(&b, "web", 0, "again", now));
		m = vd_restarts_find(&b, "web", 0, false);
		assert_int_equal(m->backoff_ms, VD_RESTARTS_MAX_MS);
		now += VD_RESTARTS_MAX_MS;
	}
	/* another index has a book of its own */
	assert_true(vd_restarts_replace(&b, "web", 1, "stopped", now - 1));
	assert_int_equal(vd_restarts_find(&b, "web", 1, false)->backoff_ms, VD_RESTARTS_FIRST_MS);
	vd_restarts_release(&b);
}

static void
test_a_minute_healthy_starts_over(void **state)
{
	struct vd_restarts b = { 0 };
	int64_t now = 50;

	(void)state;
	assert_true(vd_restarts_replace(&b, "web", 0, "x", now));
	now += VD_RESTARTS_FIRST_MS;
	assert_true(vd_restarts_replace(&b, "web", 0, "x", now));
	assert_int_equal(vd_restarts_find(&b, "web", 0, false)->backoff_ms,
			 2 * VD_RESTARTS_FIRST_MS);
	vd_restarts_healthy(&b, "web", 0, VD_RESTARTS_STABLE_MS - 1);
	assert_int_equal(vd_restarts_find(&b, "web", 0, false)->backoff_ms,
			 2 * VD_RESTARTS_FIRST_MS);
	vd_restarts_healthy(&b, "web", 0, VD_RESTARTS_STABLE_MS);
	assert_int_equal(vd_restarts_find(&b, "web", 0, false)->backoff_ms, 0);
	/* the next replacement waits the first wait again, and counts on */
	now += 2 * VD_RESTARTS_FIRST_MS;
	assert_true(vd_restarts_replace(&b, "web", 0, "x", now));
	assert_int_equal(vd_restarts_find(&b, "web", 0, false)->backoff_ms, VD_RESTARTS_FIRST_MS);
	assert_int_equal(vd_restarts_find(&b, "web", 0, false)->restarts, 3);
	/* healthy news of an index never replaced makes no mark */
	vd_restarts_healthy(&b, "api", 4, VD_RESTARTS_STABLE_MS);
	assert_null(vd_restarts_find(&b, "api", 4, false));
	vd_restarts_release(&b);
}

static void
test_sick_marks(void **state)
{
	struct vd_restarts b = { 0 };

	(void)state;
	assert_null(vd_restarts_sick_why(&b, "web", 0, "abc"));
	vd_restarts_sick(&b, "web", 0, "abc", "health check failed (timed out)");
	assert_string_equal(vd_restarts_sick_why(&b, "web", 0, "abc"),
			    "health check failed (timed out)");
	/* only that replica: its successor at the same index is not sick */
	assert_null(vd_restarts_sick_why(&b, "web", 0, "def"));
	assert_null(vd_restarts_sick_why(&b, "web", 1, "abc"));
	/* replacing it clears the mark */
	assert_true(vd_restarts_replace(&b, "web", 0, "health check failed (timed out)", 10));
	assert_null(vd_restarts_sick_why(&b, "web", 0, "abc"));
	vd_restarts_release(&b);
}

static void
test_next_due_and_forget(void **state)
{
	struct vd_restarts b = { 0 };

	(void)state;
	assert_int_equal(vd_restarts_next_due(&b, 0), -1);
	assert_true(vd_restarts_replace(&b, "web", 0, "x", 0));    /* held until 1000 */
	assert_true(vd_restarts_replace(&b, "api", 2, "x", 500));  /* held until 1500 */
	assert_int_equal(vd_restarts_next_due(&b, 100), 900);
	assert_int_equal(vd_restarts_next_due(&b, 1200), 300);
	assert_int_equal(vd_restarts_next_due(&b, 1500), -1);
	assert_int_equal(vd_restarts_held_until(&b, "api", 2), 1500);
	assert_int_equal(vd_restarts_held_until(&b, "api", 3), 0);
	assert_true(vd_restarts_forget(&b, "web"));
	assert_false(vd_restarts_forget(&b, "web"));
	assert_null(vd_restarts_find(&b, "web", 0, false));
	assert_non_null(vd_restarts_find(&b, "api", 2, false));
	assert_int_equal(vd_restarts_next_due(&b, 100), 1400);
	vd_restarts_release(&b);
}

static void
test_json_round_trip(void **state)
{
	struct vd_restarts b = { 0 }, back = { 0 };
	const struct vd_restart_mark *m;
	json_t *j;

	(void)state;
	assert_true(vd_restarts_replace(&b, "web", 0, "OOM-killed", 0));
	assert_true(vd_restarts_replace(&b, "web", 0, "OOM-killed", 1000));
	vd_restarts_sick(&b, "web", 3, "id", "sick"); /* never replaced: not kept */
	j = vd_restarts_to_json(&b);
	assert_int_equal(json_array_size(j), 1);
	vd_restarts_from_json(&back, j);
	json_decref(j);
	m = vd_restarts_find(&back, "web", 0, false);
	assert_non_null(m);
	assert_int_equal(m->restarts, 2);
	assert_int_equal(m->backoff_ms, 2 * VD_RESTARTS_FIRST_MS);
	assert_string_equal(m->reason, "OOM-killed");
	assert_int_equal(m->hold_until, 0); /* another process's clock: nothing held */
	assert_null(vd_restarts_find(&back, "web", 3, false));
	vd_restarts_release(&back);
	vd_restarts_release(&b);
}

static void
test_json_bad_entries(void **state)
{
	struct vd_restarts b = { 0 };
	json_t *j = json_loads("[{\"index\": 1, \"restarts\": 2},"
			       " {\"service\": \"a\", \"index\": -1, \"restarts\": 1},"
			       " {\"service\": \"b\", \"index\": 0, \"restarts\": -5},"
			       " {\"service\": \"c\", \"index\": 0, \"restarts\": 3,"
			       "  \"backoff_ms\": 99999999999},"
			       " 7, \"x\"]", 0, NULL);

	(void)state;
	assert_non_null(j);
	vd_restarts_from_json(&b, j);
	json_decref(j);
	assert_int_equal(b.n, 1);
	assert_string_equal(b.v[0].service, "c");
	assert_int_equal(b.v[0].restarts, 3);
	assert_int_equal(b.v[0].backoff_ms, VD_RESTARTS_MAX_MS);
	vd_restarts_from_json(&b, NULL); /* not a list: nothing */
	assert_int_equal(b.n, 1);
	vd_restarts_release(&b);
}

static void
test_file(void **state)
{
	char dir[] = "/tmp/vd-restarts-XXXXXX", path[64], tmp[80];
	struct vd_restarts b = { 0 }, back = { 0 };
	struct vd_error err = VD_ERROR_INIT;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/restarts.json", dir);
	/* no file: an empty book */
	assert_int_equal(vd_restarts_load(&back, path, &err), 0);
	assert_int_equal(back.n, 0);
	assert_true(vd_restarts_replace(&b, "web", 1, "exited (code 137)", 0));
	assert_int_equal(vd_restarts_save(&b, path, &err), 0);
	assert_int_equal(vd_restarts_load(&back, path, &err), 0);
	assert_int_equal(back.n, 1);
	assert_int_equal(back.v[0].index, 1);
	assert_string_equal(back.v[0].reason, "exited (code 137)");
	/* a file cut short is refused with the reason, and the book is untouched */
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("[{\"service\": \"web\", \"ind", f);
	fclose(f);
	assert_int_equal(vd_restarts_load(&back, path, &err), -1);
	assert_non_null(strstr(err.msg, path));
	assert_int_equal(back.n, 1);
	unlink(path);
	snprintf(tmp, sizeof(tmp), "%s", dir);
	assert_int_equal(rmdir(tmp), 0);
	vd_restarts_release(&back);
	vd_restarts_release(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_is_immediate_then_doubles),
		cmocka_unit_test(test_a_minute_healthy_starts_over),
		cmocka_unit_test(test_sick_marks),
		cmocka_unit_test(test_next_due_and_forget),
		cmocka_unit_test(test_json_round_trip),
		cmocka_unit_test(test_json_bad_entries),
		cmocka_unit_test(test_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
