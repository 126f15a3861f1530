/*
 * What the autoscaling simulator reports (vd/autosim.h): a table for
 * people, JSON for scripts (the bench reads it), and one self-contained
 * HTML page of SVG charts drawn by vd_chart: the load, then each policy's
 * replicas and p95 over time.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vd/autosim.h"
#include "vd/chart.h"
#include "vd/units.h"

/* "vdctl", "hpa", "kpa", "fixed 11". */
static char *
label(const struct vd_autosim_result *r, char *buf, size_t size)
{
	if (r->policy == VD_AUTOSIM_FIXED)
		snprintf(buf, size, "fixed %d", r->fixed);
	else
		snprintf(buf, size, "%s", vd_autosim_policy_name(r->policy));
	return buf;
}

static char *
ms(int64_t v, char *buf, size_t size)
{
	return vd_units_format_duration_ms(v, buf, size);
}

static char *
recover(const struct vd_autosim_result *r, char *buf, size_t size)
{
	if (r->step < 0)
		snprintf(buf, size, "-");
	else if (r->recover_s < 0)
		snprintf(buf, size, "never");
	else
		snprintf(buf, size, "%ld s", r->recover_s);
	return buf;
}

static double
lowest(const struct vd_autosim_config *c)
{
	double sum = 0;

	for (size_t i = 0; i < c->nsecs; i++)
		sum += vd_autosim_needed(c, c->rate[i]);
	return sum;
}

static double
total(const struct vd_autosim_config *c)
{
	double sum = 0;

	for (size_t i = 0; i < c->nsecs; i++)
		sum += c->rate[i];
	return sum;
}

/* ================================================================ table */

void
vd_autosim_print(FILE *f, const struct vd_autosim_config *c, const struct vd_autosim_about *about,
		 const struct vd_autosim_result *r, size_t n)
{
	char a[32], b[32], d[32], sv[256], name[32];
	double from, to, low = lowest(c);
	long step = vd_autosim_step(c->rate, c->nsecs, &from, &to);

	fprintf(f, "%s: %zu s, %.0f requests, ", about->source, c->nsecs, total(c));
	if (c->poisson)
		fprintf(f, "poisson arrivals (seed %llu)\n", (unsigned long long)c->seed);
	else
		fprintf(f, "arrivals evenly spaced within each second\n");
	fprintf(f, "  service time %s%s\n", vd_autosim_service_format(&c->service, sv, sizeof(sv)),
		about->service_from_trace ? " (the recording's response times: queueing and "
					    "network included)"
					  : "");
	fprintf(f, "  %d per replica, start delay %s, queue timeout %s, target p95 %s\n",
		c->per_replica, ms(c->start_delay_ms, a, sizeof(a)),
		ms(c->queue_timeout_ms, b, sizeof(b)), ms(c->target_p95_ms, d, sizeof(d)));
	fprintf(f, "  replicas %d to %d, utilisation %g, tolerance %g", c->min, c->max,
		c->utilisation, c->tolerance);
	if (c->target_queue > 0)
		fprintf(f, ", target queue %g", c->target_queue);
	fprintf(f, "\n  vdctl: windows %s up, %s down; cooldowns %s up, %s down\n",
		ms(c->up_window_ms, a, sizeof(a)), ms(c->down_window_ms, b, sizeof(b)),
		ms(c->up_cooldown_ms, d, sizeof(d)), ms(c->down_cooldown_ms, name, sizeof(name)));
	fprintf(f,
		"  hpa: every 15s on utilisation, its metric %s old, 300s scale-down "
		"stabilization\n  kpa: every 2s on concurrency, windows 60s stable and 6s "
		"panic\n",
		ms(c->hpa_lag_ms, a, sizeof(a)));
	fprintf(f, "  fixed N: the fewest replicas with the fewest seconds over the target\n");
	if (step >= 0)
		fprintf(f,
			"  the load rises most at %ld s (%.1f -> %.1f req/s): recover counts from "
			"there to 5 s on end under the target\n",
			step, from, to);
	fprintf(f,
		"  lowest possible: %.0f replica-seconds (each second ceil(rate x %s / (%d x "
		"%g)), at least %d)\n\n",
		low, vd_autosim_format_s(vd_autosim_service_mean(&c->service), a, sizeof(a)),
		c->per_replica, c->utilisation, c->min);
	fprintf(f, "%-10s %11s %13s %8s %10s %9s %5s %9s %8s\n", "POLICY", "OVER TARGET",
		"REQUESTS OVER", "DROPPED", "REPLICA-S", "X LOWEST", "PEAK", "UPS/DOWNS",
		"RECOVER");
	for (size_t i = 0; i < n; i++) {
		char s[32], ud[32], rec[32];

		snprintf(s, sizeof(s), "%zu s", r[i].seconds_over);
		snprintf(ud, sizeof(ud), "%d/%d", r[i].ups, r[i].downs);
		fprintf(f, "%-10s %11s %13llu %8llu %10.0f %9.2f %5d %9s %8s\n",
			label(&r[i], name, sizeof(name)), s, (unsigned long long)r[i].over,
			(unsigned long long)r[i].dropped, r[i].replica_seconds,
			r[i].lowest > 0 ? r[i].replica_seconds / r[i].lowest : 0, r[i].peak, ud,
			recover(&r[i], rec, sizeof(rec)));
	}
}

