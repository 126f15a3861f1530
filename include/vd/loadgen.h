/*
 * The load generator: open- and closed-model HTTP/1.1 load on vdctl's event
 * loop, from vdctl's own load profile or from an Artillery script.
 *
 *   struct vd_diags diags = VD_DIAGS_INIT;
 *   struct vd_load_profile *p;
 *   if (vd_load_profile_read(path, NULL, &p, &diags, err) < 0)
 *           print diags, fail with err (exit 2)
 *   vd_load_output_check(out, path, err);       (before, not after, the load)
 *   vd_load_run(p, &opts, &result, err);
 *   vd_load_print_summary(stdout, &result);
 *   vd_load_write_json(out, p, &result, err);
 *
 * Open model: arrivals follow their own clock (constant spacing or Poisson)
 * whatever the responses do, and a request's latency counts from when it
 * was due, not from when it could be sent: no coordinated omission. Closed
 * model: N users, each sending one request, waiting for the answer, then a
 * wait time, until the duration is over (Locust's model); latency counts
 * from the send. Neither sends a request before it is due, so no latency
 * starts before its request could go out.
 *
 * Requests are turned into their bytes when the profile is read; sending is
 * one write from those bytes, and connections and users come from pools
 * sized at start, so the hot path does not allocate. Latencies go into the
 * balancer's log-linear histograms (vd/hist.h).
 */
#ifndef VD_LOADGEN_H
#define VD_LOADGEN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "vd/diag.h" /* struct vd_diags */
#include "vd/error.h"
#include "vd/hist.h"

#define VD_LOAD_MAX_BYTES (1 << 20) /* a profile file */
#define VD_LOAD_MAX_THREADS 64

enum vd_load_format { VD_LOAD_VDCTL, VD_LOAD_ARTILLERY };
enum vd_load_model { VD_LOAD_OPEN, VD_LOAD_CLOSED };
enum vd_load_arrivals { VD_LOAD_CONSTANT, VD_LOAD_POISSON };

/* One request, ready to send. */
struct vd_load_request {
	char *name;      /* "GET /predict", for reports */
	char *wire;      /* the request's head and body */
	size_t wire_len;
};

/* A step of a flow: a request, or a think time when request is -1. */
struct vd_load_step {
	int request; /* index in profile->requests, or -1 */
	int64_t think_ms;
};

struct vd_load_scenario {
	char *name;
	unsigned weight;
	struct vd_load_step *steps;
	size_t nsteps;
};

/* An open-model phase: arrivals a second ramp linearly from rate to
 * ramp_to over duration_ms (arrivalCount and pause are read into this). */
struct vd_load_phase {
	char *name;
	int64_t duration_ms;
	double rate, ramp_to;
	int max_vusers; /* users at once in this phase; 0 = the global cap */
};

struct vd_load_profile {
	char *file;
	enum vd_load_format format;
	enum vd_load_model model;
	enum vd_load_arrivals arrivals;
	char *target;    /* as written */
	char *host;      /* an IP literal (no brackets) or a name */
	int port;
	int64_t timeout_ms;  /* per request, connect included */
	int keep_alive_pool; /* 0: each user has its own connection */
	/* closed model */
	int users;
	double spawn_rate;   /* users started a second */
	int64_t wait_min_ms, wait_max_ms;
	int64_t duration_ms;
	/* open model */
	struct vd_load_phase *phases;
	size_t nphases;
	struct vd_load_scenario *scenarios;
	size_t nscenarios;
	struct vd_load_request *requests;
	size_t nrequests;
};

/* What vdctl load's command line changes in a profile (zero: nothing). */
struct vd_load_overrides {
	const char *target;  /* --target: http://HOST[:PORT][/PATH] instead of the
			      * profile's (which may then be missing) */
	int64_t duration_ms; /* --duration: a closed-model run's length; an open
			      * model's phases scaled to it in proportion */
	double rate;         /* --rate: arrivals a second of a one-phase open-model
			      * profile (a ramp becomes constant) */
};

/* Read the profile or Artillery script at PATH, applying OV (may be NULL).
 * On success stores it in *out and returns 0; on mistakes (a file that
 * cannot be read too) appends them to diags in file order (FILE:LINE:COL,
 * vd/diag.h) and returns -1 with err = VD_EXIT_INPUT ("3 errors in PATH").
 * An override that is invalid or does not fit the profile (--rate for the
 * closed model or several phases) is -1 with err alone, VD_EXIT_INPUT. */
