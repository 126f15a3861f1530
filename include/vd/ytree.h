/*
 * YAML trees: the reader behind every YAML file vdctl takes (manifests,
 * load profiles, experiment files), and the checking both sides of a file
 * format need, so that a new format is a table of keys plus its rules.
 *
 * The reader turns libyaml's events into a small tree of nodes that keep
 * their line and column, under hard limits (file size, depth, nodes, value
 * length) so that hostile input is refused quickly in bounded memory. It
 * refuses anchors, aliases and tags (each anchor reported once, its aliases
 * left in the tree as VD_YALIAS nodes that checkers pass over silently),
 * reports repeated mapping keys (marked dup: checkers skip them), and says
 * "tabs cannot indent YAML" when that is the trouble. Positions are in
 * characters, not bytes, also for invalid UTF-8.
 *
 *   static const struct vd_ytree_opts opts = { "manifests", 4 << 20, ... };
 *   vd_ytree_read_file(path, &opts, &df, check_document, &state);
 *
 * Checking: a struct vd_ycheck carries where diagnostics go and how lenient
 * the format is; the value readers (vd_ytree_int(), _duration(), _enum()...)
 * each report "invalid value 'X' for 'PATH': why" at the value and return -1,
 * or store and return 0. A table of keys (struct vd_ysection of struct
 * vd_ykey) names each key, its type, where its value goes and its range;
 * vd_ytree_walk() checks a mapping against it (unknown keys with a
 * suggestion, keys of another variant, wrong types, ranges) and
 * vd_ytree_json() writes the struct back out from the same table.
 */
#ifndef VD_YTREE_H
#define VD_YTREE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vd/diag.h"

/* ============================================================ the reader */

enum vd_ynode_kind { VD_YSCALAR, VD_YMAP, VD_YSEQ, VD_YALIAS };

struct vd_ynode {
	enum vd_ynode_kind kind;
	int line, col;         /* 1-based, in characters */
	bool quoted;           /* a scalar in quotes or block style: always a string */
	bool dup;              /* a repeated mapping key: its pair is to be ignored */
	int first_line;        /* for a repeated key: where the first one is */
	char *text;            /* VD_YSCALAR only (NULL otherwise) */
	struct vd_ynode **kids; /* VD_YMAP: key, value, key, value...; VD_YSEQ: items */
	size_t n, cap;
};

/* What a format accepts. */
struct vd_ytree_opts {
	const char *what;  /* the files, plural, in messages: "manifests" */
	size_t max_bytes;  /* the whole text */
	size_t max_value;  /* bytes in one scalar */
	size_t max_nodes;  /* in one file */
	int max_depth;     /* nested mappings and lists */
};

/* Called for each document with content (not empty, not null), with its
 * root and the line where it starts. The tree is freed after it returns. */
typedef void (*vd_ytree_doc_fn)(void *arg, const struct vd_ynode *root, int doc_line);

/* Read the YAML text BUF (LEN bytes, need not be NUL-terminated), calling
 * DOC for each document. Returns the number of documents with content, or
 * -1 when reading stopped early: a YAML error, a limit, the diagnostics cap
 * or out of memory (df->oom); the diagnostics say which. */
int vd_ytree_read(const char *buf, size_t len, const struct vd_ytree_opts *o,
		  struct vd_diag_file *df, vd_ytree_doc_fn doc, void *arg);

/* The same for the file at PATH ("-" is standard input), read whole but
 * never more than the limit and a byte: "cannot read: REASON" (line 0) and
 * a file over the limit are diagnostics too. df->file names it already. */
int vd_ytree_read_file(const char *path, const struct vd_ytree_opts *o,
		       struct vd_diag_file *df, vd_ytree_doc_fn doc, void *arg);

/* For formats of exactly one document: its root, to free with
 * vd_ytree_free(), or NULL when there is none or it could not be read
 * (then df->count says whether anything was said: nothing means empty).
 * A second document is reported at its start ("more than one YAML
 * document"). PATH as for vd_ytree_read_file(); or BUF when PATH is NULL. */
struct vd_ynode *vd_ytree_read_one(const char *path, const char *buf, size_t len,
				   const struct vd_ytree_opts *o, struct vd_diag_file *df);

void vd_ytree_free(struct vd_ynode *n);

/* ========================================================== small helpers */

