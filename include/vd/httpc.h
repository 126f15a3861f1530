/*
 * A small blocking HTTP/1.1 client for local daemons: the Docker Engine API
 * on its unix socket (or a tcp:// endpoint) and the controller's control
 * socket.
 *
 * One request per connection (Connection: close), the response parsed by
 * http-parser (Content-Length, chunked or close-delimited bodies), the body
 * handed over as it arrives. Every step is bounded by one deadline.
 *
 * Why not libcurl: it is what these calls used first, but loading libcurl
 * (and with it OpenSSL, GnuTLS, Kerberos, LDAP, ...) costs a process about
 * 6 MB of resident memory before the first call, which a daemon that speaks
 * plain HTTP to a unix socket does not need (tests/bench/controller.sh).
 */
#ifndef VD_HTTPC_H
#define VD_HTTPC_H

#include <stddef.h>

#include "vd/error.h"

struct vd_httpc_target {
	const char *unix_path; /* a unix socket, or NULL ... */
	const char *host;      /* ... a host and port */
	const char *port;
};

/* Body data as it arrives; return 0 to go on, -1 when it cannot be kept
 * (out of memory): the request then fails. */
typedef int (*vd_httpc_data_fn)(void *arg, const char *data, size_t len);

enum vd_httpc_failure {
	VD_HTTPC_CONNECT = 1, /* could not connect (err->sys_errno says why) */
	VD_HTTPC_TIMEOUT,     /* the deadline passed */
	VD_HTTPC_IO,          /* the connection failed or closed mid-way */
	VD_HTTPC_PROTOCOL,    /* the answer was not HTTP */
};

/*
 * Send METHOD PATH (with BODY of LEN bytes and CONTENT_TYPE when BODY is not
 * NULL) and read the answer within timeout_ms. Returns the HTTP status, or
 * -1 with err (code VD_EXIT_FAILURE, a message without the target's name)
 * and *failure set to why.
 */
int vd_httpc_request(const struct vd_httpc_target *t, const char *method, const char *path,
		     const char *content_type, const char *body, size_t len, int timeout_ms,
		     vd_httpc_data_fn on_data, void *arg, enum vd_httpc_failure *failure,
		     struct vd_error *err);

/*
 * GET PATH and keep the answer's header NAME (any case): its value, cut to
 * SIZE - 1 bytes, in VALUE, or "" when the answer has none. The body is
 * dropped. Returns the HTTP status, or -1 as vd_httpc_request().
 */
int vd_httpc_get_header(const struct vd_httpc_target *t, const char *path, const char *name,
			char *value, size_t size, int timeout_ms,
			enum vd_httpc_failure *failure, struct vd_error *err);

/* Connect to T within timeout_ms; a blocking socket, or -1 with err. */
int vd_httpc_connect(const struct vd_httpc_target *t, int timeout_ms, struct vd_error *err);

/* Percent-encode S for a URL query into a new string; NULL when out of memory. */
char *vd_httpc_escape(const char *s);

#endif
