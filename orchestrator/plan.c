/*
 * The plan: desired services against observed replicas, as phases of
 * actions (see vd/plan.h for the shape and why). Pure: no engine, no clock.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vd/plan.h"
#include "vd/units.h"

/* ------------------------------------------------------------ spec hash */

struct fnv {
	uint64_t h;
};

static void
fnv_bytes(struct fnv *f, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++) {
		f->h ^= b[i];
		f->h *= 1099511628211ULL;
	}
}

/* Length-prefixed, so ("ab", "c") and ("a", "bc") differ. */
static void
fnv_str(struct fnv *f, const char *s)
{
	uint32_t n = s ? (uint32_t)strlen(s) : UINT32_MAX;

	fnv_bytes(f, &n, sizeof(n));
	if (s)
		fnv_bytes(f, s, n);
}

static void
fnv_int(struct fnv *f, int64_t v)
{
	fnv_bytes(f, &v, sizeof(v));
}

void
vd_plan_spec_hash(const struct vd_service *svc, char out[VD_SPEC_HASH_LEN + 1])
{
	struct fnv f = { 14695981039346656037ULL };

	fnv_str(&f, "vdctl-spec-1");
	fnv_int(&f, svc->backend);
	fnv_str(&f, svc->image);
	fnv_str(&f, svc->vm.kernel);
	fnv_str(&f, svc->vm.initrd);
	fnv_str(&f, svc->vm.cmdline);
	fnv_str(&f, svc->vm.disk);
	fnv_int(&f, svc->vm.accel);
	fnv_int(&f, (int64_t)svc->ncommand);
	for (size_t i = 0; i < svc->ncommand; i++)
		fnv_str(&f, svc->command[i]);
	fnv_int(&f, (int64_t)svc->nenv);
	for (size_t i = 0; i < svc->nenv; i++)
		fnv_str(&f, svc->env[i]);
	fnv_int(&f, svc->port);
	snprintf(out, VD_SPEC_HASH_LEN + 1, "%016llx", (unsigned long long)f.h);
}

/* ------------------------------------------------------------- building */

struct builder {
	struct vd_plan *plan;
	struct vd_phase first, last;
	struct vd_phase *rounds; /* replacement rounds, in order */
	size_t nrounds;
	bool oom;
};

static void
push(struct builder *b, struct vd_phase *ph, enum vd_action_kind kind, enum vd_reason why,
     const struct vd_desired *want, int index, const struct vd_replica *have)
{
	struct vd_action *v;

	if (b->oom)
		return;
	v = realloc(ph->v, (ph->n + 1) * sizeof(*v));
	if (!v) {
		b->oom = true;
		return;
	}
	ph->v = v;
	v[ph->n++] = (struct vd_action){ kind, why, want, index, have };
}

static struct vd_phase *
round_phase(struct builder *b, size_t r)
{
	struct vd_phase *p;

	if (r < b->nrounds)
		return &b->rounds[r];
	p = realloc(b->rounds, (r + 1) * sizeof(*p));
	if (!p) {
		b->oom = true;
		return NULL;
	}
	memset(p + b->nrounds, 0, (r + 1 - b->nrounds) * sizeof(*p));
	b->rounds = p;
	b->nrounds = r + 1;
	return &p[r];
}

static bool
resizable(const struct vd_replica *h, const struct vd_service *svc)
{
	int64_t whole_cpus = (svc->milli_cpus + 999) / 1000 * 1000;

	return (!h->max_memory_bytes || svc->memory_bytes <= h->max_memory_bytes) &&
	       (!h->max_milli_cpus || whole_cpus <= h->max_milli_cpus);
}

static bool
running(const struct vd_replica *h)
{
	return h->state == VD_STATE_RUNNING || h->state == VD_STATE_PAUSED;
}