int vd_load_profile_read(const char *path, const struct vd_load_overrides *ov,
			 struct vd_load_profile **out, struct vd_diags *diags,
			 struct vd_error *err);

/* The same for text in memory, named NAME in diagnostics. */
int vd_load_profile_parse(const char *name, const char *buf, size_t len,
			  const struct vd_load_overrides *ov, struct vd_load_profile **out,
			  struct vd_diags *diags, struct vd_error *err);

void vd_load_profile_free(struct vd_load_profile *p);

/* How long the load lasts as planned (phases, or the closed duration). */
int64_t vd_load_profile_duration_ms(const struct vd_load_profile *p);

/* Is HOST 127.0.0.1, ::1 or localhost? */
bool vd_load_host_is_loopback(const char *host);

struct vd_load_opts {
	int threads;        /* event loops, one thread each (1) */
	bool allow_remote;  /* a target other than 127.0.0.1/[::1] */
	int report_every_s; /* a report this often on opts->out; 0: none (10) */
	int max_vusers;     /* open-model users at once when no phase says (10000) */
	FILE *out;          /* reports; NULL: none */
};

void vd_load_opts_init(struct vd_load_opts *o);

/* Errors by kind, named like errno where there is one. */
enum vd_load_err {
	VD_LOAD_ETIMEDOUT,
	VD_LOAD_ECONNREFUSED,
	VD_LOAD_ECONNRESET,
	VD_LOAD_EADDRNOTAVAIL,
	VD_LOAD_EPIPE,
	VD_LOAD_EMFILE,
	VD_LOAD_EPROTO,     /* not an HTTP/1.x response */
	VD_LOAD_EOTHER,
	VD_LOAD_ERR_KINDS
};

const char *vd_load_error_name(int kind);

#define VD_LOAD_CODES 600

/* Counters, for a second, a report period or the whole run. */
struct vd_load_counts {
	uint64_t created, completed, failed, skipped; /* virtual users */
	uint64_t requests, responses, users;          /* users: at the end */
	uint64_t errors[VD_LOAD_ERR_KINDS];
	uint64_t codes[VD_LOAD_CODES]; /* responses by status */
};

/* One second of the timeline. */
struct vd_load_sec {
	struct vd_load_counts c; /* codes unused */
	uint64_t codes[6];       /* responses by class: [2] is 2xx */
	uint64_t min_us, p50_us, p95_us, p99_us, max_us;
	double mean_us;
};

struct vd_load_result {
	int64_t elapsed_ms;
	bool interrupted;
	struct vd_load_counts total;
	struct vd_hist hist;
	uint64_t *per_request; /* responses per profile request */
	size_t nrequests;
	struct vd_load_sec *timeline;
	size_t nsecs;
};

/* Run the load. Blocks until it is over (or SIGINT/SIGTERM: then
 * r->interrupted). Returns 0, or -1 with err when it could not start. */
int vd_load_run(const struct vd_load_profile *p, const struct vd_load_opts *o,
		struct vd_load_result *r, struct vd_error *err);

void vd_load_result_clear(struct vd_load_result *r);

/* Artillery's shape: "http.requests: ........ 600". */
void vd_load_print_counts(FILE *f, const struct vd_load_counts *c, const struct vd_hist *h,
			  double seconds);
/* The summary at the end. */
void vd_load_print_summary(FILE *f, const struct vd_load_profile *p,
			   const struct vd_load_result *r);

/* Whether results can be written to PATH, checked before a load runs: its
 * directory exists, it is not a directory, it may be written, and it is not
 * the file INPUT (the profile; may be NULL) names, by device and inode (a
 * symlink or another name for it too). Leaves nothing behind. Returns 0, or
 * -1 with err (VD_EXIT_INPUT, "cannot write 'PATH': Is a directory"). */
int vd_load_output_check(const char *path, const char *input, struct vd_error *err);

/* results.json: the summary and a per-second timeline. Refuses to write
 * over p->file, as vd_load_output_check() does. */
int vd_load_write_json(const char *path, const struct vd_load_profile *p,
		       const struct vd_load_result *r, struct vd_error *err);

/* One self-contained HTML page with SVG charts (requests/s, response time
 * percentiles, users) from a results.json. An input that cannot be read or
 * is not a results file, and an output that cannot be written or is the
 * input itself (by device and inode), are -1 with err = VD_EXIT_INPUT. */
int vd_load_report_html(const char *json_path, const char *html_path, struct vd_error *err);

#endif
