/*
 * Apply and delete: place, observe, plan, check capacity, record, reconcile
 * (see vd/apply.h).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vd/apply.h"
#include "vd/ctlclient.h"
#include "vd/log.h"
#include "vd/state.h"
#include "vd/units.h"

/* ------------------------------------------------------------- desired */

int
vd_apply_desired(const struct vd_manifest *m, char *const *identities, struct vd_desired **out,
		 char ***idents_out, struct vd_error *err)
{
	struct vd_desired *want = calloc(m->nservices + 1, sizeof(*want));
	char **idents = calloc(m->nservices + 1, sizeof(*idents));

	if (!want || !idents) {
		free(want);
		free(idents);
		return vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
	}
	for (size_t i = 0; i < m->nservices; i++) {
		const struct vd_service *svc = &m->services[i];
		char real[PATH_MAX];

		if (identities && identities[i])
			idents[i] = strdup(identities[i]);
		else if (svc->file && realpath(svc->file, real))
			idents[i] = strdup(real);
		else
			idents[i] = strdup(svc->file ? svc->file : "-");
		if (!idents[i]) {
			vd_apply_desired_free(want, idents, i);
			return vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
		}
		want[i].svc = svc;
		want[i].manifest = idents[i];
		vd_plan_spec_hash(svc, want[i].spec_hash);
	}
	*out = want;
	*idents_out = idents;
	return 0;
}

void
vd_apply_desired_free(struct vd_desired *want, char **idents, size_t n)
{
	for (size_t i = 0; idents && i < n; i++)
		free(idents[i]);
	free(idents);
	free(want);
}

int
vd_apply_place(struct vd_desired *want, size_t n, struct vd_engines *es, struct vd_error *err)
{
	for (size_t i = 0; i < n; i++) {
		const struct vd_engine *e = vd_engines_for(es, want[i].svc->backend);

		if (!e)
			return vd_error_set(err, VD_EXIT_INPUT, "service '%s': no %s engine is "
					    "configured", want[i].svc->name,
					    vd_manifest_backend_name(want[i].svc->backend));
		want[i].engine = e->name;
	}
	return 0;
}

/* ------------------------------------------------------------ capacity */

static bool
pruned(const struct vd_desired *want, size_t n, const struct vd_replica *h, bool prune)
{
	for (size_t i = 0; prune && h->labels.manifest && i < n; i++)
		if (strcmp(want[i].manifest, h->labels.manifest) == 0)
			return true;
	return false;
}

/* Is engine NAME on NODE? */
static bool
on_node(struct vd_engines *es, const char *name, const char *node)
{
	const struct vd_engine *e = vd_engines_find(es, name);

	return e && strcmp(e->node, node) == 0;
}

/*
 * What NODE must hold once the plan has run, at its peak (with the surge
 * replicas of rolling replacements), against what it holds now. Only a plan
 * that asks for more than the node has, and more than is running there now,
 * is refused: a scale-down or a no-op on a full node goes through. The
 * node's size comes from the first of its engines the services use.
 */
static int
check_node(struct vd_engines *es, const char *node, const struct vd_desired *want, size_t nwant,
	   const struct vd_replica_list *have, const struct vd_plan *plan, bool prune,
	   struct vd_error *err)
{
	struct vd_capacity cap = { 0, 0 };
	int64_t cpus = 0, mem = 0, now_cpus = 0, now_mem = 0, other_cpus = 0, other_mem = 0;
	int64_t surge_cpus = 0, surge_mem = 0;
	char who[1024] = "", a[32], b[32], c[32], d[32];
	size_t len = 0;

