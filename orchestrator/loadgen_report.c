/*
 * What the load generator prints and writes: reports in the shape Artillery
 * users read ("http.requests: ....... 600"), results.json with the totals
 * and a per-second timeline, and from that file one self-contained HTML
 * page of SVG charts (requests/s, response-time percentiles, users), the
 * view Locust users look at.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vd/cleanup.h"
#include "vd/loadgen.h"
#include "vd/strbuf.h"

/* ================================================================= text */

static void
line(FILE *f, const char *indent, const char *name, const char *value)
{
	int pad = 64 - (int)strlen(indent) - (int)strlen(name);

	fprintf(f, "%s%s: ", indent, name);
	for (int i = 0; i < pad; i++)
		fputc('.', f);
	fprintf(f, " %s\n", value);
}

static void
line_u(FILE *f, const char *name, uint64_t v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
	line(f, "", name, buf);
}

static void
line_ms(FILE *f, const char *name, uint64_t us)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%.1f", (double)us / 1000);
	line(f, "  ", name, buf);
}

void
vd_load_print_counts(FILE *f, const struct vd_load_counts *c, const struct vd_hist *h,
		     double seconds)
{
	char name[64], buf[32];

	for (int k = 0; k < VD_LOAD_ERR_KINDS; k++) {
		if (!c->errors[k])
			continue;
		snprintf(name, sizeof(name), "errors.%s", vd_load_error_name(k));
		line_u(f, name, c->errors[k]);
	}
	for (int k = 0; k < VD_LOAD_CODES; k++) {
		if (!c->codes[k])
			continue;
		snprintf(name, sizeof(name), "http.codes.%d", k);
		line_u(f, name, c->codes[k]);
	}
	snprintf(buf, sizeof(buf), "%.0f/sec", seconds > 0 ? (double)c->responses / seconds : 0);
	line(f, "", "http.request_rate", buf);
	line_u(f, "http.requests", c->requests);
	if (h->count) {
		fprintf(f, "http.response_time:\n");
		line_ms(f, "min", h->min_us);
		line_ms(f, "max", h->max_us);
		line_ms(f, "mean", (uint64_t)vd_hist_mean(h));
		line_ms(f, "median", vd_hist_percentile(h, 50));
		line_ms(f, "p95", vd_hist_percentile(h, 95));
		line_ms(f, "p99", vd_hist_percentile(h, 99));
	}
	line_u(f, "http.responses", c->responses);
	line_u(f, "vusers.completed", c->completed);
	line_u(f, "vusers.created", c->created);
	line_u(f, "vusers.failed", c->failed);
	if (c->skipped)
		line_u(f, "vusers.skipped", c->skipped);
	fputc('\n', f);
}

void
vd_load_print_summary(FILE *f, const struct vd_load_profile *p, const struct vd_load_result *r)
{
	double secs = (double)r->elapsed_ms / 1000;

	if (r->interrupted)
		fprintf(f, "Interrupted after %.1f seconds\n\n", secs);
	else
		fprintf(f, "All VUs finished. Total time: %.1f seconds\n\n", secs);
	fprintf(f, "--------------------------------\nSummary report @ %.1fs\n"
		"--------------------------------\n\n", secs);
	vd_load_print_counts(f, &r->total, &r->hist, secs);
	if (p->nrequests > 1) {
		fprintf(f, "responses by request:\n");
		for (size_t i = 0; i < r->nrequests; i++) {
			char buf[32];

			snprintf(buf, sizeof(buf), "%llu", (unsigned long long)r->per_request[i]);
			line(f, "  ", p->requests[i].name, buf);
		}
		fputc('\n', f);
	}
}

/* ================================================================= json */

static json_t *
times_json(uint64_t min, uint64_t p50, uint64_t p95, uint64_t p99, uint64_t max, double mean)
{
	return json_pack("{s:f, s:f, s:f, s:f, s:f, s:f}", "min", (double)min / 1000,
			 "median", (double)p50 / 1000, "p95", (double)p95 / 1000,
			 "p99", (double)p99 / 1000, "max", (double)max / 1000, "mean", mean / 1000);
}

