/*
 * The controller's engine thread: every engine call the controller makes.
 *
 * It runs a vd_ev loop of its own with three kinds of events: the wake
 * eventfd (jobs from the control socket, a request to reconcile, the stop),
 * the engines' event streams (a replica started, died, was OOM-killed:
 * reconcile shortly), and one timer, the next reconcile, at least every
 * RESYNC_MS and sooner when a held-back index comes due.
 *
 * A reconcile reads the state directory, places the services, observes the
 * engines they use (inspecting everything every FULL_RESYNC_MS, so that no
 * recorded limit is trusted for long), replaces replicas that died or were
 * found sick unless their index is held back (the restart book), then
 * plans and runs the plan. What it saw goes to the loop as a snapshot.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "controller_int.h"
#include "vd/apply.h"
#include "vd/clock.h"
#include "vd/log.h"
#include "vd/plan.h"
#include "vd/reconcile.h"
#include "vd/state.h"

/* An engine's event stream, opened again when it breaks. */
struct watch {
	struct vd_ev_handle h; /* first: the loop hands it back */
	struct side *sd;
	struct vd_driver *d;
	size_t engine; /* its index in the set */
};

/* The engine thread's own. */
struct side {
	struct controller *c;
	struct vd_ev *ev;
	struct vd_engines es;
	struct watch *w; /* one per engine of the set */
	struct vd_ev_handle wake;
	int timer;
	int64_t due;       /* monotonic ms of the next reconcile */
	int64_t last_full; /* of the last observation that trusted no record */
	char *held;        /* the held services last logged */
	FILE *log;
};

/* ------------------------------------------------------------ outputs */

/* A FILE whose lines go to the log, for reconcile's progress. */
static ssize_t
log_write(void *cookie, const char *buf, size_t len)
{
	(void)cookie;
	for (size_t i = 0; i < len;) {
		const char *nl = memchr(buf + i, '\n', len - i);
		size_t n = nl ? (size_t)(nl - (buf + i)) : len - i;

		if (n)
			vd_info("%.*s", (int)n, buf + i);
		i += n + 1;
	}
	return (ssize_t)len;
}

/* A FILE whose lines go to a control client. */
static ssize_t
stream_write(void *cookie, const char *buf, size_t len)
{
	struct stream *s = cookie;
	struct msg *m = ctrl_msg_new(MSG_OUT);

	if (!m)
		return (ssize_t)len;
	if (!(m->text = strndup(buf, len))) {
		free(m);
		return (ssize_t)len;
	}
	m->stream = s;
	ctrl_post(s->c, m);
	return (ssize_t)len;
}

static FILE *
line_file(cookie_write_function_t *fn, void *cookie)
{
	cookie_io_functions_t io = { .write = fn };
	FILE *f = fopencookie(cookie, "w", io);

	if (f)
		setvbuf(f, NULL, _IOLBF, 0);
	return f;
}

/* ----------------------------------------------------- reconcile hooks */

/* Take a replica out of its balancer before it is stopped, and wait (a
 * bounded time) until the loop drained it. */
static void
before_remove(void *arg, const char *name, const char *id)
{
	struct controller *c = arg;
	struct msg *m = ctrl_msg_new(MSG_DRAIN);
	struct drain *d = calloc(1, sizeof(*d));
	struct timespec until;
	int64_t ms;

	if (!m || !d) {
		free(m);
		free(d);
		return;
	}
	atomic_init(&d->refs, 2);
	d->c = c;
	snprintf(m->name, sizeof(m->name), "%s", name);
	snprintf(m->id, sizeof(m->id), "%s", id);
	m->drain = d;
	ctrl_post(c, m);
	clock_gettime(CLOCK_REALTIME, &until);
	ms = (int64_t)until.tv_nsec / 1000000 + DRAIN_WAIT_MS;
	until.tv_sec += ms / 1000;
	until.tv_nsec = (ms % 1000) * 1000000;
	pthread_mutex_lock(&c->lock);
	while (!d->done && !c->stopping)
		if (pthread_cond_timedwait(&c->cond, &c->lock, &until) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&c->lock);
	ctrl_drain_put(d);
}