	for (size_t i = 0; i < nwant && !cap.cpus; i++)
		if (on_node(es, want[i].engine, node) &&
		    vd_engine_capacity(vd_engines_find(es, want[i].engine), &cap, err) < 0)
			return -1;
	if (!cap.cpus)
		return 0;
	for (size_t i = 0; i < nwant; i++) {
		const struct vd_service *s = want[i].svc;

		if (!on_node(es, want[i].engine, node))
			continue;
		cpus += s->milli_cpus * s->replicas;
		mem += s->memory_bytes * s->replicas;
		if (len < sizeof(who) - 1)
			len += (size_t)snprintf(who + len, sizeof(who) - len, "%s%s: %d x %s cpus, "
						"%d x %s", len ? "; " : "", s->name, s->replicas,
						vd_units_format_milli_cpus(s->milli_cpus, a, sizeof(a)),
						s->replicas,
						vd_units_format_size(s->memory_bytes, b, sizeof(b)));
	}
	for (size_t i = 0; i < have->n; i++) {
		const struct vd_replica *h = &have->v[i];
		const struct vd_desired *w = vd_plan_find(want, nwant, h->labels.service);

		if (!on_node(es, h->engine, node))
			continue;
		now_cpus += h->milli_cpus;
		now_mem += h->memory_bytes;
		if (w || pruned(want, nwant, h, prune))
			continue;
		other_cpus += h->milli_cpus;
		other_mem += h->memory_bytes;
	}
	for (size_t p = 0; plan && p < plan->nphases; p++)
		for (size_t i = 0; i < plan->phases[p].n; i++) {
			const struct vd_action *x = &plan->phases[p].v[i];

			if (x->reason == VD_WHY_SURGE && on_node(es, x->want->engine, node)) {
				surge_cpus += x->want->svc->milli_cpus;
				surge_mem += x->want->svc->memory_bytes;
			}
		}
	if (other_cpus || other_mem) {
		if (len < sizeof(who) - 1)
			len += (size_t)snprintf(who + len, sizeof(who) - len,
						"; other services' replicas: %s cpus, %s",
						vd_units_format_milli_cpus(other_cpus, a, sizeof(a)),
						vd_units_format_size(other_mem, b, sizeof(b)));
		cpus += other_cpus;
		mem += other_mem;
	}
	if (surge_cpus || surge_mem) {
		if (len < sizeof(who) - 1)
			snprintf(who + len, sizeof(who) - len,
				 "; surge replicas during the rollout: %s cpus, %s",
				 vd_units_format_milli_cpus(surge_cpus, a, sizeof(a)),
				 vd_units_format_size(surge_mem, b, sizeof(b)));
		cpus += surge_cpus;
		mem += surge_mem;
	}
	if ((cpus <= (int64_t)cap.cpus * 1000 || cpus <= now_cpus) &&
	    (mem <= cap.memory_bytes || mem <= now_mem))
		return 0;
	return vd_error_set(err, VD_EXIT_INPUT,
			    "refusing to apply: it needs %s cpus and %s of memory, the node has "
			    "%d cpus and %s (%s); nothing was changed; --overcommit applies anyway",
			    vd_units_format_milli_cpus(cpus, c, sizeof(c)),
			    vd_units_format_size(mem, d, sizeof(d)), cap.cpus,
			    vd_units_format_size(cap.memory_bytes, a, sizeof(a)), who);
}

/* Every node the services go to. */
static int
check_capacity(struct vd_engines *es, const struct vd_desired *want, size_t nwant,
	       const struct vd_replica_list *have, const struct vd_plan *plan, bool prune,
	       struct vd_error *err)
{
	for (size_t i = 0; i < nwant; i++) {
		const char *node = vd_engines_find(es, want[i].engine)->node;
		bool done = false;

		for (size_t j = 0; j < i && !done; j++)
			done = on_node(es, want[j].engine, node);
		if (!done && check_node(es, node, want, nwant, have, plan, prune, err) < 0)
			return -1;
	}
	return 0;
}

/* ------------------------------------------------------------- conflicts */

/*
 * A service may not take a balancer address another recorded service has:
 * refuse before anything changes, naming it (services applied together were
 * checked against each other when their manifests were loaded).
 */
