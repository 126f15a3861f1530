/*
 * A small HTTP/1.1 server on the event loop, for the controller's control
 * socket (a unix socket) and its Prometheus metrics listener (TCP). A
 * controller that takes over from another serves the listening sockets it
 * inherited (vd_ctl_adopt); the one it replaces detaches them.
 *
 * Requests are few and small: each is read whole (head and body, the body up
 * to 8 MiB) before the handler sees it, and a connection answers one request
 * at a time. The handler answers at once with a whole reply, or starts a
 * stream (200, Connection: close, no length) that it writes to as its work
 * goes on and ends later; a stream whose client goes away, or whose listener
 * is freed, tells its owner through on_gone. Nothing blocks the loop: output
 * is buffered and written as the socket takes it.
 *
 * The server answers by itself: 400 (not HTTP; then closes), 408 (no whole
 * head within 10 s), 413 (a body over 8 MiB), 431 (a head over 16 KiB), 500
 * (a handler that returned without answering). Keep-alive connections idle
 * for 60 s are closed, and so are connections beyond 256 at a time.
 */
#ifndef VD_CTL_H
#define VD_CTL_H

#include <jansson.h>
#include <stddef.h>

#include "vd/error.h"
#include "vd/ev.h"

/* A listener, with its connections. */
struct vd_ctl;

/* One request being answered. Valid during the handler's call; after a
 * stream starts, until vd_ctl_stream_end() (or on_gone). */
struct vd_ctl_req;

/* Called once per complete request (head and body). The handler answers now
 * with vd_ctl_reply(), or starts a stream with vd_ctl_stream_begin() and
 * answers later (the req stays valid until vd_ctl_stream_end()). A handler
 * that returns having done neither gets a 500 sent for it. */
typedef void (*vd_ctl_handler_fn)(void *arg, struct vd_ctl_req *req);

/* Listen on a unix socket PATH (an existing socket file there is replaced,
 * any other file is an error); mode 0600. The socket is bound under a
 * temporary name in the same directory and renamed over PATH once it listens,
 * so a client never finds it with the wrong mode or not listening. Returns
 * NULL and fills err on failure. */
struct vd_ctl *vd_ctl_listen_unix(struct vd_ev *ev, const char *path, vd_ctl_handler_fn fn,
				  void *arg, struct vd_error *err);

/* Listen on HOST:PORT (an IP literal or "localhost"; port 0 = any free one,
 * see vd_ctl_port). Returns NULL and fills err on failure. */
struct vd_ctl *vd_ctl_listen_tcp(struct vd_ev *ev, const char *host, int port,
				 vd_ctl_handler_fn fn, void *arg, struct vd_error *err);

/* Serve FD, a listening socket inherited from the process this one
 * replaces: the unix socket at PATH (freeing unlinks PATH while it is still
 * that file), or with PATH NULL a TCP socket. FD is taken on success and
 * stays the caller's on failure: NULL with err when it is not a listening
 * socket of that kind or PATH is gone. */
struct vd_ctl *vd_ctl_adopt(struct vd_ev *ev, int fd, const char *path, vd_ctl_handler_fn fn,
			    void *arg, struct vd_error *err);

/* The TCP port listened on; 0 for a unix socket. */
int vd_ctl_port(const struct vd_ctl *ctl);

/* The listening socket, to pass to a process that takes over; -1 after
 * vd_ctl_detach(). */
int vd_ctl_listen_fd(const struct vd_ctl *ctl);

/* Stop accepting and close this process's fd of the listening socket, but
 * leave the socket (its queue, its file) to the process it was passed to:
 * vd_ctl_free() will not unlink it. Connections in progress go on. */
void vd_ctl_detach(struct vd_ctl *ctl);

/* Close the listener and every connection. Streams in progress are cut: their
 * on_gone is called before this returns, and their reqs are invalid after.
 * The unix socket file is unlinked (when it is still the one bound). Memory
 * is released after the loop's current round (or by vd_ev_free), so this may
 * be called from a handler or a callback of the same loop. NULL is ignored. */
void vd_ctl_free(struct vd_ctl *ctl);

/* The request's method ("GET", "POST", ...). */
const char *vd_ctl_method(const struct vd_ctl_req *req);

/* The request's path, without the query, as sent (not percent-decoded). */
const char *vd_ctl_path(const struct vd_ctl_req *req);

/* The query: what follows '?' in the request target, or "". */
const char *vd_ctl_query(const struct vd_ctl_req *req);

/* The request body (NUL-terminated, "" when there is none); its length in
 * *len when len is not NULL. */
const char *vd_ctl_body(const struct vd_ctl_req *req, size_t *len);

/* Answer the request whole: STATUS, CONTENT_TYPE (NULL: text/plain) and LEN
 * bytes of BODY (copied), with Content-Length. The connection is kept for the
 * next request when the client allows it. Only from the handler, once. */
void vd_ctl_reply(struct vd_ctl_req *req, int status, const char *content_type,
		  const char *body, size_t len);

/* Answer with J serialised compactly on one line plus "\n", as
 * application/json; J is not stolen. A 500 when J cannot be serialised. */
void vd_ctl_reply_json(struct vd_ctl_req *req, int status, const json_t *j);

/* Start a streamed answer from the handler: 200, CONTENT_TYPE (NULL:
 * text/plain), Connection: close and no length; the body is what
 * vd_ctl_stream_write() gives, sent as it comes, and vd_ctl_stream_end()
 * finishes it (the connection closes once all is written).
 *
 * on_gone(arg) is called (from the loop, never from inside a vd_ctl_ call but
 * vd_ctl_free) at most once, if the stream is cut before its end: the client
 * went away (closed, reset, or shut its side down), did not read while more
 * than 16 MiB waited to be sent, or the listener was freed. After on_gone the
 * req must not be used. */
void vd_ctl_stream_begin(struct vd_ctl_req *req, const char *content_type,
			 void (*on_gone)(void *arg), void *arg);

/* Append LEN bytes of DATA to a stream (copied). Does nothing once the stream
 * is cut (on_gone is coming). */
void vd_ctl_stream_write(struct vd_ctl_req *req, const char *data, size_t len);

/* Take the request's connection out of the server, from the handler: the
 * caller owns the fd (non-blocking, the request read whole) and answers on
 * it itself; req is invalid after. -1 outside the handler. */
int vd_ctl_take(struct vd_ctl_req *req);

/* End a stream: what was written is still sent, then the connection closes.
 * The req is invalid afterwards, and on_gone will not be called (not even
 * when the stream was cut and on_gone had not run yet). */
void vd_ctl_stream_end(struct vd_ctl_req *req);

#endif
