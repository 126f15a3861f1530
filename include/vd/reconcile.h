/*
 * Reconcile: run a plan against the engines.
 *
 * Phases run in order. Within a phase, up to `parallel` actions run at once,
 * each worker thread with its own connections to the engines the actions
 * name (vd/engine.h). Replicas a phase made
 * or started must pass their health check before the next phase begins (and,
 * with `wait`, after the last one). One progress line per replica is printed
 * as it happens. A failed action does not stop the others of its phase, but
 * no later phase runs: a rolling replacement never goes on past a replica
 * that did not come up.
 *
 * Nothing here keeps state of its own: killed at any point, the next plan
 * made from what the engines hold finishes the work.
 */
#ifndef VD_RECONCILE_H
#define VD_RECONCILE_H

#include <stdbool.h>
#include <stdio.h>

#include "vd/engine.h"
#include "vd/plan.h"

struct vd_reconcile_opts {
	struct vd_engines *engines; /* where the plan's replicas are (actions name them) */
	int parallel;       /* engine calls at once; 0 = 8 */
	bool wait;          /* wait for the last phase's replicas to be healthy */
	int64_t timeout_ms; /* for each health wait; 0 = 120 s */
	int stop_grace_s;   /* graceful stop before a removal; < 0 = 10 s */
	FILE *progress;     /* progress lines, or NULL */
	const char *record_dir; /* a state directory: why a replica could not be made is
				   noted there (vd_state_note_failure); NULL = nowhere */
	/* Called (from a worker thread) before a running replica is stopped
	 * for removal or replacement, so traffic can leave it first; ID is the
	 * engine id, or the name for a surge replica this run made. */
	void (*before_remove)(void *arg, const char *name, const char *id);
	/* Called (from a worker thread) once a replica this run made or started
	 * runs, before its health is known. */
	void (*on_started)(void *arg, const struct vd_replica *r);
	void *hook_arg;
};

struct vd_reconcile_result {
	int created, started, resized, replaced, removed, failed;
	double seconds;
};

/* Run PLAN. Returns 0 when every action succeeded (and every replica waited
 * for became healthy); -1 with err summarising what failed. */
int vd_reconcile_run(const struct vd_plan *plan, const struct vd_reconcile_opts *opts,
		     struct vd_reconcile_result *res, struct vd_error *err);

/* Check that each of N running replicas answers as its service's health
 * says, waiting (opts->timeout_ms) for those that do not yet. Only those
 * that were not healthy at once are printed. */
int vd_reconcile_wait(const struct vd_replica *const *reps, const struct vd_service *const *svcs,
		      size_t n, const struct vd_reconcile_opts *opts,
		      struct vd_reconcile_result *res, struct vd_error *err);

#endif