/* A replica runs: the loop starts checking it at once. */
static void
on_started(void *arg, const struct vd_replica *r)
{
	struct controller *c = arg;
	struct msg *m = ctrl_msg_new(MSG_STARTED);

	if (!m)
		return;
	snprintf(m->service, sizeof(m->service), "%s", r->labels.service);
	m->index = r->labels.index;
	snprintf(m->name, sizeof(m->name), "%s", r->name);
	snprintf(m->id, sizeof(m->id), "%s", r->id);
	snprintf(m->host, sizeof(m->host), "%s", r->host);
	m->port = r->host_port;
	m->started_ns = r->started_ns;
	ctrl_post(c, m);
}

static void
run_opts(struct controller *c, struct vd_reconcile_opts *r, FILE *progress)
{
	memset(r, 0, sizeof(*r));
	r->stop_grace_s = -1;
	r->progress = progress;
	r->before_remove = before_remove;
	r->on_started = on_started;
	r->hook_arg = c;
}

/* ----------------------------------------------------------- reconcile */

/* The identities the recorded services were applied with. */
static char **
identities(struct controller *c, const struct vd_manifest *m)
{
	char **v = calloc(m->nservices + 1, sizeof(*v));
	char buf[PATH_MAX];

	for (size_t i = 0; v && i < m->nservices; i++)
		if (vd_state_manifest_of(c->dir, m->services[i].name, buf, sizeof(buf)) == 0)
			v[i] = strdup(buf);
	return v;
}

