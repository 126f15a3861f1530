/*
 * A small writer of standalone SVG charts for the HTML reports: line
 * charts over time (plain or step lines, gaps at NaN, event markers), a
 * scatter with its Pareto frontier, and a heat map.
 *
 * Everything is laid out in user units (px at 100%) with text widths
 * estimated from the character count, so the output depends on the input
 * alone: no fonts are measured, nothing is random, and coordinates are
 * rounded to a tenth and printed with %g, which keeps the SVG small and
 * byte-identical from run to run. The charts carry no ids (no gradients,
 * no clip paths), so several can share one HTML page.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "vd/chart.h"

#define FONT 11      /* the text of axes and legends */
#define TITLE_FONT 14
#define GRID "#e5e5e5"
#define INK "#222"
#define MUTED "#666"
/* a white outline under text that crosses lines */
#define HALO "stroke=\"#fff\" stroke-width=\"3\" paint-order=\"stroke\""

static const char *const palette[] = {
	"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
	"#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
};

/* A coordinate rounded to a tenth, never "-0": print it with %g. */
static double
px(double v)
{
	v = round(v * 10) / 10;
	return v == 0 ? 0 : v;
}

/* Characters (UTF-8 code points) in s. */
static size_t
chars(const char *s)
{
	size_t n = 0;

	for (; s && *s; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return n;
}

/* The width of s in a sans-serif font of this size, about. */
static double
text_w(const char *s, double size)
{
	return (double)chars(s) * size * 0.6;
}

static void
esc(struct vd_strbuf *b, const char *s)
{
	vd_strbuf_xml(b, s ? s : "");
}

/* s escaped, cut to max characters with an ellipsis. */
static void
esc_clip(struct vd_strbuf *b, const char *s, size_t max)
{
	char cut[512]; /* room for 120 characters of 4 bytes */
	size_t i = 0, n = 0;

	max = max < 120 ? max : 120;
	if (chars(s) <= max) {
		esc(b, s);
		return;
	}
	for (; s[i] && i < sizeof(cut) - 1; i++) {
		if (((unsigned char)s[i] & 0xc0) != 0x80 && n++ == (max ? max - 1 : 0))
			break;
		cut[i] = s[i];
	}
	cut[i] = '\0';
	esc(b, cut);
	vd_strbuf_puts(b, "\xe2\x80\xa6");
}

/* <text ATTRS>s (unit)</text>, escaped; without a unit, s alone; nothing
 * without either. */
static void VD_PRINTF(4, 5)
text(struct vd_strbuf *b, const char *s, const char *unit, const char *attrs, ...)
{
	char buf[256];
	va_list ap;

	if ((!s || !*s) && (!unit || !*unit))
		return;
	va_start(ap, attrs);
	vsnprintf(buf, sizeof(buf), attrs, ap);
	va_end(ap);
	vd_strbuf_printf(b, "<text %s>", buf);
	esc(b, s);
	if (unit && *unit) {
		vd_strbuf_puts(b, s && *s ? " (" : "(");
		esc(b, unit);
		vd_strbuf_puts(b, ")");
	}
	vd_strbuf_puts(b, "</text>");
}

/* c when it reads as a CSS colour ("#1f77b4", "rgb(1,2,3)", "teal"), else
 * dflt: then it can go into an attribute as it is. */
static const char *
color_or(const char *c, const char *dflt)
{
	return c && *c && !c[strspn(c, "#0123456789abcdefghijklmnopqrstuvwxyz"
				   "ABCDEFGHIJKLMNOPQRSTUVWXYZ(),.% ")] ? c : dflt;
}

/* A point with both coordinates: of a line (struct vd_chart_xy) or a
 * scatter (struct vd_chart_point). */
#define HAS_XY(p) (isfinite((p)->x) && isfinite((p)->y))

/* Stretch [*lo, *hi] (NaN while empty) to v, unless v is NaN or infinite. */
static void
widen(double *lo, double *hi, double v)
{
	if (isfinite(v)) {
		*lo = fmin(*lo, v);
		*hi = fmax(*hi, v);
	}
}

static bool
same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

static void
svg_open(struct vd_strbuf *b, double w, double h, const char *title)
{
	vd_strbuf_printf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %g %g\" "
			 "width=\"%g\" height=\"%g\" font-family=\"sans-serif\" "
			 "font-size=\"%d\" fill=\"%s\" role=\"img\" aria-label=\"", px(w), px(h),
			 px(w), px(h), FONT, INK);
	esc(b, title ? title : "chart");
	vd_strbuf_puts(b, "\">\n");
	if (title)
		text(b, title, NULL, "x=\"8\" y=\"18\" font-size=\"%d\" font-weight=\"bold\"",
		     TITLE_FONT);
}

