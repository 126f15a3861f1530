/*
 * A growing string buffer with a sticky out-of-memory flag.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vd/strbuf.h"

static bool
reserve(struct vd_strbuf *b, size_t more)
{
	size_t cap;
	char *p;

	if (b->oom)
		return false;
	if (b->len + more + 1 <= b->cap)
		return true;
	cap = b->cap ? b->cap : 256;
	while (cap < b->len + more + 1)
		cap *= 2;
	p = realloc(b->s, cap);
	if (!p) {
		b->oom = true;
		return false;
	}
	b->s = p;
	b->cap = cap;
	return true;
}

void
vd_strbuf_append(struct vd_strbuf *b, const char *s, size_t n)
{
	if (!reserve(b, n))
		return;
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

void
vd_strbuf_puts(struct vd_strbuf *b, const char *s)
{
	vd_strbuf_append(b, s, strlen(s));
}

void
vd_strbuf_printf(struct vd_strbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void
vd_strbuf_xml(struct vd_strbuf *b, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&':
			vd_strbuf_puts(b, "&amp;");
			break;
		case '<':
			vd_strbuf_puts(b, "&lt;");
			break;
		case '>':
			vd_strbuf_puts(b, "&gt;");
			break;
		case '\'':
			vd_strbuf_puts(b, "&apos;");
			break;
		case '"':
			vd_strbuf_puts(b, "&quot;");
			break;
		default:
			vd_strbuf_append(b, s, 1);
		}
	}
}

bool
vd_strbuf_failed(const struct vd_strbuf *b)
{
	return b->oom;
}

char *
vd_strbuf_steal(struct vd_strbuf *b)
{
	char *s;

	if (b->oom) {
		vd_strbuf_free(b);
		return NULL;
	}
	s = b->s ? b->s : strdup("");
	b->s = NULL;
	b->len = b->cap = 0;
	return s;
}

void
vd_strbuf_free(struct vd_strbuf *b)
{
	free(b->s);
	b->s = NULL;
	b->len = b->cap = 0;
	b->oom = false;
}
