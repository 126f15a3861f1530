/*
 * The autoscaler, on the loop thread: once a second, each autoscaled
 * service's balancer signals (vd/signals.h) go through the policy
 * (vd/autoscale.h); when the count should change, a scale job goes to the
 * engine thread, which records the new count and applies it (new replicas
 * join the balancer as their first check passes; removed ones are drained
 * first, so a scale-down fails no request). A balancer holding a request
 * with no replica (a service scaled to zero) asks for a decision at once.
 *
 * Every change, and every hold that stops a wanted change (a cooldown, the
 * node's room), is an event with the policy's numbers in words.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller_int.h"
#include "vd/clock.h"
#include "vd/log.h"

static void
policy_of(const struct vd_service *svc, struct vd_autoscale_policy *p)
{
	vd_autoscale_policy_defaults(p);
	p->min = svc->autoscale.min;
	p->max = svc->autoscale.max;
	p->target_p95_ms = svc->autoscale.target_p95_ms;
	p->target_queue = svc->autoscale.target_queue;
	p->utilisation = svc->autoscale.utilisation;
	p->tolerance = svc->autoscale.tolerance;
	p->up_cooldown_ms = svc->autoscale.up_cooldown_ms;
	p->down_cooldown_ms = svc->autoscale.cooldown_ms;
	p->per_replica = svc->balancer.max_inflight;
}

static void
record(struct controller *c, const struct csvc *s, int from, int to,
       const struct vd_autoscale_decision *d)
{
	struct as_event *e = &c->events[c->nevents++ % AS_EVENTS];

	e->at = vd_clock_wall_ns() / 1000000;
	snprintf(e->service, sizeof(e->service), "%s", s->name);
	e->from = from;
	e->to = to;
	e->reason = d->reason;
	snprintf(e->why, sizeof(e->why), "%s", d->why);
}

/* Hand the engine thread a job that sets S's count to N (FROM now). */
static bool
scale(struct controller *c, struct csvc *s, int from, int n)
{
	struct job *j = calloc(1, sizeof(*j));
	struct stream *st = calloc(1, sizeof(*st));
	json_t *body = json_pack("{s:s, s:i, s:i}", "service", s->name, "replicas", n, "floor",
				 from);

	if (!j || !st || !body) {
		free(j);
		free(st);
		json_decref(body);
		vd_warn("%s: autoscale: out of memory", s->name);
		return false;
	}
	st->c = c;
	snprintf(st->autoscale, sizeof(st->autoscale), "%s", s->name);
	j->kind = JOB_SCALE;
	j->body = body;
	j->stream = st;
	pthread_mutex_lock(&c->lock);
	*c->jobs_tail = j;
	c->jobs_tail = &j->next;
	pthread_mutex_unlock(&c->lock);
	ctrl_wake(c->wake_fd);
	return true;
}

/* Replicas of S taking requests now. */
static int
ready_of(const struct csvc *s)
{
	int n = 0;

	for (size_t i = 0; i < s->nreps; i++)
		n += s->reps[i]->in_lb && !s->reps[i]->removing;
	return n;
}