/* ================================================================= json */

static json_t *
service_json(const struct vd_autosim_service *s, bool from_trace)
{
	static const char *const dist[] = { "fixed", "exponential", "quantiles" };
	json_t *o = json_pack("{s:s, s:f, s:s}", "dist", dist[s->dist], "mean_ms",
			      vd_autosim_service_mean(s) * 1000, "from",
			      from_trace ? "recording" : "given");
	json_t *q = json_array();

	for (size_t i = 0; s->dist == VD_AUTOSIM_DIST_QUANTILES && i < s->nq; i++)
		json_array_append_new(q, json_pack("{s:f, s:f}", "q", s->q[i] * 100, "ms",
						   s->value_s[i] * 1000));
	json_object_set_new(o, "quantiles", q);
	return o;
}

static json_t *
result_json(const struct vd_autosim_result *r)
{
	json_t *reps = json_array(), *p95 = json_array(), *over = json_array();
	char name[32];

	for (size_t i = 0; i < r->nsecs; i++) {
		json_array_append_new(reps, json_integer(r->replicas[i]));
		json_array_append_new(p95, isnan(r->p95_ms[i])
						   ? json_null()
						   : json_real(round(r->p95_ms[i] * 1000) / 1000));
		json_array_append_new(over, json_boolean(r->over_s[i]));
	}
	return json_pack("{s:s, s:s, s:o, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:i, s:o, s:i,"
			 " s:i, s:o, s:o, s:o}",
			 "policy", vd_autosim_policy_name(r->policy), "label",
			 label(r, name, sizeof(name)), "fixed",
			 r->policy == VD_AUTOSIM_FIXED ? json_integer(r->fixed) : json_null(),
			 "requests", (json_int_t)r->requests, "completed", (json_int_t)r->completed,
			 "requests_over_target", (json_int_t)r->over, "dropped",
			 (json_int_t)r->dropped, "seconds_over_target", (json_int_t)r->seconds_over,
			 "replica_seconds", r->replica_seconds, "lowest_replica_seconds", r->lowest,
			 "vs_lowest", r->lowest > 0 ? r->replica_seconds / r->lowest : 0.0,
			 "peak_replicas", r->peak, "recover_s",
			 r->step < 0 ? json_null() : json_integer(r->recover_s), "scale_ups",
			 r->ups, "scale_downs", r->downs, "replicas", reps, "p95_ms", p95,
			 "over_target", over);
}

