/*
 * The set of engines, each listed once a pass, and the record that lets a
 * list of Docker's stand for an inspect of every container (see
 * vd/engine.h).
 *
 * The record of an engine is DIR/engines/NAME.json: for each replica id,
 * the limits and start time vdctl last saw the engine report for it. It is
 * read without a lock (every write renames a whole file into place) and
 * changed under an flock on DIR/engines/NAME.lock, read, modify, write, so
 * that parallel workers and processes do not lose each other's entries.
 * Losing one costs an inspect, nothing more.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "vd/cleanup.h"
#include "vd/engine.h"
#include "vd/log.h"
#include "vd/state.h"

#define LOCAL_NODE "local"

VD_DEFINE_CLEANUP(cleanup_json_, json_t *, json_decref)
#define _cleanup_json_ _cleanup_(cleanup_json_)

/* ------------------------------------------------------------------ set */

static int
add_engine(struct vd_engines *es, const struct vd_driver_ops *ops, enum vd_backend backend,
	   const char *configured, const struct vd_node_config *node, struct vd_error *err)
{
	const char *env = ops->endpoint_env ? getenv(ops->endpoint_env) : NULL;
	const char *ep = configured && *configured ? configured : env && *env ? env
						  : ops->default_endpoint;
	struct vd_engine *e;

	if (!(e = realloc(es->v, (es->n + 1) * sizeof(*e))))
		return vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
	es->v = e;
	e = &e[es->n++];
	memset(e, 0, sizeof(*e));
	snprintf(e->name, sizeof(e->name), "%s", ops->name);
	snprintf(e->endpoint, sizeof(e->endpoint), "%s", ep);
	e->node = LOCAL_NODE;
	e->ops = ops;
	e->backend = backend;
	e->cfg.state_dir = es->state_dir;
	e->cfg.timeout_ms = node->timeout_ms;
	return 0;
}

int
vd_engines_init(struct vd_engines *es, const struct vd_node_config *node, struct vd_error *err)
{
	memset(es, 0, sizeof(*es));
	if (!(es->state_dir = strdup(node->state_dir ? node->state_dir : vd_state_dir_default())))
		return vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
	if (vd_state_id(es->state_dir, false, es->owner, err) < 0) {
		vd_engines_release(es);
		return -1;
	}
	if (add_engine(es, vd_driver_ops_for(VD_BACKEND_DOCKER), VD_BACKEND_DOCKER,
		       node->docker_endpoint, node, err) < 0 ||
	    add_engine(es, vd_driver_ops_for(VD_BACKEND_LIBVIRT), VD_BACKEND_LIBVIRT,
		       node->libvirt_uri, node, err) < 0) {
		vd_engines_release(es);
		return -1;
	}
	/* pointers into the array, now that it no longer moves */
	for (size_t i = 0; i < es->n; i++) {
		es->v[i].set = es;
		es->v[i].cfg.endpoint = es->v[i].endpoint;
		es->v[i].cfg.owner = es->owner;
	}
	return 0;
}

int
vd_engines_own(struct vd_engines *es, struct vd_error *err)
{
	return es->owner[0] ? 0 : vd_state_id(es->state_dir, true, es->owner, err);
}

static void
clear_suspects(struct vd_engine *e)
{
	for (size_t i = 0; i < e->nsuspects; i++)
		free(e->suspects[i]);
	free(e->suspects);
	e->suspects = NULL;
	e->nsuspects = 0;
}

void
vd_engines_release(struct vd_engines *es)
{
	for (size_t i = 0; i < es->n; i++)
		clear_suspects(&es->v[i]);
	free(es->v);
	free(es->state_dir);
	memset(es, 0, sizeof(*es));
}

struct vd_engine *
vd_engines_for(const struct vd_engines *es, enum vd_backend backend)
{
	for (size_t i = 0; i < es->n; i++)
		if (es->v[i].backend == backend)
			return &es->v[i];
	return NULL;
}

struct vd_engine *
vd_engines_find(const struct vd_engines *es, const char *name)
{
	for (size_t i = 0; name && i < es->n; i++)
		if (strcmp(es->v[i].name, name) == 0)
			return &es->v[i];
	return NULL;
}

void
vd_engines_need(struct vd_engine *e, enum vd_engine_need need)
{
	if (e && need > e->need)
		e->need = need;
}

void
vd_engines_need_all(struct vd_engines *es, enum vd_engine_need need)
{
	for (size_t i = 0; i < es->n; i++)
		vd_engines_need(&es->v[i], need);
}

