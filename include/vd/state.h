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

#include <stddef.h>

#include "vd/error.h"
#include "vd/file.h"
#include "vd/manifest.h"

#define VD_STATE_DIR_DEFAULT "/var/lib/vdctl"

/* $VDCTL_STATE_DIR, else the default. */
const char *vd_state_dir_default(void);

/* Record svc as desired, declared by MANIFEST (its identity). */
int vd_state_save(const char *dir, const struct vd_service *svc, const char *manifest,
		  struct vd_error *err);

/* Forget a service; one that was never recorded is not an error. */
int vd_state_remove(const char *dir, const char *service, struct vd_error *err);

/* Load the recorded services: one (service) or all (NULL). *out gets a
 * manifest (empty when nothing is recorded). Diagnostics mean the state
 * directory was edited by hand into something invalid. */
int vd_state_load(const char *dir, const char *service, struct vd_manifest **out,
		  struct vd_diags *diags, struct vd_error *err);

/* The manifest identity recorded with a service, into buf; -1 if none. */
int vd_state_manifest_of(const char *dir, const char *service, char *buf, size_t size);

#endif
