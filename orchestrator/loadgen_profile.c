/*
 * Load profiles: vdctl's own format and the subset of Artillery scripts
 * vdctl reads, from YAML to a struct vd_load_profile whose requests are
 * already the bytes to send. Every mistake, and every Artillery key outside
 * the subset, becomes "FILE:LINE:COL: message" (man/vdctl.1, "load").
 *
 * The YAML is read by vdctl's one reader (orchestrator/ytree.c), as for
 * manifests: one document, into a tree of nodes that remember their line
 * and column, under limits, refusing anchors, aliases and tags. Then the
 * checker below walks the tree and reports everything it finds wrong, not
 * only the first thing. Values are read by ytree's readers, leniently as
 * Artillery writes them: quoted numbers, and durations as plain seconds.
 *
 * What vdctl load's command line overrides (--target, --duration, --rate)
 * is applied here too: the target while the requests are made into bytes
 * (their Host header and base path come from it), the others once the
 * profile is known to be right.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "vd/cleanup.h"
#include "vd/loadgen.h"
#include "vd/strbuf.h"
#include "vd/units.h"
#include "vd/ytree.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static const struct vd_ytree_opts profile_limits = {
	.what = "load profiles",
	.max_bytes = VD_LOAD_MAX_BYTES,
	.max_value = VD_LOAD_MAX_BYTES,
	.max_nodes = 50000,
	.max_depth = 32,
};

#define MAX_DIAGS 100

/* read by vd_ytree_enum() in this order */
_Static_assert(VD_LOAD_OPEN == 0 && VD_LOAD_CLOSED == 1 && VD_LOAD_CONSTANT == 0 &&
		       VD_LOAD_POISSON == 1,
	       "enum order");

struct ctx {
	struct vd_diag_file df;
	struct vd_ycheck y; /* the value readers' view of df */
	struct vd_load_profile *p;
	bool artillery;
	char *base; /* the target's path, prefixed to request paths */
	const char *file_target; /* the target as the file wrote it */
	bool target_set;         /* by --target: the file's is not used */
};

VD_DEFINE_CLEANUP(ytree_freep, struct vd_ynode *, vd_ytree_free)

#define DIAG(c, node, ...) vd_ytree_diag(&(c)->df, (node), __VA_ARGS__)

/* ========================================================== value helpers */

static bool
want(struct ctx *c, const struct vd_ynode *n, enum vd_ynode_kind kind, const char *path)
{
	return vd_ytree_want(&c->y, n, kind, path);
}

/* Report the keys of map M that are not in KNOWN (NULL-terminated); PATH
 * names M ("" at the top). */
static void
check_keys(struct ctx *c, const struct vd_ynode *m, const char *path, const char *const *known)
{
	char list[256] = "", hint[280];
	size_t len = 0;

	for (size_t k = 0; known[k]; k++)
		len += (size_t)snprintf(list + len, len < sizeof(list) ? sizeof(list) - len : 0,
					"%s%s", k ? ", " : "", known[k]);
	snprintf(hint, sizeof(hint), " (expected %s)", list);
	for (size_t i = 0; i + 1 < m->n; i += 2) {
		const struct vd_ynode *key = m->kids[i];
		size_t k;

		if (key->dup)
			continue;
		if (key->kind != VD_YSCALAR) {
			if (key->kind != VD_YALIAS)
				DIAG(c, key, "keys must be plain names, not %s",
				     VD_YTREE_WHAT(key));
			continue;
		}
		for (k = 0; known[k] && strcmp(known[k], key->text); k++)
			;
		if (known[k])
			continue;
		if (c->artillery)
			DIAG(c, key, "'%s%s%s' is not supported by vdctl load (here it reads: %s)",
			     path, *path ? "." : "", VD_SHOW(key->text), list);
		else
			vd_ytree_unknown_key(&c->y, key, *path ? path : NULL, known, SIZE_MAX,
					     hint);
	}
}

static int
get_number(struct ctx *c, const struct vd_ynode *n, const char *path, double min, double max,
	   double *out)
{
	return vd_ytree_number(&c->y, n, path, min, false, max, out);
}

static int
get_int(struct ctx *c, const struct vd_ynode *n, const char *path, int min, int max, int *out)
{
	int64_t x;

	if (vd_ytree_int(&c->y, n, path, min, max, &x) < 0)
		return -1;
	*out = (int)x;
	return 0;
}

/* A duration: a number of seconds (Artillery's way) or "500ms", "1m30s". */
static int
get_secs(struct ctx *c, const struct vd_ynode *n, const char *path, int64_t min_ms, int64_t *ms)
{
	return vd_ytree_duration(&c->y, n, path, min_ms, ms);
}

static char *
xstrdup(struct ctx *c, const char *s)
{
	char *d = strdup(s);

	if (!d)
		c->df.oom = true;
	return d;
}