int
vd_engine_connect(const struct vd_engine *e, struct vd_driver **out, struct vd_error *err)
{
	return vd_driver_open(e->ops, &e->cfg, out, err);
}

int
vd_engine_capacity(const struct vd_engine *e, struct vd_capacity *out, struct vd_error *err)
{
	struct vd_driver *d = NULL;
	int ret;

	memset(out, 0, sizeof(*out));
	if (vd_engine_connect(e, &d, err) < 0)
		return -1;
	ret = vd_driver_capacity(d, out, err);
	vd_driver_close(d);
	return ret;
}

/* --------------------------------------------------------------- record */

static void
record_path(const struct vd_engine *e, const char *ext, char *buf, size_t size)
{
	snprintf(buf, size, "%s/engines/%s.%s", e->set->state_dir, e->name, ext);
}

/* The record's replicas object (new reference; empty when there is none). */
static json_t *
record_read(const struct vd_engine *e)
{
	char path[PATH_MAX];
	json_t *j, *reps;

	record_path(e, "json", path, sizeof(path));
	j = json_load_file(path, 0, NULL);
	reps = json_object_get(j, "replicas");
	if (json_is_object(reps))
		json_incref(reps);
	else
		reps = json_object();
	json_decref(j);
	return reps;
}

static void
entry_set(json_t *reps, const struct vd_replica *r)
{
	json_object_set_new(reps, r->id,
			    json_pack("{s:I, s:I, s:I, s:I, s:I}", "milli_cpus",
				      (json_int_t)r->milli_cpus, "memory_bytes",
				      (json_int_t)r->memory_bytes, "max_milli_cpus",
				      (json_int_t)r->max_milli_cpus, "max_memory_bytes",
				      (json_int_t)r->max_memory_bytes, "started_ns",
				      (json_int_t)r->started_ns));
}

/* Fill r from its entry; false when there is none. */
static bool
entry_get(json_t *reps, struct vd_replica *r)
{
	json_t *x = json_object_get(reps, r->id);

	if (!json_is_object(x))
		return false;
	r->milli_cpus = json_integer_value(json_object_get(x, "milli_cpus"));
	r->memory_bytes = json_integer_value(json_object_get(x, "memory_bytes"));
	r->max_milli_cpus = json_integer_value(json_object_get(x, "max_milli_cpus"));
	r->max_memory_bytes = json_integer_value(json_object_get(x, "max_memory_bytes"));
	r->started_ns = json_integer_value(json_object_get(x, "started_ns"));
	return true;
}

typedef void (*record_fn)(json_t *reps, void *arg);

/* Read, change with FN, write back: under the record's lock. A record that
 * cannot be written is only a cost (the next list inspects), never an error. */
static void
record_update(const struct vd_engine *e, record_fn fn, void *arg)
{
	struct vd_error err = VD_ERROR_INIT;
	char path[PATH_MAX], lock[PATH_MAX], dir[PATH_MAX];
	_cleanup_close_ int fd = -1;
	_cleanup_json_ json_t *reps = NULL, *root = NULL;
	_cleanup_free_ char *text = NULL;

	snprintf(dir, sizeof(dir), "%s/engines", e->set->state_dir);
	record_path(e, "json", path, sizeof(path));
	record_path(e, "lock", lock, sizeof(lock));
	if (vd_file_mkdir_p(dir, &err) < 0 ||
	    (fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0 || flock(fd, LOCK_EX) < 0) {
		vd_debug("engine %s: not recording: %s", e->name,
			 err.msg[0] ? err.msg : strerror(errno));
		return;
	}
	reps = record_read(e);
	fn(reps, arg);
	root = json_pack("{s:i, s:O}", "version", 1, "replicas", reps);
	if (!root || !(text = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS)) ||
	    vd_file_write_atomic(path, text, strlen(text), &err) < 0)
		vd_debug("engine %s: not recording: %s", e->name, err.msg);
}

struct seen {
	const struct vd_replica *v; /* what was inspected: noted */
	size_t n;
	const struct vd_replica_list *listed; /* all that is listed: the rest goes */
};

static void
note_seen(json_t *reps, void *arg)
{
	const struct seen *s = arg;
	const char *id;
	json_t *x;
	void *tmp;

	for (size_t i = 0; i < s->n; i++)
		entry_set(reps, &s->v[i]);
	if (!s->listed)
		return;
	json_object_foreach_safe(reps, tmp, id, x) {
		bool found = false;

		for (size_t i = 0; i < s->listed->n && !found; i++)
			found = strcmp(s->listed->v[i].id, id) == 0;
		if (!found)
			json_object_del(reps, id);
	}
}

