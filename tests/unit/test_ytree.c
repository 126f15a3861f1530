/*
 * YAML trees (orchestrator/ytree.c) on their own: the reader's documents,
 * positions and limits, the value readers' messages, and a small file
 * format made of a key table alone (what the experiment files of `vdctl
 * sweep` will be), read, checked and written back out as JSON both ways.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vdtest.h"
#include "vd/ytree.h"

static const struct vd_ytree_opts opts = {
	.what = "things",
	.max_bytes = 1 << 20,
	.max_value = 1 << 10,
	.max_nodes = 1000,
	.max_depth = 8,
};

struct fixture {
	struct vd_diags diags;
	struct vd_diag_file df;
	struct vd_ycheck c;
};

static void
begin(struct fixture *f)
{
	f->diags = (struct vd_diags)VD_DIAGS_INIT;
	vd_diag_file_init(&f->df, &f->diags, 100);
	vd_diag_file_begin(&f->df, "t.yaml", 0);
	f->c = (struct vd_ycheck){ .df = &f->df };
}

/* Every diagnostic so far as "LINE:COL: message\n", then cleared. */
static char *
said(struct fixture *f)
{
	char *out = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&out, &len);

	vd_diags_sort(&f->diags, 0);
	for (size_t i = 0; i < f->diags.n; i++)
		fprintf(m, "%d:%d: %s\n", f->diags.items[i].line, f->diags.items[i].col,
			f->diags.items[i].msg);
	fclose(m);
	vd_diags_clear(&f->diags);
	vd_diag_file_init(&f->df, &f->diags, 100);
	vd_diag_file_begin(&f->df, "t.yaml", 0);
	return out;
}

static void
assert_said(struct fixture *f, const char *want)
{
	char *got = said(f);

	if (strcmp(got, want) != 0)
		fail_msg("got:\n%s\nwant:\n%s", got, want);
	free(got);
}

static struct vd_ynode *
one(struct fixture *f, const char *text, const struct vd_ytree_opts *o)
{
	return vd_ytree_read_one(NULL, text, strlen(text), o, &f->df);
}

/* ============================================================== reading */

struct docs {
	int n, lines[8];
	char first[8][32]; /* what each root is */
};

static void
on_doc(void *arg, const struct vd_ynode *root, int line)
{
	struct docs *d = arg;

	d->lines[d->n] = line;
	snprintf(d->first[d->n], sizeof(d->first[0]), "%s", VD_YTREE_WHAT(root));
	if (root->kind == VD_YSEQ) {
		/* - x and - 'y': the quoted one is always a string */
		assert_false(root->kids[0]->quoted);
		assert_true(root->kids[1]->quoted);
	}
	if (root->kind == VD_YMAP && root->n == 2 &&
	    strcmp(root->kids[0]->text, "\xc3\xa9\xc3\xa9") == 0) {
		/* columns count characters, not bytes */
		assert_int_equal(root->kids[1]->line, 8);
		assert_int_equal(root->kids[1]->col, 5);
	}
	d->n++;
}

static void
test_documents(void **state)
{
	static const char text[] = "a: 1\n---\n- x\n- 'y'\n---\n~\n---\n\xc3\xa9\xc3\xa9: v\n";
	struct fixture f;
	struct docs d = { 0 };
	struct vd_ynode *root;

	(void)state;
	begin(&f);
	/* the null document is no document */
	assert_int_equal(vd_ytree_read(text, strlen(text), &opts, &f.df, on_doc, &d), 3);
	assert_int_equal(d.n, 3);
	assert_int_equal(d.lines[0], 1);
	assert_int_equal(d.lines[1], 2);
	assert_int_equal(d.lines[2], 7);
	assert_string_equal(d.first[0], "a mapping");
	assert_string_equal(d.first[1], "a list");
	assert_said(&f, "");

	/* exactly one */
	root = one(&f, "a: 1\nb: [2]\n", &opts);
	assert_non_null(root);
	assert_int_equal(root->kind, VD_YMAP);
	assert_int_equal(vd_ytree_get(root, "b")->kind, VD_YSEQ);
	assert_int_equal(vd_ytree_get(root, "b")->line, 2);
	assert_int_equal(vd_ytree_get(root, "b")->col, 4);
	vd_ytree_free(root);
	assert_null(one(&f, "a: 1\n---\nb: 2\n", &opts));
	assert_said(&f, "2:1: more than one YAML document; things have one\n");
	assert_null(one(&f, "# nothing\n", &opts));
	assert_int_equal(f.df.count, 0);
	assert_null(one(&f, "~\n", &opts));
	assert_int_equal(f.df.count, 0);
	vd_diags_clear(&f.diags);
}

