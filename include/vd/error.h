/*
 * Errors: filled by the callee, printed once by the top level.
 *
 * A function that can fail takes a `struct vd_error *err` as its last
 * argument, returns -1 (or NULL) and fills it; callers on the way up may add
 * context with vd_error_wrap(). Messages follow git's style: lowercase, no
 * trailing period, the subject quoted ('%s').
 *
 * The code is the process exit status the failure maps to (DESIGN.md):
 * 1 runtime failure, 2 invalid input (usage, manifest), 3 engine unreachable.
 */
#ifndef VD_ERROR_H
#define VD_ERROR_H

#include <stddef.h>

enum vd_exit {
	VD_EXIT_OK = 0,
	VD_EXIT_FAILURE = 1, /* runtime failure */
	VD_EXIT_INPUT = 2,   /* invalid input: usage, manifest; nothing changed */
	VD_EXIT_ENGINE = 3,  /* an engine (dockerd, libvirtd) did not answer */
};

#define VD_ERROR_MSG_MAX 2048

struct vd_error {
	int code;     /* enum vd_exit; 0 while no error is set */
	int sys_errno; /* errno behind the failure, or 0 */
	char msg[VD_ERROR_MSG_MAX];
};

#define VD_ERROR_INIT { 0, 0, { 0 } }

#if defined(__GNUC__)
#define VD_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define VD_PRINTF(f, a)
#endif

/* Set err to CODE and a formatted message. Returns -1. err may be NULL. */
int vd_error_set(struct vd_error *err, int code, const char *fmt, ...) VD_PRINTF(3, 4);

/* Like vd_error_set() with VD_EXIT_FAILURE, appending ": strerror(errnum)". */
int vd_error_errno(struct vd_error *err, int errnum, const char *fmt, ...) VD_PRINTF(3, 4);

/* Prefix the message already in err with "context: ". Returns -1. */
int vd_error_wrap(struct vd_error *err, const char *fmt, ...) VD_PRINTF(2, 3);

/* Forget a previous error. */
void vd_error_clear(struct vd_error *err);

/* Print "PROG: error: MESSAGE" to stderr. */
void vd_error_print(const struct vd_error *err, const char *prog);

#endif
