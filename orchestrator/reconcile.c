/*
 * Reconcile: a plan's phases run by a bounded pool of worker threads, with a
 * health gate between phases (see vd/reconcile.h).
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vd/clock.h"
#include "vd/engine.h"
#include "vd/health.h"
#include "vd/log.h"
#include "vd/reconcile.h"
#include "vd/state.h"
#include "vd/units.h"

#define DEFAULT_PARALLEL 8
#define DEFAULT_TIMEOUT_MS 120000
#define DEFAULT_GRACE_S 10
#define HEALTH_POLL_MS 20

/* A replica made or started in this phase, waiting to be healthy. */
struct waiter {
	int index;
	char name[96];
	char id[80];
	char engine[VD_ENGINE_NAME_MAX];
	const struct vd_service *svc;
	char host[64];
	int port;
};

struct run {
	const struct vd_reconcile_opts *o;
	struct vd_reconcile_result *res;
	pthread_mutex_t lock;
	const struct vd_phase *phase;
	size_t next; /* the next action of the phase to take */
	struct waiter *waiters;
	size_t nwait;
	int64_t t0;
	struct vd_error first; /* the first failure, for the summary */
};

/* A worker's driver connections, one per engine of the set, opened when
 * first needed. */
struct conns {
	struct vd_engines *es;
	struct vd_driver **d;
};

static void
say(struct run *run, const char *name, const char *fmt, ...) VD_PRINTF(3, 4);

static void
say(struct run *run, const char *name, const char *fmt, ...)
{
	char what[1024];
	va_list ap;

	if (!run->o->progress)
		return;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&run->lock);
	fprintf(run->o->progress, "%-28s %s (%.1fs)\n", name, what,
		(double)(vd_clock_ms() - run->t0) / 1000);
	fflush(run->o->progress);
	pthread_mutex_unlock(&run->lock);
}

static void
failed(struct run *run, const char *name, const char *op, const struct vd_error *err)
{
	say(run, name, "%s failed: %s", op, err->msg);
	pthread_mutex_lock(&run->lock);
	run->res->failed++;
	/* an unreachable engine decides the exit status */
	if (!run->first.code || (err->code == VD_EXIT_ENGINE && run->first.code != VD_EXIT_ENGINE))
		run->first = *err;
	pthread_mutex_unlock(&run->lock);
}

static void note(struct run *run, const char *service, int index, const char *why);

/* Note ERR, after WHAT, as why SERVICE/INDEX is not there. */
static void
note_error(struct run *run, const char *service, int index, const char *what,
	   const struct vd_error *err)
{
	char why[VD_ERROR_MSG_MAX + 128];

	snprintf(why, sizeof(why), "%.100s%s", what, err->msg);
	note(run, service, index, why);
}

/* Note (or, WHY NULL, forget) why replica SERVICE/INDEX is not there, for
 * get and status. */
static void
note(struct run *run, const char *service, int index, const char *why)
{
	struct vd_error err = VD_ERROR_INIT;

	if (run->o->record_dir &&
	    vd_state_note_failure(run->o->record_dir, service, index, why, &err) < 0)
		vd_debug("cannot note why %s-%d failed: %s", service, index, err.msg);
}

static void
conns_init(struct conns *c, struct vd_engines *es)
{
	c->es = es;
	c->d = calloc(es->n + 1, sizeof(*c->d));
}

/* The engine called NAME and this worker's connection to it. */
static struct vd_driver *
conn(struct conns *c, const char *name, const struct vd_engine **e, struct vd_error *err)
{
	size_t i;

	if (!(*e = vd_engines_find(c->es, name))) {
		vd_error_set(err, VD_EXIT_FAILURE, "no engine called '%s' is configured", name);
		return NULL;
	}
	i = (size_t)(*e - c->es->v);
	if (!c->d) {
		vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
		return NULL;
	}
	if (!c->d[i] && vd_engine_connect(*e, &c->d[i], err) < 0)
		return NULL;
	return c->d[i];
}

static void
conns_close(struct conns *c)
{
	for (size_t i = 0; c->d && i < c->es->n; i++)
		vd_driver_close(c->d[i]);
	free(c->d);
	c->d = NULL;
}

static void
add_waiter(struct run *run, const struct vd_service *svc, const struct vd_replica *r)
{
	struct waiter *w;

	pthread_mutex_lock(&run->lock);
	w = realloc(run->waiters, (run->nwait + 1) * sizeof(*w));
	if (w) {
		run->waiters = w;
		w = &w[run->nwait++];
		memset(w, 0, sizeof(*w));
		snprintf(w->name, sizeof(w->name), "%s", r->name);
		snprintf(w->id, sizeof(w->id), "%s", r->id);
		snprintf(w->engine, sizeof(w->engine), "%s", r->engine);
		w->index = r->labels.index;
		snprintf(w->host, sizeof(w->host), "%s", r->host);
		w->port = r->host_port;
		w->svc = svc;
	}
	pthread_mutex_unlock(&run->lock);
}

