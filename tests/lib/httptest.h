/*
 * A raw HTTP/1.x client for the tests that must see what goes over the wire
 * (the balancer's, the control socket's): a blocking connection to
 * 127.0.0.1 or to a unix socket whose sends and receives time out after
 * vt_io_ms(), its unread input kept in a buffer; requests go out as given,
 * and responses are read one at a time, the head kept as it came and the
 * body collected (framed by Content-Length, chunked, or the close).
 *
 * Client threads use it, so nothing here asserts: every failure is a return
 * value (-1, the reason lost: a test only needs to know it failed) for the
 * thread to record and the main thread to assert on.
 */
#ifndef VD_HTTPTEST_H
#define VD_HTTPTEST_H

#include <stdbool.h>
#include <stddef.h>

/* A client connection with its unread input. */
struct vt_conn {
	int fd; /* -1 when closed */
	size_t len;
	char buf[65536];
};

/* A response as vt_read_response() read it. */
struct vt_resp {
	int status;
	char head[8192]; /* the status line and headers, blank line included */
	bool close;      /* the head says Connection: close */
	bool chunked;    /* the head says Transfer-Encoding: chunked */
	bool eof;        /* the body ran to the close */
	char *body;      /* NUL-terminated; vt_resp_clear() frees it */
	size_t len;
	size_t maxchunk; /* the largest chunk, when chunked */
};

/* How long a send or a receive may wait, in ms: $VD_TEST_IO_MS, else
 * 20,000. */
long vt_io_ms(void);

/* Connect c to 127.0.0.1:PORT (with TCP_NODELAY) or to the unix socket at
 * PATH, with no input yet. 0, or -1 with c->fd -1. */
int vt_conn_tcp(struct vt_conn *c, int port);
int vt_conn_unix(struct vt_conn *c, const char *path);

/* Close c (a no-op when it is closed) and drop its input. */
void vt_conn_close(struct vt_conn *c);

/* Send N bytes of DATA, or the string S, whole: 0, or -1. */
int vt_conn_send(struct vt_conn *c, const void *data, size_t n);
int vt_conn_sendstr(struct vt_conn *c, const char *s);

/* Receive more input into c->buf: 0; 1 at the peer's close; -1 on an error,
 * a timeout, or when the buffer is full. */
int vt_conn_fill(struct vt_conn *c);

/* Drop the first N bytes of input (N at most c->len). */
void vt_conn_consume(struct vt_conn *c, size_t n);

/* Whether the peer closed with no input left (waits for more input, a
 * close or the timeout; input that comes is kept). */
bool vt_conn_at_eof(struct vt_conn *c);

/* The same, a reset counted as a close: a peer that closes with input of
 * ours unread makes its kernel send a reset. One byte that comes is lost. */
bool vt_conn_closed(struct vt_conn *c);

/* Free a response's body and zero it. */
void vt_resp_clear(struct vt_resp *r);

/* Read one response into r (cleared first): its head, then its body,
 * framed by Content-Length, chunked or the close; no body for 1xx, 204,
 * 304 or when TO_HEAD (the answer to HEAD). The status, or -1. */
int vt_read_response(struct vt_conn *c, struct vt_resp *r, bool to_head);

/* Send METHOD TARGET with "Host: t", HEADERS (whole lines, or NULL) and,
 * when BODY is not NULL, its N bytes with Content-Length; then read the
 * response. The status, or -1. */
int vt_request(struct vt_conn *c, const char *method, const char *target, const char *headers,
	       const char *body, size_t n, struct vt_resp *r);

/* GET PATH from 127.0.0.1:PORT on a connection of its own. The status, or
 * -1. */
int vt_get_once(int port, const char *path, struct vt_resp *r);

/* Whether the response head has the header line LINE, exactly as given
 * (case included; not the status line). */
bool vt_has_header(const struct vt_resp *r, const char *line);

#endif