json_t *
vd_autosim_json(const struct vd_autosim_config *c, const struct vd_autosim_about *about,
		const struct vd_autosim_result *r, size_t n)
{
	json_t *rate = json_array(), *needed = json_array(), *res = json_array(), *root;
	double from, to;
	long step = vd_autosim_step(c->rate, c->nsecs, &from, &to);

	for (size_t i = 0; i < c->nsecs; i++) {
		json_array_append_new(rate, json_real(c->rate[i]));
		json_array_append_new(needed, json_integer(vd_autosim_needed(c, c->rate[i])));
	}
	for (size_t i = 0; i < n; i++)
		json_array_append_new(res, result_json(&r[i]));
	root = json_pack("{s:i, s:s, s:I, s:f, s:{s:o, s:i, s:I, s:I, s:I, s:i, s:i, s:i, s:f,"
			 " s:f, s:f, s:I, s:I, s:I, s:I, s:I, s:s, s:I}, s:o, s:f, s:o, s:o, s:o}",
			 "vdctl_autosim", 1, "source", about->source, "seconds",
			 (json_int_t)c->nsecs, "requests", total(c), "config", "service_time",
			 service_json(&c->service, about->service_from_trace), "per_replica",
			 c->per_replica, "start_delay_ms", (json_int_t)c->start_delay_ms,
			 "queue_timeout_ms", (json_int_t)c->queue_timeout_ms, "target_p95_ms",
			 (json_int_t)c->target_p95_ms, "min", c->min, "max", c->max, "initial",
			 c->initial   ? c->initial
			 : c->min > 1 ? c->min
				      : 1,
			 "utilisation", c->utilisation, "tolerance", c->tolerance, "target_queue",
			 c->target_queue, "up_window_ms", (json_int_t)c->up_window_ms,
			 "down_window_ms", (json_int_t)c->down_window_ms, "up_cooldown_ms",
			 (json_int_t)c->up_cooldown_ms, "down_cooldown_ms",
			 (json_int_t)c->down_cooldown_ms, "hpa_lag_ms", (json_int_t)c->hpa_lag_ms,
			 "arrivals", c->poisson ? "poisson" : "even", "seed", (json_int_t)c->seed,
			 "step",
			 step < 0 ? json_null()
				  : json_pack("{s:I, s:f, s:f}", "t", (json_int_t)step, "from",
					      from, "to", to),
			 "lowest_replica_seconds", lowest(c), "rate", rate, "needed", needed,
			 "results", res);
	return root;
}

/* ================================================================= html */

static void
row(struct vd_strbuf *b, const char *name, const char *value)
{
	vd_strbuf_puts(b, "<tr><th>");
	vd_strbuf_xml(b, name);
	vd_strbuf_puts(b, "</th><td>");
	vd_strbuf_xml(b, value);
	vd_strbuf_puts(b, "</td></tr>\n");
}