static int
check_listen(const struct vd_desired *want, size_t nwant, const struct vd_manifest *rec,
	     struct vd_error *err)
{
	for (size_t i = 0; i < nwant; i++) {
		const struct vd_service *s = want[i].svc;

		for (size_t k = 0; rec && k < rec->nservices; k++) {
			const struct vd_service *o = &rec->services[k];

			if (strcmp(o->name, s->name) != 0 && !vd_plan_find(want, nwant, o->name) &&
			    vd_manifest_listen_conflict(o, s))
				return vd_error_set(err, VD_EXIT_INPUT,
						    "service '%s': balancer address %s:%d is "
						    "already used by service '%s'; nothing was "
						    "changed", s->name, s->balancer.listen_host,
						    s->balancer.listen_port, o->name);
		}
	}
	return 0;
}

/*
 * The engines a pass asks: those the services go to must answer; those any
 * recorded service is on are asked too, so that a service that moved leaves
 * nothing behind and the capacity check counts every replica this state
 * directory has on a node, whichever command runs. Asking only those keeps
 * the others' libraries unloaded (libvirt's is 13 MB resident).
 */
static void
ask_engines(struct vd_engines *es, const struct vd_desired *want, size_t nwant,
	    const struct vd_manifest *rec, size_t nheld, bool all)
{
	for (size_t i = 0; i < nwant; i++)
		vd_engines_need(vd_engines_find(es, want[i].engine), VD_ENGINE_REQUIRE);
	/* without a record, or with one that cannot be read, anywhere */
	if (all || !rec || nheld)
		vd_engines_need_all(es, VD_ENGINE_ASK);
	for (size_t k = 0; rec && k < rec->nservices; k++)
		vd_engines_need(vd_engines_for(es, rec->services[k].backend), VD_ENGINE_ASK);
}

/*
 * Apply wins over scale and resize, as kubectl's does, but never silently:
 * when the desired state of a service drifted from its unchanged manifest
 * by a command since it was applied, say what applying it sets back.
 */
static void
note_drift(FILE *f, const char *dir, const struct vd_desired *want, size_t nwant,
	   const struct vd_manifest *rec)
{
	for (size_t i = 0; dir && rec && i < nwant; i++) {
		const struct vd_service *w = want[i].svc, *r = vd_manifest_find(rec, w->name);
		struct vd_state_declared d;
		char a[32], b[32];

		if (want[i].declared || !r || vd_state_declared_of(dir, w->name, &d) < 0)
			continue;
		if (r->replicas != w->replicas && d.replicas == w->replicas)
			fprintf(f, "note: service '%s' was scaled to %d since its manifest was "
				"applied; applying it sets %d replicas again\n", w->name,
				r->replicas, w->replicas);
		if (r->milli_cpus != w->milli_cpus && d.milli_cpus == w->milli_cpus)
			fprintf(f, "note: service '%s' was resized to %s cpus since its manifest "
				"was applied; applying it sets %s again\n", w->name,
				vd_units_format_milli_cpus(r->milli_cpus, a, sizeof(a)),
				vd_units_format_milli_cpus(w->milli_cpus, b, sizeof(b)));
		if (r->memory_bytes != w->memory_bytes && d.memory_bytes == w->memory_bytes)
			fprintf(f, "note: service '%s' was resized to %s of memory since its "
				"manifest was applied; applying it sets %s again\n", w->name,
				vd_units_format_size(r->memory_bytes, a, sizeof(a)),
				vd_units_format_size(w->memory_bytes, b, sizeof(b)));
	}
}

/* Does the plan make (create or replace) replicas of D? */
static bool
makes(const struct vd_plan *plan, const struct vd_desired *d)
{
	for (size_t p = 0; p < plan->nphases; p++)
		for (size_t i = 0; i < plan->phases[p].n; i++)
			if (plan->phases[p].v[i].want == d &&
			    (plan->phases[p].v[i].kind == VD_ACT_CREATE ||
			     plan->phases[p].v[i].kind == VD_ACT_REPLACE))
				return true;
	return false;
}

