/*
 * Health checks: does a replica answer the way its manifest says it should?
 *
 * Results are codes, not strings (as in relayd); vd_health_result_name()
 * says them in words. A probe (vd_health_probe_start) is one check on an
 * event loop: the controller runs one per replica beside the balancer.
 * vd_health_wait() runs probes of many replicas at once on a loop of its
 * own, until each passed or a deadline, for apply's health gate and `get`;
 * vd_health_check() is one probe, waited for.
 */
#ifndef VD_HEALTH_H
#define VD_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
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

/* A replica to check, and how its checks went. */
struct vd_health_target {
	const struct vd_service *svc; /* its health settings */
	const char *host;             /* an IP literal */
	int port;
	enum vd_health_result result; /* the last check's */
	int http_status;              /* ... and its HTTP status, 0 when none */
	bool healthy;                 /* one check passed */
};

/* Target I just passed its check. */
typedef void (*vd_health_pass_fn)(void *arg, size_t i);

/*
 * Check the N targets at the same time, from the calling thread, until each
 * passed one check: a target that fails is checked again RETRY_MS later
 * (0 = 20 ms) until UNTIL_MS (vd_clock_ms() time). With until_ms 0, each is
 * checked once. timeout_ms bounds each check (0 = its service's health
 * timeout). on_pass, when given, hears of each as it passes. Returns how
 * many passed, or -1 when out of memory.
 */
int vd_health_wait(struct vd_health_target *t, size_t n, int64_t until_ms, int retry_ms,
		   int timeout_ms, vd_health_pass_fn on_pass, void *arg);

const char *vd_health_result_name(enum vd_health_result r);

/* The same into buf, with the status of a bad HTTP answer: "HTTP 404";
 * short enough for a table's column. Returns buf. */
const char *vd_health_describe(enum vd_health_result r, int http_status, char *buf,
			       size_t size);

/* An asynchronous check in flight on a vd_ev loop. */
struct vd_health_probe;

/* A probe finished with R (and the HTTP status of the answer, 0 when none
 * came); called from the loop, once per probe. */
typedef void (*vd_health_done_fn)(void *arg, enum vd_health_result r, int http_status);

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
