/*
 * The controller's client: what commands say to a running controller on
 * its control socket, DIR/control.sock (vd/controller.h serves it).
 *
 * Each call fails with VD_EXIT_ENGINE when no controller answers there.
 */
#ifndef VD_CTLCLIENT_H
#define VD_CTLCLIENT_H

#include <jansson.h>
#include <stdbool.h>

#include "vd/apply.h"
#include "vd/error.h"

/* Does a controller answer on DIR's control socket? 1 yes, 0 no; -1 with err
 * when one may, but this user may not talk to it (permission denied). */
int vd_ctlclient_up(const char *dir, struct vd_error *err);

/* GET PATH ("/v1/status"): the JSON it answers, into *out (new reference). */
int vd_ctlclient_get(const char *dir, const char *path, json_t **out, struct vd_error *err);

/* Hand an apply of WANT (or a delete of NAMES) to the controller, with o's
 * options, printing its progress on o->out as it comes; its exit status
 * becomes err's code. */
int vd_ctlclient_apply(const char *dir, const struct vd_desired *want, size_t n,
		       const struct vd_apply_opts *o, struct vd_error *err);
int vd_ctlclient_delete(const char *dir, const char *const *names, size_t n,
			const struct vd_apply_opts *o, struct vd_error *err);

#endif