static void
free_strv(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

/*
 * What the engines the desired state uses hold, into snap->list (cleared
 * first), and how each answered, into snap->engines. One list call per
 * engine serves both. False when one of them did not answer.
 */
static bool
observe(struct side *sd, struct msg *snap)
{
	struct vd_error err = VD_ERROR_INIT;
	unsigned flags = 0;
	bool all = true;
	int64_t now = vd_clock_ms();

	if (!sd->last_full || now - sd->last_full >= FULL_RESYNC_MS)
		flags |= VD_OBSERVE_FULL;
	vd_replica_list_clear(&snap->list);
	if (vd_engines_observe(&sd->es, flags, &snap->list, &err) < 0 &&
	    err.code != VD_EXIT_ENGINE)
		vd_error_log("controller: %s", err.msg);
	for (size_t i = 0; i < sd->es.n; i++) {
		const struct vd_engine *e = &sd->es.v[i];
		struct engine_status *st = &snap->engines[i];

		snprintf(st->name, sizeof(st->name), "%s", e->name);
		st->used = e->asked;
		st->up = e->up;
		snprintf(st->error, sizeof(st->error), "%.255s", e->up ? "" : e->error.msg);
		all = all && (!e->asked || e->up);
	}
	if (all && (flags & VD_OBSERVE_FULL))
		sd->last_full = now;
	return all;
}

/* Why replica H is to be replaced, into why ("" when it is not). Under the lock. */
static void
why_replace(struct controller *c, const struct vd_replica *h, char *why, size_t size)
{
	const char *sick = vd_restarts_sick_why(&c->book, h->labels.service, h->labels.index,
						h->id);

	why[0] = '\0';
	if (sick)
		snprintf(why, size, "%s", sick);
	else if ((h->state == VD_STATE_EXITED || h->state == VD_STATE_DEAD) &&
		 (h->oom_killed || h->exit_code < 0))
		/* a VM has no exit code: it stopped (or was destroyed) */
		snprintf(why, size, h->oom_killed ? "OOM-killed" : "stopped");
	else if (h->state == VD_STATE_EXITED || h->state == VD_STATE_DEAD)
		snprintf(why, size, "exited (code %d)", h->exit_code);
}

/*
 * Replace replicas that died or were found sick, unless their index is
 * held back. Returns how many were removed (their indices are then made
 * again by the plan).
 */
static int
heal(struct side *sd, const struct vd_desired *want, size_t nwant,
     const struct vd_replica_list *have)
{
	struct controller *c = sd->c;
	struct vd_driver **d = calloc(sd->es.n + 1, sizeof(*d));
	int64_t now = vd_clock_ms();
	int healed = 0, counted = 0;

	if (!d)
		return 0;
	for (size_t i = 0; i < have->n; i++) {
		const struct vd_replica *h = &have->v[i];
		const struct vd_desired *w = vd_plan_find(want, nwant, h->labels.service);
		const struct vd_engine *e = vd_engines_find(&sd->es, h->engine);
		struct vd_error err = VD_ERROR_INIT;
		char why[128];
		bool go;
		size_t k;

		if (!w || !e || strcmp(h->engine, w->engine) != 0 ||
		    h->labels.index >= w->svc->replicas)
			continue;
		pthread_mutex_lock(&c->lock);
		why_replace(c, h, why, sizeof(why));
		go = why[0] && vd_restarts_replace(&c->book, h->labels.service, h->labels.index,
						   why, now);
		pthread_mutex_unlock(&c->lock);
		if (!go)
			continue;
		counted++;
		vd_info("%s: %s: replacing it", h->name, why);
		ctrl_post_replica(c, MSG_GONE, h->labels.service, h->labels.index, h->id);
		k = (size_t)(e - sd->es.v);
		if (!d[k] && vd_engine_connect(e, &d[k], &err) < 0) {
			vd_warn("%s: %s", h->name, err.msg);
			continue;
		}
		vd_driver_stop(d[k], h->id, 0, &err);
		vd_error_clear(&err);
		if (vd_engine_remove(e, d[k], h->id, &err) < 0) {
			vd_warn("%s: remove: %s", h->name, err.msg);
			continue;
		}
		healed++;
	}
	for (size_t k = 0; k < sd->es.n; k++)
		vd_driver_close(d[k]);
	free(d);
	if (counted)
		ctrl_book_save(c);
	return healed;
}

/* Drop from the plan the restarts of replicas that are held back (a held
 * replica stays as it is, exited, until its time comes; a missing index is
 * always made). */
static void
drop_held(struct controller *c, struct vd_plan *plan)
{
	int64_t now = vd_clock_ms();

	pthread_mutex_lock(&c->lock);
	for (size_t p = 0; p < plan->nphases; p++) {
		struct vd_phase *ph = &plan->phases[p];
		size_t n = 0;

		for (size_t i = 0; i < ph->n; i++) {
			const struct vd_action *a = &ph->v[i];
			const char *svc = a->want ? a->want->svc->name : a->have->labels.service;
			bool restart = a->kind == VD_ACT_START ||
				       (a->kind == VD_ACT_REPLACE && (a->reason == VD_WHY_DEAD ||
								      a->reason == VD_WHY_STOPPED));

			if (restart && vd_restarts_held_until(&c->book, svc, a->index) > now)
				continue;
			ph->v[n++] = *a;
		}
		ph->n = n;
	}
	pthread_mutex_unlock(&c->lock);
}

static bool
plan_has_actions(const struct vd_plan *plan)
{
	for (size_t p = 0; p < plan->nphases; p++)
		if (plan->phases[p].n)
			return true;
	return false;
}

/* Plan and run what WANT needs of what the snapshot saw. True when it acted. */
static bool
converge(struct side *sd, const struct vd_desired *want, size_t n, struct msg *snap)
{
	struct vd_error err = VD_ERROR_INIT;
	struct vd_plan plan = { 0 };
	struct vd_plan_opts po = { .prune = false };
	struct vd_reconcile_opts ro;
	struct vd_reconcile_result res;
	bool acted = false;

	if (vd_plan_make(want, n, &snap->list, &po, &plan, &err) < 0) {
		vd_error_log("controller: plan: %s", err.msg);
		return false;
	}
	drop_held(sd->c, &plan);
	if (plan_has_actions(&plan)) {
		acted = true;
		run_opts(sd->c, &ro, sd->log);
		ro.engines = &sd->es;
		ro.record_dir = sd->c->dir;
		ro.timeout_ms = 60000;
		if (vd_reconcile_run(&plan, &ro, &res, &err) < 0)
			vd_warn("controller: reconcile: %s", err.msg);
	}
	vd_plan_clear(&plan);
	return acted;
}

/* Say which services are held, once each time that changes: a file that
 * does not parse is held until it is fixed, and every pass would see it. */
static void
log_held(struct side *sd, const struct vd_state_held *held, size_t n)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		return;
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s: %s\n", held[i].service, held[i].why);
	fclose(f);
	if (text && (!sd->held || strcmp(text, sd->held) != 0)) {
		for (size_t i = 0; i < n; i++)
			vd_error_log("%s: held, its record cannot be used: %s", held[i].service,
				     held[i].why);
		if (!n && sd->held && *sd->held)
			vd_info("controller: no service is held any more");
		free(sd->held);
		sd->held = text;
		return;
	}
	free(text);
}

