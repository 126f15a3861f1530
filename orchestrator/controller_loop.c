/*
 * The controller's loop thread: the table of services and replicas it
 * routes to, their health probes, their balancers, and the messages of the
 * engine thread that keep the table true (snapshots of what the engines
 * hold, replicas started, gone, to drain).
 *
 * A replica enters its service's balancer on its first passing check and
 * leaves it at once when it fails `retries` checks after its start period
 * (the engine thread then replaces it), when the engines say it stopped,
 * or, drained first, when the engine thread is about to remove it. A
 * service's balancer listens once each of its running replicas had its
 * first check, so that a restarted controller does not answer 503 while it
 * has healthy replicas it has not looked at yet.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "controller_int.h"
#include "vd/clock.h"
#include "vd/log.h"

static const char *const health_names[] = {
	[H_UNKNOWN] = "unknown", [H_STARTING] = "starting", [H_HEALTHY] = "healthy",
	[H_UNHEALTHY] = "unhealthy", [H_DOWN] = "down",
};

const char *
ctrl_health_name(enum health h)
{
	return health_names[h];
}

/* --------------------------------------------------------------- replicas */

static void start_probe(struct crep *r);
static void ensure_balancer(struct controller *c, struct csvc *s, bool now);


static void
balancer_out(struct crep *r, void (*done)(void *, const char *), void *arg)
{
	if (r->in_lb && r->s->lb) {
		r->in_lb = false;
		if (vd_lb_drain_replica(r->s->lb, r->key, done, arg) == 0)
			return;
	}
	if (done)
		done(arg, r->key);
}

static void
balancer_in(struct crep *r)
{
	struct vd_error err = VD_ERROR_INIT;

	if (r->in_lb || r->removing || !r->s->lb || r->state != VD_STATE_RUNNING)
		return;
	if (vd_lb_add_replica(r->s->lb, r->key, r->host, r->port, &err) < 0) {
		vd_warn("%s: balancer: %s", r->name, err.msg);
		return;
	}
	r->in_lb = true;
}

static void
crep_free(struct crep *r)
{
	struct controller *c = r->s->c;

	if (r->probe)
		vd_health_probe_cancel(r->probe);
	if (r->timer > 0)
		vd_ev_timer_cancel(c->ev, r->timer);
	balancer_out(r, NULL, NULL);
	free(r);
}

static struct crep *
crep_find(struct csvc *s, const char *id)
{
	for (size_t i = 0; i < s->nreps; i++)
		if (strcmp(s->reps[i]->id, id) == 0)
			return s->reps[i];
	return NULL;
}

static struct crep *
crep_by_id(struct controller *c, const char *id)
{
	for (size_t i = 0; i < c->nsvcs; i++) {
		struct crep *r = crep_find(c->svcs[i], id);

		if (r)
			return r;
	}
	return NULL;
}

static struct csvc *
csvc_find(struct controller *c, const char *name)
{
	for (size_t i = 0; i < c->nsvcs; i++)
		if (strcmp(c->svcs[i]->name, name) == 0)
			return c->svcs[i];
	return NULL;
}

static struct crep *
crep_add(struct controller *c, struct csvc *s, const char *name, const char *id, int index)
{
	struct crep *r = calloc(1, sizeof(*r)), **v;

	if (!r || !(v = realloc(s->reps, (s->nreps + 1) * sizeof(*v)))) {
		free(r);
		return NULL;
	}
	s->reps = v;
	s->reps[s->nreps++] = r;
	r->s = s;
	r->index = index;
	snprintf(r->name, sizeof(r->name), "%s", name);
	snprintf(r->id, sizeof(r->id), "%s", id);
	snprintf(r->key, sizeof(r->key), "%.50s#%.12s", name, id);
	r->first_seen = vd_ev_now_ms(c->ev);
	r->state = VD_STATE_RUNNING;
	return r;
}