int
vd_load_write_json(const char *path, const struct vd_load_profile *p,
		   const struct vd_load_result *r, struct vd_error *err)
{
	_cleanup_(json_decrefp) json_t *root = NULL;
	json_t *sum, *codes, *errors, *byreq, *tl;
	const struct vd_hist *h = &r->hist;
	double secs = (double)r->elapsed_ms / 1000;
	char key[16];

	codes = json_object();
	errors = json_object();
	byreq = json_object();
	tl = json_array();
	for (int k = 0; k < VD_LOAD_CODES; k++) {
		snprintf(key, sizeof(key), "%d", k);
		if (r->total.codes[k])
			json_object_set_new(codes, key, json_integer((json_int_t)r->total.codes[k]));
	}
	for (int k = 0; k < VD_LOAD_ERR_KINDS; k++)
		if (r->total.errors[k])
			json_object_set_new(errors, vd_load_error_name(k),
					    json_integer((json_int_t)r->total.errors[k]));
	for (size_t i = 0; i < r->nrequests; i++)
		json_object_set_new(byreq, p->requests[i].name,
				    json_integer((json_int_t)(r->per_request[i] +
					json_integer_value(json_object_get(byreq, p->requests[i].name)))));
	for (size_t i = 0; i < r->nsecs; i++) {
		const struct vd_load_sec *e = &r->timeline[i];
		uint64_t nerr = 0;

		for (int k = 0; k < VD_LOAD_ERR_KINDS; k++)
			nerr += e->c.errors[k];
		json_array_append_new(tl, json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
			" s:{s:I, s:I, s:I, s:I}, s:o}",
			"t", (json_int_t)i + 1, "users", (json_int_t)e->c.users,
			"created", (json_int_t)e->c.created, "completed", (json_int_t)e->c.completed,
			"failed", (json_int_t)e->c.failed, "skipped", (json_int_t)e->c.skipped,
			"requests", (json_int_t)e->c.requests, "responses", (json_int_t)e->c.responses,
			"errors", (json_int_t)nerr,
			"codes", "2xx", (json_int_t)e->codes[2], "3xx", (json_int_t)e->codes[3],
			"4xx", (json_int_t)e->codes[4], "5xx", (json_int_t)e->codes[5],
			"response_time", times_json(e->min_us, e->p50_us, e->p95_us, e->p99_us,
						    e->max_us, e->mean_us)));
	}
	sum = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:o, s:o, s:o, s:o}",
		"vusers_created", (json_int_t)r->total.created,
		"vusers_completed", (json_int_t)r->total.completed,
		"vusers_failed", (json_int_t)r->total.failed,
		"vusers_skipped", (json_int_t)r->total.skipped,
		"requests", (json_int_t)r->total.requests,
		"responses", (json_int_t)r->total.responses,
		"request_rate", secs > 0 ? (double)r->total.responses / secs : 0.0,
		"response_time", times_json(h->count ? h->min_us : 0, vd_hist_percentile(h, 50),
					    vd_hist_percentile(h, 95), vd_hist_percentile(h, 99),
					    h->max_us, vd_hist_mean(h)),
		"codes", codes, "errors", errors, "responses_by_request", byreq);
	root = json_pack("{s:i, s:s, s:s, s:s, s:s, s:f, s:b, s:o, s:o}", "vdctl_load", 1,
		"profile", p->file ? p->file : "", "format",
		p->format == VD_LOAD_ARTILLERY ? "artillery" : "vdctl",
		"model", p->model == VD_LOAD_OPEN ? "open" : "closed", "target", p->target,
		"duration_s", secs, "interrupted", r->interrupted, "summary", sum, "timeline", tl);
	if (!root)
		return vd_error_errno(err, ENOMEM, "cannot write '%s'", path);
	if (json_dump_file(root, path, JSON_INDENT(1)) < 0)
		return vd_error_set(err, VD_EXIT_FAILURE, "cannot write '%s'", path);
	return 0;
}

/* ================================================================= html */

struct series {
	const char *name, *color;
	double *v;
};

