/*
 * Charts: the Pareto frontier (checked case by case and, on random sets,
 * against what a frontier is), round ticks for assorted ranges, hostile
 * labels escaped, every chart well formed (tags balanced, attributes
 * quoted, no raw '<' or '&'), gaps at NaN, empty input, byte-identical
 * output for the same input, and compact coordinates.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vdtest.h"
#include "vd/chart.h"

#define HOSTILE "<script>alert('x')</script> & \"q\""

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

/* An entity at s (after '&'): &amp; &lt; &gt; &quot; &apos; or &#NNN;. */
static bool
entity(const char *s)
{
	static const char *const names[] = { "amp;", "lt;", "gt;", "quot;", "apos;" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strncmp(s, names[i], strlen(names[i])))
			return true;
	if (*s++ != '#')
		return false;
	s += strspn(s, "0123456789");
	return *s == ';';
}

/* Fail unless s is a run of well-formed svg elements: tags nest and close
 * by name, attribute values are double-quoted, no raw '<' or '>' in text
 * or values, every '&' starts an entity. Returns the root elements. */
static int
assert_well_formed(const char *s)
{
	const char *open[64];
	size_t len[64];
	int depth = 0, roots = 0;

	for (const char *p = s; *p;) {
		const char *name, *q;
		size_t n;

		if (*p == '&' && !entity(p + 1))
			fail_msg("a bare '&' at offset %zu: %.40s", (size_t)(p - s), p);
		if (*p == '>')
			fail_msg("a raw '>' at offset %zu: %.40s", (size_t)(p - s), p);
		if (*p != '<') {
			p++;
			continue;
		}
		if (p[1] == '/') {
			name = p + 2;
			n = strcspn(name, ">");
			if (!depth || n != len[depth - 1] || strncmp(name, open[depth - 1], n))
				fail_msg("'</%.*s>' closes nothing open at offset %zu", (int)n,
					 name, (size_t)(p - s));
			depth--;
			p = name + n + 1;
			continue;
		}
		name = p + 1;
		n = strcspn(name, " />\n");
		assert_true(n > 0);
		for (q = name + n; *q && *q != '>'; q++) {
			if (*q == '<')
				fail_msg("'<' inside a tag at offset %zu", (size_t)(q - s));
			if (*q != '=')
				continue;
			if (*++q != '"')
				fail_msg("an unquoted attribute at offset %zu", (size_t)(q - s));
			for (q++; *q && *q != '"'; q++) {
				if (*q == '<' || *q == '>' || (*q == '&' && !entity(q + 1)))
					fail_msg("raw '%c' in an attribute at offset %zu", *q,
						 (size_t)(q - s));
			}
			assert_int_equal(*q, '"');
		}
		assert_int_equal(*q, '>');
		if (!depth) {
			if (n != 3 || strncmp(name, "svg", 3))
				fail_msg("a root element that is not <svg>: %.20s", name);
			roots++;
		}
		if (q[-1] != '/') {
			assert_true(depth < 64);
			open[depth] = name;
			len[depth++] = n;
		}
		p = q + 1;
	}
	if (depth)
		fail_msg("<%.*s> left open", (int)len[depth - 1], open[depth - 1]);
	return roots;
}

/* Fail when a path's coordinates or an x/y attribute has more than one
 * digit after the point, or when NaN or infinity got printed. */
static void
assert_compact(const char *s)
{
	static const char *const attrs[] = { " d=\"", " x=\"", " y=\"", " cx=\"", " cy=\"" };

	assert_null(strstr(s, "nan"));
	assert_null(strstr(s, "inf"));
	for (size_t i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++) {
		for (const char *p = s; (p = strstr(p, attrs[i]));) {
			p += strlen(attrs[i]);
			for (; *p && *p != '"'; p++) {
				if (*p == '.' && strspn(p + 1, "0123456789") > 1)
					fail_msg("a long number in %s%.40s", attrs[i], p - 8);
			}
		}
	}
}

