/*
 * Apply: make the engines match a set of desired services.
 *
 * The steps, in order, each before anything changes: place each service on
 * an engine (vd/engine.h), observe every vdctl replica of the engines the
 * pass needs (those the services go to must answer; those they were
 * recorded on before are asked when they answer, for services that moved
 * and for prune), make the plan, check it against each node's capacity.
 * Then, unless it is a dry run, record the desired state (so a crash leaves
 * it for the next run or the controller) and run the plan. A second apply
 * of the same manifest finds nothing to do and makes no call that changes
 * anything.
 *
 * When a controller runs for the state directory, it is the one that makes
 * engine calls: vd_apply_anywhere() hands the work to it over its control
 * socket and prints the progress it streams back.
 */
#ifndef VD_APPLY_H
#define VD_APPLY_H

#include <stdbool.h>
#include <stdio.h>

#include "vd/engine.h"
#include "vd/manifest.h"
#include "vd/plan.h"
#include "vd/reconcile.h"

struct vd_apply_opts {
	const struct vd_node_config *node;
	const char *state_dir;  /* where desired state is recorded; NULL = do not record */
	bool dry_run;           /* plan and print, change nothing */
	bool prune;             /* remove services no longer declared by these manifests */
	bool overcommit;        /* apply even beyond the node's capacity */
	bool quiet_undeclared;  /* do not mention services declared elsewhere */
	const char *verb;       /* what the summary calls the command: "scale"; NULL = "apply" */
	bool must_exist;        /* delete: a service neither recorded nor held is an
				   error (exit 2, nothing removed) */
	struct vd_reconcile_opts run; /* its engines are apply's own */
	FILE *out;              /* the plan, progress and summary */
};

struct vd_apply_result {
	bool changed; /* the plan had actions (for diff's exit status) */
	bool refused; /* a dry run: apply would refuse it (over capacity) */
	struct vd_reconcile_result run;
};

/* Desired services from a manifest: each service's identity is the real
 * path of its file, or identities[i] when given. *out is an array to
 * free with vd_apply_desired_free(); its entries point into m and into
 * *idents_out. Not placed yet (engine NULL). */
int vd_apply_desired(const struct vd_manifest *m, char *const *identities,
		     struct vd_desired **out, char ***idents_out, struct vd_error *err);
void vd_apply_desired_free(struct vd_desired *want, char **idents, size_t n);

/* Placement: the engine each service's replicas go to (today the engine of
 * its backend); -1 (exit 2) when none is configured. */
int vd_apply_place(struct vd_desired *want, size_t n, struct vd_engines *es,
		   struct vd_error *err);

/* Apply WANT here. Returns 0 when the engines now match, -1 with err
 * otherwise. */
int vd_apply(const struct vd_desired *want, size_t nwant, const struct vd_apply_opts *opts,
	     struct vd_apply_result *res, struct vd_error *err);

/* Remove every replica of SERVICES, and forget them in the state
 * directory. */
int vd_apply_delete(const char *const *services, size_t n, const struct vd_apply_opts *opts,
		    struct vd_apply_result *res, struct vd_error *err);

/* The same two, handed to the state directory's controller when one runs
 * (a dry run only reads, so it stays here); res is then zero. */
int vd_apply_anywhere(const struct vd_desired *want, size_t nwant,
		      const struct vd_apply_opts *opts, struct vd_apply_result *res,
		      struct vd_error *err);
int vd_apply_delete_anywhere(const char *const *services, size_t n,
			     const struct vd_apply_opts *opts, struct vd_apply_result *res,
			     struct vd_error *err);

#endif
