/*
 * Manifests: YAML files in, validated services out, and every mistake in
 * them as "FILE:LINE:COL: message" (format v1, man/vdctl-manifest.5).
 *
 * Three stages, one section each below:
 *  1. the reader turns libyaml's events into a small tree of nodes under
 *     hard limits (file size, depth, value length, node count), refusing
 *     anchors, aliases and tags, so that hostile input costs little;
 *  2. the checker walks each document with a table of keys per section
 *     (name, field, handler, range), then applies the rules that tie fields
 *     together, then fills in the defaults that depend on other fields;
 *  3. the loader checks the set (unique names, distinct listen addresses),
 *     sorts the diagnostics into file order and decides.
 * Nothing stops at the first mistake: the reader stops only at a YAML error
 * or a limit, the checker never.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "vd/cleanup.h"
#include "vd/driver.h"
#include "vd/manifest.h"
#include "vd/units.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* set_enum() stores enums through an int pointer */
_Static_assert(sizeof(enum vd_backend) == sizeof(int) && sizeof(enum vd_accel) == sizeof(int) &&
		       sizeof(enum vd_lb_policy) == sizeof(int),
	       "enums are ints");

/* =================================================================== names */

static const char *const backend_names[] = { "docker", "libvirt", NULL };
static const char *const accel_names[] = { "auto", "kvm", "tcg", NULL };
static const char *const policy_names[] = { "round-robin", "least-outstanding", "p2c", NULL };
static const char *const health_names[] = { "tcp", "http", NULL };

static const char *
enum_name(const char *const *names, size_t n, int v)
{
	return v >= 0 && (size_t)v < n - 1 ? names[v] : "unknown";
}

const char *
vd_backend_name(enum vd_backend b)
{
	return enum_name(backend_names, ARRAY_SIZE(backend_names), (int)b);
}

const char *
vd_accel_name(enum vd_accel a)
{
	return enum_name(accel_names, ARRAY_SIZE(accel_names), (int)a);
}

const char *
vd_lb_policy_name(enum vd_lb_policy p)
{
	return enum_name(policy_names, ARRAY_SIZE(policy_names), (int)p);
}

const char *
vd_health_kind_name(enum vd_health_kind k)
{
	return enum_name(health_names, ARRAY_SIZE(health_names), (int)k);
}

/* ============================================================= diagnostics */

/* Where each service of the set names itself and listens, for the checks
 * across documents and files; parallel to manifest->services. */
struct placed {
	size_t file_index;
	int name_line, name_col;     /* 0 when the name is invalid */
	int listen_line, listen_col; /* 0 without a valid balancer listen */
};

struct loader {
	struct vd_manifest *m;
	size_t cap;
	struct placed *placed;
	struct vd_diags *diags;
	size_t diags_before; /* diags->n when the load began */
	const char *file;    /* the file being read, as named in diagnostics */
	size_t file_index;
	size_t file_diags;   /* diagnostics for the current file */
	size_t seq;
	int read_line, read_col; /* how far the reader got, for the last word */
	bool stopped;        /* too many diagnostics in the current file */
	bool oom;
};

static int
diags_push(struct loader *l, int line, int col, char *msg)
{
	struct vd_diags *d = l->diags;
	struct vd_diag *items = d->items;

	if (!msg)
		goto oom;
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 16;

		items = reallocarray(d->items, cap, sizeof(*items));
		if (!items)
			goto oom;
		d->items = items;
		d->cap = cap;
	}
	items[d->n] = (struct vd_diag){ strdup(l->file), line, col, msg, l->file_index, l->seq++ };
	if (!items[d->n].file) {
		free(msg);
		l->oom = true;
		return -1;
	}
	d->n++;
	l->file_diags++;
	return 0;
oom:
	free(msg);
	l->oom = true;
	return -1;
}

static void
vdiag(struct loader *l, int line, int col, const char *fmt, va_list ap)
{
	char *msg = NULL;

	if (l->stopped)
		return;
	if (l->file_diags == VD_MANIFEST_MAX_DIAGS) {
		/* placed where the reader is, after everything reported so far */
		l->stopped = true;
		if (line < l->read_line || (line == l->read_line && col < l->read_col)) {
			line = l->read_line;
			col = l->read_col;
		}
		if (asprintf(&msg, "too many errors (%d); not checking the rest of the file",
			     VD_MANIFEST_MAX_DIAGS) < 0)
			msg = NULL;
	} else if (vasprintf(&msg, fmt, ap) < 0) {
		msg = NULL;
	}
	diags_push(l, line, col, msg);
}

static void
diag_at(struct loader *l, int line, int col, const char *fmt, ...) VD_PRINTF(4, 5);

static void
diag_at(struct loader *l, int line, int col, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vdiag(l, line, col, fmt, ap);
	va_end(ap);
}