static bool
has_template(struct ctx *c, const struct vd_ynode *n, const char *path)
{
	if (!strstr(n->text, "{{"))
		return false;
	DIAG(c, n, "templates ('{{ ... }}') in '%s' are not supported by vdctl load", path);
	return true;
}

/* ============================================================ the target */

bool
vd_load_host_is_loopback(const char *host)
{
	return !strcmp(host, "127.0.0.1") || !strcmp(host, "::1") || !strcmp(host, "localhost");
}

/* Where a target URL sends requests. */
struct target {
	char *host; /* an IP literal (no brackets) or a name */
	int port;
	char *base; /* the path, without its trailing '/' */
};

enum target_err { TARGET_OK, TARGET_HTTPS, TARGET_BAD, TARGET_NOMEM };

static void
target_clear(struct target *t)
{
	free(t->host);
	free(t->base);
	*t = (struct target){ NULL, 0, NULL };
}

/* Read S, http://HOST[:PORT][/BASE], into T. */
static enum target_err
parse_target(const char *s, struct target *t)
{
	const char *h, *end;
	char *slash;
	struct in6_addr a6;
	long port = 80;

	*t = (struct target){ NULL, 0, NULL };
	if (!strncmp(s, "https://", 8))
		return TARGET_HTTPS;
	if (strncmp(s, "http://", 7))
		return TARGET_BAD;
	h = s + 7;
	if (*h == '[') {
		end = strchr(h, ']');
		if (!end)
			return TARGET_BAD;
		t->host = strndup(h + 1, (size_t)(end - h - 1));
		end++;
	} else {
		end = h + strcspn(h, ":/");
		t->host = strndup(h, (size_t)(end - h));
	}
	if (!t->host)
		return TARGET_NOMEM;
	if (!*t->host || (strchr(t->host, ':') && inet_pton(AF_INET6, t->host, &a6) != 1))
		goto bad;
	if (*end == ':') {
		port = strtol(end + 1, &slash, 10);
		if (slash == end + 1 || port < 1 || port > 65535 || (*slash && *slash != '/'))
			goto bad;
		end = slash;
	}
	t->port = (int)port;
	if (*end && *end != '/')
		goto bad;
	t->base = strndup(end, strlen(end) - (strlen(end) && end[strlen(end) - 1] == '/'));
	if (!t->base) {
		target_clear(t);
		return TARGET_NOMEM;
	}
	return TARGET_OK;
bad:
	target_clear(t);
	return TARGET_BAD;
}

/* The profile's target. With --target (c->target_set) it is only checked,
 * and kept to recognise request URLs written whole. */
static void
set_target(struct ctx *c, const struct vd_ynode *n, const char *path)
{
	struct vd_load_profile *p = c->p;
	struct target t;

	if (!want(c, n, VD_YSCALAR, path) || has_template(c, n, path))
		return;
	switch (parse_target(n->text, &t)) {
	case TARGET_OK:
		break;
	case TARGET_HTTPS:
		DIAG(c, n, "'%s': https targets are not supported by vdctl load", path);
		return;
	case TARGET_BAD:
		DIAG(c, n, "invalid value '%s' for '%s': expected http://HOST[:PORT][/PATH], "
		     "e.g. http://127.0.0.1:8080", n->text, path);
		return;
	case TARGET_NOMEM:
		c->df.oom = true;
		return;
	}
	c->file_target = n->text;
	if (c->target_set) {
		target_clear(&t);
		return;
	}
	p->host = t.host;
	p->port = t.port;
	c->base = t.base;
	p->target = xstrdup(c, n->text);
}

/* ============================================================== requests */

/* The JSON of a request's 'json' value, checked by json_ok() first. */
static json_t *
to_json(const struct vd_ynode *n)
{
	json_t *j;
	char *end;

	if (n->kind == VD_YMAP) {
		j = json_object();
		for (size_t i = 0; j && i + 1 < n->n; i += 2)
			if (json_object_set_new(j, n->kids[i]->text, to_json(n->kids[i + 1])) < 0)
				return json_decref(j), NULL;
		return j;
	}
	if (n->kind == VD_YALIAS)
		return json_null();
	if (n->kind == VD_YSEQ) {
		j = json_array();
		for (size_t i = 0; j && i < n->n; i++)
			if (json_array_append_new(j, to_json(n->kids[i])) < 0)
				return json_decref(j), NULL;
		return j;
	}
	if (n->quoted)
		return json_string(n->text);
	if (vd_ytree_is_null(n))
		return json_null();
	if (!strcmp(n->text, "true") || !strcmp(n->text, "false"))
		return json_boolean(!strcmp(n->text, "true"));
	if (*n->text && strspn(n->text, "-0123456789") == strlen(n->text)) {
		long long v = strtoll(n->text, &end, 10);

		if (!*end)
			return json_integer(v);
	}
	if (*n->text && strspn(n->text, "-+.0123456789eE") == strlen(n->text)) {
		double v = strtod(n->text, &end);

		if (!*end)
			return json_real(v);
	}
	return json_string(n->text);
}