/* The d attribute of the first path with this stroke colour, copied. */
static char *
path_of(const char *svg, const char *color)
{
	char key[64];
	const char *p, *d;

	snprintf(key, sizeof(key), "stroke=\"%s\"", color);
	p = strstr(svg, key);
	assert_non_null(p);
	d = strstr(p, " d=\"");
	assert_non_null(d);
	d += 4;
	return strndup(d, strcspn(d, "\""));
}

static char *
take(struct vd_strbuf *b)
{
	char *s;

	assert_false(vd_strbuf_failed(b));
	s = vd_strbuf_steal(b);
	assert_non_null(s);
	return s;
}

static char *
line_svg(const struct vd_chart_line *c)
{
	struct vd_strbuf b = VD_STRBUF_INIT;

	vd_chart_line(&b, c);
	return take(&b);
}

static char *
scatter_svg(const struct vd_chart_scatter *c)
{
	struct vd_strbuf b = VD_STRBUF_INIT;

	vd_chart_scatter(&b, c);
	return take(&b);
}

static char *
heatmap_svg(const struct vd_chart_heatmap *c)
{
	struct vd_strbuf b = VD_STRBUF_INIT;

	vd_chart_heatmap(&b, c);
	return take(&b);
}

/* ------------------------------------------------------------------ */
/* The Pareto frontier                                                 */
/* ------------------------------------------------------------------ */

static void
check_front(const struct vd_chart_point *p, size_t n, enum vd_chart_better xb,
	    enum vd_chart_better yb, const char *want)
{
	bool opt[16];
	size_t got;

	assert_true(n <= 16 && strlen(want) == n);
	memset(opt, 0xff, sizeof(opt));
	got = vd_chart_pareto(p, n, xb, yb, opt);
	for (size_t i = 0; i < n; i++)
		if (opt[i] != (want[i] == '1'))
			fail_msg("point %zu (%g, %g): optimal %d, want %c", i, p[i].x, p[i].y,
				 opt[i], want[i]);
	assert_int_equal(got, vt_count(want, "1"));
}

static void
test_pareto_cases(void **state)
{
	const double nan = NAN;

	(void)state;
	/* cheaper is better, faster is better */
	check_front((struct vd_chart_point[]){ { 1, 10, "a" }, { 2, 5, "b" }, { 2, 20, "c" },
					       { 3, 15, "d" }, { 4, 30, "e" } }, 5,
		    VD_CHART_LOWER, VD_CHART_HIGHER, "10101");
	/* the same points, the other way round on y */
	check_front((struct vd_chart_point[]){ { 1, 10, "a" }, { 2, 5, "b" }, { 2, 20, "c" },
					       { 3, 15, "d" }, { 4, 30, "e" } }, 5,
		    VD_CHART_LOWER, VD_CHART_LOWER, "11000");
	/* ties: equal points are both optimal; a tie on one axis is beaten
	 * by the better other */
	check_front((struct vd_chart_point[]){ { 1, 10, NULL }, { 1, 10, NULL }, { 1, 9, NULL },
					       { 2, 10, NULL } }, 4,
		    VD_CHART_LOWER, VD_CHART_HIGHER, "1100");
	/* one point; none */
	check_front((struct vd_chart_point[]){ { 5, 5, NULL } }, 1, VD_CHART_LOWER,
		    VD_CHART_HIGHER, "1");
	assert_int_equal(vd_chart_pareto(NULL, 0, VD_CHART_LOWER, VD_CHART_HIGHER, NULL), 0);
	/* all equal */
	check_front((struct vd_chart_point[]){ { 2, 3, NULL }, { 2, 3, NULL }, { 2, 3, NULL } },
		    3, VD_CHART_HIGHER, VD_CHART_HIGHER, "111");
	/* NaN: never optimal, beats nothing (not even worse points) */
	check_front((struct vd_chart_point[]){ { nan, 100, NULL }, { 1, 10, NULL },
					       { 0, nan, NULL }, { 5, 1, NULL } }, 4,
		    VD_CHART_LOWER, VD_CHART_HIGHER, "0100");
	check_front((struct vd_chart_point[]){ { nan, nan, NULL } }, 1, VD_CHART_LOWER,
		    VD_CHART_HIGHER, "0");
	/* negative values and infinities of no special meaning but NaN's */
	check_front((struct vd_chart_point[]){ { -1, -5, NULL }, { -2, -6, NULL },
					       { -3, -7, NULL } }, 3,
		    VD_CHART_HIGHER, VD_CHART_HIGHER, "100");
	/* no preference on x: only y counts */
	check_front((struct vd_chart_point[]){ { 1, 1, NULL }, { 9, 3, NULL }, { 5, 3, NULL } }, 3,
		    0, VD_CHART_HIGHER, "011");
}