static void
decide(struct controller *c, struct csvc *s, int64_t now)
{
	const struct vd_service *svc = s->svc;
	struct autoscaler *as = &s->as;
	struct vd_autoscale_policy p;
	struct vd_autoscale_input in = { 0 };
	struct vd_autoscale_decision d;
	struct vd_signals_window step;
	enum vd_autoscale_reason was = as->last.reason;
	int ready = ready_of(s), have = svc->replicas;

	as->next_ms = now + AUTOSCALE_MS - HOUSEKEEP_MS / 5; /* the tick about a second on */
	/* a scale-up's replicas all ready: how long they took */
	if (as->started_ms && ready >= as->start_target) {
		as->start_s = (double)(now - as->started_ms) / 1000;
		if (as->start_s > as->start_max_s)
			as->start_max_s = as->start_s;
		as->started_ms = 0;
	}
	policy_of(svc, &p);
	vd_lb_signals(s->lb, svc->autoscale.up_window_ms, &as->up);
	vd_lb_signals(s->lb, svc->autoscale.down_window_ms, &as->down);
	vd_lb_signals(s->lb, VD_AUTOSCALE_STEP_MS, &step);
	vd_autoscale_windows(&as->up, &step, &as->down, &in);
	in.now_ms = now;
	in.ready = ready < have ? ready : have;
	in.starting = have - in.ready;
	in.last_up_ms = as->last_up_ms;
	in.last_down_ms = as->last_down_ms;
	in.room = as->room >= 0 && now < as->room_until ? as->room : -1;
	vd_autoscale_decide(&p, &in, &d);
	as->last = d;
	as->last_at = vd_clock_wall_ns() / 1000000;
	if (d.desired == have) {
		/* a hold that stops a wanted change is news once, not each second */
		if (d.reason != was &&
		    (d.reason == VD_AS_COOLDOWN || d.reason == VD_AS_NODE_FULL)) {
			vd_info("%s: autoscale: %s", s->name, d.why);
			record(c, s, have, have, &d);
		}
		return;
	}
	if (!scale(c, s, have, d.desired))
		return;
	as->pending = true;
	as->from = have;
	as->asked = d.desired;
	if (d.desired > have) {
		as->last_up_ms = now;
		as->ups++;
		if (!as->started_ms) {
			as->started_ms = now;
			as->start_target = d.desired;
		}
	} else {
		as->last_down_ms = now;
		as->downs++;
	}
	vd_info("%s: autoscale: %s", s->name, d.why);
	record(c, s, have, d.desired, &d);
}

static bool
autoscaled(const struct controller *c, const struct csvc *s)
{
	return s->svc && s->svc->autoscale.enabled && s->lb && !s->held && !c->stopping_loop;
}

void
ctrl_autoscale_tick(struct controller *c)
{
	int64_t now = vd_ev_now_ms(c->ev);

	for (size_t i = 0; i < c->nsvcs; i++) {
		struct csvc *s = c->svcs[i];

		if (autoscaled(c, s) && !s->as.pending && now >= s->as.next_ms)
			decide(c, s, now);
	}
}

void
ctrl_autoscale_waiting(void *arg)
{
	struct csvc *s = arg;

	if (autoscaled(s->c, s) && !s->as.pending && s->svc->replicas == 0)
		decide(s->c, s, vd_ev_now_ms(s->c->ev));
}

void
ctrl_autoscale_done(struct controller *c, const struct msg *m)
{
	struct csvc *s = NULL;
	struct autoscaler *as;

	for (size_t i = 0; i < c->nsvcs && !s; i++)
		if (strcmp(c->svcs[i]->name, m->stream->autoscale) == 0)
			s = c->svcs[i];
	if (!s)
		return;
	as = &s->as;
	as->pending = false;
	as->next_ms = 0; /* decide again at the next tick, on the new count */
	if (m->code && m->count < 0) {
		vd_warn("%s: autoscale: %s", s->name, m->text ? m->text : "the scale job failed");
		as->next_ms = vd_ev_now_ms(c->ev) + RETRY_MS; /* not again each second */
		return;
	}
	if (m->code) {
		/* the node took fewer than asked: its room, for a while */
		struct vd_autoscale_decision d = as->last;

		as->room = m->count;
		as->room_until = vd_ev_now_ms(c->ev) + ROOM_MS;
		as->start_target = m->count;
		snprintf(as->room_why, sizeof(as->room_why), "%s", m->text ? m->text : "");
		d.reason = VD_AS_NODE_FULL;
		snprintf(d.why, sizeof(d.why), "%d -> %d: wanted %d, the node holds %d: %.200s",
			 as->from, m->count, as->asked, m->count, as->room_why);
		vd_info("%s: autoscale: %s", s->name, d.why);
		record(c, s, as->from, m->count, &d);
		as->last = d;
	}
}

/* ------------------------------------------------------------- reports */

static json_t *
window_json(const struct vd_signals_window *w)
{
	return json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "seconds", w->seconds, "rate",
			 w->rate, "service_ms", w->service_ms, "wait_ms", w->wait_ms, "inflight",
			 w->inflight, "queue", w->queue, "p95_ms", w->p95_ms);
}