static void
test_refused(void **state)
{
	struct fixture f;
	struct vd_ynode *root;

	(void)state;
	begin(&f);
	root = one(&f, "a: &x 1\nb: *x\nc: !!str 3\nd: *y\na: 2\n", &opts);
	/* refused, but still a tree: the checkers go on */
	assert_non_null(root);
	assert_int_equal(vd_ytree_get(root, "b")->kind, VD_YALIAS);
	assert_string_equal(vd_ytree_get(root, "a")->text, "1"); /* the first of a repeat */
	assert_true(root->kids[8]->dup);
	assert_int_equal(root->kids[8]->first_line, 1);
	vd_ytree_free(root);
	assert_said(&f, "1:4: YAML anchors (&x) are not supported in things\n"
		    "3:4: YAML tags (!!str) are not supported in things\n"
		    "4:4: YAML aliases (*y) are not supported in things\n"
		    "5:1: duplicate key 'a' (first at line 1)\n");
	/* escapes cannot smuggle in what the text may not hold */
	root = one(&f, "a: \"x\\x7fy\"\nb: \"\\N\"\nc: \"\\L\"\nd: \"\\x01\"\n"
		   "ok: \"tab\\there\\r\\n\"\n", &opts);
	assert_string_equal(vd_ytree_get(root, "ok")->text, "tab\there\r\n");
	vd_ytree_free(root);
	assert_said(&f, "1:4: control characters are not allowed in values (character U+007F)\n"
		    "2:4: control characters are not allowed in values (character U+0085)\n"
		    "3:4: control characters are not allowed in values (character U+2028)\n"
		    "4:4: control characters are not allowed in values (character U+0001)\n");
	assert_null(one(&f, "a:\n\tb: 1\n", &opts));
	assert_said(&f, "2:1: YAML syntax error: found character that cannot start any token "
		    "(while scanning for the next token at line 2, column 1); tabs cannot "
		    "indent YAML\n");
	vd_diags_clear(&f.diags);
}

static void
test_limits(void **state)
{
	static const struct vd_ytree_opts tiny = {
		.what = "things", .max_bytes = 16, .max_value = 4, .max_nodes = 3, .max_depth = 2,
	};
	struct fixture f;

	(void)state;
	begin(&f);
	assert_null(one(&f, "a: [[1]]", &tiny));
	assert_said(&f, "1:5: nesting deeper than 2 levels; things are limited to that\n");
	assert_null(one(&f, "[1, 2, 3]", &tiny));
	assert_said(&f, "1:8: more than 3 YAML nodes in one file; things are limited to that\n");
	assert_null(one(&f, "abcde", &tiny));
	assert_said(&f, "1:1: value of 5 B is over the limit of 4 B\n");
	assert_null(one(&f, "# 17 bytes, not 16", &tiny));
	assert_said(&f, "1:1: file is 18 B; things are limited to 16 B\n");
	assert_null(vd_ytree_read_one("/nonexistent/t.yaml", NULL, 0, &tiny, &f.df));
	assert_said(&f, "0:0: cannot read: No such file or directory\n");
	assert_int_equal(vd_ytree_read_file("/", &tiny, &f.df, on_doc, NULL), -1);
	assert_said(&f, "0:0: cannot read: Is a directory\n");
}