static int
diag_cmp(const void *a, const void *b)
{
	const struct vd_diag *x = a, *y = b;

	if (x->file_index != y->file_index)
		return x->file_index < y->file_index ? -1 : 1;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	if (x->col != y->col)
		return x->col < y->col ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void
vd_diags_print(const struct vd_diags *diags, FILE *f)
{
	for (size_t i = 0; i < diags->n; i++) {
		const struct vd_diag *d = &diags->items[i];

		if (d->line > 0)
			fprintf(f, "%s:%d:%d: %s\n", d->file, d->line, d->col, d->msg);
		else
			fprintf(f, "%s: %s\n", d->file, d->msg);
	}
}

void
vd_diags_clear(struct vd_diags *diags)
{
	for (size_t i = 0; i < diags->n; i++) {
		free(diags->items[i].file);
		free(diags->items[i].msg);
	}
	free(diags->items);
	*diags = (struct vd_diags)VD_DIAGS_INIT;
}

/* ================================================================ 1. reader */

enum node_kind { N_SCALAR, N_MAP, N_SEQ, N_ALIAS };

struct node {
	enum node_kind kind;
	int line, col;
	bool quoted;        /* a scalar in quotes or block style: always a string */
	bool dup;           /* a repeated mapping key: its pair is ignored */
	int first_line;     /* for a repeated key: where the first one is */
	char *text;         /* N_SCALAR */
	struct node **kids; /* N_MAP: key, value, key, value...; N_SEQ: items */
	size_t n, cap;
};

struct reader {
	struct loader *l;
	const char *buf;
	size_t len;
	struct node *stack[VD_MANIFEST_MAX_DEPTH]; /* open mappings and lists */
	int depth;
	struct node *root;
	size_t nnodes;
	int doc_line;
	size_t ndocs; /* documents with content */
	char *refused[16]; /* anchor names already reported, so that */
	size_t nrefused;   /* every alias of one is not reported again */
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

static int
one_based(size_t v)
{
	return v >= INT_MAX ? INT_MAX : (int)v + 1;
}

static void
diag_node(struct loader *l, const struct node *at, const char *fmt, ...) VD_PRINTF(3, 4);

static void
diag_node(struct loader *l, const struct node *at, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vdiag(l, at->line, at->col, fmt, ap);
	va_end(ap);
}

static void
diag_mark(struct reader *r, yaml_mark_t mark, const char *fmt, ...) VD_PRINTF(3, 4);

static void
diag_mark(struct reader *r, yaml_mark_t mark, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vdiag(r->l, one_based(mark.line), one_based(mark.column), fmt, ap);
	va_end(ap);
}

/* A value for a message: at most 40 bytes, control characters as '?'. */
static const char *
show(const char *s, char *buf, size_t size)
{
	size_t max = size - 4 < 40 ? size - 4 : 40, i;

	for (i = 0; s[i] && i < max; i++)
		buf[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
	if (s[i]) {
		while (i > 0 && ((unsigned char)s[i] & 0xc0) == 0x80)
			i--; /* do not cut a UTF-8 character */
		memcpy(buf + i, "...", 4);
	} else {
		buf[i] = '\0';
	}
	return buf;
}

#define SHOW(s) show((s), (char[48]){ 0 }, 48)

/* Line and column (1-based, in characters) of byte OFFSET of the input, for
 * libyaml's reader errors, which only report an offset. */
static void
offset_position(const char *buf, size_t len, size_t offset, int *line, int *col)
{
	int l = 1, c = 1;

	for (size_t i = 0; i < offset && i < len; i++) {
		if (buf[i] == '\n') {
			l++;
			c = 1;
		} else if (((unsigned char)buf[i] & 0xc0) != 0x80) {
			c++;
		}
	}
	*line = l;
	*col = c;
}

/* The byte at 1-based LINE, COL (in characters), or 0. */
static char
char_at(const char *buf, size_t len, int line, int col)
{
	size_t i = 0;

	for (int l = 1; l < line && i < len; i++)
		if (buf[i] == '\n')
			l++;
	for (int c = 1; i < len; i++) {
		if (((unsigned char)buf[i] & 0xc0) == 0x80)
			continue;
		if (c++ == col)
			return buf[i];
	}
	return 0;
}

static void
yaml_failure(struct reader *r, const yaml_parser_t *p)
{
	size_t offset;
	int line, col;

	switch (p->error) {
	case YAML_MEMORY_ERROR:
		r->l->oom = true;
		return;
	case YAML_READER_ERROR:
		offset = p->problem_offset;
		/* point at the start of a broken UTF-8 sequence */
		for (size_t back = 1; back <= 3 && back <= offset && offset < r->len; back++) {
			if (((unsigned char)r->buf[offset - back] & 0xc0) == 0xc0) {
				if (p->problem && strstr(p->problem, "trailing"))
					offset -= back;
				break;
			}
		}
		offset_position(r->buf, r->len, offset, &line, &col);
		if (p->problem_value < 0)
			diag_at(r->l, line, col, "not valid text: %s",
				p->problem ? p->problem : "unreadable input");
		else if (p->problem && strstr(p->problem, "UTF-8"))
			diag_at(r->l, line, col, "not valid UTF-8 text: %s (byte 0x%02X)",
				p->problem, (unsigned)p->problem_value & 0xff);
		else
			diag_at(r->l, line, col, "not valid YAML text: %s (character U+%04X)",
				p->problem ? p->problem : "unreadable input",
				(unsigned)p->problem_value);
		return;
	default:
		line = one_based(p->problem_mark.line);
		col = one_based(p->problem_mark.column);
		if (p->context)
			diag_at(r->l, line, col, "YAML syntax error: %s (%s at line %d, column %d)%s",
				p->problem ? p->problem : "invalid YAML", p->context,
				one_based(p->context_mark.line), one_based(p->context_mark.column),
				char_at(r->buf, r->len, line, col) == '\t'
					? "; tabs cannot indent YAML" : "");
		else
			diag_at(r->l, line, col, "YAML syntax error: %s%s",
				p->problem ? p->problem : "invalid YAML",
				char_at(r->buf, r->len, line, col) == '\t'
					? "; tabs cannot indent YAML" : "");
	}
}

/* Whether anchor NAME was reported already; remembers it if not. */
static bool
refused_before(struct reader *r, const yaml_char_t *name)
{
	for (size_t i = 0; i < r->nrefused; i++)
		if (strcmp(r->refused[i], (const char *)name) == 0)
			return true;
	if (r->nrefused < ARRAY_SIZE(r->refused) &&
	    (r->refused[r->nrefused] = strdup((const char *)name)))
		r->nrefused++;
	return false;
}

/* Anchors and tags change what a value means, or (aliases) how big it is:
 * manifests have neither. */
static void
refuse_props(struct reader *r, yaml_mark_t mark, const yaml_char_t *anchor, const yaml_char_t *tag)
{
	if (anchor && !refused_before(r, anchor))
		diag_mark(r, mark, "YAML anchors (&%s) are not supported in manifests",
			  SHOW((const char *)anchor));
	if (tag) {
		const char *t = (const char *)tag, *core = "tag:yaml.org,2002:";

		diag_mark(r, mark, "YAML tags (%s%s) are not supported in manifests",
			  strncmp(t, core, strlen(core)) == 0 ? "!!" : "",
			  SHOW(strncmp(t, core, strlen(core)) == 0 ? t + strlen(core) : t));
	}
}

static struct node *
node_new(struct reader *r, enum node_kind kind, yaml_mark_t mark)
{
	struct node *n;

	if (r->nnodes == VD_MANIFEST_MAX_NODES) {
		diag_mark(r, mark, "more than %d YAML nodes in one file; manifests are "
			  "limited to that", VD_MANIFEST_MAX_NODES);
		return NULL;
	}
	n = calloc(1, sizeof(*n));
	if (!n) {
		r->l->oom = true;
		return NULL;
	}
	r->nnodes++;
	n->kind = kind;
	n->line = one_based(mark.line);
	n->col = one_based(mark.column);
	return n;
}

/* Hang N under the open collection (or make it the document's root). Takes
 * N, freeing it on failure. */
static int
node_attach(struct reader *r, struct node *n)
{
	struct node *parent;

	if (r->depth == 0) {
		node_free(r->root);
		r->root = n;
		return 0;
	}
	parent = r->stack[r->depth - 1];
	if (parent->n == parent->cap) {
		size_t cap = parent->cap ? parent->cap * 2 : 8;
		struct node **kids = reallocarray(parent->kids, cap, sizeof(*kids));

		if (!kids) {
			node_free(n);
			r->l->oom = true;
			return -1;
		}
		parent->kids = kids;
		parent->cap = cap;
	}
	parent->kids[parent->n++] = n;
	return 0;
}

static int
key_cmp(const void *a, const void *b)
{
	const struct node *x = *(const struct node *const *)a;
	const struct node *y = *(const struct node *const *)b;
	int c = strcmp(x->text, y->text);

	if (c)
		return c;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->col < y->col ? -1 : x->col > y->col;
}

/* Report and mark the repeated keys of a finished mapping (sorting, so a
 * mapping of 50,000 keys costs no more than it should). */
static void
mark_duplicate_keys(struct reader *r, struct node *map)
{
	_cleanup_free_ struct node **keys = NULL;
	size_t n = 0;

	if (map->n < 4)
		return;
	keys = calloc(map->n / 2, sizeof(*keys));
	if (!keys) {
		r->l->oom = true;
		return;
	}
	for (size_t i = 0; i + 1 < map->n; i += 2)
		if (map->kids[i]->kind == N_SCALAR)
			keys[n++] = map->kids[i];
	qsort(keys, n, sizeof(*keys), key_cmp);
	for (size_t i = 1, first = 0; i < n; i++) {
		if (strcmp(keys[i]->text, keys[first]->text) != 0) {
			first = i;
			continue;
		}
		keys[i]->dup = true;
		keys[i]->first_line = keys[first]->line;
	}
	for (size_t i = 0; i + 1 < map->n; i += 2) /* reported in file order */
		if (map->kids[i]->dup)
			diag_node(r->l, map->kids[i], "duplicate key '%s' (first at line %d)",
				  SHOW(map->kids[i]->text), map->kids[i]->first_line);
}

static int
open_collection(struct reader *r, enum node_kind kind, const yaml_event_t *ev,
		const yaml_char_t *anchor, const yaml_char_t *tag)
{
	struct node *n;

	if (r->depth == VD_MANIFEST_MAX_DEPTH) {
		diag_mark(r, ev->start_mark, "nesting deeper than %d levels; manifests are "
			  "limited to that", VD_MANIFEST_MAX_DEPTH);
		return -1;
	}
	refuse_props(r, ev->start_mark, anchor, tag);
	n = node_new(r, kind, ev->start_mark);
	if (!n || node_attach(r, n) < 0)
		return -1;
	r->stack[r->depth++] = n;
	return 0;
}

static int
read_scalar(struct reader *r, const yaml_event_t *ev)
{
	const char *value = (const char *)ev->data.scalar.value;
	size_t len = ev->data.scalar.length;
	struct node *n;

	if (len > VD_MANIFEST_MAX_SCALAR) {
		char size[32];

		diag_mark(r, ev->start_mark, "value of %s is over the limit of %d KiB",
			  vd_format_size((int64_t)len, size, sizeof(size)),
			  VD_MANIFEST_MAX_SCALAR >> 10);
		return -1;
	}
	refuse_props(r, ev->start_mark, ev->data.scalar.anchor, ev->data.scalar.tag);
	n = node_new(r, N_SCALAR, ev->start_mark);
	if (!n)
		return -1;
	n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
	n->text = strndup(value, len);
	if (!n->text) {
		free(n);
		r->l->oom = true;
		return -1;
	}
	if (memchr(value, '\0', len))
		diag_node(r->l, n, "NUL characters are not allowed in values");
	return node_attach(r, n);
}

static void check_document(struct loader *l, const struct node *root, int doc_line);

static bool
is_null(const struct node *n)
{
	static const char *const nulls[] = { "", "~", "null", "Null", "NULL" };

	if (n->kind != N_SCALAR || n->quoted)
		return false;
	for (size_t i = 0; i < ARRAY_SIZE(nulls); i++)
		if (strcmp(n->text, nulls[i]) == 0)
			return true;
	return false;
}

static void
end_document(struct reader *r)
{
	if (r->root && !is_null(r->root)) {
		r->ndocs++;
		check_document(r->l, r->root, r->doc_line);
	}
	node_free(r->root);
	r->root = NULL;
}

/* Handle one event; -1 stops the reader. */
static int
on_event(struct reader *r, const yaml_event_t *ev)
{
	r->l->read_line = one_based(ev->end_mark.line);
	r->l->read_col = one_based(ev->end_mark.column);
	switch (ev->type) {
	case YAML_DOCUMENT_START_EVENT:
		r->doc_line = one_based(ev->start_mark.line);
		return 0;
	case YAML_DOCUMENT_END_EVENT:
		end_document(r);
		return 0;
	case YAML_SCALAR_EVENT:
		return read_scalar(r, ev);
	case YAML_ALIAS_EVENT: {
		struct node *n;

		if (!refused_before(r, ev->data.alias.anchor))
			diag_mark(r, ev->start_mark, "YAML aliases (*%s) are not supported in "
				  "manifests", SHOW((const char *)ev->data.alias.anchor));
		n = node_new(r, N_ALIAS, ev->start_mark);
		return n ? node_attach(r, n) : -1;
	}
	case YAML_SEQUENCE_START_EVENT:
		return open_collection(r, N_SEQ, ev, ev->data.sequence_start.anchor,
				       ev->data.sequence_start.tag);
	case YAML_MAPPING_START_EVENT:
		return open_collection(r, N_MAP, ev, ev->data.mapping_start.anchor,
				       ev->data.mapping_start.tag);
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		if (r->depth > 0) {
			struct node *n = r->stack[--r->depth];

			if (n->kind == N_MAP)
				mark_duplicate_keys(r, n);
		}
		return 0;
	default:
		return 0;
	}
}

/* Parse one file's text; its services are appended to l->m. Returns the
 * number of documents with content. */
static size_t
read_yaml(struct loader *l, const char *buf, size_t len)
{
	struct reader r = { .l = l, .buf = buf, .len = len };
	yaml_parser_t parser;
	yaml_event_t ev;
	bool done = false;

	if (!yaml_parser_initialize(&parser)) {
		l->oom = true;
		return 0;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
	while (!done && !l->stopped && !l->oom) {
		if (!yaml_parser_parse(&parser, &ev)) {
			yaml_failure(&r, &parser);
			break;
		}
		done = ev.type == YAML_STREAM_END_EVENT;
		if (on_event(&r, &ev) < 0)
			done = true;
		yaml_event_delete(&ev);
	}
	node_free(r.root); /* a document cut short */
	for (size_t i = 0; i < r.nrefused; i++)
		free(r.refused[i]);
	yaml_parser_delete(&parser);
	return r.ndocs;
}

/* =============================================================== 2. checker */

/* Every key, so that the rules between fields can ask whether it was given
 * (at[]) and whether its value was good (!bad[]). */
enum field {
	F_SERVICE, F_BACKEND, F_IMAGE, F_VM, F_KERNEL, F_INITRD, F_CMDLINE, F_DISK, F_ACCEL,
	F_COMMAND, F_ENV, F_PORT, F_REPLICAS,
	F_RESOURCES, F_CPUS, F_MEMORY,
	F_HEALTH, F_HTTP, F_TCP, F_INTERVAL, F_TIMEOUT, F_RETRIES, F_START_PERIOD,
	F_BALANCER, F_LISTEN, F_POLICY, F_MAX_INFLIGHT, F_QUEUE_LIMIT, F_QUEUE_TIMEOUT,
	F_AUTOSCALE, F_MIN, F_MAX, F_TARGET_P95, F_TARGET_QUEUE, F_UP_WINDOW, F_DOWN_WINDOW,
	F_COOLDOWN,
	F_UPDATE, F_MAX_SURGE, F_MAX_UNAVAILABLE,
	F_COUNT
};

/* One service document being checked. */
struct draft {
	struct loader *l;
	struct vd_service s;
	const struct node *root;
	const char *name; /* the service's name for messages, or NULL */
	int backend;      /* enum vd_backend, or -1 while unknown */
	bool tcp;         /* health.tcp */
	const struct node *at[F_COUNT]; /* each key's value node, when given */
	bool bad[F_COUNT];              /* the value was refused */
};

struct key;
typedef int (*set_fn)(struct draft *d, const struct key *k, const char *path,
		      const struct node *v);

struct key {
	const char *name;
	enum field field;
	set_fn set;
	size_t off;         /* where the value goes in struct draft */
	int64_t min, max;   /* ranges of integers and durations */
	const void *arg;    /* enum names, or the struct section of a section */
	int only;           /* 0, or 1 + the only backend that has this key */
};

struct section {
	const char *path;   /* "resources"; NULL at the top level */
	const struct key *keys;
	size_t nkeys;
	size_t enabled;     /* offset of a bool set when the section is given, or 0 */
};

#define AT(member) offsetof(struct draft, member)
#define SVC(member) AT(s.member)
#define ONLY(backend) ((backend) + 1)

static void *
field_ptr(struct draft *d, const struct key *k)
{
	return (char *)d + k->off;
}

/* " in service 'web'", or "" while the name is unknown. */
static const char *
in_service(const struct draft *d, char *buf, size_t size)
{
	if (!d->name)
		return "";
	snprintf(buf, size, " in service '%s'", d->name);
	return buf;
}

#define IN_SERVICE(d) in_service((d), (char[64]){ 0 }, 64)

/* What N is, for "'x' must be a mapping, not ...". */
static const char *
what(const struct node *n, char *buf, size_t size)
{
	switch (n->kind) {
	case N_MAP:
		return "a mapping";
	case N_SEQ:
		return "a list";
	case N_ALIAS:
		return "an alias";
	default:
		if (is_null(n))
			return "empty";
		snprintf(buf, size, "'%s'", SHOW(n->text));
		return buf;
	}
}

#define WHAT(n) what((n), (char[64]){ 0 }, 64)

/* Report a refused value; returns -1. */
static int
bad_value(struct draft *d, const char *path, const struct node *v, const char *reason)
{
	diag_node(d->l, v, "invalid value '%s' for '%s': %s", SHOW(v->text), path, reason);
	return -1;
}

/* The text of V when it is a non-empty scalar, or NULL having said that
 * PATH must be EXPECTED. Aliases were reported by the reader. */
static const char *
scalar(struct draft *d, const char *path, const struct node *v, const char *expected)
{
	if (v->kind == N_SCALAR && !is_null(v))
		return v->text;
	if (v->kind != N_ALIAS)
		diag_node(d->l, v, "'%s' must be %s, not %s", path, expected, WHAT(v));
	return NULL;
}

/* Like scalar() for numbers and booleans, which must not be quoted. */
static const char *
plain_scalar(struct draft *d, const char *path, const struct node *v, const char *expected)
{
	const char *s = scalar(d, path, v, expected);

	if (s && v->quoted) {
		diag_node(d->l, v, "invalid value '%s' for '%s': expected %s, not a quoted string",
			  SHOW(s), path, expected);
		return NULL;
	}
	return s;
}

static int
store_string(struct draft *d, const struct key *k, const char *s)
{
	char **dst = field_ptr(d, k);

	free(*dst);
	*dst = strdup(s);
	if (!*dst)
		d->l->oom = true;
	return *dst ? 0 : -1;
}

static bool
has_space_or_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || *s == 0x7f)
			return true;
	return false;
}

static int
set_string(struct draft *d, const struct key *k, const char *path, const struct node *v)
{
	const char *s = scalar(d, path, v, "a string");

	return s ? store_string(d, k, s) : -1;
}

static bool
valid_name(const char *s)
{
	size_t i;

	if (!(s[0] >= 'a' && s[0] <= 'z'))
		return false;
	for (i = 1; s[i]; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return i <= 40;
}

static int
set_name(struct draft *d, const struct key *k, const char *path, const struct node *v)
{
	const char *s = scalar(d, path, v, "a name");

	if (!s)
		return -1;
	if (!valid_name(s))
		return bad_value(d, path, v, "a service name is 1 to 40 lowercase letters, "
				 "digits and '-', starting with a letter");
	return store_string(d, k, s);
}

static int
set_image(struct draft *d, const struct key *k, const char *path, const struct node *v)
{
	const char *s = scalar(d, path, v, "an image reference");

	if (!s)
		return -1;
	if (has_space_or_control(s))
		return bad_value(d, path, v, "an image reference has no spaces");
	return store_string(d, k, s);
}

static int
set_http_path(struct draft *d, const struct key *k, const char *path, const struct node *v)
{
	const char *s = scalar(d, path, v, "a URL path");

	if (!s)
		return -1;
	if (s[0] != '/' || has_space_or_control(s))
		return bad_value(d, path, v, "expected a URL path starting with '/', "
				 "without spaces, e.g. /healthz");
	return store_string(d, k, s);
}

static int
set_int(struct draft *d, const struct key *k, const char *path, const struct node *v)
{
	struct vd_error e = VD_ERROR_INIT;
	const char *s = plain_scalar(d, path, v, "an integer");
	int64_t x;

	if (!s)
		return -1;
	if (vd_parse_int64(s, k->min, k->max, &x, &e) < 0)
		return bad_value(d, path, v, e.msg);
	*(int *)field_ptr(d, k) = (int)x;
	return 0;
}

static int
set_bool(struct draft *d, const struct key *k, const char *path, const struct node *v)
{
	static const char *const yes[] = { "true", "True", "TRUE" };
	static const char *const no[] = { "false", "False", "FALSE" };
	const char *s = plain_scalar(d, path, v, "true or false");

	if (!s)
		return -1;
	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (strcmp(s, yes[i]) == 0 || strcmp(s, no[i]) == 0) {
			*(bool *)field_ptr(d, k) = strcmp(s, yes[i]) == 0;
			return 0;
		}
	}
	return bad_value(d, path, v, "expected true or false");
}

/* A YAML number (decimal, optional fraction), > 0 and <= k->max. */
static int
set_number(struct draft *d, const struct key *k, const char *path, const struct node *v)
{
	const char *s = plain_scalar(d, path, v, "a number");
	char *end;
	double x;

	if (!s)
		return -1;
	if (strspn(s, "0123456789.+-") != strlen(s) || (x = strtod(s, &end), *end))
		return bad_value(d, path, v, "expected a number like 2 or 0.5");
	if (!(x > 0) || x > (double)k->max) {
		char reason[64];

		snprintf(reason, sizeof(reason), "must be greater than 0 and at most %" PRId64,
			 k->max);
		return bad_value(d, path, v, reason);
	}
	*(double *)field_ptr(d, k) = x;
	return 0;
}

static int
set_cpus(struct draft *d, const struct key *k, const char *path, const struct node *v)
{
	struct vd_error e = VD_ERROR_INIT;
	const char *s = plain_scalar(d, path, v, "a number of CPUs");

	if (!s)
		return -1;
	if (vd_parse_milli_cpus(s, field_ptr(d, k), &e) < 0)
		return bad_value(d, path, v, e.msg);
	return 0;
}

static int
set_size(struct draft *d, const struct key *k, const char *path, const struct node *v)
{
	struct vd_error e = VD_ERROR_INIT;
	const char *s = scalar(d, path, v, "a size");

	if (!s)
		return -1;
	if (vd_parse_size(s, field_ptr(d, k), &e) < 0)
		return bad_value(d, path, v, e.msg);
	return 0;
}

static int
set_duration(struct draft *d, const struct key *k, const char *path, const struct node *v)
{
	struct vd_error e = VD_ERROR_INIT;
	const char *s = scalar(d, path, v, "a duration");
	int64_t ms;

	if (!s)
		return -1;
	if (vd_parse_duration_ms(s, &ms, &e) < 0)
		return bad_value(d, path, v, e.msg);
	if (ms < k->min)
		return bad_value(d, path, v, "must be greater than 0");
	*(int64_t *)field_ptr(d, k) = ms;
	return 0;
}

/* Optimal string alignment distance (Damerau-Levenshtein without
 * re-editing a substring); SIZE_MAX for strings too long to be typos. */
static size_t
edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t dist[33][33];

	if (la > 32 || lb > 32)
		return SIZE_MAX;
	for (size_t i = 0; i <= la; i++)
		dist[i][0] = i;
	for (size_t j = 0; j <= lb; j++)
		dist[0][j] = j;
	for (size_t i = 1; i <= la; i++) {
		for (size_t j = 1; j <= lb; j++) {
			size_t cost = a[i - 1] != b[j - 1];
			size_t best = dist[i - 1][j - 1] + cost;

			if (dist[i - 1][j] + 1 < best)
				best = dist[i - 1][j] + 1;
			if (dist[i][j - 1] + 1 < best)
				best = dist[i][j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    dist[i - 2][j - 2] + 1 < best)
				best = dist[i - 2][j - 2] + 1;
			dist[i][j] = best;
		}
	}
	return dist[la][lb];
}

static bool
close_enough(const char *typed, const char *known, size_t *best)
{
	size_t dist = edit_distance(typed, known);

	if (dist > 2 || dist >= strlen(known) || dist >= strlen(typed) || dist >= *best)
		return false;
	*best = dist;
	return true;
}

/* " (did you mean 'replicas'?)" for a near miss among NAMES, or "". */
static const char *
suggest(const char *typed, const char *const *names, size_t n, char *buf, size_t size)
{
	const char *pick = NULL;
	size_t best = SIZE_MAX;

	for (size_t i = 0; i < n && names[i]; i++)
		if (close_enough(typed, names[i], &best))
			pick = names[i];
	if (!pick)
		return "";
	snprintf(buf, size, " (did you mean '%s'?)", pick);
	return buf;
}

static int
set_enum(struct draft *d, const struct key *k, const char *path, const struct node *v)
{
	const char *const *names = k->arg;
	const char *s = scalar(d, path, v, "a name");
	char list[128] = "", hint[64];
	size_t n;

	if (!s)
		return -1;
	for (n = 0; names[n]; n++) {
		if (strcmp(s, names[n]) == 0) {
			*(int *)field_ptr(d, k) = (int)n;
			return 0;
		}
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
			 n ? ", " : "", names[n]);
	}
	diag_node(d->l, v, "invalid value '%s' for '%s': expected one of %s%s", SHOW(s), path,
		  list, suggest(s, names, n, hint, sizeof(hint)));
	return -1;
}

