/*
 * A controller restart that refuses no connection: the running controller
 * hands its lock and its listening sockets to the one that takes over, as
 * HAProxy passes its sockets to the process that replaces it.
 *
 * The new controller finds the lock held, connects to the control socket
 * and sends POST /v1/handover. The old one takes that connection out of the
 * HTTP server (vd_ctl_take) and asks its engine thread to stop; once the
 * thread has stopped (within HANDOVER_ENGINE_MS, else it answers 503 and
 * starts the thread again), it answers 200 with the names of its sockets in
 * the body and the sockets themselves attached (SCM_RIGHTS): the lock file
 * (the same open file, so the flock never leaves the two of them), the
 * control socket, the metrics listener and each balancer's listener. Only
 * then does it stop accepting, without closing the sockets' queues, and
 * drain what it holds as on SIGTERM. The new controller starts its engine
 * thread only after that answer, so one controller at a time acts on the
 * engines, and its balancers accept what waited in the queues meanwhile.
 *
 * The answer rides on the request's own connection rather than a socket of
 * its own: nothing to name, clean up or protect beyond the control socket's
 * mode, and one deadline on the client's side covers the whole exchange.
 */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "controller_int.h"
#include "vd/clock.h"
#include "vd/httpc.h"
#include "vd/log.h"
#include "vd/net.h"

#define HANDOVER_WAIT_MS 8000 /* the new controller waits this long for the answer */
#define MAX_SOCKETS 250       /* under the kernel's SCM_MAX_FD */
#define MAX_ANSWER 65536

/* ------------------------------------------------- the old controller */

/* Answer the connection with STATUS and a JSON body, with FDS attached. */
static int
answer(int fd, int status, json_t *body, const int *fds, size_t nfds)
{
	char *text = json_dumps(body, JSON_COMPACT), head[160];
	char cbuf[CMSG_SPACE(sizeof(int) * MAX_SOCKETS)] = { 0 };
	struct iovec iov[2];
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };
	ssize_t n;
	int len;

	json_decref(body);
	if (!text)
		return -1;
	len = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
		       "Content-Length: %zu\r\nConnection: close\r\n\r\n", status,
		       status == 200 ? "OK" : "Error", strlen(text));
	iov[0] = (struct iovec){ head, (size_t)len };
	iov[1] = (struct iovec){ text, strlen(text) };
	if (nfds) {
		struct cmsghdr *cm;

		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	/* small, on a connection that has sent its whole request: one call */
	n = sendmsg(fd, &mh, MSG_NOSIGNAL);
	free(text);
	return n == (ssize_t)(iov[0].iov_len + iov[1].iov_len) ? 0 : -1;
}

static void
refuse(int fd, int status, const char *why)
{
	answer(fd, status, json_pack("{ss}", "error", why), NULL, 0);
	close(fd);
}

/* Add a socket to hand over. */
static void
add(json_t *names, int *fds, size_t *n, const char *name, int fd)
{
	if (fd < 0 || *n >= MAX_SOCKETS)
		return;
	json_array_append_new(names, json_string(name));
	fds[(*n)++] = fd;
}

/* Send the lock and the listening sockets; once they are sent, stop
 * accepting on them. -1 when the new controller did not take them. */