static void
crep_remove(struct csvc *s, size_t i)
{
	crep_free(s->reps[i]);
	s->reps[i] = s->reps[--s->nreps];
}

/* A replica stopped running (or is being removed): no more traffic or checks. */
static void
crep_down(struct crep *r)
{
	r->health = H_DOWN;
	r->healthy_since = 0;
	balancer_out(r, NULL, NULL);
}

static int64_t
probe_tick(struct vd_ev *ev, void *arg)
{
	struct crep *r = arg;

	(void)ev;
	r->timer = 0;
	start_probe(r);
	return -1;
}

static void
schedule_probe(struct crep *r, int64_t after_ms)
{
	struct controller *c = r->s->c;

	if (r->timer <= 0 && !c->stopping_loop)
		r->timer = vd_ev_timer(c->ev, after_ms, probe_tick, r);
}

static void
mark_sick(struct controller *c, struct crep *r, const char *why)
{
	char text[96];

	snprintf(text, sizeof(text), "health check failed (%s)", why);
	pthread_mutex_lock(&c->lock);
	vd_restarts_sick(&c->book, r->s->name, r->index, r->id, text);
	c->want_reconcile = true;
	pthread_mutex_unlock(&c->lock);
	ctrl_wake(c->wake_fd);
}

static void
probe_done(void *arg, enum vd_health_result res, int http_status)
{
	struct crep *r = arg;
	struct controller *c = r->s->c;
	const struct vd_service *svc = r->s->svc;
	int64_t now = vd_ev_now_ms(c->ev);
	char what[32];

	r->probe = NULL;
	r->last = res;
	r->checked = true;
	if (r->state != VD_STATE_RUNNING || r->removing)
		return;
	if (res == VD_HEALTH_OK) {
		r->passed = true;
		if (r->health != H_HEALTHY) {
			vd_info("%s: healthy", r->name);
			r->healthy_since = now;
		}
		r->health = H_HEALTHY;
		r->fails = 0;
		balancer_in(r);
		if (now - r->healthy_since >= VD_RESTARTS_STABLE_MS) {
			pthread_mutex_lock(&c->lock);
			vd_restarts_healthy(&c->book, r->s->name, r->index, now - r->healthy_since);
			pthread_mutex_unlock(&c->lock);
		}
	} else if (r->health != H_HEALTHY &&
		   vd_clock_wall_ns() - r->started_ns < svc->health.start_period_ms * 1000000) {
		r->health = H_STARTING;
	} else if (!r->passed && now - r->fail_at < svc->health.interval_ms) {
		/* checked faster than its interval until it first passes: a
		 * failure counts once an interval, as it would have */
	} else {
		r->fail_at = now;
		if (++r->fails >= svc->health.retries && r->health != H_UNHEALTHY) {
			vd_health_describe(res, http_status, what, sizeof(what));
			vd_warn("%s: unhealthy: %d checks failed, the last: %s", r->name, r->fails,
				what);
			r->health = H_UNHEALTHY;
			r->healthy_since = 0;
			balancer_out(r, NULL, NULL);
			mark_sick(c, r, what);
		}
	}
	ensure_balancer(c, r->s, false);
	/* a new replica joins its balancer within a fraction of a second of
	 * answering, not up to an interval later */
	schedule_probe(r, r->passed || svc->health.interval_ms < COLD_PROBE_MS
				  ? svc->health.interval_ms
				  : COLD_PROBE_MS);
}

static void
start_probe(struct crep *r)
{
	struct controller *c = r->s->c;
	const struct vd_service *svc = r->s->svc;
	struct vd_health_spec spec = { svc->health.kind, svc->health.http_path,
				       svc->health.timeout_ms };

	if (r->probe || r->state != VD_STATE_RUNNING || r->removing || c->stopping_loop)
		return;
	r->probe = vd_health_probe_start(c->ev, &spec, r->host, r->port, probe_done, r);
	if (!r->probe)
		schedule_probe(r, svc->health.interval_ms);
}

