/*
 * The controller daemon: keep the engines matching the desired state, heal
 * replicas, front each service with its balancer, serve status.
 *
 * The loop thread owns the balancers, the health checks, the control
 * socket, the metrics listener and the table of replicas it routes to. The
 * engine thread owns every engine call: event streams, reconciling, apply
 * and delete requests. The loop thread never waits on the engine thread;
 * the engine thread waits on the loop only to drain a replica before it
 * removes it, and then only for a bounded time.
 *
 * Messages go from the engine thread to the loop through a list and an
 * eventfd (snapshots of what the engines hold, replicas started, died or to
 * drain, progress for a control client); jobs go the other way through a
 * list and another eventfd. What both read (the restart book: restarts,
 * reasons, back-off, replicas found sick) sits behind one mutex.
 *
 * A replica that exits, is OOM-killed, or fails its health check `retries`
 * times in a row after its start period is taken out of the balancer at
 * once, then removed and made again at the same index. Each index has a
 * back-off: the first replacement is immediate, each next one waits twice
 * as long as the last (1 s, 2 s, 4 s ... 5 min); a minute of health starts
 * it over.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vd/apply.h"
#include "vd/cleanup.h"
#include "vd/controller.h"
#include "vd/ctl.h"
#include "vd/ev.h"
#include "vd/health.h"
#include "vd/lb.h"
#include "vd/log.h"
#include "vd/plan.h"
#include "vd/reconcile.h"
#include "vd/state.h"

#define RESYNC_MS 30000        /* reconcile at least this often */
#define RETRY_MS 2000          /* an engine is down: ask again this often */
#define SETTLE_MS 100          /* after an engine event, before reconciling */
#define BACKOFF_FIRST_MS 1000
#define BACKOFF_MAX_MS 300000
#define STABLE_MS 60000        /* healthy this long: the back-off starts over */
#define DRAIN_WAIT_MS 10000    /* longest wait for a replica to drain before removal */
#define LISTEN_WAIT_MS 3000    /* a balancer listens once its replicas were checked */
#define STOP_GRACE_MS 1000     /* idle keep-alive clients after a stop signal */
#define STOP_DEADLINE_MS 15000 /* requests in flight after a stop signal */
#define HOUSEKEEP_MS 500
#define NBACKENDS 2

struct controller;

/* ------------------------------------------------------------ the book */

/* What the controller remembers of a replica index across replacements. */
struct mark {
	char service[64];
	int index;
	int restarts;
	char reason[128];   /* why it was last replaced */
	int64_t backoff_ms; /* the wait before the next replacement */
	int64_t hold_until; /* monotonic ms: no replacement before */
	char sick_id[80];   /* this replica failed its health check */
	char sick_why[96];
};

/* ------------------------------------------------------------ messages */

enum msg_kind {
	MSG_SNAPSHOT, /* what the engines hold, and the desired state */
	MSG_STARTED,  /* a replica started by a reconcile or an apply */
	MSG_GONE,     /* a replica died or is being removed: stop routing to it */
	MSG_DRAIN,    /* drain a replica, then tell the waiting engine thread */
	MSG_OUT,      /* progress for a control client */
	MSG_END,      /* the end of a control client's request */
};

struct drain {
	struct controller *c;
	atomic_int refs;
	bool done;
};

struct stream {
	struct controller *c;
	struct vd_ctl_req *req; /* NULL once the client went away */
};

struct engine_status {
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
	struct engine_status engines[NBACKENDS];
	/* STARTED, GONE, DRAIN */
	char service[64], name[96], id[80], host[64];
	int index, port;
	int64_t started_ns;
	struct drain *drain;
	/* OUT, END */
	struct stream *stream;
	char *text;
	int code;
};

enum job_kind { JOB_APPLY, JOB_DELETE };

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

static const char *const health_names[] = {
	[H_UNKNOWN] = "unknown", [H_STARTING] = "starting", [H_HEALTHY] = "healthy",
	[H_UNHEALTHY] = "unhealthy", [H_DOWN] = "down",
};

struct csvc;

struct crep {
	struct csvc *s;
	char name[96], id[80], key[64], host[64];
	int index, port;
	enum vd_replica_state state;
	int64_t started_ns;
	enum health health;
	enum vd_health_result last;
	int fails;
	bool checked, in_lb, removing, seen;
	int64_t healthy_since; /* loop ms, 0 while not healthy */
	int64_t first_seen;
	struct vd_health_probe *probe;
	int timer;
};

struct csvc {
	struct controller *c;
	char name[64];
	const struct vd_service *svc; /* in c->desired */
	struct vd_lb *lb;
	char lb_error[256];
	int64_t since; /* loop ms when the controller took it on */
	struct crep **reps;
	size_t nreps;
	bool seen;
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
	struct mark *marks;
	size_t nmarks;

	struct vd_ev_handle msg_h; /* eventfd: messages for the loop */
	int wake_fd;               /* eventfd: jobs for the engine thread */
	pthread_t worker;
	bool worker_started;

	/* the loop's own */
	struct vd_manifest *desired;
	struct csvc **svcs;
	size_t nsvcs;
	struct engine_status engines[NBACKENDS];
	bool stopping_loop;
	int64_t stop_deadline;
};

static int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t
wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
wake(int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		vd_warn("controller: eventfd: %s", strerror(errno));
}

/* Find (or, with make, add) the mark of service/index. Under c->lock. */
static struct mark *
mark_of(struct controller *c, const char *service, int index, bool make)
{
	struct mark *m;

	for (size_t i = 0; i < c->nmarks; i++)
		if (c->marks[i].index == index && strcmp(c->marks[i].service, service) == 0)
			return &c->marks[i];
	if (!make || !(m = realloc(c->marks, (c->nmarks + 1) * sizeof(*m))))
		return NULL;
	c->marks = m;
	m = &m[c->nmarks++];
	memset(m, 0, sizeof(*m));
	snprintf(m->service, sizeof(m->service), "%s", service);
	m->index = index;
	return m;
}

/* The book outlives the controller: DIR/restarts.json holds each index's
 * restarts, last reason and back-off, so a new controller goes on counting
 * (and backing off) where the last one stopped. */
static void
book_path(const struct controller *c, char *buf, size_t size)
{
	snprintf(buf, size, "%s/restarts.json", c->dir);
}

/* Write the book (atomically). Takes c->lock. */
static void
book_save(struct controller *c)
{
	struct vd_error err = VD_ERROR_INIT;
	char path[PATH_MAX + 16], *text;
	json_t *a = json_array();

	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; a && i < c->nmarks; i++) {
		const struct mark *k = &c->marks[i];

		if (k->restarts)
			json_array_append_new(a, json_pack("{s:s, s:i, s:i, s:s, s:I}", "service",
							   k->service, "index", k->index,
							   "restarts", k->restarts, "reason",
							   k->reason, "backoff_ms",
							   (json_int_t)k->backoff_ms));
	}
	pthread_mutex_unlock(&c->lock);
	text = a ? json_dumps(a, JSON_INDENT(1)) : NULL;
	json_decref(a);
	book_path(c, path, sizeof(path));
	if (!text || vd_write_atomic(path, text, strlen(text), &err) < 0)
		vd_warn("controller: cannot record restarts: %s", text ? err.msg : "out of memory");
	free(text);
}

/* Read the book a previous controller left; none is fine. */
static void
book_load(struct controller *c)
{
	char path[PATH_MAX + 16];
	json_error_t jerr;
	json_t *a, *e;
	size_t i;

	book_path(c, path, sizeof(path));
	if (access(path, F_OK) < 0)
		return;
	if (!(a = json_load_file(path, 0, &jerr)) || !json_is_array(a)) {
		vd_warn("controller: ignoring %s: %s", path, a ? "not a list" : jerr.text);
		json_decref(a);
		return;
	}
	json_array_foreach(a, i, e) {
		const char *svc = json_string_value(json_object_get(e, "service"));
		const char *why = json_string_value(json_object_get(e, "reason"));
		struct mark *k;

		if (!svc || !(k = mark_of(c, svc, (int)json_integer_value(json_object_get(e, "index")),
					  true)))
			continue;
		k->restarts = (int)json_integer_value(json_object_get(e, "restarts"));
		k->backoff_ms = json_integer_value(json_object_get(e, "backoff_ms"));
		if (k->backoff_ms < 0 || k->backoff_ms > BACKOFF_MAX_MS)
			k->backoff_ms = BACKOFF_MAX_MS;
		snprintf(k->reason, sizeof(k->reason), "%s", why ? why : "");
	}
	json_decref(a);
}