/* ---------------------------------------------------------------- actions */

/* Stop gracefully, then remove; a replica already gone is done. A failed
 * stop still ends in the removal, which kills what did not stop. */
static int
remove_replica(struct run *run, const struct vd_engine *e, struct vd_driver *d, const char *name,
	       const char *id, struct vd_error *err)
{
	int grace = run->o->stop_grace_s < 0 ? DEFAULT_GRACE_S : run->o->stop_grace_s;
	struct vd_error ignore = VD_ERROR_INIT;

	if (run->o->before_remove)
		run->o->before_remove(run->o->hook_arg, name, id);
	vd_driver_stop(d, id, grace, &ignore);
	return vd_engine_remove(e, d, id, err);
}

/*
 * A create that finds the name taken: a run killed a moment ago may have
 * made the replica after this run's plan looked. Adopt it when it is the
 * same replica of the same spec; otherwise the error stands.
 */
static int
adopt(struct vd_driver *d, const struct vd_action *a, const char *name, const char *owner,
      struct vd_replica *r, struct vd_error *err)
{
	struct vd_error e = VD_ERROR_INIT;

	if (err->sys_errno != EEXIST)
		return -1;
	if (vd_driver_inspect(d, name, r, &e) < 0) {
		/* a driver that refuses to look at it says why */
		if (strstr(e.msg, "another state directory"))
			vd_error_set(err, VD_EXIT_FAILURE, "create %s: the name is taken: %s", name,
				     e.msg);
		return -1;
	}
	if (r->labels.owner && *r->labels.owner && strcmp(r->labels.owner, owner) != 0) {
		vd_error_set(err, VD_EXIT_FAILURE, "create %s: the name is taken by a replica "
			     "another state directory made (owner %s)", name, r->labels.owner);
		vd_replica_clear(r);
		return -1;
	}
	if (strcmp(r->labels.service, a->want->svc->name) == 0 && r->labels.index == a->index &&
	    r->labels.spec_hash && strcmp(r->labels.spec_hash, a->want->spec_hash) == 0) {
		vd_error_clear(err);
		return 0;
	}
	vd_replica_clear(r);
	return -1;
}

/* Make, start and look at replica `index` of a.want. */
static int
create_replica(struct run *run, const struct vd_engine *e, struct vd_driver *d,
	       const struct vd_action *a, const char *name, struct vd_error *err)
{
	const struct vd_desired *want = a->want;
	const char *owner = run->o->engines->owner;
	struct vd_labels l = { strdup(want->svc->name), a->index, strdup(want->spec_hash),
			       strdup(want->manifest ? want->manifest : ""), strdup(owner) };
	struct vd_replica r;
	struct vd_error ignore = VD_ERROR_INIT;
	int rc;

	if (!l.service || !l.spec_hash || !l.manifest || !l.owner)
		rc = vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
	else if (!*owner) /* a replica nobody could find again */
		rc = vd_error_set(err, VD_EXIT_FAILURE, "create %s: the state directory has no "
				  "id (vd_engines_own)", name);
	else if ((rc = vd_driver_create(d, want->svc, &l, &r, err)) < 0)
		rc = adopt(d, a, name, owner, &r, err);
	vd_replica_labels_clear(&l);
	if (rc < 0)
		return -1;
	if (vd_driver_start(d, r.id, err) < 0) {
		/* leave nothing half made behind */
		vd_driver_remove(d, r.id, &ignore);
		vd_replica_clear(&r);
		return -1;
	}
	vd_replica_clear(&r);
	if (vd_engine_inspect(e, d, name, &r, err) < 0)
		return -1;
	if (run->o->on_started)
		run->o->on_started(run->o->hook_arg, &r);
	add_waiter(run, want->svc, &r);
	vd_replica_clear(&r);
	return 0;
}