/* Whether N can be a JSON body: no templates, no aliases (the reader
 * reported those), keys that are names. */
static bool
json_ok(struct ctx *c, const struct vd_ynode *n, const char *path)
{
	bool ok = true;

	if (n->kind == VD_YSCALAR)
		return !has_template(c, n, path);
	if (n->kind == VD_YALIAS)
		return false;
	for (size_t i = 0; i < n->n; i++) {
		const struct vd_ynode *k = n->kids[i];

		if (n->kind == VD_YMAP && i % 2 == 0 && k->kind != VD_YSCALAR) {
			if (k->kind != VD_YALIAS)
				DIAG(c, k, "keys in '%s' must be plain names, not %s", path,
				     VD_YTREE_WHAT(k));
			ok = false;
			continue;
		}
		ok &= json_ok(c, k, path);
	}
	return ok;
}

static bool
header_has(const struct vd_ynode *headers, const char *name)
{
	for (size_t i = 0; headers && i + 1 < headers->n; i += 2) {
		const struct vd_ynode *k = headers->kids[i];

		if (k->kind == VD_YSCALAR && !strcasecmp(k->text, name))
			return true;
	}
	return false;
}

/* Add one request (method, url, json or body, headers) made into bytes; its
 * index, or -1. R is the request's mapping; PATH names it. */
static int
add_request(struct ctx *c, const char *method, const struct vd_ynode *r, const char *path)
{
	struct vd_load_profile *p = c->p;
	const struct vd_ynode *url, *json, *body, *headers;
	struct vd_strbuf b = VD_STRBUF_INIT;
	_cleanup_free_ char *text = NULL;
	const char *target, *url_key = c->artillery ? "url" : "path";
	char where[160], hostport[300];
	struct vd_load_request *req;
	size_t n = 0;
	bool ok = true;

	snprintf(where, sizeof(where), "%s.%s", path, url_key);
	url = vd_ytree_get(r, url_key);
	json = vd_ytree_get(r, "json");
	body = vd_ytree_get(r, "body");
	headers = vd_ytree_get(r, "headers");
	if (!url) {
		DIAG(c, r, "'%s' needs '%s'", path, url_key);
		return -1;
	}
	if (!want(c, url, VD_YSCALAR, where) || has_template(c, url, where))
		return -1;
	target = url->text;
	if (c->file_target && !strncmp(target, c->file_target, strlen(c->file_target)) &&
	    (target[strlen(c->file_target)] == '/' || !target[strlen(c->file_target)]))
		target += strlen(c->file_target); /* the target's own URL, written whole */
	if (*target != '/' || strpbrk(target, " \r\n\t")) {
		DIAG(c, url, "invalid value '%s' for '%s': expected a path starting with '/' "
		     "on the target", url->text, where);
		return -1;
	}
	if (json && body) {
		DIAG(c, body, "'%s' has both 'json' and 'body'; give one", path);
		return -1;
	}
	snprintf(where, sizeof(where), "%s.json", path);
	if (json && json_ok(c, json, where)) {
		json_t *j = to_json(json);

		text = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
		json_decref(j);
		if (!text)
			c->df.oom = true;
	}
	snprintf(where, sizeof(where), "%s.body", path);
	if (body && want(c, body, VD_YSCALAR, where) && !has_template(c, body, where))
		text = xstrdup(c, body->text);
	snprintf(where, sizeof(where), "%s.headers", path);
	if (headers && !want(c, headers, VD_YMAP, where))
		headers = NULL;
	if (strchr(p->host ? p->host : "", ':'))
		snprintf(hostport, sizeof(hostport), "[%s]", p->host);
	else
		snprintf(hostport, sizeof(hostport), "%s", p->host ? p->host : "");
	if (p->port != 80)
		snprintf(hostport + strlen(hostport), sizeof(hostport) - strlen(hostport), ":%d",
			 p->port);
	vd_strbuf_printf(&b, "%s %s%s HTTP/1.1\r\n", method, c->base ? c->base : "", target);
	if (!header_has(headers, "host"))
		vd_strbuf_printf(&b, "Host: %s\r\n", hostport);
	if (!header_has(headers, "user-agent"))
		vd_strbuf_puts(&b, "User-Agent: vdctl-load\r\n");
	if (json && !header_has(headers, "content-type"))
		vd_strbuf_puts(&b, "Content-Type: application/json\r\n");
	if (text || !strcmp(method, "POST") || !strcmp(method, "PUT"))
		vd_strbuf_printf(&b, "Content-Length: %zu\r\n", text ? strlen(text) : 0);
	for (size_t i = 0; headers && i + 1 < headers->n; i += 2) {
		const struct vd_ynode *k = headers->kids[i], *v = headers->kids[i + 1];

		if (k->dup)
			continue;
		if (k->kind != VD_YSCALAR || v->kind != VD_YSCALAR || strpbrk(k->text, " :\r\n") ||
		    strpbrk(v->text, "\r\n") || has_template(c, v, where)) {
			if (k->kind != VD_YALIAS && v->kind != VD_YALIAS)
				DIAG(c, v, "invalid header '%s' in '%s'",
				     k->kind == VD_YSCALAR ? VD_SHOW(k->text) : "?", where);
			ok = false;
			continue;
		}
		vd_strbuf_printf(&b, "%s: %s\r\n", k->text, v->text);
	}
	vd_strbuf_puts(&b, "\r\n");
	if (text)
		vd_strbuf_puts(&b, text);
	if (!ok || c->df.count || vd_strbuf_failed(&b)) {
		c->df.oom |= vd_strbuf_failed(&b);
		vd_strbuf_free(&b);
		return -1;
	}
	req = reallocarray(p->requests, p->nrequests + 1, sizeof(*req));
	if (!req) {
		vd_strbuf_free(&b);
		c->df.oom = true;
		return -1;
	}
	p->requests = req;
	req = &p->requests[p->nrequests];
	n = b.len;
	req->wire = vd_strbuf_steal(&b);
	req->wire_len = n;
	if (asprintf(&req->name, "%s %s", method, target) < 0)
		req->name = NULL;
	if (!req->wire || !req->name) {
		free(req->wire);
		free(req->name);
		c->df.oom = true;
		return -1;
	}
	return (int)p->nrequests++;
}

