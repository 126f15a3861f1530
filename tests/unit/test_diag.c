/*
 * Diagnostics (orchestrator/diag.c): the per-file cap and where its last
 * word goes, file order and the summary, the edit distance behind "did you
 * mean", and values made fit for a message.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vdtest.h"
#include "vd/diag.h"
#include "vd/file.h"

static char *
printed(const struct vd_diags *d)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	vd_diags_print(d, f);
	fclose(f);
	return out;
}

static void
test_file_order_and_summary(void **state)
{
	struct vd_diags diags = VD_DIAGS_INIT;
	struct vd_error err = VD_ERROR_INIT;
	struct vd_diag_file df;
	char *out;

	(void)state;
	vd_diag_file_init(&df, &diags, 0);
	assert_int_equal(vd_diag_file_end(&df, &err), 0);
	vd_diag_file_begin(&df, "a.yaml", 0);
	vd_diag_at(&df, 3, 1, "third %s", "line");
	vd_diag_at(&df, 1, 9, "first, later column");
	vd_diag_at(&df, 1, 2, "first");
	vd_diag_at(&df, 1, 2, "first, said second");
	assert_int_equal(vd_diag_file_end(&df, &err), -1);
	assert_int_equal(err.code, VD_EXIT_INPUT);
	assert_string_equal(err.msg, "4 errors in a.yaml");
	vd_diag_file_begin(&df, "b.yaml", 1);
	vd_diag_at(&df, 0, 0, "cannot read: gone");
	vd_diag_file_begin(&df, "a.yaml", 0); /* the set's order, not arrival's */
	assert_int_equal(vd_diag_file_end(&df, &err), -1);
	assert_string_equal(err.msg, "5 errors in 2 files");
	out = printed(&diags);
	assert_string_equal(out, "a.yaml:1:2: first\n"
			    "a.yaml:1:2: first, said second\n"
			    "a.yaml:1:9: first, later column\n"
			    "a.yaml:3:1: third line\n"
			    "b.yaml: cannot read: gone\n");
	free(out);

	/* a second run sorts and counts only its own */
	vd_diag_file_init(&df, &diags, 0);
	vd_diag_file_begin(&df, "c.yaml", 0);
	vd_diag_at(&df, 2, 2, "one");
	assert_int_equal(vd_diag_file_end(&df, &err), -1);
	assert_string_equal(err.msg, "1 error in c.yaml");
	assert_int_equal(diags.n, 6);
	assert_string_equal(diags.items[4].file, "b.yaml");
	vd_diags_clear(&diags);
	assert_null(diags.items);
	assert_int_equal(diags.n, 0);
}

static void
test_cap(void **state)
{
	struct vd_diags diags = VD_DIAGS_INIT;
	struct vd_error err = VD_ERROR_INIT;
	struct vd_diag_file df;

	(void)state;
	vd_diag_file_init(&df, &diags, 3);
	vd_diag_file_begin(&df, "a.yaml", 0);
	df.line = 7; /* the reader got to 7:5 */
	df.col = 5;
	for (int i = 1; i <= 10; i++)
		vd_diag_at(&df, i, 1, "mistake %d", i);
	assert_true(df.stopped);
	assert_int_equal(diags.n, 4);
	/* after everything said, where reading got to */
	assert_int_equal(diags.items[3].line, 7);
	assert_int_equal(diags.items[3].col, 5);
	assert_string_equal(diags.items[3].msg,
			    "too many errors (3); not checking the rest of the file");
	/* the next file starts afresh */
	vd_diag_file_begin(&df, "b.yaml", 1);
	assert_false(df.stopped);
	vd_diag_at(&df, 1, 1, "again");
	assert_int_equal(diags.n, 5);
	assert_int_equal(vd_diag_file_end(&df, &err), -1);
	assert_string_equal(err.msg, "5 errors in 2 files");
	vd_diags_clear(&diags);
}