/* Make the engines match the recorded state once; tell the loop what they
 * hold. Returns the ms until it should run again at the latest. */
static int64_t
reconcile(struct side *sd)
{
	struct controller *c = sd->c;
	struct vd_error err = VD_ERROR_INIT;
	struct vd_manifest *m = NULL;
	struct msg *snap = ctrl_msg_new(MSG_SNAPSHOT);
	struct vd_desired *want = NULL;
	char **idents = NULL, **made = NULL;
	int64_t next = c->o->resync_ms > 0 ? c->o->resync_ms : RESYNC_MS, due;
	int lock = -1;

	if (!snap || !(snap->engines = calloc(sd->es.n + 1, sizeof(*snap->engines)))) {
		if (snap)
			ctrl_msg_free(snap);
		return RETRY_MS;
	}
	snap->nengines = sd->es.n;
	/* a command at work on the directory (a CLI apply begun before this
	 * controller started) is left to finish */
	if (vd_state_lock(c->dir, "controller", false, NULL, &lock, &err) != 0) {
		if (err.code)
			vd_warn("controller: %s", err.msg);
		else
			vd_debug("controller: another vdctl works on %s: reconciling later", c->dir);
		ctrl_msg_free(snap);
		return RETRY_MS;
	}
	if (vd_state_load_all(c->dir, &m, &snap->held, &snap->nheld, &err) < 0) {
		vd_error_log("controller: the state directory: %s", err.msg);
		ctrl_msg_free(snap);
		vd_state_unlock(lock);
		return RETRY_MS;
	}
	log_held(sd, snap->held, snap->nheld);
	if (!(idents = identities(c, m)) ||
	    vd_apply_desired(m, idents, &want, &made, &err) < 0 ||
	    vd_apply_place(want, m->nservices, &sd->es, &err) < 0 ||
	    !(snap->placed = calloc(m->nservices + 1, sizeof(*snap->placed)))) {
		vd_error_log("controller: %s", err.msg[0] ? err.msg : "out of memory");
		goto out;
	}
	for (size_t i = 0; i < sd->es.n; i++)
		sd->es.v[i].need = VD_ENGINE_SKIP;
	for (size_t i = 0; i < m->nservices; i++) {
		vd_engines_need(vd_engines_find(&sd->es, want[i].engine), VD_ENGINE_ASK);
		snprintf(snap->placed[i], sizeof(snap->placed[i]), "%s", want[i].engine);
	}
	vd_debug("controller: reconcile");
	if (!observe(sd, snap))
		goto out;
	vd_debug("controller: observed %zu replicas", snap->list.n);
	if (heal(sd, want, m->nservices, &snap->list) > 0 && !observe(sd, snap))
		goto out;
	if (converge(sd, want, m->nservices, snap) && !observe(sd, snap))
		goto out;
	snap->observed = true;
out:
	if (!snap->observed)
		next = RETRY_MS;
	/* the earliest held index is due then */
	pthread_mutex_lock(&c->lock);
	due = vd_restarts_next_due(&c->book, vd_clock_ms());
	pthread_mutex_unlock(&c->lock);
	if (due >= 0 && due < next)
		next = due;
	vd_apply_desired_free(want, made, m->nservices);
	free_strv(idents, m->nservices);
	snap->failures = vd_state_failures(c->dir);
	snap->declared = json_object();
	for (size_t i = 0; snap->declared && i < m->nservices; i++) {
		struct vd_state_declared d;

		if (vd_state_declared_of(c->dir, m->services[i].name, &d) == 0)
			json_object_set_new(snap->declared, m->services[i].name,
					    json_pack("{s:i, s:I, s:I}", "replicas", d.replicas,
						      "milli_cpus", (json_int_t)d.milli_cpus,
						      "memory_bytes", (json_int_t)d.memory_bytes));
	}
	vd_state_unlock(lock);
	snap->desired = m;
	ctrl_post(c, snap);
	return next;
}