/* On random sets with many ties: no optimal point is beaten by any point,
 * and every other point is beaten by an optimal one. */
static void
test_pareto_random(void **state)
{
	struct vd_chart_point p[40];
	bool opt[40];
	unsigned seed = 7;

	(void)state;
	for (int round = 0; round < 300; round++) {
		enum vd_chart_better xb = round & 1 ? VD_CHART_LOWER : VD_CHART_HIGHER;
		enum vd_chart_better yb = round & 2 ? VD_CHART_LOWER : VD_CHART_HIGHER;
		size_t n = 1 + (size_t)(round % 40), nopt = 0, got;

		for (size_t i = 0; i < n; i++) {
			seed = seed * 1103515245 + 12345;
			p[i].x = (seed >> 16) % 8;
			seed = seed * 1103515245 + 12345;
			p[i].y = (seed >> 16) % 8;
			p[i].label = NULL;
			if ((seed >> 8) % 17 == 0)
				p[i].y = NAN;
		}
		got = vd_chart_pareto(p, n, xb, yb, opt);
		for (size_t i = 0; i < n; i++)
			nopt += opt[i];
		assert_int_equal(got, nopt);
		for (size_t i = 0; i < n; i++) {
			bool beaten = false, by_opt = false;

			for (size_t j = 0; j < n; j++) {
				double dx = (p[j].x - p[i].x) * (xb == VD_CHART_LOWER ? -1 : 1);
				double dy = (p[j].y - p[i].y) * (yb == VD_CHART_LOWER ? -1 : 1);

				if (dx >= 0 && dy >= 0 && (dx > 0 || dy > 0)) {
					beaten = true;
					by_opt |= opt[j];
				}
			}
			if (isnan(p[i].y)) {
				assert_false(opt[i]);
				continue;
			}
			assert_int_equal(opt[i], !beaten);
			if (beaten)
				assert_true(by_opt);
		}
	}
}

/* ------------------------------------------------------------------ */
/* Ticks                                                               */
/* ------------------------------------------------------------------ */

static void
check_ticks(double lo, double hi, int target, double want_lo, double want_hi, double step)
{
	struct vd_chart_ticks t;

	vd_chart_ticks(lo, hi, target, &t);
	if (fabs(t.lo - want_lo) > 1e-9 * fabs(step) || fabs(t.hi - want_hi) > 1e-9 * fabs(step) ||
	    fabs(t.step - step) > 1e-12 * fabs(step) ||
	    t.n != (int)lround((want_hi - want_lo) / step) + 1)
		fail_msg("ticks(%g, %g, %d): %g..%g step %g n %d; want %g..%g step %g", lo, hi,
			 target, t.lo, t.hi, t.step, t.n, want_lo, want_hi, step);
}

