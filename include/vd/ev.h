/*
 * The event loop: epoll for file descriptors, a small heap of timers, and
 * work deferred to the end of each round of events.
 *
 * A file descriptor is watched through a struct vd_ev_handle that its owner
 * embeds (a connection, a listener): epoll hands the handle straight back, so
 * dispatch is a pointer call with no lookup. Objects that a later event of
 * the same round may still touch are freed with vd_ev_defer(), which runs
 * after the round (as Redis frees clients asynchronously).
 *
 * Time is the monotonic clock, read once per round: vd_ev_now_ms/us.
 */
#ifndef VD_EV_H
#define VD_EV_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "vd/error.h"

struct vd_ev;
struct vd_ev_handle;

/* An fd is ready: events are EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP bits. */
typedef void (*vd_ev_io_fn)(struct vd_ev *ev, struct vd_ev_handle *h, uint32_t events);

/* A timer fired: return the ms until it fires again, or -1 for never. */
typedef int64_t (*vd_ev_timer_fn)(struct vd_ev *ev, void *arg);

/* Work run after the current round of events. */
typedef void (*vd_ev_defer_fn)(void *arg);

struct vd_ev_handle {
	int fd;
	uint32_t events; /* what is watched now */
	vd_ev_io_fn fn;
};

struct vd_ev *vd_ev_new(struct vd_error *err);
void vd_ev_free(struct vd_ev *ev);

/* Watch h->fd for EVENTS (level-triggered), calling h->fn. */
int vd_ev_add(struct vd_ev *ev, struct vd_ev_handle *h, uint32_t events);
/* Change what is watched (0: nothing, the fd leaves epoll until watched
 * again); a no-op when it is already that. */
int vd_ev_set(struct vd_ev *ev, struct vd_ev_handle *h, uint32_t events);
/* Stop watching (before closing the fd). */
void vd_ev_del(struct vd_ev *ev, struct vd_ev_handle *h);

/* Call fn(arg) in after_ms; returns a timer id (> 0) or -1. */
int vd_ev_timer(struct vd_ev *ev, int64_t after_ms, vd_ev_timer_fn fn, void *arg);
void vd_ev_timer_cancel(struct vd_ev *ev, int id);

/* Run fn(arg) after the current round of events (or the next one). */
int vd_ev_defer(struct vd_ev *ev, vd_ev_defer_fn fn, void *arg);

/* Stop vd_ev_run() on SIGNO, taken through a signalfd: the signal is
 * blocked in the calling thread, so call this before starting other threads
 * (they inherit the mask). vd_ev_run() then returns SIGNO. */
int vd_ev_stop_on_signal(struct vd_ev *ev, int signo, struct vd_error *err);

/* Run until vd_ev_stop() or a stop signal. Returns 0, the signal, or -1. */
int vd_ev_run(struct vd_ev *ev);
void vd_ev_stop(struct vd_ev *ev);

int64_t vd_ev_now_ms(const struct vd_ev *ev);
int64_t vd_ev_now_us(const struct vd_ev *ev);

#endif