/* ----------------------------------------------------------------- command */

static void
free_strv(char **v, size_t n)
{
	for (size_t i = 0; i < n && v; i++)
		free(v[i]);
	free(v);
}

/* Split S into words as a POSIX shell would, without any expansion:
 * whitespace separates, '...' is literal, "..." honours \" \\ \$ \`, and a
 * backslash outside quotes escapes the next character. Returns NULL with
 * *why set for malformed input, or NULL with *why NULL when out of memory. */
static char **
split_words(const char *s, size_t *count, const char **why)
{
	_cleanup_free_ char *word = malloc(strlen(s) + 1);
	char **argv = calloc(strlen(s) / 2 + 2, sizeof(*argv));
	const char *p = s;
	size_t n = 0;

	*why = NULL;
	if (!word || !argv)
		goto fail;
	for (;;) {
		size_t w = 0;

		p += strspn(p, " \t\n");
		if (!*p)
			break;
		while (*p && !strchr(" \t\n", *p)) {
			if (*p == '\'') {
				const char *end = strchr(p + 1, '\'');

				if (!end) {
					*why = "unterminated single quote";
					goto fail;
				}
				memcpy(word + w, p + 1, (size_t)(end - p - 1));
				w += (size_t)(end - p - 1);
				p = end + 1;
			} else if (*p == '"') {
				for (p++; *p && *p != '"'; p++) {
					if (*p == '\\' && p[1] && strchr("\"\\$`", p[1]))
						p++;
					word[w++] = *p;
				}
				if (!*p) {
					*why = "unterminated double quote";
					goto fail;
				}
				p++;
			} else if (*p == '\\') {
				if (!p[1]) {
					*why = "backslash at the end";
					goto fail;
				}
				word[w++] = p[1];
				p += 2;
			} else {
				word[w++] = *p++;
			}
		}
		argv[n] = strndup(word, w);
		if (!argv[n])
			goto fail;
		n++;
	}
	*count = n;
	return argv;
fail:
	free_strv(argv, n);
	return NULL;
}