void
vd_autosim_html(struct vd_strbuf *b, const struct vd_autosim_config *c,
		const struct vd_autosim_about *about, const struct vd_autosim_result *r, size_t n)
{
	const struct vd_chart_axis
		time = { .title = "time", .unit = "s", .min = 0, .max = (double)c->nsecs };
	struct vd_chart_marker mark = { 0, "step", NULL };
	struct vd_chart_xy *rate, *needed, *reps, *p95, *target;
	char buf[256], v[64], name[32];
	size_t ns = c->nsecs;
	double from, to;
	long step = vd_autosim_step(c->rate, ns, &from, &to);

	rate = calloc(5 * ns, sizeof(*rate));
	if (!rate) {
		b->oom = true;
		return;
	}
	needed = rate + ns;
	reps = needed + ns;
	p95 = reps + ns;
	target = p95 + ns;
	mark.x = (double)step;
	for (size_t i = 0; i < ns; i++) {
		rate[i] = (struct vd_chart_xy){ (double)i, c->rate[i] };
		needed[i] = (struct vd_chart_xy){ (double)i, vd_autosim_needed(c, c->rate[i]) };
		target[i] = (struct vd_chart_xy){ (double)i, (double)c->target_p95_ms };
	}
	vd_strbuf_puts(b, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
			  "<title>vdctl autoscale simulate</title>\n<style>body{font-family:"
			  "sans-serif;margin:2em;color:#222}table{border-collapse:collapse}th,td{"
			  "padding:2px 10px;text-align:left;border-bottom:1px solid #eee}td.n{"
			  "text-align:right}svg{display:block;max-width:100%;height:auto;margin:"
			  "1.5em 0}</style></head><body>\n<h1>vdctl autoscale simulate: ");
	vd_strbuf_xml(b, about->source);
	vd_strbuf_puts(b, "</h1>\n<table>\n");
	snprintf(buf, sizeof(buf), "%zu s, %.0f requests, %s arrivals", ns, total(c),
		 c->poisson ? "poisson" : "evenly spaced");
	row(b, "load", buf);
	vd_autosim_service_format(&c->service, buf, sizeof(buf));
	if (about->service_from_trace)
		snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), " (from the recording)");
	row(b, "service time", buf);
	snprintf(buf, sizeof(buf), "%d per replica, start delay %s", c->per_replica,
		 ms(c->start_delay_ms, v, sizeof(v)));
	row(b, "replicas", buf);
	row(b, "target p95", ms(c->target_p95_ms, v, sizeof(v)));
	row(b, "queue timeout", ms(c->queue_timeout_ms, v, sizeof(v)));
	snprintf(buf, sizeof(buf), "%d to %d", c->min, c->max);
	row(b, "min to max", buf);
	snprintf(buf, sizeof(buf), "%.0f replica-seconds", lowest(c));
	row(b, "lowest possible", buf);
	vd_strbuf_puts(b, "</table>\n<h2>Results</h2>\n<table>\n<tr><th>policy</th><th>seconds "
			  "over target</th><th>requests over</th><th>dropped</th><th>replica-"
			  "seconds</th><th>x lowest</th><th>peak</th><th>recover</th></tr>\n");
	for (size_t i = 0; i < n; i++) {
		vd_strbuf_puts(b, "<tr><th>");
		vd_strbuf_xml(b, label(&r[i], name, sizeof(name)));
		vd_strbuf_printf(b,
				 "</th><td class=\"n\">%zu</td><td class=\"n\">%llu</td><td "
				 "class=\"n\">%llu</td><td class=\"n\">%.0f</td><td class=\"n\">"
				 "%.2f</td><td class=\"n\">%d</td><td class=\"n\">%s</td></tr>\n",
				 r[i].seconds_over, (unsigned long long)r[i].over,
				 (unsigned long long)r[i].dropped, r[i].replica_seconds,
				 r[i].lowest > 0 ? r[i].replica_seconds / r[i].lowest : 0,
				 r[i].peak, recover(&r[i], v, sizeof(v)));
	}
	vd_strbuf_puts(b, "</table>\n");
	vd_chart_line(b, &(struct vd_chart_line){
				 .title = "Load",
				 .x = time,
				 .y = { .title = "arrivals", .unit = "req/s" },
				 .series =
					 (struct vd_chart_series[]){
						 { .name = "arrivals",
						   .unit = "req/s",
						   .pts = rate,
						   .n = ns,
						   .step = true,
						   .color = "#1f77b4" },
					 },
				 .nseries = 1,
				 .markers = &mark,
				 .nmarkers = step >= 0 });
	for (size_t k = 0; k < n; k++) {
		for (size_t i = 0; i < ns; i++) {
			reps[i] = (struct vd_chart_xy){ (double)i, r[k].replicas[i] };
			p95[i] = (struct vd_chart_xy){ (double)i, r[k].p95_ms[i] };
		}
		label(&r[k], name, sizeof(name));
		vd_strbuf_puts(b, "<h2>");
		vd_strbuf_xml(b, name);
		vd_strbuf_printf(b,
				 "</h2>\n<p>%zu s over the target, %llu requests over it, %llu "
				 "dropped, %.0f replica-seconds (%.2fx the lowest), peak %d, "
				 "recover %s</p>\n",
				 r[k].seconds_over, (unsigned long long)r[k].over,
				 (unsigned long long)r[k].dropped, r[k].replica_seconds,
				 r[k].lowest > 0 ? r[k].replica_seconds / r[k].lowest : 0,
				 r[k].peak, recover(&r[k], v, sizeof(v)));
		snprintf(buf, sizeof(buf), "%s: replicas", name);
		vd_chart_line(b, &(struct vd_chart_line){
					 .title = buf,
					 .x = time,
					 .y = { .title = "replicas" },
					 .series =
						 (struct vd_chart_series[]){
							 { .name = "replicas",
							   .pts = reps,
							   .n = ns,
							   .step = true,
							   .color = "#2ca02c" },
							 { .name = "fewest the load needs",
							   .pts = needed,
							   .n = ns,
							   .step = true,
							   .color = "#999999" },
						 },
					 .nseries = 2,
					 .markers = &mark,
					 .nmarkers = step >= 0 });
		snprintf(buf, sizeof(buf), "%s: response time p95", name);
		vd_chart_line(b, &(struct vd_chart_line){
					 .title = buf,
					 .x = time,
					 .y = { .title = "p95" },
					 .series =
						 (struct vd_chart_series[]){
							 { .name = "p95",
							   .unit = "ms",
							   .pts = p95,
							   .n = ns,
							   .color = "#ff7f0e" },
							 { .name = "target",
							   .unit = "ms",
							   .pts = target,
							   .n = ns,
							   .color = "#d62728" },
						 },
					 .nseries = 2,
					 .markers = &mark,
					 .nmarkers = step >= 0 });
	}
	vd_strbuf_puts(b, "</body></html>\n");
	free(rate);
}
