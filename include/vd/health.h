/*
 * Health checks: does a replica answer the way its manifest says it should?
 *
 * Results are codes, not strings (as in relayd); vd_health_result_name()
 * says them in words. vd_health_check() is one blocking check bounded by the
 * service's health timeout, for `apply --wait` and `get`.
 */
#ifndef VD_HEALTH_H
#define VD_HEALTH_H

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

#endif
