/*
 * The controller's private header: what its parts share.
 *
 *   controller.c         starting and stopping, the lock, the messages
 *                        between the two threads
 *   controller_engine.c  the engine thread: every engine call (event
 *                        watches, reconcile, heal, apply and delete jobs)
 *   controller_loop.c    the loop thread's table of services and replicas:
 *                        health probes, balancers, snapshots, drains
 *   controller_status.c  the control socket and the metrics listener:
 *                        status, Prometheus text, jobs streamed to clients
 *   controller_autoscale.c  the autoscaler: each second, each autoscaled
 *                        service's signals through the policy (vd/autoscale.h),
 *                        a scale job when the count should change, decisions
 *                        kept as events
 *   controller_handover.c  a restart without a refused connection: the
 *                        handover of the lock and the listening sockets to
 *                        a controller that takes over, both sides
 *   restarts.c           the restart book (vd/restarts.h)
 *
 * The loop thread owns the balancers, the health checks, the control
 * socket, the metrics listener and the table of replicas it routes to. The
 * engine thread owns every engine call. Messages go from the engine thread
 * to the loop through a list and an eventfd (msg_h); jobs go the other way
 * through a list and another eventfd (wake_fd). What both read (the restart
 * book) sits behind one mutex, `lock`.
 */
#ifndef VD_CONTROLLER_INT_H
#define VD_CONTROLLER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "vd/autoscale.h"
#include "vd/controller.h"
#include "vd/ctl.h"
#include "vd/engine.h"
#include "vd/ev.h"
#include "vd/health.h"
#include "vd/lb.h"
#include "vd/manifest.h"
#include "vd/restarts.h"
#include "vd/state.h"

#define RESYNC_MS 30000        /* reconcile at least this often */
#define FULL_RESYNC_MS 600000  /* trust no recorded limit for longer than this */
#define RETRY_MS 2000          /* an engine is down: ask again this often */
#define SETTLE_MS 100          /* after an engine event, before reconciling */
#define DRAIN_WAIT_MS 10000    /* longest wait for a replica to drain before removal */
#define LISTEN_WAIT_MS 3000    /* a balancer listens once its replicas were checked */
#define STOP_GRACE_MS 1000     /* idle keep-alive clients after a stop signal */
#define STOP_DEADLINE_MS 15000 /* requests in flight after a stop signal */
#define HOUSEKEEP_MS 500
#define COLD_PROBE_MS 100      /* a replica not yet healthy is checked this often */
#define AUTOSCALE_MS 1000      /* the autoscaler decides this often */
#define ROOM_MS 60000          /* a node that refused more replicas is full this long */
#define AS_EVENTS 64           /* decisions kept for status */
#define HANDOVER_ENGINE_MS 4000 /* a handover waits this long for the engine thread */

struct controller;

/* ------------------------------------------------------------ messages */

enum msg_kind {
	MSG_SNAPSHOT, /* what the engines hold, and the desired state */
	MSG_STARTED,  /* a replica started by a reconcile or an apply */
	MSG_GONE,     /* a replica died or is being removed: stop routing to it */
	MSG_DRAIN,    /* drain a replica, then tell the waiting engine thread */
	MSG_OUT,      /* progress for a control client */
	MSG_END,      /* the end of a control client's request */
};

/* A drain the engine thread waits for; freed by the last of the two. */
struct drain {
	struct controller *c;
	atomic_int refs;
	bool done;
};

/* A control client's request in progress, or the autoscaler's. */
struct stream {
	struct controller *c;
	struct vd_ctl_req *req; /* NULL once the client went away (or none) */
	char autoscale[64];     /* the service the autoscaler scales, or "" */
};

/* How an engine answered the last time it was asked. */
struct engine_status {
	char name[VD_ENGINE_NAME_MAX];
	bool used, up;
	char error[256];
};