static int
command_from_list(struct draft *d, const char *path, const struct node *v)
{
	struct vd_service *s = &d->s;
	int ret = 0;

	s->command = calloc(v->n + 1, sizeof(*s->command));
	if (!s->command) {
		d->l->oom = true;
		return -1;
	}
	for (size_t i = 0; i < v->n; i++) {
		const struct node *item = v->kids[i];

		if (item->kind != N_SCALAR) {
			if (item->kind != N_ALIAS)
				diag_node(d->l, item, "'%s' items must be strings, not %s", path,
					  WHAT(item));
			ret = -1;
			continue;
		}
		s->command[s->ncommand] = strdup(item->text);
		if (!s->command[s->ncommand])
			d->l->oom = true;
		else
			s->ncommand++;
	}
	return ret;
}

static int
set_command(struct draft *d, const struct key *k, const char *path, const struct node *v)
{
	const char *why;
	size_t n = 0;
	char **argv;

	(void)k;
	if (v->kind == N_SEQ) {
		if (v->n == 0) {
			diag_node(d->l, v, "'%s' must not be empty (leave it out for the "
				  "image's default)", path);
			return -1;
		}
		return command_from_list(d, path, v);
	}
	if (!scalar(d, path, v, "a list or a string"))
		return -1;
	argv = split_words(v->text, &n, &why);
	if (!argv) {
		if (why)
			return bad_value(d, path, v, why);
		d->l->oom = true;
		return -1;
	}
	if (n == 0) {
		free(argv);
		return bad_value(d, path, v, "no words in the command");
	}
	d->s.command = argv;
	d->s.ncommand = n;
	return 0;
}