static void
test_distance(void **state)
{
	char long_name[40];

	(void)state;
	assert_int_equal(vd_diag_distance("replicas", "replicas"), 0);
	assert_int_equal(vd_diag_distance("replica", "replicas"), 1);
	assert_int_equal(vd_diag_distance("memroy", "memory"), 1); /* a swap is one edit */
	assert_int_equal(vd_diag_distance("polcy", "policy"), 1);
	assert_int_equal(vd_diag_distance("", "abc"), 3);
	assert_int_equal(vd_diag_distance("kitten", "sitting"), 3);
	memset(long_name, 'a', 33);
	long_name[33] = '\0';
	assert_true(vd_diag_distance(long_name, "a") == SIZE_MAX);
}

static void
test_did_you_mean(void **state)
{
	static const char *const keys[] = { "cpus", "memory", "replicas", "policy", NULL };
	struct vd_diag_guess g;
	char buf[64];

	(void)state;
	assert_string_equal(vd_diag_closest("replica", keys, SIZE_MAX), "replicas");
	assert_string_equal(vd_diag_closest("cpu", keys, 4), "cpus");
	assert_null(vd_diag_closest("weight", keys, SIZE_MAX));
	/* not when the typo would be most of the name */
	assert_null(vd_diag_closest("cp", keys, SIZE_MAX));
	assert_null(vd_diag_closest("x", (const char *const[]){ "y", NULL }, SIZE_MAX));
	/* only the first N */
	assert_null(vd_diag_closest("replica", keys, 2));
	assert_string_equal(vd_diag_did_you_mean("memroy", keys, SIZE_MAX, buf, sizeof(buf)),
			    " (did you mean 'memory'?)");
	assert_string_equal(vd_diag_did_you_mean("zzz", keys, SIZE_MAX, buf, sizeof(buf)), "");

	/* names spread over a table; the closest wins, the first among equals */
	vd_diag_guess_init(&g, "stat");
	vd_diag_guess_offer(&g, "start");
	vd_diag_guess_offer(&g, "state");
	vd_diag_guess_offer(&g, "status");
	assert_string_equal(g.pick, "start");
	vd_diag_guess_init(&g, "statu");
	vd_diag_guess_offer(&g, "start");
	vd_diag_guess_offer(&g, "status");
	assert_string_equal(g.pick, "status");
}

static void
test_show(void **state)
{
	char buf[48];

	(void)state;
	assert_string_equal(VD_SHOW("plain"), "plain");
	assert_string_equal(vd_diag_show("a\tb\nc\x7f", buf, sizeof(buf)), "a?b?c?");
	assert_string_equal(VD_SHOW("a-very-long-service-name-that-goes-on-and-on"),
			    "a-very-long-service-name-that-goes-on-an...");
	/* 39 ASCII bytes, then a two-byte character: not cut in half */
	assert_string_equal(VD_SHOW("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xc3\xa9zz"),
			    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...");
	assert_string_equal(vd_diag_show("abcdefgh", buf, 8), "abcd...");
}

/* Files are named as people read them: manifests/../examples is examples. */
static void
test_tidy_paths(void **state)
{
	static const char *const cases[][2] = {
		{ "manifests/../examples/quickstart.yaml", "examples/quickstart.yaml" },
		{ "./a//b/./c.yaml", "a/b/c.yaml" },
		{ "/srv/../etc/../x.yaml", "/x.yaml" },
		{ "/../x", "/x" },
		{ "../up/x.yaml", "../up/x.yaml" },
		{ "a/../../b", "../b" },
		{ "a/..", "." },
		{ "/", "/" },
		{ "x.yaml", "x.yaml" },
	};
	struct vd_diags diags = VD_DIAGS_INIT;
	struct vd_diag_file df;
	char out[128];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		vd_file_tidy_path(cases[i][0], out, sizeof(out));
		assert_string_equal(out, cases[i][1]);
	}
	/* and so do diagnostics */
	vd_diag_file_init(&df, &diags, 0);
	vd_diag_file_begin(&df, "manifests/../examples/web.yaml", 0);
	vd_diag_at(&df, 1, 1, "x");
	assert_string_equal(diags.items[0].file, "examples/web.yaml");
	vd_diags_clear(&diags);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_file_order_and_summary),
		cmocka_unit_test(test_cap),
		cmocka_unit_test(test_distance),
		cmocka_unit_test(test_did_you_mean),
		cmocka_unit_test(test_show),
		cmocka_unit_test(test_tidy_paths),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