static void
test_ticks_cases(void **state)
{
	(void)state;
	check_ticks(0, 100, 5, 0, 100, 20);
	check_ticks(0, 250, 5, 0, 250, 50);
	check_ticks(0, 1, 5, 0, 1, 0.2);
	check_ticks(3, 97, 5, 0, 100, 20);
	check_ticks(1, 60, 9, 0, 60, 10);
	check_ticks(0, 12345, 5, 0, 15000, 5000);
	check_ticks(0.001, 0.0042, 5, 0.001, 0.005, 0.001);
	/* negative values */
	check_ticks(-37, 12, 5, -40, 20, 10);
	check_ticks(-5, -1, 4, -5, -1, 1);
	check_ticks(-0.3, 0.3, 6, -0.3, 0.3, 0.1);
	/* a zero range is widened */
	check_ticks(0, 0, 5, 0, 1, 0.2);
	check_ticks(5, 5, 5, 4.4, 5.6, 0.2);
	check_ticks(-200, -200, 4, -220, -180, 10);
	/* reversed, and bounds that are not numbers */
	check_ticks(100, 0, 5, 0, 100, 20);
	check_ticks(NAN, 3, 5, 0, 1, 0.2);
	check_ticks(0, INFINITY, 5, 0, 1, 0.2);
	check_ticks(0, 10, 0, 0, 10, 10);
}

/* Over many ranges: the step is 1, 2 or 5 times a power of ten, the ticks
 * cover the range (to a billionth of a step), start and end on multiples
 * of the step, and number about the target. */
static void
test_ticks_properties(void **state)
{
	unsigned seed = 1;

	(void)state;
	for (int i = 0; i < 20000; i++) {
		struct vd_chart_ticks t;
		double lo, hi, scale, mant, intervals;
		int target = 2 + i % 9;

		seed = seed * 1103515245 + 12345;
		scale = pow(10, (int)(seed % 13) - 6);
		lo = ((double)(seed >> 8) / (1 << 24) - 0.5) * 10 * scale;
		seed = seed * 1103515245 + 12345;
		hi = lo + (double)(seed >> 8) / (1 << 24) * scale;
		vd_chart_ticks(lo, hi, target, &t);
		mant = t.step / pow(10, floor(log10(t.step)));
		if (fabs(mant - 1) > 1e-9 && fabs(mant - 2) > 1e-9 && fabs(mant - 5) > 1e-9 &&
		    fabs(mant - 10) > 1e-9)
			fail_msg("ticks(%g, %g): step %g", lo, hi, t.step);
		/* within rounding: a billionth of a step */
		if (hi > lo && (t.lo > lo + t.step * 1e-9 || t.hi < hi - t.step * 1e-9))
			fail_msg("ticks(%g, %g): %g..%g leaves data out", lo, hi, t.lo, t.hi);
		assert_true(fabs(t.lo / t.step - round(t.lo / t.step)) < 1e-6);
		assert_true(fabs(t.hi / t.step - round(t.hi / t.step)) < 1e-6);
		intervals = (t.hi - t.lo) / t.step;
		assert_int_equal(t.n, (int)lround(intervals) + 1);
		if (hi > lo && (t.n - 1 > target + 2 || t.n - 1 < target / 3))
			fail_msg("ticks(%g, %g, %d): %d ticks", lo, hi, target, t.n);
	}
}

/* ------------------------------------------------------------------ */
/* Line charts                                                         */
/* ------------------------------------------------------------------ */

static void
test_line_gaps(void **state)
{
	const double nan = NAN;
	struct vd_chart_xy a[] = { { 0, 1 }, { 1, 2 }, { 2, nan }, { 3, 4 }, { 4, 5 } };
	/* values alone between gaps: a dot each */
	struct vd_chart_xy b[] = { { 0, 1 }, { 1, nan }, { 2, 3 }, { 3, nan }, { 4, 5 }, { 5, 6 } };
	struct vd_chart_xy st[] = { { 0, 1 }, { 1, 3 }, { 2, nan }, { 3, 2 } };
	struct vd_chart_series s[] = {
		{ "a", "ms", a, 5, false, "#000001" },
		{ "b", "ms", b, 6, false, "#000002" },
		{ "step", "ms", st, 4, true, "#000003" },
	};
	char *svg, *d;

	(void)state;
	svg = line_svg(&(struct vd_chart_line){ .series = s, .nseries = 3 });
	assert_int_equal(assert_well_formed(svg), 1);
	assert_compact(svg);
	d = path_of(svg, "#000001");
	assert_int_equal(vt_count(d, "M"), 2); /* two runs */
	assert_int_equal(vt_count(d, "L"), 2); /* 0-1 and 3-4, nothing across the gap */
	free(d);
	d = path_of(svg, "#000002");
	assert_int_equal(vt_count(d, "M"), 3);
	assert_int_equal(vt_count(d, "L"), 1);
	free(d);
	assert_int_equal(vt_count(svg, "r=\"2\" fill=\"#000002\""), 2);
	assert_int_equal(vt_count(svg, "r=\"2\" fill=\"#000001\""), 0);
	/* a step holds its value until the next x, even one without a value,
	 * then stops: M, H V, H (to x = 2), M */
	d = path_of(svg, "#000003");
	assert_int_equal(vt_count(d, "M"), 2);
	assert_int_equal(vt_count(d, "H"), 2);
	assert_int_equal(vt_count(d, "V"), 1);
	assert_int_equal(vt_count(d, "L"), 0);
	free(d);
	free(svg);
}