/* ============================================================ ticks */

void
vd_chart_ticks(double lo, double hi, int target, struct vd_chart_ticks *t)
{
	double raw, mag, f, klo, khi;

	if (!isfinite(lo) || !isfinite(hi)) {
		lo = 0;
		hi = 1;
	}
	if (lo > hi) {
		double tmp = lo;

		lo = hi;
		hi = tmp;
	}
	if (lo == hi) {
		double d = fabs(lo) / 10;

		if (d == 0)
			hi = 1;
		lo -= d;
		hi += d;
	}
	raw = (hi - lo) / (target > 0 ? target : 1);
	mag = pow(10, floor(log10(raw)));
	f = raw / mag;
	t->step = (f <= 1 + 1e-9 ? 1 : f <= 2 + 1e-9 ? 2 : f <= 5 + 1e-9 ? 5 : 10) * mag;
	klo = floor(lo / t->step + 1e-9);
	khi = ceil(hi / t->step - 1e-9);
	t->lo = klo * t->step;
	t->hi = khi * t->step;
	t->n = (int)(khi - klo) + 1;
}

/* ============================================================ frames */

/* The plot area of a line chart or a scatter and its two scales. */
struct frame {
	double l, t, r, b; /* the plot area's edges (the SVG's: 0, 0, r + 16, b + 40) */
	struct vd_chart_ticks x, y;
};

/* The axis' range: its own, or the data's [lo, hi] made round; with a
 * tick about every 90 px across, 40 px up. */
static void
axis_range(const struct vd_chart_axis *a, double lo, double hi, double len, bool across,
	   struct vd_chart_ticks *t)
{
	int target = (int)fmax(2, round((len - 70) / (across ? 90 : 40)));

	if (a->min != a->max && isfinite(a->min) && isfinite(a->max)) {
		vd_chart_ticks(a->min, a->max, target, t);
		t->lo = fmin(a->min, a->max);
		t->hi = fmax(a->min, a->max);
		return;
	}
	if (!a->tight && isfinite(lo)) {
		lo = fmin(lo, 0);
		hi = fmax(hi, 0);
	}
	vd_chart_ticks(lo, hi, target, t);
}

/* A tick's label: in thousands ("15k") on an axis reaching 10^4, in
 * millions from 10^7, billions from 10^10. */
static void
tick_label(char *buf, size_t len, double v, const struct vd_chart_ticks *t)
{
	static const char *const sfx[] = { "", "k", "M", "G" };
	double m = fmax(fabs(t->lo), fabs(t->hi));
	int e = m >= 1e10 ? 3 : m >= 1e7 ? 2 : m >= 1e4 ? 1 : 0;

	snprintf(buf, len, "%g%s", v / pow(1000, e), v == 0 ? "" : sfx[e]);
}

/* A loop over the tick values inside [t->lo, t->hi], each in v. */
#define FOR_TICKS(t, v) \
	for (long long k_ = (long long)ceil((t)->lo / (t)->step - 1e-9), \
	     e_ = (long long)floor((t)->hi / (t)->step + 1e-9); \
	     k_ <= e_ && ((v) = (double)k_ * (t)->step, 1); k_++)

/* Fix the frame's left edge: room for y tick labels of up to 5 characters
 * (so that charts one above the other line up), more for wider ones. */
static void
frame_init(struct frame *f, double w, double h, double top, bool ytitle)
{
	char buf[48];
	double v, widest = 0;

	FOR_TICKS(&f->y, v) {
		tick_label(buf, sizeof(buf), v, &f->y);
		widest = fmax(widest, text_w(buf, FONT));
	}
	f->l = round((ytitle ? 24 : 8) + fmax(widest, text_w("00000", FONT)) + 6);
	f->t = top;
	f->r = w - 16;
	f->b = h - 40;
}

static double
sx(const struct frame *f, double x)
{
	double v = f->l + (x - f->x.lo) / (f->x.hi - f->x.lo) * (f->r - f->l);

	return px(fmin(fmax(v, f->l), f->r));
}

static double
sy(const struct frame *f, double y)
{
	double v = f->b - (y - f->y.lo) / (f->y.hi - f->y.lo) * (f->b - f->t);

	return px(fmin(fmax(v, f->t), f->b));
}

/* Grid, ticks, tick labels and axis titles; "no data" in the middle when
 * there is nothing to draw. */
