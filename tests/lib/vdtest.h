/*
 * Helpers shared by the test programs: loopback ports, HTTP on 127.0.0.1 and
 * on the Docker socket, and bounded polling. Tests include cmocka after this.
 */
#ifndef VD_TEST_H
#define VD_TEST_H

#include <jansson.h>
#include <stdbool.h>
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

/* What a program run by vt_run() did. */
struct vt_result {
	int status;     /* exit status; 128+N when killed by signal N; -1 = not run */
	bool timed_out; /* killed at the timeout */
	char *out, *err;
	double secs;
};

struct vt_proc {
	pid_t pid;
	int out, err;
	double t0;
};

/* Start argv[0] (a path) with stdout and stderr on pipes, stdin on
 * /dev/null; then vt_finish() collects them and reaps it, killing it after
 * timeout_s seconds from its start. */
int vt_spawn(struct vt_proc *p, char *const argv[]);
void vt_finish(struct vt_proc *p, double timeout_s, struct vt_result *r);

/* Append n bytes to a NUL-terminated growing buffer. */
void vt_append(char **buf, size_t *len, const char *data, size_t n);

/* The whole of the file at path, NUL-terminated, to free(); NULL when it
 * cannot be opened. */
char *vt_read_text(const char *path);

/* How many times needle stands in s, not overlapping. */
size_t vt_count(const char *s, const char *needle);

/* Run argv[0] (a path) with stdin on /dev/null, collecting stdout and
 * stderr; kill it after timeout_s seconds. Returns r->status. */
int vt_run(char *const argv[], double timeout_s, struct vt_result *r);

/* Free what vt_run() collected. */
void vt_result_clear(struct vt_result *r);

/* Path of a file under the source tree ($VD_ROOT, default "."). */
const char *vt_path(const char *rel);

/* Print what a command run with vt_run() did (WHAT says why), on stderr. */
void vt_dump(const char *what, const struct vt_result *r);

/* Assert a command's exit status, showing its output when it differs; and
 * that TEXT holds NEEDLE, showing TEXT when it does not (cmocka asserts). */
#define assert_exit(r, code)                                 \
	do {                                                 \
		if ((r)->status != (code))                   \
			vt_dump("unexpected exit status", (r)); \
		assert_int_equal((r)->status, (code));       \
	} while (0)

#define assert_has(text, needle)                                                  \
	do {                                                                      \
		if (!strstr((text) ? (text) : "", (needle)))                      \
			fprintf(stderr, "--- missing '%s' in:\n%s---\n", (needle), \
				(text) ? (text) : "(null)");                      \
		assert_non_null(strstr((text) ? (text) : "", (needle)));          \
	} while (0)

/* getenv with a default. */
const char *vt_env(const char *name, const char *dflt);

/* Remove PATH and everything under it (rm -rf, without a shell); 0 or -1. */
int vt_rm_tree(const char *path);

#endif
