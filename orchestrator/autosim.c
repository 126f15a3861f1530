/*
 * The autoscaling simulator (vd/autosim.h): one service as a queueing
 * model, run a request at a time under vdctl's policy, models of HPA and
 * KPA, or a fixed count.
 *
 * The clock jumps from event to event: the next arrival, the next end of a
 * service, the next replica ready, the next queue timeout, the next whole
 * second (where policies decide). At one instant they are taken in that
 * order but the second first, so a decision at t sees what happened before
 * t, and a slot freed at t serves a request that arrives or would time out
 * at t. Between events the levels (queued, in service, replicas) are
 * integrated into the seconds they span, for the time-weighted means the
 * HPA and KPA models read; vdctl's policy reads its windows from the
 * balancer's own signal ring (vd/signals.h), fed as the balancer feeds it,
 * so its input is built by the code the controller reads.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vd/autoscale.h"
#include "vd/autosim.h"
#include "vd/signals.h"
#include "vd/units.h"

#define DEFAULT_PER_REPLICA 1
#define DEFAULT_START_DELAY_MS 500
#define DEFAULT_QUEUE_TIMEOUT_MS 60000 /* the balancer's */
#define DEFAULT_MIN 1
#define DEFAULT_MAX 10 /* the manifest's */
#define DEFAULT_UP_WINDOW_MS 10000
#define DEFAULT_DOWN_WINDOW_MS 120000
#define DEFAULT_HPA_LAG_MS 15000
#define MAX_PER_REPLICA 100000
#define MAX_DELAY_MS (3600 * 1000)

/*
 * The HPA model, after the algorithm in Kubernetes' documentation
 * (kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/,
 * "Algorithm details"): every 15 s (--horizontal-pod-autoscaler-sync-
 * period), desired = ceil(current x currentMetric / target), no change when
 * the ratio is within 10% of 1; pods not yet ready count as 0% when that
 * scales up, and are set aside when it scales down; a scale-down takes the
 * highest recommendation of the last 300 s (the default stabilization
 * window); the default rate limits: up by 100% or 4 pods a period,
 * whichever is more, down by 100%. The metric is CPU utilisation, which
 * here is busy slots over the ready replicas' slots: the queue is not CPU,
 * so a saturated replica reads 100% however long its queue.
 *
 * Its pipeline: metrics-server scrapes every 15 s (--metric-resolution)
 * a rate the kubelet averages over its own window, so the HPA reads at t
 * the mean over [t - lag - 15 s, t - lag), lag 15 s by default
 * (config.hpa_lag_ms): a metric 15 to 30 s old.
 */
#define HPA_PERIOD_S 15
#define HPA_METRIC_S 15
#define HPA_TOLERANCE 0.1
#define HPA_DOWN_STABILIZATION_S 300
#define HPA_UP_PODS 4

/*
 * The KPA model, after Knative Serving's autoscaler (pkg/autoscaler/scaling
 * /autoscaler.go and its documented defaults): every 2 s (tick-interval),
 * observed concurrency (requests in service and waiting: the queue-proxy
 * and the activator count both) averaged over the stable window (60 s)
 * and the panic window (10% of it, 6 s); desired = ceil(concurrency /
 * (per_replica x 0.7)) for each; at most 1000x the ready pods up and half
 * of them down (max-scale-up-rate, max-scale-down-rate); panic when the
 * panic window's count is at least 200% of the ready pods: then the larger
 * of the two counts, never lower than the highest while panicking, until
 * 60 s pass without the threshold crossed. scale-down-delay 0.
 */
#define KPA_PERIOD_S 2
#define KPA_STABLE_S 60
#define KPA_PANIC_S 6
#define KPA_PANIC_THRESHOLD 2.0
#define KPA_MAX_UP_RATE 1000.0
#define KPA_MAX_DOWN_RATE 2.0

#define RECOVER_HOLD_S 5 /* seconds on end under the target */
#define STEP_SPAN 5      /* seconds averaged on each side of a step */

/* ============================================================ the config */

void
vd_autosim_config_defaults(struct vd_autosim_config *c)
{
	struct vd_autoscale_policy p;

	vd_autoscale_policy_defaults(&p);
	*c = (struct vd_autosim_config){
		.per_replica = DEFAULT_PER_REPLICA,
		.start_delay_ms = DEFAULT_START_DELAY_MS,
		.queue_timeout_ms = DEFAULT_QUEUE_TIMEOUT_MS,
		.min = DEFAULT_MIN,
		.max = DEFAULT_MAX,
		.utilisation = p.utilisation,
		.tolerance = p.tolerance,
		.target_queue = p.target_queue,
		.up_window_ms = DEFAULT_UP_WINDOW_MS,
		.down_window_ms = DEFAULT_DOWN_WINDOW_MS,
		.up_cooldown_ms = p.up_cooldown_ms,
		.down_cooldown_ms = p.down_cooldown_ms,
		.hpa_lag_ms = DEFAULT_HPA_LAG_MS,
		.seed = 1,
	};
}

