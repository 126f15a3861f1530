/*
 * Apply and delete: observe, check capacity, plan, record, reconcile
 * (see vd/apply.h).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vd/apply.h"
#include "vd/log.h"
#include "vd/state.h"
#include "vd/units.h"

#define NBACKENDS 2

/* ------------------------------------------------------------- desired */

int
vd_desired_from_manifest(const struct vd_manifest *m, char *const *identities,
			 struct vd_desired **out, char ***idents_out, struct vd_error *err)
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
			vd_desired_free(want, idents, i);
			return vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
		}
		want[i].svc = svc;
		want[i].manifest = idents[i];
		vd_spec_hash(svc, want[i].spec_hash);
	}
	*out = want;
	*idents_out = idents;
	return 0;
}

void
vd_desired_free(struct vd_desired *want, char **idents, size_t n)
{
	for (size_t i = 0; idents && i < n; i++)
		free(idents[i]);
	free(idents);
	free(want);
}

static unsigned
backends_of(const struct vd_desired *want, size_t n)
{
	unsigned mask = 0;

	for (size_t i = 0; i < n; i++)
		mask |= 1u << want[i].svc->backend;
	return mask;
}

/* ------------------------------------------------------------- observe */

int
vd_observe(const struct vd_node_config *node, unsigned required, struct vd_replica_list *out,
	   struct vd_error *err)
{
	return vd_observe_some(node, required, ~0u, out, err);
}

int
vd_observe_some(const struct vd_node_config *node, unsigned required, unsigned asked,
		struct vd_replica_list *out, struct vd_error *err)
{
	struct vd_error last = VD_ERROR_INIT;
	int answered = 0;

	out->v = NULL;
	out->n = 0;
	for (int b = 0; b < NBACKENDS; b++) {
		const struct vd_driver_ops *ops = vd_driver_ops_for(b);
		struct vd_error e = VD_ERROR_INIT;
		struct vd_replica_list l = { NULL, 0 };
		struct vd_driver *d = NULL;
		struct vd_replica *v;

		if (!((required | asked) & (1u << b)))
			continue;
		if (vd_driver_open(ops, node, &d, &e) < 0 || vd_driver_list(d, NULL, &l, &e) < 0) {
			vd_driver_close(d);
			if (required & (1u << b)) {
				vd_replica_list_clear(out);
				*err = e;
				return -1;
			}
			vd_debug("not asking the %s backend: %s", ops->name, e.msg);
			last = e;
			continue;
		}
		vd_driver_close(d);
		answered++;
		v = realloc(out->v, (out->n + l.n + 1) * sizeof(*v));
		if (!v) {
			vd_replica_list_clear(&l);
			vd_replica_list_clear(out);
			return vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
		}
		out->v = v;
		memcpy(out->v + out->n, l.v, l.n * sizeof(*l.v));
		out->n += l.n;
		free(l.v); /* the records moved */
	}
	if (!answered && (required | asked)) {
		*err = last;
		return vd_error_wrap(err, "no engine answers");
	}
	return 0;
}

/* ------------------------------------------------------------ capacity */

static const struct vd_desired *
find_want(const struct vd_desired *want, size_t n, const char *service)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(want[i].svc->name, service) == 0)
			return &want[i];
	return NULL;
}

static bool
pruned(const struct vd_desired *want, size_t n, const struct vd_replica *h, bool prune)
{
	for (size_t i = 0; prune && h->labels.manifest && i < n; i++)
		if (strcmp(want[i].manifest, h->labels.manifest) == 0)
			return true;
	return false;
}

/* The node: every backend here runs on the same machine; the first that
 * answers says how big it is. */
static int
node_capacity(const struct vd_node_config *node, unsigned backends, struct vd_capacity *cap,
	      struct vd_error *err)
{
	memset(cap, 0, sizeof(*cap));
	for (int bk = 0; bk < NBACKENDS && !cap->cpus; bk++) {
		struct vd_error e = VD_ERROR_INIT;
		struct vd_driver *d = NULL;

		if (!(backends & (1u << bk)))
			continue;
		if (vd_driver_open(vd_driver_ops_for(bk), node, &d, &e) < 0 ||
		    vd_driver_capacity(d, cap, &e) < 0) {
			vd_driver_close(d);
			*err = e;
			return -1;
		}
		vd_driver_close(d);
	}
	return 0;
}

/*
 * What the node must hold once the plan has run, at its peak (with the surge
 * replicas of rolling replacements), against what it holds now. Only a plan
 * that asks for more than the node has, and more than is running now, is
 * refused: a scale-down or a no-op on a full node goes through.
 */