/* A round step (1, 2 or 5 times a power of ten) for about 5 grid lines. */
static double
nice_step(double max)
{
	double raw = max / 5, mag = pow(10, floor(log10(raw))), f = raw / mag;

	return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

static void
svg_chart(struct vd_strbuf *b, const char *title, const char *unit, size_t n,
	  const struct series *s, size_t ns)
{
	const double W = 900, H = 260, L = 60, R = 20, T = 30, B = 30;
	double max = 0, step, xs, ys;
	size_t xstep = n > 20 ? (n + 9) / 10 : 1;

	for (size_t k = 0; k < ns; k++)
		for (size_t i = 0; i < n; i++)
			if (s[k].v[i] > max)
				max = s[k].v[i];
	step = nice_step(max > 0 ? max : 1);
	max = step * (double)(size_t)((max > 0 ? max : 1) / step + 0.999999);
	xs = (W - L - R) / (double)(n > 1 ? n - 1 : 1);
	ys = (H - T - B) / max;
	vd_strbuf_printf(b, "<h2>%s</h2>\n<svg viewBox=\"0 0 %.0f %.0f\" width=\"%.0f\" "
			 "height=\"%.0f\" font-size=\"11\">\n", title, W, H, W, H);
	for (double y = 0; y <= max + step / 2; y += step)
		vd_strbuf_printf(b, "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" "
				 "stroke=\"#ddd\"/><text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">"
				 "%g</text>\n", L, W - R, H - B - y * ys, H - B - y * ys, L - 5,
				 H - B - y * ys + 4, y);
	for (size_t i = 0; i < n; i += xstep)
		vd_strbuf_printf(b, "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%zus"
				 "</text>\n", L + (double)i * xs, H - B + 15, i + 1);
	vd_strbuf_printf(b, "<text x=\"%.0f\" y=\"15\">%s</text>\n", L, unit);
	for (size_t k = 0; k < ns; k++) {
		vd_strbuf_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" "
				 "points=\"", s[k].color);
		for (size_t i = 0; i < n; i++)
			vd_strbuf_printf(b, "%.1f,%.1f ", L + (double)i * xs,
					 H - B - s[k].v[i] * ys);
		vd_strbuf_printf(b, "\"/>\n<rect x=\"%.0f\" y=\"8\" width=\"10\" height=\"10\" "
				 "fill=\"%s\"/><text x=\"%.0f\" y=\"17\">", W - R - 110.0 * (double)(ns - k),
				 s[k].color, W - R - 110.0 * (double)(ns - k) + 14);
		vd_strbuf_xml(b, s[k].name);
		vd_strbuf_puts(b, "</text>\n");
	}
	vd_strbuf_puts(b, "</svg>\n");
}

static double
num(json_t *o, const char *a, const char *b)
{
	json_t *v = json_object_get(o, a);

	if (b)
		v = json_object_get(v, b);
	return json_number_value(v);
}

static void
summary_row(struct vd_strbuf *b, const char *name, const char *fmt, double v)
{
	vd_strbuf_printf(b, "<tr><th>%s</th><td>", name);
	vd_strbuf_printf(b, fmt, v);
	vd_strbuf_puts(b, "</td></tr>\n");
}