/* --------------------------------------------------------------------- env */

static bool
valid_env_name(const char *s)
{
	if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
		return false;
	for (s++; *s; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_' ||
		      (*s >= '0' && *s <= '9')))
			return false;
	return true;
}

static int
add_env(struct draft *d, const struct node *key, const struct node *val)
{
	struct vd_service *s = &d->s;

	if (key->kind != N_SCALAR || val->kind != N_SCALAR) {
		const struct node *at = key->kind != N_SCALAR ? key : val;

		if (at->kind != N_ALIAS)
			diag_node(d->l, at, "'env' %ss must be strings, not %s",
				  at == key ? "name" : "value", WHAT(at));
		return -1;
	}
	if (!valid_env_name(key->text)) {
		diag_node(d->l, key, "invalid environment variable name '%s' in 'env' "
			  "(letters, digits and '_', not starting with a digit)", SHOW(key->text));
		return -1;
	}
	/* a plain empty value (KEY:) is the empty string; others as written */
	if (asprintf(&s->env[s->nenv], "%s=%s", key->text, is_null(val) &&
		     !val->text[0] ? "" : val->text) < 0) {
		s->env[s->nenv] = NULL;
		d->l->oom = true;
		return -1;
	}
	s->nenv++;
	return 0;
}

static int
set_env(struct draft *d, const struct key *k, const char *path, const struct node *v)
{
	int ret = 0;

	(void)k;
	if (v->kind != N_MAP) {
		if (v->kind != N_ALIAS)
			diag_node(d->l, v, "'%s' must be a mapping of names to values, not %s",
				  path, WHAT(v));
		return -1;
	}
	d->s.env = calloc(v->n / 2 + 1, sizeof(*d->s.env));
	if (!d->s.env) {
		d->l->oom = true;
		return -1;
	}
	for (size_t i = 0; i + 1 < v->n; i += 2)
		if (!v->kids[i]->dup && add_env(d, v->kids[i], v->kids[i + 1]) < 0)
			ret = -1;
	return ret;
}

static int
set_listen(struct draft *d, const struct key *k, const char *path, const struct node *v)
{
	struct vd_error e = VD_ERROR_INIT;
	const char *s = scalar(d, path, v, "an address HOST:PORT");
	char *host;
	int port;

	(void)k;
	if (!s)
		return -1;
	if (vd_parse_hostport(s, &host, &port, &e) < 0)
		return bad_value(d, path, v, e.msg);
	free(d->s.balancer.listen_host);
	d->s.balancer.listen_host = host;
	d->s.balancer.listen_port = port;
	return 0;
}

/* ---------------------------------------------------------------- sections */

static int set_section(struct draft *d, const struct key *k, const char *path,
		       const struct node *v);

static const struct key vm_keys[] = {
	{ "kernel", F_KERNEL, set_string, SVC(vm.kernel), 0, 0, NULL, 0 },
	{ "initrd", F_INITRD, set_string, SVC(vm.initrd), 0, 0, NULL, 0 },
	{ "cmdline", F_CMDLINE, set_string, SVC(vm.cmdline), 0, 0, NULL, 0 },
	{ "disk", F_DISK, set_string, SVC(vm.disk), 0, 0, NULL, 0 },
	{ "accel", F_ACCEL, set_enum, SVC(vm.accel), 0, 0, accel_names, 0 },
};

static const struct key resources_keys[] = {
	{ "cpus", F_CPUS, set_cpus, SVC(milli_cpus), 0, 0, NULL, 0 },
	{ "memory", F_MEMORY, set_size, SVC(memory_bytes), 0, 0, NULL, 0 },
};

static const struct key health_keys[] = {
	{ "http", F_HTTP, set_http_path, SVC(health.http_path), 0, 0, NULL, 0 },
	{ "tcp", F_TCP, set_bool, AT(tcp), 0, 0, NULL, 0 },
	{ "interval", F_INTERVAL, set_duration, SVC(health.interval_ms), 1, 0, NULL, 0 },
	{ "timeout", F_TIMEOUT, set_duration, SVC(health.timeout_ms), 1, 0, NULL, 0 },
	{ "retries", F_RETRIES, set_int, SVC(health.retries), 1, 100, NULL, 0 },
	{ "start_period", F_START_PERIOD, set_duration, SVC(health.start_period_ms), 0, 0,
	  NULL, 0 },
};

static const struct key balancer_keys[] = {
	{ "listen", F_LISTEN, set_listen, 0, 0, 0, NULL, 0 },
	{ "policy", F_POLICY, set_enum, SVC(balancer.policy), 0, 0, policy_names, 0 },
	{ "max_inflight", F_MAX_INFLIGHT, set_int, SVC(balancer.max_inflight), 0, 100000,
	  NULL, 0 },
	{ "queue_limit", F_QUEUE_LIMIT, set_int, SVC(balancer.queue_limit), 0, 1000000,
	  NULL, 0 },
	{ "queue_timeout", F_QUEUE_TIMEOUT, set_duration, SVC(balancer.queue_timeout_ms), 1, 0,
	  NULL, 0 },
};

static const struct key autoscale_keys[] = {
	{ "min", F_MIN, set_int, SVC(autoscale.min), 0, 1000, NULL, 0 },
	{ "max", F_MAX, set_int, SVC(autoscale.max), 1, 1000, NULL, 0 },
	{ "target_p95", F_TARGET_P95, set_duration, SVC(autoscale.target_p95_ms), 1, 0, NULL, 0 },
	{ "target_queue", F_TARGET_QUEUE, set_number, SVC(autoscale.target_queue), 0, 1000000,
	  NULL, 0 },
	{ "up_window", F_UP_WINDOW, set_duration, SVC(autoscale.up_window_ms), 1, 0, NULL, 0 },
	{ "down_window", F_DOWN_WINDOW, set_duration, SVC(autoscale.down_window_ms), 1, 0,
	  NULL, 0 },
	{ "cooldown", F_COOLDOWN, set_duration, SVC(autoscale.cooldown_ms), 0, 0, NULL, 0 },
};

static const struct key update_keys[] = {
	{ "max_surge", F_MAX_SURGE, set_int, SVC(update.max_surge), 0, 1000, NULL, 0 },
	{ "max_unavailable", F_MAX_UNAVAILABLE, set_int, SVC(update.max_unavailable), 0, 1000,
	  NULL, 0 },
};

#define SECTION(name, keys, enabled) \
	static const struct section name##_section = { #name, keys, ARRAY_SIZE(keys), enabled }

SECTION(vm, vm_keys, 0);
SECTION(resources, resources_keys, 0);
SECTION(health, health_keys, 0);
SECTION(balancer, balancer_keys, SVC(balancer.enabled));
SECTION(autoscale, autoscale_keys, SVC(autoscale.enabled));
SECTION(update, update_keys, 0);

static const struct key service_keys[] = {
	{ "service", F_SERVICE, set_name, SVC(name), 0, 0, NULL, 0 },
	{ "backend", F_BACKEND, set_enum, SVC(backend), 0, 0, backend_names, 0 },
	{ "image", F_IMAGE, set_image, SVC(image), 0, 0, NULL, ONLY(VD_BACKEND_DOCKER) },
	{ "vm", F_VM, set_section, 0, 0, 0, &vm_section, ONLY(VD_BACKEND_LIBVIRT) },
	{ "command", F_COMMAND, set_command, 0, 0, 0, NULL, 0 },
	{ "env", F_ENV, set_env, 0, 0, 0, NULL, 0 },
	{ "port", F_PORT, set_int, SVC(port), 1, 65535, NULL, 0 },
	{ "replicas", F_REPLICAS, set_int, SVC(replicas), 0, 1000, NULL, 0 },
	{ "resources", F_RESOURCES, set_section, 0, 0, 0, &resources_section, 0 },
	{ "health", F_HEALTH, set_section, 0, 0, 0, &health_section, 0 },
	{ "balancer", F_BALANCER, set_section, 0, 0, 0, &balancer_section, 0 },
	{ "autoscale", F_AUTOSCALE, set_section, 0, 0, 0, &autoscale_section, 0 },
	{ "update", F_UPDATE, set_section, 0, 0, 0, &update_section, 0 },
};

static const struct section service_section = {
	NULL, service_keys, ARRAY_SIZE(service_keys), 0
};

static const struct key *
find_key(const struct section *sec, const char *name)
{
	for (size_t i = 0; i < sec->nkeys; i++)
		if (strcmp(sec->keys[i].name, name) == 0)
			return &sec->keys[i];
	return NULL;
}

