/*
 * Load profiles: vdctl's own format and the subset of Artillery scripts
 * vdctl reads, from YAML to a struct vd_load_profile whose requests are
 * already the bytes to send. Every mistake, and every Artillery key outside
 * the subset, becomes "FILE:LINE:COL: message" (man/vdctl.1, "load").
 *
 * As for manifests (orchestrator/manifest.c), libyaml's events are read
 * into a small tree of nodes that remember their line and column, under
 * limits, refusing anchors, aliases and tags; then a checker walks the tree
 * and reports everything it finds wrong, not only the first thing.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <yaml.h>

#include "vd/cleanup.h"
#include "vd/loadgen.h"
#include "vd/strbuf.h"
#include "vd/units.h"

#define MAX_DEPTH 32
#define MAX_NODES 50000
#define MAX_DIAGS 100
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* =============================================================== the tree */

enum kind { N_SCALAR, N_MAP, N_SEQ };

struct node {
	enum kind kind;
	int line, col;
	bool quoted;
	char *text;         /* N_SCALAR */
	struct node **kids; /* N_MAP: key, value, ...; N_SEQ: items */
	size_t n, cap;
};

struct ctx {
	const char *file;
	struct vd_diags *diags;
	size_t ndiags;
	bool oom;
	struct vd_load_profile *p;
	bool artillery;
	char *base; /* the target's path, prefixed to request paths */
	size_t nodes;
};

static void
node_free(struct node *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->n; i++)
		node_free(n->kids[i]);
	free(n->kids);
	free(n->text);
	free(n);
}

VD_DEFINE_CLEANUP(node_freep, struct node *, node_free)

static void
diag(struct ctx *c, int line, int col, const char *fmt, ...) VD_PRINTF(4, 5);

static void
diag(struct ctx *c, int line, int col, const char *fmt, ...)
{
	struct vd_diags *d = c->diags;
	char *msg;
	va_list ap;

	if (c->ndiags >= MAX_DIAGS)
		return;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	if (msg && d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 16;
		struct vd_diag *items = reallocarray(d->items, cap, sizeof(*items));

		if (items) {
			d->items = items;
			d->cap = cap;
		}
	}
	if (!msg || d->n == d->cap || !(d->items[d->n].file = strdup(c->file))) {
		free(msg);
		c->oom = true;
		return;
	}
	d->items[d->n].line = line;
	d->items[d->n].col = col;
	d->items[d->n].msg = msg;
	d->items[d->n].file_index = 0;
	d->items[d->n].seq = d->n;
	d->n++;
	c->ndiags++;
}