static void
frame_axes(struct vd_strbuf *b, const struct frame *f, const struct vd_chart_axis *xa,
	   const char *xunit, const struct vd_chart_axis *ya, const char *yunit, bool empty)
{
	char buf[48];
	double v;

	vd_strbuf_printf(b, "<g stroke=\"%s\">", GRID);
	FOR_TICKS(&f->y, v)
		vd_strbuf_printf(b, "<path d=\"M%g %gH%g\"/>", px(f->l), sy(f, v), px(f->r));
	vd_strbuf_printf(b, "</g>\n<path d=\"M%g %gH%gM%g %gV%g\" stroke=\"#999\"/>\n<g "
			 "stroke=\"#999\">", px(f->l), px(f->b), px(f->r), px(f->l), px(f->t),
			 px(f->b));
	FOR_TICKS(&f->x, v)
		vd_strbuf_printf(b, "<path d=\"M%g %gv4\"/>", sx(f, v), px(f->b));
	vd_strbuf_puts(b, "</g>\n<g text-anchor=\"end\">");
	FOR_TICKS(&f->y, v) {
		tick_label(buf, sizeof(buf), v, &f->y);
		vd_strbuf_printf(b, "<text x=\"%g\" y=\"%g\">%s</text>", px(f->l - 5),
				 px(sy(f, v) + 4), buf);
	}
	vd_strbuf_puts(b, "</g>\n<g text-anchor=\"middle\">");
	FOR_TICKS(&f->x, v) {
		tick_label(buf, sizeof(buf), v, &f->x);
		vd_strbuf_printf(b, "<text x=\"%g\" y=\"%g\">%s</text>", sx(f, v),
				 px(f->b + 16), buf);
	}
	vd_strbuf_printf(b, "</g>\n<g text-anchor=\"middle\" fill=\"%s\">", MUTED);
	text(b, xa->title, xunit, "x=\"%g\" y=\"%g\"", px((f->l + f->r) / 2), px(f->b + 34));
	text(b, ya->title, yunit, "transform=\"translate(14 %g) rotate(-90)\"",
	     px((f->t + f->b) / 2));
	if (empty)
		text(b, "no data", NULL, "x=\"%g\" y=\"%g\"", px((f->l + f->r) / 2),
		     px((f->t + f->b) / 2));
	vd_strbuf_puts(b, "</g>\n");
}

/* One legend entry at x (a short line, a dot, or nothing before the text,
 * in color, which color_or() has checked); returns its width. With b NULL,
 * only measures. */
enum swatch { SW_LINE, SW_DOT, SW_NONE };

static double
legend_item(struct vd_strbuf *b, double x, double y, enum swatch sw, const char *color,
	    const char *name, const char *unit)
{
	double w = (sw == SW_NONE ? 0 : 20) + text_w(name, FONT) +
		   (unit && *unit ? text_w(unit, FONT) + 3 * FONT * 0.6 : 0) + 16;

	if (!b)
		return w;
	if (sw == SW_LINE)
		vd_strbuf_printf(b, "<path d=\"M%g %gh14\" stroke=\"%s\" stroke-width=\"2\"/>",
				 px(x), px(y - 4), color);
	else if (sw == SW_DOT)
		vd_strbuf_printf(b, "<circle cx=\"%g\" cy=\"%g\" r=\"4\" fill=\"%s\"/>",
				 px(x + 7), px(y - 4), color);
	text(b, name, unit, "x=\"%g\" y=\"%g\"", px(x + (sw == SW_NONE ? 0 : 20)), px(y));
	return w;
}

/* The top of the plot area: below the title, and below the legend when
 * it does not fit on the title's row (then *ly is its own row). */
static double
title_rows(const char *title, double width, double legend_w, double *ly)
{
	double tw = title ? text_w(title, TITLE_FONT) + 24 : 0;

	*ly = 18;
	if (8 + tw + legend_w <= width - 8)
		return 30;
	*ly = 38;
	return 48;
}

/* ============================================================ lines */

/* A value with no line to either side: drawn as a dot. */
static bool
alone(const struct vd_chart_series *s, size_t i)
{
	bool prev = i > 0 && HAS_XY(&s->pts[i - 1]);
	bool next = i + 1 < s->n && (s->step ? isfinite(s->pts[i + 1].x) :
				     HAS_XY(&s->pts[i + 1]));

	return HAS_XY(&s->pts[i]) && !prev && !next;
}

