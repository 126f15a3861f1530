/*
 * Scope-bound cleanup for every kind of resource vdctl holds.
 *
 *   _cleanup_free_ char *s = strdup(x);
 *   _cleanup_close_ int fd = open(...);
 *   return vd_steal_ptr(&s);        (ownership leaves the scope)
 *
 * Modules that hold library objects (json_t, CURL, virDomainPtr,
 * yaml_parser_t) define their own with VD_DEFINE_CLEANUP in their .c file.
 */
#ifndef VD_CLEANUP_H
#define VD_CLEANUP_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* VD_DEFINE_CLEANUP(name, type, freefn): a cleanup function `name` for a
 * variable of type `type`, calling freefn(value) when value is not NULL. */
#define VD_DEFINE_CLEANUP(name, type, freefn) \
	static inline void name(type *p) \
	{ \
		if (*p) \
			freefn(*p); \
	}

static inline void
vd_cleanup_free_(void *p)
{
	free(*(void **)p);
}

static inline void
vd_cleanup_close_(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}

static inline void
vd_cleanup_fclose_(FILE **f)
{
	if (*f)
		fclose(*f);
}

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(vd_cleanup_free_)
#define _cleanup_close_ _cleanup_(vd_cleanup_close_)
#define _cleanup_fclose_ _cleanup_(vd_cleanup_fclose_)

/* Take a pointer out of a cleanup variable: returns it, leaves NULL. */
static inline void *
vd_steal_ptr(void *pp)
{
	void **p = pp;
	void *v = *p;

	*p = NULL;
	return v;
}

/* Take an fd out of a cleanup variable: returns it, leaves -1. */
static inline int
vd_steal_fd(int *fd)
{
	int v = *fd;

	*fd = -1;
	return v;
}

#endif