static void
test_helpers(void **state)
{
	static const char *const nulls[] = { "a:", "a: ~", "a: null", "a: Null", "a: NULL" };
	struct fixture f;
	struct vd_ynode *root;

	(void)state;
	begin(&f);
	for (size_t i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++) {
		root = one(&f, nulls[i], &opts);
		assert_true(vd_ytree_is_null(vd_ytree_get(root, "a")));
		assert_string_equal(VD_YTREE_WHAT(vd_ytree_get(root, "a")), "empty");
		vd_ytree_free(root);
	}
	root = one(&f, "a: ''\nb: nil\nc: {}\nd: []\n", &opts);
	assert_false(vd_ytree_is_null(vd_ytree_get(root, "a")));
	assert_string_equal(VD_YTREE_WHAT(vd_ytree_get(root, "b")), "'nil'");
	assert_string_equal(VD_YTREE_WHAT(vd_ytree_get(root, "c")), "a mapping");
	assert_string_equal(VD_YTREE_WHAT(vd_ytree_get(root, "d")), "a list");
	assert_null(vd_ytree_get(root, "e"));
	assert_null(vd_ytree_get(vd_ytree_get(root, "d"), "a"));
	vd_ytree_free(root);
	assert_said(&f, "");
}

/* ======================================================== value readers */