static void
line_series(struct vd_strbuf *b, const struct frame *f, const struct vd_chart_series *s,
	    const char *color)
{
	bool down = false;

	vd_strbuf_printf(b, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" "
			 "stroke-linejoin=\"round\" d=\"", color);
	for (size_t i = 0; i < s->n; i++) {
		const struct vd_chart_xy *p = &s->pts[i];

		if (!HAS_XY(p)) {
			/* a step's last value holds until the next x, known or not */
			if (down && s->step && isfinite(p->x))
				vd_strbuf_printf(b, "H%g", sx(f, p->x));
			down = false;
		} else if (!down) {
			vd_strbuf_printf(b, "M%g %g", sx(f, p->x), sy(f, p->y));
			down = true;
		} else if (s->step) {
			vd_strbuf_printf(b, "H%gV%g", sx(f, p->x), sy(f, p->y));
		} else {
			vd_strbuf_printf(b, "L%g %g", sx(f, p->x), sy(f, p->y));
		}
	}
	vd_strbuf_puts(b, "\"/>\n");
	for (size_t i = 0; i < s->n; i++)
		if (alone(s, i))
			vd_strbuf_printf(b, "<circle cx=\"%g\" cy=\"%g\" r=\"2\" fill=\"%s\"/>\n",
					 sx(f, s->pts[i].x), sy(f, s->pts[i].y), color);
}

static void
line_marker(struct vd_strbuf *b, const struct frame *f, const struct vd_chart_marker *m)
{
	const char *color = color_or(m->color, "#888");
	double x;

	if (!isfinite(m->x) || m->x < f->x.lo || m->x > f->x.hi)
		return;
	x = sx(f, m->x);
	vd_strbuf_puts(b, "<g>");
	if (m->label && *m->label) {
		vd_strbuf_puts(b, "<title>");
		esc(b, m->label);
		vd_strbuf_puts(b, "</title>");
	}
	vd_strbuf_printf(b, "<path d=\"M%g %gV%g\" stroke=\"%s\" "
			 "stroke-dasharray=\"4 3\"/>", x, px(f->t), px(f->b), color);
	if (m->label && *m->label) {
		/* up the line's left side, cut to the plot's height */
		vd_strbuf_printf(b, "<text transform=\"translate(%g %g) rotate(-90)\" "
				 "text-anchor=\"end\" font-size=\"10\" %s fill=\"%s\">",
				 px(x - 3), px(f->t + 4), HALO, color);
		esc_clip(b, m->label, (size_t)((f->b - f->t - 8) / 6));
		vd_strbuf_puts(b, "</text>");
	}
	vd_strbuf_puts(b, "</g>\n");
}

void
vd_chart_line(struct vd_strbuf *b, const struct vd_chart_line *c)
{
	double w = c->width > 0 ? c->width : 900, h = c->height > 0 ? c->height : 260;
	double xlo = NAN, xhi = NAN, ylo = NAN, yhi = NAN, lw = 0, ly, x;
	const char *yunit = c->y.unit ? c->y.unit : c->nseries ? c->series[0].unit : NULL;
	struct frame f;

	for (size_t k = 0; k < c->nseries; k++) {
		const struct vd_chart_series *s = &c->series[k];

		for (size_t i = 0; i < s->n; i++) {
			widen(&xlo, &xhi, s->pts[i].x);
			widen(&ylo, &yhi, HAS_XY(&s->pts[i]) ? s->pts[i].y : NAN);
		}
		lw += legend_item(NULL, 0, 0, SW_LINE, NULL, s->name,
				  same(s->unit, yunit) ? NULL : s->unit);
	}
	axis_range(&c->x, xlo, xhi, w, true, &f.x);
	axis_range(&c->y, ylo, yhi, h, false, &f.y);
	frame_init(&f, w, h, title_rows(c->title, w, lw, &ly), c->y.title || yunit);
	svg_open(b, w, h, c->title);
	frame_axes(b, &f, &c->x, c->x.unit, &c->y, yunit, isnan(ylo));
	for (size_t k = 0; k < c->nmarkers; k++)
		line_marker(b, &f, &c->markers[k]);
	for (size_t k = 0; k < c->nseries; k++)
		line_series(b, &f, &c->series[k], color_or(c->series[k].color, palette[k % 10]));
	x = w - 8 - lw;
	for (size_t k = 0; k < c->nseries; k++) {
		const struct vd_chart_series *s = &c->series[k];

		x += legend_item(b, x, ly, SW_LINE, color_or(s->color, palette[k % 10]), s->name,
				 same(s->unit, yunit) ? NULL : s->unit);
	}
	vd_strbuf_puts(b, "\n</svg>\n");
}

/* ============================================================ scatter */

/* How a compares with b along one direction: 1 better, 0 equal (or no
 * preference), -1 worse. */