static void
test_line_axes_legend_markers(void **state)
{
	struct vd_chart_xy p[] = { { 0, 0 }, { 30, 15000 }, { 60, 12000 } };
	struct vd_chart_xy q[] = { { 0, 3 }, { 60, 4 } };
	struct vd_chart_series s[] = {
		{ .name = "rate", .unit = "req/s", .pts = p, .n = 3 },
		{ .name = "replicas", .unit = "", .pts = q, .n = 2, .step = true },
	};
	struct vd_chart_marker m[] = {
		{ 20, "scale up", NULL },
		{ 40, NULL, "#00aa00" },
		{ 45, "a very long reason for a scale decision, longer than the plot is high "
		      "so that it has to be cut somewhere", NULL },
		{ 999, "out of range", NULL },
		{ NAN, "nowhere", NULL },
	};
	char *svg;

	(void)state;
	svg = line_svg(&(struct vd_chart_line){ .title = "Load", .x = { "time", "s", 0, 0, false },
		.y = { .title = "rate" }, .series = s, .nseries = 2, .markers = m, .nmarkers = 5,
		.height = 200 });
	assert_int_equal(assert_well_formed(svg), 1);
	assert_compact(svg);
	assert_non_null(strstr(svg, "width=\"900\" height=\"200\""));
	assert_non_null(strstr(svg, ">time (s)</text>"));
	assert_non_null(strstr(svg, ">rate (req/s)</text>"));
	assert_non_null(strstr(svg, ">Load</text>"));
	/* the second series has another unit: the legend says it */
	assert_non_null(strstr(svg, ">rate</text>"));
	assert_non_null(strstr(svg, ">replicas</text>"));
	/* round ticks, in thousands */
	assert_non_null(strstr(svg, ">15k</text>"));
	assert_non_null(strstr(svg, ">0</text>"));
	assert_non_null(strstr(svg, ">60</text>"));
	/* default palette */
	assert_non_null(strstr(svg, "stroke=\"#1f77b4\""));
	assert_non_null(strstr(svg, "stroke=\"#ff7f0e\""));
	/* markers: three in range, labelled but one, the long one cut */
	assert_int_equal(vt_count(svg, "stroke-dasharray"), 3);
	assert_non_null(strstr(svg, ">scale up</text>"));
	assert_non_null(strstr(svg, "stroke=\"#00aa00\""));
	assert_non_null(strstr(svg, "cut somewhere</title>"));
	assert_null(strstr(svg, "cut somewhere</text>"));
	assert_non_null(strstr(svg, "\xe2\x80\xa6</text>"));
	assert_null(strstr(svg, "out of range"));
	assert_null(strstr(svg, "nowhere"));
	free(svg);
}