static struct vd_load_scenario *
add_scenario(struct ctx *c, const char *name, unsigned weight)
{
	struct vd_load_profile *p = c->p;
	struct vd_load_scenario *s = reallocarray(p->scenarios, p->nscenarios + 1, sizeof(*s));

	if (!s) {
		c->df.oom = true;
		return NULL;
	}
	p->scenarios = s;
	s = &p->scenarios[p->nscenarios++];
	*s = (struct vd_load_scenario){ .name = xstrdup(c, name), .weight = weight };
	return s;
}

static void
add_step(struct ctx *c, struct vd_load_scenario *s, int request, int64_t think_ms)
{
	struct vd_load_step *st = reallocarray(s->steps, s->nsteps + 1, sizeof(*st));

	if (!st) {
		c->df.oom = true;
		return;
	}
	s->steps = st;
	s->steps[s->nsteps++] = (struct vd_load_step){ request, think_ms };
}

/* ================================================================ phases */

/* The keys of a phase in each format. */
struct phase_keys {
	const char *duration, *rate, *ramp, *count, *pause, *max, *name;
};

static const struct phase_keys artillery_phase = {
	"duration", "arrivalRate", "rampTo", "arrivalCount", "pause", "maxVusers", "name"
};
static const struct phase_keys vdctl_phase = {
	"duration", "arrival_rate", "ramp_to", "arrival_count", "pause", "max_vusers", "name"
};

static void
read_phases(struct ctx *c, const struct vd_ynode *seq, const char *path)
{
	const struct phase_keys *k = c->artillery ? &artillery_phase : &vdctl_phase;
	const char *const known[] = { k->duration, k->rate, k->ramp, k->count, k->pause,
				      k->max, k->name, NULL };
	struct vd_load_profile *p = c->p;

	if (!want(c, seq, VD_YSEQ, path))
		return;
	if (!seq->n)
		DIAG(c, seq, "'%s' is empty: give at least one phase", path);
	p->phases = calloc(seq->n ? seq->n : 1, sizeof(*p->phases));
	if (!p->phases) {
		c->df.oom = true;
		return;
	}
	for (size_t i = 0; i < seq->n; i++) {
		const struct vd_ynode *m = seq->kids[i], *v;
		struct vd_load_phase *ph = &p->phases[p->nphases++];
		char at[96], where[160];
		double count = 0;

		snprintf(at, sizeof(at), "%s[%zu]", path, i);
		if (!want(c, m, VD_YMAP, at))
			continue;
		check_keys(c, m, at, known);
#define KEY(key) (snprintf(where, sizeof(where), "%s.%s", at, (key)), \
		  v = vd_ytree_get(m, (key)))
		if (KEY(k->name) && want(c, v, VD_YSCALAR, where))
			ph->name = xstrdup(c, v->text);
		if (KEY(k->pause)) {
			get_secs(c, v, where, 1, &ph->duration_ms);
			if (vd_ytree_get(m, k->rate) || vd_ytree_get(m, k->count) ||
			    vd_ytree_get(m, k->duration))
				DIAG(c, m, "'%s' is a pause: it takes no '%s', '%s' or '%s'", at,
				     k->duration, k->rate, k->count);
			continue;
		}
		if (!KEY(k->duration))
			DIAG(c, m, "'%s' needs '%s'", at, k->duration);
		else
			get_secs(c, v, where, 1, &ph->duration_ms);
		if (KEY(k->rate))
			get_number(c, v, where, 0, 1e6, &ph->rate);
		ph->ramp_to = ph->rate;
		if (KEY(k->ramp)) {
			get_number(c, v, where, 0, 1e6, &ph->ramp_to);
			if (!vd_ytree_get(m, k->rate))
				ph->rate = 0;
		}
		if (KEY(k->count) && get_number(c, v, where, 1, 1e9, &count) == 0 &&
		    ph->duration_ms > 0)
			ph->rate = ph->ramp_to = count * 1000.0 / (double)ph->duration_ms;
		if (vd_ytree_get(m, k->count) &&
		    (vd_ytree_get(m, k->rate) || vd_ytree_get(m, k->ramp)))
			DIAG(c, m, "'%s' has '%s' and '%s': give one", at, k->count, k->rate);
		if (!vd_ytree_get(m, k->count) && !vd_ytree_get(m, k->rate) &&
		    !vd_ytree_get(m, k->ramp))
			DIAG(c, m, "'%s' needs '%s', '%s' or '%s'", at, k->rate, k->count, k->pause);
		if (KEY(k->max))
			get_int(c, v, where, 1, 10000000, &ph->max_vusers);
#undef KEY
	}
}