/* Bring a replica's entry in line with what the engine says of it. */
static void
crep_update(struct controller *c, struct crep *r, const struct vd_replica *h)
{
	bool was_running = r->state == VD_STATE_RUNNING;

	(void)c;
	r->state = h->state;
	if (r->started_ns != h->started_ns)
		r->passed = false; /* started again: cold */
	r->started_ns = h->started_ns;
	if (strcmp(r->host, h->host) != 0 || r->port != h->host_port) {
		snprintf(r->host, sizeof(r->host), "%s", h->host);
		r->port = h->host_port;
		balancer_out(r, NULL, NULL);
	}
	if (h->state != VD_STATE_RUNNING) {
		if (was_running || r->health != H_DOWN)
			crep_down(r);
	} else if (!r->probe && r->timer <= 0) {
		start_probe(r);
	}
}

/* ------------------------------------------------- the loop: balancers */

static void
lb_config(const struct vd_service *svc, struct vd_lb_config *cfg)
{
	vd_lb_config_default(cfg);
	cfg->listen_host = svc->balancer.listen_host;
	cfg->listen_port = svc->balancer.listen_port;
	cfg->policy = svc->balancer.policy;
	cfg->max_inflight = svc->balancer.max_inflight;
	cfg->queue_limit = svc->balancer.queue_limit;
	cfg->queue_timeout_ms = svc->balancer.queue_timeout_ms;
	cfg->abort_on_client_gone = svc->balancer.on_client_gone == VD_LB_GONE_ABORT;
	if (svc->autoscale.enabled) {
		/* signals for the autoscaler's long window; a service it may take to
		 * zero holds requests while a replica starts */
		cfg->signal_span_ms = svc->autoscale.down_window_ms;
		cfg->hold_when_empty = svc->autoscale.min == 0;
	}
}

static bool
same_balancer(const struct vd_service *a, const struct vd_service *b)
{
	return a->balancer.enabled == b->balancer.enabled &&
	       a->balancer.listen_port == b->balancer.listen_port &&
	       strcmp(a->balancer.listen_host ? a->balancer.listen_host : "",
		      b->balancer.listen_host ? b->balancer.listen_host : "") == 0 &&
	       a->balancer.policy == b->balancer.policy &&
	       a->balancer.max_inflight == b->balancer.max_inflight &&
	       a->balancer.queue_limit == b->balancer.queue_limit &&
	       a->balancer.queue_timeout_ms == b->balancer.queue_timeout_ms &&
	       a->balancer.on_client_gone == b->balancer.on_client_gone &&
	       (a->autoscale.enabled && a->autoscale.min == 0) ==
		       (b->autoscale.enabled && b->autoscale.min == 0);
}

/*
 * Listen for a service once each of its running replicas had its first
 * check (so a restarted controller does not answer 503 while it has healthy
 * replicas it has not looked at yet), or after LISTEN_WAIT_MS, or NOW (an
 * apply that waited for their health is done).
 */