static int
hand_over(struct controller *c)
{
	json_t *names = json_array();
	int fds[MAX_SOCKETS], ret, e;
	struct ucred peer = { 0 };
	socklen_t len = sizeof(peer);
	char name[96];
	size_t n = 0;

	add(names, fds, &n, "lock", c->o->lock_fd);
	add(names, fds, &n, "control", vd_ctl_listen_fd(c->ctl));
	if (c->metrics)
		add(names, fds, &n, "metrics", vd_ctl_listen_fd(c->metrics));
	for (size_t i = 0; i < c->nsvcs; i++)
		if (c->svcs[i]->lb) {
			snprintf(name, sizeof(name), "balancer:%s", c->svcs[i]->name);
			add(names, fds, &n, name, vd_lb_listen_fd(c->svcs[i]->lb));
		}
	getsockopt(c->handover_fd, SOL_SOCKET, SO_PEERCRED, &peer, &len);
	ret = answer(c->handover_fd, 200, json_pack("{si so}", "pid", (int)getpid(), "sockets", names),
		     fds, n);
	e = errno;
	close(c->handover_fd);
	c->handover_fd = -1;
	if (ret < 0) {
		vd_warn("controller: handover: the new controller did not take the sockets: %s",
			strerror(e));
		return -1;
	}
	/* what waits in the queues is the new controller's to accept */
	vd_ctl_detach(c->ctl);
	if (c->metrics)
		vd_ctl_detach(c->metrics);
	for (size_t i = 0; i < c->nsvcs; i++)
		if (c->svcs[i]->lb)
			vd_lb_detach_listener(c->svcs[i]->lb);
	vd_info("controller: handed %zu sockets over to pid %d", n, (int)peer.pid);
	return 0;
}

/* Every 10 ms while a handover waits for the engine thread to stop. */
static int64_t
handover_tick(struct vd_ev *ev, void *arg)
{
	struct controller *c = arg;
	struct vd_error err = VD_ERROR_INIT;
	bool done;

	pthread_mutex_lock(&c->lock);
	done = c->worker_done;
	pthread_mutex_unlock(&c->lock);
	if (!done) {
		if (c->handover_fd >= 0 && vd_ev_now_ms(ev) >= c->handover_until) {
			vd_warn("controller: handover: the engine thread is still busy: refused");
			refuse(c->handover_fd, 503, "the engine thread is busy (a rolling update?): "
			       "try again");
			c->handover_fd = -1;
			c->handover_restart = true;
		}
		return 10;
	}
	if (c->worker_started) {
		pthread_join(c->worker, NULL);
		c->worker_started = false;
	}
	if (c->stopping_loop) { /* a stop signal came meanwhile */
		if (c->handover_fd >= 0)
			refuse(c->handover_fd, 503, "the controller is stopping");
		c->handover_fd = -1;
		return -1;
	}
	if (c->handover_fd >= 0 && hand_over(c) == 0) {
		c->handed_over = true;
		vd_ev_stop(ev);
		return -1;
	}
	c->handover_restart = false;
	if (ctrl_worker_start(c, &err) < 0)
		vd_error_log("controller: %s", err.msg);
	else
		vd_info("controller: handover failed: the engine thread runs again");
	return -1;
}

static void
on_handover(struct controller *c, struct vd_ctl_req *req)
{
	const char *busy = c->stopping_loop ? "the controller is stopping"
			   : c->handover_fd >= 0 || c->handover_restart
				   ? "a handover is under way"
				   : NULL;
	int fd;

	if (!busy && c->o->lock_fd < 0)
		busy = "this controller cannot hand over its lock";
	if (busy) {
		json_t *j = json_pack("{ss}", "error", busy);

		vd_ctl_reply_json(req, c->stopping_loop ? 503 : 409, j);
		json_decref(j);
		return;
	}
	if ((fd = vd_ctl_take(req)) < 0)
		return;
	if (vd_ev_timer(c->ev, 10, handover_tick, c) < 0) {
		refuse(fd, 500, "out of memory");
		return;
	}
	vd_info("controller: a new controller takes over: stopping the engine thread");
	c->handover_fd = fd;
	c->handover_until = vd_ev_now_ms(c->ev) + HANDOVER_ENGINE_MS;
	ctrl_worker_ask_stop(c);
}

void
ctrl_handover_on_control(void *arg, struct vd_ctl_req *req)
{
	if (strcmp(vd_ctl_path(req), "/v1/handover") == 0 &&
	    strcmp(vd_ctl_method(req), "POST") == 0)
		on_handover(arg, req);
	else
		ctrl_on_control(arg, req);
}

/* ------------------------------------------------- the new controller */

