/*
 * The autoscaler's policy (vd/autoscale.h): Little's law over two windows,
 * with latency and queue as guards, a tolerance, a cooldown each way, the
 * manifest's bounds and the node's room. Pure: numbers in, a decision and
 * its reason in words out.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "vd/autoscale.h"

#define DEFAULT_UTILISATION 0.7
#define DEFAULT_TOLERANCE 0.1
#define DEFAULT_UP_COOLDOWN_MS 0 /* replicas starting already hold a spike's second step back */
#define DEFAULT_DOWN_COOLDOWN_MS 30000

/* What one window asks for, and why: X replicas' worth of work, N whole. */
struct want {
	double x;
	int n;
	enum vd_autoscale_reason reason;
	char why[128];
};

void
vd_autoscale_policy_defaults(struct vd_autoscale_policy *p)
{
	*p = (struct vd_autoscale_policy){
		.min = 1,
		.max = 1,
		.utilisation = DEFAULT_UTILISATION,
		.tolerance = DEFAULT_TOLERANCE,
		.up_cooldown_ms = DEFAULT_UP_COOLDOWN_MS,
		.down_cooldown_ms = DEFAULT_DOWN_COOLDOWN_MS,
	};
}

const char *
vd_autoscale_reason_name(enum vd_autoscale_reason r)
{
	static const char *const names[] = {
		[VD_AS_STEADY] = "steady",	 [VD_AS_UP_LOAD] = "load",
		[VD_AS_UP_LATENCY] = "latency",	 [VD_AS_UP_QUEUE] = "queue",
		[VD_AS_UP_FROM_ZERO] = "from zero", [VD_AS_DOWN] = "down",
		[VD_AS_TO_ZERO] = "to zero",	 [VD_AS_BOUNDS] = "bounds",
		[VD_AS_COOLDOWN] = "cooldown",	 [VD_AS_STARTING] = "starting",
		[VD_AS_NODE_FULL] = "node full",
	};

	return (unsigned)r < sizeof(names) / sizeof(names[0]) && names[r] ? names[r] : "?";
}

static void
window_of(const struct vd_signals_window *w, struct vd_autoscale_window *out)
{
	out->rate = w->rate;
	out->service_s = w->service_ms / 1000;
	out->queue = w->queue;
	out->p95_ms = w->completions > 0 ? (int64_t)(w->p95_ms + 0.5) : 0;
	if (out->p95_ms == 0 && w->completions > 0)
		out->p95_ms = 1;
	out->arrivals = (uint64_t)(w->arrivals + 0.5);
}

void
vd_autoscale_windows(const struct vd_signals_window *up, const struct vd_signals_window *step,
		     const struct vd_signals_window *down, struct vd_autoscale_input *in)
{
	double expect = up->rate * step->seconds;

	window_of(up, &in->up);
	window_of(down, &in->down);
	/* the last second counts when its arrivals are beyond the noise of the
	 * short window's mean (three standard deviations of a Poisson count):
	 * 10 a second with a 16 in one second is no step, 10 then 150 is */
	if (step->seconds > 0 && step->arrivals > expect + 3 * sqrt(expect))
		in->up.rate = step->rate;
}

int
vd_autoscale_count(double x)
{
	if (!(x > 1e-9))
		return 0;
	if (x > 1e6)
		return 1000000;
	return (int)ceil(x - 1e-9);
}

/* The replicas window W wants with READY in the balancer; GUARDS: with the
 * latency and queue guards (the short window's: the long one would keep a
 * spike's slow requests, and its replicas, for its whole length). */
static void
window_wants(const struct vd_autoscale_policy *p, const struct vd_autoscale_window *w, int ready,
	     bool guards, struct want *out)
{
	int per = p->per_replica > 0 ? p->per_replica : 1;
	double util = p->utilisation > 0 && p->utilisation <= 1 ? p->utilisation : 1;
	double inservice = w->rate * w->service_s;
	int base = ready > 0 ? ready : 1;

	out->x = inservice / (per * util);
	out->reason = VD_AS_UP_LOAD;
	snprintf(out->why, sizeof(out->why),
		 "%.1f req/s x %.3f s = %.1f in service, target %.2g x %d per replica", w->rate,
		 w->service_s, inservice, util, per);
	if (guards && p->target_p95_ms > 0 && w->p95_ms > p->target_p95_ms) {
		double x = (double)base * (double)w->p95_ms / (double)p->target_p95_ms;

		if (x > out->x) {
			out->x = x;
			out->reason = VD_AS_UP_LATENCY;
			snprintf(out->why, sizeof(out->why), "p95 %lld ms over target %lld ms",
				 (long long)w->p95_ms, (long long)p->target_p95_ms);
		}
	}
	if (guards && p->target_queue > 0 && ready > 0 && w->queue / ready > p->target_queue) {
		double x = w->queue / p->target_queue;

		if (x > out->x) {
			out->x = x;
			out->reason = VD_AS_UP_QUEUE;
			snprintf(out->why, sizeof(out->why),
				 "%.1f queued per replica over target %.1f", w->queue / ready,
				 p->target_queue);
		}
	}
	out->n = vd_autoscale_count(out->x);
}

/*
 * Is W's work outside the tolerance of HAVE replicas' worth (as HPA's
 * tolerance: on the ratio, not on whole replicas)? Without it a load that
 * needs 3.0 replicas' worth and wavers by 5% would flap between 3 and 4.
 */