struct resized {
	const char *id;
	int64_t milli_cpus, memory_bytes;
};

static void
note_resized(json_t *reps, void *arg)
{
	const struct resized *z = arg;
	json_t *x = json_object_get(reps, z->id);

	if (!json_is_object(x))
		return; /* never seen whole: the next list inspects it */
	json_object_set_new(x, "milli_cpus", json_integer(z->milli_cpus));
	json_object_set_new(x, "memory_bytes", json_integer(z->memory_bytes));
}

static void
note_removed(json_t *reps, void *arg)
{
	const struct resized *z = arg;

	json_object_del(reps, z->id);
}

/* Does the record hold an entry of a replica that is not listed? */
static bool
has_stale(json_t *reps, const struct vd_replica_list *l)
{
	const char *id;
	json_t *x;

	json_object_foreach(reps, id, x) {
		bool found = false;

		for (size_t i = 0; i < l->n && !found; i++)
			found = strcmp(l->v[i].id, id) == 0;
		if (!found)
			return true;
	}
	return false;
}

/* ------------------------------------------------------------ observing */

void
vd_engines_suspect(struct vd_engines *es, const char *name, const char *id)
{
	struct vd_engine *e = vd_engines_find(es, name);
	char **v;

	if (!e || !id || !*id)
		return;
	for (size_t i = 0; i < e->nsuspects; i++)
		if (strcmp(e->suspects[i], id) == 0)
			return;
	if (!(v = realloc(e->suspects, (e->nsuspects + 1) * sizeof(*v))) ||
	    !(v[e->nsuspects] = strdup(id))) {
		if (v)
			e->suspects = v;
		return; /* the next full resync sees it */
	}
	e->suspects = v;
	e->nsuspects++;
}

/* Is ID (a full id, or a prefix an event gave) suspect? */
static bool
suspect(const struct vd_engine *e, const char *id)
{
	for (size_t i = 0; i < e->nsuspects; i++)
		if (strncmp(id, e->suspects[i], strlen(e->suspects[i])) == 0)
			return true;
	return false;
}

/* Is R this state directory's? One it made carries its id; one made before
 * owners were labelled is taken when this directory recorded its service. */
static bool
mine(const struct vd_engines *es, const struct vd_replica *r)
{
	char ident[8];

	if (r->labels.owner && *r->labels.owner)
		return es->owner[0] && strcmp(r->labels.owner, es->owner) == 0;
	return vd_state_manifest_of(es->state_dir, r->labels.service, ident, sizeof(ident)) == 0;
}

/* Keep only this state directory's replicas of L. */
static void
keep_mine(const struct vd_engines *es, struct vd_replica_list *l)
{
	size_t n = 0;

	for (size_t i = 0; i < l->n; i++) {
		if (!mine(es, &l->v[i])) {
			vd_replica_clear(&l->v[i]);
			continue;
		}
		if (n != i) {
			l->v[n] = l->v[i];
			memset(&l->v[i], 0, sizeof(l->v[i]));
		}
		n++;
	}
	l->n = n;
}

static void
tag(const struct vd_engine *e, struct vd_replica *r)
{
	snprintf(r->engine, sizeof(r->engine), "%s", e->name);
	r->backend = e->backend;
}

/*
 * Make the partial records of L whole: from the record unless FULL or the
 * replica is suspect, else (or when it has none) by an inspect. What was inspected is noted, and
 * entries of replicas that are gone are dropped.
 */
static int
complete(struct vd_engine *e, struct vd_driver *d, unsigned flags,
	 struct vd_replica_list *l, struct vd_error *err)
{
	_cleanup_json_ json_t *reps = NULL;
	struct vd_replica *seen = calloc(l->n + 1, sizeof(*seen));
	struct seen s = { seen, 0, l };
	size_t kept = 0;
	int ret = 0;

	if (!seen)
		return vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
	reps = flags & VD_OBSERVE_FULL ? json_object() : record_read(e);
	for (size_t i = 0; i < l->n; i++) {
		struct vd_replica *r = &l->v[i], whole;

		if (r->partial && !suspect(e, r->id) && entry_get(reps, r)) {
			r->partial = false;
			r->recorded = true;
		} else if (r->partial) {
			if (vd_driver_inspect(d, r->id, &whole, err) < 0) {
				if (err->code == VD_EXIT_ENGINE) {
					ret = -1;
					break;
				}
				vd_debug("engine %s: %s", e->name, err->msg);
				vd_error_clear(err);
				vd_replica_clear(r); /* gone meanwhile, or not ours */
				continue;
			}
			vd_replica_clear(r);
			*r = whole;
			seen[s.n++] = whole; /* shares r's strings, for the record */
		}
		tag(e, r);
		if (kept != i) {
			l->v[kept] = *r;
			memset(r, 0, sizeof(*r)); /* every slot owns its strings or none */
		}
		kept++;
	}
	if (ret == 0) {
		l->n = kept;
		if (s.n || (flags & VD_OBSERVE_FULL) || has_stale(reps, l))
			record_update(e, note_seen, &s);
	}
	free(seen);
	return ret;
}