/* ------------------------------------------------ engine thread -> loop */

static struct msg *
msg_new(enum msg_kind kind)
{
	struct msg *m = calloc(1, sizeof(*m));

	if (m)
		m->kind = kind;
	return m;
}

static void
msg_free(struct msg *m)
{
	vd_replica_list_clear(&m->list);
	vd_manifest_free(m->desired);
	free(m->text);
	free(m);
}

static void
post(struct controller *c, struct msg *m)
{
	if (!m)
		return;
	pthread_mutex_lock(&c->lock);
	m->next = NULL;
	*c->msgs_tail = m;
	c->msgs_tail = &m->next;
	pthread_mutex_unlock(&c->lock);
	wake(c->msg_h.fd);
}

static void
post_replica(struct controller *c, enum msg_kind kind, const char *service, int index,
	     const char *id)
{
	struct msg *m = msg_new(kind);

	if (!m)
		return;
	snprintf(m->service, sizeof(m->service), "%s", service);
	m->index = index;
	vd_replica_name(m->name, sizeof(m->name), service, index);
	snprintf(m->id, sizeof(m->id), "%s", id);
	post(c, m);
}

static void
drain_put(struct drain *d)
{
	if (atomic_fetch_sub(&d->refs, 1) == 1)
		free(d);
}

/* ------------------------------------------------------ engine thread */

/* A FILE whose lines go to the log, for reconcile's progress. */
static ssize_t
log_write(void *cookie, const char *buf, size_t len)
{
	(void)cookie;
	for (size_t i = 0; i < len;) {
		const char *nl = memchr(buf + i, '\n', len - i);
		size_t n = nl ? (size_t)(nl - (buf + i)) : len - i;

		if (n)
			vd_info("%.*s", (int)n, buf + i);
		i += n + 1;
	}
	return (ssize_t)len;
}

/* A FILE whose lines go to a control client. */
static ssize_t
stream_write(void *cookie, const char *buf, size_t len)
{
	struct stream *s = cookie;
	struct msg *m = msg_new(MSG_OUT);

	if (!m)
		return (ssize_t)len;
	if (!(m->text = strndup(buf, len))) {
		free(m);
		return (ssize_t)len;
	}
	m->stream = s;
	post(s->c, m);
	return (ssize_t)len;
}

static FILE *
line_file(cookie_write_function_t *fn, void *cookie)
{
	cookie_io_functions_t io = { .write = fn };
	FILE *f = fopencookie(cookie, "w", io);

	if (f)
		setvbuf(f, NULL, _IOLBF, 0);
	return f;
}

/* reconcile hook: take a replica out of its balancer before it is stopped */
static void
before_remove(void *arg, const char *name, const char *id)
{
	struct controller *c = arg;
	struct msg *m = msg_new(MSG_DRAIN);
	struct drain *d = calloc(1, sizeof(*d));
	struct timespec until;
	int64_t ms;

	if (!m || !d) {
		free(m);
		free(d);
		return;
	}
	atomic_init(&d->refs, 2);
	d->c = c;
	snprintf(m->name, sizeof(m->name), "%s", name);
	snprintf(m->id, sizeof(m->id), "%s", id);
	m->drain = d;
	post(c, m);
	clock_gettime(CLOCK_REALTIME, &until);
	ms = (int64_t)until.tv_nsec / 1000000 + DRAIN_WAIT_MS;
	until.tv_sec += ms / 1000;
	until.tv_nsec = (ms % 1000) * 1000000;
	pthread_mutex_lock(&c->lock);
	while (!d->done && !c->stopping)
		if (pthread_cond_timedwait(&c->cond, &c->lock, &until) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&c->lock);
	drain_put(d);
}

/* reconcile hook: a replica runs; the loop starts checking it at once */
static void
on_started(void *arg, const struct vd_replica *r)
{
	struct controller *c = arg;
	struct msg *m = msg_new(MSG_STARTED);

	if (!m)
		return;
	snprintf(m->service, sizeof(m->service), "%s", r->labels.service);
	m->index = r->labels.index;
	snprintf(m->name, sizeof(m->name), "%s", r->name);
	snprintf(m->id, sizeof(m->id), "%s", r->id);
	snprintf(m->host, sizeof(m->host), "%s", r->host);
	m->port = r->host_port;
	m->started_ns = r->started_ns;
	post(c, m);
}

static void
run_opts(struct controller *c, struct vd_reconcile_opts *r, FILE *progress)
{
	memset(r, 0, sizeof(*r));
	r->node = c->o->node;
	r->stop_grace_s = -1;
	r->progress = progress;
	r->before_remove = before_remove;
	r->on_started = on_started;
	r->hook_arg = c;
}

static unsigned
backends_of(const struct vd_manifest *m)
{
	unsigned b = 0;

	for (size_t i = 0; m && i < m->nservices; i++)
		b |= 1u << m->services[i].backend;
	return b;
}

/* The identities the recorded services were applied with. */
static char **
identities(struct controller *c, const struct vd_manifest *m)
{
	char **v = calloc(m->nservices + 1, sizeof(*v));
	char buf[PATH_MAX];

	for (size_t i = 0; v && i < m->nservices; i++)
		if (vd_state_manifest_of(c->dir, m->services[i].name, buf, sizeof(buf)) == 0)
			v[i] = strdup(buf);
	return v;
}