static void
act(struct run *run, struct conns *c, const struct vd_action *a)
{
	struct vd_error err = VD_ERROR_INIT;
	const char *service = a->want ? a->want->svc->name : a->have->labels.service;
	const struct vd_engine *e, *en;
	struct vd_driver *d = conn(c, a->have ? a->have->engine : a->want->engine, &e, &err);
	struct vd_driver *dn;
	char name[96], what[128];
	struct vd_replica r;

	vd_replica_name(name, sizeof(name), service, a->index);
	if (!d) {
		failed(run, name, vd_plan_action_name(a->kind), &err);
		return;
	}
	switch (a->kind) {
	case VD_ACT_CREATE:
		if (create_replica(run, e, d, a, name, &err) < 0)
			break;
		if (a->reason != VD_WHY_SURGE)
			note(run, service, a->index, NULL);
		say(run, name, "created%s", a->reason == VD_WHY_SURGE ? " (surge)" : "");
		__atomic_add_fetch(&run->res->created, 1, __ATOMIC_RELAXED);
		return;
	case VD_ACT_START:
		if (vd_driver_start(d, a->have->id, &err) < 0 ||
		    vd_engine_inspect(e, d, a->have->id, &r, &err) < 0)
			break;
		if (run->o->on_started)
			run->o->on_started(run->o->hook_arg, &r);
		add_waiter(run, a->want->svc, &r);
		vd_replica_clear(&r);
		say(run, name, "started");
		__atomic_add_fetch(&run->res->started, 1, __ATOMIC_RELAXED);
		return;
	case VD_ACT_RESIZE:
		if (vd_engine_resize(e, d, a->have->id, a->want->svc->milli_cpus,
				     a->want->svc->memory_bytes, &err) < 0)
			break;
		vd_plan_resize_text(a, what, sizeof(what));
		say(run, name, "resized live: %s", what);
		__atomic_add_fetch(&run->res->resized, 1, __ATOMIC_RELAXED);
		return;
	case VD_ACT_REPLACE:
		/* the new one may be on another engine than the old */
		if (remove_replica(run, e, d, name, a->have->id, &err) < 0 ||
		    !(dn = conn(c, a->want->engine, &en, &err)) ||
		    create_replica(run, en, dn, a, name, &err) < 0)
			break;
		note(run, service, a->index, NULL);
		say(run, name, "replaced (%s)", vd_plan_reason_name(a->reason));
		__atomic_add_fetch(&run->res->replaced, 1, __ATOMIC_RELAXED);
		return;
	case VD_ACT_REMOVE:
		/* a surge replica made by this run is known by name only */
		if (remove_replica(run, e, d, name, a->have ? a->have->id : name, &err) < 0)
			break;
		if (a->reason != VD_WHY_SURGE_DONE)
			note(run, service, a->index, NULL);
		say(run, name, "removed (%s)", vd_plan_reason_name(a->reason));
		__atomic_add_fetch(&run->res->removed, 1, __ATOMIC_RELAXED);
		return;
	}
	if (a->kind != VD_ACT_REMOVE && a->kind != VD_ACT_RESIZE && a->reason != VD_WHY_SURGE) {
		snprintf(what, sizeof(what), "%s failed: ", vd_plan_action_name(a->kind));
		note_error(run, service, a->index, what, &err);
	}
	failed(run, name, vd_plan_action_name(a->kind), &err);
}

static void *
worker(void *arg)
{
	struct run *run = arg;
	struct conns c;

	conns_init(&c, run->o->engines);
	for (;;) {
		const struct vd_action *a = NULL;

		pthread_mutex_lock(&run->lock);
		if (run->next < run->phase->n)
			a = &run->phase->v[run->next++];
		pthread_mutex_unlock(&run->lock);
		if (!a)
			break;
		act(run, &c, a);
	}
	conns_close(&c);
	return NULL;
}

static void
run_phase(struct run *run, const struct vd_phase *ph)
{
	size_t n = (size_t)(run->o->parallel > 0 ? run->o->parallel : DEFAULT_PARALLEL);
	pthread_t *t;
	size_t started = 0;

	if (n > ph->n)
		n = ph->n;
	run->phase = ph;
	run->next = 0;
	t = calloc(n, sizeof(*t));
	for (size_t i = 0; t && i < n; i++)
		if (pthread_create(&t[i], NULL, worker, run) == 0)
			started++;
	if (started == 0)
		worker(run); /* no threads to be had: do it here */
	for (size_t i = 0; i < started; i++)
		pthread_join(t[i], NULL);
	free(t);
}

/* ----------------------------------------------------------------- health */

/* Why a replica that did not become healthy did not, from the engine. */
static void
explain(struct conns *c, const struct waiter *w, const struct vd_health_target *last, char *buf,
	size_t size)
{
	struct vd_error err = VD_ERROR_INIT;
	const struct vd_engine *e;
	struct vd_driver *d = conn(c, w->engine, &e, &err);
	struct vd_replica r;
	char code[32];

	snprintf(buf, size, "last check: %s",
		 vd_health_describe(last->result, last->http_status, code, sizeof(code)));
	if (!d || vd_driver_inspect(d, w->id, &r, &err) < 0)
		return;
	if (r.state != VD_STATE_RUNNING)
		snprintf(buf, size, "it is %s%s (exit code %d)", vd_replica_state_name(r.state),
			 r.oom_killed ? ", killed for lack of memory" : "", r.exit_code);
	vd_replica_clear(&r);
}