/* For a key at the wrong level: " ('cpus' belongs under 'resources')". */
static const char *
misplaced(const struct section *sec, const char *name, char *buf, size_t size)
{
	if (sec != &service_section)
		return "";
	for (size_t i = 0; i < sec->nkeys; i++) {
		const struct section *sub = sec->keys[i].set == set_section ? sec->keys[i].arg : NULL;

		if (sub && find_key(sub, name)) {
			snprintf(buf, size, " ('%s' belongs under '%s')", name, sub->path);
			return buf;
		}
	}
	return "";
}

static void
unknown_key(struct draft *d, const struct section *sec, const struct node *key)
{
	const char *names[16];
	size_t n = sec->nkeys < ARRAY_SIZE(names) ? sec->nkeys : ARRAY_SIZE(names);
	char where[96] = "", hint[96];
	const char *more;

	for (size_t i = 0; i < n; i++)
		names[i] = sec->keys[i].name;
	more = suggest(key->text, names, n, hint, sizeof(hint));
	if (!*more)
		more = misplaced(sec, key->text, hint, sizeof(hint));
	if (sec->path && d->name)
		snprintf(where, sizeof(where), " in '%s' of service '%s'", sec->path, d->name);
	else if (sec->path)
		snprintf(where, sizeof(where), " in '%s'", sec->path);
	else
		snprintf(where, sizeof(where), "%s", IN_SERVICE(d));
	diag_node(d->l, key, "unknown key '%s'%s%s", SHOW(key->text), where, more);
}

static void
wrong_backend(struct draft *d, const struct key *k, const struct node *key)
{
	diag_node(d->l, key, "'%s' is a %s key, but %s%s%s uses backend %s", k->name,
		  backend_names[k->only - 1], d->name ? "service '" : "this service",
		  d->name ? d->name : "", d->name ? "'" : "", backend_names[d->backend]);
}

/* Check every key of the mapping MAP against the table of SEC. */
static void
walk_section(struct draft *d, const struct section *sec, const struct node *map)
{
	for (size_t i = 0; i + 1 < map->n; i += 2) {
		const struct node *key = map->kids[i], *val = map->kids[i + 1];
		const struct key *k;
		char path[64];

		if (key->dup)
			continue;
		if (key->kind != N_SCALAR) {
			if (key->kind != N_ALIAS)
				diag_node(d->l, key, "keys must be plain names, not %s", WHAT(key));
			continue;
		}
		k = find_key(sec, key->text);
		if (!k) {
			unknown_key(d, sec, key);
			continue;
		}
		if (k->only && d->backend >= 0 && k->only - 1 != d->backend) {
			wrong_backend(d, k, key);
			continue;
		}
		if (sec->path)
			snprintf(path, sizeof(path), "%s.%s", sec->path, k->name);
		else
			snprintf(path, sizeof(path), "%s", k->name);
		d->at[k->field] = val;
		if (k->set(d, k, path, val) < 0)
			d->bad[k->field] = true;
	}
}

static int
set_section(struct draft *d, const struct key *k, const char *path, const struct node *v)
{
	const struct section *sec = k->arg;

	if (v->kind != N_MAP) {
		if (v->kind != N_ALIAS)
			diag_node(d->l, v, "'%s' must be a mapping, not %s", path, WHAT(v));
		return -1;
	}
	if (sec->enabled)
		*(bool *)((char *)d + sec->enabled) = true;
	walk_section(d, sec, v);
	return 0;
}

/* -------------------------------------------------------- rules and defaults */

/* The value node of top-level KEY in ROOT when it is a usable scalar. */
static const char *
peek(const struct node *root, const char *key)
{
	const char *found = NULL;

	for (size_t i = 0; i + 1 < root->n; i += 2) {
		const struct node *k = root->kids[i], *v = root->kids[i + 1];

		if (k->kind == N_SCALAR && !k->dup && strcmp(k->text, key) == 0)
			found = v->kind == N_SCALAR ? v->text : NULL;
	}
	return found;
}

/* The service's name and backend, known before its keys are checked in
 * order, so that every message can name the service and the keys of the
 * other backend are recognised wherever they come. */
static void
prescan(struct draft *d)
{
	const char *name = peek(d->root, "service");
	const char *backend = peek(d->root, "backend");

	d->name = name && valid_name(name) ? name : NULL;
	d->backend = -1;
	for (int i = 0; backend && backend_names[i]; i++)
		if (strcmp(backend, backend_names[i]) == 0)
			d->backend = i;
}

static void
set_defaults(struct vd_service *s)
{
	s->port = 8080;
	s->milli_cpus = 1000;
	s->memory_bytes = 256 * VD_MIB;
	s->vm.accel = VD_ACCEL_AUTO;
	s->health.kind = VD_HEALTH_TCP;
	s->health.interval_ms = 2000;
	s->health.timeout_ms = 1000;
	s->health.retries = 3;
	s->health.start_period_ms = 10000;
	s->balancer.policy = VD_LB_LEAST_OUTSTANDING;
	s->balancer.max_inflight = 0;
	s->balancer.queue_limit = 1000;
	s->balancer.queue_timeout_ms = 60000;
	s->autoscale.min = 1;
	s->autoscale.max = 10;
	s->autoscale.up_window_ms = 10000;
	s->autoscale.down_window_ms = 120000;
	s->autoscale.cooldown_ms = 30000;
	s->update.max_surge = 1;
	s->update.max_unavailable = 0;
}

/* Given and accepted. */
static bool
good(const struct draft *d, enum field f)
{
	return d->at[f] && !d->bad[f];
}

static void
require(struct draft *d, enum field f, const char *key, const char *why)
{
	if (!d->at[f])
		diag_node(d->l, d->root, "missing required key '%s'%s%s", key, IN_SERVICE(d), why);
}

static void
check_required(struct draft *d)
{
	require(d, F_SERVICE, "service", "");
	require(d, F_BACKEND, "backend", " (docker or libvirt)");
	if (d->backend == VD_BACKEND_DOCKER)
		require(d, F_IMAGE, "image", " (backend docker runs an image)");
	if (d->backend == VD_BACKEND_LIBVIRT)
		require(d, F_VM, "vm", " (backend libvirt boots a kernel or a disk)");
	require(d, F_REPLICAS, "replicas", "");
}

static void
check_memory(struct draft *d)
{
	int64_t min = vd_driver_min_memory(d->backend);
	const struct node *v = d->at[F_MEMORY];
	char reason[96];

	if (!good(d, F_MEMORY))
		return;
	if (d->s.memory_bytes < min) {
		snprintf(reason, sizeof(reason), "%s%s needs at least %" PRId64 " MiB",
			 d->backend >= 0 ? "backend " : "a replica",
			 d->backend >= 0 ? backend_names[d->backend] : "", min / VD_MIB);
		bad_value(d, "resources.memory", v, reason);
	} else if (d->s.memory_bytes > VD_TIB) {
		bad_value(d, "resources.memory", v, "must be at most 1Ti");
	}
}

static void
check_vm(struct draft *d)
{
	const struct node *vm = d->at[F_VM];

	if (!vm || vm->kind != N_MAP)
		return;
	if (d->at[F_KERNEL] && d->at[F_DISK])
		diag_node(d->l, d->at[F_DISK], "'vm.kernel' and 'vm.disk' exclude each other: "
			  "boot a kernel (with an initrd) or a disk image");
	else if (!d->at[F_KERNEL] && !d->at[F_DISK])
		diag_node(d->l, vm, "'vm' needs 'kernel' (with 'initrd') or 'disk'");
	if (d->at[F_INITRD] && !d->at[F_KERNEL])
		diag_node(d->l, d->at[F_INITRD], "'vm.initrd' needs 'vm.kernel'");
	if (d->at[F_CMDLINE] && !d->at[F_KERNEL])
		diag_node(d->l, d->at[F_CMDLINE], "'vm.cmdline' needs 'vm.kernel' (a disk image "
			  "boots with its own command line)");
}

static void
check_health(struct draft *d)
{
	if (!good(d, F_TCP))
		return;
	if (d->tcp && d->at[F_HTTP])
		diag_node(d->l, d->at[F_TCP], "'health.http' and 'health.tcp' exclude each "
			  "other: pick one check");
	else if (!d->tcp && !d->at[F_HTTP])
		diag_node(d->l, d->at[F_TCP], "'health.tcp: false' leaves no check: give "
			  "'health.http: PATH' or leave 'tcp' out");
}