/* Is H running as D wants it, spec and limits? */
static bool
up_to_date(const struct vd_replica *h, const struct vd_desired *d)
{
	return h->state == VD_STATE_RUNNING && h->labels.spec_hash &&
	       strcmp(h->labels.spec_hash, d->spec_hash) == 0 &&
	       h->milli_cpus == d->svc->milli_cpus && h->memory_bytes == d->svc->memory_bytes;
}

/* An old replica to replace, and why. */
struct old {
	const struct vd_replica *have;
	enum vd_reason why;
};

/* Is H where D's replicas go? */
static bool
on_engine(const struct vd_replica *h, const struct vd_desired *d)
{
	return d->engine && strcmp(h->engine, d->engine) == 0;
}

static const struct vd_replica *
at_index(const struct vd_replica_list *have, const bool *taken, const struct vd_desired *d,
	 int index)
{
	for (size_t i = 0; i < have->n; i++) {
		const struct vd_replica *h = &have->v[i];

		if (!taken[i] && on_engine(h, d) && h->labels.index == index &&
		    strcmp(h->labels.service, d->svc->name) == 0)
			return h;
	}
	return NULL;
}

/* What one service needs. Marks the observed replicas it accounts for. */
static void
plan_service(struct builder *b, const struct vd_desired *d, const struct vd_replica_list *have,
	     bool *taken)
{
	const struct vd_service *svc = d->svc;
	struct old *old = calloc((size_t)svc->replicas + 1, sizeof(*old));
	size_t nold = 0, batch, surge, adopted = 0;
	int top = svc->replicas - 1;

	if (!old) {
		b->oom = true;
		return;
	}
	for (int i = 0; i < svc->replicas; i++) {
		const struct vd_replica *h = at_index(have, taken, d, i);

		if (!h) {
			push(b, &b->first, VD_ACT_CREATE, VD_WHY_NEW, d, i, NULL);
			b->plan->created++;
			continue;
		}
		taken[h - have->v] = true;
		if (h->state == VD_STATE_DEAD) {
			old[nold++] = (struct old){ h, VD_WHY_DEAD };
		} else if (!h->labels.spec_hash || strcmp(h->labels.spec_hash, d->spec_hash) != 0) {
			old[nold++] = (struct old){ h, VD_WHY_SPEC };
		} else if (h->milli_cpus != svc->milli_cpus || h->memory_bytes != svc->memory_bytes) {
			/* a stopped replica is made anew rather than resized */
			if (running(h) && resizable(h, svc)) {
				push(b, &b->first, VD_ACT_RESIZE, VD_WHY_LIMITS, d, i, h);
				b->plan->resized++;
			} else {
				old[nold++] = (struct old){ h, running(h) ? VD_WHY_CEILING
									  : VD_WHY_STOPPED };
			}
		} else if (!running(h)) {
			push(b, &b->first, VD_ACT_START, VD_WHY_STOPPED, d, i, h);
			b->plan->started++;
		} else {
			b->plan->unchanged++;
		}
	}

	/* rolling replacement: surge first, then in place, a batch a round */
	surge = (size_t)svc->update.max_surge < nold ? (size_t)svc->update.max_surge : nold;
	batch = surge + (size_t)svc->update.max_unavailable;
	if (batch == 0)
		batch = 1;

	/* the rest of this service: past the count, or on another engine. A
	 * running one of the new spec past the count is a surge replica a
	 * rollout that was cut short made: it serves as one of this one's. */
	for (size_t i = 0; i < have->n; i++) {
		const struct vd_replica *h = &have->v[i];
		enum vd_reason why = on_engine(h, d) ? VD_WHY_SCALE_DOWN : VD_WHY_ENGINE;

		if (taken[i] || strcmp(h->labels.service, svc->name) != 0)
			continue;
		taken[i] = true;
		if (on_engine(h, d) && h->labels.index > top)
			top = h->labels.index;
		if (why == VD_WHY_SCALE_DOWN && adopted < surge && up_to_date(h, d)) {
			adopted++;
			why = VD_WHY_SURGE_DONE;
		}
		push(b, &b->last, VD_ACT_REMOVE, why, NULL, h->labels.index, h);
		b->plan->removed += why != VD_WHY_SURGE_DONE; /* surges are not counted */
	}
	for (size_t j = 0; j < surge - adopted; j++) {
		int index = top + 1 + (int)j;

		push(b, &b->first, VD_ACT_CREATE, VD_WHY_SURGE, d, index, NULL);
		push(b, &b->last, VD_ACT_REMOVE, VD_WHY_SURGE_DONE, d, index, NULL);
	}
	/* those that serve nothing first: replacing them costs no capacity */
	for (size_t pass = 0, k = 0; pass < 2; pass++) {
		for (size_t j = 0; j < nold; j++) {
			struct vd_phase *ph;

			if (running(old[j].have) != (pass == 1))
				continue;
			ph = round_phase(b, k++ / batch);
			if (ph)
				push(b, ph, VD_ACT_REPLACE, old[j].why, d,
				     old[j].have->labels.index, old[j].have);
		}
	}
	b->plan->replaced += (int)nold;
	free(old);
}

