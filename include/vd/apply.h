/*
 * Apply: make the engines match a set of desired services.
 *
 * The steps, in order, each before anything changes: observe every vdctl
 * replica (the backends the services use must answer; others are asked when
 * they answer, for services that moved and for prune), make the plan, check
 * it against the node's capacity. Then, unless it is a dry run, record the desired
 * state (so a crash leaves it for the next run or the controller) and run
 * the plan. A second apply of the same manifest finds nothing to do and
 * makes no call that changes anything.
 */
#ifndef VD_APPLY_H
#define VD_APPLY_H

#include <stdbool.h>
#include <stdio.h>

#include "vd/driver.h"
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
	struct vd_reconcile_opts run;
	FILE *out;              /* the plan, progress and summary */
};

struct vd_apply_result {
	bool changed; /* the plan had actions (for diff's exit status) */
	struct vd_reconcile_result run;
};

/* Desired services from a manifest: each service's identity is the real
 * path of its file, or identities[i] when given. *out is an array to
 * free(); its entries point into m and identities. */
int vd_desired_from_manifest(const struct vd_manifest *m, char *const *identities,
			     struct vd_desired **out, char ***idents_out, struct vd_error *err);

/* Free what vd_desired_from_manifest() made. */
void vd_desired_free(struct vd_desired *want, char **idents, size_t n);

/* Every vdctl replica on the backends: those in `required` (a bitmask of
 * 1 << enum vd_backend) must answer (else VD_EXIT_ENGINE); the others are
 * listed when they answer. */
int vd_observe(const struct vd_node_config *node, unsigned required,
	       struct vd_replica_list *out, struct vd_error *err);

/* The same, asking only the backends in required | asked (bitmasks as
 * above): a backend not asked is not even loaded. */
int vd_observe_some(const struct vd_node_config *node, unsigned required, unsigned asked,
		    struct vd_replica_list *out, struct vd_error *err);

/* Refuse (VD_EXIT_INPUT, with the numbers and who asks) when the services,
 * the replicas of other services that stay and the surge replicas of PLAN
 * need more CPUs or memory than the node has and than runs now. */
int vd_capacity_check(const struct vd_node_config *node, unsigned backends,
		      const struct vd_desired *want, size_t nwant,
		      const struct vd_replica_list *have, const struct vd_plan *plan, bool prune,
		      struct vd_error *err);

/* Apply WANT. Returns 0 when the engines now match, -1 with err otherwise. */
int vd_apply(const struct vd_desired *want, size_t nwant, const struct vd_apply_opts *opts,
	     struct vd_apply_result *res, struct vd_error *err);

/* Remove every replica of SERVICES, and forget them in the state
 * directory. */
int vd_delete_services(const char *const *services, size_t n, const struct vd_apply_opts *opts,
		       struct vd_apply_result *res, struct vd_error *err);

#endif
