/*
 * The controller: the daemon that keeps the engines matching the desired
 * state apply recorded, heals replicas, runs a balancer per service and
 * serves status on a control socket (man/vdctl-controller.8).
 *
 * Two threads matter. The loop thread runs the vd_ev loop: balancers,
 * health checks, the control socket and the metrics listener; it never
 * makes an engine call. The engine thread makes every engine call: it
 * watches the engines' event streams, reconciles on events, on a timer and
 * when asked, and runs the apply and delete requests that arrive on the
 * control socket. They talk through a queue of messages each way.
 */
#ifndef VD_CONTROLLER_H
#define VD_CONTROLLER_H

#include <stdint.h>

#include "vd/driver.h"
#include "vd/error.h"

struct vd_controller_opts {
	const struct vd_node_config *node; /* node->state_dir is the state directory */
	const char *metrics_host;          /* Prometheus listener, or NULL */
	int metrics_port;
	int64_t resync_ms; /* reconcile at least this often; 0 = 30 s */
	/* called once the control socket listens (a daemon's parent waits for it) */
	void (*ready)(void *arg);
	void *ready_arg;
};

/* Take the state directory's controller lock (DIR/controller.lock, which
 * then holds this process's pid). Returns the lock's fd, to keep open for
 * the controller's life; -1 with err when another process holds it ("a
 * controller already runs for DIR (pid N)", exit status 1). */
int vd_controller_lock(const char *dir, struct vd_error *err);

/* Write the current pid into the lock file (after a daemon's fork). */
int vd_controller_lock_pid(int fd, struct vd_error *err);

/* Run until SIGTERM or SIGINT (SIGHUP re-reads the state directory).
 * Returns 0 after a graceful stop, -1 with err when it could not start. */
int vd_controller_run(const struct vd_controller_opts *o, struct vd_error *err);

/* DIR/control.sock into buf. */
void vd_controller_socket_path(const char *dir, char *buf, size_t size);

#endif