int
vd_load_report_html(const char *json_path, const char *html_path, struct vd_error *err)
{
	_cleanup_(json_decrefp) json_t *root = NULL;
	struct vd_strbuf b = VD_STRBUF_INIT;
	json_t *tl, *sum, *e, *v;
	json_error_t je;
	const char *key;
	size_t n, i;
	double *vals;
	FILE *f;

	root = json_load_file(json_path, 0, &je);
	if (!root)
		return vd_error_set(err, VD_EXIT_INPUT, "cannot read '%s': %s (line %d)",
				    json_path, je.text, je.line);
	tl = json_object_get(root, "timeline");
	sum = json_object_get(root, "summary");
	if (!json_is_array(tl) || !json_is_object(sum) || json_integer_value(
		    json_object_get(root, "vdctl_load")) != 1)
		return vd_error_set(err, VD_EXIT_INPUT, "'%s' is not a results file of "
				    "vdctl load --output", json_path);
	n = json_array_size(tl);
	vals = calloc(7 * (n ? n : 1), sizeof(*vals));
	if (!vals)
		return vd_error_errno(err, ENOMEM, "cannot make the report");
	json_array_foreach(tl, i, e) {
		vals[0 * n + i] = num(e, "responses", NULL);
		vals[1 * n + i] = num(e, "errors", NULL);
		vals[2 * n + i] = num(e, "response_time", "median");
		vals[3 * n + i] = num(e, "response_time", "p95");
		vals[4 * n + i] = num(e, "response_time", "p99");
		vals[5 * n + i] = num(e, "users", NULL);
		vals[6 * n + i] = num(e, "created", NULL);
	}
	vd_strbuf_puts(&b, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
		       "<title>vdctl load report</title>\n<style>body{font-family:sans-serif;"
		       "margin:2em;color:#222}table{border-collapse:collapse}th,td{padding:2px "
		       "10px;text-align:left;border-bottom:1px solid #eee}h2{font-size:1.1em;"
		       "margin-top:1.5em}</style></head><body>\n<h1>vdctl load: ");
	vd_strbuf_xml(&b, json_string_value(json_object_get(root, "profile")) ?: "");
	vd_strbuf_puts(&b, "</h1>\n<p>target ");
	vd_strbuf_xml(&b, json_string_value(json_object_get(root, "target")) ?: "");
	vd_strbuf_printf(&b, ", %s model, %.1f s</p>\n<table>\n",
			 json_string_value(json_object_get(root, "model")) ?: "?",
			 num(root, "duration_s", NULL));
	summary_row(&b, "virtual users created", "%.0f", num(sum, "vusers_created", NULL));
	summary_row(&b, "virtual users completed", "%.0f", num(sum, "vusers_completed", NULL));
	summary_row(&b, "requests", "%.0f", num(sum, "requests", NULL));
	summary_row(&b, "responses", "%.0f", num(sum, "responses", NULL));
	summary_row(&b, "requests/s", "%.1f", num(sum, "request_rate", NULL));
	summary_row(&b, "response time min (ms)", "%.1f", num(sum, "response_time", "min"));
	summary_row(&b, "median", "%.1f", num(sum, "response_time", "median"));
	summary_row(&b, "p95", "%.1f", num(sum, "response_time", "p95"));
	summary_row(&b, "p99", "%.1f", num(sum, "response_time", "p99"));
	summary_row(&b, "max", "%.1f", num(sum, "response_time", "max"));
	json_object_foreach(json_object_get(sum, "codes"), key, v) {
		char name[32];

		snprintf(name, sizeof(name), "code %s", key);
		summary_row(&b, name, "%.0f", json_number_value(v));
	}
	json_object_foreach(json_object_get(sum, "errors"), key, v) {
		char name[48];

		snprintf(name, sizeof(name), "error %s", key);
		summary_row(&b, name, "%.0f", json_number_value(v));
	}
	vd_strbuf_puts(&b, "</table>\n");
	svg_chart(&b, "Requests per second", "responses/s", n, (struct series[]){
		{ "responses/s", "#1f77b4", vals }, { "errors/s", "#d62728", vals + n } }, 2);
	svg_chart(&b, "Response time", "ms", n, (struct series[]){
		{ "median", "#2ca02c", vals + 2 * n }, { "p95", "#ff7f0e", vals + 3 * n },
		{ "p99", "#d62728", vals + 4 * n } }, 3);
	svg_chart(&b, "Users", "virtual users", n, (struct series[]){
		{ "active", "#9467bd", vals + 5 * n }, { "new/s", "#8c564b", vals + 6 * n } }, 2);
	vd_strbuf_puts(&b, "</body></html>\n");
	free(vals);
	if (vd_strbuf_failed(&b)) {
		vd_strbuf_free(&b);
		return vd_error_errno(err, ENOMEM, "cannot make the report");
	}
	f = fopen(html_path, "w");
	if (!f || (fwrite(b.s, 1, b.len, f) != b.len) + fclose(f) != 0) {
		int saved = errno;

		vd_strbuf_free(&b);
		return vd_error_errno(err, saved, "cannot write '%s'", html_path);
	}
	vd_strbuf_free(&b);
	return 0;
}
