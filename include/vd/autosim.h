/*
 * The autoscaling simulator: a recorded arrival timeline replayed through a
 * queueing model of one service, under vdctl's own policy (vd/autoscale.h,
 * the same code the controller runs), under models of Kubernetes' HPA and
 * Knative's KPA, and with a fixed replica count, so that their figures can
 * be set side by side (`vdctl autoscale simulate`).
 *
 * The model, one request at a time (event-driven, times in double seconds):
 * requests arrive at the recorded rate, spread evenly over each second or
 * as a Poisson process, into the balancer's one FIFO queue; a replica
 * serves per_replica of them at once, each for a service time drawn from a
 * fixed, exponential or empirical (quantiles) distribution; a request that
 * waits longer than queue_timeout is answered 504 (dropped). A replica
 * asked for at t serves from t + start_delay; a replica removed takes no
 * new request and finishes those it holds, so no request fails for a
 * scale-down. Each run draws the same arrivals and service times from the
 * seed (common random numbers): policies differ only by what they decided.
 *
 *   struct vd_autosim_config c;
 *   vd_autosim_config_defaults(&c);
 *   c.rate = rate; c.nsecs = n; c.target_p95_ms = 300; ...
 *   if (vd_autosim_check(&c, err) < 0) ...          (exit 2: bad input)
 *   vd_autosim_run(&c, VD_AUTOSIM_VDCTL, 0, &r, err);
 *   vd_autosim_best_fixed(&c, &best, err);
 *   ...
 *   vd_autosim_result_clear(&r);
 *
 * Pure: no clock, no I/O; the same config gives the same result. Traces
 * are read from files by vd_autosim_trace_read_*(); results are printed
 * and drawn by vd_autosim_print(), vd_autosim_json() and vd_autosim_html().
 */
#ifndef VD_AUTOSIM_H
#define VD_AUTOSIM_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "vd/error.h"
#include "vd/strbuf.h"

#define VD_AUTOSIM_MAX_SECONDS (7 * 24 * 3600) /* a trace: a week */
#define VD_AUTOSIM_MAX_RATE 1e6                /* arrivals a second */
#define VD_AUTOSIM_MAX_REQUESTS 100000000.0    /* a trace's arrivals in all */
#define VD_AUTOSIM_MAX_REPLICAS 1000
#define VD_AUTOSIM_MAX_QUANTILES 8

/* ========================================================== service time */

enum vd_autosim_dist {
	VD_AUTOSIM_DIST_FIXED,     /* every request takes mean_s */
	VD_AUTOSIM_DIST_EXP,       /* exponential with mean mean_s */
	VD_AUTOSIM_DIST_QUANTILES, /* empirical: the inverse CDF through the
				    * points (q[i], value_s[i]), linear between
				    * them, flat beyond the first and the last */
};

struct vd_autosim_service {
	enum vd_autosim_dist dist;
	double mean_s;                            /* FIXED, EXP */
	size_t nq;                                /* QUANTILES: 1 to VD_AUTOSIM_MAX_QUANTILES */
	double q[VD_AUTOSIM_MAX_QUANTILES];       /* in [0, 1], increasing */
	double value_s[VD_AUTOSIM_MAX_QUANTILES]; /* non-decreasing, >= 0 */
};

/* Parse a service time as the command line gives it: "100ms" (fixed),
 * "exp:100ms" (exponential, that mean), or quantiles
 * "p50=80ms,p95=150ms,p99=300ms" (p0 is the least, p100 the most). Returns
 * 0, or -1 with err (VD_EXIT_INPUT) saying what is wrong with S alone. */
int vd_autosim_service_parse(const char *s, struct vd_autosim_service *out, struct vd_error *err);

/* SEC seconds as vdctl writes durations ("100ms", "1s500ms"), or "100.4ms"
 * between whole ms; returns BUF. */
char *vd_autosim_format_s(double sec, char *buf, size_t size);

/* Its mean, in seconds. */
double vd_autosim_service_mean(const struct vd_autosim_service *s);