static void
ensure_balancer(struct controller *c, struct csvc *s, bool now_)
{
	struct vd_error err = VD_ERROR_INIT;
	struct vd_lb_config cfg;
	int64_t now = vd_ev_now_ms(c->ev);
	bool waiting = false;

	if (s->lb || !s->svc || !s->svc->balancer.enabled || c->stopping_loop)
		return;
	for (size_t i = 0; i < s->nreps; i++)
		if (s->reps[i]->state == VD_STATE_RUNNING && !s->reps[i]->checked)
			waiting = true;
	if (waiting && !now_ && now - s->since < LISTEN_WAIT_MS)
		return;
	lb_config(s->svc, &cfg);
	/* the listener of the controller this one took over from, if any */
	cfg.listen_fd = ctrl_inherited_balancer(c, s->name);
	if (!(s->lb = vd_lb_new(c->ev, &cfg, &err)) && cfg.listen_fd >= 0) {
		vd_warn("%s: balancer: %s: listening anew", s->name, err.msg);
		close(cfg.listen_fd);
		cfg.listen_fd = -1;
		s->lb = vd_lb_new(c->ev, &cfg, &err);
	}
	if (!s->lb) {
		if (strcmp(s->lb_error, err.msg) != 0)
			vd_error_log("%s: balancer: %s", s->name, err.msg);
		snprintf(s->lb_error, sizeof(s->lb_error), "%.255s", err.msg);
		return;
	}
	s->lb_error[0] = '\0';
	vd_lb_on_waiting(s->lb, ctrl_autoscale_waiting, s);
	vd_info("%s: balancer listening on %s:%d", s->name, cfg.listen_host, vd_lb_port(s->lb));
	for (size_t i = 0; i < s->nreps; i++)
		if (s->reps[i]->health == H_HEALTHY)
			balancer_in(s->reps[i]);
}

void
ctrl_csvc_free(struct csvc *s)
{
	for (size_t i = 0; i < s->nreps; i++)
		crep_free(s->reps[i]);
	free(s->reps);
	vd_lb_free(s->lb);
	free(s);
}

/* -------------------------------------------------------------- snapshots */

/* A service that is gone takes its restart history with it. */
static void
forget_marks(struct controller *c, const char *service)
{
	bool forgot;

	pthread_mutex_lock(&c->lock);
	forgot = vd_restarts_forget(&c->book, service);
	pthread_mutex_unlock(&c->lock);
	if (forgot)
		ctrl_book_save(c);
}

/* Say when an engine goes down or comes back, and keep what the snapshot says. */
static void
take_engines(struct controller *c, struct msg *m)
{
	for (size_t i = 0; i < m->nengines; i++) {
		const struct engine_status *now = &m->engines[i];
		const struct engine_status *was = NULL;

		for (size_t k = 0; k < c->nengines && !was; k++)
			if (strcmp(c->engines[k].name, now->name) == 0)
				was = &c->engines[k];
		if (now->used && !now->up &&
		    (!was || was->up || !was->used || strcmp(was->error, now->error)))
			vd_error_log("engine %s is down: %s", now->name, now->error);
		else if (now->used && now->up && was && was->used && !was->up)
			vd_info("engine %s is back", now->name);
	}
	free(c->engines);
	c->engines = m->engines;
	c->nengines = m->nengines;
	m->engines = NULL;
	m->nengines = 0;
}

static bool
is_held(const struct msg *m, const char *service)
{
	for (size_t i = 0; i < m->nheld; i++)
		if (strcmp(m->held[i].service, service) == 0)
			return true;
	return false;
}

/*
 * A held service keeps the last spec the controller had of it: move it from
 * the OLD desired state into NEW, so that its balancer and checks go on.
 * Before any pointer into NEW is taken (its array may move).
 */
static void
carry_held(struct controller *c, struct vd_manifest *old, struct vd_manifest *new,
	   const struct msg *m)
{
	for (size_t i = 0; old && i < old->nservices; i++) {
		struct vd_service *svc = &old->services[i], *v;

		if (!svc->name || !is_held(m, svc->name) || !csvc_find(c, svc->name) ||
		    !(v = realloc(new->services, (new->nservices + 1) * sizeof(*v))))
			continue;
		new->services = v;
		v[new->nservices++] = *svc;
		memset(svc, 0, sizeof(*svc)); /* moved */
	}
}

