/*
 * Health checks: does a replica answer the way its manifest says it should?
 *
 * Results are codes, not strings (as in relayd); vd_health_result_name()
 * says them in words. vd_health_check() is one blocking check bounded by the
 * service's health timeout, for `apply --wait` and `get`; a probe
 * (vd_health_probe_start) is the same check on the event loop, for the
 * controller, which runs one per replica beside the balancer.
 */
#ifndef VD_HEALTH_H
#define VD_HEALTH_H

#include <stdint.h>

#include "vd/ev.h"
#include "vd/manifest.h"

enum vd_health_result {
	VD_HEALTH_OK,
	VD_HEALTH_NO_ADDRESS,     /* the replica has no published port (yet) */
	VD_HEALTH_CONNECT_FAIL,   /* refused or unreachable */
	VD_HEALTH_TIMEOUT,        /* no (whole) answer within the timeout */
	VD_HEALTH_HTTP_BAD_STATUS, /* answered, not 2xx or 3xx */
	VD_HEALTH_HTTP_BAD_REPLY, /* answered, not HTTP */
	VD_HEALTH_CLOSED,         /* closed without an answer */
};

/* One check of the replica at HOST:PORT (an IP literal) as svc->health says:
 * a TCP connect, or an HTTP GET of the path expecting 2xx or 3xx.
 * timeout_ms bounds the whole check (0 = the service's health timeout). */
enum vd_health_result vd_health_check(const struct vd_service *svc, const char *host, int port,
				      int timeout_ms);

const char *vd_health_result_name(enum vd_health_result r);

/* An asynchronous check in flight on a vd_ev loop. */
struct vd_health_probe;

/* A probe finished with R; called from the loop, once per probe. */
typedef void (*vd_health_done_fn)(void *arg, enum vd_health_result r);

/* What a probe checks. */
struct vd_health_spec {
	enum vd_health_kind kind; /* VD_HEALTH_TCP or VD_HEALTH_HTTP (vd/manifest.h) */
	const char *http_path;    /* copied; "/" when NULL */
	int64_t timeout_ms;       /* whole check; <= 0 = 1000 */
};

/* Start one check of HOST:PORT (an IP literal) on EV; done(arg, result) is
 * called exactly once, from the loop, never from inside this call. NULL when
 * out of memory (nothing will be called). done() may start probes and cancel
 * others; the probe is freed after it returns. Cancel every probe still in
 * flight before vd_ev_free(). */
struct vd_health_probe *vd_health_probe_start(struct vd_ev *ev, const struct vd_health_spec *spec,
					      const char *host, int port,
					      vd_health_done_fn done, void *arg);

/* Stop a check that has not finished: done is not called; the probe is freed
 * (after the loop's current round). */
void vd_health_probe_cancel(struct vd_health_probe *p);

#endif