/* It in words: "100ms", "exponential, mean 100ms", "p50 80ms, p95 150ms". */
char *vd_autosim_service_format(const struct vd_autosim_service *s, char *buf, size_t size);

/* ================================================================ traces */

/* Arrivals a second, one value per second of the recording. */
struct vd_autosim_trace {
	double *rate;
	size_t nsecs;
	bool has_service;                  /* a results file's response times */
	struct vd_autosim_service service; /* ... as a service-time hint */
};

/* Read a CSV of requests per second: lines "SECOND,RATE" (seconds
 * consecutive, from any first one) or "RATE" alone; a header line first,
 * blank lines and lines starting with '#' are allowed. NAME names the
 * input in messages ("FILE:LINE: ..."). 0, or -1 with err (VD_EXIT_INPUT
 * for a mistake). The buffer need not be NUL-terminated. */
int vd_autosim_trace_parse_csv(const char *name, const char *buf, size_t len,
			       struct vd_autosim_trace *t, struct vd_error *err);

/* Read a results file `vdctl load --output` wrote: its timeline's requests
 * a second are the arrivals; its response times give the hint (each
 * second's min, median, p95 and p99, the median of each over the seconds
 * with responses: they include any queueing and network time). */
int vd_autosim_trace_parse_results(const char *name, const char *buf, size_t len,
				   struct vd_autosim_trace *t, struct vd_error *err);

/* The same from the file at PATH (the whole file, at most 256 MiB); a file
 * that cannot be read is VD_EXIT_INPUT too. */
int vd_autosim_trace_read_csv(const char *path, struct vd_autosim_trace *t, struct vd_error *err);
int vd_autosim_trace_read_results(const char *path, struct vd_autosim_trace *t,
				  struct vd_error *err);

void vd_autosim_trace_clear(struct vd_autosim_trace *t);

/* ================================================================ config */

struct vd_autosim_config {
	const double *rate; /* arrivals a second, nsecs of them (not owned) */
	size_t nsecs;
	struct vd_autosim_service service;
	int per_replica;          /* requests a replica serves at once, >= 1 */
	int64_t start_delay_ms;   /* from asked for to serving */
	int64_t queue_timeout_ms; /* a request waiting longer is dropped (504) */
	int64_t target_p95_ms;    /* the latency target, > 0 */
	int min, max;             /* replicas */
	int initial;              /* replicas at the start, ready; 0 = min (1 at least) */
	/* vdctl's policy (vd_autoscale_policy's fields; utilisation also
	 * HPA's and KPA's target) */
	double utilisation, tolerance, target_queue;
	int64_t up_window_ms, down_window_ms, up_cooldown_ms, down_cooldown_ms;
	int64_t hpa_lag_ms; /* HPA's metrics pipeline: the metric it reads is this old */
	bool poisson;       /* Poisson arrivals within each second; else evenly spaced */
	uint64_t seed;      /* for Poisson arrivals and random service times */
};

/* The defaults: per_replica 1, start delay 500ms, queue timeout 60s (the
 * balancer's), min 1, max 10 (the manifest's), vd_autoscale_policy's
 * utilisation (0.7), tolerance (0.1) and cooldowns (0 up, 30s down),
 * windows 10s up and 120s down (the manifest's), HPA lag 15s, even
 * arrivals, seed 1; no trace, no service time, no target. */
void vd_autosim_config_defaults(struct vd_autosim_config *c);

/* Is C one the simulator runs? -1 with err (VD_EXIT_INPUT) naming the
 * field ("per_replica: must be 1 to 100000") when not. */
int vd_autosim_check(const struct vd_autosim_config *c, struct vd_error *err);

/* The fewest replicas the load needs each second: at least min, else
 * ceil(rate x mean service time / (per_replica x utilisation)) (the
 * bench's "lowest possible": ceil(rate / 14) for 2 x 100ms at 0.7). */
int vd_autosim_needed(const struct vd_autosim_config *c, double rate);

/* The second at which the load rises most: the largest rise of the mean
 * rate over 5 s from the 5 s before (the first such second on a tie); -1
 * when it never rises by 1 req/s or more. *from and *to (may be NULL) get
 * the two means. */