int
vd_capacity_check(const struct vd_node_config *node, unsigned backends,
		  const struct vd_desired *want, size_t nwant,
		  const struct vd_replica_list *have, const struct vd_plan *plan, bool prune,
		  struct vd_error *err)
{
	struct vd_capacity cap;
	int64_t cpus = 0, mem = 0, now_cpus = 0, now_mem = 0, other_cpus = 0, other_mem = 0;
	int64_t surge_cpus = 0, surge_mem = 0;
	char who[1024] = "", a[32], b[32], c[32], d[32];
	size_t len = 0;

	if (node_capacity(node, backends, &cap, err) < 0)
		return -1;
	if (!cap.cpus)
		return 0;
	for (size_t i = 0; i < nwant; i++) {
		const struct vd_service *s = want[i].svc;

		cpus += s->milli_cpus * s->replicas;
		mem += s->memory_bytes * s->replicas;
		if (len < sizeof(who) - 1)
			len += (size_t)snprintf(who + len, sizeof(who) - len, "%s%s: %d x %s cpus, "
						"%d x %s", len ? "; " : "", s->name, s->replicas,
						vd_format_milli_cpus(s->milli_cpus, a, sizeof(a)),
						s->replicas,
						vd_format_size(s->memory_bytes, b, sizeof(b)));
	}
	for (size_t i = 0; i < have->n; i++) {
		const struct vd_replica *h = &have->v[i];

		now_cpus += h->milli_cpus;
		now_mem += h->memory_bytes;
		if (find_want(want, nwant, h->labels.service) || pruned(want, nwant, h, prune))
			continue;
		other_cpus += h->milli_cpus;
		other_mem += h->memory_bytes;
	}
	for (size_t p = 0; plan && p < plan->nphases; p++)
		for (size_t i = 0; i < plan->phases[p].n; i++)
			if (plan->phases[p].v[i].reason == VD_WHY_SURGE) {
				surge_cpus += plan->phases[p].v[i].want->svc->milli_cpus;
				surge_mem += plan->phases[p].v[i].want->svc->memory_bytes;
			}
	if (other_cpus || other_mem) {
		if (len < sizeof(who) - 1)
			len += (size_t)snprintf(who + len, sizeof(who) - len,
						"; other services' replicas: %s cpus, %s",
						vd_format_milli_cpus(other_cpus, a, sizeof(a)),
						vd_format_size(other_mem, b, sizeof(b)));
		cpus += other_cpus;
		mem += other_mem;
	}
	if (surge_cpus || surge_mem) {
		if (len < sizeof(who) - 1)
			snprintf(who + len, sizeof(who) - len,
				 "; surge replicas during the rollout: %s cpus, %s",
				 vd_format_milli_cpus(surge_cpus, a, sizeof(a)),
				 vd_format_size(surge_mem, b, sizeof(b)));
		cpus += surge_cpus;
		mem += surge_mem;
	}
	if ((cpus <= (int64_t)cap.cpus * 1000 || cpus <= now_cpus) &&
	    (mem <= cap.memory_bytes || mem <= now_mem))
		return 0;
	return vd_error_set(err, VD_EXIT_INPUT,
			    "refusing to apply: it needs %s cpus and %s of memory, the node has "
			    "%d cpus and %s (%s); nothing was changed; --overcommit applies anyway",
			    vd_format_milli_cpus(cpus, c, sizeof(c)),
			    vd_format_size(mem, d, sizeof(d)), cap.cpus,
			    vd_format_size(cap.memory_bytes, a, sizeof(a)), who);
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
	   const struct vd_replica_list *have, const struct vd_apply_opts *o,
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
		const struct vd_desired *d = find_want(want, nwant, h->labels.service);

		if (d && h->backend == d->svc->backend && h->labels.index < d->svc->replicas &&
		    kept(plan, h)) {
			reps[n] = h;
			svcs[n++] = d->svc;
		}
	}
	ret = vd_reconcile_wait(reps, svcs, n, &o->run, &r, err);
	free(reps);
	free(svcs);
	return ret;
}

static int
record(const struct vd_desired *want, size_t n, const struct vd_plan *plan,
       const struct vd_apply_opts *o, struct vd_error *err)
{
	for (size_t i = 0; i < n; i++)
		if (vd_state_save(o->state_dir, want[i].svc, want[i].manifest, err) < 0)
			return -1;
	for (size_t p = 0; o->prune && p < plan->nphases; p++)
		for (size_t i = 0; i < plan->phases[p].n; i++)
			if (plan->phases[p].v[i].reason == VD_WHY_PRUNE &&
			    vd_state_remove(o->state_dir, plan->phases[p].v[i].have->labels.service,
					    err) < 0)
				return -1;
	return 0;
}

/* The backend SERVICE was recorded on, as a bit (1 << enum vd_backend); 0
 * when it was never applied; every bit when its record cannot be read. */
