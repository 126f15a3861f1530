/*
 * What the load generator prints and writes: reports in the shape Artillery
 * users read ("http.requests: ....... 600"), results.json with the totals
 * and a per-second timeline, and from that file one self-contained HTML
 * page of SVG charts drawn by vd_chart (requests/s, response-time
 * percentiles, users), the view Locust users look at.
 *
 * Neither writer ever writes over its input: the output is opened without
 * truncating it, compared with the input by device and inode (so a symlink,
 * "./r.json" or a hard link to the input is caught too), and only then
 * emptied.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vd/chart.h"
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

/* ================================================================ files */

static int
file_error(struct vd_error *err, int e, const char *what, const char *path)
{
	vd_error_errno(err, e, "cannot %s '%s'", what, path);
	err->code = VD_EXIT_INPUT;
	return -1;
}

/* Open PATH to write, without emptying it, unless it is the file INPUT
 * (NULL: none) names. *made (MADE may be NULL) says whether this created
 * it. Returns the fd, or -1 with err (VD_EXIT_INPUT: these paths come from
 * the command line). */
static int
open_output(const char *path, const char *input, bool *made, struct vd_error *err)
{
	struct stat in, out;
	bool created = false;
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
	if (fd >= 0)
		created = true;
	else if (errno == EEXIST) /* O_NONBLOCK: a FIFO without a reader fails, not hangs */
		fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	if (made)
		*made = created;
	if (fd < 0)
		return file_error(err, errno, "write", path);
	if (!created && input && stat(input, &in) == 0 && fstat(fd, &out) == 0 &&
	    in.st_dev == out.st_dev && in.st_ino == out.st_ino) {
		close(fd);
		return vd_error_set(err, VD_EXIT_INPUT, "cannot write '%s': it is the input "
				    "file '%s'", path, input);
	}
	return fd;
}

/* Empty the file open_output() opened, to write it from the start. */
static int
truncate_output(int fd, const char *path, struct vd_error *err)
{
	struct stat st;

	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && ftruncate(fd, 0) < 0)
		return file_error(err, errno, "write", path);
	return 0;
}

int
vd_load_output_check(const char *path, const char *input, struct vd_error *err)
{
	bool made;
	int fd = open_output(path, input, &made, err);

	if (fd < 0)
		return -1;
	close(fd);
	if (made)
		unlink(path);
	return 0;
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
	bool ok;
	int fd, saved;

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
	if ((fd = open_output(path, p->file, NULL, err)) < 0)
		return -1;
	if (truncate_output(fd, path, err) < 0) {
		close(fd);
		return -1;
	}
	errno = 0;
	ok = json_dumpfd(root, fd, JSON_INDENT(1)) == 0 && write(fd, "\n", 1) == 1;
	saved = errno;
	if (close(fd) < 0 && ok) {
		ok = false;
		saved = errno;
	}
	if (!ok)
		return vd_error_errno(err, saved ? saved : EIO, "cannot write '%s'", path);
	return 0;
}

/* ================================================================= html */

/* o.a (or o.a.b) as a number; NaN when missing. */
static double
num(json_t *o, const char *a, const char *b)
{
	json_t *v = json_object_get(o, a);

	if (b)
		v = json_object_get(v, b);
	return json_is_number(v) ? json_number_value(v) : NAN;
}

static void
summary_row(struct vd_strbuf *b, const char *name, const char *fmt, double v)
{
	vd_strbuf_puts(b, "<tr><th>");
	vd_strbuf_xml(b, name);
	vd_strbuf_puts(b, "</th><td>");
	if (isfinite(v))
		vd_strbuf_printf(b, fmt, v);
	else
		vd_strbuf_puts(b, "-");
	vd_strbuf_puts(b, "</td></tr>\n");
}

enum { RESPONSES, ERRORS, MEDIAN, P95, P99, USERS, CREATED, NSERIES };

/* The timeline's charts: requests and errors per second, response-time
 * percentiles (a gap in a second without responses), users; one above the
 * other on the same time axis. */