static bool
above(const struct vd_autoscale_policy *p, int have, const struct want *w)
{
	return w->n > have && w->x > have * (1 + (p->tolerance > 0 ? p->tolerance : 0));
}

static bool
below(const struct vd_autoscale_policy *p, int have, const struct want *w)
{
	return w->n < have && w->x < have * (1 - (p->tolerance > 0 ? p->tolerance : 0));
}

static int64_t
left_s(int64_t since_ms, int64_t cooldown_ms, int64_t now_ms)
{
	int64_t left = since_ms + cooldown_ms - now_ms;

	return left > 0 ? (left + 999) / 1000 : 0;
}

/*
 * A change held back (REASON: WHAT says why): the count stays, unless it is
 * outside min..max (the bounds were changed), which no hold keeps it from
 * leaving.
 */
static void
hold(const struct vd_autoscale_policy *p, int have, enum vd_autoscale_reason reason,
     const char *what, struct vd_autoscale_decision *out)
{
	int to = have < p->min ? p->min : have > p->max ? p->max : have;

	out->desired = to;
	out->reason = to == have ? reason : VD_AS_BOUNDS;
	if (to == have)
		snprintf(out->why, sizeof(out->why), "%d: %s", have, what);
	else
		snprintf(out->why, sizeof(out->why), "%d -> %d: %s %d (%s)", have, to,
			 to > have ? "min" : "max", to, what);
}

void
vd_autoscale_decide(const struct vd_autoscale_policy *p, const struct vd_autoscale_input *in,
		    struct vd_autoscale_decision *out)
{
	int have = in->ready + in->starting;
	int64_t last = in->last_up_ms > in->last_down_ms ? in->last_up_ms : in->last_down_ms;
	struct want up, down;
	char why[160], held[256];
	int want;

	window_wants(p, &in->up, in->ready, true, &up);
	window_wants(p, &in->down, in->ready, false, &down);
	if (down.x < up.x) /* the short window keeps what it wants */
		down = up;
	out->reason = VD_AS_STEADY;
	snprintf(why, sizeof(why), "%s", up.why);
	want = have;
	if (have == 0) {
		if (in->up.arrivals > 0 || in->down.arrivals > 0 || in->up.queue > 0) {
			want = up.n > 1 ? up.n : 1;
			out->reason = VD_AS_UP_FROM_ZERO;
			snprintf(why, sizeof(why), "%llu requests arrived with no replica",
				 (unsigned long long)(in->up.arrivals ? in->up.arrivals
								      : in->down.arrivals));
		}
	} else if (above(p, have, &up)) {
		want = up.n;
		out->reason = up.reason;
		snprintf(why, sizeof(why), "%s", up.why);
	} else if (below(p, have, &down)) {
		want = down.n;
		out->reason = VD_AS_DOWN;
		snprintf(why, sizeof(why), "%s", down.why);
		if (want == 0 && in->down.arrivals > 0) {
			want = 1;
		} else if (want == 0) {
			out->reason = VD_AS_TO_ZERO;
			snprintf(why, sizeof(why), "no request over the down window");
		}
	}
	out->wanted = want;
	out->desired = want;

	/* cooldowns, and replicas still starting */
	if (want > have && out->reason != VD_AS_UP_FROM_ZERO && in->last_up_ms &&
	    in->now_ms - in->last_up_ms < p->up_cooldown_ms) {
		snprintf(held, sizeof(held), "wants %d (%s), scale-up cooldown %llds left", want,
			 why, (long long)left_s(in->last_up_ms, p->up_cooldown_ms, in->now_ms));
		hold(p, have, VD_AS_COOLDOWN, held, out);
		return;
	}
	if (want < have && in->starting > 0) {
		snprintf(held, sizeof(held), "wants %d (%s), %d still starting", want, why,
			 in->starting);
		hold(p, have, VD_AS_STARTING, held, out);
		return;
	}
	if (want < have && last && in->now_ms - last < p->down_cooldown_ms) {
		snprintf(held, sizeof(held), "wants %d (%s), scale-down cooldown %llds left", want,
			 why, (long long)left_s(last, p->down_cooldown_ms, in->now_ms));
		hold(p, have, VD_AS_COOLDOWN, held, out);
		return;
	}

	/* the manifest's bounds, then the node's room */
	if (out->desired < p->min || out->desired > p->max) {
		int bound = out->desired < p->min ? p->min : p->max;
		size_t len = strlen(why);

		snprintf(why + len, sizeof(why) - len, "; %s %d",
			 out->desired < p->min ? "min" : "max", bound);
		out->reason = VD_AS_BOUNDS;
		out->desired = bound;
	}
	if (in->room >= 0 && out->desired > have && out->desired > in->room) {
		int fit = in->room > have ? in->room : have;

		if (fit == have)
			snprintf(out->why, sizeof(out->why), "%d: wants %d (%s), the node holds %d",
				 have, out->desired, why, in->room);
		else
			snprintf(out->why, sizeof(out->why), "%d -> %d: wants %d (%s), the node "
				 "holds %d", have, fit, out->desired, why, in->room);
		out->desired = fit;
		out->reason = VD_AS_NODE_FULL;
		return;
	}
	if (out->desired == have) {
		if (out->reason != VD_AS_BOUNDS)
			out->reason = VD_AS_STEADY;
		snprintf(out->why, sizeof(out->why), "%d: %s", have, why);
	} else {
		snprintf(out->why, sizeof(out->why), "%d -> %d: %s", have, out->desired, why);
	}
}