static void
free_strv(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

/*
 * What the engines the desired state uses hold, into *out (cleared first),
 * and whether each answered, into st. One list call per engine serves
 * both. False when one of them did not answer.
 */
static bool
observe(struct controller *c, unsigned used, struct engine_status *st,
	struct vd_replica_list *out)
{
	bool all = true;

	vd_replica_list_clear(out);
	for (int b = 0; b < NBACKENDS; b++) {
		struct vd_error err = VD_ERROR_INIT;
		struct vd_replica_list part = { NULL, 0 };
		struct vd_replica *r;

		memset(&st[b], 0, sizeof(st[b]));
		if (!(st[b].used = used & (1u << b)))
			continue;
		if (vd_observe_some(c->o->node, 1u << b, 0, &part, &err) < 0) {
			if (err.code != VD_EXIT_ENGINE)
				vd_error_log("controller: %s", err.msg);
			snprintf(st[b].error, sizeof(st[b].error), "%.255s", err.msg);
			all = false;
			continue;
		}
		st[b].up = true;
		/* the records move into out */
		for (size_t i = 0; i < part.n; i++) {
			if (!(r = vd_replica_list_add(out))) {
				vd_replica_clear(&part.v[i]);
				continue;
			}
			*r = part.v[i];
		}
		free(part.v);
	}
	return all;
}

static const struct vd_service *
find_service(const struct vd_manifest *m, const char *name)
{
	return m ? vd_manifest_find(m, name) : NULL;
}

/*
 * Replace replicas that died or were found sick, unless their index is
 * held back. Returns how many were removed (their indices are then made
 * again by the plan).
 */
static int
heal(struct controller *c, const struct vd_manifest *m, const struct vd_replica_list *have)
{
	struct vd_driver *d[NBACKENDS] = { NULL, NULL };
	int64_t now = mono_ms();
	int healed = 0, counted = 0;

	for (size_t i = 0; i < have->n; i++) {
		const struct vd_replica *h = &have->v[i];
		const struct vd_service *svc = find_service(m, h->labels.service);
		struct vd_error err = VD_ERROR_INIT;
		char why[128] = "";
		struct mark *k;

		if (!svc || svc->backend != h->backend || h->labels.index >= svc->replicas)
			continue;
		pthread_mutex_lock(&c->lock);
		k = mark_of(c, svc->name, h->labels.index, true);
		if (k && k->sick_id[0] && strcmp(k->sick_id, h->id) == 0)
			snprintf(why, sizeof(why), "%s", k->sick_why);
		else if ((h->state == VD_STATE_EXITED || h->state == VD_STATE_DEAD) &&
			 (h->oom_killed || h->exit_code < 0))
			/* a VM has no exit code: it stopped (or was destroyed) */
			snprintf(why, sizeof(why), h->oom_killed ? "OOM-killed" : "stopped");
		else if (h->state == VD_STATE_EXITED || h->state == VD_STATE_DEAD)
			snprintf(why, sizeof(why), "exited (code %d)", h->exit_code);
		if (!k || !why[0] || k->hold_until > now) {
			pthread_mutex_unlock(&c->lock);
			continue;
		}
		k->restarts++;
		snprintf(k->reason, sizeof(k->reason), "%s", why);
		/* this one goes now; the next one of this index waits */
		k->backoff_ms = k->backoff_ms ? k->backoff_ms * 2 : BACKOFF_FIRST_MS;
		if (k->backoff_ms > BACKOFF_MAX_MS)
			k->backoff_ms = BACKOFF_MAX_MS;
		k->hold_until = now + k->backoff_ms;
		k->sick_id[0] = '\0';
		pthread_mutex_unlock(&c->lock);
		counted++;

		vd_info("%s: %s: replacing it", h->name, why);
		post_replica(c, MSG_GONE, svc->name, h->labels.index, h->id);
		if (!d[h->backend] &&
		    vd_driver_open(vd_driver_ops_for(h->backend), c->o->node, &d[h->backend],
				   &err) < 0) {
			vd_warn("%s: %s", h->name, err.msg);
			continue;
		}
		vd_driver_stop(d[h->backend], h->id, 0, &err);
		vd_error_clear(&err);
		if (vd_driver_remove(d[h->backend], h->id, &err) < 0) {
			vd_warn("%s: remove: %s", h->name, err.msg);
			continue;
		}
		healed++;
	}
	for (int b = 0; b < NBACKENDS; b++)
		vd_driver_close(d[b]);
	if (counted)
		book_save(c);
	return healed;
}

/* Drop from the plan the restarts of replicas that are held back (a held
 * replica stays as it is, exited, until its time comes; a missing index is
 * always made). */
static void
drop_held(struct controller *c, struct vd_plan *plan)
{
	int64_t now = mono_ms();

	pthread_mutex_lock(&c->lock);
	for (size_t p = 0; p < plan->nphases; p++) {
		struct vd_phase *ph = &plan->phases[p];
		size_t n = 0;

		for (size_t i = 0; i < ph->n; i++) {
			const struct vd_action *a = &ph->v[i];
			const char *svc = a->want ? a->want->svc->name : a->have->labels.service;
			struct mark *k = mark_of(c, svc, a->index, false);

			bool restart = a->kind == VD_ACT_START ||
				       (a->kind == VD_ACT_REPLACE && (a->reason == VD_WHY_DEAD ||
								      a->reason == VD_WHY_STOPPED));

			if (restart && k && k->hold_until > now)
				continue;
			ph->v[n++] = *a;
		}
		ph->n = n;
	}
	pthread_mutex_unlock(&c->lock);
}

static bool
plan_has_actions(const struct vd_plan *plan)
{
	for (size_t p = 0; p < plan->nphases; p++)
		if (plan->phases[p].n)
			return true;
	return false;
}

/* Make the engines match the recorded state once; tell the loop what they
 * hold. Returns the ms until it should run again at the latest. */
static int64_t
reconcile(struct controller *c, FILE *log, unsigned *used_out)
{
	struct vd_error err = VD_ERROR_INIT;
	struct vd_diags diags = VD_DIAGS_INIT;
	struct vd_manifest *m = NULL;
	struct msg *snap = msg_new(MSG_SNAPSHOT);
	int64_t next = c->o->resync_ms > 0 ? c->o->resync_ms : RESYNC_MS;
	unsigned used;

	if (!snap)
		return RETRY_MS;
	if (vd_state_load(c->dir, NULL, &m, &diags, &err) < 0) {
		vd_error_log("controller: the state directory: %s", err.msg);
		vd_diags_print(&diags, stderr);
		vd_diags_clear(&diags);
		msg_free(snap);
		return RETRY_MS;
	}
	used = *used_out = backends_of(m);
	if (!observe(c, used, snap->engines, &snap->list)) {
		snap->desired = m;
		post(c, snap);
		return RETRY_MS;
	}
	if (heal(c, m, &snap->list) > 0 && !observe(c, used, snap->engines, &snap->list))
		goto out;
	{
		char **idents = identities(c, m);
		struct vd_desired *want = NULL;
		char **made = NULL;
		struct vd_plan plan = { 0 };
		struct vd_plan_opts po = { .prune = false };
		struct vd_reconcile_opts ro;
		struct vd_reconcile_result res;
		bool acted = false;

		if (idents && vd_desired_from_manifest(m, idents, &want, &made, &err) == 0 &&
		    vd_plan_make(want, m->nservices, &snap->list, &po, &plan, &err) == 0) {
			drop_held(c, &plan);
			if (plan_has_actions(&plan)) {
				acted = true;
				run_opts(c, &ro, log);
				ro.timeout_ms = 60000;
				if (vd_reconcile_run(&plan, &ro, &res, &err) < 0)
					vd_warn("controller: reconcile: %s", err.msg);
			}
			vd_plan_clear(&plan);
		} else if (err.code) {
			vd_error_log("controller: plan: %s", err.msg);
		}
		vd_desired_free(want, made, m->nservices);
		free_strv(idents, m->nservices);
		if (acted && !observe(c, used, snap->engines, &snap->list))
			goto out;
	}
	snap->observed = true;
out:
	if (!snap->observed)
		next = RETRY_MS;
	/* the earliest held index is due then */
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < c->nmarks; i++) {
		int64_t left = c->marks[i].hold_until - mono_ms();

		if (left > 0 && left < next)
			next = left;
	}
	pthread_mutex_unlock(&c->lock);
	snap->desired = m;
	post(c, snap);
	return next;
}

static void
end_job(struct controller *c, struct stream *s, int code, const char *error)
{
	struct msg *m = msg_new(MSG_END);

	if (!m)
		return;
	m->stream = s;
	m->code = code;
	m->text = error && *error ? strdup(error) : NULL;
	post(c, m);
}

/* The services of an apply request, parsed as a manifest. */
static struct vd_manifest *
job_manifest(const json_t *services, struct vd_error *err)
{
	struct vd_diags diags = VD_DIAGS_INIT;
	struct vd_manifest *m = NULL;
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	size_t i;
	json_t *s;

	if (!f) {
		vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
		return NULL;
	}
	json_array_foreach(services, i, s) {
		char *one = json_dumps(s, JSON_COMPACT | JSON_REAL_PRECISION(6));

		fprintf(f, "%s%s\n", i ? "---\n" : "", one ? one : "");
		free(one);
	}
	fclose(f);
	if (vd_manifest_parse("request", text, len, &m, &diags, err) < 0 && diags.n)
		vd_error_set(err, VD_EXIT_INPUT, "%s", diags.items[0].msg);
	vd_diags_clear(&diags);
	free(text);
	return m;
}

static bool
opt_bool(const json_t *body, const char *key, bool def)
{
	const json_t *v = json_object_get(body, key);

	return v ? json_is_true(v) : def;
}

static void
run_job(struct controller *c, struct job *j)
{
	struct vd_error err = VD_ERROR_INIT;
	struct vd_apply_opts o = { 0 };
	struct vd_apply_result res;
	FILE *out = line_file(stream_write, j->stream);
	const json_t *v;

	if (!out) {
		end_job(c, j->stream, VD_EXIT_FAILURE, "out of memory");
		return;
	}
	o.node = c->o->node;
	o.state_dir = c->dir;
	o.out = out;
	o.prune = opt_bool(j->body, "prune", false);
	o.overcommit = opt_bool(j->body, "overcommit", false);
	run_opts(c, &o.run, out);
	o.run.wait = opt_bool(j->body, "wait", true);
	o.run.timeout_ms = json_integer_value(json_object_get(j->body, "timeout_ms"));
	o.run.parallel = (int)json_integer_value(json_object_get(j->body, "parallel"));
	if (j->kind == JOB_APPLY) {
		const json_t *ids = json_object_get(j->body, "identities");
		struct vd_manifest *m = job_manifest(json_object_get(j->body, "services"), &err);
		struct vd_desired *want = NULL;
		char **idents = NULL, **made = NULL;

		o.quiet_undeclared = opt_bool(j->body, "quiet_undeclared", false);
		if (m && (idents = calloc(m->nservices + 1, sizeof(*idents)))) {
			for (size_t i = 0; i < m->nservices; i++)
				if ((v = json_array_get(ids, i)) && json_is_string(v))
					idents[i] = strdup(json_string_value(v));
			if (vd_desired_from_manifest(m, idents, &want, &made, &err) == 0)
				vd_apply(want, m->nservices, &o, &res, &err);
			vd_desired_free(want, made, m->nservices);
			free_strv(idents, m->nservices);
		} else if (m) {
			vd_error_set(&err, VD_EXIT_FAILURE, "out of memory");
		}
		vd_manifest_free(m);
	} else {
		const json_t *names = json_object_get(j->body, "services");
		size_t n = json_array_size(names);
		const char **v2 = calloc(n + 1, sizeof(*v2));

		for (size_t i = 0; v2 && i < n; i++)
			v2[i] = json_string_value(json_array_get(names, i));
		if (v2)
			vd_delete_services(v2, n, &o, &res, &err);
		free(v2);
	}
	fclose(out);
	end_job(c, j->stream, err.code, err.msg);
}

