/*
 * The controller daemon: keep the engines matching the desired state, heal
 * replicas, front each service with its balancer, serve status.
 *
 * This file starts and stops it: the state directory's lock, the two
 * threads, the messages between them, the graceful stop. What each thread
 * does lives in controller_engine.c and controller_loop.c, what the control
 * socket answers in controller_status.c, the handover to a controller that
 * takes over in controller_handover.c (controller_int.h says who owns
 * what). The loop thread never waits on the engine thread; the engine
 * thread waits on the loop only to drain a replica before it removes it,
 * and then only for a bounded time.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "controller_int.h"
#include "vd/file.h"
#include "vd/log.h"

/* ------------------------------------------------------------ messages */

void
ctrl_wake(int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		vd_warn("controller: eventfd: %s", strerror(errno));
}

struct msg *
ctrl_msg_new(enum msg_kind kind)
{
	struct msg *m = calloc(1, sizeof(*m));

	if (m)
		m->kind = kind;
	return m;
}

void
ctrl_msg_free(struct msg *m)
{
	vd_replica_list_clear(&m->list);
	vd_manifest_free(m->desired);
	free(m->placed);
	free(m->engines);
	json_decref(m->balancers);
	json_decref(m->failures);
	json_decref(m->declared);
	vd_state_held_free(m->held, m->nheld);
	free(m->text);
	free(m);
}

void
ctrl_post(struct controller *c, struct msg *m)
{
	if (!m)
		return;
	pthread_mutex_lock(&c->lock);
	m->next = NULL;
	*c->msgs_tail = m;
	c->msgs_tail = &m->next;
	pthread_mutex_unlock(&c->lock);
	ctrl_wake(c->msg_h.fd);
}

void
ctrl_post_replica(struct controller *c, enum msg_kind kind, const char *service, int index,
		  const char *id)
{
	struct msg *m = ctrl_msg_new(kind);

	if (!m)
		return;
	snprintf(m->service, sizeof(m->service), "%s", service);
	m->index = index;
	vd_replica_name(m->name, sizeof(m->name), service, index);
	snprintf(m->id, sizeof(m->id), "%s", id);
	ctrl_post(c, m);
}

void
ctrl_drain_put(struct drain *d)
{
	if (atomic_fetch_sub(&d->refs, 1) == 1)
		free(d);
}

/* The messages of the engine thread, on the loop. */
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

		ctrl_take_msg(c, m);
		ctrl_msg_free(m);
		m = next;
	}
}

/* ------------------------------------------------------------ the book */

static void
book_path(const struct controller *c, char *buf, size_t size)
{
	snprintf(buf, size, "%s/restarts.json", c->dir);
}

void
ctrl_book_save(struct controller *c)
{
	struct vd_error err = VD_ERROR_INIT;
	char path[PATH_MAX + 16];
	int ret;

	book_path(c, path, sizeof(path));
	pthread_mutex_lock(&c->lock);
	ret = vd_restarts_save(&c->book, path, &err);
	pthread_mutex_unlock(&c->lock);
	if (ret < 0)
		vd_warn("controller: cannot record restarts: %s", err.msg);
}

/* --------------------------------------------------------- the lock */

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

	if (vd_file_mkdir_p(dir, err) < 0)
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
		if (e == EWOULDBLOCK) {
			vd_error_set(err, VD_EXIT_FAILURE, "a controller already runs for %s (pid %s)",
				     dir, *pid ? pid : "unknown");
			if (err)
				err->sys_errno = e; /* the caller may take over from it */
			return -1;
		}
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

/* ----------------------------------------------------------- metrics */

const char *
ctrl_metrics_conflict(const struct controller *c, const struct vd_manifest *m)
{
	struct vd_service metrics = { 0 };

	if (!c->o->metrics_host)
		return NULL;
	metrics.balancer.enabled = true;
	metrics.balancer.listen_host = (char *)(uintptr_t)c->o->metrics_host;
	metrics.balancer.listen_port = c->o->metrics_port;
	for (size_t i = 0; m && i < m->nservices; i++)
		if (vd_manifest_listen_conflict(&metrics, &m->services[i]))
			return m->services[i].name;
	return NULL;
}

/* The metrics listener may not take a recorded service's balancer address. */
static int
check_metrics(struct controller *c, struct vd_error *err)
{
	struct vd_manifest *rec = NULL;
	struct vd_state_held *held = NULL;
	size_t nheld = 0;
	const char *svc;
	int ret = 0;

	if (!c->o->metrics_host || vd_state_load_all(c->dir, &rec, &held, &nheld, err) < 0)
		return c->o->metrics_host ? -1 : 0;
	if ((svc = ctrl_metrics_conflict(c, rec)))
		ret = vd_error_set(err, VD_EXIT_INPUT, "--metrics %s:%d is service '%s''s balancer "
				   "address", c->o->metrics_host, c->o->metrics_port, svc);
	vd_state_held_free(held, nheld);
	vd_manifest_free(rec);
	return ret;
}

