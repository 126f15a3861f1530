/*
 * YAML trees: libyaml's events read into nodes that remember where they
 * were, and the checking every vdctl file format shares (see vd/ytree.h).
 *
 * Four parts, one section each:
 *  1. the reader, under hard limits, refusing anchors, aliases and tags,
 *     marking repeated keys, turning libyaml's errors into messages that
 *     point at the right character;
 *  2. small helpers on nodes;
 *  3. the value readers, each reporting its own mistakes;
 *  4. key tables: walking a mapping against one, and writing a struct back
 *     out as JSON from the same table.
 * Nothing stops at the first mistake: the reader stops only at a YAML error
 * or a limit, the checkers never.
 */
#include <errno.h>
#include <fcntl.h>
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
#include "vd/units.h"
#include "vd/ytree.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* =============================================================== 1. reader */

struct reader {
	struct vd_diag_file *df;
	const struct vd_ytree_opts *o;
	const char *buf;
	size_t len;
	struct vd_ynode **stack; /* open mappings and lists, o->max_depth of them */
	int depth;
	struct vd_ynode *root;
	size_t nnodes;
	int doc_line;
	int ndocs;          /* documents with content */
	int nstarts;        /* documents begun */
	vd_ytree_doc_fn doc;
	void *arg;
	bool one;           /* exactly one document, kept in kept */
	struct vd_ynode *kept;
	char *refused[16];  /* anchor names already reported, so that */
	size_t nrefused;    /* every alias of one is not reported again */
};

void
vd_ytree_free(struct vd_ynode *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->n; i++)
		vd_ytree_free(n->kids[i]);
	free(n->kids);
	free(n->text);
	free(n);
}

static int
one_based(size_t v)
{
	return v >= INT_MAX ? INT_MAX : (int)v + 1;
}

void
vd_ytree_diag(struct vd_diag_file *df, const struct vd_ynode *n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vd_diag_vat(df, n->line, n->col, fmt, ap);
	va_end(ap);
}

static void
diag_mark(struct reader *r, yaml_mark_t mark, const char *fmt, ...) VD_PRINTF(3, 4);

