/*
 * Charts as standalone SVG, for the HTML reports (load runs, the
 * autoscaler's timeline, experiment sweeps): line charts over time, a
 * scatter with its Pareto frontier, and a heat map.
 *
 * Each vd_chart_*() appends one <svg> element to a vd_strbuf. The SVG has
 * no script, no external resource and no id, so any number of charts can be
 * inlined in one HTML page. Every string from the data (titles, names,
 * labels) is XML-escaped. The same input gives byte-identical output.
 * Nothing is allocated but the buffer's growth: out of memory shows only
 * in the buffer (vd_strbuf_failed()).
 *
 * A missing value is NaN: a gap in a line, a point left out of a scatter,
 * an empty cell in a heat map. Colours (optional, NULL for the default) are
 * CSS colours such as "#1f77b4"; one with other characters than letters,
 * digits and "#(),.% " gets the default.
 */
#ifndef VD_CHART_H
#define VD_CHART_H

#include <stdbool.h>
#include <stddef.h>

#include "vd/strbuf.h"

/* An axis of a line chart or a scatter. Fields left zero pick defaults, so
 * `{ .title = "time", .unit = "s" }` is a complete axis. Tick labels have
 * up to 6 significant digits (15000 shows as "15k"): give times from the
 * start of a run, not since 1970. */
struct vd_chart_axis {
	const char *title; /* "time"; NULL: none */
	const char *unit;  /* "s", shown as "time (s)"; NULL: the series' unit */
	double min, max;   /* the range; min == max: from the data */
	bool tight;        /* from the data alone; else stretched to include 0 */
};

/* Which end of a quantity is better: lower cost, higher requests/s. 0 (no
 * preference) turns off the frontier of a scatter and the good/bad colours
 * of a heat map. */
enum vd_chart_better {
	VD_CHART_LOWER = 1,
	VD_CHART_HIGHER = 2,
};

/* ============================================================ ticks */

/* Round ticks for an axis: step is 1, 2 or 5 times a power of ten, giving
 * at most about `target` intervals; lo and hi are the data range stretched
 * to multiples of step, and there are n ticks lo, lo + step, ..., hi. A zero
 * range is widened (0..0 to 0..1, v..v by a tenth of |v| each way); a
 * non-finite bound gives 0..1. */
struct vd_chart_ticks {
	double lo, hi, step;
	int n;
};

void vd_chart_ticks(double lo, double hi, int target, struct vd_chart_ticks *t);

/* ============================================================ lines */

struct vd_chart_xy {
	double x, y; /* NaN y (or x): no value here, a gap in the line */
};

struct vd_chart_series {
	const char *name;              /* in the legend */
	const char *unit;              /* "ms"; shown on the axis (or in the legend
					* when it differs from the axis') */
	const struct vd_chart_xy *pts; /* in increasing x */
	size_t n;
	bool step;                     /* a step line: y holds until the next x */
	const char *color;             /* NULL: the palette's, by position */
};

/* A vertical line at x with its label (NULL: the line alone), for events
 * such as scale decisions. */
struct vd_chart_marker {
	double x;
	const char *label;
	const char *color; /* NULL: grey */
};

struct vd_chart_line {
	const char *title;                     /* NULL: none */
	struct vd_chart_axis x, y;
	const struct vd_chart_series *series;  /* drawn in order, with one y scale */
	size_t nseries;
	const struct vd_chart_marker *markers; /* in any order */
	size_t nmarkers;
	int width, height;                     /* 0: 900 x 260 */
};

/* Append a line chart: the series as lines (a dot for a value alone
 * between gaps), the markers as dashed vertical lines with their labels,
 * ticks and axis titles, and a legend. Charts given the same x range and
 * width line up one above the other (while their y tick labels are at most
 * 5 characters, "0.025", "-150", "15k"). */
void vd_chart_line(struct vd_strbuf *b, const struct vd_chart_line *c);

/* ============================================================ scatter */

struct vd_chart_point {
	double x, y;       /* NaN: left out */
	const char *label; /* "4 x 0.5 cpu, 256Mi"; may be NULL */
};

/* Which points are Pareto-optimal: optimal[i] is set when no other point
 * is at least as good on both axes and better on one, by the directions
 * xb and yb (0: that axis does not count). Equal points are all optimal
 * (none beats another); a point with a NaN coordinate never is and beats
 * none. Fills optimal[0..n-1]; returns how many are optimal. O(n^2), for
 * the few hundred points of a sweep. */
size_t vd_chart_pareto(const struct vd_chart_point *p, size_t n, enum vd_chart_better xb,
		       enum vd_chart_better yb, bool *optimal);

struct vd_chart_scatter {
	const char *title;
	struct vd_chart_axis x, y;
	const struct vd_chart_point *points;
	size_t n;
	enum vd_chart_better x_better, y_better; /* either 0: no frontier */
	int width, height;                       /* 0: 900 x 400 */
};

/* Append a scatter: the Pareto-optimal points joined by a line in x order
 * and labelled, the others dimmed (their label in a tooltip), an arrow to
 * the better corner, and a legend. */
void vd_chart_scatter(struct vd_strbuf *b, const struct vd_chart_scatter *c);

/* ============================================================ heat map */

struct vd_chart_heatmap {
	const char *title;
	const char *row_title, *col_title;  /* "replicas", "CPUs per replica" */
	const char *const *rows, *const *cols; /* labels, nrows and ncols of them */
	size_t nrows, ncols;
	const double *values;               /* nrows x ncols, row by row; NaN: none */
	const char *value_title, *unit;     /* "p95", "ms": the scale's caption */
	const char *format;                 /* printf format of one double for
					     * the cells ("%.0f"); NULL (or not
					     * such a format): 3 digits, "%.3g",
					     * or the integer part from 1000 */
	double min, max;                    /* the colour scale; min == max: from
					     * the values */
	enum vd_chart_better better;        /* which end of the scale is good;
					     * 0: one colour, darker for more */
};

/* Append a heat map: one cell per value, coloured on the scale (blue the
 * better end, red the worse) with the value printed in it; cells without a
 * value are left blank. A legend under it shows the scale. The size
 * follows from the labels and the cell count. */
void vd_chart_heatmap(struct vd_strbuf *b, const struct vd_chart_heatmap *c);

#endif