static void
test_values(void **state)
{
	static const char *const modes[] = { "fast", "slow", NULL };
	struct fixture f;
	struct vd_ynode *root;
	const struct vd_ynode *v;
	int64_t x;
	double d;
	bool b;
	int e;
	char *s = NULL;

	(void)state;
	begin(&f);
	root = one(&f, "i: 42\nq: \"42\"\nbig: 101\nn: 0.5\nz: 0\nt: True\nd: 1m30s\ns: 1.5\n"
		   "m: 1.5Gi\nc: 0.25\ne: slwo\nstr: hello\nlist: [1]\nnone:\n", &opts);
	assert_non_null(root);
#define GET(key) (v = vd_ytree_get(root, (key)))
	assert_int_equal(vd_ytree_int(&f.c, GET("i"), "i", 0, 100, &x), 0);
	assert_int_equal(x, 42);
	assert_int_equal(vd_ytree_int(&f.c, GET("q"), "q", 0, 100, &x), -1);
	assert_int_equal(vd_ytree_int(&f.c, GET("big"), "big", 0, 100, &x), -1);
	f.c.quoted_numbers = true;
	assert_int_equal(vd_ytree_int(&f.c, GET("q"), "q", 0, 100, &x), 0);
	f.c.quoted_numbers = false;
	assert_int_equal(vd_ytree_number(&f.c, GET("n"), "n", 0, true, 1, &d), 0);
	assert_true(d == 0.5);
	assert_int_equal(vd_ytree_number(&f.c, GET("z"), "z", 0, true, 1, &d), -1);
	assert_int_equal(vd_ytree_number(&f.c, GET("z"), "z", 0, false, 1, &d), 0);
	assert_int_equal(vd_ytree_number(&f.c, GET("str"), "str", 0, false, 1, &d), -1);
	assert_int_equal(vd_ytree_bool(&f.c, GET("t"), "t", &b), 0);
	assert_true(b);
	assert_int_equal(vd_ytree_bool(&f.c, GET("i"), "i", &b), -1);
	assert_int_equal(vd_ytree_duration(&f.c, GET("d"), "d", 1, &x), 0);
	assert_int_equal(x, 90000);
	assert_int_equal(vd_ytree_duration(&f.c, GET("s"), "s", 1, &x), -1);
	f.c.bare_seconds = true;
	assert_int_equal(vd_ytree_duration(&f.c, GET("s"), "s", 1, &x), 0);
	assert_int_equal(x, 1500);
	assert_int_equal(vd_ytree_duration(&f.c, GET("s"), "s", 2000, &x), -1);
	assert_int_equal(vd_ytree_duration(&f.c, GET("str"), "str", 0, &x), -1);
	f.c.bare_seconds = false;
	assert_int_equal(vd_ytree_size(&f.c, GET("m"), "m", &x), 0);
	assert_int_equal(x, 1610612736);
	assert_int_equal(vd_ytree_cpus(&f.c, GET("c"), "c", &x), 0);
	assert_int_equal(x, 250);
	assert_int_equal(vd_ytree_enum(&f.c, GET("e"), "e", modes, &e), -1);
	assert_int_equal(vd_ytree_string(&f.c, GET("str"), "str", &s), 0);
	assert_string_equal(s, "hello");
	assert_int_equal(vd_ytree_string(&f.c, GET("list"), "list", &s), -1);
	assert_string_equal(s, "hello"); /* untouched */
	assert_int_equal(vd_ytree_string(&f.c, GET("none"), "none", &s), -1);
	assert_false(vd_ytree_want(&f.c, GET("list"), VD_YMAP, "list"));
	assert_true(vd_ytree_want(&f.c, GET("list"), VD_YSEQ, "list"));
	assert_false(vd_ytree_want(&f.c, GET("none"), VD_YSCALAR, "none"));
	f.c.owner = "experiment 'e'";
	vd_ytree_unknown_key(&f.c, root->kids[0], "limits", modes, SIZE_MAX, " (expected x)");
	vd_ytree_unknown_key(&f.c, root->kids[0], NULL, (const char *const[]){ "ii", NULL }, 1,
			     NULL);
#undef GET
	assert_said(&f,
		    "1:1: unknown key 'i' in 'limits' of experiment 'e' (expected x)\n"
		    "1:1: unknown key 'i' in experiment 'e'\n"
		    "1:4: invalid value '42' for 'i': expected true or false\n"
		    "2:4: invalid value '42' for 'q': expected an integer, not a quoted string\n"
		    "3:6: invalid value '101' for 'big': must be between 0 and 100\n"
		    "5:4: invalid value '0' for 'z': must be greater than 0 and at most 1\n"
		    "8:4: invalid value '1.5' for 's': fractions are not allowed in durations "
		    "(use a smaller unit: '1500ms', not '1.5s')\n"
		    "8:4: invalid value '1.5' for 's': must be at least 2s\n"
		    "11:4: invalid value 'slwo' for 'e': expected one of fast, slow (did you "
		    "mean 'slow'?)\n"
		    "12:6: invalid value 'hello' for 'str': expected a number like 2 or 0.5\n"
		    "12:6: invalid value 'hello' for 'str': expected seconds or a duration like "
		    "500ms, 10s, 1m\n"
		    "13:7: 'list' must be a string, not a list\n"
		    "13:7: 'list' must be a mapping, not a list\n"
		    "14:6: 'none' must be a string, not empty\n"
		    "14:6: 'none' must be a value, not empty\n");
	free(s);
	vd_ytree_free(root);
}

/* ========================================== a format that is a key table */

enum mode { M_FAST, M_SLOW };

struct experiment {
	char *name;
	int runs;
	int64_t warmup_ms;
	double ratio;
	bool dry;
	int mode;
	char *slow_only;
	struct {
		bool enabled;
		int64_t memory, milli_cpus;
	} limits;
};

enum { F_NAME, F_RUNS, F_WARMUP, F_RATIO, F_DRY, F_MODE, F_SLOW_ONLY, F_LIMITS, F_MEMORY,
       F_CPUS, F_COUNT };

static const char *const mode_names[] = { "fast", "slow", NULL };

#define EXP(member) offsetof(struct experiment, member)

static const struct vd_ykey limits_keys[] = {
	{ .name = "memory", .field = F_MEMORY, .type = VD_YSIZE, .off = EXP(limits.memory) },
	{ .name = "cpus", .field = F_CPUS, .type = VD_YCPUS, .off = EXP(limits.milli_cpus) },
};