/*
 * What the engines can tell before anything changes: the image of each
 * service the plan makes replicas of is there, its VM's boot files can be
 * read. Refused here (exit 2), nothing is recorded or made.
 */
static int
check_makeable(struct vd_engines *es, const struct vd_desired *want, size_t nwant,
	       const struct vd_plan *plan, struct vd_error *err)
{
	for (size_t i = 0; i < nwant; i++) {
		const struct vd_engine *e = vd_engines_find(es, want[i].engine);
		struct vd_driver *d = NULL;
		int ret;

		if (!makes(plan, &want[i]))
			continue;
		if (vd_engine_connect(e, &d, err) < 0)
			return -1;
		ret = vd_driver_check(d, want[i].svc, err);
		vd_driver_close(d);
		if (ret < 0) {
			char msg[VD_ERROR_MSG_MAX];

			snprintf(msg, sizeof(msg), "%s", err->msg);
			return vd_error_set(err, err->code, "%.*s; nothing was changed",
					    (int)sizeof(msg) - 32, msg);
		}
	}
	return 0;
}

/* --------------------------------------------------------------- apply */

static void
summary(FILE *f, const char *verb, const struct vd_reconcile_result *r, int unchanged)
{
	fprintf(f, "%s: %d created, %d started, %d resized, %d replaced, %d removed, %d unchanged "
		"in %.2fs\n", verb, r->created, r->started, r->resized, r->replaced, r->removed,
		unchanged, r->seconds);
}

/* Services this manifest declared before and no longer does. */
static void
note_undeclared(FILE *f, const struct vd_desired *want, size_t n, const struct vd_plan *plan,
		const struct vd_replica_list *have)
{
	for (size_t i = 0; i < plan->nundeclared; i++) {
		for (size_t j = 0; j < have->n; j++) {
			const struct vd_replica *h = &have->v[j];

			if (strcmp(h->labels.service, plan->undeclared[i]) == 0 &&
			    pruned(want, n, h, true)) {
				fprintf(f, "note: service '%s' is no longer declared here; its "
					"replicas were left alone (--prune removes them)\n",
					plan->undeclared[i]);
				break;
			}
		}
	}
}

/* A replica the plan leaves as it is (or only resizes). */
static bool
kept(const struct vd_plan *plan, const struct vd_replica *h)
{
	for (size_t p = 0; p < plan->nphases; p++)
		for (size_t i = 0; i < plan->phases[p].n; i++) {
			const struct vd_action *a = &plan->phases[p].v[i];

			if (a->have == h && a->kind != VD_ACT_RESIZE)
				return false;
		}
	return h->state == VD_STATE_RUNNING;
}

/* --wait promises every desired replica healthy at the end, including the
 * ones this run did not touch (a run killed earlier may have started them). */
static int
check_kept(const struct vd_desired *want, size_t nwant, const struct vd_plan *plan,
	   const struct vd_replica_list *have, const struct vd_reconcile_opts *run,
	   struct vd_error *err)
{
	const struct vd_replica **reps = calloc(have->n + 1, sizeof(*reps));
	const struct vd_service **svcs = calloc(have->n + 1, sizeof(*svcs));
	struct vd_reconcile_result r;
	size_t n = 0;
	int ret;

	if (!reps || !svcs) {
		free(reps);
		free(svcs);
		return vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
	}
	for (size_t i = 0; i < have->n; i++) {
		const struct vd_replica *h = &have->v[i];
		const struct vd_desired *d = vd_plan_find(want, nwant, h->labels.service);

		if (d && strcmp(h->engine, d->engine) == 0 && h->labels.index < d->svc->replicas &&
		    kept(plan, h)) {
			reps[n] = h;
			svcs[n++] = d->svc;
		}
	}
	ret = vd_reconcile_wait(reps, svcs, n, run, &r, err);
	free(reps);
	free(svcs);
	return ret;
}

