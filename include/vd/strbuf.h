/*
 * A growing string: formatted appends, XML escaping, and taking the result.
 *
 * Appends never fail halfway: on out of memory the buffer remembers it, later
 * appends do nothing, and vd_strbuf_steal()/vd_strbuf_failed() report it
 * once at the end, so builders need not check every call.
 */
#ifndef VD_STRBUF_H
#define VD_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

#include "vd/error.h"

struct vd_strbuf {
	char *s;
	size_t len, cap;
	bool oom;
};

#define VD_STRBUF_INIT { NULL, 0, 0, false }

void vd_strbuf_append(struct vd_strbuf *b, const char *s, size_t n);
void vd_strbuf_puts(struct vd_strbuf *b, const char *s);
void vd_strbuf_printf(struct vd_strbuf *b, const char *fmt, ...) VD_PRINTF(2, 3);

/* Append s with &, <, >, ' and " as XML entities: safe in text and in
 * attributes quoted either way. */
void vd_strbuf_xml(struct vd_strbuf *b, const char *s);

/* True when an append ran out of memory. */
bool vd_strbuf_failed(const struct vd_strbuf *b);

/* The string (never NULL unless out of memory), owned by the caller; the
 * buffer is empty afterwards. */
char *vd_strbuf_steal(struct vd_strbuf *b);

void vd_strbuf_free(struct vd_strbuf *b);

#endif