/* One engine's list into *out; -1 with err when it did not answer. */
static int
observe_one(struct vd_engine *e, unsigned flags, struct vd_replica_list *out,
	    struct vd_error *err)
{
	struct vd_replica_list l = { NULL, 0 };
	struct vd_driver *d = NULL;
	int ret = -1;

	if (vd_engine_connect(e, &d, err) < 0 || vd_driver_list(d, NULL, &l, err) < 0)
		goto out;
	if (!(flags & VD_OBSERVE_ALL_OWNERS))
		keep_mine(e->set, &l); /* before anything is inspected */
	if (e->ops->list_partial) {
		if (complete(e, d, flags, &l, err) < 0)
			goto out;
	} else {
		for (size_t i = 0; i < l.n; i++)
			tag(e, &l.v[i]);
	}
	if (vd_replica_list_move(out, &l) < 0) {
		vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
		goto out;
	}
	clear_suspects(e); /* asked about */
	ret = 0;
out:
	vd_replica_list_clear(&l);
	vd_driver_close(d);
	return ret;
}

int
vd_engines_observe(struct vd_engines *es, unsigned flags, struct vd_replica_list *out,
		   struct vd_error *err)
{
	struct vd_error last = VD_ERROR_INIT;
	size_t asked = 0, answered = 0;

	out->v = NULL;
	out->n = 0;
	for (size_t i = 0; i < es->n; i++) {
		struct vd_engine *e = &es->v[i];

		e->asked = e->need != VD_ENGINE_SKIP;
		e->up = false;
		vd_error_clear(&e->error);
		if (!e->asked)
			continue;
		asked++;
		if (observe_one(e, flags, out, &e->error) < 0) {
			if (e->need == VD_ENGINE_REQUIRE) {
				vd_replica_list_clear(out);
				*err = e->error;
				return -1;
			}
			vd_debug("not asking the %s engine: %s", e->name, e->error.msg);
			last = e->error;
			continue;
		}
		e->up = true;
		answered++;
	}
	if (asked && !answered) {
		*err = last;
		return vd_error_wrap(err, "no engine answers");
	}
	vd_replica_list_sort(out);
	return 0;
}

int
vd_engines_verify(struct vd_engines *es, struct vd_replica *r, struct vd_error *err)
{
	struct vd_engine *e = vd_engines_find(es, r->engine);
	struct vd_driver *d = NULL;
	struct vd_replica whole;
	int ret;

	if (!e)
		return vd_error_set(err, VD_EXIT_FAILURE, "%s: no engine '%s'", r->name, r->engine);
	if (vd_engine_connect(e, &d, err) < 0)
		return -1;
	ret = vd_engine_inspect(e, d, r->id, &whole, err);
	vd_driver_close(d);
	if (ret < 0)
		return -1;
	vd_replica_clear(r);
	*r = whole;
	return 0;
}

/* -------------------------------------------------------------- changes */

int
vd_engine_inspect(const struct vd_engine *e, struct vd_driver *d, const char *id,
		  struct vd_replica *out, struct vd_error *err)
{
	struct seen s = { out, 1, NULL };

	if (vd_driver_inspect(d, id, out, err) < 0)
		return -1;
	tag(e, out);
	if (e->ops->list_partial)
		record_update(e, note_seen, &s);
	return 0;
}

int
vd_engine_resize(const struct vd_engine *e, struct vd_driver *d, const char *id,
		 int64_t milli_cpus, int64_t memory_bytes, struct vd_error *err)
{
	struct resized z = { id, milli_cpus, memory_bytes };

	if (vd_driver_resize(d, id, milli_cpus, memory_bytes, err) < 0)
		return -1;
	if (e->ops->list_partial)
		record_update(e, note_resized, &z);
	return 0;
}

int
vd_engine_remove(const struct vd_engine *e, struct vd_driver *d, const char *id,
		 struct vd_error *err)
{
	struct resized z = { id, 0, 0 };

	if (vd_driver_remove(d, id, err) < 0)
		return -1;
	if (e->ops->list_partial)
		record_update(e, note_removed, &z);
	return 0;
}