/* An empty value: nothing, "~" or null/Null/NULL, unquoted. */
bool vd_ytree_is_null(const struct vd_ynode *n);

/* The value under KEY in mapping MAP (its first occurrence; a repeated key
 * was reported), or NULL when absent or MAP is not a mapping. */
const struct vd_ynode *vd_ytree_get(const struct vd_ynode *map, const char *key);

/* What N is, for "'x' must be a mapping, not ...": "a mapping", "a list",
 * "an alias", "empty", or the value itself in quotes. Returns BUF. */
const char *vd_ytree_what(const struct vd_ynode *n, char *buf, size_t size);

#define VD_YTREE_WHAT(n) vd_ytree_what((n), (char[64]){ 0 }, 64)

/* Report at node N's line and column. */
void vd_ytree_diag(struct vd_diag_file *df, const struct vd_ynode *n, const char *fmt, ...)
	VD_PRINTF(3, 4);

/* ============================================================== checking */

struct vd_ykey;
struct vd_ysection;

/* A checker's state. df and the two leniencies are all the value readers
 * use; the rest is for vd_ytree_walk(). */
struct vd_ycheck {
	struct vd_diag_file *df;
	bool quoted_numbers; /* "5" reads as 5, "true" as true (else refused) */
	bool bare_seconds;   /* a duration may be a plain number of seconds */

	void *base;          /* the struct the keys' offsets point into */
	void *arg;           /* the format's own state, for its custom setters */
	const struct vd_ynode **at; /* by key field: the value node, when given */
	bool *bad;           /* by key field: the value was refused */
	const struct vd_ysection *top; /* where a key at the wrong level is looked for */
	const char *owner;   /* "service 'web'" in messages, or NULL */
	int variant;         /* which keys with .only apply; -1 while unknown */
	/* Report a key of another variant ("'vm' is a libvirt key, ..."). */
	void (*wrong_variant)(struct vd_ycheck *c, const struct vd_ykey *k,
			      const struct vd_ynode *key);
};

/* "invalid value 'V' for 'PATH': REASON" at V. Returns -1. */
int vd_ytree_bad_value(struct vd_ycheck *c, const struct vd_ynode *v, const char *path,
		       const char *reason);

/* The text of V when it is a non-empty scalar; else NULL, having reported
 * "'PATH' must be EXPECTED, not WHAT" (nothing for an alias). */
const char *vd_ytree_scalar(struct vd_ycheck *c, const struct vd_ynode *v, const char *path,
			    const char *expected);

/* Like vd_ytree_scalar() for numbers and booleans: a quoted value is
 * refused ("expected EXPECTED, not a quoted string") unless the format
 * takes quoted numbers. */
const char *vd_ytree_plain(struct vd_ycheck *c, const struct vd_ynode *v, const char *path,
			   const char *expected);

/* Whether V is of KIND (a scalar must not be empty); if not, reports
 * "'PATH' must be a mapping|a list|a value, not WHAT" (nothing for an alias). */
bool vd_ytree_want(struct vd_ycheck *c, const struct vd_ynode *v, enum vd_ynode_kind kind,
		   const char *path);

/* The value readers: 0 with *out set, or -1 having reported why. */
int vd_ytree_int(struct vd_ycheck *c, const struct vd_ynode *v, const char *path, int64_t min,
		 int64_t max, int64_t *out);
/* A decimal number in [MIN, MAX], or (MIN, MAX] when MIN_OPEN. */
int vd_ytree_number(struct vd_ycheck *c, const struct vd_ynode *v, const char *path,
		    double min, bool min_open, double max, double *out);
int vd_ytree_bool(struct vd_ycheck *c, const struct vd_ynode *v, const char *path, bool *out);
/* "500ms", "1m30s" (vd_units_parse_duration_ms()), or seconds when the format
 * takes bare seconds; at least MIN_MS. */
int vd_ytree_duration(struct vd_ycheck *c, const struct vd_ynode *v, const char *path,
		      int64_t min_ms, int64_t *ms);
int vd_ytree_size(struct vd_ycheck *c, const struct vd_ynode *v, const char *path,
		  int64_t *bytes);
int vd_ytree_cpus(struct vd_ycheck *c, const struct vd_ynode *v, const char *path,
		  int64_t *milli);
/* One of NAMES (NULL-terminated): *out is its index. Else "expected one of
 * a, b, c" with a suggestion for a near miss. */