static int
record(const struct vd_desired *want, size_t n, const struct vd_plan *plan,
       const struct vd_apply_opts *o, struct vd_error *err)
{
	for (size_t i = 0; i < n; i++)
		if (vd_state_save_as(o->state_dir, want[i].svc, want[i].manifest, want[i].declared,
				     err) < 0)
			return -1;
	for (size_t p = 0; o->prune && p < plan->nphases; p++)
		for (size_t i = 0; i < plan->phases[p].n; i++)
			if (plan->phases[p].v[i].reason == VD_WHY_PRUNE &&
			    vd_state_remove(o->state_dir, plan->phases[p].v[i].have->labels.service,
					    err) < 0)
				return -1;
	return 0;
}

/* Ask the engine SERVICE was recorded on, when it was recorded; every
 * engine when its record cannot be read. Asking only the engines a pass
 * needs keeps the others' libraries unloaded (libvirt's is 13 MB resident). */
static void
ask_recorded(struct vd_engines *es, const char *dir, const char *service)
{
	struct vd_diags diags = VD_DIAGS_INIT;
	struct vd_error e = VD_ERROR_INIT;
	struct vd_manifest *m = NULL;
	char ident[PATH_MAX];

	if (!dir) {
		vd_engines_need_all(es, VD_ENGINE_ASK);
		return;
	}
	if (vd_state_manifest_of(dir, service, ident, sizeof(ident)) < 0)
		return; /* never applied */
	if (vd_state_load(dir, service, &m, &diags, &e) == 0 && m->nservices)
		vd_engines_need(vd_engines_for(es, m->services[0].backend), VD_ENGINE_ASK);
	else
		vd_engines_need_all(es, VD_ENGINE_ASK);
	vd_diags_clear(&diags);
	vd_manifest_free(m);
}

/*
 * A plan may act on limits the engine layer took from its record rather
 * than from the engine (vd/engine.h): before it resizes or replaces a
 * replica for its limits, ask the engine. True when a record changed (the
 * plan must be made again).
 */
static bool
verify_limits(struct vd_engines *es, struct vd_replica_list *have, const struct vd_plan *plan)
{
	bool changed = false;

	for (size_t p = 0; p < plan->nphases; p++)
		for (size_t i = 0; i < plan->phases[p].n; i++) {
			const struct vd_action *a = &plan->phases[p].v[i];
			struct vd_replica *h = a->have ? &have->v[a->have - have->v] : NULL;
			struct vd_error e = VD_ERROR_INIT;

			if (!h || !h->recorded || (a->reason != VD_WHY_LIMITS &&
						   a->reason != VD_WHY_CEILING))
				continue;
			if (vd_engines_verify(es, h, &e) < 0)
				vd_debug("%s: %s", h->name, e.msg);
			else
				changed = true;
		}
	return changed;
}

int
vd_apply(const struct vd_desired *want_in, size_t nwant, const struct vd_apply_opts *o,
	 struct vd_apply_result *res, struct vd_error *err)
{
	struct vd_engines es;
	struct vd_replica_list have = { NULL, 0 };
	struct vd_plan plan = { 0 };
	struct vd_plan_opts po = { .prune = o->prune };
	struct vd_reconcile_opts run = o->run;
	struct vd_desired *want = calloc(nwant + 1, sizeof(*want));
	struct vd_manifest *rec = NULL;
	struct vd_state_held *held = NULL;
	size_t nheld = 0;
	char verb[32];
	int ret = -1, lock = -1;