json_t *
ctrl_autoscale_json(const struct csvc *s)
{
	const struct autoscaler *as = &s->as;
	const struct vd_service *svc = s->svc;
	json_t *j;

	if (!svc || !svc->autoscale.enabled)
		return json_null();
	j = json_pack("{s:i, s:i, s:i, s:I, s:I, s:b}", "min", svc->autoscale.min, "max",
		      svc->autoscale.max, "desired", svc->replicas, "ups", (json_int_t)as->ups,
		      "downs", (json_int_t)as->downs, "pending", as->pending);
	if (!svc->balancer.enabled)
		json_object_set_new(j, "why_idle",
				    json_string("it has no balancer to measure "
						"its load"));
	else if (!s->lb)
		json_object_set_new(j, "why_idle", json_string("its balancer does not listen"));
	if (as->last_at) {
		json_object_set_new(j, "wanted", json_integer(as->last.wanted));
		json_object_set_new(j, "reason",
				    json_string(vd_autoscale_reason_name(as->last.reason)));
		json_object_set_new(j, "why", json_string(as->last.why));
		json_object_set_new(j, "up", window_json(&as->up));
		json_object_set_new(j, "down", window_json(&as->down));
	}
	if (as->start_s > 0) {
		json_object_set_new(j, "start_s", json_real(as->start_s));
		json_object_set_new(j, "start_max_s", json_real(as->start_max_s));
	}
	return j;
}

json_t *
ctrl_autoscale_events(const struct controller *c)
{
	json_t *a = json_array();
	uint64_t from = c->nevents > AS_EVENTS ? c->nevents - AS_EVENTS : 0;

	for (uint64_t i = from; i < c->nevents; i++) {
		const struct as_event *e = &c->events[i % AS_EVENTS];

		json_array_append_new(a, json_pack("{s:I, s:s, s:i, s:i, s:s, s:s}", "at_ms",
						   (json_int_t)e->at, "service", e->service, "from",
						   e->from, "to", e->to, "reason",
						   vd_autoscale_reason_name(e->reason), "why",
						   e->why));
	}
	return a;
}

void
ctrl_autoscale_metrics(struct controller *c, FILE *f)
{
	fprintf(f, "# HELP vdctl_autoscale_desired The replica count the autoscaler set.\n"
		   "# TYPE vdctl_autoscale_desired gauge\n");
	for (size_t i = 0; i < c->nsvcs; i++)
		if (c->svcs[i]->svc && c->svcs[i]->svc->autoscale.enabled)
			fprintf(f, "vdctl_autoscale_desired{service=\"%s\"} %d\n", c->svcs[i]->name,
				c->svcs[i]->svc->replicas);
	fprintf(f, "# HELP vdctl_autoscale_wanted The count the policy asked for before "
		   "cooldowns, bounds and the node's room.\n"
		   "# TYPE vdctl_autoscale_wanted gauge\n");
	for (size_t i = 0; i < c->nsvcs; i++)
		if (c->svcs[i]->svc && c->svcs[i]->svc->autoscale.enabled && c->svcs[i]->as.last_at)
			fprintf(f, "vdctl_autoscale_wanted{service=\"%s\"} %d\n", c->svcs[i]->name,
				c->svcs[i]->as.last.wanted);
	fprintf(f, "# HELP vdctl_autoscale_decisions_total Changes of the count the "
		   "autoscaler made.\n# TYPE vdctl_autoscale_decisions_total counter\n");
	for (size_t i = 0; i < c->nsvcs; i++) {
		const struct csvc *s = c->svcs[i];

		if (!s->svc || !s->svc->autoscale.enabled)
			continue;
		fprintf(f,
			"vdctl_autoscale_decisions_total{service=\"%s\",direction=\"up\"} %llu\n"
			"vdctl_autoscale_decisions_total{service=\"%s\",direction=\"down\"} "
			"%llu\n",
			s->name, (unsigned long long)s->as.ups, s->name,
			(unsigned long long)s->as.downs);
	}
	fprintf(f, "# HELP vdctl_arrivals_per_second Requests arriving at the balancer a "
		   "second, over the autoscaler's short window.\n"
		   "# TYPE vdctl_arrivals_per_second gauge\n");
	for (size_t i = 0; i < c->nsvcs; i++)
		if (c->svcs[i]->svc && c->svcs[i]->svc->autoscale.enabled && c->svcs[i]->as.last_at)
			fprintf(f, "vdctl_arrivals_per_second{service=\"%s\"} %.3f\n",
				c->svcs[i]->name, c->svcs[i]->as.up.rate);
}
