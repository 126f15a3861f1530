/*
 * Drivers: one vtable, one file per backend (docker.c, libvirt.c).
 *
 * A driver makes, changes and removes replicas in one engine and reports
 * what the engine holds. It only ever lists, changes or removes objects that
 * carry vdctl's labels (vd/labels.h): operations on an id first check them
 * and refuse an object without them.
 *
 * A NULL member means "not supported by this backend"; the vd_driver_*
 * wrappers below say so with a clear error. Every engine call is bounded by
 * a timeout. An engine that does not answer is an error with code
 * VD_EXIT_ENGINE naming the endpoint.
 *
 * A driver connection is used by one thread at a time; parallel callers
 * open one each.
 */
#ifndef VD_DRIVER_H
#define VD_DRIVER_H

#include <stdbool.h>
#include <stdint.h>

#include "vd/error.h"
#include "vd/manifest.h"
#include "vd/replica.h"

/* What a driver connects with: one engine's endpoint, resolved by the engine
 * layer (vd/engine.h), and the settings every engine shares. */
struct vd_driver_config {
	const char *endpoint;  /* docker: unix:///path or tcp://host:port; libvirt: a URI;
				  NULL = the driver's default_endpoint */
	const char *state_dir; /* where the driver keeps its replicas' files; NULL = /var/lib/vdctl */
	int timeout_ms;        /* per engine call; 0 = 30000 */
	/* the state directory's id (vd/state.h): the driver refuses to touch a
	 * replica another state directory made; NULL or "" = any */
	const char *owner;
};

struct vd_capacity {
	int cpus;              /* online CPUs of the node */
	int64_t memory_bytes;  /* total memory of the node */
};

struct vd_stats {
	double cpu_percent;     /* of one CPU: 150 = one and a half CPUs busy */
	int64_t cpu_time_ns;    /* total CPU time so far */
	int64_t memory_usage;   /* bytes in use (RSS for VMs, cgroup usage for containers) */
	int64_t memory_limit;   /* bytes (balloon size for VMs) */
};

enum vd_event_kind {
	VD_EVENT_START,
	VD_EVENT_DIE,
	VD_EVENT_OOM,
};

struct vd_event {
	enum vd_event_kind kind;
	char id[80];
	char service[48];
	int index;
	int exit_code; /* for VD_EVENT_DIE; -1 when unknown */
};

struct vd_driver;

struct vd_driver_ops {
	const char *name; /* "docker", "libvirt" */
	const char *default_endpoint;
	const char *endpoint_env; /* the environment variable that names the endpoint */
	/* its list leaves out what an inspect gives (vd/replica.h: partial) */
	bool list_partial;

	/* Connect; fills *out. */
	int (*open)(const struct vd_driver_config *cfg, struct vd_driver **out,
		    struct vd_error *err);
	void (*close)(struct vd_driver *d);

	int (*capacity)(struct vd_driver *d, struct vd_capacity *out, struct vd_error *err);

	/* vdctl's replicas, of one service or (service NULL) all; sorted by
	 * service then index. A record may be partial (vd/replica.h) when the
	 * engine's list does not carry everything; inspect gives it whole. */
	int (*list)(struct vd_driver *d, const char *service, struct vd_replica_list *out,
		    struct vd_error *err);

	/* Can this engine make replicas of svc (its image is there; its boot
	 * files can be read)? -1 with err (exit 2) when not; NULL = yes. */
	int (*check)(struct vd_driver *d, const struct vd_service *svc, struct vd_error *err);

	/* Make (not start) replica labels->index of svc; fills *out. */
	int (*create)(struct vd_driver *d, const struct vd_service *svc,
		      const struct vd_labels *labels, struct vd_replica *out, struct vd_error *err);
	int (*start)(struct vd_driver *d, const char *id, struct vd_error *err);
	/* Ask it to stop, wait up to grace_s, then kill. */
	int (*stop)(struct vd_driver *d, const char *id, int grace_s, struct vd_error *err);
	/* Remove it and what the driver made for it (volumes, overlays, logs). */
	int (*remove)(struct vd_driver *d, const char *id, struct vd_error *err);
	int (*inspect)(struct vd_driver *d, const char *id, struct vd_replica *out,
		       struct vd_error *err);
	/* Change limits of a running replica without restarting it. */
	int (*resize)(struct vd_driver *d, const char *id, int64_t milli_cpus,
		      int64_t memory_bytes, struct vd_error *err);
	int (*stats)(struct vd_driver *d, const char *id, struct vd_stats *out,
		     struct vd_error *err);

	/* Events: open a non-blocking stream, returning an fd to poll for
	 * reading; then read decoded events: 1 = one in *ev, 0 = none for now,
	 * -1 = error (the stream is gone; open it again). */
	int (*events_open)(struct vd_driver *d, struct vd_error *err);
	int (*events_read)(struct vd_driver *d, struct vd_event *ev, struct vd_error *err);
};

struct vd_driver {
	const struct vd_driver_ops *ops;
};

/* The driver of a backend (enum vd_backend from vd/manifest.h); the one
 * place that picks one. */
const struct vd_driver_ops *vd_driver_ops_for(int backend);

/*
 * The least a replica of BACKEND may have, stated once here for the
 * manifest's checks, resize and the drivers. Memory: what dockerd accepts
 * (6 MiB), what a small guest kernel boots in (32 MiB). CPUs: both engines
 * enforce a share as a quota of at least 1 ms per 100 ms period, 0.01 CPU.
 * An unknown backend gets Docker's floors.
 */
static inline int64_t
vd_driver_min_memory(int backend)
{
	return backend == VD_BACKEND_LIBVIRT ? 32 << 20 : 6 << 20;
}

static inline int64_t
vd_driver_min_milli_cpus(int backend)
{
	(void)backend;
	return 10;
}

/* Wrappers: call the member, or fail with "'<op>' is not supported by the
 * <name> driver". */
int vd_driver_open(const struct vd_driver_ops *ops, const struct vd_driver_config *cfg,
		   struct vd_driver **out, struct vd_error *err);
void vd_driver_close(struct vd_driver *d);
int vd_driver_capacity(struct vd_driver *d, struct vd_capacity *out, struct vd_error *err);
int vd_driver_list(struct vd_driver *d, const char *service, struct vd_replica_list *out,
		   struct vd_error *err);
int vd_driver_check(struct vd_driver *d, const struct vd_service *svc, struct vd_error *err);
int vd_driver_create(struct vd_driver *d, const struct vd_service *svc,
		     const struct vd_labels *labels, struct vd_replica *out, struct vd_error *err);
int vd_driver_start(struct vd_driver *d, const char *id, struct vd_error *err);
int vd_driver_stop(struct vd_driver *d, const char *id, int grace_s, struct vd_error *err);
int vd_driver_remove(struct vd_driver *d, const char *id, struct vd_error *err);
int vd_driver_inspect(struct vd_driver *d, const char *id, struct vd_replica *out,
		      struct vd_error *err);
int vd_driver_resize(struct vd_driver *d, const char *id, int64_t milli_cpus,
		     int64_t memory_bytes, struct vd_error *err);
int vd_driver_stats(struct vd_driver *d, const char *id, struct vd_stats *out,
		    struct vd_error *err);
int vd_driver_events_open(struct vd_driver *d, struct vd_error *err);
int vd_driver_events_read(struct vd_driver *d, struct vd_event *ev, struct vd_error *err);

const char *vd_driver_event_name(enum vd_event_kind k);

/* The drivers. */
extern const struct vd_driver_ops vd_docker_driver;
extern const struct vd_driver_ops vd_libvirt_driver;

#endif
