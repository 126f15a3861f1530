/*
 * The controller's client (see vd/ctlclient.h): HTTP/1.1 with JSON on
 * DIR/control.sock, through vd/httpc.h; the progress of an apply streams
 * back as NDJSON, printed a line at a time as it comes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "vd/cleanup.h"
#include "vd/controller.h"
#include "vd/ctlclient.h"
#include "vd/httpc.h"

#define STATUS_TIMEOUT_MS 10000L
#define STREAM_TIMEOUT_MS (6L * 3600 * 1000) /* a bound on the longest apply */

int
vd_ctlclient_up(const char *dir, struct vd_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = -1;

	vd_controller_socket_path(dir, sa.sun_path, sizeof(sa.sun_path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return vd_error_errno(err, errno, "socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		return 1;
	if (errno == EACCES || errno == EPERM)
		return vd_error_set(err, VD_EXIT_FAILURE, "permission denied on %s: a controller "
				    "may run there, but this user cannot talk to it; run vdctl as "
				    "the controller's user (root for the default state directory)",
				    sa.sun_path);
	/* no socket, or one nobody listens on: no controller */
	return 0;
}

static int
no_controller(const char *dir, struct vd_error *err)
{
	return vd_error_set(err, VD_EXIT_ENGINE,
			    "no controller runs for %s (start one with 'vdctl controller')", dir);
}

/* What a request collects: the whole body, or the stream's lines. */
struct sink {
	char *buf;
	size_t len, cap;
	FILE *out;   /* stream: print "out" lines here */
	int exit;    /* stream: the last line's exit status, -1 until it came */
	char error[VD_ERROR_MSG_MAX];
};

static void
stream_line(struct sink *s, const char *line, size_t len)
{
	json_error_t jerr;
	json_t *j = json_loadb(line, len, 0, &jerr), *v;

	if (!j)
		return;
	if ((v = json_object_get(j, "out")) && json_is_string(v)) {
		fputs(json_string_value(v), s->out);
		fflush(s->out);
	}
	if ((v = json_object_get(j, "exit")) && json_is_integer(v)) {
		s->exit = (int)json_integer_value(v);
		v = json_object_get(j, "error");
		snprintf(s->error, sizeof(s->error), "%s",
			 json_is_string(v) ? json_string_value(v) : "");
	}
	json_decref(j);
}

static int
collect(void *arg, const char *ptr, size_t n)
{
	struct sink *s = arg;
	char *nl;

	if (s->len + n + 1 > s->cap) {
		size_t cap = (s->len + n + 1) * 2;
		char *b = realloc(s->buf, cap);

		if (!b)
			return -1;
		s->buf = b;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, ptr, n);
	s->len += n;
	s->buf[s->len] = '\0';
	/* a stream is handled a line at a time, as it comes */
	while (s->out && (nl = memchr(s->buf, '\n', s->len))) {
		size_t l = (size_t)(nl - s->buf) + 1;

		stream_line(s, s->buf, l - 1);
		memmove(s->buf, s->buf + l, s->len - l);
		s->len -= l;
	}
	return 0;
}

/* One request; *status gets the HTTP status. */
static int
request(const char *dir, const char *method, const char *path, const char *body,
	long timeout_ms, struct sink *s, long *status, struct vd_error *err)
{
	struct vd_error e = VD_ERROR_INIT;
	enum vd_httpc_failure why;
	char sock[108];
	struct vd_httpc_target t = { sock, NULL, NULL };
	int st;

	if ((st = vd_ctlclient_up(dir, err)) <= 0)
		return st < 0 ? -1 : no_controller(dir, err);
	vd_controller_socket_path(dir, sock, sizeof(sock));
	st = vd_httpc_request(&t, method, path, "application/json", body,
			      body ? strlen(body) : 0, (int)timeout_ms, collect, s, &why, &e);
	if (st < 0)
		return vd_error_set(err, why == VD_HTTPC_CONNECT ? VD_EXIT_ENGINE : VD_EXIT_FAILURE,
				    "the controller at %s: %s", sock, e.msg);
	*status = st;
	return 0;
}

int
vd_ctlclient_get(const char *dir, const char *path, json_t **out, struct vd_error *err)
{
	struct sink s = { 0 };
	json_error_t jerr;
	long status = 0;

	if (request(dir, "GET", path, NULL, STATUS_TIMEOUT_MS, &s, &status, err) < 0) {
		free(s.buf);
		return -1;
	}
	*out = s.buf ? json_loads(s.buf, 0, &jerr) : NULL;
	free(s.buf);
	if (!*out || status != 200) {
		json_decref(*out);
		*out = NULL;
		return vd_error_set(err, VD_EXIT_FAILURE, "the controller answered %ld to %s", status,
				    path);
	}
	return 0;
}

static int
stream(const char *dir, const char *path, json_t *body, FILE *out, struct vd_error *err)
{
	struct sink s = { .out = out, .exit = -1 };
	_cleanup_free_ char *text = json_dumps(body, JSON_COMPACT);
	long status = 0;
	int ret;

	if (!text)
		return vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
	ret = request(dir, "POST", path, text, STREAM_TIMEOUT_MS, &s, &status, err);
	if (ret == 0 && status != 200)
		ret = vd_error_set(err, VD_EXIT_FAILURE, "the controller answered %ld: %.*s",
				   status, (int)s.len, s.buf ? s.buf : "");
	else if (ret == 0 && s.exit < 0)
		ret = vd_error_set(err, VD_EXIT_FAILURE, "the controller stopped before the end; "
				   "'vdctl status' shows where things are");
	else if (ret == 0 && s.exit > 0)
		ret = vd_error_set(err, s.exit, "%s", s.error);
	free(s.buf);
	return ret;
}

static json_t *
run_body(const struct vd_apply_opts *o)
{
	return json_pack("{s:b, s:b, s:b, s:I, s:i, s:b, s:b, s:s}", "prune", o->prune,
			 "overcommit", o->overcommit, "wait", o->run.wait, "timeout_ms",
			 (json_int_t)o->run.timeout_ms, "parallel", o->run.parallel,
			 "quiet_undeclared", o->quiet_undeclared, "must_exist", o->must_exist,
			 "verb", o->verb ? o->verb : "apply");
}

int
vd_ctlclient_apply(const char *dir, const struct vd_desired *want, size_t n,
		   const struct vd_apply_opts *o, struct vd_error *err)
{
	json_t *body = run_body(o), *svcs = json_array(), *ids = json_array(), *decl = json_array();
	int ret;

	for (size_t i = 0; i < n; i++) {
		const struct vd_state_declared *d = want[i].declared;

		json_array_append_new(svcs, vd_manifest_service_json(want[i].svc, 0));
		json_array_append_new(ids, json_string(want[i].manifest ? want[i].manifest : ""));
		json_array_append_new(decl, d ? json_pack("{s:i, s:I, s:I}", "replicas",
							  d->replicas, "milli_cpus",
							  (json_int_t)d->milli_cpus, "memory_bytes",
							  (json_int_t)d->memory_bytes)
					      : json_null());
	}
	json_object_set_new(body, "services", svcs);
	json_object_set_new(body, "identities", ids);
	json_object_set_new(body, "declared", decl);
	ret = stream(dir, "/v1/apply", body, o->out, err);
	json_decref(body);
	return ret;
}

int
vd_ctlclient_delete(const char *dir, const char *const *names, size_t n,
		    const struct vd_apply_opts *o, struct vd_error *err)
{
	json_t *body = run_body(o), *svcs = json_array();
	int ret;

	for (size_t i = 0; i < n; i++)
		json_array_append_new(svcs, json_string(names[i]));
	json_object_set_new(body, "services", svcs);
	ret = stream(dir, "/v1/delete", body, o->out, err);
	json_decref(body);
	return ret;
}
