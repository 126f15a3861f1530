/*
 * The driver vtable's wrappers and the one place that picks a backend.
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

/* -------------------------------------------------------------- wrappers */

static int
unsupported(const struct vd_driver_ops *ops, const char *op, struct vd_error *err)
{
	return vd_error_set(err, VD_EXIT_FAILURE, "'%s' is not supported by the %s driver", op,
			    ops->name);
}

#define CALL(d, op, ...) \
	((d)->ops->op ? (d)->ops->op(d, __VA_ARGS__) : unsupported((d)->ops, #op, err))

int
vd_driver_open(const struct vd_driver_ops *ops, const struct vd_driver_config *cfg,
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
vd_driver_check(struct vd_driver *d, const struct vd_service *svc, struct vd_error *err)
{
	return d->ops->check ? d->ops->check(d, svc, err) : 0; /* nothing to check */
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

/* ---------------------------------------------------------------- names */

const char *
vd_driver_event_name(enum vd_event_kind k)
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