/* ------------------------------------------------------------- running */

static int64_t
housekeep(struct vd_ev *ev, void *arg)
{
	(void)ev;
	ctrl_housekeep(arg);
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

static void
controller_free(struct controller *c)
{
	struct msg *m = c->msgs;
	struct job *j = c->jobs;

	while (m) {
		struct msg *next = m->next;

		if (m->drain)
			ctrl_drain_put(m->drain);
		ctrl_msg_free(m);
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
		ctrl_csvc_free(c->svcs[i]);
	free(c->svcs);
	free(c->engines);
	vd_state_held_free(c->held, c->nheld);
	json_decref(c->failures);
	json_decref(c->declared);
	vd_manifest_free(c->desired);
	vd_restarts_release(&c->book);
	if (c->handover_fd >= 0)
		close(c->handover_fd);
	if (c->msg_h.fd >= 0)
		close(c->msg_h.fd);
	if (c->wake_fd >= 0)
		close(c->wake_fd);
	vd_ev_free(c->ev);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	free(c);
}

int
ctrl_worker_start(struct controller *c, struct vd_error *err)
{
	pthread_mutex_lock(&c->lock);
	c->stopping = c->worker_done = false;
	pthread_mutex_unlock(&c->lock);
	if ((errno = pthread_create(&c->worker, NULL, ctrl_engine_thread, c)) != 0)
		return vd_error_errno(err, errno, "cannot start the engine thread");
	c->worker_started = true;
	return 0;
}

void
ctrl_worker_ask_stop(struct controller *c)
{
	pthread_mutex_lock(&c->lock);
	c->stopping = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	ctrl_wake(c->wake_fd);
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
	ctrl_worker_ask_stop(c);
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

	if (check_metrics(c, err) < 0 || !(c->ev = vd_ev_new(err)))
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
	if (!(c->ctl = ctrl_listen_control(c, path, err)))
		return vd_error_wrap(err, "control socket");
	if (c->o->metrics_host && !(c->metrics = ctrl_listen_metrics(c, err)))
		return vd_error_wrap(err, "metrics listener");
	if (vd_ev_timer(c->ev, HOUSEKEEP_MS, housekeep, c) < 0)
		return vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
	/* one malloc arena for both threads: the engine thread's own would keep
	 * some 0.6 MB resident for a thread that is idle almost always
	 * (tests/bench/controller.sh: 5.0 MB with it, 4.4 MB without) */
	mallopt(M_ARENA_MAX, 1);
	return ctrl_worker_start(c, err);
}

int
vd_controller_run(const struct vd_controller_opts *o, struct vd_error *err)
{
	struct controller *c = calloc(1, sizeof(*c));
	struct vd_error berr = VD_ERROR_INIT;
	char book[PATH_MAX + 16];
	int sig;

	if (!c)
		return vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
	c->o = o;
	c->dir = o->node->state_dir;
	c->msg_h.fd = c->wake_fd = c->handover_fd = -1;
	c->msgs_tail = &c->msgs;
	c->jobs_tail = &c->jobs;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	signal(SIGPIPE, SIG_IGN);
	book_path(c, book, sizeof(book));
	if (vd_restarts_load(&c->book, book, &berr) < 0)
		vd_warn("controller: ignoring %s", berr.msg);
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
		ctrl_wake(c->wake_fd);
	}
	if (c->handed_over)
		vd_info("controller: handed over: answering what it holds, then exiting");
	else
		vd_info("controller: %s: stopping; replicas keep running",
			sig > 0 ? strsignal(sig) : "stopped");

	/* no new requests; those in flight finish */
	c->stopping_loop = true;
	vd_ctl_free(c->ctl);
	c->ctl = NULL;
	vd_ctl_free(c->metrics);
	c->metrics = NULL;
	ctrl_stop_probes(c);
	for (size_t i = 0; i < c->nsvcs; i++)
		if (c->svcs[i]->lb)
			vd_lb_shutdown(c->svcs[i]->lb, STOP_GRACE_MS);
	c->stop_deadline = vd_ev_now_ms(c->ev) + STOP_DEADLINE_MS;
	if (vd_ev_timer(c->ev, 0, stop_check, c) > 0)
		vd_ev_run(c->ev);
	if (stop_worker(c))
		controller_free(c);
	vd_info("controller: stopped");
	return 0;
}
