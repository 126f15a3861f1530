/*
 * The Docker driver: container replicas through the Docker Engine REST API.
 *
 * It speaks HTTP/1.1 through vd/httpc.h, over the engine's unix socket or
 * plain TCP, a connection per call (a unix socket connects in microseconds;
 * vd/httpc.h says why not libcurl). The API version is the
 * lower of the engine's and ours. This file is the only one that knows
 * Docker's JSON.
 *
 * Safety: every list is filtered on vdctl's managed label, and every
 * operation on an id inspects the container first and refuses one without
 * that label.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "vd/cleanup.h"
#include "vd/driver.h"
#include "vd/httpc.h"
#include "vd/labels.h"
#include "vd/manifest.h"

#define DOCKER_DEFAULT_ENDPOINT "unix:///var/run/docker.sock"
#define DOCKER_API_MAX_MAJOR 1 /* the newest API version vdctl speaks: 1.41 */
#define DOCKER_API_MAX_MINOR 41
#define DOCKER_DEFAULT_TIMEOUT_MS 30000
#define DOCKER_CONNECT_TIMEOUT_MS 5000
#define DOCKER_HINT "is dockerd running? 'make setup' starts it"

struct docker {
	struct vd_driver base;
	struct vd_httpc_target target;
	char endpoint[256];   /* as configured, for messages */
	char unix_path[108];  /* unix endpoint: the socket; else "" */
	char tcp_host[128];   /* tcp endpoint: host and port */
	char tcp_port[8];
	char api[16];         /* "v1.41" */
	char owner[40];       /* the state directory's id, or "" */
	int timeout_ms;

	/* the events stream: a raw HTTP/1.0 connection, body until close */
	int ev_fd;
	bool ev_body;         /* past the response headers */
	char *ev_buf;
	size_t ev_len, ev_cap;
};

/* A response body, growing as it arrives. */
struct body {
	char *data;
	size_t len;
};

VD_DEFINE_CLEANUP(cleanup_json_, json_t *, json_decref)
#define _cleanup_json_ _cleanup_(cleanup_json_)

/* ------------------------------------------------------------ transport */

