/*
 * Diagnostics: every mistake in an input file as "FILE:LINE:COL: message",
 * collected (not printed where found), sorted into file order, printed once
 * by the command. Manifests, load profiles and experiment files report this
 * way, and anything that reports an unknown name can ask for a suggestion.
 *
 *   struct vd_diags diags = VD_DIAGS_INIT;
 *   struct vd_diag_file df;
 *
 *   vd_diag_file_init(&df, &diags, 100);
 *   vd_diag_file_begin(&df, "web.yaml", 0);
 *   vd_diag_at(&df, 3, 7, "invalid value '%s' for '%s': ...", ...);
 *   ...
 *   if (vd_diag_file_end(&df, err) < 0) {       (err: "3 errors in web.yaml")
 *           vd_diags_print(&diags, stderr);
 *           vd_diags_clear(&diags);
 *   }
 */
#ifndef VD_DIAG_H
#define VD_DIAG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "vd/error.h"

/* One diagnostic. line and col are 1-based; line 0 means the whole file. */
struct vd_diag {
	char *file;
	int line, col;
	char *msg;
	size_t file_index, seq; /* sort keys: the file's place in the set, arrival */
};

struct vd_diags {
	struct vd_diag *items;
	size_t n, cap;
};

#define VD_DIAGS_INIT { NULL, 0, 0 }

/* Print each diagnostic as "FILE:LINE:COL: message" (or "FILE: message"
 * for line 0), one a line. */
void vd_diags_print(const struct vd_diags *diags, FILE *f);

/* Free the diagnostics and empty the list, which stays usable. */
void vd_diags_clear(struct vd_diags *diags);

/* Sort items [from, n) into file order: file, line, column, arrival. */
void vd_diags_sort(struct vd_diags *diags, size_t from);

/*
 * Where the diagnostics of the file being read go: its name and place in
 * the set, and its count against a per-file cap. At the cap one last
 * diagnostic says "too many errors" (placed where reading got to, after
 * everything said before it) and stopped is set: readers and checkers stop
 * there. Out of memory is remembered in oom, across files.
 */
struct vd_diag_file {
	struct vd_diags *diags;
	size_t max;        /* diagnostics per file; 0 = no cap */
	size_t first;      /* diags->n at init: this run's diagnostics start there */
	const char *file;  /* as named in diagnostics: points into name */
	char name[4096];   /* the file's path, tidied (vd/file.h) */
	size_t index;      /* the file's place in the set */
	size_t count;      /* this file's diagnostics so far */
	int line, col;     /* how far reading got (1-based), set by the reader */
	bool stopped;      /* the cap was reached: nothing more is recorded */
	bool oom;
};

/* Start collecting into DIAGS (which may already hold diagnostics), at
 * most MAX per file. */
void vd_diag_file_init(struct vd_diag_file *df, struct vd_diags *diags, size_t max);

/* Switch to FILE, the INDEX-th of the set: its count starts from zero. */
void vd_diag_file_begin(struct vd_diag_file *df, const char *file, size_t index);

/* Record a diagnostic at LINE:COL of the current file (line 0: the whole
 * file). Nothing once stopped; on out of memory sets df->oom. */
void vd_diag_at(struct vd_diag_file *df, int line, int col, const char *fmt, ...)
	VD_PRINTF(4, 5);
void vd_diag_vat(struct vd_diag_file *df, int line, int col, const char *fmt, va_list ap);

/* Sort this run's diagnostics into file order. Returns 0 when there are
 * none; otherwise -1 with err = VD_EXIT_INPUT and a summary, "1 error in
 * FILE", "3 errors in FILE" or "5 errors in 2 files". Out of memory is the
 * caller's to check first (df->oom). */
int vd_diag_file_end(struct vd_diag_file *df, struct vd_error *err);

/*
 * Did you mean: the closest known name to one typed, when it is close
 * enough to be a typo (at most 2 edits, fewer than either name's length;
 * a swap of two neighbours is one edit). For names in an array, use
 * vd_diag_closest(); for names spread over a table, offer each in turn:
 *
 *   struct vd_diag_guess g;
 *   vd_diag_guess_init(&g, typed);
 *   for (i = 0; i < ncommands; i++)
 *           vd_diag_guess_offer(&g, commands[i].name);
 *   if (g.pick) ...
 */
struct vd_diag_guess {
	const char *typed;
	const char *pick; /* the closest so far, or NULL */
	size_t dist;
};

void vd_diag_guess_init(struct vd_diag_guess *g, const char *typed);
void vd_diag_guess_offer(struct vd_diag_guess *g, const char *known);

/* The closest of NAMES (N of them, or up to a NULL) to TYPED, or NULL. */
const char *vd_diag_closest(const char *typed, const char *const *names, size_t n);

/* " (did you mean 'NAME'?)" in BUF for the closest of NAMES, or "". */
const char *vd_diag_did_you_mean(const char *typed, const char *const *names, size_t n,
				 char *buf, size_t size);

/* Edits from A to B (optimal string alignment distance), SIZE_MAX for
 * names over 32 bytes, which are not typos. */
size_t vd_diag_distance(const char *a, const char *b);

/* S made fit for a message: at most 40 bytes, "..." when cut (never inside
 * a UTF-8 character), control characters as '?'. Returns BUF (SIZE >= 8). */
const char *vd_diag_show(const char *s, char *buf, size_t size);

#define VD_SHOW(s) vd_diag_show((s), (char[48]){ 0 }, 48)

#endif