	memset(res, 0, sizeof(*res));
	if (!want)
		return vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
	/* one at a time: what is observed stays true until the plan has run */
	if (!o->dry_run && o->state_dir &&
	    vd_state_lock(o->state_dir, o->verb ? o->verb : "apply", true, o->out, &lock,
			  err) < 0) {
		free(want);
		return -1;
	}
	memcpy(want, want_in, nwant * sizeof(*want));
	if (vd_engines_init(&es, o->node, err) < 0) {
		free(want);
		return -1;
	}
	run.engines = &es;
	run.record_dir = o->state_dir;
	if (vd_apply_place(want, nwant, &es, err) < 0 ||
	    (o->state_dir && vd_state_load_all(o->state_dir, &rec, &held, &nheld, err) < 0) ||
	    check_listen(want, nwant, rec, err) < 0)
		goto out;
	ask_engines(&es, want, nwant, rec, nheld, o->prune);
	if (vd_engines_observe(&es, 0, &have, err) < 0)
		goto out;
	if (vd_plan_make(want, nwant, &have, &po, &plan, err) < 0)
		goto out;
	if (verify_limits(&es, &have, &plan)) {
		vd_plan_clear(&plan);
		if (vd_plan_make(want, nwant, &have, &po, &plan, err) < 0)
			goto out;
	}
	res->changed = !vd_plan_empty(&plan);
	if (!o->overcommit && res->changed &&
	    check_capacity(&es, want, nwant, &have, &plan, o->prune, err) < 0) {
		if (!o->dry_run)
			goto out;
		/* a dry run shows the plan all the same, and what apply would say */
		fprintf(o->out, "note: apply would refuse this: %s\n", err->msg);
		vd_error_clear(err);
		res->refused = true;
	}
	if (check_makeable(&es, want, nwant, &plan, err) < 0)
		goto out;
	note_drift(o->out, o->state_dir, want, nwant, rec);
	if (!o->quiet_undeclared)
		note_undeclared(o->out, want, nwant, &plan, &have);
	if (o->dry_run) {
		if (res->changed)
			vd_plan_print(&plan, o->out);
		else
			fprintf(o->out, "nothing to change: %d replica%s up to date\n",
				plan.unchanged, plan.unchanged == 1 ? "" : "s");
		ret = 0;
		goto out;
	}
	/* what is made carries the state directory's id */
	if (vd_engines_own(&es, err) < 0 || (o->state_dir && record(want, nwant, &plan, o, err) < 0))
		goto out;
	if (!res->changed) {
		ret = run.wait ? check_kept(want, nwant, &plan, &have, &run, err) : 0;
		fprintf(o->out, "nothing to change: %d replica%s up to date%s\n", plan.unchanged,
			plan.unchanged == 1 ? "" : "s", ret < 0 ? ", but not all healthy" : "");
		goto out;
	}
	ret = vd_reconcile_run(&plan, &run, &res->run, err);
	if (ret == 0 && run.wait)
		ret = check_kept(want, nwant, &plan, &have, &run, err);
	snprintf(verb, sizeof(verb), "%s%s", o->verb ? o->verb : "apply", ret == 0 ? "" : " stopped");
	summary(o->out, verb, &res->run, plan.unchanged);
out:
	vd_plan_clear(&plan);
	vd_replica_list_clear(&have);
	vd_engines_release(&es);
	vd_state_held_free(held, nheld);
	vd_manifest_free(rec);
	vd_state_unlock(lock);
	free(want);
	return ret;
}

/* -------------------------------------------------------------- delete */

static bool
listed(const char *const *services, size_t n, const char *service)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(services[i], service) == 0)
			return true;
	return false;
}

int
vd_apply_delete(const char *const *services, size_t n, const struct vd_apply_opts *o,
		struct vd_apply_result *res, struct vd_error *err)
{
	struct vd_engines es;
	struct vd_replica_list have = { NULL, 0 };
	struct vd_plan plan = { 0 };
	struct vd_phase ph = { NULL, 0 };
	struct vd_reconcile_opts run = o->run;
	int ret = -1, lock = -1;