static void
passed(void *arg, size_t i)
{
	struct run *run = arg;

	say(run, run->waiters[i].name, "healthy");
}

/* Check every waiter at once, again and again, until each passed or the
 * timeout; then say why of each that did not. */
static int
wait_healthy(struct run *run, struct vd_error *err)
{
	int64_t timeout = run->o->timeout_ms > 0 ? run->o->timeout_ms : DEFAULT_TIMEOUT_MS;
	struct vd_health_target *t = calloc(run->nwait + 1, sizeof(*t));
	struct conns c;
	size_t sick = 0;
	char why[256], tm[32];

	if (!t)
		return vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
	for (size_t i = 0; i < run->nwait; i++)
		t[i] = (struct vd_health_target){ run->waiters[i].svc, run->waiters[i].host,
						  run->waiters[i].port, VD_HEALTH_NO_ADDRESS, 0,
						  false };
	if (vd_health_wait(t, run->nwait, vd_clock_ms() + timeout, HEALTH_POLL_MS, 1000, passed,
			   run) < 0) {
		free(t);
		return vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
	}
	conns_init(&c, run->o->engines);
	for (size_t i = 0; i < run->nwait; i++) {
		struct waiter *w = &run->waiters[i];
		struct vd_error e = VD_ERROR_INIT;

		if (t[i].healthy)
			continue;
		explain(&c, w, &t[i], why, sizeof(why));
		vd_error_set(&e, VD_EXIT_FAILURE, "%s did not become healthy within %s (%s)",
			     w->name, vd_units_format_duration_ms(timeout, tm, sizeof(tm)), why);
		if (w->index >= 0 && w->index < w->svc->replicas)
			note_error(run, w->svc->name, w->index, "", &e);
		failed(run, w->name, "health check", &e);
		sick++;
	}
	conns_close(&c);
	free(t);
	free(run->waiters);
	run->waiters = NULL;
	run->nwait = 0;
	return sick ? vd_error_set(err, VD_EXIT_FAILURE, "%zu replica%s did not become healthy",
				   sick, sick == 1 ? "" : "s")
		    : 0;
}

int
vd_reconcile_wait(const struct vd_replica *const *reps, const struct vd_service *const *svcs,
		  size_t n, const struct vd_reconcile_opts *opts, struct vd_reconcile_result *res,
		  struct vd_error *err)
{
	struct run run = { .o = opts, .res = res, .lock = PTHREAD_MUTEX_INITIALIZER };
	int ret = 0;

	memset(res, 0, sizeof(*res));
	run.t0 = vd_clock_ms();
	/* one quiet pass, all at once: most are healthy, and a no-op apply
	 * stays quick */
	if (n) {
		struct vd_health_target *t = calloc(n, sizeof(*t));

		if (!t)
			return vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
		for (size_t i = 0; i < n; i++)
			t[i] = (struct vd_health_target){ svcs[i], reps[i]->host,
							  reps[i]->host_port, VD_HEALTH_TIMEOUT, 0,
							  false };
		vd_health_wait(t, n, 0, 0, 1000, NULL, NULL);
		for (size_t i = 0; i < n; i++)
			if (!t[i].healthy)
				add_waiter(&run, svcs[i], reps[i]);
		free(t);
	}
	if (run.nwait && wait_healthy(&run, err) < 0) {
		*err = run.first;
		ret = -1;
	}
	free(run.waiters);
	res->seconds = (double)(vd_clock_ms() - run.t0) / 1000;
	pthread_mutex_destroy(&run.lock);
	return ret;
}

int
vd_reconcile_run(const struct vd_plan *plan, const struct vd_reconcile_opts *opts,
		 struct vd_reconcile_result *res, struct vd_error *err)
{
	struct run run = { .o = opts, .res = res, .lock = PTHREAD_MUTEX_INITIALIZER };
	struct vd_error gate = VD_ERROR_INIT;

	memset(res, 0, sizeof(*res));
	run.t0 = vd_clock_ms();
	for (size_t i = 0; i < plan->nphases; i++) {
		run_phase(&run, &plan->phases[i]);
		if (res->failed)
			break;
		/* the next phase may remove what this one's replicas stand in for */
		if ((i + 1 < plan->nphases || opts->wait) && wait_healthy(&run, &gate) < 0)
			break;
		free(run.waiters);
		run.waiters = NULL;
		run.nwait = 0;
	}
	free(run.waiters);
	res->seconds = (double)(vd_clock_ms() - run.t0) / 1000;
	pthread_mutex_destroy(&run.lock);
	if (res->failed) {
		*err = run.first;
		return vd_error_wrap(err, "%d action%s failed; the first", res->failed,
				     res->failed == 1 ? "" : "s");
	}
	return 0;
}