static void
take_snapshot(struct controller *c, struct msg *m)
{
	struct vd_manifest *old = c->desired;
	size_t n = 0, fresh;

	take_engines(c, m);
	if (m->failures) {
		json_decref(c->failures);
		c->failures = m->failures;
		m->failures = NULL;
	}
	if (m->declared) {
		json_decref(c->declared);
		c->declared = m->declared;
		m->declared = NULL;
	}
	if (!m->desired)
		return;
	vd_state_held_free(c->held, c->nheld);
	c->held = m->held;
	c->nheld = m->nheld;
	m->held = NULL;
	m->nheld = 0;
	/* services: keep those still desired (and those held), add new ones,
	 * drop the rest */
	fresh = m->desired->nservices;
	carry_held(c, old, m->desired, m);
	c->desired = m->desired;
	m->desired = NULL;
	for (size_t i = 0; i < c->nsvcs; i++)
		c->svcs[i]->seen = false;
	for (size_t i = 0; i < c->desired->nservices; i++) {
		const struct vd_service *svc = &c->desired->services[i];
		struct csvc *s = csvc_find(c, svc->name), **v;

		if (!s) {
			if (!(s = calloc(1, sizeof(*s))) ||
			    !(v = realloc(c->svcs, (c->nsvcs + 1) * sizeof(*v)))) {
				free(s);
				continue;
			}
			c->svcs = v;
			c->svcs[c->nsvcs++] = s;
			s->c = c;
			snprintf(s->name, sizeof(s->name), "%s", svc->name);
			s->since = vd_ev_now_ms(c->ev);
			vd_info("%s: taken on (%d replica%s)", svc->name, svc->replicas,
				svc->replicas == 1 ? "" : "s");
		} else if (s->svc && !same_balancer(s->svc, svc) && s->lb) {
			vd_info("%s: balancer changed: listening anew", svc->name);
			for (size_t k = 0; k < s->nreps; k++)
				s->reps[k]->in_lb = false;
			vd_lb_free(s->lb);
			s->lb = NULL;
			s->since = vd_ev_now_ms(c->ev);
		}
		if (s->lb && svc->autoscale.enabled &&
		    vd_lb_signals_span(s->lb, svc->autoscale.down_window_ms) < 0)
			vd_warn("%s: autoscale: out of memory for a longer window", svc->name);
		s->svc = svc;
		s->seen = true;
		s->held = i >= fresh;
		if (m->placed && i < fresh)
			snprintf(s->engine, sizeof(s->engine), "%s", m->placed[i]);
	}
	for (size_t i = 0; i < c->nsvcs;) {
		if (c->svcs[i]->seen) {
			i++;
			continue;
		}
		vd_info("%s: no longer desired", c->svcs[i]->name);
		forget_marks(c, c->svcs[i]->name);
		ctrl_csvc_free(c->svcs[i]);
		c->svcs[i] = c->svcs[--c->nsvcs];
	}
	vd_manifest_free(old);
	if (!m->observed)
		goto balancers;

	/* replicas: what the engines hold of the desired services */
	for (size_t i = 0; i < c->nsvcs; i++)
		for (size_t k = 0; k < c->svcs[i]->nreps; k++)
			c->svcs[i]->reps[k]->seen = false;
	for (size_t i = 0; i < m->list.n; i++) {
		const struct vd_replica *h = &m->list.v[i];
		struct csvc *s = csvc_find(c, h->labels.service);
		struct crep *r;

		if (!s || s->held || strcmp(s->engine, h->engine) != 0)
			continue;
		if (!(r = crep_find(s, h->id))) {
			if (!(r = crep_add(c, s, h->name, h->id, h->labels.index)))
				continue;
			r->state = VD_STATE_UNKNOWN;
			n++;
		}
		r->seen = true;
		crep_update(c, r, h);
	}
	for (size_t i = 0; i < c->nsvcs; i++) {
		struct csvc *s = c->svcs[i];

		for (size_t k = 0; k < s->nreps && !s->held;) {
			if (s->reps[k]->seen) {
				k++;
				continue;
			}
			vd_debug("%s: gone", s->reps[k]->name);
			crep_remove(s, k);
		}
	}
	if (n)
		vd_debug("controller: %zu replicas newly seen", n);
balancers:
	for (size_t i = 0; i < c->nsvcs; i++)
		ensure_balancer(c, c->svcs[i], false);
	ctrl_inherited_prune(c);
}