static bool
service_ok(const struct vd_autosim_service *s)
{
	switch (s->dist) {
	case VD_AUTOSIM_DIST_FIXED:
	case VD_AUTOSIM_DIST_EXP:
		return isfinite(s->mean_s) && s->mean_s > 0 && s->mean_s <= 3600;
	case VD_AUTOSIM_DIST_QUANTILES:
		if (s->nq < 1 || s->nq > VD_AUTOSIM_MAX_QUANTILES)
			return false;
		for (size_t i = 0; i < s->nq; i++)
			if (!(s->q[i] >= 0 && s->q[i] <= 1) || !(s->value_s[i] >= 0) ||
			    s->value_s[i] > 3600 ||
			    (i && (s->q[i] <= s->q[i - 1] || s->value_s[i] < s->value_s[i - 1])))
				return false;
		return vd_autosim_service_mean(s) > 0;
	}
	return false;
}

static int
check_ms(const char *name, int64_t v, int64_t lo, int64_t hi, struct vd_error *err)
{
	char a[32], b[32];

	if (v >= lo && v <= hi)
		return 0;
	return vd_error_set(err, VD_EXIT_INPUT, "%s must be from %s to %s", name,
			    vd_units_format_duration_ms(lo, a, sizeof(a)),
			    vd_units_format_duration_ms(hi, b, sizeof(b)));
}

int
vd_autosim_check(const struct vd_autosim_config *c, struct vd_error *err)
{
	double total = 0;

	if (!c->rate || c->nsecs < 1)
		return vd_error_set(err, VD_EXIT_INPUT, "no second of load to simulate");
	if (c->nsecs > VD_AUTOSIM_MAX_SECONDS)
		return vd_error_set(err, VD_EXIT_INPUT, "%zu seconds of load: at most %d", c->nsecs,
				    VD_AUTOSIM_MAX_SECONDS);
	for (size_t i = 0; i < c->nsecs; i++) {
		if (!(c->rate[i] >= 0 && c->rate[i] <= VD_AUTOSIM_MAX_RATE))
			return vd_error_set(err, VD_EXIT_INPUT,
					    "second %zu: rate %g is not from "
					    "0 to %g",
					    i, c->rate[i], VD_AUTOSIM_MAX_RATE);
		total += c->rate[i];
	}
	if (total > VD_AUTOSIM_MAX_REQUESTS)
		return vd_error_set(err, VD_EXIT_INPUT, "%.0f requests in all: at most %.0f", total,
				    VD_AUTOSIM_MAX_REQUESTS);
	if (!service_ok(&c->service))
		return vd_error_set(err, VD_EXIT_INPUT,
				    "no valid service time (more than 0, at "
				    "most 1h)");
	if (c->per_replica < 1 || c->per_replica > MAX_PER_REPLICA)
		return vd_error_set(err, VD_EXIT_INPUT, "per_replica must be from 1 to %d",
				    MAX_PER_REPLICA);
	if (check_ms("start_delay", c->start_delay_ms, 0, MAX_DELAY_MS, err) < 0 ||
	    check_ms("queue_timeout", c->queue_timeout_ms, 1, MAX_DELAY_MS, err) < 0 ||
	    check_ms("target_p95", c->target_p95_ms, 1, MAX_DELAY_MS, err) < 0 ||
	    check_ms("up_window", c->up_window_ms, 1000, VD_SIG_MAX_SPAN_MS, err) < 0 ||
	    check_ms("down_window", c->down_window_ms, 1000, VD_SIG_MAX_SPAN_MS, err) < 0 ||
	    check_ms("up_cooldown", c->up_cooldown_ms, 0, MAX_DELAY_MS, err) < 0 ||
	    check_ms("down_cooldown", c->down_cooldown_ms, 0, MAX_DELAY_MS, err) < 0 ||
	    check_ms("hpa_lag", c->hpa_lag_ms, 0, MAX_DELAY_MS, err) < 0)
		return -1;
	if (c->min < 0 || c->min > VD_AUTOSIM_MAX_REPLICAS || c->max < 1 ||
	    c->max > VD_AUTOSIM_MAX_REPLICAS)
		return vd_error_set(err, VD_EXIT_INPUT, "min must be from 0 and max from 1 to %d",
				    VD_AUTOSIM_MAX_REPLICAS);
	if (c->min > c->max)
		return vd_error_set(err, VD_EXIT_INPUT, "min %d is more than max %d", c->min,
				    c->max);
	if (c->initial < 0 || c->initial > c->max)
		return vd_error_set(err, VD_EXIT_INPUT, "initial %d is not from 0 to max %d",
				    c->initial, c->max);
	if (!(c->utilisation > 0 && c->utilisation <= 1))
		return vd_error_set(err, VD_EXIT_INPUT,
				    "utilisation must be more than 0 and at "
				    "most 1");
	if (!(c->tolerance >= 0 && c->tolerance < 1))
		return vd_error_set(err, VD_EXIT_INPUT, "tolerance must be from 0 to less than 1");
	if (!(c->target_queue >= 0 && c->target_queue <= 1000000))
		return vd_error_set(err, VD_EXIT_INPUT, "target_queue must be from 0 to 1000000");
	return 0;
}