static void
diag_mark(struct reader *r, yaml_mark_t mark, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vd_diag_vat(r->df, one_based(mark.line), one_based(mark.column), fmt, ap);
	va_end(ap);
}

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
	const char *tab;
	size_t offset;
	bool cut;
	int line, col;

	switch (p->error) {
	case YAML_MEMORY_ERROR:
		r->df->oom = true;
		return;
	case YAML_READER_ERROR:
		offset = p->problem_offset;
		/* point at the start of a UTF-8 sequence cut short, and name that
		 * byte, not the one (often the newline) that broke it */
		cut = p->problem && strstr(p->problem, "UTF-8") &&
		      (strstr(p->problem, "trailing") || strstr(p->problem, "incomplete"));
		for (size_t back = 0; cut && back <= 3 && back <= offset; back++) {
			if (offset - back < r->len &&
			    ((unsigned char)r->buf[offset - back] & 0xc0) == 0xc0) {
				offset -= back;
				offset_position(r->buf, r->len, offset, &line, &col);
				vd_diag_at(r->df, line, col, "not valid UTF-8 text: byte 0x%02X "
					   "begins a character that is cut short",
					   (unsigned char)r->buf[offset]);
				return;
			}
		}
		offset_position(r->buf, r->len, offset, &line, &col);
		if (p->problem_value < 0)
			vd_diag_at(r->df, line, col, "not valid text: %s",
				   p->problem ? p->problem : "unreadable input");
		else if (p->problem && strstr(p->problem, "UTF-8"))
			vd_diag_at(r->df, line, col, "not valid UTF-8 text: %s (byte 0x%02X)",
				   p->problem, (unsigned)p->problem_value & 0xff);
		else
			vd_diag_at(r->df, line, col, "not valid YAML text: %s (character U+%04X)",
				   p->problem ? p->problem : "unreadable input",
				   (unsigned)p->problem_value);
		return;
	default:
		line = one_based(p->problem_mark.line);
		col = one_based(p->problem_mark.column);
		tab = char_at(r->buf, r->len, line, col) == '\t' ? "; tabs cannot indent YAML"
								    : "";
		if (p->context)
			vd_diag_at(r->df, line, col,
				   "YAML syntax error: %s (%s at line %d, column %d)%s",
				   p->problem ? p->problem : "invalid YAML", p->context,
				   one_based(p->context_mark.line),
				   one_based(p->context_mark.column), tab);
		else
			vd_diag_at(r->df, line, col, "YAML syntax error: %s%s",
				   p->problem ? p->problem : "invalid YAML", tab);
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
 * vdctl's files have neither. */
static void
refuse_props(struct reader *r, yaml_mark_t mark, const yaml_char_t *anchor, const yaml_char_t *tag)
{
	if (anchor && !refused_before(r, anchor))
		diag_mark(r, mark, "YAML anchors (&%s) are not supported in %s",
			  VD_SHOW((const char *)anchor), r->o->what);
	if (tag) {
		const char *t = (const char *)tag, *core = "tag:yaml.org,2002:";
		bool is_core = strncmp(t, core, strlen(core)) == 0;

		diag_mark(r, mark, "YAML tags (%s%s) are not supported in %s", is_core ? "!!" : "",
			  VD_SHOW(is_core ? t + strlen(core) : t), r->o->what);
	}
}

static struct vd_ynode *
node_new(struct reader *r, enum vd_ynode_kind kind, yaml_mark_t mark)
{
	struct vd_ynode *n;

	if (r->nnodes == r->o->max_nodes) {
		diag_mark(r, mark, "more than %zu YAML nodes in one file; %s are limited to that",
			  r->o->max_nodes, r->o->what);
		return NULL;
	}
	n = calloc(1, sizeof(*n));
	if (!n) {
		r->df->oom = true;
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
node_attach(struct reader *r, struct vd_ynode *n)
{
	struct vd_ynode *parent;

	if (r->depth == 0) {
		vd_ytree_free(r->root);
		r->root = n;
		return 0;
	}
	parent = r->stack[r->depth - 1];
	if (parent->n == parent->cap) {
		size_t cap = parent->cap ? parent->cap * 2 : 8;
		struct vd_ynode **kids = reallocarray(parent->kids, cap, sizeof(*kids));

		if (!kids) {
			vd_ytree_free(n);
			r->df->oom = true;
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
	const struct vd_ynode *x = *(const struct vd_ynode *const *)a;
	const struct vd_ynode *y = *(const struct vd_ynode *const *)b;
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
mark_duplicate_keys(struct reader *r, struct vd_ynode *map)
{
	_cleanup_free_ struct vd_ynode **keys = NULL;
	size_t n = 0;

	if (map->n < 4)
		return;
	keys = calloc(map->n / 2, sizeof(*keys));
	if (!keys) {
		r->df->oom = true;
		return;
	}
	for (size_t i = 0; i + 1 < map->n; i += 2)
		if (map->kids[i]->kind == VD_YSCALAR)
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
			vd_ytree_diag(r->df, map->kids[i], "duplicate key '%s' (first at line %d)",
				      VD_SHOW(map->kids[i]->text), map->kids[i]->first_line);
}

static int
open_collection(struct reader *r, enum vd_ynode_kind kind, const yaml_event_t *ev,
		const yaml_char_t *anchor, const yaml_char_t *tag)
{
	struct vd_ynode *n;

	if (r->depth == r->o->max_depth) {
		diag_mark(r, ev->start_mark, "nesting deeper than %d levels; %s are limited to "
			  "that", r->o->max_depth, r->o->what);
		return -1;
	}
	refuse_props(r, ev->start_mark, anchor, tag);
	n = node_new(r, kind, ev->start_mark);
	if (!n || node_attach(r, n) < 0)
		return -1;
	r->stack[r->depth++] = n;
	return 0;
}

/* The first character of S that no value may hold, or -1: control
 * characters but tab, newline and carriage return, and the line breaks
 * YAML would fold (NEL, U+2028, U+2029). What is left can be written back
 * as JSON, which is YAML, and read again unchanged. */
static long
control_char(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;

	for (size_t i = 0; i < len; i++) {
		if ((p[i] < 0x20 && !strchr("\t\n\r", p[i])) || p[i] == 0x7f)
			return p[i];
		if (p[i] == 0xc2 && i + 1 < len && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f)
			return p[i + 1]; /* U+0080 to U+009F */
		if (p[i] == 0xe2 && i + 2 < len && p[i + 1] == 0x80 &&
		    (p[i + 2] == 0xa8 || p[i + 2] == 0xa9))
			return 0x2000 + (p[i + 2] & 0x3f);
	}
	return -1;
}

static int
read_scalar(struct reader *r, const yaml_event_t *ev)
{
	const char *value = (const char *)ev->data.scalar.value;
	size_t len = ev->data.scalar.length;
	struct vd_ynode *n;

	if (len > r->o->max_value) {
		char size[32], limit[32];

		diag_mark(r, ev->start_mark, "value of %s is over the limit of %s",
			  vd_units_format_size((int64_t)len, size, sizeof(size)),
			  vd_units_format_size((int64_t)r->o->max_value, limit, sizeof(limit)));
		return -1;
	}
	refuse_props(r, ev->start_mark, ev->data.scalar.anchor, ev->data.scalar.tag);
	n = node_new(r, VD_YSCALAR, ev->start_mark);
	if (!n)
		return -1;
	n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
	n->text = strndup(value, len);
	if (!n->text) {
		free(n);
		r->df->oom = true;
		return -1;
	}
	if (memchr(value, '\0', len))
		vd_ytree_diag(r->df, n, "NUL characters are not allowed in values");
	else if (control_char(value, len) >= 0)
		vd_ytree_diag(r->df, n, "control characters are not allowed in values "
			      "(character U+%04lX)", (unsigned long)control_char(value, len));
	return node_attach(r, n);
}

static void
end_document(struct reader *r)
{
	if (r->root && !vd_ytree_is_null(r->root)) {
		r->ndocs++;
		if (r->one) {
			r->kept = r->root;
			r->root = NULL;
		} else {
			r->doc(r->arg, r->root, r->doc_line);
		}
	}
	vd_ytree_free(r->root);
	r->root = NULL;
}

/* Handle one event; -1 stops the reader. */
static int
on_event(struct reader *r, const yaml_event_t *ev)
{
	r->df->line = one_based(ev->end_mark.line);
	r->df->col = one_based(ev->end_mark.column);
	switch (ev->type) {
	case YAML_DOCUMENT_START_EVENT:
		r->doc_line = one_based(ev->start_mark.line);
		if (r->one && ++r->nstarts == 2) {
			vd_diag_at(r->df, r->doc_line, 1, "more than one YAML document; %s have "
				   "one", r->o->what);
			return -1;
		}
		return 0;
	case YAML_DOCUMENT_END_EVENT:
		end_document(r);
		return 0;
	case YAML_SCALAR_EVENT:
		return read_scalar(r, ev);
	case YAML_ALIAS_EVENT: {
		struct vd_ynode *n;

		if (!refused_before(r, ev->data.alias.anchor))
			diag_mark(r, ev->start_mark, "YAML aliases (*%s) are not supported in %s",
				  VD_SHOW((const char *)ev->data.alias.anchor), r->o->what);
		n = node_new(r, VD_YALIAS, ev->start_mark);
		return n ? node_attach(r, n) : -1;
	}
	case YAML_SEQUENCE_START_EVENT:
		return open_collection(r, VD_YSEQ, ev, ev->data.sequence_start.anchor,
				       ev->data.sequence_start.tag);
	case YAML_MAPPING_START_EVENT:
		return open_collection(r, VD_YMAP, ev, ev->data.mapping_start.anchor,
				       ev->data.mapping_start.tag);
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		if (r->depth > 0) {
			struct vd_ynode *n = r->stack[--r->depth];

			if (n->kind == VD_YMAP)
				mark_duplicate_keys(r, n);
		}
		return 0;
	default:
		return 0;
	}
}

/* "file is 5 MiB; manifests are limited to 4 MiB", or "file is over 4
 * MiB; ..." when SIZE (-1: unknown) rounds to the limit. */
static void
too_big(struct vd_diag_file *df, const struct vd_ytree_opts *o, int64_t size)
{
	char got[32], limit[32];

	vd_units_format_size((int64_t)o->max_bytes, limit, sizeof(limit));
	if (size >= 0 && strcmp(vd_units_format_size(size, got, sizeof(got)), limit) != 0)
		vd_diag_at(df, 1, 1, "file is %s; %s are limited to %s", got, o->what, limit);
	else
		vd_diag_at(df, 1, 1, "file is over %s; %s are limited to that", limit, o->what);
}

static int
read_text(struct reader *r)
{
	struct vd_diag_file *df = r->df;
	yaml_parser_t parser;
	yaml_event_t ev;
	bool done = false, failed = false;

	if (r->len > r->o->max_bytes) {
		too_big(df, r->o, r->len > INT64_MAX ? -1 : (int64_t)r->len);
		return -1;
	}
	r->stack = calloc(r->o->max_depth > 0 ? (size_t)r->o->max_depth : 1, sizeof(*r->stack));
	if (!r->stack || !yaml_parser_initialize(&parser)) {
		free(r->stack);
		df->oom = true;
		return -1;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)r->buf, r->len);
	while (!done && !failed) {
		if (df->stopped || df->oom) {
			failed = true;
			break;
		}
		if (!yaml_parser_parse(&parser, &ev)) {
			yaml_failure(r, &parser);
			failed = true;
			break;
		}
		done = ev.type == YAML_STREAM_END_EVENT;
		if (on_event(r, &ev) < 0)
			failed = true;
		yaml_event_delete(&ev);
	}
	vd_ytree_free(r->root); /* a document cut short */
	for (size_t i = 0; i < r->nrefused; i++)
		free(r->refused[i]);
	free(r->stack);
	yaml_parser_delete(&parser);
	return failed || df->stopped || df->oom ? -1 : r->ndocs;
}

int
vd_ytree_read(const char *buf, size_t len, const struct vd_ytree_opts *o,
	      struct vd_diag_file *df, vd_ytree_doc_fn doc, void *arg)
{
	struct reader r = { .df = df, .o = o, .buf = buf, .len = len, .doc = doc, .arg = arg };

	return read_text(&r);
}

/* Read the file at PATH whole, but at most the limit and one byte more, so
 * a larger file is known to be too large without reading it all. Returns
 * the text (to free) or NULL, having reported why (or set df->oom). */
static char *
slurp(const char *path, const struct vd_ytree_opts *o, struct vd_diag_file *df, size_t *len)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *buf = NULL;
	size_t cap = o->max_bytes + 1, got = 0;
	struct stat st;

	fd = strcmp(path, "-") == 0 ? dup(STDIN_FILENO) : open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		goto fail;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
		if ((uint64_t)st.st_size > o->max_bytes) {
			too_big(df, o, st.st_size);
			return NULL;
		}
		cap = (size_t)st.st_size + 1;
	}
	buf = malloc(cap);
	if (!buf)
		goto fail;
	for (;;) {
		ssize_t n = read(fd, buf + got, cap - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto fail;
		if (n == 0 || (got += (size_t)n) == cap)
			break;
	}
	if (got > o->max_bytes) {
		too_big(df, o, -1); /* a pipe: its size is unknown */
		return NULL;
	}
	*len = got;
	return vd_steal_ptr(&buf);
fail:
	if (errno == ENOMEM)
		df->oom = true;
	else
		vd_diag_at(df, 0, 0, "cannot read: %s", strerror(errno));
	return NULL;
}

int
vd_ytree_read_file(const char *path, const struct vd_ytree_opts *o, struct vd_diag_file *df,
		   vd_ytree_doc_fn doc, void *arg)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;

	buf = slurp(path, o, df, &len);
	if (!buf)
		return -1;
	return vd_ytree_read(buf, len, o, df, doc, arg);
}

struct vd_ynode *
vd_ytree_read_one(const char *path, const char *buf, size_t len, const struct vd_ytree_opts *o,
		  struct vd_diag_file *df)
{
	_cleanup_free_ char *text = NULL;
	struct reader r = { .df = df, .o = o, .buf = buf, .len = len, .one = true };

	if (path) {
		text = slurp(path, o, df, &r.len);
		if (!text)
			return NULL;
		r.buf = text;
	}
	if (read_text(&r) < 0) {
		vd_ytree_free(r.kept);
		return NULL;
	}
	return r.kept;
}

/* ======================================================== 2. small helpers */

bool
vd_ytree_is_null(const struct vd_ynode *n)
{
	static const char *const nulls[] = { "", "~", "null", "Null", "NULL" };

	if (n->kind != VD_YSCALAR || n->quoted)
		return false;
	for (size_t i = 0; i < ARRAY_SIZE(nulls); i++)
		if (strcmp(n->text, nulls[i]) == 0)
			return true;
	return false;
}

const struct vd_ynode *
vd_ytree_get(const struct vd_ynode *map, const char *key)
{
	if (!map || map->kind != VD_YMAP)
		return NULL;
	for (size_t i = 0; i + 1 < map->n; i += 2) {
		const struct vd_ynode *k = map->kids[i];

		if (k->kind == VD_YSCALAR && !k->dup && strcmp(k->text, key) == 0)
			return map->kids[i + 1];
	}
	return NULL;
}

const char *
vd_ytree_what(const struct vd_ynode *n, char *buf, size_t size)
{
	switch (n->kind) {
	case VD_YMAP:
		return "a mapping";
	case VD_YSEQ:
		return "a list";
	case VD_YALIAS:
		return "an alias";
	default:
		if (vd_ytree_is_null(n))
			return "empty";
		snprintf(buf, size, "'%s'", VD_SHOW(n->text));
		return buf;
	}
}

/* ======================================================== 3. value readers */

int
vd_ytree_bad_value(struct vd_ycheck *c, const struct vd_ynode *v, const char *path,
		   const char *reason)
{
	vd_ytree_diag(c->df, v, "invalid value '%s' for '%s': %s", VD_SHOW(v->text), path, reason);
	return -1;
}

const char *
vd_ytree_scalar(struct vd_ycheck *c, const struct vd_ynode *v, const char *path,
		const char *expected)
{
	if (v->kind == VD_YSCALAR && !vd_ytree_is_null(v))
		return v->text;
	if (v->kind != VD_YALIAS) /* the reader said why */
		vd_ytree_diag(c->df, v, "'%s' must be %s, not %s", path, expected,
			      VD_YTREE_WHAT(v));
	return NULL;
}

const char *
vd_ytree_plain(struct vd_ycheck *c, const struct vd_ynode *v, const char *path,
	       const char *expected)
{
	const char *s = vd_ytree_scalar(c, v, path, expected);

	if (s && v->quoted && !c->quoted_numbers) {
		vd_ytree_diag(c->df, v, "invalid value '%s' for '%s': expected %s, not a quoted "
			      "string", VD_SHOW(s), path, expected);
		return NULL;
	}
	return s;
}

bool
vd_ytree_want(struct vd_ycheck *c, const struct vd_ynode *v, enum vd_ynode_kind kind,
	      const char *path)
{
	static const char *const names[] = { "a value", "a mapping", "a list", "an alias" };

	if (v->kind == kind && !(kind == VD_YSCALAR && vd_ytree_is_null(v)))
		return true;
	if (v->kind != VD_YALIAS)
		vd_ytree_diag(c->df, v, "'%s' must be %s, not %s", path, names[kind],
			      VD_YTREE_WHAT(v));
	return false;
}

int
vd_ytree_int(struct vd_ycheck *c, const struct vd_ynode *v, const char *path, int64_t min,
	     int64_t max, int64_t *out)
{
	struct vd_error e = VD_ERROR_INIT;
	const char *s = vd_ytree_plain(c, v, path, "an integer");

	if (!s)
		return -1;
	if (vd_units_parse_int64(s, min, max, out, &e) < 0)
		return vd_ytree_bad_value(c, v, path, e.msg);
	return 0;
}

int
vd_ytree_number(struct vd_ycheck *c, const struct vd_ynode *v, const char *path, double min,
		bool min_open, double max, double *out)
{
	const char *s = vd_ytree_plain(c, v, path, "a number");
	char reason[96], *end;
	double x = 0;

	if (!s)
		return -1;
	errno = 0;
	if (strspn(s, "0123456789.+-eE") != strlen(s) || (x = strtod(s, &end), *end) ||
	    errno || !isfinite(x))
		return vd_ytree_bad_value(c, v, path, "expected a number like 2 or 0.5");
	if (min_open ? !(x > min) || x > max : x < min || x > max) {
		snprintf(reason, sizeof(reason), min_open ? "must be greater than %.15g and at "
			 "most %.15g" : "must be between %.15g and %.15g", min, max);
		return vd_ytree_bad_value(c, v, path, reason);
	}
	*out = x;
	return 0;
}

int
vd_ytree_bool(struct vd_ycheck *c, const struct vd_ynode *v, const char *path, bool *out)
{
	static const char *const yes[] = { "true", "True", "TRUE" };
	static const char *const no[] = { "false", "False", "FALSE" };
	const char *s = vd_ytree_plain(c, v, path, "true or false");

	if (!s)
		return -1;
	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (strcmp(s, yes[i]) == 0 || strcmp(s, no[i]) == 0) {
			*out = strcmp(s, yes[i]) == 0;
			return 0;
		}
	}
	return vd_ytree_bad_value(c, v, path, "expected true or false");
}

/* A plain number of seconds, up to a week, as ms; -1 if S is not one. */
static int
bare_seconds(const char *s, int64_t *ms)
{
	char *end;
	double x;

	errno = 0;
	x = strtod(s, &end);
	if (end == s || *end || errno || !isfinite(x) || x < 0 || x > 86400 * 7)
		return -1;
	*ms = (int64_t)llround(x * 1000);
	return 0;
}

int
vd_ytree_duration(struct vd_ycheck *c, const struct vd_ynode *v, const char *path,
		  int64_t min_ms, int64_t *ms)
{
	struct vd_error e = VD_ERROR_INIT;
	const char *s = vd_ytree_scalar(c, v, path, "a duration");
	char reason[64], buf[32];
	int64_t x;

	if (!s)
		return -1;
	if (!(c->bare_seconds && bare_seconds(s, &x) == 0) &&
	    vd_units_parse_duration_ms(s, &x, &e) < 0)
		return vd_ytree_bad_value(c, v, path, c->bare_seconds ? "expected seconds or a "
					  "duration like 500ms, 10s, 1m" : e.msg);
	if (x < min_ms) {
		if (min_ms == 1)
			return vd_ytree_bad_value(c, v, path, "must be greater than 0");
		snprintf(reason, sizeof(reason), "must be at least %s",
			 vd_units_format_duration_ms(min_ms, buf, sizeof(buf)));
		return vd_ytree_bad_value(c, v, path, reason);
	}
	*ms = x;
	return 0;
}

int
vd_ytree_size(struct vd_ycheck *c, const struct vd_ynode *v, const char *path, int64_t *bytes)
{
	struct vd_error e = VD_ERROR_INIT;
	const char *s = vd_ytree_scalar(c, v, path, "a size");

	if (!s)
		return -1;
	if (vd_units_parse_size(s, bytes, &e) < 0)
		return vd_ytree_bad_value(c, v, path, e.msg);
	return 0;
}

int
vd_ytree_cpus(struct vd_ycheck *c, const struct vd_ynode *v, const char *path, int64_t *milli)
{
	struct vd_error e = VD_ERROR_INIT;
	const char *s = vd_ytree_plain(c, v, path, "a number of CPUs");

	if (!s)
		return -1;
	if (vd_units_parse_milli_cpus(s, milli, &e) < 0)
		return vd_ytree_bad_value(c, v, path, e.msg);
	return 0;
}

int
vd_ytree_enum(struct vd_ycheck *c, const struct vd_ynode *v, const char *path,
	      const char *const *names, int *out)
{
	const char *s = vd_ytree_scalar(c, v, path, "a name");
	char list[256] = "", hint[96];
	size_t n, len = 0;

	if (!s)
		return -1;
	for (n = 0; names[n]; n++) {
		if (strcmp(s, names[n]) == 0) {
			*out = (int)n;
			return 0;
		}
		len += (size_t)snprintf(list + len, len < sizeof(list) ? sizeof(list) - len : 0,
					"%s%s", n ? ", " : "", names[n]);
	}
	vd_ytree_diag(c->df, v, "invalid value '%s' for '%s': expected one of %s%s", VD_SHOW(s),
		      path, list, vd_diag_did_you_mean(s, names, n, hint, sizeof(hint)));
	return -1;
}

int
vd_ytree_string(struct vd_ycheck *c, const struct vd_ynode *v, const char *path, char **out)
{
	const char *s = vd_ytree_scalar(c, v, path, "a string");

	if (!s)
		return -1;
	free(*out);
	*out = strdup(s);
	if (!*out)
		c->df->oom = true;
	return *out ? 0 : -1;
}

/* "unknown key 'KEY' in 'SECTION' of OWNER (HINT)", PICK being the near
 * miss or NULL. */
static void
unknown_key(struct vd_ycheck *c, const struct vd_ynode *key, const char *section,
	    const char *pick, const char *otherwise)
{
	char where[160] = "", hint[96] = "";

	if (section && c->owner)
		snprintf(where, sizeof(where), " in '%s' of %s", section, c->owner);
	else if (section)
		snprintf(where, sizeof(where), " in '%s'", section);
	else if (c->owner)
		snprintf(where, sizeof(where), " in %s", c->owner);
	if (pick)
		snprintf(hint, sizeof(hint), " (did you mean '%s'?)", pick);
	vd_ytree_diag(c->df, key, "unknown key '%s'%s%s", VD_SHOW(key->text), where,
		      pick ? hint : otherwise ? otherwise : "");
}

void
vd_ytree_unknown_key(struct vd_ycheck *c, const struct vd_ynode *key, const char *section,
		     const char *const *names, size_t n, const char *otherwise)
{
	unknown_key(c, key, section, vd_diag_closest(key->text, names, n), otherwise);
}

/* =========================================================== 4. key tables */

void *
vd_ytree_field(struct vd_ycheck *c, const struct vd_ykey *k)
{
	return (char *)c->base + k->off;
}

static const struct vd_ykey *
find_key(const struct vd_ysection *sec, const char *name)
{
	for (size_t i = 0; i < sec->nkeys; i++)
		if (strcmp(sec->keys[i].name, name) == 0)
			return &sec->keys[i];
	return NULL;
}

/* For a key at the top level that belongs lower: " ('cpus' belongs under
 * 'resources')", or "". */
static const char *
misplaced(const struct vd_ycheck *c, const struct vd_ysection *sec, const char *name,
	  char *buf, size_t size)
{
	if (sec != c->top)
		return "";
	for (size_t i = 0; i < sec->nkeys; i++) {
		const struct vd_ysection *sub = sec->keys[i].type == VD_YSECTION ?
							sec->keys[i].arg : NULL;

		if (sub && find_key(sub, name)) {
			snprintf(buf, size, " ('%s' belongs under '%s')", name, sub->path);
			return buf;
		}
	}
	return "";
}

static void
walk_unknown(struct vd_ycheck *c, const struct vd_ysection *sec, const struct vd_ynode *key)
{
	struct vd_diag_guess g;
	char hint[96];

	vd_diag_guess_init(&g, key->text);
	for (size_t i = 0; i < sec->nkeys; i++)
		vd_diag_guess_offer(&g, sec->keys[i].name);
	unknown_key(c, key, sec->path, g.pick, misplaced(c, sec, key->text, hint, sizeof(hint)));
}

static int
set_section(struct vd_ycheck *c, const struct vd_ykey *k, const char *path,
	    const struct vd_ynode *v)
{
	const struct vd_ysection *sec = k->arg;

	if (v->kind != VD_YMAP) {
		if (v->kind != VD_YALIAS)
			vd_ytree_diag(c->df, v, "'%s' must be a mapping, not %s", path,
				      VD_YTREE_WHAT(v));
		return -1;
	}
	if (sec->enabled)
		*(bool *)((char *)c->base + sec->enabled - 1) = true;
	vd_ytree_walk(c, sec, v);
	return 0;
}

/* The reader of K's type. */
static int
set_value(struct vd_ycheck *c, const struct vd_ykey *k, const char *path,
	  const struct vd_ynode *v)
{
	void *p = vd_ytree_field(c, k);
	int64_t x;
	int e;

	switch (k->type) {
	case VD_YSTRING:
		return vd_ytree_string(c, v, path, p);
	case VD_YINT:
		if (vd_ytree_int(c, v, path, k->min, k->max, &x) < 0)
			return -1;
		*(int *)p = (int)x;
		return 0;
	case VD_YBOOL:
		return vd_ytree_bool(c, v, path, p);
	case VD_YNUMBER:
		return vd_ytree_number(c, v, path, (double)k->min, true, (double)k->max, p);
	case VD_YDURATION:
		return vd_ytree_duration(c, v, path, k->min, p);
	case VD_YSIZE:
		return vd_ytree_size(c, v, path, p);
	case VD_YCPUS:
		return vd_ytree_cpus(c, v, path, p);
	case VD_YENUM:
		if (vd_ytree_enum(c, v, path, k->arg, &e) < 0)
			return -1;
		*(int *)p = e;
		return 0;
	case VD_YSECTION:
		return set_section(c, k, path, v);
	case VD_YCUSTOM:
		break;
	}
	return -1; /* a custom key without a setter */
}

void
vd_ytree_walk(struct vd_ycheck *c, const struct vd_ysection *sec, const struct vd_ynode *map)
{
	for (size_t i = 0; i + 1 < map->n; i += 2) {
		const struct vd_ynode *key = map->kids[i], *val = map->kids[i + 1];
		const struct vd_ykey *k;
		char path[128];
		int ret;

		if (key->dup)
			continue;
		if (key->kind != VD_YSCALAR) {
			if (key->kind != VD_YALIAS)
				vd_ytree_diag(c->df, key, "keys must be plain names, not %s",
					      VD_YTREE_WHAT(key));
			continue;
		}
		k = find_key(sec, key->text);
		if (!k) {
			walk_unknown(c, sec, key);
			continue;
		}
		if (k->only && c->variant >= 0 && k->only - 1 != c->variant) {
			if (c->wrong_variant)
				c->wrong_variant(c, k, key);
			continue;
		}
		if (sec->path)
			snprintf(path, sizeof(path), "%s.%s", sec->path, k->name);
		else
			snprintf(path, sizeof(path), "%s", k->name);
		if (c->at)
			c->at[k->field] = val;
		ret = k->set ? k->set(c, k, path, val) : set_value(c, k, path, val);
		if (ret < 0 && c->bad)
			c->bad[k->field] = true;
	}
}

/* K's value in BASE as JSON in *out, NULL when unset. -1: out of memory. */
static int
put_value(const struct vd_ykey *k, const void *base, int variant, unsigned flags,
	  json_t **out)
{
	const void *p = (const char *)base + k->off;
	bool units = flags & VD_YJSON_UNITS;
	const struct vd_ysection *sub;
	const char *const *names;
	char buf[32];
	int64_t x;
	double d;
	int e;

	*out = NULL;
	if (k->put)
		return k->put(k, base, flags, out);
	switch (k->type) {
	case VD_YSTRING:
		if (!*(char *const *)p)
			return 0;
		*out = json_string(*(char *const *)p);
		break;
	case VD_YINT:
		*out = json_integer(*(const int *)p);
		break;
	case VD_YBOOL:
		*out = json_boolean(*(const bool *)p);
		break;
	case VD_YNUMBER:
		d = *(const double *)p;
		if (!(d > (double)k->min))
			return 0;
		*out = json_real(d);
		break;
	case VD_YDURATION:
		x = *(const int64_t *)p;
		if (x < k->min)
			return 0;
		*out = units ? json_integer(x)
			     : json_string(vd_units_format_duration_ms(x, buf, sizeof(buf)));
		break;
	case VD_YSIZE:
		*out = json_integer(*(const int64_t *)p);
		break;
	case VD_YCPUS:
		/* whole CPUs as integers: no float formatting on the way back */
		x = *(const int64_t *)p;
		*out = units ? json_integer(x) : x % 1000 == 0 ? json_integer(x / 1000)
							      : json_real((double)x / 1000);
		break;
	case VD_YENUM:
		names = k->arg;
		e = *(const int *)p;
		for (int i = 0; names[i]; i++)
			if (i == e)
				*out = json_string(names[i]);
		if (!*out)
			return 0;
		break;
	case VD_YSECTION:
		sub = k->arg;
		if (sub->enabled && !*(const bool *)((const char *)base + sub->enabled - 1))
			return 0;
		*out = vd_ytree_json(sub, base, variant, flags);
		break;
	case VD_YCUSTOM:
		return 0;
	}
	return *out ? 0 : -1;
}

/* The key's name in the normalised form: its unit said. */
static const char *
json_name(const struct vd_ykey *k, unsigned flags, char *buf, size_t size)
{
	if (!(flags & VD_YJSON_UNITS))
		return k->name;
	if (k->type == VD_YDURATION)
		snprintf(buf, size, "%s_ms", k->name);
	else if (k->type == VD_YSIZE)
		snprintf(buf, size, "%s_bytes", k->name);
	else if (k->type == VD_YCPUS)
		snprintf(buf, size, "milli_%s", k->name);
	else
		return k->name;
	return buf;
}

json_t *
vd_ytree_json(const struct vd_ysection *sec, const void *base, int variant, unsigned flags)
{
	json_t *o = json_object();

	for (size_t i = 0; o && i < sec->nkeys; i++) {
		const struct vd_ykey *k = &sec->keys[i];
		json_t *v = NULL;
		char name[96];

		if (k->only && k->only - 1 != variant) {
			/* not for this variant: left out, or null for tools */
		} else if (put_value(k, base, variant, flags, &v) < 0) {
			json_decref(o);
			return NULL;
		}
		if (!v && !(flags & VD_YJSON_UNITS))
			continue;
		if (json_object_set_new(o, json_name(k, flags, name, sizeof(name)),
					v ? v : json_null()) < 0) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}