/* The socket NAME of H (which may be NULL), now the caller's; -1 when none. */
static int
take(struct vd_controller_handover *h, const char *name)
{
	int fd;

	for (size_t i = 0; h && i < h->n; i++)
		if (h->v[i].fd >= 0 && strcmp(h->v[i].name, name) == 0) {
			fd = h->v[i].fd;
			h->v[i].fd = -1;
			return fd;
		}
	return -1;
}

struct vd_ctl *
ctrl_listen_control(struct controller *c, const char *path, struct vd_error *err)
{
	struct vd_error why = VD_ERROR_INIT;
	int fd = take(c->o->inherited, "control");
	struct vd_ctl *ctl;

	if (fd >= 0) {
		if ((ctl = vd_ctl_adopt(c->ev, fd, path, ctrl_handover_on_control, c, &why)))
			return ctl;
		vd_warn("controller: control socket: %s: making a new one", why.msg);
		close(fd);
	}
	return vd_ctl_listen_unix(c->ev, path, ctrl_handover_on_control, c, err);
}

struct vd_ctl *
ctrl_listen_metrics(struct controller *c, struct vd_error *err)
{
	const struct vd_controller_opts *o = c->o;
	int fd = take(c->o->inherited, "metrics");
	struct sockaddr_storage sa;
	socklen_t len;
	struct vd_ctl *ctl;

	if (fd >= 0 && vd_net_addr(o->metrics_host, o->metrics_port, &sa, &len) == 0 &&
	    vd_net_is_listener(fd, &sa) &&
	    (ctl = vd_ctl_adopt(c->ev, fd, NULL, ctrl_on_metrics, c, NULL)))
		return ctl;
	if (fd >= 0)
		close(fd); /* another address now */
	return vd_ctl_listen_tcp(c->ev, o->metrics_host, o->metrics_port, ctrl_on_metrics, c, err);
}

int
ctrl_inherited_balancer(struct controller *c, const char *service)
{
	char name[96];

	snprintf(name, sizeof(name), "balancer:%s", service);
	return take(c->o->inherited, name);
}

void
ctrl_inherited_prune(struct controller *c)
{
	struct vd_controller_handover *h = c->o->inherited;

	for (size_t i = 0; h && i < h->n; i++) {
		const char *svc = h->v[i].name + strlen("balancer:");
		bool balancer = strncmp(h->v[i].name, "balancer:", strlen("balancer:")) == 0;
		bool wanted = false;

		if (h->v[i].fd < 0)
			continue;
		for (size_t k = 0; balancer && k < c->nsvcs && !wanted; k++)
			wanted = strcmp(c->svcs[k]->name, svc) == 0 && c->svcs[k]->svc &&
				 c->svcs[k]->svc->balancer.enabled;
		if (wanted)
			continue;
		if (balancer)
			vd_info("%s: no balancer wanted any more: closing the inherited listener",
				svc);
		close(h->v[i].fd);
		h->v[i].fd = -1;
	}
}

/* Read the whole answer (until the old controller closes), collecting the
 * sockets attached to it. */
static int
read_answer(int fd, char *buf, size_t size, size_t *got, int *fds, size_t *nfds,
	    struct vd_error *err)
{
	char cbuf[CMSG_SPACE(sizeof(int) * MAX_SOCKETS)];
	int64_t deadline = vd_clock_ms() + HANDOVER_WAIT_MS;

	*got = *nfds = 0;
	for (;;) {
		struct iovec iov = { buf + *got, size - 1 - *got };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
				     .msg_controllen = sizeof(cbuf) };
		int ready = vd_net_wait(fd, POLLIN, deadline);
		ssize_t n;