struct msg {
	struct msg *next;
	enum msg_kind kind;
	/* SNAPSHOT */
	bool observed; /* list is what the engines hold (false: they did not answer) */
	struct vd_replica_list list;
	struct vd_manifest *desired;
	char (*placed)[VD_ENGINE_NAME_MAX]; /* the engine of each desired service */
	struct vd_state_held *held;        /* recorded services that could not be read */
	size_t nheld;
	json_t *failures;                  /* why replicas could not be made (vd/state.h) */
	json_t *declared;                  /* what manifests declared, by service */
	struct engine_status *engines;
	size_t nengines;
	/* STARTED, GONE, DRAIN */
	char service[64], name[96], id[80], host[64];
	int index, port;
	int64_t started_ns;
	struct drain *drain;
	/* OUT, END */
	struct stream *stream;
	char *text;
	int code;
	json_t *balancers; /* END of an apply: its services that declare a balancer */
	int count;         /* END of a scale: the replicas it set (-1: none) */
};

enum job_kind { JOB_APPLY, JOB_DELETE, JOB_SCALE };

struct job {
	struct job *next;
	enum job_kind kind;
	json_t *body;
	struct stream *stream;
};

/* ----------------------------------------------------- the loop's table */

enum health {
	H_UNKNOWN,   /* not checked yet */
	H_STARTING,  /* failing within its start period */
	H_HEALTHY,
	H_UNHEALTHY, /* failed `retries` checks: being replaced */
	H_DOWN,      /* not running */
};

struct csvc;

/* The autoscaler's book on one service (loop thread). */
struct autoscaler {
	int64_t next_ms;                /* its next decision is due */
	int64_t last_up_ms, last_down_ms; /* loop ms of its last change each way; 0 = never */
	bool pending;                   /* a scale job is on its way ... */
	int from, asked;                /* ... from this count to that */
	int room;                       /* replicas the node took at most; -1 = unknown */
	int64_t room_until;             /* loop ms the room is believed until */
	char room_why[256];             /* the engines' refusal */
	struct vd_autoscale_decision last; /* the last decision */
	struct vd_signals_window up, down; /* what it was made from */
	int64_t last_at;                /* wall ms of the last decision; 0 = none yet */
	uint64_t ups, downs;            /* changes made */
	int64_t started_ms;             /* loop ms a scale-up was asked, 0 = none waiting */
	int start_target;               /* ... for this many ready */
	double start_s, start_max_s;    /* the last scale-up's time to ready, the
					   longest; 0 = unknown */
};

/* A decision that changed a count or why none was made: status lists them. */
struct as_event {
	int64_t at; /* wall ms */
	char service[64];
	int from, to;
	enum vd_autoscale_reason reason;
	char why[320];
};

/* A replica the loop routes to and checks. */
struct crep {
	struct csvc *s;
	char name[96], id[80], key[64], host[64];
	int index, port;
	enum vd_replica_state state;
	int64_t started_ns;
	enum health health;
	enum vd_health_result last;
	int fails;
	int64_t fail_at; /* loop ms of the last failed check counted */
	bool checked, in_lb, removing, seen;
	bool passed; /* a check passed since it started: checks every interval */
	int64_t healthy_since; /* loop ms, 0 while not healthy */
	int64_t first_seen;
	struct vd_health_probe *probe;
	int timer;
};

/* A desired service and its balancer. */
struct csvc {
	struct controller *c;
	char name[64];
	char engine[VD_ENGINE_NAME_MAX]; /* where its replicas go */
	const struct vd_service *svc;   /* in c->desired */
	struct vd_lb *lb;
	char lb_error[256];
	int64_t since; /* loop ms when the controller took it on */
	struct crep **reps;
	size_t nreps;
	bool seen;
	bool held; /* its record cannot be read: kept as it was, its table frozen */
	struct autoscaler as;
};

struct controller {
	const struct vd_controller_opts *o;
	const char *dir;
	struct vd_ev *ev;
	struct vd_ctl *ctl, *metrics;
	int64_t t0;

