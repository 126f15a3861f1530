/*
 * Replica records: a replica as an engine holds it, and lists of them.
 *
 * Drivers fill them (vd/driver.h), the engine layer tags each with the
 * engine it came from (vd/engine.h), the plan reads them (vd/plan.h). Every
 * string in a record is owned by it; vd_replica_clear() frees them.
 */
#ifndef VD_REPLICA_H
#define VD_REPLICA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vd/manifest.h"

/* The labels that identify a replica (vd/labels.h says how they are kept). */
struct vd_labels {
	char *service;
	int index;
	char *spec_hash; /* hash of the replica spec it was made from */
	char *manifest;  /* identity of the manifest that declared it */
	char *owner;     /* the id of the state directory that made it (vd/state.h);
			    NULL for one made before vdctl labelled owners */
};

enum vd_replica_state {
	VD_STATE_UNKNOWN,
	VD_STATE_CREATED, /* made, never started */
	VD_STATE_RUNNING,
	VD_STATE_PAUSED,
	VD_STATE_EXITED, /* stopped or died */
	VD_STATE_DEAD,	 /* the engine could not clean it up */
};

#define VD_ENGINE_NAME_MAX 32

/* A replica as an engine holds it. */
struct vd_replica {
	char *id;   /* engine id: container id, domain UUID */
	char *name; /* vd-<service>-<index> */
	struct vd_labels labels;
	enum vd_replica_state state;
	int exit_code;
	bool oom_killed;
	char host[64];	    /* where the workload answers on this host ... */
	int host_port;	    /* ... 0 while it has no published port */
	int64_t started_ns; /* wall clock of the last start, ns since the epoch; 0 = never */
	int64_t milli_cpus; /* current limits; 0 = none */
	int64_t memory_bytes;
	/* what a live resize can reach; 0 = no ceiling */
	int64_t max_milli_cpus;
	int64_t max_memory_bytes;
	enum vd_backend backend;
	char engine[VD_ENGINE_NAME_MAX]; /* the engine that holds it (vd/engine.h) */
	/* A driver's list may leave out what its engine's list does not carry
	 * (limits and start time of running containers): partial. The engine
	 * layer then fills them from what vdctl last applied (recorded) or
	 * asks the engine (vd/engine.h). */
	bool partial;
	bool recorded;
};

struct vd_replica_list {
	struct vd_replica *v;
	size_t n;
};

void vd_replica_labels_clear(struct vd_labels *l);
int vd_replica_labels_copy(struct vd_labels *dst, const struct vd_labels *src);
void vd_replica_clear(struct vd_replica *r);
void vd_replica_list_clear(struct vd_replica_list *l);
/* Append a zeroed replica; returns it, or NULL when out of memory. */
struct vd_replica *vd_replica_list_add(struct vd_replica_list *l);
/* Move every record of FROM to the end of TO (FROM is emptied); -1 when out
 * of memory (both are then left as they were). */
int vd_replica_list_move(struct vd_replica_list *to, struct vd_replica_list *from);
/* Sort by service, then index. */
void vd_replica_list_sort(struct vd_replica_list *l);

/* "vd-<service>-<index>" into buf. */
void vd_replica_name(char *buf, size_t size, const char *service, int index);

const char *vd_replica_state_name(enum vd_replica_state s);

#endif
