/*
 * The autoscaler's policy: how many replicas a service wants, from what its
 * balancer saw. A pure function of its input (no clock, no engine, no
 * allocation), so that the controller, a simulator and the unit tests all
 * run the same code on live or synthetic numbers.
 *
 * The rule is Little's law: the requests in service at once are the arrival
 * rate times the service time, and a replica holds `per_replica` of them
 * (the balancer's max_inflight: the sync worker count) at the target
 * utilisation; so
 *
 *     replicas = ceil(rate x service time / (per_replica x utilisation))
 *
 * Latency and queue are guards: a p95 above target_p95, or more than
 * target_queue requests queued per replica, asks for at least as many more
 * replicas in proportion. Two windows, as Knative's autoscaler has: the
 * short one (up_window) may only add, the long one (down_window) alone may
 * remove, and never below what the short one wants. Replicas still starting
 * count as capacity coming, so one spike makes one scale-up. The tolerance
 * is on the ratio of the work to the replicas there are (as HPA's): 3.2
 * replicas' worth of work on 3 is no change. Each direction has its own
 * cooldown (a scale-down's runs from the last change either way); min and
 * max bound the answer (a count outside them, after they changed, goes
 * inside whatever else holds a change back), and the node's room (when
 * known) bounds a scale-up, which the decision then says.
 */
#ifndef VD_AUTOSCALE_H
#define VD_AUTOSCALE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vd/signals.h"

/* What a service asks of the autoscaler: the manifest's keys, defaults
 * applied (vd_autoscale_policy_defaults). */
struct vd_autoscale_policy {
	int min, max;
	int64_t target_p95_ms; /* 0 = no latency guard */
	double target_queue;   /* queued requests per replica; 0 = no queue guard */
	double utilisation;    /* of a replica's concurrency, in (0, 1] */
	double tolerance;      /* a relative change below this is not made */
	int64_t up_cooldown_ms, down_cooldown_ms;
	int per_replica; /* requests a replica serves at once; 0 = unknown (1) */
};

/* The defaults: utilisation 0.7, tolerance 0.1, no cooldown up, 30 s down;
 * min and max 1. */
void vd_autoscale_policy_defaults(struct vd_autoscale_policy *p);

/* What the balancer saw over one window. */
struct vd_autoscale_window {
	double rate;       /* arrivals per second */
	double service_s;  /* mean service time (response time less queue wait) */
	double queue;      /* time-weighted mean of requests queued */
	int64_t p95_ms;    /* response time p95; 0 = no response in the window */
	uint64_t arrivals; /* requests that arrived in it */
};

struct vd_autoscale_input {
	int64_t now_ms;
	int ready;    /* replicas in the balancer */
	int starting; /* replicas made and not yet ready: capacity coming */
	struct vd_autoscale_window up, down; /* the short window and the long one */
	int64_t last_up_ms, last_down_ms;    /* when it last scaled each way; 0 = never */
	int room;                            /* the most replicas the node holds; -1 = unknown */
};

enum vd_autoscale_reason {
	VD_AS_STEADY,        /* no change wanted (or within the tolerance) */
	VD_AS_UP_LOAD,       /* more requests in service than the replicas hold */
	VD_AS_UP_LATENCY,    /* p95 over target_p95 */
	VD_AS_UP_QUEUE,      /* queue over target_queue per replica */
	VD_AS_UP_FROM_ZERO,  /* requests arrived with no replica */
	VD_AS_DOWN,          /* the long window needs fewer */
	VD_AS_TO_ZERO,       /* no arrival over the long window, and min is 0 */
	VD_AS_BOUNDS,        /* min or max set the count */
	VD_AS_COOLDOWN,      /* a change is wanted but its cooldown runs */
	VD_AS_STARTING,      /* fewer wanted, but replicas are still starting */
	VD_AS_NODE_FULL,     /* more wanted than the node holds */
};

struct vd_autoscale_decision {
	int desired; /* replicas ready + starting to have (== ready + starting: no change) */
	int wanted;  /* what the policy asked before cooldown, bounds and room */
	enum vd_autoscale_reason reason;
	char why[320]; /* the reason with its numbers, e.g. "3 -> 5: 46.0 req/s x 0.210 s
			* = 9.7 in service, target 0.7 x 2 per replica" */
};

/* The last seconds of load, where a step shows long before it moves the
 * short window's mean. */
#define VD_AUTOSCALE_STEP_MS 1000

/* IN's two windows from a balancer's signals (vd/signals.h) over the short
 * window UP, its last VD_AUTOSCALE_STEP_MS (STEP) and the long window DOWN:
 * the short window's rate is STEP's when STEP's arrivals are beyond the
 * noise of UP's mean (three standard deviations of a Poisson count), so a
 * step in load is answered within a second or two and a busy second of a
 * steady load is not; p95 is 0 with no response in the window. The controller and the simulator both read the
 * balancer this way. */
void vd_autoscale_windows(const struct vd_signals_window *up, const struct vd_signals_window *step,
			  const struct vd_signals_window *down, struct vd_autoscale_input *in);

/* The decision for IN under P. */
void vd_autoscale_decide(const struct vd_autoscale_policy *p, const struct vd_autoscale_input *in,
			 struct vd_autoscale_decision *out);

/* X replicas' worth of work as a whole count: ceil(X), with the rounding
 * noise of floating point left out (2.0000000001 is 2); at most 1000000. */
int vd_autoscale_count(double x);

/* A reason in words: "load", "latency", ... */
const char *vd_autoscale_reason_name(enum vd_autoscale_reason r);

#endif
