/*
 * Diagnostics: collecting "FILE:LINE:COL: message" under a per-file cap,
 * sorting them into file order and summing them up, plus the edit distance
 * behind every "did you mean" (see vd/diag.h).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vd/diag.h"
#include "vd/file.h"

/* ================================================================ the list */

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
vd_diags_sort(struct vd_diags *diags, size_t from)
{
	if (from < diags->n)
		qsort(diags->items + from, diags->n - from, sizeof(*diags->items), diag_cmp);
}

/* Append a diagnostic; takes MSG. */
static void
push(struct vd_diag_file *df, int line, int col, char *msg)
{
	struct vd_diags *d = df->diags;
	char *file = msg ? strdup(df->file) : NULL;

	if (file && d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 16;
		struct vd_diag *items = reallocarray(d->items, cap, sizeof(*items));

		if (items) {
			d->items = items;
			d->cap = cap;
		}
	}
	if (!file || d->n == d->cap) {
		free(file);
		free(msg);
		df->oom = true;
		return;
	}
	/* arrival order: n only grows between sorts of later ranges */
	d->items[d->n] = (struct vd_diag){ file, line, col, msg, df->index, d->n };
	d->n++;
	df->count++;
}

/* ================================================== one file's diagnostics */

void
vd_diag_file_init(struct vd_diag_file *df, struct vd_diags *diags, size_t max)
{
	*df = (struct vd_diag_file){ .diags = diags, .max = max, .first = diags->n,
				     .file = "", .line = 1, .col = 1 };
}

void
vd_diag_file_begin(struct vd_diag_file *df, const char *file, size_t index)
{
	vd_file_tidy_path(file, df->name, sizeof(df->name));
	df->file = strcmp(file, "<stdin>") == 0 ? file : df->name;
	df->index = index;
	df->count = 0;
	df->line = df->col = 1;
	df->stopped = false;
}

void
vd_diag_vat(struct vd_diag_file *df, int line, int col, const char *fmt, va_list ap)
{
	char *msg = NULL;

	if (df->stopped)
		return;
	if (df->max && df->count == df->max) {
		/* placed where reading got to, after everything reported so far */
		df->stopped = true;
		if (line < df->line || (line == df->line && col < df->col)) {
			line = df->line;
			col = df->col;
		}
		if (asprintf(&msg, "too many errors (%zu); not checking the rest of the file",
			     df->max) < 0)
			msg = NULL;
	} else if (vasprintf(&msg, fmt, ap) < 0) {
		msg = NULL;
	}
	push(df, line, col, msg);
}

void
vd_diag_at(struct vd_diag_file *df, int line, int col, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vd_diag_vat(df, line, col, fmt, ap);
	va_end(ap);
}

int
vd_diag_file_end(struct vd_diag_file *df, struct vd_error *err)
{
	struct vd_diags *d = df->diags;
	size_t n = d->n - df->first, nfiles = 0;

	if (n == 0)
		return 0;
	vd_diags_sort(d, df->first);
	for (size_t i = df->first; i < d->n; i++)
		if (i == df->first || d->items[i].file_index != d->items[i - 1].file_index)
			nfiles++;
	if (nfiles == 1)
		return vd_error_set(err, VD_EXIT_INPUT, "%zu error%s in %s", n, n == 1 ? "" : "s",
				    d->items[df->first].file);
	return vd_error_set(err, VD_EXIT_INPUT, "%zu errors in %zu files", n, nfiles);
}

/* ============================================================ did you mean */

size_t
vd_diag_distance(const char *a, const char *b)
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

void
vd_diag_guess_init(struct vd_diag_guess *g, const char *typed)
{
	*g = (struct vd_diag_guess){ typed, NULL, SIZE_MAX };
}

void
vd_diag_guess_offer(struct vd_diag_guess *g, const char *known)
{
	size_t dist = vd_diag_distance(g->typed, known);

	/* the first of equally close names wins */
	if (dist > 2 || dist >= strlen(known) || dist >= strlen(g->typed) || dist >= g->dist)
		return;
	g->dist = dist;
	g->pick = known;
}

const char *
vd_diag_closest(const char *typed, const char *const *names, size_t n)
{
	struct vd_diag_guess g;

	vd_diag_guess_init(&g, typed);
	for (size_t i = 0; i < n && names[i]; i++)
		vd_diag_guess_offer(&g, names[i]);
	return g.pick;
}

const char *
vd_diag_did_you_mean(const char *typed, const char *const *names, size_t n, char *buf,
		     size_t size)
{
	const char *pick = vd_diag_closest(typed, names, n);

	if (!pick)
		return "";
	snprintf(buf, size, " (did you mean '%s'?)", pick);
	return buf;
}

/* ================================================================ messages */

const char *
vd_diag_show(const char *s, char *buf, size_t size)
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