/* ---------------------------------------------------------------- jobs */

/* The end of a job; BALANCERS (taken) name the services whose balancer the
 * loop must have listening before it says the job went well. */
static void
end_job(struct controller *c, struct stream *s, int code, const char *error, json_t *balancers,
	int count)
{
	struct msg *m = ctrl_msg_new(MSG_END);

	if (!m) {
		json_decref(balancers);
		return;
	}
	m->stream = s;
	m->code = code;
	m->text = error && *error ? strdup(error) : NULL;
	m->balancers = balancers;
	m->count = count;
	ctrl_post(c, m);
}

/* The services of an apply request that declare a balancer. */
static json_t *
balancers_of(const json_t *body)
{
	const json_t *services = json_object_get(body, "services"), *s;
	json_t *names = json_array();
	size_t i;

	json_array_foreach(services, i, s)
		if (json_is_object(json_object_get(s, "balancer")))
			json_array_append_new(names, json_string(json_string_value(
							     json_object_get(s, "service"))));
	return names;
}

/* The services of an apply request, parsed as a manifest. */
static struct vd_manifest *
job_manifest(const json_t *services, struct vd_error *err)
{
	struct vd_diags diags = VD_DIAGS_INIT;
	struct vd_manifest *m = NULL;
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	size_t i;
	json_t *s;

	if (!f) {
		vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
		return NULL;
	}
	json_array_foreach(services, i, s) {
		char *one = json_dumps(s, JSON_COMPACT | VD_MANIFEST_JSON_PRECISION);

		fprintf(f, "%s%s\n", i ? "---\n" : "", one ? one : "");
		free(one);
	}
	fclose(f);
	if (vd_manifest_parse("request", text, len, &m, &diags, err) < 0 && diags.n)
		vd_error_set(err, VD_EXIT_INPUT, "%s", diags.items[0].msg);
	vd_diags_clear(&diags);
	free(text);
	return m;
}

static bool
opt_bool(const json_t *body, const char *key, bool def)
{
	const json_t *v = json_object_get(body, key);

	return v ? json_is_true(v) : def;
}

static void
job_apply(struct controller *c, const json_t *body, struct vd_apply_opts *o,
	  struct vd_error *err)
{
	const json_t *ids = json_object_get(body, "identities"), *v;
	const char *other;
	struct vd_manifest *m = job_manifest(json_object_get(body, "services"), err);
	struct vd_apply_result res;
	struct vd_desired *want = NULL;
	struct vd_state_declared *decl = NULL;
	char **idents = NULL, **made = NULL;