static bool
declared_by(const struct vd_desired *want, size_t nwant, const char *manifest)
{
	for (size_t i = 0; manifest && i < nwant; i++)
		if (want[i].manifest && strcmp(want[i].manifest, manifest) == 0)
			return true;
	return false;
}

static void
note_undeclared(struct builder *b, const char *service)
{
	struct vd_plan *p = b->plan;
	const char **v;

	for (size_t i = 0; i < p->nundeclared; i++)
		if (strcmp(p->undeclared[i], service) == 0)
			return;
	v = realloc(p->undeclared, (p->nundeclared + 1) * sizeof(*v));
	if (!v) {
		b->oom = true;
		return;
	}
	p->undeclared = v;
	v[p->nundeclared++] = service;
}

/* Scale-down first from the top: highest indices first. */
static int
by_index_desc(const void *x, const void *y)
{
	const struct vd_action *a = x, *b = y;

	return (a->index < b->index) - (a->index > b->index);
}

static void
add_phase(struct builder *b, struct vd_phase *ph)
{
	struct vd_phase *v;

	if (ph->n == 0 || b->oom) {
		free(ph->v);
		return;
	}
	v = realloc(b->plan->phases, (b->plan->nphases + 1) * sizeof(*v));
	if (!v) {
		free(ph->v);
		b->oom = true;
		return;
	}
	b->plan->phases = v;
	v[b->plan->nphases++] = *ph;
}

int
vd_plan_make(const struct vd_desired *want, size_t nwant, const struct vd_replica_list *have,
	     const struct vd_plan_opts *opts, struct vd_plan *out, struct vd_error *err)
{
	struct builder b = { .plan = out };
	bool *taken = calloc(have->n + 1, sizeof(*taken));

	memset(out, 0, sizeof(*out));
	if (!taken)
		return vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
	for (size_t i = 0; i < nwant; i++)
		plan_service(&b, &want[i], have, taken);
	for (size_t i = 0; i < have->n; i++) {
		const struct vd_replica *h = &have->v[i];

		if (taken[i])
			continue;
		if (opts && opts->prune && declared_by(want, nwant, h->labels.manifest)) {
			push(&b, &b.last, VD_ACT_REMOVE, VD_WHY_PRUNE, NULL, h->labels.index, h);
			out->removed++;
		} else {
			note_undeclared(&b, h->labels.service);
		}
	}
	free(taken);
	if (b.last.n > 1)
		qsort(b.last.v, b.last.n, sizeof(b.last.v[0]), by_index_desc);
	add_phase(&b, &b.first);
	for (size_t r = 0; r < b.nrounds; r++)
		add_phase(&b, &b.rounds[r]);
	add_phase(&b, &b.last);
	free(b.rounds);
	if (b.oom) {
		vd_plan_clear(out);
		return vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
	}
	return 0;
}