static int
diag_cmp(const void *a, const void *b)
{
	const struct vd_diag *x = a, *y = b;

	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	if (x->col != y->col)
		return x->col < y->col ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

#define DIAG(c, node, ...) diag((c), (node)->line, (node)->col, __VA_ARGS__)

static struct node *
node_new(struct ctx *c, enum kind kind, yaml_mark_t mark)
{
	struct node *n;

	if (++c->nodes > MAX_NODES) {
		diag(c, (int)mark.line + 1, (int)mark.column + 1,
		     "more than %d YAML nodes; load profiles are limited to that", MAX_NODES);
		return NULL;
	}
	n = calloc(1, sizeof(*n));
	if (!n) {
		c->oom = true;
		return NULL;
	}
	n->kind = kind;
	n->line = (int)mark.line + 1;
	n->col = (int)mark.column + 1;
	return n;
}

static int
node_add(struct ctx *c, struct node *parent, struct node *kid)
{
	if (parent->n == parent->cap) {
		size_t cap = parent->cap ? parent->cap * 2 : 8;
		struct node **kids = reallocarray(parent->kids, cap, sizeof(*kids));

		if (!kids) {
			node_free(kid);
			c->oom = true;
			return -1;
		}
		parent->kids = kids;
		parent->cap = cap;
	}
	parent->kids[parent->n++] = kid;
	return 0;
}

/* Anchors, aliases and tags: load profiles have none. */
static bool
refused(struct ctx *c, const yaml_event_t *ev)
{
	const yaml_char_t *anchor = NULL, *tag = NULL;

	if (ev->type == YAML_ALIAS_EVENT)
		anchor = ev->data.alias.anchor;
	else if (ev->type == YAML_SCALAR_EVENT)
		anchor = ev->data.scalar.anchor, tag = ev->data.scalar.tag;
	else if (ev->type == YAML_MAPPING_START_EVENT)
		anchor = ev->data.mapping_start.anchor, tag = ev->data.mapping_start.tag;
	else if (ev->type == YAML_SEQUENCE_START_EVENT)
		anchor = ev->data.sequence_start.anchor, tag = ev->data.sequence_start.tag;
	if (!anchor && !tag)
		return false;
	diag(c, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1,
	     "YAML %s are not supported in load profiles",
	     tag ? "tags" : ev->type == YAML_ALIAS_EVENT ? "aliases" : "anchors");
	return true;
}

/* Read the YAML text into one tree; NULL (with diagnostics) on failure. */
static struct node *
read_tree(struct ctx *c, const char *buf, size_t len)
{
	struct node *stack[MAX_DEPTH], *root = NULL, *n;
	int depth = 0, docs = 0;
	yaml_parser_t yp;
	yaml_event_t ev;
	bool done = false, failed = false;

	if (!yaml_parser_initialize(&yp)) {
		c->oom = true;
		return NULL;
	}
	yaml_parser_set_input_string(&yp, (const unsigned char *)buf, len);
	while (!done && !failed) {
		if (!yaml_parser_parse(&yp, &ev)) {
			diag(c, (int)yp.problem_mark.line + 1, (int)yp.problem_mark.column + 1,
			     "YAML syntax error: %s", yp.problem ? yp.problem : "invalid YAML");
			failed = true;
			break;
		}
		n = NULL;
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (++docs == 2) {
				diag(c, (int)ev.start_mark.line + 1, 1,
				     "a load profile is one YAML document");
				failed = true;
			}
			break;
		case YAML_ALIAS_EVENT:
			refused(c, &ev);
			failed = true;
			break;
		case YAML_SCALAR_EVENT:
		case YAML_MAPPING_START_EVENT:
		case YAML_SEQUENCE_START_EVENT:
			if (refused(c, &ev) || depth == MAX_DEPTH) {
				if (depth == MAX_DEPTH)
					diag(c, (int)ev.start_mark.line + 1,
					     (int)ev.start_mark.column + 1, "nesting too deep");
				failed = true;
				break;
			}
			n = node_new(c, ev.type == YAML_SCALAR_EVENT ? N_SCALAR :
					ev.type == YAML_MAPPING_START_EVENT ? N_MAP : N_SEQ,
				     ev.start_mark);
			if (!n) {
				failed = true;
				break;
			}
			if (ev.type == YAML_SCALAR_EVENT) {
				n->quoted = ev.data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
				n->text = strndup((const char *)ev.data.scalar.value,
						  ev.data.scalar.length);
				if (!n->text)
					c->oom = failed = true;
			}
			if (depth == 0) {
				node_free(root);
				root = n;
			} else if (node_add(c, stack[depth - 1], n) < 0) {
				failed = true;
				break;
			}
			if (n->kind != N_SCALAR)
				stack[depth++] = n;
			break;
		case YAML_MAPPING_END_EVENT:
		case YAML_SEQUENCE_END_EVENT:
			depth--;
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&yp);
	if (failed) {
		node_free(root);
		return NULL;
	}
	return root;
}

/* ========================================================== value helpers */

static bool
is_null(const struct node *n)
{
	return n->kind == N_SCALAR && !n->quoted &&
	       (!*n->text || !strcmp(n->text, "~") || !strcmp(n->text, "null"));
}

static const struct node *
map_get(const struct node *m, const char *key)
{
	if (!m || m->kind != N_MAP)
		return NULL;
	for (size_t i = 0; i + 1 < m->n; i += 2)
		if (m->kids[i]->kind == N_SCALAR && !strcmp(m->kids[i]->text, key))
			return m->kids[i + 1];
	return NULL;
}

static const char *
kind_name(const struct node *n)
{
	return n->kind == N_MAP ? "a mapping" : n->kind == N_SEQ ? "a list" :
	       is_null(n) ? "empty" : "a value";
}

static bool
want(struct ctx *c, const struct node *n, enum kind k, const char *path)
{
	static const char *const names[] = { "a value", "a mapping", "a list" };

	if (n->kind == k && !(k == N_SCALAR && is_null(n)))
		return true;
	DIAG(c, n, "'%s' must be %s, not %s", path, names[k], kind_name(n));
	return false;
}

/* Report the keys of map M that are not in KNOWN (NULL-terminated). */
static void
check_keys(struct ctx *c, const struct node *m, const char *path, const char *const *known)
{
	char list[256] = "";
	size_t len = 0;

	for (size_t k = 0; known[k]; k++)
		len += (size_t)snprintf(list + len, len < sizeof(list) ? sizeof(list) - len : 0,
					"%s%s", k ? ", " : "", known[k]);
	for (size_t i = 0; i + 1 < m->n; i += 2) {
		const struct node *key = m->kids[i];
		size_t k;

		for (k = 0; known[k] && strcmp(known[k], key->text); k++)
			;
		if (known[k])
			continue;
		if (c->artillery)
			DIAG(c, key, "'%s%s%s' is not supported by vdctl load (here it reads: %s)",
			     path, *path ? "." : "", key->text, list);
		else
			DIAG(c, key, "unknown key '%s%s%s' (expected %s)", path, *path ? "." : "",
			     key->text, list);
	}
}

/* A number in [min, max]; plain, or a quoted one in Artillery scripts. */
static int
get_number(struct ctx *c, const struct node *n, const char *path, double min, double max,
	   double *out)
{
	char *end;
	double x;

	if (!want(c, n, N_SCALAR, path))
		return -1;
	errno = 0;
	x = strtod(n->text, &end);
	if (end == n->text || *end || errno || !isfinite(x)) {
		DIAG(c, n, "invalid value '%s' for '%s': expected a number", n->text, path);
		return -1;
	}
	if (x < min || x > max) {
		DIAG(c, n, "invalid value '%s' for '%s': must be from %.15g to %.15g", n->text, path,
		     min, max);
		return -1;
	}
	*out = x;
	return 0;
}

static int
get_int(struct ctx *c, const struct node *n, const char *path, int min, int max, int *out)
{
	double x;

	if (get_number(c, n, path, min, max, &x) < 0)
		return -1;
	if (x != floor(x)) {
		DIAG(c, n, "invalid value '%s' for '%s': expected a whole number", n->text, path);
		return -1;
	}
	*out = (int)x;
	return 0;
}

/* A duration: a number of seconds (Artillery's way) or "500ms", "1m30s". */
static int
get_secs(struct ctx *c, const struct node *n, const char *path, int64_t min_ms, int64_t *ms)
{
	struct vd_error e = VD_ERROR_INIT;
	char *end;
	double x;

	if (!want(c, n, N_SCALAR, path))
		return -1;
	x = strtod(n->text, &end);
	if (end != n->text && !*end && isfinite(x) && x >= 0 && x <= 86400 * 7) {
		*ms = (int64_t)llround(x * 1000);
	} else if (vd_parse_duration_ms(n->text, ms, &e) < 0) {
		DIAG(c, n, "invalid value '%s' for '%s': expected seconds or a duration "
		     "like 500ms, 10s, 1m", n->text, path);
		return -1;
	}
	if (*ms < min_ms) {
		DIAG(c, n, "invalid value '%s' for '%s': must be at least %lldms", n->text, path,
		     (long long)min_ms);
		return -1;
	}
	return 0;
}

static char *
xstrdup(struct ctx *c, const char *s)
{
	char *d = strdup(s);

	if (!d)
		c->oom = true;
	return d;
}

static bool
has_template(struct ctx *c, const struct node *n, const char *path)
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

static void
set_target(struct ctx *c, const struct node *n, const char *path)
{
	struct vd_load_profile *p = c->p;
	const char *s, *h, *end;
	char *slash;
	struct in6_addr a6;
	long port = 80;

	if (!want(c, n, N_SCALAR, path) || has_template(c, n, path))
		return;
	s = n->text;
	if (!strncmp(s, "https://", 8)) {
		DIAG(c, n, "'%s': https targets are not supported by vdctl load", path);
		return;
	}
	if (strncmp(s, "http://", 7)) {
		DIAG(c, n, "invalid value '%s' for '%s': expected http://HOST[:PORT][/PATH]", s,
		     path);
		return;
	}
	h = s + 7;
	if (*h == '[') {
		end = strchr(h, ']');
		if (!end)
			goto bad;
		p->host = strndup(h + 1, (size_t)(end - h - 1));
		end++;
	} else {
		end = h + strcspn(h, ":/");
		p->host = strndup(h, (size_t)(end - h));
	}
	if (!p->host) {
		c->oom = true;
		return;
	}
	if (!*p->host || (strchr(p->host, ':') && inet_pton(AF_INET6, p->host, &a6) != 1))
		goto bad;
	if (*end == ':') {
		port = strtol(end + 1, &slash, 10);
		if (slash == end + 1 || port < 1 || port > 65535 || (*slash && *slash != '/'))
			goto bad;
		end = slash;
	}
	p->port = (int)port;
	if (*end && *end != '/')
		goto bad;
	/* the base path, without its trailing '/' */
	c->base = strndup(end, strlen(end) - (strlen(end) && end[strlen(end) - 1] == '/'));
	p->target = xstrdup(c, s);
	if (!c->base)
		c->oom = true;
	return;
bad:
	DIAG(c, n, "invalid value '%s' for '%s': expected http://HOST[:PORT][/PATH], "
	     "e.g. http://127.0.0.1:8080", s, path);
}

/* ============================================================== requests */

static json_t *
to_json(const struct node *n)
{
	json_t *j;
	char *end;

	if (n->kind == N_MAP) {
		j = json_object();
		for (size_t i = 0; j && i + 1 < n->n; i += 2)
			if (json_object_set_new(j, n->kids[i]->text, to_json(n->kids[i + 1])) < 0)
				return json_decref(j), NULL;
		return j;
	}
	if (n->kind == N_SEQ) {
		j = json_array();
		for (size_t i = 0; j && i < n->n; i++)
			if (json_array_append_new(j, to_json(n->kids[i])) < 0)
				return json_decref(j), NULL;
		return j;
	}
	if (n->quoted)
		return json_string(n->text);
	if (is_null(n))
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

static bool
templated_json(struct ctx *c, const struct node *n, const char *path)
{
	bool t = false;

	if (n->kind == N_SCALAR)
		return has_template(c, n, path);
	for (size_t i = 0; i < n->n; i++)
		t |= templated_json(c, n->kids[i], path);
	return t;
}

static bool
header_has(const struct node *headers, const char *name)
{
	for (size_t i = 0; headers && i + 1 < headers->n; i += 2)
		if (!strcasecmp(headers->kids[i]->text, name))
			return true;
	return false;
}

/* Add one request (method, url, json or body, headers) made into bytes; its
 * index, or -1. R is the request's mapping; PATH names it. */
static int
add_request(struct ctx *c, const char *method, const struct node *r, const char *path)
{
	struct vd_load_profile *p = c->p;
	const struct node *url, *json, *body, *headers;
	struct vd_strbuf b = VD_STRBUF_INIT;
	_cleanup_free_ char *text = NULL;
	const char *target, *url_key = c->artillery ? "url" : "path";
	char where[160], hostport[300];
	struct vd_load_request *req;
	size_t n = 0;
	bool ok = true;

	snprintf(where, sizeof(where), "%s.%s", path, url_key);
	url = map_get(r, url_key);
	json = map_get(r, "json");
	body = map_get(r, "body");
	headers = map_get(r, "headers");
	if (!url) {
		DIAG(c, r, "'%s' needs '%s'", path, url_key);
		return -1;
	}
	if (!want(c, url, N_SCALAR, where) || has_template(c, url, where))
		return -1;
	target = url->text;
	if (p->target && !strncmp(target, p->target, strlen(p->target)) &&
	    (target[strlen(p->target)] == '/' || !target[strlen(p->target)]))
		target += strlen(p->target); /* the target's own URL, written whole */
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
	if (json && !templated_json(c, json, where)) {
		json_t *j = to_json(json);

		text = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
		json_decref(j);
		if (!text)
			c->oom = true;
	}
	snprintf(where, sizeof(where), "%s.body", path);
	if (body && want(c, body, N_SCALAR, where) && !has_template(c, body, where))
		text = xstrdup(c, body->text);
	snprintf(where, sizeof(where), "%s.headers", path);
	if (headers && !want(c, headers, N_MAP, where))
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
		const struct node *k = headers->kids[i], *v = headers->kids[i + 1];

		if (v->kind != N_SCALAR || strpbrk(k->text, " :\r\n") ||
		    strpbrk(v->text, "\r\n") || has_template(c, v, where)) {
			DIAG(c, v, "invalid header '%s' in '%s'", k->text, where);
			ok = false;
			continue;
		}
		vd_strbuf_printf(&b, "%s: %s\r\n", k->text, v->text);
	}
	vd_strbuf_puts(&b, "\r\n");
	if (text)
		vd_strbuf_puts(&b, text);
	if (!ok || c->ndiags || vd_strbuf_failed(&b)) {
		c->oom |= vd_strbuf_failed(&b);
		vd_strbuf_free(&b);
		return -1;
	}
	req = reallocarray(p->requests, p->nrequests + 1, sizeof(*req));
	if (!req) {
		vd_strbuf_free(&b);
		c->oom = true;
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
		c->oom = true;
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
		c->oom = true;
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
		c->oom = true;
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
read_phases(struct ctx *c, const struct node *seq, const char *path)
{
	const struct phase_keys *k = c->artillery ? &artillery_phase : &vdctl_phase;
	const char *const known[] = { k->duration, k->rate, k->ramp, k->count, k->pause,
				      k->max, k->name, NULL };
	struct vd_load_profile *p = c->p;

	if (!want(c, seq, N_SEQ, path))
		return;
	if (!seq->n)
		DIAG(c, seq, "'%s' is empty: give at least one phase", path);
	p->phases = calloc(seq->n ? seq->n : 1, sizeof(*p->phases));
	if (!p->phases) {
		c->oom = true;
		return;
	}
	for (size_t i = 0; i < seq->n; i++) {
		const struct node *m = seq->kids[i], *v;
		struct vd_load_phase *ph = &p->phases[p->nphases++];
		char at[96], where[160];
		double count = 0;

		snprintf(at, sizeof(at), "%s[%zu]", path, i);
		if (!want(c, m, N_MAP, at))
			continue;
		check_keys(c, m, at, known);
#define KEY(key) (snprintf(where, sizeof(where), "%s.%s", at, (key)), \
		  v = map_get(m, (key)))
		if (KEY(k->name) && want(c, v, N_SCALAR, where))
			ph->name = xstrdup(c, v->text);
		if (KEY(k->pause)) {
			get_secs(c, v, where, 1, &ph->duration_ms);
			if (map_get(m, k->rate) || map_get(m, k->count) || map_get(m, k->duration))
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
			if (!map_get(m, k->rate))
				ph->rate = 0;
		}
		if (KEY(k->count) && get_number(c, v, where, 1, 1e9, &count) == 0 &&
		    ph->duration_ms > 0)
			ph->rate = ph->ramp_to = count * 1000.0 / (double)ph->duration_ms;
		if (map_get(m, k->count) && (map_get(m, k->rate) || map_get(m, k->ramp)))
			DIAG(c, m, "'%s' has '%s' and '%s': give one", at, k->count, k->rate);
		if (!map_get(m, k->count) && !map_get(m, k->rate) && !map_get(m, k->ramp))
			DIAG(c, m, "'%s' needs '%s', '%s' or '%s'", at, k->rate, k->count, k->pause);
		if (KEY(k->max))
			get_int(c, v, where, 1, 10000000, &ph->max_vusers);
#undef KEY
	}
}

/* ============================================================ Artillery */

static const char *const methods[] = { "get", "post", "put", "delete", NULL };

static void
read_flow(struct ctx *c, struct vd_load_scenario *s, const struct node *flow, const char *path)
{
	static const char *const steps[] = { "get", "post", "put", "delete", "think", NULL };
	static const char *const req_keys[] = { "url", "json", "body", "headers", NULL };

	if (!want(c, flow, N_SEQ, path))
		return;
	if (!flow->n)
		DIAG(c, flow, "'%s' is empty", path);
	for (size_t i = 0; i < flow->n; i++) {
		const struct node *m = flow->kids[i], *v;
		char at[96], where[160];
		int64_t ms;
		size_t k;

		snprintf(at, sizeof(at), "%s[%zu]", path, i);
		if (!want(c, m, N_MAP, at))
			continue;
		check_keys(c, m, at, steps);
		if (m->n != 2) {
			if (m->n > 2)
				DIAG(c, m, "'%s' must hold one action (get, post, put, delete or "
				     "think)", at);
			continue;
		}
		v = m->kids[1];
		snprintf(where, sizeof(where), "%s.%s", at, m->kids[0]->text);
		if (!strcmp(m->kids[0]->text, "think")) {
			if (get_secs(c, v, where, 0, &ms) == 0)
				add_step(c, s, -1, ms);
			continue;
		}
		for (k = 0; methods[k] && strcmp(methods[k], m->kids[0]->text); k++)
			;
		if (!methods[k] || !want(c, v, N_MAP, where))
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
read_artillery(struct ctx *c, const struct node *root)
{
	static const char *const top[] = { "config", "scenarios", NULL };
	static const char *const config_keys[] = { "target", "phases", "http", NULL };
	static const char *const http_keys[] = { "timeout", NULL };
	static const char *const scenario_keys[] = { "name", "weight", "flow", NULL };
	const struct node *config = map_get(root, "config"), *v, *scenarios;
	struct vd_load_profile *p = c->p;

	check_keys(c, root, "", top);
	p->model = VD_LOAD_OPEN;
	if (!config) {
		DIAG(c, root, "an Artillery script needs 'config'");
		return;
	}
	if (!want(c, config, N_MAP, "config"))
		return;
	check_keys(c, config, "config", config_keys);
	if ((v = map_get(config, "target")))
		set_target(c, v, "config.target");
	else
		DIAG(c, config, "'config' needs 'target'");
	if ((v = map_get(config, "phases")))
		read_phases(c, v, "config.phases");
	else
		DIAG(c, config, "'config' needs 'phases'");
	if ((v = map_get(config, "http")) && want(c, v, N_MAP, "config.http")) {
		check_keys(c, v, "config.http", http_keys);
		if ((v = map_get(v, "timeout")))
			get_secs(c, v, "config.http.timeout", 1, &p->timeout_ms);
	}
	scenarios = map_get(root, "scenarios");
	if (!scenarios) {
		DIAG(c, root, "an Artillery script needs 'scenarios'");
		return;
	}
	if (!want(c, scenarios, N_SEQ, "scenarios"))
		return;
	for (size_t i = 0; i < scenarios->n; i++) {
		const struct node *m = scenarios->kids[i];
		struct vd_load_scenario *s;
		char at[64], name[32], where[96];
		int weight = 1;

		snprintf(at, sizeof(at), "scenarios[%zu]", i);
		if (!want(c, m, N_MAP, at))
			continue;
		check_keys(c, m, at, scenario_keys);
		snprintf(name, sizeof(name), "%zu", i);
		snprintf(where, sizeof(where), "%s.weight", at);
		if ((v = map_get(m, "weight")))
			get_int(c, v, where, 1, 1000000, &weight);
		v = map_get(m, "name");
		if (!(s = add_scenario(c, v && v->kind == N_SCALAR ? v->text : name,
				       (unsigned)weight)))
			return;
		if ((v = map_get(m, "flow")))
			read_flow(c, s, v, strcat(at, ".flow"));
		else
			DIAG(c, m, "'%s' needs 'flow'", at);
	}
}

/* ========================================================= vdctl's format */

static void
read_vdctl(struct ctx *c, const struct node *root)
{
	static const char *const top[] = { "target", "model", "users", "spawn_rate", "wait_time",
		"duration", "requests", "phases", "arrivals", "keep_alive_pool", "timeout", NULL };
	static const char *const req_keys[] = { "name", "method", "path", "weight", "body",
						"json", "headers", NULL };
	static const char *const wait_keys[] = { "min", "max", NULL };
	struct vd_load_profile *p = c->p;
	const struct node *v, *reqs;

	check_keys(c, root, "", top);
	if ((v = map_get(root, "target")))
		set_target(c, v, "target");
	else
		DIAG(c, root, "a load profile needs 'target', e.g. http://127.0.0.1:8080");
	p->model = map_get(root, "phases") ? VD_LOAD_OPEN : VD_LOAD_CLOSED;
	if ((v = map_get(root, "model")) && want(c, v, N_SCALAR, "model")) {
		if (!strcmp(v->text, "open") || !strcmp(v->text, "closed"))
			p->model = !strcmp(v->text, "open") ? VD_LOAD_OPEN : VD_LOAD_CLOSED;
		else
			DIAG(c, v, "invalid value '%s' for 'model': expected open or closed",
			     v->text);
	}
	if ((v = map_get(root, "arrivals")) && want(c, v, N_SCALAR, "arrivals")) {
		if (!strcmp(v->text, "poisson") || !strcmp(v->text, "constant"))
			p->arrivals = !strcmp(v->text, "poisson") ? VD_LOAD_POISSON :
								     VD_LOAD_CONSTANT;
		else
			DIAG(c, v, "invalid value '%s' for 'arrivals': expected constant or "
			     "poisson", v->text);
	}
	if ((v = map_get(root, "keep_alive_pool")))
		get_int(c, v, "keep_alive_pool", 0, 1000000, &p->keep_alive_pool);
	if ((v = map_get(root, "timeout")))
		get_secs(c, v, "timeout", 1, &p->timeout_ms);
	if (p->model == VD_LOAD_CLOSED) {
		static const char *const open_only[] = { "phases", "arrivals" };

		for (size_t i = 0; i < ARRAY_SIZE(open_only); i++)
			if ((v = map_get(root, open_only[i])))
				DIAG(c, v, "'%s' is for model: open", open_only[i]);
		if ((v = map_get(root, "users")))
			get_int(c, v, "users", 1, 1000000, &p->users);
		else
			DIAG(c, root, "model: closed needs 'users'");
		if ((v = map_get(root, "duration")))
			get_secs(c, v, "duration", 1, &p->duration_ms);
		else
			DIAG(c, root, "model: closed needs 'duration'");
		p->spawn_rate = p->users;
		if ((v = map_get(root, "spawn_rate")))
			get_number(c, v, "spawn_rate", 0.001, 1e6, &p->spawn_rate);
		if ((v = map_get(root, "wait_time")) && v->kind == N_MAP) {
			check_keys(c, v, "wait_time", wait_keys);
			if (map_get(v, "min"))
				get_secs(c, map_get(v, "min"), "wait_time.min", 0, &p->wait_min_ms);
			p->wait_max_ms = p->wait_min_ms;
			if (map_get(v, "max"))
				get_secs(c, map_get(v, "max"), "wait_time.max", 0, &p->wait_max_ms);
			if (p->wait_max_ms < p->wait_min_ms)
				DIAG(c, v, "'wait_time.max' is below 'wait_time.min'");
		} else if (v && get_secs(c, v, "wait_time", 0, &p->wait_min_ms) == 0) {
			p->wait_max_ms = p->wait_min_ms;
		}
	} else {
		static const char *const closed_only[] = { "users", "spawn_rate", "wait_time",
							   "duration" };

		for (size_t i = 0; i < ARRAY_SIZE(closed_only); i++)
			if ((v = map_get(root, closed_only[i])))
				DIAG(c, v, "'%s' is for model: closed", closed_only[i]);
		if ((v = map_get(root, "phases")))
			read_phases(c, v, "phases");
		else
			DIAG(c, root, "model: open needs 'phases'");
	}
	reqs = map_get(root, "requests");
	if (!reqs) {
		DIAG(c, root, "a load profile needs 'requests'");
		return;
	}
	if (!want(c, reqs, N_SEQ, "requests"))
		return;
	if (!reqs->n)
		DIAG(c, reqs, "'requests' is empty");
	for (size_t i = 0; i < reqs->n; i++) {
		const struct node *m = reqs->kids[i];
		struct vd_load_scenario *s;
		char at[64], where[96], method[8] = "GET";
		int weight = 1, r;

		snprintf(at, sizeof(at), "requests[%zu]", i);
		if (!want(c, m, N_MAP, at))
			continue;
		check_keys(c, m, at, req_keys);
		snprintf(where, sizeof(where), "%s.weight", at);
		if ((v = map_get(m, "weight")))
			get_int(c, v, where, 1, 1000000, &weight);
		snprintf(where, sizeof(where), "%s.method", at);
		if ((v = map_get(m, "method")) && want(c, v, N_SCALAR, where)) {
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
		v = map_get(m, "name");
		if (r >= 0 && (s = add_scenario(c, v && v->kind == N_SCALAR ? v->text :
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

int
vd_load_profile_parse(const char *name, const char *buf, size_t len,
		      struct vd_load_profile **out, struct vd_diags *diags, struct vd_error *err)
{
	struct ctx c = { .file = name, .diags = diags };
	_cleanup_(node_freep) struct node *root = NULL;

	*out = NULL;
	c.p = calloc(1, sizeof(*c.p));
	if (!c.p)
		return vd_error_errno(err, ENOMEM, "cannot read '%s'", name);
	c.p->timeout_ms = 10000;
	c.p->file = xstrdup(&c, name);
	if (len > VD_LOAD_MAX_BYTES)
		diag(&c, 1, 1, "file is over %d MiB; load profiles are limited to that",
		     VD_LOAD_MAX_BYTES >> 20);
	else if (!(root = read_tree(&c, buf, len)) && !c.ndiags)
		diag(&c, 1, 1, "empty load profile");
	else if (root && root->kind != N_MAP)
		DIAG(&c, root, "a load profile is a mapping of keys ('target', 'requests', ...) "
		     "or an Artillery script ('config', 'scenarios')");
	else if (root) {
		c.artillery = map_get(root, "config") || map_get(root, "scenarios");
		c.p->format = c.artillery ? VD_LOAD_ARTILLERY : VD_LOAD_VDCTL;
		if (c.artillery)
			read_artillery(&c, root);
		else
			read_vdctl(&c, root);
	}
	free(c.base);
	if (c.oom) {
		vd_load_profile_free(c.p);
		return vd_error_errno(err, ENOMEM, "cannot read '%s'", name);
	}
	if (c.ndiags) {
		qsort(diags->items + diags->n - c.ndiags, c.ndiags, sizeof(*diags->items), diag_cmp);
		vd_load_profile_free(c.p);
		return vd_error_set(err, VD_EXIT_INPUT, "%zu error%s in '%s'", c.ndiags,
				    c.ndiags == 1 ? "" : "s", name);
	}
	*out = c.p;
	return 0;
}

int
vd_load_profile_read(const char *path, struct vd_load_profile **out, struct vd_diags *diags,
		     struct vd_error *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	ssize_t n;

	*out = NULL;
	if (fd < 0)
		return vd_error_set(err, VD_EXIT_INPUT, "cannot read '%s': %s", path,
				    strerror(errno));
	buf = malloc(VD_LOAD_MAX_BYTES + 1);
	if (!buf)
		return vd_error_errno(err, ENOMEM, "cannot read '%s'", path);
	while (len <= VD_LOAD_MAX_BYTES &&
	       (n = read(fd, buf + len, VD_LOAD_MAX_BYTES + 1 - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return vd_error_set(err, VD_EXIT_INPUT, "cannot read '%s': %s", path,
					    strerror(errno));
		len += (size_t)n;
	}
	return vd_load_profile_parse(path, buf, len, out, diags, err);
}