static void
check_autoscale(struct draft *d)
{
	const struct node *as = d->at[F_AUTOSCALE];

	if (!as || as->kind != N_MAP)
		return;
	if (!d->bad[F_MIN] && !d->bad[F_MAX] && (d->at[F_MIN] || d->at[F_MAX]) &&
	    d->s.autoscale.min > d->s.autoscale.max)
		diag_node(d->l, d->at[F_MIN] ? d->at[F_MIN] : d->at[F_MAX],
			  "'autoscale.min' (%d) is greater than 'autoscale.max' (%d)",
			  d->s.autoscale.min, d->s.autoscale.max);
	if (!d->at[F_TARGET_P95] && !d->at[F_TARGET_QUEUE])
		diag_node(d->l, as, "'autoscale' needs a target: 'target_p95', "
			  "'target_queue' or both");
}

static void
check_update(struct draft *d)
{
	const struct node *at = d->at[F_MAX_SURGE] ? d->at[F_MAX_SURGE] : d->at[F_MAX_UNAVAILABLE];

	if (at && !d->bad[F_MAX_SURGE] && !d->bad[F_MAX_UNAVAILABLE] &&
	    d->s.update.max_surge == 0 && d->s.update.max_unavailable == 0)
		diag_node(d->l, at, "'update.max_surge' and 'update.max_unavailable' are both 0: "
			  "a rolling update could not make progress");
}

static void
check_balancer(struct draft *d)
{
	const struct node *b = d->at[F_BALANCER];

	if (b && b->kind == N_MAP && !d->at[F_LISTEN])
		diag_node(d->l, b, "missing required key 'listen' in 'balancer'%s%s%s",
			  d->name ? " of service '" : "", d->name ? d->name : "",
			  d->name ? "'" : "");
}

/* The defaults that depend on other fields. */
static void
finish_defaults(struct draft *d)
{
	struct vd_service *s = &d->s;

	if (s->backend == VD_BACKEND_LIBVIRT && !d->at[F_START_PERIOD])
		s->health.start_period_ms = 30000;
	if (s->health.http_path)
		s->health.kind = VD_HEALTH_HTTP;
	if (s->vm.kernel && !s->vm.cmdline && !(s->vm.cmdline = strdup("console=ttyS0 quiet")))
		d->l->oom = true;
}

/* ============================================================== 3. the set */

static void
service_release(struct vd_service *s)
{
	free(s->name);
	free(s->file);
	free(s->image);
	free(s->vm.kernel);
	free(s->vm.initrd);
	free(s->vm.cmdline);
	free(s->vm.disk);
	free_strv(s->command, s->ncommand);
	free_strv(s->env, s->nenv);
	free(s->health.http_path);
	free(s->balancer.listen_host);
}

static bool
is_wildcard(const char *host)
{
	return strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0;
}

static bool
is_loopback(const char *host)
{
	return strcmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 ||
	       strcmp(host, "::1") == 0;
}

/* Could the two balancers not both bind? */
static bool
listen_conflict(const struct vd_service *a, const struct vd_service *b)
{
	const char *x = a->balancer.listen_host, *y = b->balancer.listen_host;

	if (a->balancer.listen_port != b->balancer.listen_port)
		return false;
	return strcmp(x, y) == 0 || is_wildcard(x) || is_wildcard(y) ||
	       ((strcmp(x, "localhost") == 0 || strcmp(y, "localhost") == 0) &&
		is_loopback(x) && is_loopback(y));
}

/* " (first declared at line 3)" or " (first declared at other.yaml:3:10)". */
static const char *
where_first(const struct loader *l, const struct vd_service *s, const struct placed *p,
	    int line, int col, char *buf, size_t size)
{
	if (p->file_index == l->file_index)
		snprintf(buf, size, "line %d", line);
	else
		snprintf(buf, size, "%s:%d:%d", s->file, line, col);
	return buf;
}

/* Compare the newest service of the set with those before it. */
static void
check_against_set(struct loader *l, const struct node *name_at, const struct node *listen_at)
{
	size_t last = l->m->nservices - 1;
	const struct vd_service *s = &l->m->services[last];
	char where[300];

	for (size_t i = 0; i < last && (name_at || listen_at); i++) {
		const struct vd_service *o = &l->m->services[i];
		const struct placed *p = &l->placed[i];

		if (name_at && p->name_line && strcmp(o->name, s->name) == 0) {
			diag_node(l, name_at, "duplicate service name '%s' (first declared at %s)",
				  s->name, where_first(l, o, p, p->name_line, p->name_col, where,
						       sizeof(where)));
			name_at = NULL; /* once is enough */
		}
		if (listen_at && p->listen_line && listen_conflict(o, s)) {
			diag_node(l, listen_at, "balancer listen address '%s' is already used by "
				  "service '%s' (%s)", listen_at->text, o->name,
				  where_first(l, o, p, p->listen_line, p->listen_col, where,
					      sizeof(where)));
			listen_at = NULL;
		}
	}
}

/* Move the checked service into the set. */
static void
add_service(struct loader *l, struct draft *d)
{
	struct vd_manifest *m = l->m;
	const struct node *name_at = good(d, F_SERVICE) ? d->at[F_SERVICE] : NULL;
	const struct node *listen_at = good(d, F_LISTEN) ? d->at[F_LISTEN] : NULL;

	if (m->nservices == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 8;
		struct vd_service *sv = reallocarray(m->services, cap, sizeof(*sv));
		struct placed *pv = sv ? reallocarray(l->placed, cap, sizeof(*pv)) : NULL;

		if (sv)
			m->services = sv;
		if (!sv || !pv) {
			service_release(&d->s);
			l->oom = true;
			return;
		}
		l->placed = pv;
		l->cap = cap;
	}
	m->services[m->nservices] = d->s;
	l->placed[m->nservices] = (struct placed){
		l->file_index,
		name_at ? name_at->line : 0, name_at ? name_at->col : 0,
		listen_at ? listen_at->line : 0, listen_at ? listen_at->col : 0,
	};
	m->nservices++;
	check_against_set(l, name_at, listen_at);
}

/*
 * VM boot files are made absolute here, relative to the manifest's own
 * directory (or ours for standard input): libvirtd, the recorded state and
 * the spec hash must all see one path, wherever vdctl runs from.
 */
static void
absolute_path(struct draft *d, char **path)
{
	char dir[PATH_MAX], base[PATH_MAX], *abs = NULL;

	if (!*path || (*path)[0] == '/')
		return;
	if (strcmp(d->l->file, "<stdin>") == 0 || !strchr(d->l->file, '/'))
		snprintf(dir, sizeof(dir), ".");
	else
		snprintf(dir, sizeof(dir), "%s", d->l->file);
	if (!realpath(strchr(d->l->file, '/') ? dirname(dir) : dir, base) ||
	    asprintf(&abs, "%s/%s", base, *path) < 0) {
		/* an unreadable directory: leave the path as written */
		return;
	}
	free(*path);
	*path = abs;
}

static void
absolute_paths(struct draft *d)
{
	absolute_path(d, &d->s.vm.kernel);
	absolute_path(d, &d->s.vm.initrd);
	absolute_path(d, &d->s.vm.disk);
}

static void
check_document(struct loader *l, const struct node *root, int doc_line)
{
	struct draft d = { .l = l, .root = root };

	if (root->kind != N_MAP) {
		if (root->kind != N_ALIAS)
			diag_node(l, root, "a service is a mapping of keys (service, backend, "
				  "...), not %s", WHAT(root));
		return;
	}
	set_defaults(&d.s);
	d.s.line = doc_line;
	d.s.file = strdup(l->file);
	if (!d.s.file) {
		l->oom = true;
		return;
	}
	prescan(&d);
	walk_section(&d, &service_section, root);
	check_required(&d);
	check_memory(&d);
	check_vm(&d);
	check_health(&d);
	check_autoscale(&d);
	check_update(&d);
	check_balancer(&d);
	finish_defaults(&d);
	absolute_paths(&d);
	add_service(l, &d);
}

/* ============================================================== the loader */

static void
read_text(struct loader *l, const char *buf, size_t len)
{
	char size[32];

	if (len > VD_MANIFEST_MAX_BYTES) {
		diag_at(l, 1, 1, "file is %s; manifests are limited to %d MiB",
			vd_format_size((int64_t)len, size, sizeof(size)), VD_MANIFEST_MAX_BYTES >> 20);
		return;
	}
	if (read_yaml(l, buf, len) == 0 && l->file_diags == 0)
		diag_at(l, 1, 1, "empty manifest: no services declared");
}

static void
begin_file(struct loader *l, const char *name, size_t index)
{
	l->file = name;
	l->file_index = index;
	l->file_diags = 0;
	l->read_line = l->read_col = 1;
	l->stopped = false;
}

/* Read at most the limit and one byte more, so a larger file is known to be
 * too large without reading it all. Returns the length, or -1 with errno. */