static const struct vd_ysection limits_section = {
	"limits", limits_keys, 2, 1 + EXP(limits.enabled)
};

static const struct vd_ykey experiment_keys[] = {
	{ .name = "name", .field = F_NAME, .type = VD_YSTRING, .off = EXP(name) },
	{ .name = "runs", .field = F_RUNS, .type = VD_YINT, .off = EXP(runs), .min = 1,
	  .max = 100 },
	{ .name = "warmup", .field = F_WARMUP, .type = VD_YDURATION, .off = EXP(warmup_ms) },
	{ .name = "ratio", .field = F_RATIO, .type = VD_YNUMBER, .off = EXP(ratio), .min = 0,
	  .max = 1 },
	{ .name = "dry", .field = F_DRY, .type = VD_YBOOL, .off = EXP(dry) },
	{ .name = "mode", .field = F_MODE, .type = VD_YENUM, .off = EXP(mode),
	  .arg = mode_names },
	{ .name = "slow_only", .field = F_SLOW_ONLY, .type = VD_YSTRING, .off = EXP(slow_only),
	  .only = 1 + M_SLOW },
	{ .name = "limits", .field = F_LIMITS, .type = VD_YSECTION, .arg = &limits_section },
};

static const struct vd_ysection experiment_section = {
	NULL, experiment_keys, sizeof(experiment_keys) / sizeof(experiment_keys[0]), 0
};

static void
wrong_mode(struct vd_ycheck *c, const struct vd_ykey *k, const struct vd_ynode *key)
{
	vd_ytree_diag(c->df, key, "'%s' is for mode %s", k->name, mode_names[k->only - 1]);
}

struct checked {
	struct experiment e;
	const struct vd_ynode *at[F_COUNT];
	bool bad[F_COUNT];
};

static void
check(struct fixture *f, struct checked *x, const char *text, int variant)
{
	struct vd_ynode *root = one(f, text, &opts);

	assert_non_null(root);
	memset(x, 0, sizeof(*x));
	f->c = (struct vd_ycheck){ .df = &f->df, .base = &x->e, .at = x->at, .bad = x->bad,
				   .top = &experiment_section, .owner = "experiment 'e'",
				   .variant = variant, .wrong_variant = wrong_mode };
	vd_ytree_walk(&f->c, &experiment_section, root);
	vd_ytree_free(root); /* at[] is not used after this */
}

static void
release(struct experiment *e)
{
	free(e->name);
	free(e->slow_only);
}