	o->quiet_undeclared = opt_bool(body, "quiet_undeclared", false);
	if (m && (other = ctrl_metrics_conflict(c, m))) {
		vd_error_set(err, VD_EXIT_INPUT, "service '%s': balancer address %s:%d is the "
			     "controller's metrics listener; nothing was changed", other,
			     c->o->metrics_host, c->o->metrics_port);
	} else if (m && (idents = calloc(m->nservices + 1, sizeof(*idents)))) {
		for (size_t i = 0; i < m->nservices; i++)
			if ((v = json_array_get(ids, i)) && json_is_string(v))
				idents[i] = strdup(json_string_value(v));
		if (vd_apply_desired(m, idents, &want, &made, err) == 0 &&
		    (decl = calloc(m->nservices + 1, sizeof(*decl)))) {
			for (size_t i = 0; i < m->nservices; i++) {
				v = json_array_get(json_object_get(body, "declared"), i);
				if (!json_is_object(v))
					continue;
				decl[i].replicas = (int)json_integer_value(
					json_object_get(v, "replicas"));
				decl[i].milli_cpus = json_integer_value(json_object_get(v, "milli_cpus"));
				decl[i].memory_bytes = json_integer_value(
					json_object_get(v, "memory_bytes"));
				want[i].declared = &decl[i];
			}
			vd_apply(want, m->nservices, o, &res, err);
		}
		free(decl);
		vd_apply_desired_free(want, made, m->nservices);
		free_strv(idents, m->nservices);
	} else if (m) {
		vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
	}
	vd_manifest_free(m);
}

static void
job_delete(const json_t *body, struct vd_apply_opts *o, struct vd_error *err)
{
	const json_t *names = json_object_get(body, "services");
	size_t n = json_array_size(names);
	const char **v = calloc(n + 1, sizeof(*v));
	struct vd_apply_result res;

	for (size_t i = 0; v && i < n; i++)
		v[i] = json_string_value(json_array_get(names, i));
	if (v)
		vd_apply_delete(v, n, o, &res, err);
	else
		vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
	free(v);
}

/*
 * The autoscaler's job: set SERVICE's recorded count to `replicas` and
 * apply it (no health wait: the loop checks new replicas itself). When the
 * node refuses that many, one fewer is tried, down to one above `floor`
 * (the count it had): *count is what was set, -1 when nothing was.
 */
static void
job_scale(struct controller *c, const json_t *body, struct vd_apply_opts *o,
	  struct vd_error *err, int *count)
{
	const char *service = json_string_value(json_object_get(body, "service"));
	int want = (int)json_integer_value(json_object_get(body, "replicas"));
	int floor = (int)json_integer_value(json_object_get(body, "floor"));
	struct vd_diags diags = VD_DIAGS_INIT;
	struct vd_manifest *m = NULL;
	struct vd_desired *want_v = NULL;
	struct vd_state_declared decl;
	struct vd_apply_result res;
	char **idents = NULL, **made = NULL;

	*count = -1;
	if (!service || vd_state_load(c->dir, service, &m, &diags, err) < 0) {
		if (!err->code)
			vd_error_set(err, VD_EXIT_FAILURE, "no service to scale");
		vd_diags_clear(&diags);
		return;
	}
	if (!m->services[0].autoscale.enabled) {
		vd_error_set(err, VD_EXIT_INPUT, "service '%s' is no longer autoscaled", service);
		goto out;
	}
	/* an apply since the decision may have moved the bounds */
	if (want > m->services[0].autoscale.max)
		want = m->services[0].autoscale.max;
	if (want < m->services[0].autoscale.min)
		want = m->services[0].autoscale.min;
	if ((idents = identities(c, m)) &&
		   vd_apply_desired(m, idents, &want_v, &made, err) == 0) {
		if (vd_state_declared_of(c->dir, service, &decl) == 0)
			want_v[0].declared = &decl;
		for (int n = want;; n--) {
			struct vd_error e = VD_ERROR_INIT;

			m->services[0].replicas = n;
			if (vd_apply(want_v, 1, o, &res, &e) == 0) {
				*count = n;
				if (n != want) /* the first refusal says why */
					break;
				vd_error_clear(err);
				break;
			}
			if (!err->code)
				*err = e;
			/* only the node's room is worth a smaller step */
			if (want <= floor || n <= floor + 1 || e.code != VD_EXIT_INPUT ||
			    !strstr(e.msg, "refusing to apply"))
				break;
		}
		vd_apply_desired_free(want_v, made, m->nservices);
	} else if (!idents) {
		vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
	}
out:
	free_strv(idents, m->nservices);
	vd_manifest_free(m);
}

static int64_t reconcile(struct side *sd);