	memset(res, 0, sizeof(*res));
	if (!o->dry_run && o->state_dir &&
	    vd_state_lock(o->state_dir, "delete", true, o->out, &lock, err) < 0)
		return -1;
	if (vd_engines_init(&es, o->node, err) < 0) {
		vd_state_unlock(lock);
		return -1;
	}
	run.engines = &es;
	run.record_dir = o->state_dir;
	/* the engines the services were recorded on; every engine for one
	 * without a record (its replicas could be anywhere) */
	for (size_t i = 0; i < n; i++) {
		char ident[PATH_MAX];

		if (!o->state_dir ||
		    vd_state_manifest_of(o->state_dir, services[i], ident, sizeof(ident)) < 0)
			vd_engines_need_all(&es, VD_ENGINE_ASK);
		else
			ask_recorded(&es, o->state_dir, services[i]);
	}
	if (vd_engines_observe(&es, 0, &have, err) < 0)
		goto out;
	/* a name that is neither recorded nor held is a mistake: nothing goes */
	for (size_t i = 0; i < n; i++) {
		bool held = false;

		for (size_t k = 0; k < have.n && !held; k++)
			held = strcmp(have.v[k].labels.service, services[i]) == 0;
		if (o->must_exist && !held &&
		    !(o->state_dir && vd_state_known(o->state_dir, services[i]))) {
			vd_state_unknown(o->state_dir ? o->state_dir : "", services[i], NULL, 0, err);
			goto out;
		}
	}
	ph.v = calloc(have.n + 1, sizeof(*ph.v));
	plan.phases = calloc(1, sizeof(*plan.phases));
	if (!ph.v || !plan.phases) {
		free(ph.v);
		vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < have.n; i++)
		if (listed(services, n, have.v[i].labels.service))
			ph.v[ph.n++] = (struct vd_action){ VD_ACT_REMOVE, VD_WHY_DELETE, NULL,
							   have.v[i].labels.index, &have.v[i] };
	plan.phases[0] = ph;
	plan.nphases = ph.n ? 1 : 0;
	if (!ph.n)
		free(ph.v);
	res->changed = ph.n > 0;
	if (o->dry_run) {
		vd_plan_print(&plan, o->out);
		ret = 0;
		goto out;
	}
	if (ph.n && vd_reconcile_run(&plan, &run, &res->run, err) < 0) {
		summary(o->out, "delete stopped", &res->run, 0);
		goto out;
	}
	for (size_t i = 0; o->state_dir && i < n; i++)
		if (vd_state_remove(o->state_dir, services[i], err) < 0)
			goto out;
	fprintf(o->out, "delete: %d replica%s removed in %.2fs\n", res->run.removed,
		res->run.removed == 1 ? "" : "s", res->run.seconds);
	ret = 0;
out:
	vd_plan_clear(&plan);
	vd_replica_list_clear(&have);
	vd_engines_release(&es);
	vd_state_unlock(lock);
	return ret;
}

/* ------------------------------------------- here, or by the controller */

int
vd_apply_anywhere(const struct vd_desired *want, size_t n, const struct vd_apply_opts *o,
		  struct vd_apply_result *res, struct vd_error *err)
{
	int up = !o->dry_run && o->state_dir ? vd_ctlclient_up(o->state_dir, err) : 0;

	if (up < 0)
		return -1; /* acting here beside a controller would be two acting */
	if (up) {
		memset(res, 0, sizeof(*res));
		return vd_ctlclient_apply(o->state_dir, want, n, o, err);
	}
	return vd_apply(want, n, o, res, err);
}

int
vd_apply_delete_anywhere(const char *const *services, size_t n, const struct vd_apply_opts *o,
			 struct vd_apply_result *res, struct vd_error *err)
{
	int up = !o->dry_run && o->state_dir ? vd_ctlclient_up(o->state_dir, err) : 0;

	if (up < 0)
		return -1;
	if (up) {
		memset(res, 0, sizeof(*res));
		return vd_ctlclient_delete(o->state_dir, services, n, o, err);
	}
	return vd_apply_delete(services, n, o, res, err);
}
