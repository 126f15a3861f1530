/*
 * The restart book: marks per replica index, the back-off arithmetic, and
 * the book's file (see vd/restarts.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vd/file.h"
#include "vd/restarts.h"

struct vd_restart_mark *
vd_restarts_find(struct vd_restarts *b, const char *service, int index, bool make)
{
	struct vd_restart_mark *m;

	for (size_t i = 0; i < b->n; i++)
		if (b->v[i].index == index && strcmp(b->v[i].service, service) == 0)
			return &b->v[i];
	if (!make || !(m = realloc(b->v, (b->n + 1) * sizeof(*m))))
		return NULL;
	b->v = m;
	m = &m[b->n++];
	memset(m, 0, sizeof(*m));
	snprintf(m->service, sizeof(m->service), "%s", service);
	m->index = index;
	return m;
}

/* The same, for reading. */
static const struct vd_restart_mark *
find(const struct vd_restarts *b, const char *service, int index)
{
	for (size_t i = 0; i < b->n; i++)
		if (b->v[i].index == index && strcmp(b->v[i].service, service) == 0)
			return &b->v[i];
	return NULL;
}

int64_t
vd_restarts_held_until(const struct vd_restarts *b, const char *service, int index)
{
	const struct vd_restart_mark *m = find(b, service, index);

	return m ? m->hold_until : 0;
}

void
vd_restarts_sick(struct vd_restarts *b, const char *service, int index, const char *id,
		 const char *why)
{
	struct vd_restart_mark *m = vd_restarts_find(b, service, index, true);

	if (!m)
		return;
	snprintf(m->sick_id, sizeof(m->sick_id), "%s", id);
	snprintf(m->sick_why, sizeof(m->sick_why), "%s", why);
}

const char *
vd_restarts_sick_why(const struct vd_restarts *b, const char *service, int index,
		     const char *id)
{
	const struct vd_restart_mark *m = find(b, service, index);

	return m && m->sick_id[0] && strcmp(m->sick_id, id) == 0 ? m->sick_why : NULL;
}

bool
vd_restarts_replace(struct vd_restarts *b, const char *service, int index, const char *why,
		    int64_t now)
{
	struct vd_restart_mark *m = vd_restarts_find(b, service, index, true);

	if (!m || m->hold_until > now)
		return false;
	m->restarts++;
	snprintf(m->reason, sizeof(m->reason), "%s", why);
	/* this one goes now; the next one of this index waits */
	m->backoff_ms = m->backoff_ms ? m->backoff_ms * 2 : VD_RESTARTS_FIRST_MS;
	if (m->backoff_ms > VD_RESTARTS_MAX_MS)
		m->backoff_ms = VD_RESTARTS_MAX_MS;
	m->hold_until = now + m->backoff_ms;
	m->sick_id[0] = '\0';
	m->sick_why[0] = '\0';
	return true;
}

void
vd_restarts_healthy(struct vd_restarts *b, const char *service, int index, int64_t healthy_ms)
{
	struct vd_restart_mark *m;

	if (healthy_ms >= VD_RESTARTS_STABLE_MS && (m = vd_restarts_find(b, service, index, false)))
		m->backoff_ms = 0;
}

int64_t
vd_restarts_next_due(const struct vd_restarts *b, int64_t now)
{
	int64_t next = -1;

	for (size_t i = 0; i < b->n; i++) {
		int64_t left = b->v[i].hold_until - now;

		if (left > 0 && (next < 0 || left < next))
			next = left;
	}
	return next;
}

bool
vd_restarts_forget(struct vd_restarts *b, const char *service)
{
	size_t n = 0, was = b->n;

	for (size_t i = 0; i < b->n; i++)
		if (strcmp(b->v[i].service, service) != 0)
			b->v[n++] = b->v[i];
	b->n = n;
	return n != was;
}

json_t *
vd_restarts_to_json(const struct vd_restarts *b)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < b->n; i++) {
		const struct vd_restart_mark *m = &b->v[i];

		if (m->restarts)
			json_array_append_new(a, json_pack("{s:s, s:i, s:i, s:s, s:I}", "service",
							   m->service, "index", m->index,
							   "restarts", m->restarts, "reason",
							   m->reason, "backoff_ms",
							   (json_int_t)m->backoff_ms));
	}
	return a;
}

void
vd_restarts_from_json(struct vd_restarts *b, const json_t *j)
{
	const json_t *e;
	size_t i;

	if (!json_is_array(j))
		return;
	json_array_foreach(j, i, e) {
		const char *svc = json_string_value(json_object_get(e, "service"));
		const char *why = json_string_value(json_object_get(e, "reason"));
		json_int_t index = json_integer_value(json_object_get(e, "index"));
		json_int_t restarts = json_integer_value(json_object_get(e, "restarts"));
		struct vd_restart_mark *m;

		if (!svc || index < 0 || index > 1000000 || restarts < 0 ||
		    !(m = vd_restarts_find(b, svc, (int)index, true)))
			continue;
		m->restarts = restarts > 1000000000 ? 1000000000 : (int)restarts;
		m->backoff_ms = json_integer_value(json_object_get(e, "backoff_ms"));
		if (m->backoff_ms < 0 || m->backoff_ms > VD_RESTARTS_MAX_MS)
			m->backoff_ms = VD_RESTARTS_MAX_MS;
		snprintf(m->reason, sizeof(m->reason), "%s", why ? why : "");
	}
}

int
vd_restarts_save(const struct vd_restarts *b, const char *path, struct vd_error *err)
{
	json_t *a = vd_restarts_to_json(b);
	char *text = a ? json_dumps(a, JSON_INDENT(1)) : NULL;
	int ret;

	json_decref(a);
	if (!text)
		return vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
	ret = vd_file_write_atomic(path, text, strlen(text), err);
	free(text);
	return ret;
}

int
vd_restarts_load(struct vd_restarts *b, const char *path, struct vd_error *err)
{
	json_error_t jerr;
	json_t *a;

	if (access(path, F_OK) < 0)
		return 0;
	if (!(a = json_load_file(path, 0, &jerr)) || !json_is_array(a)) {
		json_decref(a);
		return vd_error_set(err, VD_EXIT_FAILURE, "%s: %s", path,
				    a ? "not a list" : jerr.text);
	}
	vd_restarts_from_json(b, a);
	json_decref(a);
	return 0;
}

void
vd_restarts_release(struct vd_restarts *b)
{
	free(b->v);
	b->v = NULL;
	b->n = 0;
}