int
vd_autosim_needed(const struct vd_autosim_config *c, double rate)
{
	int per = c->per_replica > 0 ? c->per_replica : 1;
	int n = vd_autoscale_count(rate * vd_autosim_service_mean(&c->service) /
				   (per * c->utilisation));

	return n > c->min ? n : c->min;
}

long
vd_autosim_step(const double *rate, size_t n, double *from, double *to)
{
	double best = 0, bfrom = 0, bto = 0;
	long at = -1;

	for (size_t t = 1; t < n; t++) {
		size_t a = t >= STEP_SPAN ? t - STEP_SPAN : 0;
		size_t b = t + STEP_SPAN <= n ? t + STEP_SPAN : n;
		double before = 0, after = 0;

		for (size_t i = a; i < t; i++)
			before += rate[i];
		for (size_t i = t; i < b; i++)
			after += rate[i];
		before /= (double)(t - a);
		after /= (double)(b - t);
		if (after - before >= 1 && after - before > best) {
			best = after - before;
			bfrom = before;
			bto = after;
			at = (long)t;
		}
	}
	if (from)
		*from = bfrom;
	if (to)
		*to = bto;
	return at;
}

const char *
vd_autosim_policy_name(enum vd_autosim_policy p)
{
	static const char *const names[] = {
		[VD_AUTOSIM_VDCTL] = "vdctl",
		[VD_AUTOSIM_HPA] = "hpa",
		[VD_AUTOSIM_KPA] = "kpa",
		[VD_AUTOSIM_FIXED] = "fixed",
	};

	return (unsigned)p < VD_AUTOSIM_NPOLICIES ? names[p] : "?";
}

int
vd_autosim_policy_parse(const char *s)
{
	for (int p = 0; p < VD_AUTOSIM_NPOLICIES; p++)
		if (strcmp(s, vd_autosim_policy_name((enum vd_autosim_policy)p)) == 0)
			return p;
	return -1;
}

/* ======================================================= random numbers */

/* splitmix64: small, fast, and the same everywhere. */
static uint64_t
rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double
rng_unit(uint64_t *s)
{
	return (double)(rng_next(s) >> 11) * 0x1.0p-53;
}

/* Exponential with mean 1. */
static double
rng_exp(uint64_t *s)
{
	return -log1p(-rng_unit(s));
}

static double
service_draw(const struct vd_autosim_service *sv, uint64_t *rng)
{
	double u;
	size_t i;

	switch (sv->dist) {
	case VD_AUTOSIM_DIST_FIXED:
		return sv->mean_s;
	case VD_AUTOSIM_DIST_EXP:
		return sv->mean_s * rng_exp(rng);
	case VD_AUTOSIM_DIST_QUANTILES:
		u = rng_unit(rng);
		if (u <= sv->q[0])
			return sv->value_s[0];
		for (i = 1; i < sv->nq && u > sv->q[i]; i++)
			;
		if (i == sv->nq)
			return sv->value_s[sv->nq - 1];
		return sv->value_s[i - 1] + (sv->value_s[i] - sv->value_s[i - 1]) *
						    (u - sv->q[i - 1]) / (sv->q[i] - sv->q[i - 1]);
	}
	return sv->mean_s;
}

/* ========================================================== the model */

enum rep_state { REP_GONE, REP_STARTING, REP_READY, REP_DRAINING };

struct rep {
	enum rep_state state;
	double ready_at;
	int inflight;
};

struct waiting {
	double arrive, service;
};

struct job {
	double done, arrive, start;
	int rep;
};

/* Levels integrated over one second (level x seconds). */
struct sec {
	double queue;    /* requests waiting */
	double busy;     /* requests in service on ready replicas */
	double slots;    /* ready replicas x per_replica */
	double conc;     /* requests in service anywhere, and waiting */
	double replicas; /* starting, ready, and removed ones finishing */
};

struct sim {
	const struct vd_autosim_config *c;
	struct vd_autosim_result *r;
	double now, timeout_s;
	int per;
	/* arrivals: the next comes where the rate's integral reaches mark */
	uint64_t arng, srng;
	size_t asec;
	double acum, amark, next_arrival;
	/* the balancer's queue: a ring */
	struct waiting *q;
	size_t qcap, qhead, qlen;
	/* requests in service: a min-heap on done */
	struct job *h;
	size_t hlen, hcap;
	struct rep *reps;
	size_t nreps, repcap;
	int ready, starting, draining, busy_ready, inflight;
	double next_ready;
	struct sec *secs;
	/* the response times of the current second, for its p95 */
	double *resp;
	size_t nresp, respcap;
	long resp_sec;
	/* vdctl */
	struct vd_signals *sig;
	int64_t last_up_ms, last_down_ms;
	/* hpa: its recommendations, one a period */
	int *hpa_rec;
	long *hpa_t;
	size_t nhpa;
	/* kpa */
	long panic_since; /* -1: not panicking */
	int max_panic;
	size_t limit; /* give up when more seconds than this are over */
	bool oom, given_up;
};