static int
cmp_better(double a, double b, enum vd_chart_better better)
{
	int c = (a > b) - (a < b);

	return better == VD_CHART_LOWER ? -c : better == VD_CHART_HIGHER ? c : 0;
}

static bool
dominated(const struct vd_chart_point *p, size_t n, size_t i, enum vd_chart_better xb,
	  enum vd_chart_better yb)
{
	if (!HAS_XY(&p[i]))
		return true;
	for (size_t j = 0; j < n; j++) {
		int cx, cy;

		if (j == i || !HAS_XY(&p[j]))
			continue;
		cx = cmp_better(p[j].x, p[i].x, xb);
		cy = cmp_better(p[j].y, p[i].y, yb);
		if (cx >= 0 && cy >= 0 && (cx > 0 || cy > 0))
			return true;
	}
	return false;
}

size_t
vd_chart_pareto(const struct vd_chart_point *p, size_t n, enum vd_chart_better xb,
		enum vd_chart_better yb, bool *optimal)
{
	size_t count = 0;

	for (size_t i = 0; i < n; i++) {
		optimal[i] = !dominated(p, n, i, xb, yb);
		count += optimal[i];
	}
	return count;
}

/* Is point i before point j in x, then y, then input order? */
static bool
before(const struct vd_chart_point *p, size_t i, size_t j)
{
	if (p[i].x != p[j].x)
		return p[i].x < p[j].x;
	if (p[i].y != p[j].y)
		return p[i].y < p[j].y;
	return i < j;
}

/* The next frontier point after `prev` (n: from the start) in x order, or n:
 * walks the frontier without sorting it into memory of our own. */
static size_t
next_on_front(const struct vd_chart_scatter *c, size_t prev)
{
	size_t best = c->n;

	for (size_t i = 0; i < c->n; i++) {
		if (dominated(c->points, c->n, i, c->x_better, c->y_better))
			continue;
		if (prev < c->n && !before(c->points, prev, i))
			continue;
		if (best == c->n || before(c->points, i, best))
			best = i;
	}
	return best;
}

static void
point_tooltip(struct vd_strbuf *b, const struct vd_chart_scatter *c,
	      const struct vd_chart_point *p)
{
	vd_strbuf_puts(b, "<title>");
	if (p->label) {
		esc(b, p->label);
		vd_strbuf_puts(b, ": ");
	}
	vd_strbuf_printf(b, "%g", p->x);
	if (c->x.unit) {
		vd_strbuf_puts(b, " ");
		esc(b, c->x.unit);
	}
	vd_strbuf_printf(b, ", %g", p->y);
	if (c->y.unit) {
		vd_strbuf_puts(b, " ");
		esc(b, c->y.unit);
	}
	vd_strbuf_puts(b, "</title>");
}

/* Label a frontier point on the frontier's better side, where no point
 * is; a label that would run into the previous one (box: its left, top,
 * right, bottom) moves further that way, one that would leave the plot
 * goes to the other side of its point. */
static void
front_label(struct vd_strbuf *b, const struct frame *f, const struct vd_chart_scatter *c,
	    const struct vd_chart_point *p, double box[4])
{
	double cx = sx(f, p->x), cy = sy(f, p->y), tw = text_w(p->label, FONT), x0, y;
	bool left = c->x_better == VD_CHART_LOWER, up = c->y_better == VD_CHART_HIGHER;

	if (!p->label || !*p->label)
		return;
	if (left && cx - 7 - tw < f->l)
		left = false;
	else if (!left && cx + 7 + tw > f->r)
		left = true;
	x0 = left ? cx - 7 - tw : cx + 7;
	y = up ? cy - 7 : cy + 15;
	if (x0 < box[2] && x0 + tw > box[0] && y - 10 < box[3] && y + 2 > box[1])
		y = up ? box[1] - 3 : box[3] + 13;
	y = fmin(fmax(y, f->t + 10), f->b - 3);
	box[0] = x0;
	box[1] = y - 10;
	box[2] = x0 + tw;
	box[3] = y + 2;
	text(b, p->label, NULL, "x=\"%g\" y=\"%g\"%s", px(left ? cx - 7 : cx + 7), px(y),
	     left ? " text-anchor=\"end\"" : "");
}

/* "better" with an arrow to the better corner. */
static const char *
better_arrow(const struct vd_chart_scatter *c)
{
	bool left = c->x_better == VD_CHART_LOWER, top = c->y_better == VD_CHART_HIGHER;

	return top ? (left ? "\xe2\x86\x96 better" : "better \xe2\x86\x97") :
		     (left ? "\xe2\x86\x99 better" : "better \xe2\x86\x98");
}