static int
collect(void *arg, const char *data, size_t n)
{
	struct body *b = arg;
	char *p = realloc(b->data, b->len + n + 1);

	if (!p)
		return -1;
	b->data = p;
	memcpy(b->data + b->len, data, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

/* What to do about a connection that failed with ERRNUM. */
static const char *
hint(int errnum)
{
	if (errnum == EACCES || errnum == EPERM)
		return "the socket is not yours to use: run vdctl as root, or as a member of "
		       "the group that owns the socket (often 'docker')";
	return DOCKER_HINT;
}

/* An exchange that got no answer: the engine is away, or spoke garbage. */
static int
transport_error(const struct docker *dk, enum vd_httpc_failure why, const struct vd_error *e,
		struct vd_error *err)
{
	if (why == VD_HTTPC_PROTOCOL)
		return vd_error_set(err, VD_EXIT_FAILURE, "Docker engine at %s: %s", dk->endpoint,
				    e->msg);
	return vd_error_set(err, VD_EXIT_ENGINE, "cannot reach the Docker engine at %s: %s (%s)",
			    dk->endpoint, e->msg, hint(e->sys_errno));
}

/*
 * One Engine API call. PATH starts with '/'; versioned says whether the API
 * version goes in front of it. BODY (may be NULL) is sent as JSON. Returns 0
 * when the engine answered, whatever the status (in *status), with the
 * parsed JSON reply in *reply when asked for and there is one; -1 when it
 * did not answer in time (VD_EXIT_ENGINE).
 */
static int
call(struct docker *dk, const char *method, const char *path, bool versioned, json_t *body,
     int timeout_ms, long *status, json_t **reply, struct vd_error *err)
{
	_cleanup_free_ char *payload = NULL;
	struct body out = { NULL, 0 };
	struct vd_error e = VD_ERROR_INIT;
	enum vd_httpc_failure why;
	char url[1024];
	int st;

	snprintf(url, sizeof(url), "%s%s%s", versioned ? "/" : "", versioned ? dk->api : "", path);
	if (body && !(payload = json_dumps(body, JSON_COMPACT)))
		return vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
	st = vd_httpc_request(&dk->target, method, url, "application/json", payload,
			      payload ? strlen(payload) : 0, timeout_ms, collect, &out, &why, &e);
	if (st < 0) {
		free(out.data);
		return transport_error(dk, why, &e, err);
	}
	*status = st;
	if (reply)
		*reply = out.len ? json_loadb(out.data, out.len, 0, NULL) : NULL;
	free(out.data);
	return 0;
}

/*
 * An error the engine answered with: "OP OBJECT: the engine's message".
 */
static int
engine_error(struct vd_error *err, const char *op, const char *object, long status,
	     json_t *reply)
{
	const char *msg = json_string_value(json_object_get(reply, "message"));

	if (!msg)
		msg = "no message";
	return vd_error_set(err, VD_EXIT_FAILURE, "%s %s: %s (HTTP %ld)", op, object, msg, status);
}

/* Ids and names are put in URLs: allow only what Docker's are made of. */
static int
check_id(const char *id, struct vd_error *err)
{
	size_t n = id ? strlen(id) : 0;

	if (n == 0 || n > 128 || strspn(id, "abcdefghijklmnopqrstuvwxyz"
					    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != n)
		return vd_error_set(err, VD_EXIT_INPUT, "'%s' is not a container id or name",
				    id ? id : "");
	return 0;
}

/* ----------------------------------------------------------------- open */

static int
parse_endpoint(struct docker *dk, const char *ep, struct vd_error *err)
{
	const char *colon;

	snprintf(dk->endpoint, sizeof(dk->endpoint), "%s", ep);
	if (strncmp(ep, "unix://", 7) == 0) {
		if (strlen(ep + 7) >= sizeof(dk->unix_path) || ep[7] != '/')
			return vd_error_set(err, VD_EXIT_INPUT,
					    "bad Docker endpoint '%s': want unix:///absolute/path", ep);
		snprintf(dk->unix_path, sizeof(dk->unix_path), "%s", ep + 7);
		dk->target.unix_path = dk->unix_path;
		return 0;
	}
	if (strncmp(ep, "tcp://", 6) == 0) {
		ep += 6;
		colon = strrchr(ep, ':');
		if (!colon || colon == ep || (size_t)(colon - ep) >= sizeof(dk->tcp_host) ||
		    strlen(colon + 1) == 0 || strlen(colon + 1) >= sizeof(dk->tcp_port) ||
		    strspn(colon + 1, "0123456789") != strlen(colon + 1))
			return vd_error_set(err, VD_EXIT_INPUT,
					    "bad Docker endpoint 'tcp://%s': want tcp://host:port", ep);
		memcpy(dk->tcp_host, ep, (size_t)(colon - ep));
		snprintf(dk->tcp_port, sizeof(dk->tcp_port), "%s", colon + 1);
		dk->target.host = dk->tcp_host;
		dk->target.port = dk->tcp_port;
		return 0;
	}
	return vd_error_set(err, VD_EXIT_INPUT,
			    "bad Docker endpoint '%s': want unix:///path or tcp://host:port", ep);
}

/*
 * The lower of the engine's API version and ours. GET /_ping says it in a
 * header and costs the engine nothing; GET /version (an engine too old for
 * the header) asks containerd and runc theirs, some 30 ms of every command.
 */
static int
negotiate(struct docker *dk, struct vd_error *err)
{
	_cleanup_json_ json_t *reply = NULL;
	struct vd_error e = VD_ERROR_INIT;
	enum vd_httpc_failure why;
	char ping[32];
	const char *v = ping;
	long status;
	int major, minor;

	status = vd_httpc_get_header(&dk->target, "/_ping", "Api-Version", ping, sizeof(ping),
				     dk->timeout_ms, &why, &e);
	if (status < 0)
		return transport_error(dk, why, &e, err);
	if (status != 200 || sscanf(ping, "%d.%d", &major, &minor) != 2) {
		if (call(dk, "GET", "/version", false, NULL, dk->timeout_ms, &status, &reply,
			 err) < 0)
			return -1;
		v = json_string_value(json_object_get(reply, "ApiVersion"));
	}
	if (status != 200 || !v || sscanf(v, "%d.%d", &major, &minor) != 2)
		return vd_error_set(err, VD_EXIT_ENGINE,
				    "%s does not answer like a Docker engine (GET /version: HTTP %ld)",
				    dk->endpoint, status);
	if (major > DOCKER_API_MAX_MAJOR ||
	    (major == DOCKER_API_MAX_MAJOR && minor > DOCKER_API_MAX_MINOR)) {
		major = DOCKER_API_MAX_MAJOR;
		minor = DOCKER_API_MAX_MINOR;
	}
	snprintf(dk->api, sizeof(dk->api), "v%d.%d", major, minor);
	return 0;
}

static void
docker_close(struct vd_driver *d)
{
	struct docker *dk = (struct docker *)d;

	if (!dk)
		return;
	if (dk->ev_fd >= 0)
		close(dk->ev_fd);
	free(dk->ev_buf);
	free(dk);
}

static int
docker_open(const struct vd_driver_config *cfg, struct vd_driver **out, struct vd_error *err)
{
	const char *ep = cfg ? cfg->endpoint : NULL;
	struct docker *dk;

	dk = calloc(1, sizeof(*dk));
	if (!dk)
		return vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
	dk->base.ops = &vd_docker_driver;
	dk->ev_fd = -1;
	dk->timeout_ms = cfg && cfg->timeout_ms > 0 ? cfg->timeout_ms : DOCKER_DEFAULT_TIMEOUT_MS;
	snprintf(dk->owner, sizeof(dk->owner), "%s", cfg && cfg->owner ? cfg->owner : "");
	if (parse_endpoint(dk, ep && *ep ? ep : DOCKER_DEFAULT_ENDPOINT, err) < 0 ||
	    negotiate(dk, err) < 0) {
		docker_close(&dk->base);
		return -1;
	}
	*out = &dk->base;
	return 0;
}

/* ------------------------------------------------------- reading replies */

static const char *
label(json_t *labels, const char *key)
{
	return json_string_value(json_object_get(labels, key));
}

static enum vd_replica_state
parse_state(const char *s)
{
	static const struct {
		const char *name;
		enum vd_replica_state state;
	} map[] = {
		{ "created", VD_STATE_CREATED }, { "running", VD_STATE_RUNNING },
		{ "restarting", VD_STATE_RUNNING }, { "paused", VD_STATE_PAUSED },
		{ "exited", VD_STATE_EXITED }, { "removing", VD_STATE_EXITED },
		{ "dead", VD_STATE_DEAD },
	};

	for (size_t i = 0; s && i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(s, map[i].name) == 0)
			return map[i].state;
	return VD_STATE_UNKNOWN;
}

/* RFC 3339 with nanoseconds, as Docker writes times, to ns since the epoch;
 * Docker's zero time ("0001-01-01T00:00:00Z") is 0. */
static int64_t
parse_time_ns(const char *s)
{
	struct tm tm = { 0 };
	const char *p;
	int64_t ns = 0, scale = 100000000;

	if (!s || !(p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)) || tm.tm_year < 70)
		return 0;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
			ns += (*p - '0') * scale;
	return (int64_t)timegm(&tm) * 1000000000 + ns;
}

static int
dup_str(char **dst, const char *src)
{
	*dst = src ? strdup(src) : NULL;
	return src && !*dst ? -1 : 0;
}

/* Labels of a managed container into l; -1 when it is not vdctl's. */
static int
parse_labels(json_t *labels, struct vd_labels *l)
{
	const char *managed = label(labels, VD_LABEL_MANAGED);
	const char *index = label(labels, VD_LABEL_INDEX);
	char *end;
	long i;

	if (!managed || strcmp(managed, "true") != 0 || !label(labels, VD_LABEL_SERVICE))
		return -1;
	i = index ? strtol(index, &end, 10) : -1;
	l->index = index && *end == '\0' && i >= 0 && i < 1000000 ? (int)i : -1;
	if (dup_str(&l->service, label(labels, VD_LABEL_SERVICE)) < 0 ||
	    dup_str(&l->spec_hash, label(labels, VD_LABEL_SPEC_HASH)) < 0 ||
	    dup_str(&l->manifest, label(labels, VD_LABEL_MANIFEST)) < 0 ||
	    dup_str(&l->owner, label(labels, VD_LABEL_OWNER)) < 0)
		return -1;
	return 0;
}

/* The first binding on 127.0.0.1 (or any) of the first published port. */
static void
parse_ports(json_t *ports, struct vd_replica *r)
{
	const char *key;
	json_t *bindings, *b;
	size_t i;

	json_object_foreach(ports, key, bindings) {
		json_array_foreach(bindings, i, b) {
			const char *ip = json_string_value(json_object_get(b, "HostIp"));
			const char *port = json_string_value(json_object_get(b, "HostPort"));

			if (!port || !*port)
				continue;
			snprintf(r->host, sizeof(r->host), "%s",
				 ip && *ip && strcmp(ip, "0.0.0.0") != 0 ? ip : "127.0.0.1");
			r->host_port = atoi(port);
			return;
		}
	}
}

/*
 * A container's inspect JSON into r. Returns -1 with err filled when the
 * container does not carry vdctl's labels: the caller must not touch it.
 */
static int
parse_inspect(json_t *j, struct vd_replica *r, struct vd_error *err)
{
	json_t *state = json_object_get(j, "State");
	json_t *host = json_object_get(j, "HostConfig");
	const char *name = json_string_value(json_object_get(j, "Name"));

	memset(r, 0, sizeof(*r));
	if (name && *name == '/')
		name++;
	if (parse_labels(json_object_get(json_object_get(j, "Config"), "Labels"), &r->labels) < 0) {
		vd_replica_labels_clear(&r->labels);
		return vd_error_set(err, VD_EXIT_FAILURE,
				    "refusing to touch container '%s': it does not carry vdctl's "
				    "labels", name ? name : "?");
	}
	if (dup_str(&r->id, json_string_value(json_object_get(j, "Id"))) < 0 ||
	    dup_str(&r->name, name) < 0) {
		vd_replica_clear(r);
		return vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
	}
	r->state = parse_state(json_string_value(json_object_get(state, "Status")));
	r->exit_code = (int)json_integer_value(json_object_get(state, "ExitCode"));
	r->oom_killed = json_is_true(json_object_get(state, "OOMKilled"));
	r->started_ns = parse_time_ns(json_string_value(json_object_get(state, "StartedAt")));
	r->milli_cpus = json_integer_value(json_object_get(host, "NanoCpus")) / 1000000;
	r->memory_bytes = json_integer_value(json_object_get(host, "Memory"));
	r->backend = VD_BACKEND_DOCKER;
	parse_ports(json_object_get(json_object_get(j, "NetworkSettings"), "Ports"), r);
	return 0;
}

/* GET /containers/{id}/json, refusing one without vdctl's labels. A missing
 * container is status 404 in *status with r untouched. */
static int
inspect_raw(struct docker *dk, const char *id, struct vd_replica *r, long *status,
	    struct vd_error *err)
{
	_cleanup_json_ json_t *reply = NULL;
	char path[256];

	if (check_id(id, err) < 0)
		return -1;
	snprintf(path, sizeof(path), "/containers/%s/json", id);
	if (call(dk, "GET", path, true, NULL, dk->timeout_ms, status, &reply, err) < 0)
		return -1;
	if (*status == 404)
		return 0;
	if (*status != 200)
		return engine_error(err, "inspect", id, *status, reply);
	return parse_inspect(reply, r, err);
}

/*
 * Before acting on an id: is it a container of vdctl's? 1 yes, 0 no such
 * container, -1 with err when it is not vdctl's or the engine failed.
 */
static int
ours(struct docker *dk, const char *id, struct vd_error *err)
{
	struct vd_replica r;
	long status = 0;

	if (inspect_raw(dk, id, &r, &status, err) < 0)
		return -1;
	if (status == 404)
		return 0;
	if (dk->owner[0] && r.labels.owner && *r.labels.owner &&
	    strcmp(r.labels.owner, dk->owner) != 0) {
		vd_error_set(err, VD_EXIT_FAILURE, "refusing to touch container '%s': another "
			     "state directory made it (owner %s)", r.name, r.labels.owner);
		vd_replica_clear(&r);
		return -1;
	}
	vd_replica_clear(&r);
	return 1;
}

/* ----------------------------------------------------------- operations */

static int
docker_capacity(struct vd_driver *d, struct vd_capacity *out, struct vd_error *err)
{
	struct docker *dk = (struct docker *)d;
	_cleanup_json_ json_t *reply = NULL;
	long status = 0;

	if (call(dk, "GET", "/info", true, NULL, dk->timeout_ms, &status, &reply, err) < 0)
		return -1;
	if (status != 200)
		return engine_error(err, "info", dk->endpoint, status, reply);
	out->cpus = (int)json_integer_value(json_object_get(reply, "NCPU"));
	out->memory_bytes = json_integer_value(json_object_get(reply, "MemTotal"));
	return 0;
}

static int
docker_inspect(struct vd_driver *d, const char *id, struct vd_replica *out, struct vd_error *err)
{
	long status = 0;

	if (inspect_raw((struct docker *)d, id, out, &status, err) < 0)
		return -1;
	if (status == 404)
		return vd_error_set(err, VD_EXIT_FAILURE, "inspect %s: no such container", id);
	return 0;
}

/* The label filter of a list, URL-escaped. */
static char *
list_filter(const char *service)
{
	_cleanup_json_ json_t *f = NULL;
	_cleanup_free_ char *text = NULL;
	char svc_label[128];
	json_t *labels;
	char *escaped, *copy;

	labels = json_pack("[s]", VD_LABEL_MANAGED "=true");
	if (service) {
		snprintf(svc_label, sizeof(svc_label), VD_LABEL_SERVICE "=%s", service);
		json_array_append_new(labels, json_string(svc_label));
	}
	f = json_pack("{s:o}", "label", labels);
	if (!f || !(text = json_dumps(f, JSON_COMPACT)))
		return NULL;
	escaped = vd_httpc_escape(text);
	if (!escaped)
		return NULL;
	copy = strdup(escaped);
	free(escaped);
	return copy;
}

/* The first published port of a list entry ("Ports": [{IP, PublicPort}]). */
static void
summary_ports(json_t *ports, struct vd_replica *r)
{
	json_t *p;
	size_t i;

	json_array_foreach(ports, i, p) {
		const char *ip = json_string_value(json_object_get(p, "IP"));
		int port = (int)json_integer_value(json_object_get(p, "PublicPort"));

		if (port <= 0)
			continue;
		snprintf(r->host, sizeof(r->host), "%s",
			 ip && *ip && strcmp(ip, "0.0.0.0") != 0 ? ip : "127.0.0.1");
		r->host_port = port;
		return;
	}
}

/*
 * A running container from its list entry: labels, state and ports, but not
 * its limits or start time, which only an inspect gives; the record is
 * partial (vd/replica.h) and the engine layer completes it. 0, 1 when it is
 * not a running container of vdctl's (the caller inspects it), -1 when out
 * of memory.
 */
static int
parse_summary(json_t *c, struct vd_replica *r)
{
	const char *id = json_string_value(json_object_get(c, "Id"));
	const char *name = json_string_value(json_array_get(json_object_get(c, "Names"), 0));

	memset(r, 0, sizeof(*r));
	if (!id || !name || parse_state(json_string_value(json_object_get(c, "State"))) !=
				    VD_STATE_RUNNING)
		return 1;
	if (parse_labels(json_object_get(c, "Labels"), &r->labels) < 0) {
		vd_replica_labels_clear(&r->labels);
		return 1;
	}
	if (dup_str(&r->id, id) < 0 || dup_str(&r->name, name + (*name == '/')) < 0) {
		vd_replica_clear(r);
		return -1;
	}
	r->state = VD_STATE_RUNNING;
	r->backend = VD_BACKEND_DOCKER;
	/* the creation time stands in until the engine layer knows the start */
	r->started_ns = json_integer_value(json_object_get(c, "Created")) * 1000000000;
	r->partial = true;
	summary_ports(json_object_get(c, "Ports"), r);
	return 0;
}

/*
 * One list call. Running containers come from the list alone (partial
 * records); the few that are not running are inspected for their exit code
 * and whether they were killed for lack of memory.
 */
static int
docker_list(struct vd_driver *d, const char *service, struct vd_replica_list *out,
	    struct vd_error *err)
{
	struct docker *dk = (struct docker *)d;
	_cleanup_json_ json_t *reply = NULL;
	_cleanup_free_ char *filter = list_filter(service);
	char path[1024];
	long status = 0;
	json_t *c;
	size_t i;

	out->v = NULL;
	out->n = 0;
	if (!filter)
		return vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
	snprintf(path, sizeof(path), "/containers/json?all=1&filters=%s", filter);
	if (call(dk, "GET", path, true, NULL, dk->timeout_ms, &status, &reply, err) < 0)
		return -1;
	if (status != 200)
		return engine_error(err, "list", "containers", status, reply);
	json_array_foreach(reply, i, c) {
		const char *id = json_string_value(json_object_get(c, "Id"));
		struct vd_error skip = VD_ERROR_INIT;
		struct vd_replica r, *slot;
		long st = 0;
		int got = parse_summary(c, &r);

		if (got < 0) {
			vd_replica_list_clear(out);
			return vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
		}
		if (got > 0 && inspect_raw(dk, id, &r, &st, &skip) < 0) {
			if (skip.code == VD_EXIT_ENGINE) {
				vd_replica_list_clear(out);
				*err = skip;
				return -1;
			}
			continue; /* not ours after all */
		}
		if (got > 0 && st == 404)
			continue; /* removed meanwhile */
		if (!(slot = vd_replica_list_add(out))) {
			vd_replica_clear(&r);
			vd_replica_list_clear(out);
			return vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
		}
		*slot = r;
	}
	vd_replica_list_sort(out);
	return 0;
}

/* Does env (KEY=VALUE strings) set KEY? */
static bool
env_has(char *const *env, size_t n, const char *key)
{
	size_t k = strlen(key);

	for (size_t i = 0; i < n; i++)
		if (strncmp(env[i], key, k) == 0 && env[i][k] == '=')
			return true;
	return false;
}

static json_t *
string_array(char *const *v, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

static json_t *
create_body(const struct vd_service *svc, const struct vd_labels *l, const char *name)
{
	char port_key[16], index[16], port_env[32];
	json_t *env, *labels;

	snprintf(port_key, sizeof(port_key), "%d/tcp", svc->port);
	snprintf(index, sizeof(index), "%d", l->index);
	env = string_array(svc->env, svc->nenv);
	/* the workload learns its port from $PORT unless the manifest sets it */
	if (env && !env_has(svc->env, svc->nenv, "PORT")) {
		snprintf(port_env, sizeof(port_env), "PORT=%d", svc->port);
		json_array_append_new(env, json_string(port_env));
	}
	labels = json_pack("{s:s, s:s, s:s, s:s, s:s}", VD_LABEL_MANAGED, "true",
			   VD_LABEL_SERVICE, l->service, VD_LABEL_INDEX, index,
			   VD_LABEL_SPEC_HASH, l->spec_hash ? l->spec_hash : "",
			   VD_LABEL_MANIFEST, l->manifest ? l->manifest : "");
	if (labels && l->owner && *l->owner)
		json_object_set_new(labels, VD_LABEL_OWNER, json_string(l->owner));
	/*
	 * No swap (MemorySwap = Memory): jobs that swap crawl. The engine picks
	 * a free host port on 127.0.0.1. Restart policy "no": vdctl heals.
	 */
	return json_pack("{s:s, s:s, s:o, s:o, s:o*, s:{s:{}}, "
			 "s:{s:I, s:I, s:I, s:{s:[{s:s, s:s}]}, s:{s:s}}}",
			 "Image", svc->image, "Hostname", name, "Env", env, "Labels", labels,
			 "Cmd", svc->ncommand ? string_array(svc->command, svc->ncommand) : NULL,
			 "ExposedPorts", port_key,
			 "HostConfig",
			 "Memory", (json_int_t)svc->memory_bytes,
			 "MemorySwap", (json_int_t)svc->memory_bytes,
			 "NanoCpus", (json_int_t)svc->milli_cpus * 1000000,
			 "PortBindings", port_key, "HostIp", "127.0.0.1", "HostPort", "",
			 "RestartPolicy", "Name", "no");
}

/* The image must be in the engine: there is no registry to pull it from. */
static int
docker_check(struct vd_driver *d, const struct vd_service *svc, struct vd_error *err)
{
	struct docker *dk = (struct docker *)d;
	_cleanup_json_ json_t *reply = NULL;
	_cleanup_free_ char *name = svc->image ? vd_httpc_escape(svc->image) : NULL;
	char path[1024];
	long status = 0;

	if (!svc->image)
		return vd_error_set(err, VD_EXIT_INPUT, "service '%s' has no image", svc->name);
	if (!name)
		return vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
	snprintf(path, sizeof(path), "/images/%s/json", name);
	if (call(dk, "GET", path, true, NULL, dk->timeout_ms, &status, &reply, err) < 0)
		return -1;
	if (status == 404)
		return vd_error_set(err, VD_EXIT_INPUT, "service '%s': image '%s' is not in the "
				    "Docker engine at %s, and vdctl pulls nothing (images are built "
				    "here: 'make images' builds vdctl/example-svc:latest)", svc->name,
				    svc->image, dk->endpoint);
	if (status != 200)
		return engine_error(err, "inspect image", svc->image, status, reply);
	return 0;
}

static int
docker_create(struct vd_driver *d, const struct vd_service *svc, const struct vd_labels *l,
	      struct vd_replica *out, struct vd_error *err)
{
	struct docker *dk = (struct docker *)d;
	_cleanup_json_ json_t *body = NULL;
	_cleanup_json_ json_t *reply = NULL;
	const char *msg, *id;
	char name[96], path[160];
	long status = 0;

	vd_replica_name(name, sizeof(name), l->service, l->index);
	if (!svc->image)
		return vd_error_set(err, VD_EXIT_INPUT, "create %s: the service has no image", name);
	body = create_body(svc, l, name);
	if (!body)
		return vd_error_set(err, VD_EXIT_FAILURE, "create %s: out of memory", name);
	snprintf(path, sizeof(path), "/containers/create?name=%s", name);
	if (call(dk, "POST", path, true, body, dk->timeout_ms, &status, &reply, err) < 0)
		return vd_error_wrap(err, "create %s", name);
	if (status == 404) {
		msg = json_string_value(json_object_get(reply, "message"));
		return vd_error_set(err, VD_EXIT_FAILURE,
				    "create %s: %s (no registry is configured here: images are "
				    "built locally; 'make images' builds vdctl/example-svc:latest)",
				    name, msg ? msg : "no such image");
	}
	if (status != 201) {
		engine_error(err, "create", name, status, reply);
		if (status == 409)
			err->sys_errno = EEXIST; /* the name is taken: the caller may adopt it */
		return -1;
	}
	id = json_string_value(json_object_get(reply, "Id"));
	if (!id)
		return vd_error_set(err, VD_EXIT_FAILURE, "create %s: the engine gave no id", name);
	return docker_inspect(d, id, out, err);
}

/* POST /containers/{id}/ACTION after checking the container is vdctl's. */
static int
lifecycle(struct docker *dk, const char *op, const char *id, const char *action,
	  const char *query, int timeout_ms, struct vd_error *err)
{
	_cleanup_json_ json_t *reply = NULL;
	char path[256];
	long status = 0;
	int ret;

	if ((ret = ours(dk, id, err)) <= 0)
		return ret < 0 ? -1 : vd_error_set(err, VD_EXIT_FAILURE, "%s %s: no such container",
						   op, id);
	snprintf(path, sizeof(path), "/containers/%s/%s%s", id, action, query);
	if (call(dk, "POST", path, true, NULL, timeout_ms, &status, &reply, err) < 0)
		return vd_error_wrap(err, "%s %s", op, id);
	/* 304: already in that state */
	ret = status == 204 || status == 304 ? 0 : engine_error(err, op, id, status, reply);
	return ret;
}

static int
docker_start(struct vd_driver *d, const char *id, struct vd_error *err)
{
	struct docker *dk = (struct docker *)d;

	return lifecycle(dk, "start", id, "start", "", dk->timeout_ms, err);
}

static int
docker_stop(struct vd_driver *d, const char *id, int grace_s, struct vd_error *err)
{
	struct docker *dk = (struct docker *)d;
	char query[32];

	if (grace_s < 0)
		grace_s = 0;
	snprintf(query, sizeof(query), "?t=%d", grace_s);
	/* the engine waits grace_s, then kills: allow for both */
	return lifecycle(dk, "stop", id, "stop", query, dk->timeout_ms + grace_s * 1000, err);
}

static int
docker_remove(struct vd_driver *d, const char *id, struct vd_error *err)
{
	struct docker *dk = (struct docker *)d;
	_cleanup_json_ json_t *reply = NULL;
	char path[256];
	long status = 0;
	int known = ours(dk, id, err);

	if (known <= 0)
		return known; /* not vdctl's (-1), or already gone (0) */
	/* force: kill it if running; v: with its anonymous volumes */
	snprintf(path, sizeof(path), "/containers/%s?force=1&v=1", id);
	if (call(dk, "DELETE", path, true, NULL, dk->timeout_ms, &status, &reply, err) < 0)
		return vd_error_wrap(err, "remove %s", id);
	if (status != 204 && status != 404)
		return engine_error(err, "remove", id, status, reply);
	return 0;
}

static int
docker_resize(struct vd_driver *d, const char *id, int64_t milli_cpus, int64_t memory_bytes,
	      struct vd_error *err)
{
	struct docker *dk = (struct docker *)d;
	_cleanup_json_ json_t *body = NULL;
	_cleanup_json_ json_t *reply = NULL;
	char path[256];
	long status = 0;
	int known = ours(dk, id, err);

	if (known <= 0)
		return known < 0 ? -1 : vd_error_set(err, VD_EXIT_FAILURE, "resize %s: no such "
						     "container", id);
	body = json_pack("{s:I, s:I, s:I}", "Memory", (json_int_t)memory_bytes, "MemorySwap",
			 (json_int_t)memory_bytes, "NanoCpus", (json_int_t)milli_cpus * 1000000);
	snprintf(path, sizeof(path), "/containers/%s/update", id);
	if (call(dk, "POST", path, true, body, dk->timeout_ms, &status, &reply, err) < 0)
		return vd_error_wrap(err, "resize %s", id);
	if (status == 200)
		return 0;
	engine_error(err, "resize", id, status, reply);
	if (strstr(err->msg, "busy") || strstr(err->msg, "usage"))
		vd_error_wrap(err, "the engine refused memory %lld MiB, likely below what the "
			      "replica uses now", (long long)(memory_bytes >> 20));
	return -1;
}

static int
docker_stats(struct vd_driver *d, const char *id, struct vd_stats *out, struct vd_error *err)
{
	struct docker *dk = (struct docker *)d;
	_cleanup_json_ json_t *reply = NULL;
	json_t *cpu, *pre, *mem, *mstats;
	double cpu_delta, sys_delta;
	int64_t inactive;
	char path[256];
	long status = 0;
	int online, known = ours(dk, id, err);

	if (known <= 0)
		return known < 0 ? -1 : vd_error_set(err, VD_EXIT_FAILURE, "stats %s: no such "
						     "container", id);
	/* stream=false: the engine takes two samples, a second apart */
	snprintf(path, sizeof(path), "/containers/%s/stats?stream=false", id);
	if (call(dk, "GET", path, true, NULL, dk->timeout_ms, &status, &reply, err) < 0)
		return vd_error_wrap(err, "stats %s", id);
	if (status != 200)
		return engine_error(err, "stats", id, status, reply);
	cpu = json_object_get(reply, "cpu_stats");
	pre = json_object_get(reply, "precpu_stats");
	mem = json_object_get(reply, "memory_stats");
	mstats = json_object_get(mem, "stats");
	cpu_delta = (double)json_integer_value(json_object_get(json_object_get(cpu, "cpu_usage"),
							       "total_usage")) -
		    (double)json_integer_value(json_object_get(json_object_get(pre, "cpu_usage"),
							       "total_usage"));
	sys_delta = (double)json_integer_value(json_object_get(cpu, "system_cpu_usage")) -
		    (double)json_integer_value(json_object_get(pre, "system_cpu_usage"));
	online = (int)json_integer_value(json_object_get(cpu, "online_cpus"));
	out->cpu_percent = sys_delta > 0 && cpu_delta > 0 ? cpu_delta / sys_delta * online * 100 : 0;
	out->cpu_time_ns = json_integer_value(json_object_get(json_object_get(cpu, "cpu_usage"),
							      "total_usage"));
	/* as `docker stats` counts it: usage less the inactive page cache */
	inactive = json_integer_value(json_object_get(mstats, "total_inactive_file"));
	if (!inactive)
		inactive = json_integer_value(json_object_get(mstats, "inactive_file"));
	out->memory_usage = json_integer_value(json_object_get(mem, "usage"));
	if (inactive < out->memory_usage)
		out->memory_usage -= inactive;
	out->memory_limit = json_integer_value(json_object_get(mem, "limit"));
	return 0;
}

/* --------------------------------------------------------------- events */

static int
connect_engine(struct docker *dk, struct vd_error *err)
{
	struct vd_error e = VD_ERROR_INIT;
	int fd = vd_httpc_connect(&dk->target, dk->timeout_ms < DOCKER_CONNECT_TIMEOUT_MS
						       ? dk->timeout_ms
						       : DOCKER_CONNECT_TIMEOUT_MS, &e);

	if (fd < 0)
		return vd_error_set(err, VD_EXIT_ENGINE, "cannot reach the Docker engine at %s: %s (%s)",
				    dk->endpoint, e.msg, hint(e.sys_errno));
	return fd;
}

/*
 * The events stream is an HTTP/1.0 request, so the engine answers with a
 * plain body (no chunking) of one JSON object a line until either side
 * closes. The request is small and written before the socket turns
 * non-blocking; reads are non-blocking from then on.
 */
static int
docker_events_open(struct vd_driver *d, struct vd_error *err)
{
	struct docker *dk = (struct docker *)d;
	_cleanup_free_ char *filter = NULL;
	_cleanup_json_ json_t *f = NULL;
	_cleanup_close_ int fd = -1;
	char *escaped, req[1024];
	int n;

	f = json_pack("{s:[s], s:[s,s,s], s:[s]}", "type", "container", "event", "start", "die",
		      "oom", "label", VD_LABEL_MANAGED "=true");
	if (!f || !(filter = json_dumps(f, JSON_COMPACT)) ||
	    !(escaped = vd_httpc_escape(filter)))
		return vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
	n = snprintf(req, sizeof(req), "GET /%s/events?filters=%s HTTP/1.0\r\nHost: docker\r\n\r\n",
		     dk->api, escaped);
	free(escaped);
	if ((fd = connect_engine(dk, err)) < 0)
		return -1;
	if (n <= 0 || (size_t)n >= sizeof(req) || write(fd, req, (size_t)n) != n)
		return vd_error_errno(err, errno, "events: cannot send the request to %s",
				      dk->endpoint);
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
		return vd_error_errno(err, errno, "events: fcntl");
	if (dk->ev_fd >= 0)
		close(dk->ev_fd);
	dk->ev_fd = vd_steal_fd(&fd);
	dk->ev_body = false;
	dk->ev_len = 0;
	return dk->ev_fd;
}

/* Take one line out of the events buffer into line (NUL-terminated); 0 when
 * no whole line is there yet. */
static int
take_line(struct docker *dk, char *line, size_t size)
{
	char *nl = memchr(dk->ev_buf, '\n', dk->ev_len);
	size_t n;

	if (!nl)
		return 0;
	n = (size_t)(nl - dk->ev_buf);
	if (n >= size)
		n = size - 1; /* longer than any event: cut, and it will not parse */
	memcpy(line, dk->ev_buf, n);
	line[n] = '\0';
	if (n && line[n - 1] == '\r')
		line[n - 1] = '\0';
	dk->ev_len -= (size_t)(nl - dk->ev_buf) + 1;
	memmove(dk->ev_buf, nl + 1, dk->ev_len);
	return 1;
}

static int
fill_events(struct docker *dk, struct vd_error *err)
{
	ssize_t n;

	if (dk->ev_cap - dk->ev_len < 4096) {
		size_t cap = dk->ev_cap ? dk->ev_cap * 2 : 16384;
		char *p;

		if (cap > (1 << 20))
			return vd_error_set(err, VD_EXIT_FAILURE, "events: a line over 1 MiB");
		if (!(p = realloc(dk->ev_buf, cap)))
			return vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
		dk->ev_buf = p;
		dk->ev_cap = cap;
	}
	n = read(dk->ev_fd, dk->ev_buf + dk->ev_len, dk->ev_cap - dk->ev_len);
	if (n > 0) {
		dk->ev_len += (size_t)n;
		return 1;
	}
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return 0;
	return vd_error_set(err, VD_EXIT_ENGINE, "events: the Docker engine at %s closed the "
			    "stream", dk->endpoint);
}

static int
parse_event(const char *line, struct vd_event *ev)
{
	_cleanup_json_ json_t *j = json_loads(line, 0, NULL);
	json_t *attrs = json_object_get(json_object_get(j, "Actor"), "Attributes");
	const char *action = json_string_value(json_object_get(j, "Action"));
	const char *id = json_string_value(json_object_get(json_object_get(j, "Actor"), "ID"));
	const char *code = label(attrs, "exitCode");
	struct vd_labels l = { 0 };

	if (!action || !id || parse_labels(attrs, &l) < 0) {
		vd_replica_labels_clear(&l);
		return 0;
	}
	memset(ev, 0, sizeof(*ev));
	if (strcmp(action, "start") == 0)
		ev->kind = VD_EVENT_START;
	else if (strcmp(action, "die") == 0)
		ev->kind = VD_EVENT_DIE;
	else if (strcmp(action, "oom") == 0)
		ev->kind = VD_EVENT_OOM;
	else {
		vd_replica_labels_clear(&l);
		return 0;
	}
	snprintf(ev->id, sizeof(ev->id), "%s", id);
	snprintf(ev->service, sizeof(ev->service), "%s", l.service);
	ev->index = l.index;
	ev->exit_code = code ? atoi(code) : -1;
	vd_replica_labels_clear(&l);
	return 1;
}

static int
docker_events_read(struct vd_driver *d, struct vd_event *ev, struct vd_error *err)
{
	struct docker *dk = (struct docker *)d;
	char line[65536];
	int got;

	if (dk->ev_fd < 0)
		return vd_error_set(err, VD_EXIT_FAILURE, "events: the stream is not open");
	for (;;) {
		while (take_line(dk, line, sizeof(line))) {
			if (!dk->ev_body) {
				if (strncmp(line, "HTTP/", 5) == 0 && !strstr(line, " 200"))
					return vd_error_set(err, VD_EXIT_FAILURE, "events: the "
							    "engine answered '%s'", line);
				dk->ev_body = line[0] == '\0';
				continue;
			}
			if (line[0] && parse_event(line, ev))
				return 1;
		}
		if ((got = fill_events(dk, err)) <= 0)
			return got;
	}
}

const struct vd_driver_ops vd_docker_driver = {
	.name = "docker",
	.default_endpoint = DOCKER_DEFAULT_ENDPOINT,
	.endpoint_env = "DOCKER_HOST",
	.list_partial = true,
	.open = docker_open,
	.close = docker_close,
	.capacity = docker_capacity,
	.list = docker_list,
	.check = docker_check,
	.create = docker_create,
	.start = docker_start,
	.stop = docker_stop,
	.remove = docker_remove,
	.inspect = docker_inspect,
	.resize = docker_resize,
	.stats = docker_stats,
	.events_open = docker_events_open,
	.events_read = docker_events_read,
};