static int64_t
us(double t)
{
	return (int64_t)llround(t * 1e6);
}

/* Credit the time from now to T, at the levels held since, to the seconds
 * it spans. */
static void
advance(struct sim *s, double t)
{
	while (s->now < t) {
		double sec = floor(s->now), end = sec + 1 < t ? sec + 1 : t, dt = end - s->now;
		struct sec *x;

		if (sec >= (double)s->c->nsecs) {
			s->now = t;
			break;
		}
		x = &s->secs[(size_t)sec];
		x->queue += (double)s->qlen * dt;
		x->busy += s->busy_ready * dt;
		x->slots += (double)s->ready * s->per * dt;
		x->conc += (s->inflight + (double)s->qlen) * dt;
		x->replicas += (s->ready + s->starting + s->draining) * dt;
		s->now = end;
	}
}

static void
level(struct sim *s)
{
	if (s->sig)
		vd_signals_level(s->sig, us(s->now), s->inflight, (int)s->qlen);
}

static double
next_arrival(struct sim *s)
{
	const double *rate = s->c->rate;

	while (s->asec < s->c->nsecs &&
	       (rate[s->asec] <= 0 || s->acum + rate[s->asec] < s->amark)) {
		s->acum += rate[s->asec];
		s->asec++;
	}
	if (s->asec >= s->c->nsecs)
		return INFINITY;
	return (double)s->asec + (s->amark - s->acum) / rate[s->asec];
}

static void
heap_push(struct sim *s, struct job j)
{
	size_t i;

	if (s->hlen == s->hcap) {
		size_t cap = s->hcap ? 2 * s->hcap : 64;
		struct job *h = realloc(s->h, cap * sizeof(*h));

		if (!h) {
			s->oom = true;
			return;
		}
		s->h = h;
		s->hcap = cap;
	}
	for (i = s->hlen++; i > 0 && s->h[(i - 1) / 2].done > j.done; i = (i - 1) / 2)
		s->h[i] = s->h[(i - 1) / 2];
	s->h[i] = j;
}

static struct job
heap_pop(struct sim *s)
{
	struct job top = s->h[0], last = s->h[--s->hlen];
	size_t i = 0, k;

	while ((k = 2 * i + 1) < s->hlen) {
		if (k + 1 < s->hlen && s->h[k + 1].done < s->h[k].done)
			k++;
		if (last.done <= s->h[k].done)
			break;
		s->h[i] = s->h[k];
		i = k;
	}
	if (s->hlen)
		s->h[i] = last;
	return top;
}

static void
enqueue(struct sim *s, struct waiting w)
{
	if (s->qlen == s->qcap) {
		size_t cap = s->qcap ? 2 * s->qcap : 256;
		struct waiting *q = malloc(cap * sizeof(*q));

		if (!q) {
			s->oom = true;
			return;
		}
		for (size_t i = 0; i < s->qlen; i++)
			q[i] = s->q[(s->qhead + i) % s->qcap];
		free(s->q);
		s->q = q;
		s->qcap = cap;
		s->qhead = 0;
	}
	s->q[(s->qhead + s->qlen++) % s->qcap] = w;
}

static struct waiting
dequeue(struct sim *s)
{
	struct waiting w = s->q[s->qhead];

	s->qhead = (s->qhead + 1) % s->qcap;
	s->qlen--;
	return w;
}

/* The ready replica with the fewest in service and a free slot (the
 * balancer's least-outstanding). */
static int
pick(const struct sim *s)
{
	int best = -1;

	for (size_t i = 0; i < s->nreps; i++) {
		const struct rep *p = &s->reps[i];

		if (p->state == REP_READY && p->inflight < s->per &&
		    (best < 0 || p->inflight < s->reps[best].inflight))
			best = (int)i;
	}
	return best;
}

