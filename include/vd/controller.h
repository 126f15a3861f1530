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
 *
 * A new controller for a state directory whose controller runs may take
 * over from it (vd_controller_take_over): a restart or an upgrade that
 * refuses no connection.
 */
#ifndef VD_CONTROLLER_H
#define VD_CONTROLLER_H

#include <stdint.h>
#include <sys/types.h>

#include "vd/driver.h"
#include "vd/error.h"

/* What a running controller hands the one that takes over from it: its lock
 * (the same open file, so the lock is held throughout) and its listening
 * sockets, each by name: "control", "metrics", "balancer:SERVICE". */
struct vd_controller_handover {
	pid_t pid;   /* the controller that handed over (it drains and exits) */
	int lock_fd; /* DIR/controller.lock, locked */
	size_t n;
	struct vd_controller_socket {
		char name[96];
		int fd; /* -1 once taken */
	} *v;
};

struct vd_controller_opts {
	const struct vd_node_config *node; /* node->state_dir is the state directory */
	const char *metrics_host;          /* Prometheus listener, or NULL */
	int metrics_port;
	int64_t resync_ms; /* reconcile at least this often; 0 = 30 s */
	/* called once the control socket listens (a daemon's parent waits for it) */
	void (*ready)(void *arg);
	void *ready_arg;
	int lock_fd; /* the lock's fd, passed on to a controller that takes over */
	/* the sockets of the controller this one took over from, or NULL: those
	 * it serves are taken (fd -1), those it has no use for closed */
	struct vd_controller_handover *inherited;
};

/* Take the state directory's controller lock (DIR/controller.lock, which
 * then holds this process's pid). Returns the lock's fd, to keep open for
 * the controller's life; -1 with err when another process holds it ("a
 * controller already runs for DIR (pid N)", exit status 1, err->sys_errno
 * EWOULDBLOCK). */
int vd_controller_lock(const char *dir, struct vd_error *err);

/* Take over from the controller running for DIR (a restart, an upgrade):
 * ask it on its control socket to stop its engine thread and hand over its
 * lock and its listening sockets, which it then stops accepting on (the
 * connections waiting in their queues are this process's to take) while it
 * drains what it holds and exits. 0 with H filled (release it with
 * vd_controller_handover_release); -1 with err, and nothing changed, when
 * it refused or did not answer within 8 s. */
int vd_controller_take_over(const char *dir, struct vd_controller_handover *h,
			    struct vd_error *err);

/* Close what H still holds (the lock included) and free it. */
void vd_controller_handover_release(struct vd_controller_handover *h);

/* Write the current pid into the lock file (after a daemon's fork). */
int vd_controller_lock_pid(int fd, struct vd_error *err);

/* Run until SIGTERM or SIGINT (SIGHUP re-reads the state directory), or
 * until it has handed over to a controller that takes over. Returns 0 after
 * a graceful stop, -1 with err when it could not start. */
int vd_controller_run(const struct vd_controller_opts *o, struct vd_error *err);

/* DIR/control.sock into buf. */
void vd_controller_socket_path(const char *dir, char *buf, size_t size);

#endif