static void
test_key_table(void **state)
{
	static const char good[] = "name: sweep\nruns: 3\nwarmup: 1m30s\nratio: 0.5\ndry: true\n"
				   "mode: slow\nslow_only: x\nlimits: {memory: 1Gi, cpus: 1.5}\n";
	struct fixture f;
	struct checked x, y;
	json_t *j, *want;
	char *text;

	(void)state;
	begin(&f);
	check(&f, &x, good, M_SLOW);
	assert_said(&f, "");
	assert_string_equal(x.e.name, "sweep");
	assert_int_equal(x.e.runs, 3);
	assert_int_equal(x.e.warmup_ms, 90000);
	assert_true(x.e.ratio == 0.5 && x.e.dry && x.e.mode == M_SLOW);
	assert_true(x.e.limits.enabled);
	assert_int_equal(x.e.limits.memory, 1 << 30);
	assert_int_equal(x.e.limits.milli_cpus, 1500);
	assert_non_null(x.at[F_CPUS]);
	assert_false(x.bad[F_CPUS]);

	/* written back in the file's own format, it reads the same */
	j = vd_ytree_json(&experiment_section, &x.e, M_SLOW, 0);
	want = json_loads("{\"name\": \"sweep\", \"runs\": 3, \"warmup\": \"1m30s\", \"ratio\": 0.5,"
			  " \"dry\": true, \"mode\": \"slow\", \"slow_only\": \"x\","
			  " \"limits\": {\"memory\": 1073741824, \"cpus\": 1.5}}", 0, NULL);
	assert_true(json_equal(j, want));
	json_decref(want);
	text = json_dumps(j, JSON_COMPACT);
	check(&f, &y, text, M_SLOW);
	assert_said(&f, "");
	assert_string_equal(y.e.name, x.e.name);
	assert_true(y.e.runs == x.e.runs && y.e.warmup_ms == x.e.warmup_ms &&
		    y.e.ratio == x.e.ratio && y.e.dry == x.e.dry && y.e.mode == x.e.mode &&
		    y.e.limits.enabled && y.e.limits.memory == x.e.limits.memory &&
		    y.e.limits.milli_cpus == x.e.limits.milli_cpus);
	free(text);
	json_decref(j);
	release(&y.e);

	/* normalised: units in names and values; every key, null when unset */
	x.e.limits.enabled = false;
	x.e.ratio = 0;
	j = vd_ytree_json(&experiment_section, &x.e, M_FAST, VD_YJSON_UNITS);
	want = json_loads("{\"name\": \"sweep\", \"runs\": 3, \"warmup_ms\": 90000, \"ratio\": null,"
			  " \"dry\": true, \"mode\": \"slow\", \"slow_only\": null,"
			  " \"limits\": null}", 0, NULL);
	if (!json_equal(j, want))
		fail_msg("%s", json_dumps(j, 0));
	json_decref(want);
	json_decref(j);
	x.e.limits.enabled = true;
	j = vd_ytree_json(&experiment_section, &x.e, M_SLOW, VD_YJSON_UNITS);
	want = json_loads("{\"memory_bytes\": 1073741824, \"milli_cpus\": 1500}", 0, NULL);
	assert_true(json_equal(json_object_get(j, "limits"), want));
	json_decref(want);
	json_decref(j);
	release(&x.e);
}

static void
test_key_table_mistakes(void **state)
{
	struct fixture f;
	struct checked x;

	(void)state;
	begin(&f);
	check(&f, &x, "name: [a]\nruns: 0\nwarmup: 2\nratio: '0.5'\ndry: yes\nmode: slwo\n"
		  "memory: 1G\nlimits: {cpu: 1}\nslow_only: x\nruns: 5\n? [k]\n: v\n", M_FAST);
	assert_said(&f,
		    "1:7: 'name' must be a string, not a list\n"
		    "2:7: invalid value '0' for 'runs': must be between 1 and 100\n"
		    "3:9: invalid value '2' for 'warmup': durations need a unit: '2' -> '2s'?\n"
		    "4:8: invalid value '0.5' for 'ratio': expected a number, not a quoted "
		    "string\n"
		    "5:6: invalid value 'yes' for 'dry': expected true or false\n"
		    "6:7: invalid value 'slwo' for 'mode': expected one of fast, slow (did you "
		    "mean 'slow'?)\n"
		    "7:1: unknown key 'memory' in experiment 'e' ('memory' belongs under "
		    "'limits')\n"
		    "8:10: unknown key 'cpu' in 'limits' of experiment 'e' (did you mean "
		    "'cpus'?)\n"
		    "9:1: 'slow_only' is for mode slow\n"
		    "10:1: duplicate key 'runs' (first at line 2)\n"
		    "11:3: keys must be plain names, not a list\n");
	assert_true(x.bad[F_NAME] && x.bad[F_RUNS] && x.bad[F_WARMUP] && x.bad[F_MODE]);
	assert_non_null(x.at[F_RUNS]);
	assert_null(x.at[F_SLOW_ONLY]); /* not for this mode: not taken */
	assert_true(x.e.limits.enabled);
	assert_int_equal(x.e.runs, 0);
	release(&x.e);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_documents),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_helpers),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_key_table),
		cmocka_unit_test(test_key_table_mistakes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