static void
test_line_fixed_range(void **state)
{
	struct vd_chart_xy p[] = { { 0, -50 }, { 5, 50 }, { 10, 500 } };
	struct vd_chart_series s = { .name = "v", .pts = p, .n = 3, .color = "#000001" };
	char *svg, *d, *end;
	double y, ymin = 1e9, ymax = -1e9;

	(void)state;
	svg = line_svg(&(struct vd_chart_line){ .x = { .tight = true },
		.y = { .min = 0, .max = 100 }, .series = &s, .nseries = 1 });
	assert_int_equal(assert_well_formed(svg), 1);
	assert_non_null(strstr(svg, ">100</text>"));
	assert_null(strstr(svg, ">120</text>"));
	/* values out of the range stay in the plot: y in [top, bottom] */
	d = path_of(svg, "#000001");
	for (char *p2 = d; *p2; p2 = end) {
		strtod(p2 + 1, &end);
		y = strtod(end, &end);
		ymin = fmin(ymin, y);
		ymax = fmax(ymax, y);
	}
	assert_true(ymin >= 30 && ymax <= 220);
	free(d);
	free(svg);
}

static void
test_line_empty(void **state)
{
	struct vd_chart_xy nan2[] = { { NAN, NAN }, { 1, NAN } };
	struct vd_chart_series s[] = {
		{ .name = "none", .pts = NULL, .n = 0 },
		{ .name = "all NaN", .pts = nan2, .n = 2, .step = true },
	};
	char *svg;

	(void)state;
	svg = line_svg(&(struct vd_chart_line){ .series = s, .nseries = 2 });
	assert_int_equal(assert_well_formed(svg), 1);
	assert_compact(svg);
	assert_non_null(strstr(svg, ">no data</text>"));
	free(svg);
	svg = line_svg(&(struct vd_chart_line){ .title = "nothing" });
	assert_int_equal(assert_well_formed(svg), 1);
	assert_compact(svg);
	assert_non_null(strstr(svg, ">no data</text>"));
	free(svg);
}

/* ------------------------------------------------------------------ */
/* Scatter and heat map                                                */
/* ------------------------------------------------------------------ */

static const struct vd_chart_point sweep[] = {
	{ 0.5, 400, "1 x 0.5 cpu, 256Mi" },
	{ 1, 900, "2 x 0.5 cpu, 256Mi" },
	{ 1, 700, "1 x 1 cpu, 256Mi" },
	{ 2, 1700, "4 x 0.5 cpu, 256Mi" },
	{ 2, 1200, "2 x 1 cpu, 512Mi" },
	{ NAN, 5000, "failed run" },
	{ 4, 1600, "4 x 1 cpu, 256Mi" },
};

static void
test_scatter(void **state)
{
	char *svg, *d;

	(void)state;
	svg = scatter_svg(&(struct vd_chart_scatter){ .title = "Sweep",
		.x = { "cost", "CPUs", 0, 0, false }, .y = { "throughput", "req/s", 0, 0, false },
		.points = sweep, .n = 7, .x_better = VD_CHART_LOWER, .y_better = VD_CHART_HIGHER });
	assert_int_equal(assert_well_formed(svg), 1);
	assert_compact(svg);
	/* three optimal points, labelled and joined; three dimmed; NaN left out */
	assert_int_equal(vt_count(svg, "r=\"4.5\""), 3);
	assert_int_equal(vt_count(svg, "r=\"3.5\""), 3);
	assert_non_null(strstr(svg, ">1 x 0.5 cpu, 256Mi</text>"));
	assert_non_null(strstr(svg, ">2 x 0.5 cpu, 256Mi</text>"));
	assert_non_null(strstr(svg, ">4 x 0.5 cpu, 256Mi</text>"));
	assert_null(strstr(svg, ">2 x 1 cpu, 512Mi</text>"));
	assert_non_null(strstr(svg, "<title>2 x 1 cpu, 512Mi: 2 CPUs, 1200 req/s</title>"));
	assert_null(strstr(svg, "failed run"));
	d = path_of(svg, "#d62728");
	assert_int_equal(vt_count(d, "M"), 1);
	assert_int_equal(vt_count(d, "L"), 2);
	free(d);
	assert_non_null(strstr(svg, "\xe2\x86\x96 better"));
	assert_non_null(strstr(svg, ">cost (CPUs)</text>"));
	free(svg);

	/* without directions: a plain scatter */
	svg = scatter_svg(&(struct vd_chart_scatter){ .points = sweep, .n = 7 });
	assert_int_equal(assert_well_formed(svg), 1);
	assert_int_equal(vt_count(svg, "r=\"3.5\""), 6);
	assert_int_equal(vt_count(svg, "r=\"4.5\""), 0);
	free(svg);

	svg = scatter_svg(&(struct vd_chart_scatter){ .n = 0, .x_better = VD_CHART_LOWER,
						      .y_better = VD_CHART_LOWER });
	assert_int_equal(assert_well_formed(svg), 1);
	assert_compact(svg);
	assert_non_null(strstr(svg, ">no data</text>"));
	free(svg);
}