static unsigned
recorded_backend(const char *dir, const char *service)
{
	struct vd_diags diags = VD_DIAGS_INIT;
	struct vd_error e = VD_ERROR_INIT;
	struct vd_manifest *m = NULL;
	char ident[PATH_MAX];
	unsigned b = ~0u;

	if (vd_state_manifest_of(dir, service, ident, sizeof(ident)) < 0)
		return 0;
	if (vd_state_load(dir, service, &m, &diags, &e) == 0 && m->nservices)
		b = 1u << m->services[0].backend;
	vd_diags_clear(&diags);
	vd_manifest_free(m);
	return b;
}

/*
 * The backends apply asks besides those the services use: all of them with
 * --prune, else those the services were recorded on before (a service that
 * moves leaves replicas behind there). Not asking a backend no service
 * needs keeps its library unloaded (libvirt's is 13 MB resident).
 */
static unsigned
asked_backends(const struct vd_desired *want, size_t n, const struct vd_apply_opts *o)
{
	unsigned b = backends_of(want, n);

	if (o->prune || !o->state_dir)
		return ~0u;
	for (size_t i = 0; i < n; i++)
		b |= recorded_backend(o->state_dir, want[i].svc->name);
	return b;
}

int
vd_apply(const struct vd_desired *want, size_t nwant, const struct vd_apply_opts *o,
	 struct vd_apply_result *res, struct vd_error *err)
{
	struct vd_replica_list have = { NULL, 0 };
	struct vd_plan plan = { 0 };
	struct vd_plan_opts po = { .prune = o->prune };
	unsigned backends = backends_of(want, nwant);
	int ret = -1;

	memset(res, 0, sizeof(*res));
	if (vd_observe_some(o->node, backends, asked_backends(want, nwant, o), &have, err) < 0)
		return -1;
	if (vd_plan_make(want, nwant, &have, &po, &plan, err) < 0)
		goto out;
	res->changed = !vd_plan_empty(&plan);
	if (!o->overcommit && res->changed &&
	    vd_capacity_check(o->node, backends, want, nwant, &have, &plan, o->prune, err) < 0) {
		if (!o->dry_run)
			goto out;
		/* a dry run shows the plan all the same, and what apply would say */
		fprintf(o->out, "note: apply would refuse this: %s\n", err->msg);
		vd_error_clear(err);
	}
	if (!o->quiet_undeclared)
		note_undeclared(o->out, want, nwant, &plan, &have);
	if (o->dry_run) {
		if (res->changed)
			vd_plan_print(&plan, o->out);
		else
			fprintf(o->out, "nothing to change: %d replicas up to date\n",
				plan.unchanged);
		ret = 0;
		goto out;
	}
	if (o->state_dir && record(want, nwant, &plan, o, err) < 0)
		goto out;
	if (!res->changed) {
		ret = o->run.wait ? check_kept(want, nwant, &plan, &have, o, err) : 0;
		fprintf(o->out, "nothing to change: %d replicas up to date%s\n", plan.unchanged,
			ret < 0 ? ", but not all healthy" : "");
		goto out;
	}
	ret = vd_reconcile_run(&plan, &o->run, &res->run, err);
	if (ret == 0 && o->run.wait)
		ret = check_kept(want, nwant, &plan, &have, o, err);
	summary(o->out, ret == 0 ? "apply" : "apply stopped", &res->run, plan.unchanged);
out:
	vd_plan_clear(&plan);
	vd_replica_list_clear(&have);
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

/* The backends the services were recorded on; every backend when one of
 * them has no record (its replicas could be anywhere) or there is no state
 * directory. */
static unsigned
recorded_backends(const char *const *services, size_t n, const struct vd_apply_opts *o)
{
	unsigned b = 0;

	for (size_t i = 0; i < n && o->state_dir; i++) {
		unsigned r = recorded_backend(o->state_dir, services[i]);

		b |= r ? r : ~0u;
	}
	return b ? b : ~0u;
}

int
vd_delete_services(const char *const *services, size_t n, const struct vd_apply_opts *o,
		   struct vd_apply_result *res, struct vd_error *err)
{
	struct vd_replica_list have = { NULL, 0 };
	struct vd_plan plan = { 0 };
	struct vd_phase ph = { NULL, 0 };
	int ret = -1;

	memset(res, 0, sizeof(*res));
	if (vd_observe_some(o->node, 0, recorded_backends(services, n, o), &have, err) < 0)
		return -1;
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
	if (ph.n && vd_reconcile_run(&plan, &o->run, &res->run, err) < 0) {
		summary(o->out, "delete stopped", &res->run, 0);
		goto out;
	}
	for (size_t i = 0; o->state_dir && i < n; i++)
		if (vd_state_remove(o->state_dir, services[i], err) < 0)
			goto out;
	fprintf(o->out, "delete: %d replicas removed in %.2fs\n", res->run.removed,
		res->run.seconds);
	ret = 0;
out:
	vd_plan_clear(&plan);
	vd_replica_list_clear(&have);
	return ret;
}