void
vd_chart_scatter(struct vd_strbuf *b, const struct vd_chart_scatter *c)
{
	static const char front_color[] = "#d62728", other_color[] = "#9a9a9a";
	double w = c->width > 0 ? c->width : 900, h = c->height > 0 ? c->height : 400;
	double xlo = NAN, xhi = NAN, ylo = NAN, yhi = NAN, lw, ly, x;
	bool front = c->x_better && c->y_better;
	double box[4] = { 0, 0, 0, 0 };
	struct frame f;
	size_t i;

	for (i = 0; i < c->n; i++) {
		if (HAS_XY(&c->points[i])) {
			widen(&xlo, &xhi, c->points[i].x);
			widen(&ylo, &yhi, c->points[i].y);
		}
	}
	lw = front ? legend_item(NULL, 0, 0, SW_LINE, NULL, "Pareto-optimal", NULL) +
		     legend_item(NULL, 0, 0, SW_DOT, NULL, "dominated", NULL) +
		     legend_item(NULL, 0, 0, SW_NONE, NULL, better_arrow(c), NULL) : 0;
	axis_range(&c->x, xlo, xhi, w, true, &f.x);
	axis_range(&c->y, ylo, yhi, h, false, &f.y);
	frame_init(&f, w, h, title_rows(c->title, w, lw, &ly), c->y.title || c->y.unit);
	svg_open(b, w, h, c->title);
	frame_axes(b, &f, &c->x, c->x.unit, &c->y, c->y.unit, isnan(ylo));

	vd_strbuf_printf(b, "<g fill=\"%s\" fill-opacity=\".55\">\n", front ? other_color :
			 palette[0]);
	for (i = 0; i < c->n; i++) {
		const struct vd_chart_point *p = &c->points[i];

		if (!HAS_XY(p) || (front && !dominated(c->points, c->n, i, c->x_better,
							     c->y_better)))
			continue;
		vd_strbuf_printf(b, "<circle cx=\"%g\" cy=\"%g\" r=\"3.5\">", sx(&f, p->x),
				 sy(&f, p->y));
		point_tooltip(b, c, p);
		vd_strbuf_puts(b, "</circle>\n");
	}
	vd_strbuf_puts(b, "</g>\n");
	if (front) {
		char cmd = 'M';

		vd_strbuf_printf(b, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" d=\"",
				 front_color);
		for (i = next_on_front(c, c->n); i < c->n; i = next_on_front(c, i)) {
			vd_strbuf_printf(b, "%c%g %g", cmd, sx(&f, c->points[i].x),
					 sy(&f, c->points[i].y));
			cmd = 'L';
		}
		vd_strbuf_printf(b, "\"/>\n<g %s>\n", HALO);
		for (i = next_on_front(c, c->n); i < c->n; i = next_on_front(c, i)) {
			vd_strbuf_printf(b, "<circle cx=\"%g\" cy=\"%g\" r=\"4.5\" fill=\"%s\">",
					 sx(&f, c->points[i].x), sy(&f, c->points[i].y), front_color);
			point_tooltip(b, c, &c->points[i]);
			vd_strbuf_puts(b, "</circle>");
			front_label(b, &f, c, &c->points[i], box);
			vd_strbuf_puts(b, "\n");
		}
		vd_strbuf_puts(b, "</g>\n");
		x = w - 8 - lw;
		x += legend_item(b, x, ly, SW_LINE, front_color, "Pareto-optimal", NULL);
		x += legend_item(b, x, ly, SW_DOT, other_color, "dominated", NULL);
		vd_strbuf_printf(b, "<g fill=\"%s\">", MUTED);
		legend_item(b, x, ly, SW_NONE, NULL, better_arrow(c), NULL);
		vd_strbuf_puts(b, "</g>");
	}
	vd_strbuf_puts(b, "\n</svg>\n");
}

/* ============================================================ heat map */

struct rgb {
	double r, g, b;
};

/* The colour at t (0..1) of the scale: from the worse end through pale
 * yellow to the better end (ColorBrewer's RdYlBu, which colour-blind
 * readers can tell apart); without a better end, light to dark blue
 * (Blues). */