		if (ready == 0)
			return vd_error_set(err, VD_EXIT_FAILURE, "it did not answer within %d s",
					    HANDOVER_WAIT_MS / 1000);
		if (ready < 0 || (n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC)) < 0) {
			if (errno == EINTR)
				continue;
			return vd_error_errno(err, errno, "reading its answer");
		}
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
			size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

			if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
				continue;
			for (size_t i = 0; i < k; i++) {
				int f;

				memcpy(&f, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
				if (*nfds < MAX_SOCKETS)
					fds[(*nfds)++] = f;
				else
					close(f);
			}
		}
		if (mh.msg_flags & MSG_CTRUNC)
			return vd_error_set(err, VD_EXIT_FAILURE, "too many sockets in its answer");
		if (n == 0)
			break;
		if ((*got += (size_t)n) >= size - 1)
			return vd_error_set(err, VD_EXIT_FAILURE, "its answer is too long");
	}
	buf[*got] = '\0';
	return 0;
}

/* The answer's status and body into H. */
static int
parse_answer(const char *buf, int *fds, size_t nfds, struct vd_controller_handover *h,
	     struct vd_error *err)
{
	const char *body = strstr(buf, "\r\n\r\n");
	json_t *j = body ? json_loads(body + 4, 0, NULL) : NULL, *names, *v;
	int status = 0, ret = 0;
	size_t i;

	sscanf(buf, "HTTP/1.1 %d", &status);
	names = json_object_get(j, "sockets");
	if (status != 200) {
		ret = vd_error_set(err, VD_EXIT_FAILURE, "it refused: %s",
				   json_string_value(json_object_get(j, "error"))
					   ? json_string_value(json_object_get(j, "error"))
					   : "not a handover answer");
	} else if (!json_is_array(names) || json_array_size(names) != nfds ||
		   !(h->v = calloc(nfds + 1, sizeof(*h->v)))) {
		ret = vd_error_set(err, VD_EXIT_FAILURE, "its answer does not list its sockets");
	} else {
		h->pid = (pid_t)json_integer_value(json_object_get(j, "pid"));
		json_array_foreach(names, i, v) {
			snprintf(h->v[i].name, sizeof(h->v[i].name), "%s",
				 json_string_value(v) ? json_string_value(v) : "");
			h->v[i].fd = fds[i];
		}
		h->n = nfds;
	}
	json_decref(j);
	return ret;
}

int
vd_controller_take_over(const char *dir, struct vd_controller_handover *h, struct vd_error *err)
{
	static const char req[] = "POST /v1/handover HTTP/1.1\r\nHost: localhost\r\n"
				  "Content-Length: 0\r\nConnection: close\r\n\r\n";
	char path[PATH_MAX], *buf = malloc(MAX_ANSWER);
	struct vd_httpc_target t = { .unix_path = path };
	int fds[MAX_SOCKETS], fd = -1, ret = -1;
	size_t got, nfds = 0;

	memset(h, 0, sizeof(*h));
	h->lock_fd = -1;
	vd_controller_socket_path(dir, path, sizeof(path));
	if (!buf)
		vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
	else if ((fd = vd_httpc_connect(&t, 2000, err)) < 0)
		;
	else if (write(fd, req, sizeof(req) - 1) != (ssize_t)sizeof(req) - 1)
		vd_error_errno(err, errno, "sending the request");
	else if (read_answer(fd, buf, MAX_ANSWER, &got, fds, &nfds, err) == 0 &&
		 parse_answer(buf, fds, nfds, h, err) == 0)
		ret = 0;
	if (fd >= 0)
		close(fd);
	free(buf);
	if (ret < 0) {
		for (size_t i = 0; i < nfds; i++)
			close(fds[i]);
		return vd_error_wrap(err, "cannot take over from the controller of %s", dir);
	}
	if ((h->lock_fd = take(h, "lock")) < 0) {
		vd_controller_handover_release(h);
		return vd_error_set(err, VD_EXIT_FAILURE, "cannot take over from the controller of "
				    "%s: it did not hand over its lock", dir);
	}
	return 0;
}

void
vd_controller_handover_release(struct vd_controller_handover *h)
{
	for (size_t i = 0; i < h->n; i++)
		if (h->v[i].fd >= 0)
			close(h->v[i].fd);
	if (h->lock_fd >= 0)
		close(h->lock_fd);
	free(h->v);
	memset(h, 0, sizeof(*h));
	h->lock_fd = -1;
}