/* ============================================================ Artillery */

static const char *const methods[] = { "get", "post", "put", "delete", NULL };

static void
read_flow(struct ctx *c, struct vd_load_scenario *s, const struct vd_ynode *flow, const char *path)
{
	static const char *const steps[] = { "get", "post", "put", "delete", "think", NULL };
	static const char *const req_keys[] = { "url", "json", "body", "headers", NULL };

	if (!want(c, flow, VD_YSEQ, path))
		return;
	if (!flow->n)
		DIAG(c, flow, "'%s' is empty", path);
	for (size_t i = 0; i < flow->n; i++) {
		const struct vd_ynode *m = flow->kids[i], *v;
		char at[96], where[160];
		int64_t ms;
		size_t k;

		snprintf(at, sizeof(at), "%s[%zu]", path, i);
		if (!want(c, m, VD_YMAP, at))
			continue;
		check_keys(c, m, at, steps);
		if (m->n != 2) {
			if (m->n > 2)
				DIAG(c, m, "'%s' must hold one action (get, post, put, delete or "
				     "think)", at);
			continue;
		}
		v = m->kids[1];
		if (m->kids[0]->kind != VD_YSCALAR)
			continue; /* check_keys() said so */
		snprintf(where, sizeof(where), "%s.%s", at, m->kids[0]->text);
		if (!strcmp(m->kids[0]->text, "think")) {
			if (get_secs(c, v, where, 0, &ms) == 0)
				add_step(c, s, -1, ms);
			continue;
		}
		for (k = 0; methods[k] && strcmp(methods[k], m->kids[0]->text); k++)
			;
		if (!methods[k] || !want(c, v, VD_YMAP, where))
			continue;
		check_keys(c, v, where, req_keys);
		{
			char upper[8];
			int r;

			for (size_t j = 0; j <= strlen(methods[k]); j++)
				upper[j] = (char)(methods[k][j] & ~((methods[k][j] >= 'a') << 5));
			r = add_request(c, upper, v, where);
			if (r >= 0)
				add_step(c, s, r, 0);
		}
	}
}

