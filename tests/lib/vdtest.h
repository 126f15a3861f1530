/*
 * Helpers shared by the test programs: loopback ports, HTTP on 127.0.0.1 and
 * on the Docker socket, and bounded polling. Tests include cmocka after this.
 */
#ifndef VD_TEST_H
#define VD_TEST_H

#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

/* A TCP port on 127.0.0.1 that was free a moment ago. */
int vt_free_port(void);

/* GET URL (on 127.0.0.1) with a timeout; returns the status, or -1 when no
 * answer came. *body (may be NULL) gets the response body, to free(). */
long vt_http_get(const char *url, char **body, long timeout_ms);

/* Poll URL until it answers 200 or SECONDS pass; returns 0 when it did. */
int vt_wait_http(const char *url, int seconds);

/* A request to the Docker Engine API on /var/run/docker.sock (path starts
 * with '/'); body is JSON text or NULL. Returns the HTTP status (-1 when the
 * engine did not answer) and, if reply is not NULL, the parsed JSON reply
 * (NULL when the body is empty or not JSON). */
long vt_docker(const char *method, const char *path, const char *body, json_t **reply);

/* Path of a file under the source tree ($VD_ROOT, default "."). */
const char *vt_path(const char *rel);

/* getenv with a default. */
const char *vt_env(const char *name, const char *dflt);

#endif
