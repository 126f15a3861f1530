/*
 * struct vd_error: set by the callee, wrapped on the way up, printed once.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "vd/error.h"

static void
vformat(struct vd_error *err, const char *fmt, va_list ap)
{
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
}

int
vd_error_set(struct vd_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return -1;
	err->code = code;
	err->sys_errno = 0;
	va_start(ap, fmt);
	vformat(err, fmt, ap);
	va_end(ap);
	return -1;
}

int
vd_error_errno(struct vd_error *err, int errnum, const char *fmt, ...)
{
	va_list ap;
	size_t len;

	if (!err)
		return -1;
	err->code = VD_EXIT_FAILURE;
	err->sys_errno = errnum;
	va_start(ap, fmt);
	vformat(err, fmt, ap);
	va_end(ap);
	len = strlen(err->msg);
	snprintf(err->msg + len, sizeof(err->msg) - len, ": %s", strerror(errnum));
	return -1;
}

int
vd_error_wrap(struct vd_error *err, const char *fmt, ...)
{
	char ctx[VD_ERROR_MSG_MAX];
	size_t clen, mlen;
	va_list ap;

	if (!err)
		return -1;
	va_start(ap, fmt);
	vsnprintf(ctx, sizeof(ctx) - 2, fmt, ap);
	va_end(ap);
	strcat(ctx, ": ");
	clen = strlen(ctx);
	mlen = strnlen(err->msg, sizeof(err->msg) - 1);
	if (clen + mlen >= sizeof(err->msg))
		mlen = sizeof(err->msg) - 1 - clen;
	memmove(err->msg + clen, err->msg, mlen);
	memcpy(err->msg, ctx, clen);
	err->msg[clen + mlen] = '\0';
	if (err->code == 0)
		err->code = VD_EXIT_FAILURE;
	return -1;
}

void
vd_error_clear(struct vd_error *err)
{
	if (!err)
		return;
	err->code = 0;
	err->sys_errno = 0;
	err->msg[0] = '\0';
}

void
vd_error_print(const struct vd_error *err, const char *prog)
{
	fprintf(stderr, "%s: error: %s\n", prog, err->msg[0] ? err->msg : "unknown failure");
}