static void
test_heatmap(void **state)
{
	static const char *const rows[] = { "1", "2" }, *const cols[] = { "0.5", "1", "2" };
	const double v[] = { 10, 20, NAN, 15.55, 12, 30 };
	char *svg, *lo, *hi;

	(void)state;
	svg = heatmap_svg(&(struct vd_chart_heatmap){ .title = "p95", .row_title = "replicas",
		.col_title = "CPUs per replica", .rows = rows, .cols = cols, .nrows = 2,
		.ncols = 3, .values = v, .value_title = "p95", .unit = "ms", .format = "%.1f ms",
		.better = VD_CHART_LOWER });
	assert_int_equal(assert_well_formed(svg), 1);
	assert_compact(svg);
	assert_non_null(strstr(svg, ">15.6 ms</text>"));
	assert_non_null(strstr(svg, ">10.0 ms</text>"));
	assert_int_equal(vt_count(svg, "fill=\"none\""), 1); /* the NaN cell */
	assert_non_null(strstr(svg, "<title>1, 2: no value</title>"));
	assert_non_null(strstr(svg, ">p95 (ms)</text>"));
	assert_non_null(strstr(svg, ">lower is better</text>"));
	/* the lowest value in the better end's colour, the highest in the
	 * worse end's */
	lo = strstr(svg, "fill=\"#4575b4\"/><text x=");
	hi = strstr(svg, "fill=\"#d73027\"/><text x=");
	assert_non_null(lo);
	assert_non_null(hi);
	assert_non_null(strstr(lo, ">10.0 ms<"));
	assert_true(strstr(lo, ">10.0 ms<") < strstr(lo, "</g>"));
	assert_true(strstr(hi, ">30.0 ms<") < strstr(hi, "</g>"));
	free(svg);

	/* higher is better: the colours swap ends; a format that is not one
	 * double falls back to 3 digits */
	svg = heatmap_svg(&(struct vd_chart_heatmap){ .rows = rows, .cols = cols, .nrows = 2,
		.ncols = 3, .values = v, .format = "%s%n", .better = VD_CHART_HIGHER });
	assert_int_equal(assert_well_formed(svg), 1);
	hi = strstr(svg, "fill=\"#4575b4\"/><text x=");
	assert_non_null(hi);
	assert_true(strstr(hi, ">30<") < strstr(hi, "</g>"));
	assert_non_null(strstr(svg, ">15.6<"));
	assert_non_null(strstr(svg, ">higher is better</text>"));
	free(svg);

	svg = heatmap_svg(&(struct vd_chart_heatmap){ .title = "empty" });
	assert_int_equal(assert_well_formed(svg), 1);
	assert_compact(svg);
	free(svg);
}

/* ------------------------------------------------------------------ */
/* Every chart: escaping, determinism                                  */
/* ------------------------------------------------------------------ */