void
vd_plan_clear(struct vd_plan *plan)
{
	for (size_t i = 0; i < plan->nphases; i++)
		free(plan->phases[i].v);
	free(plan->phases);
	free(plan->undeclared);
	memset(plan, 0, sizeof(*plan));
}

const struct vd_desired *
vd_plan_find(const struct vd_desired *want, size_t n, const char *service)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(want[i].svc->name, service) == 0)
			return &want[i];
	return NULL;
}

bool
vd_plan_empty(const struct vd_plan *plan)
{
	return plan->nphases == 0;
}

/* ------------------------------------------------------------- printing */

const char *
vd_plan_action_name(enum vd_action_kind k)
{
	static const char *const names[] = {
		[VD_ACT_CREATE] = "create", [VD_ACT_START] = "start",
		[VD_ACT_RESIZE] = "resize", [VD_ACT_REPLACE] = "replace",
		[VD_ACT_REMOVE] = "remove",
	};

	return (unsigned)k < sizeof(names) / sizeof(names[0]) ? names[k] : "?";
}

const char *
vd_plan_reason_name(enum vd_reason r)
{
	static const char *const names[] = {
		[VD_WHY_NEW] = "new",
		[VD_WHY_STOPPED] = "not running",
		[VD_WHY_LIMITS] = "limits changed",
		[VD_WHY_SPEC] = "spec changed",
		[VD_WHY_CEILING] = "limits beyond its live-resize ceiling",
		[VD_WHY_DEAD] = "dead",
		[VD_WHY_SURGE] = "surge for the rolling replacement",
		[VD_WHY_SURGE_DONE] = "surge no longer needed",
		[VD_WHY_SCALE_DOWN] = "scale down",
		[VD_WHY_ENGINE] = "moved to another engine",
		[VD_WHY_PRUNE] = "no longer declared",
		[VD_WHY_DELETE] = "deleted",
	};

	return (unsigned)r < sizeof(names) / sizeof(names[0]) ? names[r] : "?";
}

void
vd_plan_resize_text(const struct vd_action *a, char *buf, size_t size)
{
	char c1[16], c2[16], m1[32], m2[32];
	bool cpus = a->have->milli_cpus != a->want->svc->milli_cpus;
	bool mem = a->have->memory_bytes != a->want->svc->memory_bytes;

	snprintf(buf, size, "%s%s%s%s%s%s%s%s%s",
		 cpus ? "cpus " : "",
		 cpus ? vd_units_format_milli_cpus(a->have->milli_cpus, c1, sizeof(c1)) : "",
		 cpus ? " -> " : "",
		 cpus ? vd_units_format_milli_cpus(a->want->svc->milli_cpus, c2, sizeof(c2)) : "",
		 cpus && mem ? ", " : "", mem ? "memory " : "",
		 mem ? vd_units_format_size(a->have->memory_bytes, m1, sizeof(m1)) : "",
		 mem ? " -> " : "",
		 mem ? vd_units_format_size(a->want->svc->memory_bytes, m2, sizeof(m2)) : "");
}

static void
print_action(const struct vd_action *a, FILE *f)
{
	char name[96], what[128];
	const char *service = a->want ? a->want->svc->name : a->have->labels.service;

	vd_replica_name(name, sizeof(name), service, a->index);
	fprintf(f, "  %-8s %-24s %s", vd_plan_action_name(a->kind), name,
		vd_plan_reason_name(a->reason));
	if (a->kind == VD_ACT_RESIZE) {
		vd_plan_resize_text(a, what, sizeof(what));
		fprintf(f, ": %s", what);
	}
	fputc('\n', f);
}

void
vd_plan_print(const struct vd_plan *plan, FILE *f)
{
	for (size_t i = 0; i < plan->nphases; i++) {
		if (plan->nphases > 1)
			fprintf(f, "phase %zu of %zu:\n", i + 1, plan->nphases);
		for (size_t j = 0; j < plan->phases[i].n; j++)
			print_action(&plan->phases[i].v[j], f);
	}
}