static void
read_artillery(struct ctx *c, const struct vd_ynode *root)
{
	static const char *const top[] = { "config", "scenarios", NULL };
	static const char *const config_keys[] = { "target", "phases", "http", NULL };
	static const char *const http_keys[] = { "timeout", NULL };
	static const char *const scenario_keys[] = { "name", "weight", "flow", NULL };
	const struct vd_ynode *config = vd_ytree_get(root, "config"), *v, *scenarios;
	struct vd_load_profile *p = c->p;

	check_keys(c, root, "", top);
	p->model = VD_LOAD_OPEN;
	if (!config) {
		DIAG(c, root, "an Artillery script needs 'config'");
		return;
	}
	if (!want(c, config, VD_YMAP, "config"))
		return;
	check_keys(c, config, "config", config_keys);
	if ((v = vd_ytree_get(config, "target")))
		set_target(c, v, "config.target");
	else if (!c->target_set)
		DIAG(c, config, "'config' needs 'target'");
	if ((v = vd_ytree_get(config, "phases")))
		read_phases(c, v, "config.phases");
	else
		DIAG(c, config, "'config' needs 'phases'");
	if ((v = vd_ytree_get(config, "http")) && want(c, v, VD_YMAP, "config.http")) {
		check_keys(c, v, "config.http", http_keys);
		if ((v = vd_ytree_get(v, "timeout")))
			get_secs(c, v, "config.http.timeout", 1, &p->timeout_ms);
	}
	scenarios = vd_ytree_get(root, "scenarios");
	if (!scenarios) {
		DIAG(c, root, "an Artillery script needs 'scenarios'");
		return;
	}
	if (!want(c, scenarios, VD_YSEQ, "scenarios"))
		return;
	for (size_t i = 0; i < scenarios->n; i++) {
		const struct vd_ynode *m = scenarios->kids[i];
		struct vd_load_scenario *s;
		char at[64], name[32], where[96];
		int weight = 1;

		snprintf(at, sizeof(at), "scenarios[%zu]", i);
		if (!want(c, m, VD_YMAP, at))
			continue;
		check_keys(c, m, at, scenario_keys);
		snprintf(name, sizeof(name), "%zu", i);
		snprintf(where, sizeof(where), "%s.weight", at);
		if ((v = vd_ytree_get(m, "weight")))
			get_int(c, v, where, 1, 1000000, &weight);
		v = vd_ytree_get(m, "name");
		if (!(s = add_scenario(c, v && v->kind == VD_YSCALAR ? v->text : name,
				       (unsigned)weight)))
			return;
		if ((v = vd_ytree_get(m, "flow")))
			read_flow(c, s, v, strcat(at, ".flow"));
		else
			DIAG(c, m, "'%s' needs 'flow'", at);
	}
}

/* ========================================================= vdctl's format */

static void
read_vdctl(struct ctx *c, const struct vd_ynode *root)
{
	static const char *const top[] = { "target", "model", "users", "spawn_rate", "wait_time",
		"duration", "requests", "phases", "arrivals", "keep_alive_pool", "timeout", NULL };
	static const char *const req_keys[] = { "name", "method", "path", "weight", "body",
						"json", "headers", NULL };
	static const char *const wait_keys[] = { "min", "max", NULL };
	/* in the order of enum vd_load_model and enum vd_load_arrivals */
	static const char *const model_names[] = { "open", "closed", NULL };
	static const char *const arrivals_names[] = { "constant", "poisson", NULL };
	struct vd_load_profile *p = c->p;
	const struct vd_ynode *v, *reqs;
	int e;

	check_keys(c, root, "", top);
	if ((v = vd_ytree_get(root, "target")))
		set_target(c, v, "target");
	else if (!c->target_set)
		DIAG(c, root, "a load profile needs 'target', e.g. http://127.0.0.1:8080");
	p->model = vd_ytree_get(root, "phases") ? VD_LOAD_OPEN : VD_LOAD_CLOSED;
	if ((v = vd_ytree_get(root, "model")) &&
	    vd_ytree_enum(&c->y, v, "model", model_names, &e) == 0)
		p->model = (enum vd_load_model)e;
	if ((v = vd_ytree_get(root, "arrivals")) &&
	    vd_ytree_enum(&c->y, v, "arrivals", arrivals_names, &e) == 0)
		p->arrivals = (enum vd_load_arrivals)e;
	if ((v = vd_ytree_get(root, "keep_alive_pool")))
		get_int(c, v, "keep_alive_pool", 0, 1000000, &p->keep_alive_pool);
	if ((v = vd_ytree_get(root, "timeout")))
		get_secs(c, v, "timeout", 1, &p->timeout_ms);
	if (p->model == VD_LOAD_CLOSED) {
		static const char *const open_only[] = { "phases", "arrivals" };

		for (size_t i = 0; i < ARRAY_SIZE(open_only); i++)
			if ((v = vd_ytree_get(root, open_only[i])))
				DIAG(c, v, "'%s' is for model: open", open_only[i]);
		if ((v = vd_ytree_get(root, "users")))
			get_int(c, v, "users", 1, 1000000, &p->users);
		else
			DIAG(c, root, "model: closed needs 'users'");
		if ((v = vd_ytree_get(root, "duration")))
			get_secs(c, v, "duration", 1, &p->duration_ms);
		else
			DIAG(c, root, "model: closed needs 'duration'");
		p->spawn_rate = p->users;
		if ((v = vd_ytree_get(root, "spawn_rate")))
			get_number(c, v, "spawn_rate", 0.001, 1e6, &p->spawn_rate);
		if ((v = vd_ytree_get(root, "wait_time")) && v->kind == VD_YMAP) {
			const struct vd_ynode *min = vd_ytree_get(v, "min");
			const struct vd_ynode *max = vd_ytree_get(v, "max");

			check_keys(c, v, "wait_time", wait_keys);
			if (min)
				get_secs(c, min, "wait_time.min", 0, &p->wait_min_ms);
			p->wait_max_ms = p->wait_min_ms;
			if (max)
				get_secs(c, max, "wait_time.max", 0, &p->wait_max_ms);
			if (p->wait_max_ms < p->wait_min_ms)
				DIAG(c, v, "'wait_time.max' is below 'wait_time.min'");
		} else if (v && get_secs(c, v, "wait_time", 0, &p->wait_min_ms) == 0) {
			p->wait_max_ms = p->wait_min_ms;
		}
	} else {
		static const char *const closed_only[] = { "users", "spawn_rate", "wait_time",
							   "duration" };

		for (size_t i = 0; i < ARRAY_SIZE(closed_only); i++)
			if ((v = vd_ytree_get(root, closed_only[i])))
				DIAG(c, v, "'%s' is for model: closed", closed_only[i]);
		if ((v = vd_ytree_get(root, "phases")))
			read_phases(c, v, "phases");
		else
			DIAG(c, root, "model: open needs 'phases'");
	}
	reqs = vd_ytree_get(root, "requests");
	if (!reqs) {
		DIAG(c, root, "a load profile needs 'requests'");
		return;
	}
	if (!want(c, reqs, VD_YSEQ, "requests"))
		return;
	if (!reqs->n)
		DIAG(c, reqs, "'requests' is empty");
	for (size_t i = 0; i < reqs->n; i++) {
		const struct vd_ynode *m = reqs->kids[i];
		struct vd_load_scenario *s;
		char at[64], where[96], method[8] = "GET";
		int weight = 1, r;

		snprintf(at, sizeof(at), "requests[%zu]", i);
		if (!want(c, m, VD_YMAP, at))
			continue;
		check_keys(c, m, at, req_keys);
		snprintf(where, sizeof(where), "%s.weight", at);
		if ((v = vd_ytree_get(m, "weight")))
			get_int(c, v, where, 1, 1000000, &weight);
		snprintf(where, sizeof(where), "%s.method", at);
		if ((v = vd_ytree_get(m, "method")) && want(c, v, VD_YSCALAR, where)) {
			size_t k;

			for (k = 0; methods[k] && strcasecmp(methods[k], v->text); k++)
				;
			if (!methods[k])
				DIAG(c, v, "invalid value '%s' for '%s.method': expected GET, POST, "
				     "PUT or DELETE", v->text, at);
			else
				for (size_t j = 0; j <= strlen(methods[k]); j++)
					method[j] = (char)(methods[k][j] &
							   ~((methods[k][j] >= 'a') << 5));
		}
		r = add_request(c, method, m, at);
		v = vd_ytree_get(m, "name");
		if (r >= 0 && (s = add_scenario(c, v && v->kind == VD_YSCALAR ? v->text :
						   c->p->requests[r].name, (unsigned)weight)))
			add_step(c, s, r, 0);
	}
}