static void
run_job(struct side *sd, struct job *j)
{
	struct controller *c = sd->c;
	struct vd_error err = VD_ERROR_INIT;
	struct vd_apply_opts o = { 0 };
	FILE *out = line_file(stream_write, j->stream);
	int count = -1;

	if (!out) {
		end_job(c, j->stream, VD_EXIT_FAILURE, "out of memory", NULL, -1);
		return;
	}
	o.node = c->o->node;
	o.state_dir = c->dir;
	o.out = out;
	o.prune = opt_bool(j->body, "prune", false);
	o.overcommit = opt_bool(j->body, "overcommit", false);
	o.must_exist = opt_bool(j->body, "must_exist", false);
	o.verb = json_string_value(json_object_get(j->body, "verb"));
	run_opts(c, &o.run, out);
	o.run.wait = opt_bool(j->body, "wait", true);
	o.run.timeout_ms = json_integer_value(json_object_get(j->body, "timeout_ms"));
	o.run.parallel = (int)json_integer_value(json_object_get(j->body, "parallel"));
	if (j->kind == JOB_SCALE) {
		o.verb = "autoscale";
		o.run.wait = false;
		job_scale(c, j->body, &o, &err, &count);
	} else if (j->kind == JOB_APPLY) {
		job_apply(c, j->body, &o, &err);
	} else {
		job_delete(j->body, &o, &err);
	}
	fclose(out);
	/* the loop takes on what was applied before it hears the end, so that
	 * the end can say whether the balancers listen */
	if ((j->kind == JOB_APPLY && !err.code) || count >= 0)
		reconcile(sd);
	end_job(c, j->stream, err.code, err.msg,
		j->kind == JOB_APPLY && !err.code ? balancers_of(j->body) : NULL, count);
}

/* -------------------------------------------------------------- events */

/* Reconcile within AFTER ms (sooner if it is due sooner already). */
static int64_t on_timer(struct vd_ev *ev, void *arg);

static void
schedule(struct side *sd, int64_t after)
{
	int64_t at = vd_clock_ms() + after;

	if (sd->timer > 0 && sd->due <= at)
		return;
	if (sd->timer > 0)
		vd_ev_timer_cancel(sd->ev, sd->timer);
	sd->timer = vd_ev_timer(sd->ev, after, on_timer, sd);
	sd->due = at;
	if (sd->timer < 0)
		vd_warn("controller: cannot set a timer: out of memory");
}

static void
watch_close(struct side *sd, struct watch *w)
{
	if (w->d && w->h.fd >= 0)
		vd_ev_del(sd->ev, &w->h);
	vd_driver_close(w->d);
	w->d = NULL;
	w->h.fd = -1;
}

/* Read what an event stream has; false when it broke. */
static bool
watch_read(struct side *sd, struct watch *w)
{
	struct vd_error err = VD_ERROR_INIT;
	struct vd_event e;
	int r;

	while ((r = vd_driver_events_read(w->d, &e, &err)) == 1) {
		vd_debug("controller: event %s %s-%d", vd_driver_event_name(e.kind), e.service,
			 e.index);
		/* its list may not know yet: ask about this one */
		vd_engines_suspect(&sd->es, sd->es.v[w->engine].name, e.id);
		if (e.kind == VD_EVENT_DIE || e.kind == VD_EVENT_OOM)
			ctrl_post_replica(sd->c, MSG_GONE, e.service, e.index, e.id);
	}
	if (r < 0) {
		vd_warn("controller: %s", err.msg);
		watch_close(sd, w);
		return false;
	}
	return true;
}

static void
on_watch(struct vd_ev *ev, struct vd_ev_handle *h, uint32_t events)
{
	struct watch *w = (struct watch *)h;
	struct side *sd = w->sd;

	(void)ev;
	(void)events;
	/* anything an engine says is worth a look */
	schedule(sd, watch_read(sd, w) ? SETTLE_MS : 0);
}