/* Event streams of the engines in use, opened again when they break. */
struct watch {
	struct vd_driver *d;
	int fd;
};

static void
watch_close(struct watch *w)
{
	vd_driver_close(w->d);
	w->d = NULL;
	w->fd = -1;
}

static void
watch_open(struct controller *c, struct watch *w, int b)
{
	struct vd_error err = VD_ERROR_INIT;

	if (w->d)
		return;
	if (vd_driver_open(vd_driver_ops_for(b), c->o->node, &w->d, &err) < 0 ||
	    (w->fd = vd_driver_events_open(w->d, &err)) < 0) {
		vd_debug("controller: %s events: %s", vd_driver_ops_for(b)->name, err.msg);
		watch_close(w);
	}
}

/* Read what an event stream has; false when it broke. */
static bool
watch_read(struct controller *c, struct watch *w)
{
	struct vd_error err = VD_ERROR_INIT;
	struct vd_event e;
	int r;

	while ((r = vd_driver_events_read(w->d, &e, &err)) == 1) {
		vd_debug("controller: event %s %s-%d", vd_event_kind_name(e.kind), e.service,
			 e.index);
		if (e.kind == VD_EVENT_DIE || e.kind == VD_EVENT_OOM)
			post_replica(c, MSG_GONE, e.service, e.index, e.id);
	}
	if (r < 0) {
		vd_warn("controller: %s", err.msg);
		watch_close(w);
		return false;
	}
	return true;
}