/* ================================================================ loading */

int64_t
vd_load_profile_duration_ms(const struct vd_load_profile *p)
{
	int64_t ms = 0;

	if (p->model == VD_LOAD_CLOSED)
		return p->duration_ms;
	for (size_t i = 0; i < p->nphases; i++)
		ms += p->phases[i].duration_ms;
	return ms;
}

void
vd_load_profile_free(struct vd_load_profile *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->nphases; i++)
		free(p->phases[i].name);
	for (size_t i = 0; i < p->nscenarios; i++) {
		free(p->scenarios[i].name);
		free(p->scenarios[i].steps);
	}
	for (size_t i = 0; i < p->nrequests; i++) {
		free(p->requests[i].name);
		free(p->requests[i].wire);
	}
	free(p->phases);
	free(p->scenarios);
	free(p->requests);
	free(p->file);
	free(p->target);
	free(p->host);
	free(p);
}

/* ============================================================ overrides */

/* --target: where the requests go, in place of the profile's target. */
static int
override_target(struct ctx *c, const char *url, struct vd_error *err)
{
	struct target t;

	switch (parse_target(url, &t)) {
	case TARGET_OK:
		break;
	case TARGET_HTTPS:
		return vd_error_set(err, VD_EXIT_INPUT, "invalid --target '%s': https targets "
				    "are not supported by vdctl load", url);
	case TARGET_BAD:
		return vd_error_set(err, VD_EXIT_INPUT, "invalid --target '%s': expected "
				    "http://HOST[:PORT][/PATH], e.g. http://127.0.0.1:8080", url);
	case TARGET_NOMEM:
		return vd_error_errno(err, ENOMEM, "cannot read --target");
	}
	c->p->host = t.host;
	c->p->port = t.port;
	c->base = t.base;
	c->p->target = xstrdup(c, url);
	c->target_set = true;
	return 0;
}

/* --duration: the length of a closed-model run; an open-model profile's
 * phases are scaled to it in proportion, each keeping its rates (so an
 * arrival_count scales too), each at least 1 ms. */
