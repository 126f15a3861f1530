/*
 * The state directory: the desired state apply recorded, for scale, resize,
 * get and the controller. Truth about replicas lives in the engines; this is
 * only what was asked for.
 *
 *   DIR/services/<service>.yaml   one service in the manifest format (JSON
 *                                 flow style), paths made absolute, with the
 *                                 identity of the manifest it came from in a
 *                                 comment; read back with the manifest parser
 *
 * Every write is atomic: a temporary file, fsync, rename, fsync of the
 * directory.
 */
#ifndef VD_STATE_H
#define VD_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "vd/error.h"
#include "vd/file.h"
#include "vd/manifest.h"

#define VD_STATE_DIR_DEFAULT "/var/lib/vdctl"

/* $VDCTL_STATE_DIR, else the default. */
const char *vd_state_dir_default(void);

#define VD_STATE_ID_LEN 32

/*
 * The state directory's id: 32 hex digits made once, at random, and kept in
 * DIR/id. Every replica the directory makes carries it (its owner label),
 * and the directory lists, changes and removes only replicas that do. 0;
 * with make, one is made when there is none (and DIR with it); without, 1
 * when there is none (out is ""). -1 with err when DIR/id cannot be read or
 * is damaged, or one cannot be made.
 */
int vd_state_id(const char *dir, bool make, char out[VD_STATE_ID_LEN + 1],
		struct vd_error *err);

/* Record svc as desired, declared by MANIFEST (its identity). */
int vd_state_save(const char *dir, const struct vd_service *svc, const char *manifest,
		  struct vd_error *err);

/* What a service's manifest declared of what commands change after it
 * (vdctl scale, vdctl resize): kept with the record, so that diff, apply
 * and status can say when the desired state drifted from the manifest.
 * Apply wins: applying the manifest sets them back, and says so. */
struct vd_state_declared {
	int replicas;
	int64_t milli_cpus, memory_bytes;
};

/* vd_state_save() keeping DECLARED (NULL: svc is what its manifest says). */
int vd_state_save_as(const char *dir, const struct vd_service *svc, const char *manifest,
		     const struct vd_state_declared *declared, struct vd_error *err);

/* What the manifest of SERVICE declared, when the record says; -1 when it
 * does not (a record from before vdctl kept it: take its values). */
int vd_state_declared_of(const char *dir, const char *service, struct vd_state_declared *out);

/* Forget a service; one that was never recorded is not an error. */
int vd_state_remove(const char *dir, const char *service, struct vd_error *err);

/* Load what was recorded of SERVICE (a service name: anything else is refused,
 * exit 2, so that no path leaves the directory) into *out. Diagnostics mean
 * its file was edited by hand into something invalid; a file that declares
 * another service is refused too. */
int vd_state_load(const char *dir, const char *service, struct vd_manifest **out,
		  struct vd_diags *diags, struct vd_error *err);

/*
 * Work on a state directory's replicas is serialised: an apply, a delete,
 * a scale, a controller's reconcile each hold DIR/work.lock (an flock, with
 * the holder's pid and what it does) while they change anything. With wait,
 * a busy lock is waited for, having said once on SAY (when not NULL) who
 * holds it; without, 1 is returned at once. Returns 0 (locked: *fd to give
 * to vd_state_unlock), 1 (busy, !wait), or -1 with err.
 */
int vd_state_lock(const char *dir, const char *what, bool wait, FILE *say, int *fd,
		  struct vd_error *err);
void vd_state_unlock(int fd);

/*
 * What went wrong the last time a replica of SERVICE/INDEX was made, started
 * or waited for, kept in DIR/failures.json (atomically) so that get and
 * status can say why it is not there; WHY NULL forgets it (it was made).
 * Callers hold DIR/work.lock; threads of one process take turns.
 */
int vd_state_note_failure(const char *dir, const char *service, int index, const char *why,
			  struct vd_error *err);

/* The failures noted, {"SERVICE": {"INDEX": "why", ...}, ...} (new
 * reference; an empty object when there are none). */
json_t *vd_state_failures(const char *dir);

/* A recorded service that could not be taken: held, left as it is. */
struct vd_state_held {
	char *service;
	char *why; /* FILE:LINE:COL: message, or what else is wrong */
};

/*
 * Load every recorded service, each file on its own: one that does not
 * parse, declares another service, or wants a balancer address an earlier
 * one (by name) has is held, with the reason, and the others load. -1 only
 * when the directory cannot be read or out of memory.
 */
int vd_state_load_all(const char *dir, struct vd_manifest **out, struct vd_state_held **held,
		      size_t *nheld, struct vd_error *err);
void vd_state_held_free(struct vd_state_held *held, size_t n);

/* Was SERVICE applied here (is it recorded)? */
bool vd_state_known(const char *dir, const char *service);

/* Fill err with "unknown service 'S' (did you mean 'T'?)", exit 2, the guess
 * among the recorded services and ALSO (N more names, e.g. those the
 * engines hold); returns -1. */
int vd_state_unknown(const char *dir, const char *service, const char *const *also, size_t n,
		     struct vd_error *err);

/* The manifest identity recorded with a service, into buf; -1 if none. */
int vd_state_manifest_of(const char *dir, const char *service, char *buf, size_t size);

#endif