/* One of each chart kind, every string hostile, into one buffer. */
static char *
hostile_charts(void)
{
	static const char *const rows[] = { HOSTILE, "b" }, *const cols[] = { "&amp;", HOSTILE };
	static const double v[] = { 1, NAN, 3, 4 };
	struct vd_chart_xy p[] = { { 0, 1 }, { 1, NAN }, { 2, 3 }, { 3, 2.5 } };
	struct vd_chart_series s = { HOSTILE, HOSTILE, p, 4, true, "red\" onload=\"alert(1)" };
	struct vd_chart_marker m = { 1, HOSTILE, "x' onclick='y" };
	struct vd_chart_point pts[] = { { 1, 2, HOSTILE }, { 2, 1, "</svg><script>" },
					{ 3, 3, "ok" } };
	struct vd_strbuf b = VD_STRBUF_INIT;

	vd_chart_line(&b, &(struct vd_chart_line){ .title = HOSTILE, .x = { HOSTILE, HOSTILE,
		0, 0, false }, .y = { .title = HOSTILE }, .series = &s, .nseries = 1,
		.markers = &m, .nmarkers = 1 });
	vd_chart_scatter(&b, &(struct vd_chart_scatter){ .title = HOSTILE,
		.x = { HOSTILE, HOSTILE, 0, 0, false }, .y = { HOSTILE, HOSTILE, 0, 0, false },
		.points = pts, .n = 3, .x_better = VD_CHART_HIGHER, .y_better = VD_CHART_LOWER });
	vd_chart_heatmap(&b, &(struct vd_chart_heatmap){ .title = HOSTILE, .row_title = HOSTILE,
		.col_title = HOSTILE, .rows = rows, .cols = cols, .nrows = 2, .ncols = 2,
		.values = v, .value_title = HOSTILE, .unit = HOSTILE, .format = "<%.0f> & \"" });
	return take(&b);
}

static void
test_escaping(void **state)
{
	char *svg = hostile_charts();

	(void)state;
	assert_int_equal(assert_well_formed(svg), 3);
	assert_compact(svg);
	assert_null(strstr(svg, "<script"));
	assert_null(strstr(svg, "onload"));
	assert_null(strstr(svg, "onclick"));
	assert_null(strstr(svg, "'"));
	assert_non_null(strstr(svg, "&lt;script&gt;alert(&apos;x&apos;)&lt;/script&gt; &amp; "
				    "&quot;q&quot;"));
	assert_non_null(strstr(svg, "&lt;/svg&gt;&lt;script&gt;"));
	assert_non_null(strstr(svg, "&amp;amp;"));
	assert_non_null(strstr(svg, ">&lt;3&gt; &amp; &quot;</text>"));
	/* the rejected colour falls back to the palette's */
	assert_non_null(strstr(svg, "stroke=\"#1f77b4\""));
	free(svg);
}

static void
test_deterministic(void **state)
{
	char *a = hostile_charts(), *b, *c;
	struct vd_chart_xy p[2000];

	(void)state;
	b = hostile_charts();
	assert_string_equal(a, b);
	free(a);
	free(b);

	/* a long series, twice: the same bytes, and few of them */
	for (int i = 0; i < 2000; i++)
		p[i] = (struct vd_chart_xy){ i * 0.5, 1000 * sin(i / 50.0) * sin(i / 7.0) };
	a = line_svg(&(struct vd_chart_line){ .series = &(struct vd_chart_series){
		.name = "s", .pts = p, .n = 2000 }, .nseries = 1 });
	c = line_svg(&(struct vd_chart_line){ .series = &(struct vd_chart_series){
		.name = "s", .pts = p, .n = 2000 }, .nseries = 1 });
	assert_string_equal(a, c);
	assert_compact(a);
	assert_true(strlen(a) < 2000 * 14 + 4000);
	free(a);
	free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pareto_cases),
		cmocka_unit_test(test_pareto_random),
		cmocka_unit_test(test_ticks_cases),
		cmocka_unit_test(test_ticks_properties),
		cmocka_unit_test(test_line_gaps),
		cmocka_unit_test(test_line_axes_legend_markers),
		cmocka_unit_test(test_line_fixed_range),
		cmocka_unit_test(test_line_empty),
		cmocka_unit_test(test_scatter),
		cmocka_unit_test(test_heatmap),
		cmocka_unit_test(test_escaping),
		cmocka_unit_test(test_deterministic),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