static int
override_duration(struct vd_load_profile *p, int64_t ms, struct vd_error *err)
{
	int64_t total = vd_load_profile_duration_ms(p), sum = 0, at = 0;
	int64_t n = (int64_t)p->nphases;
	char d[32];

	if (p->model == VD_LOAD_CLOSED) {
		p->duration_ms = ms;
		return 0;
	}
	if (ms < n)
		return vd_error_set(err, VD_EXIT_INPUT, "invalid --duration '%s': '%s' has %zu "
				    "phases, which need 1ms each at least",
				    vd_units_format_duration_ms(ms, d, sizeof(d)), p->file,
				    p->nphases);
	for (int64_t i = 0; i < n; i++) {
		int64_t end;

		sum += p->phases[i].duration_ms;
		end = (int64_t)llround((double)sum * (double)ms / (double)total);
		if (end < at + 1)
			end = at + 1;
		if (end > ms - (n - 1 - i))
			end = ms - (n - 1 - i);
		p->phases[i].duration_ms = end - at;
		at = end;
	}
	return 0;
}

/* --rate: the arrival rate of a one-phase open-model profile. */
static int
override_rate(struct vd_load_profile *p, double rate, struct vd_error *err)
{
	if (p->model == VD_LOAD_CLOSED)
		return vd_error_set(err, VD_EXIT_INPUT, "--rate is for the open model, and '%s' "
				    "is a closed-model profile: its load comes from its %d users "
				    "and their wait times", p->file, p->users);
	if (p->nphases != 1)
		return vd_error_set(err, VD_EXIT_INPUT, "--rate sets the rate of a profile with "
				    "one phase, and '%s' has %zu: change the phases in the file "
				    "(--duration scales their length)", p->file, p->nphases);
	p->phases[0].rate = p->phases[0].ramp_to = rate;
	return 0;
}

/* Read the profile PATH, or (PATH NULL) the text BUF named NAME. */
static int
load(const char *name, const char *path, const char *buf, size_t len,
     const struct vd_load_overrides *ov, struct vd_load_profile **out, struct vd_diags *diags,
     struct vd_error *err)
{
	struct ctx c = { .p = calloc(1, sizeof(*c.p)) };
	_cleanup_(ytree_freep) struct vd_ynode *root = NULL;

	*out = NULL;
	if (!c.p)
		return vd_error_errno(err, ENOMEM, "cannot read '%s'", name);
	if (ov && ov->target && override_target(&c, ov->target, err) < 0) {
		free(c.base);
		vd_load_profile_free(c.p);
		return -1;
	}
	vd_diag_file_init(&c.df, diags, MAX_DIAGS);
	vd_diag_file_begin(&c.df, name, 0);
	c.y = (struct vd_ycheck){ .df = &c.df, .quoted_numbers = true, .bare_seconds = true };
	c.p->timeout_ms = 10000;
	c.p->file = xstrdup(&c, name);
	root = vd_ytree_read_one(path, buf, len, &profile_limits, &c.df);
	if (!root && !c.df.count)
		vd_diag_at(&c.df, 1, 1, "empty load profile");
	else if (root && root->kind != VD_YMAP && root->kind != VD_YALIAS)
		DIAG(&c, root, "a load profile is a mapping of keys ('target', 'requests', ...) "
		     "or an Artillery script ('config', 'scenarios')");
	else if (root && root->kind == VD_YMAP) {
		c.artillery = vd_ytree_get(root, "config") || vd_ytree_get(root, "scenarios");
		c.p->format = c.artillery ? VD_LOAD_ARTILLERY : VD_LOAD_VDCTL;
		if (c.artillery)
			read_artillery(&c, root);
		else
			read_vdctl(&c, root);
	}
	free(c.base);
	if (c.df.oom) {
		vd_load_profile_free(c.p);
		return vd_error_errno(err, ENOMEM, "cannot read '%s'", name);
	}
	if (vd_diag_file_end(&c.df, err) < 0 ||
	    (ov && ov->duration_ms > 0 && override_duration(c.p, ov->duration_ms, err) < 0) ||
	    (ov && ov->rate > 0 && override_rate(c.p, ov->rate, err) < 0)) {
		vd_load_profile_free(c.p);
		return -1;
	}
	*out = c.p;
	return 0;
}

int
vd_load_profile_parse(const char *name, const char *buf, size_t len,
		      const struct vd_load_overrides *ov, struct vd_load_profile **out,
		      struct vd_diags *diags, struct vd_error *err)
{
	return load(name, NULL, buf, len, ov, out, diags, err);
}

int
vd_load_profile_read(const char *path, const struct vd_load_overrides *ov,
		     struct vd_load_profile **out, struct vd_diags *diags, struct vd_error *err)
{
	return load(path, path, NULL, 0, ov, out, diags, err);
}