/* Serve queued requests while a ready replica has a free slot. */
static void
dispatch(struct sim *s)
{
	while (s->qlen > 0 && s->busy_ready < s->ready * s->per && !s->oom) {
		int i = pick(s);
		struct waiting w;

		if (i < 0)
			break;
		w = dequeue(s);
		heap_push(s, (struct job){ s->now + w.service, w.arrive, s->now, i });
		s->reps[i].inflight++;
		s->busy_ready++;
		s->inflight++;
	}
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The current second's p95 (nearest rank), and forget its responses. */
static void
close_second(struct sim *s)
{
	if (s->resp_sec >= 0 && s->nresp > 0) {
		size_t rank = (size_t)ceil(0.95 * (double)s->nresp);

		qsort(s->resp, s->nresp, sizeof(*s->resp), cmp_double);
		s->r->p95_ms[s->resp_sec] = s->resp[(rank ? rank : 1) - 1] * 1000;
	}
	s->nresp = 0;
	s->resp_sec = -1;
}

/* A response TOTAL seconds after its arrival. */
static void
respond(struct sim *s, double total)
{
	double sec = floor(s->now);

	if (us(total) > s->c->target_p95_ms * 1000)
		s->r->over++;
	if (sec >= (double)s->c->nsecs)
		return;
	if ((long)sec != s->resp_sec) {
		close_second(s);
		s->resp_sec = (long)sec;
	}
	if (s->nresp == s->respcap) {
		size_t cap = s->respcap ? 2 * s->respcap : 256;
		double *v = realloc(s->resp, cap * sizeof(*v));

		if (!v) {
			s->oom = true;
			return;
		}
		s->resp = v;
		s->respcap = cap;
	}
	s->resp[s->nresp++] = total;
}

static void
find_next_ready(struct sim *s)
{
	s->next_ready = INFINITY;
	for (size_t i = 0; i < s->nreps; i++)
		if (s->reps[i].state == REP_STARTING && s->reps[i].ready_at < s->next_ready)
			s->next_ready = s->reps[i].ready_at;
}

/* ============================================================== events */

static void
on_arrival(struct sim *s)
{
	if (s->sig)
		vd_signals_arrive(s->sig, us(s->now));
	s->r->requests++;
	enqueue(s, (struct waiting){ s->now, service_draw(&s->c->service, &s->srng) });
	s->amark += s->c->poisson ? rng_exp(&s->arng) : 1;
	s->next_arrival = next_arrival(s);
	dispatch(s);
	level(s);
}

static void
on_done(struct sim *s)
{
	struct job j = heap_pop(s);
	struct rep *p = &s->reps[j.rep];

	p->inflight--;
	s->inflight--;
	if (p->state == REP_READY) {
		s->busy_ready--;
	} else if (p->state == REP_DRAINING && p->inflight == 0) {
		p->state = REP_GONE;
		s->draining--;
	}
	s->r->completed++;
	respond(s, s->now - j.arrive);
	if (s->sig)
		vd_signals_complete(s->sig, us(s->now), (uint64_t)us(j.start - j.arrive),
				    (uint64_t)us(s->now - j.arrive), 0);
	dispatch(s);
	level(s);
}

/* The queue's head waited queue_timeout: the balancer answers 504. */
static void
on_timeout(struct sim *s)
{
	dequeue(s);
	s->r->dropped++;
	respond(s, s->timeout_s);
	if (s->sig)
		vd_signals_refuse(s->sig, us(s->now));
	level(s);
}

static void
on_ready(struct sim *s)
{
	for (size_t i = 0; i < s->nreps; i++) {
		struct rep *p = &s->reps[i];

		if (p->state == REP_STARTING && p->ready_at <= s->now) {
			p->state = REP_READY;
			s->starting--;
			s->ready++;
		}
	}
	find_next_ready(s);
	dispatch(s);
	level(s);
}

static struct rep *
new_rep(struct sim *s)
{
	for (size_t i = 0; i < s->nreps; i++)
		if (s->reps[i].state == REP_GONE)
			return &s->reps[i];
	if (s->nreps == s->repcap) {
		size_t cap = s->repcap ? 2 * s->repcap : 16;
		struct rep *r = realloc(s->reps, cap * sizeof(*r));

		if (!r) {
			s->oom = true;
			return NULL;
		}
		s->reps = r;
		s->repcap = cap;
	}
	s->reps[s->nreps] = (struct rep){ REP_GONE, 0, 0 };
	return &s->reps[s->nreps++];
}

/* Have N replicas ready and starting: new ones serve after the start
 * delay; removed ones are those starting (the last asked for first), then
 * the ready ones with the fewest in service, which finish those. */
static void
scale_to(struct sim *s, int n, long t)
{
	int have = s->ready + s->starting;

	if (n > have) {
		for (int k = have; k < n; k++) {
			struct rep *p = new_rep(s);

			if (!p)
				return;
			*p = (struct rep){ REP_STARTING, s->now + s->c->start_delay_ms / 1000.0,
					   0 };
			s->starting++;
		}
		s->last_up_ms = t * 1000;
		s->r->ups++;
	} else if (n < have) {
		for (int k = n; k < have; k++) {
			int best = -1;
			bool starting = s->starting > 0;

			for (size_t i = 0; i < s->nreps; i++) {
				const struct rep *p = &s->reps[i];

				if (starting ? p->state == REP_STARTING &&
						       (best < 0 ||
							p->ready_at >= s->reps[best].ready_at)
					     : p->state == REP_READY &&
						       (best < 0 ||
							p->inflight < s->reps[best].inflight))
					best = (int)i;
			}
			if (starting) {
				s->reps[best].state = REP_GONE;
				s->starting--;
				continue;
			}
			s->ready--;
			s->busy_ready -= s->reps[best].inflight;
			if (s->reps[best].inflight > 0) {
				s->reps[best].state = REP_DRAINING;
				s->draining++;
			} else {
				s->reps[best].state = REP_GONE;
			}
		}
		s->last_down_ms = t * 1000;
		s->r->downs++;
	}
	find_next_ready(s);
	if (s->next_ready <= s->now)
		on_ready(s); /* no start delay */
	else
		level(s);
}

/* =========================================================== policies */

/* The policy's windows, read from the simulated balancer's signals as the
 * controller reads its balancer's. */
static void
signal_windows(struct sim *s, long t, struct vd_autoscale_input *in)
{
	struct vd_signals_window up, step, down;

	vd_signals_read(s->sig, t * 1000000, s->c->up_window_ms, &up);
	vd_signals_read(s->sig, t * 1000000, VD_AUTOSCALE_STEP_MS, &step);
	vd_signals_read(s->sig, t * 1000000, s->c->down_window_ms, &down);
	vd_autoscale_windows(&up, &step, &down, in);
}

static int
decide_vdctl(struct sim *s, long t)
{
	const struct vd_autosim_config *c = s->c;
	struct vd_autoscale_policy p;
	struct vd_autoscale_input in = {
		.now_ms = t * 1000,
		.ready = s->ready,
		.starting = s->starting,
		.last_up_ms = s->last_up_ms,
		.last_down_ms = s->last_down_ms,
		.room = -1,
	};
	struct vd_autoscale_decision d;

	vd_autoscale_policy_defaults(&p);
	p.min = c->min;
	p.max = c->max;
	p.target_p95_ms = c->target_p95_ms;
	p.target_queue = c->target_queue;
	p.utilisation = c->utilisation;
	p.tolerance = c->tolerance;
	p.up_cooldown_ms = c->up_cooldown_ms;
	p.down_cooldown_ms = c->down_cooldown_ms;
	p.per_replica = c->per_replica;
	signal_windows(s, t, &in);
	vd_autoscale_decide(&p, &in, &d);
	return d.desired;
}

static int
clamp(int n, int lo, int hi)
{
	return n < lo ? lo : n > hi ? hi : n;
}

static int
decide_hpa(struct sim *s, long t)
{
	const struct vd_autosim_config *c = s->c;
	long lag = (long)((c->hpa_lag_ms + 500) / 1000), b = t - lag, a = b - HPA_METRIC_S;
	int current = s->ready + s->starting, rec, up, down;
	double busy = 0, slots = 0, u, ratio;

	if (a < 0)
		a = 0;
	if (b <= a || s->ready == 0)
		return current; /* no metric yet */
	for (long i = a; i < b; i++) {
		busy += s->secs[i].busy;
		slots += s->secs[i].slots;
	}
	if (!(slots > 0))
		return current;
	u = busy / slots;
	ratio = u / c->utilisation;
	if (s->starting > 0 && ratio > 1) {
		/* the pods not ready count as 0% */
		double r2 = u * s->ready / (c->utilisation * current);

		rec = r2 <= 1 + HPA_TOLERANCE ? current : vd_autoscale_count(r2 * current);
	} else {
		rec = fabs(ratio - 1) <= HPA_TOLERANCE ? current
						       : vd_autoscale_count(ratio * s->ready);
	}
	s->hpa_rec[s->nhpa] = rec;
	s->hpa_t[s->nhpa++] = t;
	/* a scale-down takes the highest of the last 300 s; a scale-up at once */
	down = rec;
	for (size_t i = s->nhpa; i-- > 0 && s->hpa_t[i] > t - HPA_DOWN_STABILIZATION_S;)
		if (s->hpa_rec[i] > down)
			down = s->hpa_rec[i];
	rec = current < rec ? rec : current > down ? down : current;
	/* the default rate limits: up by 100% or 4 pods, down by 100% */
	up = 2 * current > current + HPA_UP_PODS ? 2 * current : current + HPA_UP_PODS;
	if (rec > up)
		rec = up;
	/* minReplicas is 1 at least: HPA does not scale to zero */
	return clamp(rec, c->min > 1 ? c->min : 1, c->max);
}

static int
decide_kpa(struct sim *s, long t)
{
	const struct vd_autosim_config *c = s->c;
	double target = c->per_replica * c->utilisation, stable = 0, panic = 0, ready;
	long a_stable = t - KPA_STABLE_S > 0 ? t - KPA_STABLE_S : 0;
	long a_panic = t - KPA_PANIC_S > 0 ? t - KPA_PANIC_S : 0;
	int dspc, dppc, want, lo, hi;

	for (long i = a_stable; i < t; i++) {
		stable += s->secs[i].conc;
		if (i >= a_panic)
			panic += s->secs[i].conc;
	}
	stable /= (double)(t - a_stable);
	panic /= (double)(t - a_panic);
	ready = s->ready > 1 ? s->ready : 1;
	dspc = vd_autoscale_count(stable / target);
	dppc = vd_autoscale_count(panic / target);
	hi = (int)ceil(KPA_MAX_UP_RATE * ready);
	lo = (int)floor(ready / KPA_MAX_DOWN_RATE);
	dspc = clamp(dspc, lo, hi);
	dppc = clamp(dppc, lo, hi);
	if (dppc / ready >= KPA_PANIC_THRESHOLD) {
		s->panic_since = t; /* starts, or goes on */
	} else if (s->panic_since >= 0 && t > s->panic_since + KPA_STABLE_S) {
		s->panic_since = -1;
		s->max_panic = 0;
	}
	want = dspc;
	if (s->panic_since >= 0) {
		/* only up while panicking */
		if (want < dppc)
			want = dppc;
		if (want > s->max_panic)
			s->max_panic = want;
		else
			want = s->max_panic;
	}
	return clamp(want, c->min, c->max);
}

/*
 * A whole second T: close the second before it (over the target when its
 * p95 is, or when it had no response while a request older than the target
 * waited), then decide.
 */
static void
on_second(struct sim *s, long t, enum vd_autosim_policy policy)
{
	const struct vd_autosim_config *c = s->c;
	struct vd_autosim_result *r = s->r;
	double oldest = INFINITY;
	int want = -1;

	if (s->resp_sec == t - 1)
		close_second(s);
	if (s->qlen)
		oldest = s->q[s->qhead].arrive;
	for (size_t i = 0; i < s->hlen; i++)
		if (s->h[i].arrive < oldest)
			oldest = s->h[i].arrive;
	r->over_s[t - 1] = isnan(r->p95_ms[t - 1]) ? s->now - oldest > c->target_p95_ms / 1000.0
						   : r->p95_ms[t - 1] > (double)c->target_p95_ms;
	r->seconds_over += r->over_s[t - 1];
	if (r->seconds_over > s->limit)
		s->given_up = true;
	if ((size_t)t >= c->nsecs)
		return;
	if (policy == VD_AUTOSIM_VDCTL)
		want = decide_vdctl(s, t);
	else if (policy == VD_AUTOSIM_HPA && t % HPA_PERIOD_S == 0)
		want = decide_hpa(s, t);
	else if (policy == VD_AUTOSIM_KPA && t % KPA_PERIOD_S == 0)
		want = decide_kpa(s, t);
	if (want >= 0 && want != s->ready + s->starting)
		scale_to(s, want, t);
	s->r->replicas[t] = s->ready + s->starting;
}

/* ================================================================= runs */

static void
sim_free(struct sim *s)
{
	free(s->q);
	free(s->h);
	free(s->reps);
	free(s->secs);
	free(s->resp);
	free(s->hpa_rec);
	free(s->hpa_t);
	vd_signals_free(s->sig);
}

static void
summarise(const struct vd_autosim_config *c, struct sim *s, struct vd_autosim_result *r)
{
	r->step = vd_autosim_step(c->rate, c->nsecs, NULL, NULL);
	for (size_t i = 0; i < c->nsecs; i++) {
		r->replica_seconds += s->secs[i].replicas;
		r->lowest += vd_autosim_needed(c, c->rate[i]);
		if (r->replicas[i] > r->peak)
			r->peak = r->replicas[i];
	}
	r->recover_s = -1;
	for (size_t t = r->step >= 0 ? (size_t)r->step : c->nsecs; t < c->nsecs; t++) {
		size_t end = t + RECOVER_HOLD_S < c->nsecs ? t + RECOVER_HOLD_S : c->nsecs, k;

		for (k = t; k < end && !r->over_s[k]; k++)
			;
		if (k == end) {
			r->recover_s = (long)(t - (size_t)r->step);
			break;
		}
	}
}

/* A run that gives up (returns 1, *r cleared) as soon as more than LIMIT
 * seconds are over the target. */
static int
run(const struct vd_autosim_config *c, enum vd_autosim_policy policy, int fixed, size_t limit,
    struct vd_autosim_result *r, struct vd_error *err)
{
	struct sim s = { .c = c, .r = r, .panic_since = -1, .resp_sec = -1, .limit = limit };
	size_t n = c->nsecs;
	long next_second = 1;
	int initial;

	memset(r, 0, sizeof(*r));
	if (vd_autosim_check(c, err) < 0)
		return -1;
	if (policy == VD_AUTOSIM_FIXED && (fixed < 1 || fixed > VD_AUTOSIM_MAX_REPLICAS))
		return vd_error_set(err, VD_EXIT_INPUT, "a fixed count must be from 1 to %d",
				    VD_AUTOSIM_MAX_REPLICAS);
	if ((unsigned)policy >= VD_AUTOSIM_NPOLICIES)
		return vd_error_set(err, VD_EXIT_INPUT, "no such policy");
	r->policy = policy;
	r->fixed = policy == VD_AUTOSIM_FIXED ? fixed : 0;
	r->nsecs = n;
	r->replicas = calloc(n, sizeof(*r->replicas));
	r->p95_ms = malloc(n * sizeof(*r->p95_ms));
	r->over_s = calloc(n, sizeof(*r->over_s));
	s.secs = calloc(n, sizeof(*s.secs));
	if (policy == VD_AUTOSIM_VDCTL)
		s.sig = vd_signals_new(c->up_window_ms > c->down_window_ms ? c->up_window_ms
									   : c->down_window_ms,
				       0);
	if (policy == VD_AUTOSIM_HPA) {
		s.hpa_rec = calloc(n / HPA_PERIOD_S + 1, sizeof(*s.hpa_rec));
		s.hpa_t = calloc(n / HPA_PERIOD_S + 1, sizeof(*s.hpa_t));
	}
	if (!r->replicas || !r->p95_ms || !r->over_s || !s.secs ||
	    (policy == VD_AUTOSIM_VDCTL && !s.sig) ||
	    (policy == VD_AUTOSIM_HPA && (!s.hpa_rec || !s.hpa_t)))
		goto oom;
	for (size_t i = 0; i < n; i++)
		r->p95_ms[i] = NAN;
	s.per = c->per_replica;
	s.timeout_s = c->queue_timeout_ms / 1000.0;
	/* two streams from the seed, the same for every run */
	s.arng = c->seed;
	s.srng = c->seed ^ 0x5851f42d4c957f2dULL;
	s.amark = c->poisson ? rng_exp(&s.arng) : 0.5;
	s.next_arrival = next_arrival(&s);
	initial = policy == VD_AUTOSIM_FIXED ? fixed
		  : c->initial               ? c->initial
		  : c->min > 1               ? c->min
					     : 1;
	for (int k = 0; k < initial; k++) {
		struct rep *p = new_rep(&s);

		if (!p)
			goto oom;
		*p = (struct rep){ REP_READY, 0, 0 };
		s.ready++;
	}
	s.next_ready = INFINITY;
	r->replicas[0] = initial;
	level(&s);
	while (!s.oom && !s.given_up) {
		double td = s.qlen ? s.q[s.qhead].arrive + s.timeout_s : INFINITY;
		double tc = s.hlen ? s.h[0].done : INFINITY;
		double ts = next_second > 0 ? (double)next_second : INFINITY;
		double t = ts;

		if (tc < t)
			t = tc;
		if (s.next_ready < t)
			t = s.next_ready;
		if (td < t)
			t = td;
		if (s.next_arrival < t)
			t = s.next_arrival;
		if (t == INFINITY)
			break;
		advance(&s, t);
		if (ts == t) {
			on_second(&s, next_second, policy);
			next_second = (size_t)next_second < n ? next_second + 1 : -1;
		} else if (tc == t) {
			on_done(&s);
		} else if (s.next_ready == t) {
			on_ready(&s);
		} else if (td == t) {
			on_timeout(&s);
		} else {
			on_arrival(&s);
		}
	}
	if (s.oom)
		goto oom;
	if (s.given_up) {
		sim_free(&s);
		vd_autosim_result_clear(r);
		return 1;
	}
	summarise(c, &s, r);
	sim_free(&s);
	return 0;
oom:
	sim_free(&s);
	vd_autosim_result_clear(r);
	return vd_error_errno(err, ENOMEM, "cannot simulate");
}

int
vd_autosim_run(const struct vd_autosim_config *c, enum vd_autosim_policy policy, int fixed,
	       struct vd_autosim_result *r, struct vd_error *err)
{
	return run(c, policy, fixed, SIZE_MAX, r, err) < 0 ? -1 : 0;
}

/*
 * Every count gets a run, but most are cut short: the most replicas first
 * give a bound, then from the fewest up a run gives up as soon as it has
 * more seconds over than the best so far (it cannot be the answer), and
 * the first count with none ends the search.
 */
int
vd_autosim_best_fixed(const struct vd_autosim_config *c, struct vd_autosim_result *r,
		      struct vd_error *err)
{
	struct vd_autosim_result cur;
	int ret;

	if (run(c, VD_AUTOSIM_FIXED, c->max, SIZE_MAX, r, err) < 0)
		return -1;
	for (int n = c->min > 1 ? c->min : 1; n < c->max; n++) {
		if ((ret = run(c, VD_AUTOSIM_FIXED, n, r->seconds_over, &cur, err)) < 0) {
			vd_autosim_result_clear(r);
			return -1;
		}
		if (ret == 1)
			continue;
		if (cur.seconds_over < r->seconds_over || n < r->fixed) {
			vd_autosim_result_clear(r);
			*r = cur;
		} else {
			vd_autosim_result_clear(&cur);
		}
		if (r->seconds_over == 0)
			break;
	}
	return 0;
}

void
vd_autosim_result_clear(struct vd_autosim_result *r)
{
	free(r->replicas);
	free(r->p95_ms);
	free(r->over_s);
	memset(r, 0, sizeof(*r));
}

/* ========================================================= service time */

double
vd_autosim_service_mean(const struct vd_autosim_service *s)
{
	double m;

	if (s->dist != VD_AUTOSIM_DIST_QUANTILES)
		return s->mean_s;
	if (s->nq < 1 || s->nq > VD_AUTOSIM_MAX_QUANTILES)
		return 0;
	/* the area under the inverse CDF: flat ends, trapezoids between */
	m = s->q[0] * s->value_s[0] + (1 - s->q[s->nq - 1]) * s->value_s[s->nq - 1];
	for (size_t i = 1; i < s->nq; i++)
		m += (s->q[i] - s->q[i - 1]) * (s->value_s[i] + s->value_s[i - 1]) / 2;
	return m;
}