static void
timeline_charts(struct vd_strbuf *b, json_t *tl, struct vd_chart_xy *pts)
{
	static const struct vd_chart_axis time = { .title = "time", .unit = "s" };
	size_t n = json_array_size(tl), i;
	struct vd_chart_xy *p[NSERIES];
	json_t *e;

	for (int k = 0; k < NSERIES; k++)
		p[k] = pts + (size_t)k * n;
	json_array_foreach(tl, i, e) {
		double t = num(e, "t", NULL), resp = num(e, "responses", NULL);
		bool none = !(resp > 0);

		if (isnan(t))
			t = (double)i + 1;

		p[RESPONSES][i] = (struct vd_chart_xy){ t, resp };
		p[ERRORS][i] = (struct vd_chart_xy){ t, num(e, "errors", NULL) };
		p[MEDIAN][i] = (struct vd_chart_xy){ t, none ? NAN :
						     num(e, "response_time", "median") };
		p[P95][i] = (struct vd_chart_xy){ t, none ? NAN : num(e, "response_time", "p95") };
		p[P99][i] = (struct vd_chart_xy){ t, none ? NAN : num(e, "response_time", "p99") };
		p[USERS][i] = (struct vd_chart_xy){ t, num(e, "users", NULL) };
		p[CREATED][i] = (struct vd_chart_xy){ t, num(e, "created", NULL) };
	}
	vd_chart_line(b, &(struct vd_chart_line){
		.title = "Requests per second", .x = time, .y = { .title = "per second" },
		.series = (struct vd_chart_series[]){
			{ .name = "responses", .pts = p[RESPONSES], .n = n, .color = "#1f77b4" },
			{ .name = "errors", .pts = p[ERRORS], .n = n, .color = "#d62728" },
		}, .nseries = 2 });
	vd_chart_line(b, &(struct vd_chart_line){
		.title = "Response time", .x = time, .y = { .title = "response time" },
		.series = (struct vd_chart_series[]){
			{ .name = "median", .unit = "ms", .pts = p[MEDIAN], .n = n,
			  .color = "#2ca02c" },
			{ .name = "p95", .unit = "ms", .pts = p[P95], .n = n, .color = "#ff7f0e" },
			{ .name = "p99", .unit = "ms", .pts = p[P99], .n = n, .color = "#d62728" },
		}, .nseries = 3 });
	vd_chart_line(b, &(struct vd_chart_line){
		.title = "Users", .x = time, .y = { .title = "virtual users" },
		.series = (struct vd_chart_series[]){
			{ .name = "active", .pts = p[USERS], .n = n, .color = "#9467bd" },
			{ .name = "new per second", .pts = p[CREATED], .n = n, .color = "#8c564b" },
		}, .nseries = 2 });
}

int
vd_load_report_html(const char *json_path, const char *html_path, struct vd_error *err)
{
	_cleanup_(json_decrefp) json_t *root = NULL;
	struct vd_strbuf b = VD_STRBUF_INIT;
	json_t *tl, *sum, *v;
	json_error_t je;
	const char *key;
	_cleanup_free_ struct vd_chart_xy *pts = NULL;
	_cleanup_fclose_ FILE *in = NULL;
	struct stat st;
	size_t n;
	FILE *f;
	int fd;

	in = fopen(json_path, "r");
	if (!in || fstat(fileno(in), &st) < 0)
		return file_error(err, errno, "read", json_path);
	if (S_ISDIR(st.st_mode))
		return file_error(err, EISDIR, "read", json_path);
	root = json_loadf(in, 0, &je);
	if (!root && je.line > 0)
		return vd_error_set(err, VD_EXIT_INPUT, "cannot read '%s': %s (line %d)",
				    json_path, je.text, je.line);
	if (!root)
		return vd_error_set(err, VD_EXIT_INPUT, "cannot read '%s': %s", json_path,
				    je.text);
	tl = json_object_get(root, "timeline");
	sum = json_object_get(root, "summary");
	if (!json_is_array(tl) || !json_is_object(sum) || json_integer_value(
		    json_object_get(root, "vdctl_load")) != 1)
		return vd_error_set(err, VD_EXIT_INPUT, "'%s' is not a results file of "
				    "vdctl load --output", json_path);
	n = json_array_size(tl);
	pts = calloc(NSERIES * (n ? n : 1), sizeof(*pts));
	if (!pts)
		return vd_error_errno(err, ENOMEM, "cannot make the report");
	vd_strbuf_puts(&b, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
		       "<title>vdctl load report</title>\n<style>body{font-family:sans-serif;"
		       "margin:2em;color:#222}table{border-collapse:collapse}th,td{padding:2px "
		       "10px;text-align:left;border-bottom:1px solid #eee}svg{display:block;"
		       "max-width:100%;height:auto;margin:1.5em 0}</style></head><body>\n"
		       "<h1>vdctl load: ");
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
	timeline_charts(&b, tl, pts);
	vd_strbuf_puts(&b, "</body></html>\n");
	if (vd_strbuf_failed(&b)) {
		vd_strbuf_free(&b);
		return vd_error_errno(err, ENOMEM, "cannot make the report");
	}
	fd = open_output(html_path, json_path, NULL, err);
	if (fd < 0 || truncate_output(fd, html_path, err) < 0) {
		if (fd >= 0)
			close(fd);
		vd_strbuf_free(&b);
		return -1;
	}
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		vd_strbuf_free(&b);
		return vd_error_errno(err, ENOMEM, "cannot write '%s'", html_path);
	}
	errno = 0;
	if ((fwrite(b.s, 1, b.len, f) != b.len) + fclose(f) != 0) {
		int saved = errno ? errno : EIO;

		vd_strbuf_free(&b);
		return vd_error_errno(err, saved, "cannot write '%s'", html_path);
	}
	vd_strbuf_free(&b);
	return 0;
}