static ssize_t
slurp(int fd, char **out, off_t *size)
{
	struct stat st;
	size_t cap = VD_MANIFEST_MAX_BYTES + 1, len = 0;
	char *buf;

	*size = -1;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
		*size = st.st_size;
		if (st.st_size > VD_MANIFEST_MAX_BYTES)
			return 0;
		cap = (size_t)st.st_size + 1;
	}
	buf = malloc(cap);
	if (!buf)
		return -1;
	for (;;) {
		ssize_t n = read(fd, buf + len, cap - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			free(buf);
			return -1;
		}
		if (n == 0 || (len += (size_t)n) == cap)
			break;
	}
	*out = buf;
	return (ssize_t)len;
}

static void
read_file(struct loader *l, const char *path)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *buf = NULL;
	char size[32];
	off_t st_size;
	ssize_t len;

	fd = strcmp(path, "-") == 0 ? dup(STDIN_FILENO) : open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || (len = slurp(fd, &buf, &st_size)) < 0) {
		if (errno == ENOMEM)
			l->oom = true;
		else
			diag_at(l, 0, 0, "cannot read: %s", strerror(errno));
		return;
	}
	if (st_size > VD_MANIFEST_MAX_BYTES)
		diag_at(l, 1, 1, "file is %s; manifests are limited to %d MiB",
			vd_format_size(st_size, size, sizeof(size)), VD_MANIFEST_MAX_BYTES >> 20);
	else if ((size_t)len > VD_MANIFEST_MAX_BYTES)
		diag_at(l, 1, 1, "file is over %d MiB; manifests are limited to that",
			VD_MANIFEST_MAX_BYTES >> 20);
	else
		read_text(l, buf, (size_t)len);
}

static int
loader_init(struct loader *l, struct vd_diags *diags, struct vd_error *err)
{
	*l = (struct loader){ .diags = diags, .diags_before = diags->n };
	l->m = calloc(1, sizeof(*l->m));
	if (!l->m)
		return vd_error_errno(err, ENOMEM, "cannot load manifests");
	return 0;
}

static int
loader_finish(struct loader *l, struct vd_manifest **out, struct vd_error *err)
{
	struct vd_diags *d = l->diags;
	size_t n = d->n - l->diags_before, nfiles = 0;

	free(l->placed);
	*out = NULL;
	if (l->oom) {
		vd_manifest_free(l->m);
		return vd_error_errno(err, ENOMEM, "cannot load manifests");
	}
	if (n == 0) {
		*out = l->m;
		return 0;
	}
	vd_manifest_free(l->m);
	qsort(d->items + l->diags_before, n, sizeof(*d->items), diag_cmp);
	for (size_t i = l->diags_before; i < d->n; i++)
		if (i == l->diags_before || d->items[i].file_index != d->items[i - 1].file_index)
			nfiles++;
	if (nfiles == 1)
		return vd_error_set(err, VD_EXIT_INPUT, "%zu error%s in %s", n, n == 1 ? "" : "s",
				    d->items[l->diags_before].file);
	return vd_error_set(err, VD_EXIT_INPUT, "%zu errors in %zu files", n, nfiles);
}

int
vd_manifest_load(const char *const *paths, size_t npaths, struct vd_manifest **out,
		 struct vd_diags *diags, struct vd_error *err)
{
	struct loader l;

	if (loader_init(&l, diags, err) < 0)
		return -1;
	for (size_t i = 0; i < npaths && !l.oom; i++) {
		begin_file(&l, strcmp(paths[i], "-") == 0 ? "<stdin>" : paths[i], i);
		read_file(&l, paths[i]);
	}
	return loader_finish(&l, out, err);
}

int
vd_manifest_parse(const char *name, const char *buf, size_t len, struct vd_manifest **out,
		  struct vd_diags *diags, struct vd_error *err)
{
	struct loader l;

	if (loader_init(&l, diags, err) < 0)
		return -1;
	begin_file(&l, name, 0);
	read_text(&l, buf, len);
	return loader_finish(&l, out, err);
}

void
vd_manifest_free(struct vd_manifest *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nservices; i++)
		service_release(&m->services[i]);
	free(m->services);
	free(m);
}

const struct vd_service *
vd_manifest_find(const struct vd_manifest *m, const char *name)
{
	for (size_t i = 0; i < m->nservices; i++)
		if (m->services[i].name && strcmp(m->services[i].name, name) == 0)
			return &m->services[i];
	return NULL;
}

/* ====================================================== the normalised form */

static json_t *
json_str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *
json_strv(char *const *v, size_t n)
{
	json_t *a;

	if (!v)
		return json_null();
	a = json_array();
	for (size_t i = 0; a && i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

static json_t *
json_env(const struct vd_service *s)
{
	json_t *o = json_object();

	for (size_t i = 0; o && i < s->nenv; i++) {
		const char *eq = strchr(s->env[i], '=');
		_cleanup_free_ char *name = strndup(s->env[i], (size_t)(eq - s->env[i]));

		if (name)
			json_object_set_new(o, name, json_string(eq + 1));
	}
	return o;
}

static json_t *
json_backend(const struct vd_service *s)
{
	if (s->backend == VD_BACKEND_DOCKER)
		return json_pack("{s:s, s:o}", "backend", "docker", "image",
				 json_str_or_null(s->image));
	return json_pack("{s:s, s:{s:o, s:o, s:o, s:o, s:s}}", "backend", "libvirt", "vm",
			 "kernel", json_str_or_null(s->vm.kernel),
			 "initrd", json_str_or_null(s->vm.initrd),
			 "cmdline", json_str_or_null(s->vm.cmdline),
			 "disk", json_str_or_null(s->vm.disk),
			 "accel", vd_accel_name(s->vm.accel));
}

static json_t *
json_health(const struct vd_service *s)
{
	return json_pack("{s:s, s:o, s:I, s:I, s:i, s:I}",
			 "kind", vd_health_kind_name(s->health.kind),
			 "http_path", json_str_or_null(s->health.http_path),
			 "interval_ms", (json_int_t)s->health.interval_ms,
			 "timeout_ms", (json_int_t)s->health.timeout_ms,
			 "retries", s->health.retries,
			 "start_period_ms", (json_int_t)s->health.start_period_ms);
}

static json_t *
json_balancer(const struct vd_service *s)
{
	if (!s->balancer.enabled)
		return json_null();
	return json_pack("{s:o, s:i, s:s, s:i, s:i, s:I}",
			 "listen_host", json_str_or_null(s->balancer.listen_host),
			 "listen_port", s->balancer.listen_port,
			 "policy", vd_lb_policy_name(s->balancer.policy),
			 "max_inflight", s->balancer.max_inflight,
			 "queue_limit", s->balancer.queue_limit,
			 "queue_timeout_ms", (json_int_t)s->balancer.queue_timeout_ms);
}

static json_t *
json_autoscale(const struct vd_service *s)
{
	if (!s->autoscale.enabled)
		return json_null();
	return json_pack("{s:i, s:i, s:I, s:f, s:I, s:I, s:I}",
			 "min", s->autoscale.min, "max", s->autoscale.max,
			 "target_p95_ms", (json_int_t)s->autoscale.target_p95_ms,
			 "target_queue", s->autoscale.target_queue,
			 "up_window_ms", (json_int_t)s->autoscale.up_window_ms,
			 "down_window_ms", (json_int_t)s->autoscale.down_window_ms,
			 "cooldown_ms", (json_int_t)s->autoscale.cooldown_ms);
}

static json_t *
json_service(const struct vd_service *s)
{
	json_t *o = json_pack("{s:s}", "service", s->name ? s->name : "");
	json_t *backend = json_backend(s);

	if (!o || !backend || json_object_update(o, backend) < 0) {
		json_decref(backend);
		json_decref(o);
		return NULL;
	}
	json_decref(backend);
	json_object_set_new(o, "command", json_strv(s->command, s->ncommand));
	json_object_set_new(o, "env", json_env(s));
	json_object_set_new(o, "port", json_integer(s->port));
	json_object_set_new(o, "replicas", json_integer(s->replicas));
	json_object_set_new(o, "resources",
			    json_pack("{s:I, s:I}", "milli_cpus", (json_int_t)s->milli_cpus,
				      "memory_bytes", (json_int_t)s->memory_bytes));
	json_object_set_new(o, "health", json_health(s));
	json_object_set_new(o, "balancer", json_balancer(s));
	json_object_set_new(o, "autoscale", json_autoscale(s));
	json_object_set_new(o, "update", json_pack("{s:i, s:i}",
						   "max_surge", s->update.max_surge,
						   "max_unavailable", s->update.max_unavailable));
	return o;
}

json_t *
vd_manifest_to_json(const struct vd_manifest *m)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < m->nservices; i++) {
		json_t *o = json_service(&m->services[i]);

		if (!o || json_array_append_new(a, o) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}