static void
drained(void *arg, const char *name)
{
	struct drain *d = arg;
	struct controller *c = d->c;

	(void)name;
	pthread_mutex_lock(&c->lock);
	d->done = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	ctrl_drain_put(d);
}

/* An apply ends well only once the balancers it declared listen: one whose
 * address another process holds makes it end with exit 1 and the reason. */
static void
end_apply(struct controller *c, struct msg *m)
{
	const json_t *name;
	size_t i;

	json_array_foreach(m->balancers, i, name) {
		struct csvc *s = csvc_find(c, json_string_value(name) ? json_string_value(name) : "");

		if (!s || m->code)
			continue;
		ensure_balancer(c, s, true);
		if (s->lb)
			continue;
		free(m->text);
		m->code = VD_EXIT_FAILURE;
		if (asprintf(&m->text, "service '%s' was applied, but its balancer does not listen "
			     "on %s:%d: %s", s->name, s->svc->balancer.listen_host,
			     s->svc->balancer.listen_port,
			     s->lb_error[0] ? s->lb_error : "it is stopping") < 0)
			m->text = NULL;
	}
}

void
ctrl_take_msg(struct controller *c, struct msg *m)
{
	struct csvc *s;
	struct crep *r;

	switch (m->kind) {
	case MSG_SNAPSHOT:
		take_snapshot(c, m);
		break;
	case MSG_STARTED:
		if (!(s = csvc_find(c, m->service)) || crep_find(s, m->id))
			break;
		if ((r = crep_add(c, s, m->name, m->id, m->index))) {
			snprintf(r->host, sizeof(r->host), "%s", m->host);
			r->port = m->port;
			r->started_ns = m->started_ns;
			start_probe(r);
		}
		break;
	case MSG_GONE:
		if ((r = crep_by_id(c, m->id)) && r->health != H_DOWN) {
			vd_info("%s: died: out of the balancer", r->name);
			r->state = VD_STATE_EXITED;
			crep_down(r);
		}
		break;
	case MSG_DRAIN:
		/* a surge replica is known by name: any entry of that name */
		r = crep_by_id(c, m->id);
		for (size_t i = 0; !r && i < c->nsvcs; i++)
			for (size_t k = 0; !r && k < c->svcs[i]->nreps; k++)
				if (strcmp(c->svcs[i]->reps[k]->name, m->name) == 0)
					r = c->svcs[i]->reps[k];
		if (r) {
			r->removing = true;
			if (r->in_lb)
				vd_info("%s: draining", r->name);
			balancer_out(r, drained, m->drain);
		} else {
			drained(m->drain, m->name);
		}
		m->drain = NULL;
		break;
	case MSG_OUT:
		ctrl_stream_out(m->stream, m->text);
		break;
	case MSG_END:
		if (m->stream->autoscale[0])
			ctrl_autoscale_done(c, m);
		end_apply(c, m);
		ctrl_stream_finish(m->stream, m->code, m->text);
		break;
	}
}

/* ------------------------------------------------------------- the rest */

void
ctrl_housekeep(struct controller *c)
{
	for (size_t i = 0; i < c->nsvcs; i++)
		ensure_balancer(c, c->svcs[i], false);
	ctrl_autoscale_tick(c);
}

void
ctrl_stop_probes(struct controller *c)
{
	for (size_t i = 0; i < c->nsvcs; i++) {
		struct csvc *s = c->svcs[i];

		for (size_t k = 0; k < s->nreps; k++) {
			struct crep *r = s->reps[k];

			if (r->probe)
				vd_health_probe_cancel(r->probe);
			r->probe = NULL;
			if (r->timer > 0)
				vd_ev_timer_cancel(c->ev, r->timer);
			r->timer = 0;
		}
	}
}