	/* shared: guarded by lock */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct msg *msgs, **msgs_tail;
	struct job *jobs, **jobs_tail;
	bool want_reconcile, stopping, worker_done;
	struct vd_restarts book;

	struct vd_ev_handle msg_h; /* eventfd: messages for the loop */
	int wake_fd;               /* eventfd: jobs for the engine thread */
	pthread_t worker;
	bool worker_started;

	/* the loop's own */
	struct vd_manifest *desired;
	struct csvc **svcs;
	size_t nsvcs;
	struct engine_status *engines;
	size_t nengines;
	struct vd_state_held *held; /* recorded services that could not be read */
	size_t nheld;
	json_t *failures;           /* why replicas could not be made */
	json_t *declared;           /* what manifests declared, by service (vd/state.h) */
	bool stopping_loop;
	int64_t stop_deadline;
	/* a handover to a controller taking over (controller_handover.c) */
	int handover_fd;         /* its connection while one is under way, else -1 */
	int64_t handover_until;  /* loop ms: stop waiting for the engine thread */
	bool handover_restart;   /* it failed: start the engine thread again once stopped */
	bool handed_over;
	struct as_event events[AS_EVENTS]; /* a ring: the last AS_EVENTS decisions */
	uint64_t nevents;                  /* ever recorded */
};

/* controller.c */
/* The service of M whose balancer would take HOST:PORT (the metrics
 * listener's), or NULL. */
const char *ctrl_metrics_conflict(const struct controller *c, const struct vd_manifest *m);
void ctrl_wake(int fd);
struct msg *ctrl_msg_new(enum msg_kind kind);
void ctrl_msg_free(struct msg *m);
void ctrl_post(struct controller *c, struct msg *m);
void ctrl_post_replica(struct controller *c, enum msg_kind kind, const char *service, int index,
		       const char *id);
void ctrl_drain_put(struct drain *d);
void ctrl_book_save(struct controller *c); /* takes the lock */
int ctrl_worker_start(struct controller *c, struct vd_error *err);
void ctrl_worker_ask_stop(struct controller *c); /* does not wait */

/* controller_handover.c */
/* The control socket's handler: a handover, or what controller_status.c answers. */
void ctrl_handover_on_control(void *arg, struct vd_ctl_req *req);
/* The control socket and the metrics listener: inherited when they were
 * handed over, else made. NULL with err. */
struct vd_ctl *ctrl_listen_control(struct controller *c, const char *path, struct vd_error *err);
struct vd_ctl *ctrl_listen_metrics(struct controller *c, struct vd_error *err);
/* The inherited listening socket of service NAME's balancer, now the
 * caller's; -1 when none. */
int ctrl_inherited_balancer(struct controller *c, const char *name);
/* Close the inherited sockets no one will use: the metrics listener when
 * there is none now, the balancers' of services that no longer have one. */
void ctrl_inherited_prune(struct controller *c);

/* controller_engine.c: the engine thread's body */
void *ctrl_engine_thread(void *arg);

/* controller_loop.c */
void ctrl_take_msg(struct controller *c, struct msg *m);
void ctrl_housekeep(struct controller *c);
void ctrl_stop_probes(struct controller *c);
void ctrl_csvc_free(struct csvc *s);
const char *ctrl_health_name(enum health h);

/* controller_autoscale.c */
void ctrl_autoscale_tick(struct controller *c);
void ctrl_autoscale_waiting(void *csvc); /* a balancer holds a request and has no replica */
void ctrl_autoscale_done(struct controller *c, const struct msg *m);
json_t *ctrl_autoscale_json(const struct csvc *s);
json_t *ctrl_autoscale_events(const struct controller *c);
void ctrl_autoscale_metrics(struct controller *c, FILE *f);

/* controller_status.c */
void ctrl_on_control(void *arg, struct vd_ctl_req *req);
void ctrl_on_metrics(void *arg, struct vd_ctl_req *req);
void ctrl_stream_out(struct stream *s, const char *text);
void ctrl_stream_finish(struct stream *s, int code, const char *error);

#endif