static struct rgb
scale_color(double t, enum vd_chart_better better)
{
	static const struct rgb rdylbu[] = {
		{ 215, 48, 39 }, { 252, 141, 89 }, { 254, 224, 144 },
		{ 224, 243, 248 }, { 145, 191, 219 }, { 69, 117, 180 },
	}, blues[] = {
		{ 239, 243, 255 }, { 189, 215, 231 }, { 107, 174, 214 },
		{ 49, 130, 189 }, { 8, 81, 156 },
	};
	const struct rgb *stops = better ? rdylbu : blues, *a;
	int n = better ? 6 : 5, i;

	if (better == VD_CHART_LOWER)
		t = 1 - t;
	t *= n - 1;
	i = (int)fmin(t, n - 2);
	a = &stops[i];
	t -= i;
	return (struct rgb){ a->r + (a[1].r - a->r) * t, a->g + (a[1].g - a->g) * t,
			     a->b + (a[1].b - a->b) * t };
}

static const char *
hex(char buf[8], struct rgb c)
{
	snprintf(buf, 8, "#%02x%02x%02x", (unsigned)lround(c.r) & 255,
		 (unsigned)lround(c.g) & 255, (unsigned)lround(c.b) & 255);
	return buf;
}

/* Dark text on light cells, white on dark ones. */
static const char *
ink_on(struct rgb c)
{
	return 0.299 * c.r + 0.587 * c.g + 0.114 * c.b < 140 ? "#fff" : INK;
}

/* fmt when it is a printf format of exactly one floating conversion
 * ("%.1f", "%5.2g ms", "%%" aside), else NULL: formats may come from user
 * files. */
static const char *
checked_format(const char *fmt)
{
	int conv = 0;

	for (const char *s = fmt; s && *s; s++) {
		if (*s != '%')
			continue;
		if (*++s == '%')
			continue;
		s += strspn(s, "-+ #0");
		s += strspn(s, "0123456789");
		if (*s == '.')
			s += 1 + strspn(s + 1, "0123456789");
		if (!*s || !strchr("eEfFgGaA", *s) || ++conv > 1)
			return NULL;
	}
	return conv == 1 ? fmt : NULL;
}

/* v by fmt (checked); without one, three digits or the integer part. */
static void
cell_value(char *buf, size_t len, const char *fmt, double v)
{
	if (!fmt) {
		snprintf(buf, len, fabs(v) >= 1000 ? "%.0f" : "%.3g", v);
		return;
	}
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	snprintf(buf, len, fmt, v);
#pragma GCC diagnostic pop
}

/* The size of a heat map's parts: cells, the margins of the labels. */
struct grid {
	double cw, ch, left, top;
};

static void
heatmap_labels(struct vd_strbuf *b, const struct vd_chart_heatmap *c, const struct grid *g)
{
	double gw = g->cw * (double)c->ncols, gh = g->ch * (double)c->nrows;

	vd_strbuf_printf(b, "<g text-anchor=\"middle\" fill=\"%s\">", MUTED);
	if (c->col_title)
		text(b, c->col_title, NULL, "x=\"%g\" y=\"%g\"", px(g->left + gw / 2),
		     px(g->top - 24));
	if (c->row_title)
		text(b, c->row_title, NULL, "transform=\"translate(18 %g) rotate(-90)\"",
		     px(g->top + gh / 2));
	vd_strbuf_puts(b, "</g>\n<g text-anchor=\"middle\">");
	for (size_t k = 0; k < c->ncols; k++)
		text(b, c->cols[k], NULL, "x=\"%g\" y=\"%g\"",
		     px(g->left + g->cw * ((double)k + 0.5)), px(g->top - 6));
	vd_strbuf_puts(b, "</g>\n<g text-anchor=\"end\">");
	for (size_t r = 0; r < c->nrows; r++)
		text(b, c->rows[r], NULL, "x=\"%g\" y=\"%g\"", px(g->left - 8),
		     px(g->top + g->ch * ((double)r + 0.5) + 4));
	vd_strbuf_puts(b, "</g>\n");
}

/* One cell: its colour and value, or an empty outline; a tooltip. */
static void
heatmap_cell(struct vd_strbuf *b, const struct vd_chart_heatmap *c, const struct grid *g,
	     size_t r, size_t k, double lo, double hi)
{
	double v = c->values[r * c->ncols + k], x = g->left + g->cw * (double)k;
	double y = g->top + g->ch * (double)r;
	struct rgb col = scale_color(hi > lo ? fmin(fmax((v - lo) / (hi - lo), 0), 1) : 0.5,
				     c->better);
	char buf[64], rgb[8];

	vd_strbuf_puts(b, "<g><title>");
	esc(b, c->rows[r]);
	vd_strbuf_puts(b, ", ");
	esc(b, c->cols[k]);
	if (!isfinite(v)) {
		vd_strbuf_printf(b, ": no value</title><rect x=\"%g\" y=\"%g\" width=\"%g\" "
				 "height=\"%g\" fill=\"none\" stroke=\"%s\"/></g>\n", px(x), px(y),
				 px(g->cw), px(g->ch), GRID);
		return;
	}
	cell_value(buf, sizeof(buf), checked_format(c->format), v);
	vd_strbuf_puts(b, ": ");
	esc(b, buf);
	vd_strbuf_printf(b, "</title><rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" "
			 "stroke=\"#fff\" fill=\"%s\"/>", px(x), px(y), px(g->cw), px(g->ch),
			 hex(rgb, col));
	text(b, buf, NULL, "x=\"%g\" y=\"%g\" fill=\"%s\"", px(x + g->cw / 2),
	     px(y + g->ch / 2 + 4), ink_on(col));
	vd_strbuf_puts(b, "</g>\n");
}