int vd_ytree_enum(struct vd_ycheck *c, const struct vd_ynode *v, const char *path,
		  const char *const *names, int *out);
/* A string, copied into *out (which is freed first). */
int vd_ytree_string(struct vd_ycheck *c, const struct vd_ynode *v, const char *path,
		    char **out);

/* Report KEY as unknown: "unknown key 'KEY'" + " in 'SECTION'" (when not
 * NULL) + " of OWNER" / " in OWNER" (c->owner) + " (did you mean 'x'?)" for
 * a near miss among NAMES (N of them, or up to a NULL), else OTHERWISE (a
 * hint such as " (expected a, b)", or NULL). */
void vd_ytree_unknown_key(struct vd_ycheck *c, const struct vd_ynode *key, const char *section,
			  const char *const *names, size_t n, const char *otherwise);

/* ============================================================ key tables */

enum vd_ytype {
	VD_YSTRING,   /* char * (copied); unset when NULL */
	VD_YINT,      /* int in [min, max] */
	VD_YBOOL,     /* bool */
	VD_YNUMBER,   /* double in (min, max]; unset when <= min */
	VD_YDURATION, /* int64_t ms, >= min; unset when < min. JSON: "1m30s", or ms */
	VD_YSIZE,     /* int64_t bytes. JSON: bytes */
	VD_YCPUS,     /* int64_t milli-CPUs. JSON: 1.5, or milli-CPUs */
	VD_YENUM,     /* int, an index in arg (NULL-terminated names) */
	VD_YSECTION,  /* a mapping: the keys of the struct vd_ysection at arg */
	VD_YCUSTOM,   /* set and put do it all */
};

/* A key's setter: check V (the value, at PATH like "health.interval") and
 * store it; 0, or -1 having reported why. */
typedef int (*vd_yset_fn)(struct vd_ycheck *c, const struct vd_ykey *k, const char *path,
			  const struct vd_ynode *v);

/* A key's writer: its value in BASE as JSON in *out (NULL: unset, left
 * out); -1 when out of memory. */
typedef int (*vd_yput_fn)(const struct vd_ykey *k, const void *base, unsigned flags,
			  json_t **out);

struct vd_ykey {
	const char *name;
	enum vd_ytype type;
	size_t off;        /* where the value goes in the base struct */
	int64_t min, max;  /* ranges of integers, numbers and durations */
	const void *arg;   /* enum names, or the struct vd_ysection of a section */
	int field;         /* the format's index in at[] and bad[] */
	int only;          /* 0, or 1 + the only variant that has this key */
	vd_yset_fn set;    /* NULL: the type's own reader */
	vd_yput_fn put;    /* NULL: the type's own writer */
};

struct vd_ysection {
	const char *path;  /* "resources"; NULL at the top level */
	const struct vd_ykey *keys;
	size_t nkeys;
	size_t enabled;    /* 1 + the offset of a bool set when the section is
			      given (written only when true); 0 = always there */
};

/* Where key K's value lives in c->base. */
void *vd_ytree_field(struct vd_ycheck *c, const struct vd_ykey *k);

/* Check every key of the mapping MAP against SEC: repeated keys are
 * skipped, keys must be plain names, unknown ones get a suggestion (or
 * "'x' belongs under 'y'" when a section of c->top has it), keys of another
 * variant go to c->wrong_variant, and each value to its key's setter, with
 * c->at[] and c->bad[] recording the outcome. */
void vd_ytree_walk(struct vd_ycheck *c, const struct vd_ysection *sec,
		   const struct vd_ynode *map);

/* Write the struct BASE described by SEC as a JSON object, VARIANT
 * choosing among keys with .only. Without flags, in the file's own format
 * (so that the reader takes it back: JSON is YAML), unset values left out;
 * with VD_YJSON_UNITS, normalised for tools: durations in ms ("interval" ->
 * "interval_ms"), sizes in bytes ("memory" -> "memory_bytes"), CPUs in
 * milli-CPUs ("cpus" -> "milli_cpus"), and every key present, null when
 * unset or not for this variant. New reference; NULL when out of memory. */
#define VD_YJSON_UNITS 1u
json_t *vd_ytree_json(const struct vd_ysection *sec, const void *base, int variant,
		      unsigned flags);

#endif
