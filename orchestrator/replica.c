/*
 * Replica records and lists of them (see vd/replica.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vd/labels.h"
#include "vd/replica.h"

void
vd_replica_labels_clear(struct vd_labels *l)
{
	free(l->service);
	free(l->spec_hash);
	free(l->manifest);
	free(l->owner);
	memset(l, 0, sizeof(*l));
}

int
vd_replica_labels_copy(struct vd_labels *dst, const struct vd_labels *src)
{
	memset(dst, 0, sizeof(*dst));
	dst->index = src->index;
	if ((src->service && !(dst->service = strdup(src->service))) ||
	    (src->spec_hash && !(dst->spec_hash = strdup(src->spec_hash))) ||
	    (src->manifest && !(dst->manifest = strdup(src->manifest))) ||
	    (src->owner && !(dst->owner = strdup(src->owner)))) {
		vd_replica_labels_clear(dst);
		return -1;
	}
	return 0;
}

void
vd_replica_clear(struct vd_replica *r)
{
	free(r->id);
	free(r->name);
	vd_replica_labels_clear(&r->labels);
	memset(r, 0, sizeof(*r));
}

void
vd_replica_list_clear(struct vd_replica_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		vd_replica_clear(&l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

struct vd_replica *
vd_replica_list_add(struct vd_replica_list *l)
{
	struct vd_replica *v = realloc(l->v, (l->n + 1) * sizeof(*v));

	if (!v)
		return NULL;
	l->v = v;
	memset(&v[l->n], 0, sizeof(v[0]));
	return &v[l->n++];
}

int
vd_replica_list_move(struct vd_replica_list *to, struct vd_replica_list *from)
{
	struct vd_replica *v;

	if (!from->n)
		return 0;
	if (!(v = realloc(to->v, (to->n + from->n) * sizeof(*v))))
		return -1;
	memcpy(v + to->n, from->v, from->n * sizeof(*v));
	to->v = v;
	to->n += from->n;
	free(from->v); /* the records moved */
	from->v = NULL;
	from->n = 0;
	return 0;
}

static int
by_service_index(const void *a, const void *b)
{
	const struct vd_replica *x = a, *y = b;
	int c = strcmp(x->labels.service ? x->labels.service : "",
		       y->labels.service ? y->labels.service : "");

	return c ? c : (x->labels.index > y->labels.index) - (x->labels.index < y->labels.index);
}

void
vd_replica_list_sort(struct vd_replica_list *l)
{
	if (l->n > 1)
		qsort(l->v, l->n, sizeof(l->v[0]), by_service_index);
}

void
vd_replica_name(char *buf, size_t size, const char *service, int index)
{
	snprintf(buf, size, VD_NAME_PREFIX "%s-%d", service, index);
}

const char *
vd_replica_state_name(enum vd_replica_state s)
{
	static const char *const names[] = {
		[VD_STATE_UNKNOWN] = "unknown", [VD_STATE_CREATED] = "created",
		[VD_STATE_RUNNING] = "running", [VD_STATE_PAUSED] = "paused",
		[VD_STATE_EXITED] = "exited",	[VD_STATE_DEAD] = "dead",
	};

	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "unknown";
}