static void *
engine_thread(void *arg)
{
	struct controller *c = arg;
	struct watch w[NBACKENDS] = { { NULL, -1 }, { NULL, -1 } };
	FILE *log = line_file(log_write, NULL);
	int64_t due = 0; /* reconcile now */
	unsigned used = 0;

	for (;;) {
		struct pollfd p[1 + NBACKENDS];
		struct job *j = NULL;
		nfds_t np = 0;
		int64_t now = mono_ms();
		int n;

		pthread_mutex_lock(&c->lock);
		if (c->stopping) {
			pthread_mutex_unlock(&c->lock);
			break;
		}
		if ((j = c->jobs)) {
			c->jobs = j->next;
			if (!c->jobs)
				c->jobs_tail = &c->jobs;
		}
		if (c->want_reconcile && due > now + SETTLE_MS)
			due = now + SETTLE_MS;
		c->want_reconcile = false;
		pthread_mutex_unlock(&c->lock);

		if (j) {
			run_job(c, j);
			json_decref(j->body);
			free(j);
			due = now;
			continue;
		}
		if (due <= now) {
			due = mono_ms() + reconcile(c, log, &used);
			/* watch the engines the desired state uses */
			for (int b = 0; b < NBACKENDS; b++)
				(used & (1u << b)) ? watch_open(c, &w[b], b) : watch_close(&w[b]);
			continue;
		}
		p[np++] = (struct pollfd){ .fd = c->wake_fd, .events = POLLIN };
		for (int b = 0; b < NBACKENDS; b++)
			if (w[b].d)
				p[np++] = (struct pollfd){ .fd = w[b].fd, .events = POLLIN };
		n = poll(p, np, (int)(due - now));
		if (n <= 0)
			continue;
		if (p[0].revents) {
			uint64_t v;

			if (read(c->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				vd_warn("controller: eventfd: %s", strerror(errno));
		}
		for (nfds_t i = 1; i < np; i++) {
			for (int b = 0; b < NBACKENDS; b++) {
				if (!w[b].d || w[b].fd != p[i].fd || !p[i].revents)
					continue;
				/* anything an engine says is worth a look */
				if (!watch_read(c, &w[b]))
					due = now;
				else if (due > now + SETTLE_MS)
					due = now + SETTLE_MS;
			}
		}
	}
	for (int b = 0; b < NBACKENDS; b++)
		watch_close(&w[b]);
	if (log)
		fclose(log);
	pthread_mutex_lock(&c->lock);
	c->worker_done = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* --------------------------------------------------- the loop: replicas */

static void start_probe(struct crep *r);
static void ensure_balancer(struct controller *c, struct csvc *s);


static void
balancer_out(struct crep *r, void (*done)(void *, const char *), void *arg)
{
	if (r->in_lb && r->s->lb) {
		r->in_lb = false;
		if (vd_lb_drain_replica(r->s->lb, r->key, done, arg) == 0)
			return;
	}
	if (done)
		done(arg, r->key);
}

static void
balancer_in(struct crep *r)
{
	struct vd_error err = VD_ERROR_INIT;

	if (r->in_lb || r->removing || !r->s->lb || r->state != VD_STATE_RUNNING)
		return;
	if (vd_lb_add_replica(r->s->lb, r->key, r->host, r->port, &err) < 0) {
		vd_warn("%s: balancer: %s", r->name, err.msg);
		return;
	}
	r->in_lb = true;
}

static void
crep_free(struct crep *r)
{
	struct controller *c = r->s->c;

	if (r->probe)
		vd_health_probe_cancel(r->probe);
	if (r->timer > 0)
		vd_ev_timer_cancel(c->ev, r->timer);
	balancer_out(r, NULL, NULL);
	free(r);
}

static struct crep *
crep_find(struct csvc *s, const char *id)
{
	for (size_t i = 0; i < s->nreps; i++)
		if (strcmp(s->reps[i]->id, id) == 0)
			return s->reps[i];
	return NULL;
}

static struct crep *
crep_by_id(struct controller *c, const char *id)
{
	for (size_t i = 0; i < c->nsvcs; i++) {
		struct crep *r = crep_find(c->svcs[i], id);

		if (r)
			return r;
	}
	return NULL;
}

static struct csvc *
csvc_find(struct controller *c, const char *name)
{
	for (size_t i = 0; i < c->nsvcs; i++)
		if (strcmp(c->svcs[i]->name, name) == 0)
			return c->svcs[i];
	return NULL;
}

static struct crep *
crep_add(struct controller *c, struct csvc *s, const char *name, const char *id, int index)
{
	struct crep *r = calloc(1, sizeof(*r)), **v;

	if (!r || !(v = realloc(s->reps, (s->nreps + 1) * sizeof(*v)))) {
		free(r);
		return NULL;
	}
	s->reps = v;
	s->reps[s->nreps++] = r;
	r->s = s;
	r->index = index;
	snprintf(r->name, sizeof(r->name), "%s", name);
	snprintf(r->id, sizeof(r->id), "%s", id);
	snprintf(r->key, sizeof(r->key), "%.50s#%.12s", name, id);
	r->first_seen = vd_ev_now_ms(c->ev);
	r->state = VD_STATE_RUNNING;
	return r;
}

static void
crep_remove(struct csvc *s, size_t i)
{
	crep_free(s->reps[i]);
	s->reps[i] = s->reps[--s->nreps];
}

/* A replica stopped running (or is being removed): no more traffic or checks. */
static void
crep_down(struct crep *r)
{
	r->health = H_DOWN;
	r->healthy_since = 0;
	balancer_out(r, NULL, NULL);
}

static int64_t
probe_tick(struct vd_ev *ev, void *arg)
{
	struct crep *r = arg;

	(void)ev;
	r->timer = 0;
	start_probe(r);
	return -1;
}

static void
schedule_probe(struct crep *r, int64_t after_ms)
{
	struct controller *c = r->s->c;

	if (r->timer <= 0 && !c->stopping_loop)
		r->timer = vd_ev_timer(c->ev, after_ms, probe_tick, r);
}

static void
mark_sick(struct controller *c, struct crep *r, const char *why)
{
	struct mark *k;

	pthread_mutex_lock(&c->lock);
	if ((k = mark_of(c, r->s->name, r->index, true))) {
		snprintf(k->sick_id, sizeof(k->sick_id), "%s", r->id);
		snprintf(k->sick_why, sizeof(k->sick_why), "health check failed (%s)", why);
	}
	c->want_reconcile = true;
	pthread_mutex_unlock(&c->lock);
	wake(c->wake_fd);
}

static void
probe_done(void *arg, enum vd_health_result res)
{
	struct crep *r = arg;
	struct controller *c = r->s->c;
	const struct vd_service *svc = r->s->svc;
	int64_t now = vd_ev_now_ms(c->ev);

	r->probe = NULL;
	r->last = res;
	r->checked = true;
	if (r->state != VD_STATE_RUNNING || r->removing)
		return;
	if (res == VD_HEALTH_OK) {
		if (r->health != H_HEALTHY) {
			vd_info("%s: healthy", r->name);
			r->healthy_since = now;
		}
		r->health = H_HEALTHY;
		r->fails = 0;
		balancer_in(r);
		if (now - r->healthy_since >= STABLE_MS) {
			struct mark *k;

			pthread_mutex_lock(&c->lock);
			if ((k = mark_of(c, r->s->name, r->index, false)))
				k->backoff_ms = 0;
			pthread_mutex_unlock(&c->lock);
		}
	} else if (r->health != H_HEALTHY &&
		   wall_ns() - r->started_ns < svc->health.start_period_ms * 1000000) {
		r->health = H_STARTING;
	} else if (++r->fails >= svc->health.retries && r->health != H_UNHEALTHY) {
		vd_warn("%s: unhealthy: %d checks failed, the last: %s", r->name, r->fails,
			vd_health_result_name(res));
		r->health = H_UNHEALTHY;
		r->healthy_since = 0;
		balancer_out(r, NULL, NULL);
		mark_sick(c, r, vd_health_result_name(res));
	}
	ensure_balancer(c, r->s);
	schedule_probe(r, svc->health.interval_ms);
}

static void
start_probe(struct crep *r)
{
	struct controller *c = r->s->c;
	const struct vd_service *svc = r->s->svc;
	struct vd_health_spec spec = { svc->health.kind, svc->health.http_path,
				       svc->health.timeout_ms };

	if (r->probe || r->state != VD_STATE_RUNNING || r->removing || c->stopping_loop)
		return;
	r->probe = vd_health_probe_start(c->ev, &spec, r->host, r->port, probe_done, r);
	if (!r->probe)
		schedule_probe(r, svc->health.interval_ms);
}

/* Bring a replica's entry in line with what the engine says of it. */
static void
crep_update(struct controller *c, struct crep *r, const struct vd_replica *h)
{
	bool was_running = r->state == VD_STATE_RUNNING;

	(void)c;
	r->state = h->state;
	r->started_ns = h->started_ns;
	if (strcmp(r->host, h->host) != 0 || r->port != h->host_port) {
		snprintf(r->host, sizeof(r->host), "%s", h->host);
		r->port = h->host_port;
		balancer_out(r, NULL, NULL);
	}
	if (h->state != VD_STATE_RUNNING) {
		if (was_running || r->health != H_DOWN)
			crep_down(r);
	} else if (!r->probe && r->timer <= 0) {
		start_probe(r);
	}
}

/* ------------------------------------------------- the loop: balancers */

static void
lb_config(const struct vd_service *svc, struct vd_lb_config *cfg)
{
	vd_lb_config_default(cfg);
	cfg->listen_host = svc->balancer.listen_host;
	cfg->listen_port = svc->balancer.listen_port;
	cfg->policy = svc->balancer.policy;
	cfg->max_inflight = svc->balancer.max_inflight;
	cfg->queue_limit = svc->balancer.queue_limit;
	cfg->queue_timeout_ms = svc->balancer.queue_timeout_ms;
}

static bool
same_balancer(const struct vd_service *a, const struct vd_service *b)
{
	return a->balancer.enabled == b->balancer.enabled &&
	       a->balancer.listen_port == b->balancer.listen_port &&
	       strcmp(a->balancer.listen_host ? a->balancer.listen_host : "",
		      b->balancer.listen_host ? b->balancer.listen_host : "") == 0 &&
	       a->balancer.policy == b->balancer.policy &&
	       a->balancer.max_inflight == b->balancer.max_inflight &&
	       a->balancer.queue_limit == b->balancer.queue_limit &&
	       a->balancer.queue_timeout_ms == b->balancer.queue_timeout_ms;
}

/*
 * Listen for a service once each of its running replicas had its first
 * check (so a restarted controller does not answer 503 while it has healthy
 * replicas it has not looked at yet), or after LISTEN_WAIT_MS.
 */
static void
ensure_balancer(struct controller *c, struct csvc *s)
{
	struct vd_error err = VD_ERROR_INIT;
	struct vd_lb_config cfg;
	int64_t now = vd_ev_now_ms(c->ev);
	bool waiting = false;

	if (s->lb || !s->svc || !s->svc->balancer.enabled || c->stopping_loop)
		return;
	for (size_t i = 0; i < s->nreps; i++)
		if (s->reps[i]->state == VD_STATE_RUNNING && !s->reps[i]->checked)
			waiting = true;
	if (waiting && now - s->since < LISTEN_WAIT_MS)
		return;
	lb_config(s->svc, &cfg);
	if (!(s->lb = vd_lb_new(c->ev, &cfg, &err))) {
		if (strcmp(s->lb_error, err.msg) != 0)
			vd_error_log("%s: balancer: %s", s->name, err.msg);
		snprintf(s->lb_error, sizeof(s->lb_error), "%.255s", err.msg);
		return;
	}
	s->lb_error[0] = '\0';
	vd_info("%s: balancer listening on %s:%d", s->name, cfg.listen_host, vd_lb_port(s->lb));
	for (size_t i = 0; i < s->nreps; i++)
		if (s->reps[i]->health == H_HEALTHY)
			balancer_in(s->reps[i]);
}

static void
csvc_free(struct csvc *s)
{
	for (size_t i = 0; i < s->nreps; i++)
		crep_free(s->reps[i]);
	free(s->reps);
	vd_lb_free(s->lb);
	free(s);
}

/* ------------------------------------------------- the loop: snapshots */

/* A service that is gone takes its restart history with it. */
static void
forget_marks(struct controller *c, const char *service)
{
	size_t n = 0, was;

	pthread_mutex_lock(&c->lock);
	was = c->nmarks;
	for (size_t i = 0; i < c->nmarks; i++)
		if (strcmp(c->marks[i].service, service) != 0)
			c->marks[n++] = c->marks[i];
	c->nmarks = n;
	pthread_mutex_unlock(&c->lock);
	if (n != was)
		book_save(c);
}

static void
take_snapshot(struct controller *c, struct msg *m)
{
	struct vd_manifest *old = c->desired;
	size_t n = 0;

	for (int b = 0; b < NBACKENDS; b++) {
		struct engine_status *was = &c->engines[b], *now = &m->engines[b];
		const char *name = vd_driver_ops_for(b)->name;

		if (now->used && !now->up && (was->up || !was->used || strcmp(was->error, now->error)))
			vd_error_log("engine %s is down: %s", name, now->error);
		else if (now->used && now->up && was->used && !was->up)
			vd_info("engine %s is back", name);
		*was = *now;
	}
	if (!m->desired)
		return;
	/* services: keep those still desired, add new ones, drop the rest */
	c->desired = m->desired;
	m->desired = NULL;
	for (size_t i = 0; i < c->nsvcs; i++)
		c->svcs[i]->seen = false;
	for (size_t i = 0; i < c->desired->nservices; i++) {
		const struct vd_service *svc = &c->desired->services[i];
		struct csvc *s = csvc_find(c, svc->name), **v;

		if (!s) {
			if (!(s = calloc(1, sizeof(*s))) ||
			    !(v = realloc(c->svcs, (c->nsvcs + 1) * sizeof(*v)))) {
				free(s);
				continue;
			}
			c->svcs = v;
			c->svcs[c->nsvcs++] = s;
			s->c = c;
			snprintf(s->name, sizeof(s->name), "%s", svc->name);
			s->since = vd_ev_now_ms(c->ev);
			vd_info("%s: taken on (%d replicas)", svc->name, svc->replicas);
		} else if (s->svc && !same_balancer(s->svc, svc) && s->lb) {
			vd_info("%s: balancer changed: listening anew", svc->name);
			for (size_t k = 0; k < s->nreps; k++)
				s->reps[k]->in_lb = false;
			vd_lb_free(s->lb);
			s->lb = NULL;
			s->since = vd_ev_now_ms(c->ev);
		}
		s->svc = svc;
		s->seen = true;
	}
	for (size_t i = 0; i < c->nsvcs;) {
		if (c->svcs[i]->seen) {
			i++;
			continue;
		}
		vd_info("%s: no longer desired", c->svcs[i]->name);
		forget_marks(c, c->svcs[i]->name);
		csvc_free(c->svcs[i]);
		c->svcs[i] = c->svcs[--c->nsvcs];
	}
	vd_manifest_free(old);
	if (!m->observed)
		goto balancers;

	/* replicas: what the engines hold of the desired services */
	for (size_t i = 0; i < c->nsvcs; i++)
		for (size_t k = 0; k < c->svcs[i]->nreps; k++)
			c->svcs[i]->reps[k]->seen = false;
	for (size_t i = 0; i < m->list.n; i++) {
		const struct vd_replica *h = &m->list.v[i];
		struct csvc *s = csvc_find(c, h->labels.service);
		struct crep *r;

		if (!s || s->svc->backend != h->backend)
			continue;
		if (!(r = crep_find(s, h->id))) {
			if (!(r = crep_add(c, s, h->name, h->id, h->labels.index)))
				continue;
			r->state = VD_STATE_UNKNOWN;
			n++;
		}
		r->seen = true;
		crep_update(c, r, h);
	}
	for (size_t i = 0; i < c->nsvcs; i++) {
		struct csvc *s = c->svcs[i];

		for (size_t k = 0; k < s->nreps;) {
			if (s->reps[k]->seen) {
				k++;
				continue;
			}
			vd_debug("%s: gone", s->reps[k]->name);
			crep_remove(s, k);
		}
	}
	if (n)
		vd_debug("controller: %zu replicas newly seen", n);
balancers:
	for (size_t i = 0; i < c->nsvcs; i++)
		ensure_balancer(c, c->svcs[i]);
}

static void
drained(void *arg, const char *name)
{
	struct drain *d = arg;
	struct controller *c = d->c;

	(void)name;
	pthread_mutex_lock(&c->lock);
	d->done = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	drain_put(d);
}

static void stream_finish(struct controller *c, struct stream *s, int code, const char *error);
static void stream_out(struct stream *s, const char *text);

static void
take_msg(struct controller *c, struct msg *m)
{
	struct csvc *s;
	struct crep *r;

	switch (m->kind) {
	case MSG_SNAPSHOT:
		take_snapshot(c, m);
		break;
	case MSG_STARTED:
		if (!(s = csvc_find(c, m->service)) || crep_find(s, m->id))
			break;
		if ((r = crep_add(c, s, m->name, m->id, m->index))) {
			snprintf(r->host, sizeof(r->host), "%s", m->host);
			r->port = m->port;
			r->started_ns = m->started_ns;
			start_probe(r);
		}
		break;
	case MSG_GONE:
		if ((r = crep_by_id(c, m->id)) && r->health != H_DOWN) {
			vd_info("%s: died: out of the balancer", r->name);
			r->state = VD_STATE_EXITED;
			crep_down(r);
		}
		break;
	case MSG_DRAIN:
		/* a surge replica is known by name: any entry of that name */
		r = crep_by_id(c, m->id);
		for (size_t i = 0; !r && i < c->nsvcs; i++)
			for (size_t k = 0; !r && k < c->svcs[i]->nreps; k++)
				if (strcmp(c->svcs[i]->reps[k]->name, m->name) == 0)
					r = c->svcs[i]->reps[k];
		if (r) {
			r->removing = true;
			if (r->in_lb)
				vd_info("%s: draining", r->name);
			balancer_out(r, drained, m->drain);
		} else {
			drained(m->drain, m->name);
		}
		m->drain = NULL;
		break;
	case MSG_OUT:
		stream_out(m->stream, m->text);
		break;
	case MSG_END:
		stream_finish(c, m->stream, m->code, m->text);
		break;
	}
}

static void
on_msgs(struct vd_ev *ev, struct vd_ev_handle *h, uint32_t events)
{
	struct controller *c = (struct controller *)((char *)h - offsetof(struct controller, msg_h));
	struct msg *m;
	uint64_t v;

	(void)ev;
	(void)events;
	if (read(h->fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		vd_warn("controller: eventfd: %s", strerror(errno));
	pthread_mutex_lock(&c->lock);
	m = c->msgs;
	c->msgs = NULL;
	c->msgs_tail = &c->msgs;
	pthread_mutex_unlock(&c->lock);
	while (m) {
		struct msg *next = m->next;

		take_msg(c, m);
		msg_free(m);
		m = next;
	}
}

/* ---------------------------------------------------- status, metrics */

static double
ms_of(uint64_t us)
{
	return (double)us / 1000.0;
}

static json_t *
balancer_json(struct csvc *s, struct vd_lb_stats *st, bool have)
{
	static const char *const classes[] = { NULL, "1xx", "2xx", "3xx", "4xx", "5xx" };
	json_t *j, *resp, *errs;
	char listen[300];

	if (!s->svc->balancer.enabled)
		return json_null();
	snprintf(listen, sizeof(listen),
		 strchr(s->svc->balancer.listen_host, ':') ? "[%s]:%d" : "%s:%d",
		 s->svc->balancer.listen_host, s->svc->balancer.listen_port);
	j = json_pack("{s:s, s:b, s:o}", "listen", listen, "up", s->lb != NULL, "error",
		      s->lb_error[0] ? json_string(s->lb_error) : json_null());
	if (!have)
		return j;
	resp = json_object();
	errs = json_object();
	for (int k = 1; k < 6; k++)
		if (st->responses[k])
			json_object_set_new(resp, classes[k], json_integer((json_int_t)st->responses[k]));
	for (int k = 0; k < VD_LB_ERR_KINDS; k++)
		if (st->errors[k])
			json_object_set_new(errs, vd_lb_error_name(k),
					    json_integer((json_int_t)st->errors[k]));
	json_object_update(j, json_pack("{s:I, s:i, s:i, s:I, s:f, s:f, s:f, s:f, s:o, s:o}",
					"connections", (json_int_t)st->connections, "inflight",
					st->inflight, "queued", st->queued, "requests",
					(json_int_t)st->requests, "rps", st->rps10, "p50_ms",
					ms_of(st->total10.p50), "p95_ms", ms_of(st->total10.p95),
					"p99_ms", ms_of(st->total10.p99), "responses", resp,
					"errors", errs));
	return j;
}

static json_t *
status_json(struct controller *c)
{
	json_t *root = json_object(), *engines = json_object(), *svcs = json_array();

	for (int b = 0; b < NBACKENDS; b++) {
		const struct engine_status *e = &c->engines[b];

		if (e->used)
			json_object_set_new(engines, vd_driver_ops_for(b)->name,
					    json_pack("{s:b, s:o}", "up", e->up, "error",
						      e->up ? json_null() : json_string(e->error)));
	}
	for (size_t i = 0; i < c->nsvcs; i++) {
		struct csvc *s = c->svcs[i];
		struct vd_lb_stats st = { 0 };
		struct vd_error err = VD_ERROR_INIT;
		bool have = s->lb && vd_lb_stats(s->lb, &st, &err) == 0;
		json_t *reps = json_array();
		int ready = 0;

		for (size_t k = 0; k < s->nreps; k++) {
			struct crep *r = s->reps[k];
			struct vd_lb_replica_stats *rs = NULL;
			struct mark *mk;
			char addr[100];
			json_t *j;

			for (size_t x = 0; have && x < st.nreplicas; x++)
				if (strcmp(st.replicas[x].name, r->key) == 0)
					rs = &st.replicas[x];
			snprintf(addr, sizeof(addr), strchr(r->host, ':') ? "[%s]:%d" : "%s:%d",
				 r->host, r->port);
			ready += r->health == H_HEALTHY;
			j = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:b, s:i, s:I}", "index",
				      r->index, "name", r->name, "id", r->id, "state",
				      vd_replica_state_name(r->state), "health",
				      health_names[r->health], "address", r->port ? addr : "",
				      "in_balancer", r->in_lb, "inflight", rs ? rs->inflight : 0,
				      "requests", (json_int_t)(rs ? rs->requests : 0));
			pthread_mutex_lock(&c->lock);
			mk = mark_of(c, s->name, r->index, false);
			json_object_set_new(j, "restarts", json_integer(mk ? mk->restarts : 0));
			json_object_set_new(j, "last_reason", mk && mk->reason[0]
								      ? json_string(mk->reason)
								      : json_null());
			json_object_set_new(j, "backoff_s",
					    json_real(mk && mk->hold_until > mono_ms()
							      ? (double)(mk->hold_until - mono_ms()) /
									1000
							      : 0));
			pthread_mutex_unlock(&c->lock);
			json_array_append_new(reps, j);
		}
		json_array_append_new(svcs,
				      json_pack("{s:s, s:s, s:i, s:i, s:o, s:o}", "name", s->name,
						"backend", vd_backend_name(s->svc->backend), "desired",
						s->svc->replicas, "ready", ready, "balancer",
						balancer_json(s, &st, have), "replicas", reps));
		free(st.replicas);
	}
	json_object_set_new(root, "pid", json_integer(getpid()));
	json_object_set_new(root, "state_dir", json_string(c->dir));
	json_object_set_new(root, "uptime_s",
			    json_real((double)(vd_ev_now_ms(c->ev) - c->t0) / 1000));
	json_object_set_new(root, "engines", engines);
	json_object_set_new(root, "services", svcs);
	return root;
}

/* Prometheus text exposition format 0.0.4. */
static char *
metrics_text(struct controller *c, size_t *len)
{
	char *text = NULL;
	FILE *f = open_memstream(&text, len);

	if (!f)
		return NULL;
	fprintf(f, "# HELP vdctl_engine_up Whether the engine answers.\n"
		   "# TYPE vdctl_engine_up gauge\n");
	for (int b = 0; b < NBACKENDS; b++)
		if (c->engines[b].used)
			fprintf(f, "vdctl_engine_up{engine=\"%s\"} %d\n",
				vd_driver_ops_for(b)->name, c->engines[b].up);
	fprintf(f, "# HELP vdctl_replicas_desired Replicas the service should have.\n"
		   "# TYPE vdctl_replicas_desired gauge\n"
		   "# HELP vdctl_replica_healthy Whether a replica passes its health check.\n"
		   "# TYPE vdctl_replica_healthy gauge\n"
		   "# HELP vdctl_replica_restarts_total Replacements of a replica index.\n"
		   "# TYPE vdctl_replica_restarts_total counter\n");
	for (size_t i = 0; i < c->nsvcs; i++) {
		struct csvc *s = c->svcs[i];

		fprintf(f, "vdctl_replicas_desired{service=\"%s\"} %d\n", s->name,
			s->svc->replicas);
		for (size_t k = 0; k < s->nreps; k++) {
			struct crep *r = s->reps[k];
			struct mark *mk;

			pthread_mutex_lock(&c->lock);
			mk = mark_of(c, s->name, r->index, false);
			fprintf(f, "vdctl_replica_healthy{service=\"%s\",replica=\"%s\"} %d\n"
				   "vdctl_replica_restarts_total{service=\"%s\",replica=\"%s\"} %d\n",
				s->name, r->name, r->health == H_HEALTHY, s->name, r->name,
				mk ? mk->restarts : 0);
			pthread_mutex_unlock(&c->lock);
		}
	}
	fprintf(f, "# HELP vdctl_requests_total Request heads the balancer received.\n"
		   "# TYPE vdctl_requests_total counter\n"
		   "# HELP vdctl_responses_total Responses by status class.\n"
		   "# TYPE vdctl_responses_total counter\n"
		   "# HELP vdctl_inflight Requests on replicas now.\n"
		   "# TYPE vdctl_inflight gauge\n"
		   "# HELP vdctl_queued Requests waiting in the balancer's queue now.\n"
		   "# TYPE vdctl_queued gauge\n"
		   "# HELP vdctl_response_seconds Response time over the last 10 s.\n"
		   "# TYPE vdctl_response_seconds summary\n");
	for (size_t i = 0; i < c->nsvcs; i++) {
		struct csvc *s = c->svcs[i];
		struct vd_lb_stats st;
		struct vd_error err = VD_ERROR_INIT;

		if (!s->lb || vd_lb_stats(s->lb, &st, &err) < 0)
			continue;
		fprintf(f, "vdctl_requests_total{service=\"%s\"} %llu\n", s->name,
			(unsigned long long)st.requests);
		for (int k = 1; k < 6; k++)
			fprintf(f, "vdctl_responses_total{service=\"%s\",code=\"%dxx\"} %llu\n",
				s->name, k, (unsigned long long)st.responses[k]);
		fprintf(f, "vdctl_inflight{service=\"%s\"} %d\n"
			   "vdctl_queued{service=\"%s\"} %d\n"
			   "vdctl_response_seconds{service=\"%s\",quantile=\"0.5\"} %.6f\n"
			   "vdctl_response_seconds{service=\"%s\",quantile=\"0.95\"} %.6f\n"
			   "vdctl_response_seconds{service=\"%s\",quantile=\"0.99\"} %.6f\n"
			   "vdctl_response_seconds_count{service=\"%s\"} %llu\n",
			s->name, st.inflight, s->name, st.queued, s->name,
			(double)st.total10.p50 / 1e6, s->name, (double)st.total10.p95 / 1e6,
			s->name, (double)st.total10.p99 / 1e6, s->name,
			(unsigned long long)st.total10.count);
		free(st.replicas);
	}
	fclose(f);
	return text;
}

/* ------------------------------------------------------ control socket */

static void
stream_gone(void *arg)
{
	struct stream *s = arg;

	s->req = NULL;
}

static void
stream_out(struct stream *s, const char *text)
{
	json_t *j;
	char *line;

	if (!s->req || !text)
		return;
	j = json_pack("{s:s}", "out", text);
	line = j ? json_dumps(j, JSON_COMPACT) : NULL;
	if (line) {
		vd_ctl_stream_write(s->req, line, strlen(line));
		vd_ctl_stream_write(s->req, "\n", 1);
	}
	free(line);
	json_decref(j);
}

static void
stream_finish(struct controller *c, struct stream *s, int code, const char *error)
{
	json_t *j;
	char *line;

	(void)c;
	if (s->req) {
		j = json_pack("{s:i}", "exit", code);
		if (j && code && error)
			json_object_set_new(j, "error", json_string(error));
		line = j ? json_dumps(j, JSON_COMPACT) : NULL;
		if (line) {
			vd_ctl_stream_write(s->req, line, strlen(line));
			vd_ctl_stream_write(s->req, "\n", 1);
		}
		free(line);
		json_decref(j);
		vd_ctl_stream_end(s->req);
	}
	free(s);
}

static void
reply_error(struct vd_ctl_req *req, int status, const char *msg)
{
	json_t *j = json_pack("{s:s}", "error", msg);

	vd_ctl_reply_json(req, status, j);
	json_decref(j);
}

static void
queue_job(struct controller *c, struct vd_ctl_req *req, enum job_kind kind, json_t *body)
{
	struct job *j = calloc(1, sizeof(*j));
	struct stream *s = calloc(1, sizeof(*s));

	if (!j || !s) {
		free(j);
		free(s);
		json_decref(body);
		reply_error(req, 500, "out of memory");
		return;
	}
	s->c = c;
	s->req = req;
	j->kind = kind;
	j->body = body;
	j->stream = s;
	vd_ctl_stream_begin(req, "application/x-ndjson", stream_gone, s);
	pthread_mutex_lock(&c->lock);
	*c->jobs_tail = j;
	c->jobs_tail = &j->next;
	pthread_mutex_unlock(&c->lock);
	wake(c->wake_fd);
}

static void
on_control(void *arg, struct vd_ctl_req *req)
{
	struct controller *c = arg;
	const char *method = vd_ctl_method(req), *path = vd_ctl_path(req);
	bool apply = strcmp(path, "/v1/apply") == 0, del = strcmp(path, "/v1/delete") == 0;

	if (strcmp(path, "/v1/status") == 0 && strcmp(method, "GET") == 0) {
		json_t *j = status_json(c);

		vd_ctl_reply_json(req, 200, j);
		json_decref(j);
	} else if ((apply || del) && strcmp(method, "POST") == 0) {
		size_t len;
		const char *text = vd_ctl_body(req, &len);
		json_error_t jerr;
		json_t *body = json_loadb(text, len, 0, &jerr);

		if (!json_is_object(body) || !json_is_array(json_object_get(body, "services"))) {
			json_decref(body);
			reply_error(req, 400, "the body is not an object with a 'services' array");
			return;
		}
		if (c->stopping_loop) {
			json_decref(body);
			reply_error(req, 503, "the controller is stopping");
			return;
		}
		queue_job(c, req, apply ? JOB_APPLY : JOB_DELETE, body);
	} else {
		reply_error(req, 404, "no such resource");
	}
}

static void
on_metrics(void *arg, struct vd_ctl_req *req)
{
	struct controller *c = arg;
	size_t len = 0;
	char *text;

	if (strcmp(vd_ctl_path(req), "/metrics") != 0) {
		vd_ctl_reply(req, 404, "text/plain", "not found\n", 10);
		return;
	}
	text = metrics_text(c, &len);
	vd_ctl_reply(req, 200, "text/plain; version=0.0.4", text ? text : "", text ? len : 0);
	free(text);
}

/* ------------------------------------------------------------- running */

static int64_t
housekeep(struct vd_ev *ev, void *arg)
{
	struct controller *c = arg;

	(void)ev;
	for (size_t i = 0; i < c->nsvcs; i++)
		ensure_balancer(c, c->svcs[i]);
	return HOUSEKEEP_MS;
}

/* After a stop signal: stop once every balancer's clients are gone. */
static int64_t
stop_check(struct vd_ev *ev, void *arg)
{
	struct controller *c = arg;
	size_t left = 0;

	for (size_t i = 0; i < c->nsvcs; i++)
		if (c->svcs[i]->lb)
			left += vd_lb_clients(c->svcs[i]->lb);
	if (left == 0 || vd_ev_now_ms(ev) >= c->stop_deadline) {
		if (left)
			vd_warn("controller: %zu client connections still open: closing them", left);
		vd_ev_stop(ev);
		return -1;
	}
	return 20;
}

void
vd_controller_socket_path(const char *dir, char *buf, size_t size)
{
	snprintf(buf, size, "%s/control.sock", dir);
}

int
vd_controller_lock(const char *dir, struct vd_error *err)
{
	char path[PATH_MAX], pid[32] = "";
	int fd;
	ssize_t n;

	if (vd_mkdir_p(dir, err) < 0)
		return vd_error_wrap(err, "state directory");
	snprintf(path, sizeof(path), "%s/controller.lock", dir);
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0)
		return vd_error_errno(err, errno, "cannot open '%s'", path);
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;

		n = pread(fd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		close(fd);
		if (e == EWOULDBLOCK)
			return vd_error_set(err, VD_EXIT_FAILURE,
					    "a controller already runs for %s (pid %s)", dir,
					    *pid ? pid : "unknown");
		return vd_error_errno(err, e, "cannot lock '%s'", path);
	}
	if (vd_controller_lock_pid(fd, err) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int
vd_controller_lock_pid(int fd, struct vd_error *err)
{
	char pid[32];
	int n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());

	if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n)
		return vd_error_errno(err, errno, "cannot write the controller's pid");
	return 0;
}

static void
controller_free(struct controller *c)
{
	struct msg *m = c->msgs;
	struct job *j = c->jobs;

	while (m) {
		struct msg *next = m->next;

		if (m->drain)
			drain_put(m->drain);
		msg_free(m);
		m = next;
	}
	while (j) {
		struct job *next = j->next;

		json_decref(j->body);
		free(j->stream);
		free(j);
		j = next;
	}
	for (size_t i = 0; i < c->nsvcs; i++)
		csvc_free(c->svcs[i]);
	free(c->svcs);
	vd_manifest_free(c->desired);
	free(c->marks);
	if (c->msg_h.fd >= 0)
		close(c->msg_h.fd);
	if (c->wake_fd >= 0)
		close(c->wake_fd);
	vd_ev_free(c->ev);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	free(c);
}

/* Stop the engine thread: wait a little for it to finish what it does (it
 * may be in the middle of a rolling update); true when it did. */
static bool
stop_worker(struct controller *c)
{
	struct timespec until;
	bool done;

	if (!c->worker_started)
		return true;
	pthread_mutex_lock(&c->lock);
	c->stopping = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	wake(c->wake_fd);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 5;
	pthread_mutex_lock(&c->lock);
	while (!c->worker_done)
		if (pthread_cond_timedwait(&c->cond, &c->lock, &until) == ETIMEDOUT)
			break;
	done = c->worker_done;
	pthread_mutex_unlock(&c->lock);
	if (done)
		pthread_join(c->worker, NULL);
	else
		vd_warn("controller: the engine thread is still busy; leaving it");
	return done;
}

static int
setup(struct controller *c, struct vd_error *err)
{
	char path[PATH_MAX];

	if (!(c->ev = vd_ev_new(err)))
		return -1;
	c->msg_h.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	c->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (c->msg_h.fd < 0 || c->wake_fd < 0)
		return vd_error_errno(err, errno, "eventfd");
	c->msg_h.fn = on_msgs;
	if (vd_ev_add(c->ev, &c->msg_h, EPOLLIN) < 0)
		return vd_error_errno(err, errno, "epoll");
	/* signals are blocked here, before any thread starts: they inherit it */
	if (vd_ev_stop_on_signal(c->ev, SIGTERM, err) < 0 ||
	    vd_ev_stop_on_signal(c->ev, SIGINT, err) < 0 ||
	    vd_ev_stop_on_signal(c->ev, SIGHUP, err) < 0)
		return -1;
	vd_controller_socket_path(c->dir, path, sizeof(path));
	if (strlen(path) >= 108)
		return vd_error_set(err, VD_EXIT_INPUT, "state directory path too long for a "
				    "unix socket: '%s'", path);
	if (!(c->ctl = vd_ctl_listen_unix(c->ev, path, on_control, c, err)))
		return vd_error_wrap(err, "control socket");
	if (c->o->metrics_host &&
	    !(c->metrics = vd_ctl_listen_tcp(c->ev, c->o->metrics_host, c->o->metrics_port,
					      on_metrics, c, err)))
		return vd_error_wrap(err, "metrics listener");
	if (vd_ev_timer(c->ev, HOUSEKEEP_MS, housekeep, c) < 0)
		return vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
	if ((errno = pthread_create(&c->worker, NULL, engine_thread, c)) != 0)
		return vd_error_errno(err, errno, "cannot start the engine thread");
	c->worker_started = true;
	return 0;
}

int
vd_controller_run(const struct vd_controller_opts *o, struct vd_error *err)
{
	struct controller *c = calloc(1, sizeof(*c));
	int sig;

	if (!c)
		return vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
	c->o = o;
	c->dir = o->node->state_dir;
	c->msg_h.fd = c->wake_fd = -1;
	c->msgs_tail = &c->msgs;
	c->jobs_tail = &c->jobs;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	signal(SIGPIPE, SIG_IGN);
	book_load(c);
	if (setup(c, err) < 0) {
		if (!stop_worker(c))
			return -1;
		vd_ctl_free(c->ctl);
		vd_ctl_free(c->metrics);
		controller_free(c);
		return -1;
	}
	c->t0 = vd_ev_now_ms(c->ev);
	vd_info("controller: running for %s (pid %d)", c->dir, (int)getpid());
	if (o->ready)
		o->ready(o->ready_arg);
	while ((sig = vd_ev_run(c->ev)) == SIGHUP) {
		vd_info("controller: SIGHUP: reading %s again", c->dir);
		pthread_mutex_lock(&c->lock);
		c->want_reconcile = true;
		pthread_mutex_unlock(&c->lock);
		wake(c->wake_fd);
	}
	vd_info("controller: %s: stopping; replicas keep running",
		sig > 0 ? strsignal(sig) : "stopped");

	/* no new requests; those in flight finish */
	c->stopping_loop = true;
	vd_ctl_free(c->ctl);
	c->ctl = NULL;
	vd_ctl_free(c->metrics);
	c->metrics = NULL;
	for (size_t i = 0; i < c->nsvcs; i++) {
		struct csvc *s = c->svcs[i];

		for (size_t k = 0; k < s->nreps; k++) {
			struct crep *r = s->reps[k];

			if (r->probe)
				vd_health_probe_cancel(r->probe);
			r->probe = NULL;
			if (r->timer > 0)
				vd_ev_timer_cancel(c->ev, r->timer);
			r->timer = 0;
		}
		if (s->lb)
			vd_lb_shutdown(s->lb, STOP_GRACE_MS);
	}
	c->stop_deadline = vd_ev_now_ms(c->ev) + STOP_DEADLINE_MS;
	if (vd_ev_timer(c->ev, 0, stop_check, c) > 0)
		vd_ev_run(c->ev);
	if (stop_worker(c))
		controller_free(c);
	vd_info("controller: stopped");
	return 0;
}