/* The scale under the grid: ten steps from lo to hi with its caption on
 * the right, the ends' values and which end is better under it. */
static void
heatmap_scale(struct vd_strbuf *b, const struct vd_chart_heatmap *c, const struct grid *g,
	      double lo, double hi)
{
	const char *fmt = checked_format(c->format);
	double y = g->top + g->ch * (double)c->nrows + 20, x = g->left;
	char buf[64], rgb[8];

	for (int k = 0; k < 10; k++)
		vd_strbuf_printf(b, "<rect x=\"%g\" y=\"%g\" width=\"24\" height=\"12\" "
				 "fill=\"%s\"/>", px(x + 24 * k), px(y),
				 hex(rgb, scale_color((k + 0.5) / 10, c->better)));
	text(b, c->value_title, c->unit, "x=\"%g\" y=\"%g\"", px(x + 248), px(y + 10));
	vd_strbuf_printf(b, "\n<g font-size=\"10\" fill=\"%s\">", MUTED);
	if (!isnan(lo)) {
		cell_value(buf, sizeof(buf), fmt, lo);
		text(b, buf, NULL, "x=\"%g\" y=\"%g\"", px(x), px(y + 25));
		cell_value(buf, sizeof(buf), fmt, hi);
		text(b, buf, NULL, "x=\"%g\" y=\"%g\" text-anchor=\"end\"", px(x + 240),
		     px(y + 25));
	}
	if (c->better)
		text(b, c->better == VD_CHART_HIGHER ? "higher is better" : "lower is better",
		     NULL, "x=\"%g\" y=\"%g\" text-anchor=\"middle\"", px(x + 120), px(y + 25));
	vd_strbuf_puts(b, "</g>\n");
}

void
vd_chart_heatmap(struct vd_strbuf *b, const struct vd_chart_heatmap *c)
{
	const char *fmt = checked_format(c->format);
	double lo = c->min, hi = c->max, rw = 0, w, h;
	struct grid g = { 48, 26, 0, 0 };
	size_t k, n = c->nrows * c->ncols;
	char buf[64];

	if (!(lo != hi && isfinite(lo) && isfinite(hi))) {
		lo = hi = NAN;
		for (k = 0; k < n; k++)
			widen(&lo, &hi, c->values[k]);
	}
	for (k = 0; k < c->nrows; k++)
		rw = fmax(rw, text_w(c->rows[k], FONT));
	for (k = 0; k < c->ncols; k++)
		g.cw = fmax(g.cw, text_w(c->cols[k], FONT));
	for (k = 0; k < n; k++) {
		cell_value(buf, sizeof(buf), fmt, c->values[k]);
		g.cw = fmax(g.cw, text_w(buf, FONT));
	}
	g.cw = round(g.cw + 12);
	g.left = round(8 + (c->row_title ? 20 : 0) + rw + 8);
	g.top = (c->title ? 30 : 6) + (c->col_title ? 18 : 0) + 18;
	w = fmax(g.left + g.cw * (double)c->ncols + 8, g.left + 256 +
		 text_w(c->value_title, FONT) + text_w(c->unit, FONT) + 3 * FONT * 0.6);
	h = g.top + g.ch * (double)c->nrows + 62;
	svg_open(b, w, h, c->title);
	heatmap_labels(b, c, &g);
	vd_strbuf_puts(b, "<g text-anchor=\"middle\">\n");
	for (size_t r = 0; r < c->nrows; r++)
		for (k = 0; k < c->ncols; k++)
			heatmap_cell(b, c, &g, r, k, lo, hi);
	vd_strbuf_puts(b, "</g>\n");
	heatmap_scale(b, c, &g, lo, hi);
	vd_strbuf_puts(b, "</svg>\n");
}