long vd_autosim_step(const double *rate, size_t n, double *from, double *to);

/* ================================================================== runs */

enum vd_autosim_policy {
	VD_AUTOSIM_VDCTL, /* vd_autoscale_decide() every second */
	VD_AUTOSIM_HPA,   /* Kubernetes' HPA on utilisation, every 15 s */
	VD_AUTOSIM_KPA,   /* Knative's KPA on concurrency, every 2 s */
	VD_AUTOSIM_FIXED, /* a fixed count */
	VD_AUTOSIM_NPOLICIES
};

/* "vdctl", "hpa", "kpa", "fixed"; and back (-1 for none of them). */
const char *vd_autosim_policy_name(enum vd_autosim_policy p);
int vd_autosim_policy_parse(const char *s);

struct vd_autosim_result {
	enum vd_autosim_policy policy;
	int fixed;              /* FIXED: the count */
	uint64_t requests;      /* arrivals */
	uint64_t completed;     /* served */
	uint64_t over;          /* responses (504s included) slower than the target */
	uint64_t dropped;       /* answered 504 after queue_timeout */
	size_t seconds_over;    /* seconds whose p95 is over the target, or with
				 * no response while a request older than the
				 * target waits */
	double replica_seconds; /* replicas starting, ready or finishing their
				 * requests, over the recording's seconds */
	double lowest;          /* the sum of vd_autosim_needed() over them */
	int peak;               /* the most replicas asked for at once */
	long step;              /* vd_autosim_step() of the load; -1: none */
	long recover_s;         /* seconds from step until the p95 is under the
				 * target for 5 s on end; -1: never; 0 when
				 * it never went over */
	int ups, downs;         /* scaling actions */
	/* per second, nsecs each */
	int *replicas;  /* asked for (ready + starting) during the second */
	double *p95_ms; /* response-time p95 of the second; NaN: no response */
	bool *over_s;   /* the second counts in seconds_over */
	size_t nsecs;
};

/* Run C under POLICY (FIXED: FIXED replicas all along). Requests still
 * queued or in service at the end are run to the end: they count in the
 * totals, not in the per-second figures. 0, or -1 with err when C fails
 * vd_autosim_check() (VD_EXIT_INPUT) or out of memory. *r is filled in
 * either case (empty on failure); free it with vd_autosim_result_clear(). */
int vd_autosim_run(const struct vd_autosim_config *c, enum vd_autosim_policy policy, int fixed,
		   struct vd_autosim_result *r, struct vd_error *err);

/* The best fixed count: of max(min, 1)..max, the fewest replicas with the
 * fewest seconds over the target. Every count is run, but a run stops as
 * soon as it cannot be the answer, and the first count with no second over
 * ends the search. */
int vd_autosim_best_fixed(const struct vd_autosim_config *c, struct vd_autosim_result *r,
			  struct vd_error *err);

void vd_autosim_result_clear(struct vd_autosim_result *r);

/* ================================================================ output */

/* What the report says of its input besides the config. */
struct vd_autosim_about {
	const char *source;      /* the file the trace came from */
	bool service_from_trace; /* the service time is the recording's hint */
};

/* A table for people: the input in a few lines, then one row per result. */
void vd_autosim_print(FILE *f, const struct vd_autosim_config *c,
		      const struct vd_autosim_about *about, const struct vd_autosim_result *r,
		      size_t n);

/* The same as JSON with the per-second series ("vdctl_autosim": 1). New
 * reference; NULL when out of memory. */
json_t *vd_autosim_json(const struct vd_autosim_config *c, const struct vd_autosim_about *about,
			const struct vd_autosim_result *r, size_t n);

/* One self-contained HTML page: the figures, the load, and each result's
 * replicas (against the fewest the load needs) and p95 (against the
 * target) over time, drawn by vd_chart. Out of memory shows in b. */
void vd_autosim_html(struct vd_strbuf *b, const struct vd_autosim_config *c,
		     const struct vd_autosim_about *about, const struct vd_autosim_result *r,
		     size_t n);

#endif