static void
watch_open(struct side *sd, struct watch *w)
{
	const struct vd_engine *e = &sd->es.v[w->engine];
	struct vd_error err = VD_ERROR_INIT;

	if (w->d)
		return;
	if (vd_engine_connect(e, &w->d, &err) < 0 ||
	    (w->h.fd = vd_driver_events_open(w->d, &err)) < 0 ||
	    vd_ev_add(sd->ev, &w->h, EPOLLIN) < 0) {
		vd_debug("controller: %s events: %s", e->name,
			 err.msg[0] ? err.msg : strerror(errno));
		if (w->d && w->h.fd >= 0)
			w->h.events = 0; /* not in the loop */
		vd_driver_close(w->d);
		w->d = NULL;
		w->h.fd = -1;
	}
}

static int64_t
on_timer(struct vd_ev *ev, void *arg)
{
	struct side *sd = arg;
	int64_t next;

	(void)ev;
	sd->timer = 0;
	next = reconcile(sd);
	/* watch the engines the desired state uses */
	for (size_t i = 0; i < sd->es.n; i++)
		sd->es.v[i].asked ? watch_open(sd, &sd->w[i]) : watch_close(sd, &sd->w[i]);
	schedule(sd, next);
	return -1;
}

static void
on_wake(struct vd_ev *ev, struct vd_ev_handle *h, uint32_t events)
{
	struct side *sd = (struct side *)((char *)h - offsetof(struct side, wake));
	struct controller *c = sd->c;
	bool again = false;
	struct job *j;
	uint64_t v;

	(void)events;
	if (read(h->fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		vd_warn("controller: eventfd: %s", strerror(errno));
	for (;;) {
		pthread_mutex_lock(&c->lock);
		if (c->stopping) {
			pthread_mutex_unlock(&c->lock);
			vd_ev_stop(ev);
			return;
		}
		if ((j = c->jobs)) {
			c->jobs = j->next;
			if (!c->jobs)
				c->jobs_tail = &c->jobs;
		}
		again = again || c->want_reconcile;
		c->want_reconcile = false;
		pthread_mutex_unlock(&c->lock);
		if (!j)
			break;
		run_job(sd, j);
		json_decref(j->body);
		free(j);
		schedule(sd, 0); /* what the job did is worth a snapshot */
	}
	if (again)
		schedule(sd, SETTLE_MS);
}

static int
side_init(struct side *sd, struct controller *c)
{
	struct vd_error err = VD_ERROR_INIT;

	memset(sd, 0, sizeof(*sd));
	sd->c = c;
	sd->log = line_file(log_write, NULL);
	if (!(sd->ev = vd_ev_new(&err)) || vd_engines_init(&sd->es, c->o->node, &err) < 0 ||
	    vd_engines_own(&sd->es, &err) < 0 || !(sd->w = calloc(sd->es.n + 1, sizeof(*sd->w)))) {
		vd_error_log("controller: the engine thread: %s",
			     err.msg[0] ? err.msg : "out of memory");
		return -1;
	}
	for (size_t i = 0; i < sd->es.n; i++)
		sd->w[i] = (struct watch){ { -1, 0, on_watch }, sd, NULL, i };
	sd->wake.fd = c->wake_fd;
	sd->wake.fn = on_wake;
	if (vd_ev_add(sd->ev, &sd->wake, EPOLLIN) < 0) {
		vd_error_log("controller: the engine thread: epoll: %s", strerror(errno));
		return -1;
	}
	schedule(sd, 0);
	return 0;
}

static void
side_release(struct side *sd)
{
	for (size_t i = 0; sd->w && i < sd->es.n; i++)
		watch_close(sd, &sd->w[i]);
	free(sd->w);
	free(sd->held);
	vd_engines_release(&sd->es);
	vd_ev_free(sd->ev);
	if (sd->log)
		fclose(sd->log);
}

void *
ctrl_engine_thread(void *arg)
{
	struct controller *c = arg;
	struct side sd;

	if (side_init(&sd, c) == 0)
		vd_ev_run(sd.ev);
	side_release(&sd);
	pthread_mutex_lock(&c->lock);
	c->worker_done = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	return NULL;
}
