/*
 * Plans: from desired services and the replicas the engines hold to an
 * ordered list of actions. Pure code: no engine, no clock, no I/O.
 *
 * A plan is a list of phases. The actions of a phase are independent and run
 * in parallel; when a phase made or started replicas, the executor waits for
 * them to pass their health check before the next phase begins. That is what
 * makes a rolling replacement safe:
 *
 *   phase 1   create new replicas for new indices, start stopped ones,
 *             resize live, and create max_surge temporary replicas of the new
 *             spec (indices past the service's range) for each service that
 *             is being replaced
 *   phase 2.. replace old replicas in place, max_surge + max_unavailable at a
 *             time per service: remove the old one, create the new one at the
 *             same index
 *   last      remove what is not wanted: scale-down (highest indices first),
 *             the temporary replicas, leftovers on another engine, and with
 *             prune the services no longer declared
 *
 * So serving capacity never drops below replicas - max_unavailable, indices
 * stay stable, and a plan made again after a crash at any point converges.
 */
#ifndef VD_PLAN_H
#define VD_PLAN_H

#include <stdbool.h>
#include <stdio.h>

#include "vd/manifest.h"
#include "vd/replica.h"
#include "vd/state.h"

#define VD_SPEC_HASH_LEN 16

/* A service apply wants, with its identity and where it goes. */
struct vd_desired {
	const struct vd_service *svc;
	const char *manifest;                 /* identity of the manifest that declares it */
	char spec_hash[VD_SPEC_HASH_LEN + 1]; /* vd_plan_spec_hash(svc) */
	const char *engine;                   /* the engine its replicas run on (placement) */
	/* what its manifest declared, when a command (scale, resize) changes it
	 * from that; NULL: svc is the manifest's (vd/state.h) */
	const struct vd_state_declared *declared;
};

enum vd_action_kind {
	VD_ACT_CREATE,  /* make and start replica `index` of `want` */
	VD_ACT_START,   /* start `have`, which is stopped but up to date */
	VD_ACT_RESIZE,  /* change `have`'s limits live to those of `want` */
	VD_ACT_REPLACE, /* remove `have`, then create `index` of `want` in its place */
	VD_ACT_REMOVE,  /* remove `have` */
};

enum vd_reason {
	VD_WHY_NEW,        /* an index the engines do not have */
	VD_WHY_STOPPED,    /* it exists but does not run */
	VD_WHY_LIMITS,     /* cpus or memory changed */
	VD_WHY_SPEC,       /* anything else changed (image, command, ...) */
	VD_WHY_CEILING,    /* limits changed beyond what a live resize can reach */
	VD_WHY_DEAD,       /* the engine reports it dead */
	VD_WHY_SURGE,      /* a temporary replica for a rolling replacement */
	VD_WHY_SURGE_DONE, /* that temporary replica, no longer needed */
	VD_WHY_SCALE_DOWN, /* an index past the desired count */
	VD_WHY_ENGINE,     /* the service moved to another engine */
	VD_WHY_PRUNE,      /* its service is no longer declared (--prune) */
	VD_WHY_DELETE,     /* its service is being deleted */
};

struct vd_action {
	enum vd_action_kind kind;
	enum vd_reason reason;
	const struct vd_desired *want; /* NULL for REMOVE */
	int index;                     /* the replica index acted on */
	const struct vd_replica *have; /* NULL for CREATE */
};

struct vd_phase {
	struct vd_action *v;
	size_t n;
};

struct vd_plan {
	struct vd_phase *phases;
	size_t nphases;
	/* the summary apply prints */
	int created, started, resized, replaced, removed, unchanged;
	/* services the engines hold that no manifest given declares, left alone
	 * without prune; strings point into the observed list */
	const char **undeclared;
	size_t nundeclared;
};

struct vd_plan_opts {
	bool prune; /* remove replicas of undeclared services of these manifests */
};

/* The hash of what a replica is made from, less its cpus and memory (those
 * are compared on their own: they can change live). 16 hex digits. */
void vd_plan_spec_hash(const struct vd_service *svc, char out[VD_SPEC_HASH_LEN + 1]);

/*
 * Plan how to go from HAVE (every vdctl replica the engines hold, on every
 * engine listed) to WANT, whose services are placed (each names its
 * engine). The plan points into want and have, which must
 * outlive it. Returns 0, or -1 when out of memory.
 */
int vd_plan_make(const struct vd_desired *want, size_t nwant, const struct vd_replica_list *have,
		 const struct vd_plan_opts *opts, struct vd_plan *out, struct vd_error *err);

void vd_plan_clear(struct vd_plan *plan);

/* The entry of WANT (N of them) for SERVICE, or NULL. */
const struct vd_desired *vd_plan_find(const struct vd_desired *want, size_t n,
				      const char *service);

/* True when the plan changes nothing. */
bool vd_plan_empty(const struct vd_plan *plan);

/* What a RESIZE action changes, as people read it: "cpus 0.5 -> 0.25",
 * "memory 128 MiB -> 256 MiB", or both; what stays is not shown. */
void vd_plan_resize_text(const struct vd_action *a, char *buf, size_t size);

/* One line per action, by phase, as `vdctl diff` and `--dry-run` show it. */
void vd_plan_print(const struct vd_plan *plan, FILE *f);

/* The words for a reason and an action ("scale down", "create"). */
const char *vd_plan_reason_name(enum vd_reason r);
const char *vd_plan_action_name(enum vd_action_kind k);

#endif
