/*
 * The driver vtable's wrappers, the one place that picks a backend, and the
 * replica records drivers fill.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vd/driver.h"
#include "vd/labels.h"
#include "vd/manifest.h"

/* ------------------------------------------------------------------ pick */

const struct vd_driver_ops *
vd_driver_ops_for(int backend)
{
	switch (backend) {
	case VD_BACKEND_DOCKER:
		return &vd_docker_driver;
	case VD_BACKEND_LIBVIRT:
		return &vd_libvirt_driver;
	default:
		return NULL;
	}
}

int64_t
vd_driver_min_memory(int backend)
{
	const struct vd_driver_ops *ops = vd_driver_ops_for(backend);

	return ops ? ops->min_memory_bytes : vd_docker_driver.min_memory_bytes;
}

/* -------------------------------------------------------------- wrappers */

static int
unsupported(const struct vd_driver_ops *ops, const char *op, struct vd_error *err)
{
	return vd_error_set(err, VD_EXIT_FAILURE, "'%s' is not supported by the %s driver", op,
			    ops->name);
}

#define CALL(d, op, ...) ((d)->ops->op ? (d)->ops->op(d, __VA_ARGS__) : unsupported((d)->ops, #op, err))

int
vd_driver_open(const struct vd_driver_ops *ops, const struct vd_node_config *cfg,
	       struct vd_driver **out, struct vd_error *err)
{
	if (!ops)
		return vd_error_set(err, VD_EXIT_FAILURE, "no driver for this backend");
	if (!ops->open)
		return unsupported(ops, "open", err);
	return ops->open(cfg, out, err);
}

void
vd_driver_close(struct vd_driver *d)
{
	if (d && d->ops->close)
		d->ops->close(d);
}

int
vd_driver_ping(struct vd_driver *d, struct vd_error *err)
{
	return CALL(d, ping, err);
}

int
vd_driver_capacity(struct vd_driver *d, struct vd_capacity *out, struct vd_error *err)
{
	return CALL(d, capacity, out, err);
}

int
vd_driver_list(struct vd_driver *d, const char *service, struct vd_replica_list *out,
	       struct vd_error *err)
{
	return CALL(d, list, service, out, err);
}

int
vd_driver_create(struct vd_driver *d, const struct vd_service *svc,
		 const struct vd_labels *labels, struct vd_replica *out, struct vd_error *err)
{
	return CALL(d, create, svc, labels, out, err);
}

int
vd_driver_start(struct vd_driver *d, const char *id, struct vd_error *err)
{
	return CALL(d, start, id, err);
}

int
vd_driver_stop(struct vd_driver *d, const char *id, int grace_s, struct vd_error *err)
{
	return CALL(d, stop, id, grace_s, err);
}

int
vd_driver_remove(struct vd_driver *d, const char *id, struct vd_error *err)
{
	return CALL(d, remove, id, err);
}

int
vd_driver_inspect(struct vd_driver *d, const char *id, struct vd_replica *out,
		  struct vd_error *err)
{
	return CALL(d, inspect, id, out, err);
}

int
vd_driver_resize(struct vd_driver *d, const char *id, int64_t milli_cpus, int64_t memory_bytes,
		 struct vd_error *err)
{
	return CALL(d, resize, id, milli_cpus, memory_bytes, err);
}

int
vd_driver_stats(struct vd_driver *d, const char *id, struct vd_stats *out, struct vd_error *err)
{
	return CALL(d, stats, id, out, err);
}

int
vd_driver_events_open(struct vd_driver *d, struct vd_error *err)
{
	return CALL(d, events_open, err);
}

int
vd_driver_events_read(struct vd_driver *d, struct vd_event *ev, struct vd_error *err)
{
	return CALL(d, events_read, ev, err);
}

/* --------------------------------------------------------------- records */

void
vd_labels_clear(struct vd_labels *l)
{
	free(l->service);
	free(l->spec_hash);
	free(l->manifest);
	memset(l, 0, sizeof(*l));
}

int
vd_labels_copy(struct vd_labels *dst, const struct vd_labels *src)
{
	memset(dst, 0, sizeof(*dst));
	dst->index = src->index;
	if ((src->service && !(dst->service = strdup(src->service))) ||
	    (src->spec_hash && !(dst->spec_hash = strdup(src->spec_hash))) ||
	    (src->manifest && !(dst->manifest = strdup(src->manifest)))) {
		vd_labels_clear(dst);
		return -1;
	}
	return 0;
}

void
vd_replica_clear(struct vd_replica *r)
{
	free(r->id);
	free(r->name);
	vd_labels_clear(&r->labels);
	memset(r, 0, sizeof(*r));
}

void
vd_replica_list_clear(struct vd_replica_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		vd_replica_clear(&l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

struct vd_replica *
vd_replica_list_add(struct vd_replica_list *l)
{
	struct vd_replica *v = realloc(l->v, (l->n + 1) * sizeof(*v));

	if (!v)
		return NULL;
	l->v = v;
	memset(&v[l->n], 0, sizeof(v[0]));
	return &v[l->n++];
}

static int
by_service_index(const void *a, const void *b)
{
	const struct vd_replica *x = a, *y = b;
	int c = strcmp(x->labels.service ? x->labels.service : "",
		       y->labels.service ? y->labels.service : "");

	return c ? c : (x->labels.index > y->labels.index) - (x->labels.index < y->labels.index);
}

void
vd_replica_list_sort(struct vd_replica_list *l)
{
	if (l->n > 1)
		qsort(l->v, l->n, sizeof(l->v[0]), by_service_index);
}

void
vd_replica_name(char *buf, size_t size, const char *service, int index)
{
	snprintf(buf, size, VD_NAME_PREFIX "%s-%d", service, index);
}

const char *
vd_replica_state_name(enum vd_replica_state s)
{
	static const char *const names[] = {
		[VD_STATE_UNKNOWN] = "unknown", [VD_STATE_CREATED] = "created",
		[VD_STATE_RUNNING] = "running", [VD_STATE_PAUSED] = "paused",
		[VD_STATE_EXITED] = "exited",	[VD_STATE_DEAD] = "dead",
	};

	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "unknown";
}

const char *
vd_event_kind_name(enum vd_event_kind k)
{
	switch (k) {
	case VD_EVENT_START:
		return "start";
	case VD_EVENT_DIE:
		return "die";
	case VD_EVENT_OOM:
		return "oom";
	}
	return "unknown";
}
