/*
 * The restart book: what the controller remembers of each replica index
 * across replacements, and the back-off arithmetic. Pure but for load and
 * save; the controller keeps it behind its lock and in DIR/restarts.json,
 * so that a new controller goes on counting and backing off where the last
 * one stopped.
 *
 * A replica that dies or is found sick is replaced at once the first time;
 * each next replacement of the same index waits twice as long as the last
 * (1 s, 2 s, 4 s ... 5 min). A minute of health starts it over.
 */
#ifndef VD_RESTARTS_H
#define VD_RESTARTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vd/error.h"

#define VD_RESTARTS_FIRST_MS 1000    /* the wait after the first replacement */
#define VD_RESTARTS_MAX_MS 300000    /* the longest wait */
#define VD_RESTARTS_STABLE_MS 60000  /* healthy this long: the back-off starts over */

struct vd_restart_mark {
	char service[64];
	int index;
	int restarts;
	char reason[128];   /* why it was last replaced */
	int64_t backoff_ms; /* the wait before the next replacement */
	int64_t hold_until; /* monotonic ms: no replacement before */
	char sick_id[80];   /* this replica failed its health checks ... */
	char sick_why[96];  /* ... so */
};

struct vd_restarts {
	struct vd_restart_mark *v;
	size_t n;
};

/* The mark of SERVICE/INDEX; with make, a new one when there is none (NULL
 * when out of memory). The pointer is good until the next change. */
struct vd_restart_mark *vd_restarts_find(struct vd_restarts *b, const char *service, int index,
					 bool make);

/* Replicas of SERVICE/INDEX may not be replaced before this (monotonic ms;
 * 0 when free to). */
int64_t vd_restarts_held_until(const struct vd_restarts *b, const char *service, int index);

/* The replica ID of SERVICE/INDEX failed its health checks for WHY: the
 * next heal replaces it. */
void vd_restarts_sick(struct vd_restarts *b, const char *service, int index, const char *id,
		      const char *why);

/* Why replica ID of SERVICE/INDEX was found sick, or NULL. */
const char *vd_restarts_sick_why(const struct vd_restarts *b, const char *service, int index,
				 const char *id);

/* Replace SERVICE/INDEX for WHY at NOW, if it is not held back: count it,
 * note why, and hold the next replacement back by the doubled back-off.
 * False (nothing noted) while it is held back or out of memory. */
bool vd_restarts_replace(struct vd_restarts *b, const char *service, int index, const char *why,
			 int64_t now);

/* SERVICE/INDEX has been healthy for HEALTHY_MS: from a minute on, its next
 * replacement is immediate again. */
void vd_restarts_healthy(struct vd_restarts *b, const char *service, int index,
			 int64_t healthy_ms);

/* The ms from NOW until the earliest held index is due; -1 when none is. */
int64_t vd_restarts_next_due(const struct vd_restarts *b, int64_t now);

/* Forget every mark of SERVICE; true when there was one. */
bool vd_restarts_forget(struct vd_restarts *b, const char *service);

/* The book as JSON (indices that were replaced at least once), and back. A
 * book read back holds nothing back: hold times are this process's clock;
 * back-off lengths and counts carry over. Bad entries are skipped. */
json_t *vd_restarts_to_json(const struct vd_restarts *b);
void vd_restarts_from_json(struct vd_restarts *b, const json_t *j);

/* Save to PATH atomically; load from PATH (a missing file is an empty book). */
int vd_restarts_save(const struct vd_restarts *b, const char *path, struct vd_error *err);
int vd_restarts_load(struct vd_restarts *b, const char *path, struct vd_error *err);

void vd_restarts_release(struct vd_restarts *b);

#endif
