/*
 * svc: the example workload vdctl deploys and load-tests.
 *
 * A small static HTTP/1.1 server whose endpoints wait, burn CPU or touch
 * memory on demand and report what the replica sees from inside (CPUs,
 * memory, cgroup limits).  Two serving models stand in for the services
 * people run: "sync" (N workers serving one request each at a time, like
 * gunicorn's sync workers) and "async" (one thread, one event loop, like
 * Node).  This header is shared by the files of examples/svc/ only:
 *
 *   svc.c     flags, the listening socket, signals, start-up
 *   conn.c    connections: reading, parsing and answering HTTP/1.1
 *   routes.c  the endpoints
 *   sync.c    the sync model: one poller thread and N workers
 *   async.c   the async model: one epoll loop with a timer heap
 */
#ifndef SVC_H
#define SVC_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SVC_HDR_MAX	16384	/* request line and headers, else 431 */
#define SVC_TARGET_MAX	1024	/* path and query, else 414 */
#define SVC_BODY_MAX	1536	/* response body */
#define SVC_OUT_MAX	2048	/* response head and body */
#define SVC_MAX_WORKERS	256
#define SVC_DATA_MAX	(64UL << 20)	/* /bytes and /echo bodies, else 400, 413 */
#define SVC_CHUNK	65536	/* largest chunk of a chunked reply */

/* epoll_event.data.ptr of the two fds that are not connections */
#define SVC_EV_LISTEN	((void *)(uintptr_t)1)
#define SVC_EV_SIGNAL	((void *)(uintptr_t)2)

enum svc_model {
	SVC_SYNC,
	SVC_ASYNC,
};

struct svc_config {
	enum svc_model	 model;
	int		 workers;
	int		 port;
	const char	*listen;
	int		 start_delay_ms;	/* before listening */
};

/*
 * What the server keeps of a request.  The body is read and dropped, but
 * for the routes that want it (POST /echo), which get it in body.
 */
struct svc_request {
	int		 get;		/* the method is GET */
	int		 post;		/* the method is POST */
	int		 keepalive;	/* keep the connection after the reply */
	int		 reject;	/* answer this status at once, or 0 */
	int		 chunked;	/* Transfer-Encoding: chunked */
	int		 hasclen;	/* a Content-Length was given */
	unsigned long long clen;	/* Content-Length */
	char		*body;		/* the kept body (the connection's) */
	size_t		 bodylen;
	char		 target[SVC_TARGET_MAX];
};

struct svc_reply {
	int		 status;
	const char	*type;		/* Content-Type */
	size_t		 bodylen;
	long		 wait_ms;	/* /timeout: answer after this, or -1 */
	long		 arg;		/* the ms or mb asked for */
	uint64_t	 started_us;	/* CLOCK_MONOTONIC */
	void		*map;		/* /alloc: unmapped after answering */
	size_t		 maplen;
	const char	*allow;		/* the Allow header of a 405 */
	int		 stream;	/* the body is datalen bytes of data */
	int		 chunked;	/* ... sent in chunks of up to SVC_CHUNK */
	const char	*data;		/* the request's body, or NULL: the pattern */
	size_t		 datalen;
	char		 body[SVC_BODY_MAX];
};

/*
 * One client connection.  Exactly one thread owns it at a time: the poller
 * while it reads, a worker while it serves, the timer heap while it waits.
 */
struct svc_conn {
	int		 fd;
	uint32_t	 armed;		/* epoll events watched, 0 if none */
	int		 close;		/* close once the reply is written */
	int		 replying;	/* a reply is being sent */
	int		 body;		/* where the request body is (conn.c) */
	unsigned long long left;	/* bytes of the body or chunk to come */
	size_t		 bodycap;	/* room at req.body */
	size_t		 bodyhead;	/* bytes of req.body that are the head */
	size_t		 trailer;	/* bytes of chunked trailer so far */
	unsigned long long discard;	/* request body bytes still to drop */
	uint64_t	 deadline_us;	/* async /timeout */
	struct svc_conn	*next;		/* sync work queue */
	size_t		 inlen;
	size_t		 outlen;
	size_t		 outoff;
	size_t		 dataoff;	/* bytes of a streamed body handed out */
	const char	*seg;		/* a piece of a streamed body */
	size_t		 seglen;
	size_t		 segoff;
	struct svc_request req;
	struct svc_reply rep;
	char		 in[SVC_HDR_MAX];
	char		 out[SVC_OUT_MAX];
};

/* svc_conn_read() results */
enum {
	SVC_READY,	/* a whole request is in conn->req */
	SVC_AGAIN,	/* wait for more input */
	SVC_EOF,	/* closed or failed: close the connection */
};

extern struct svc_config svc_cfg;
extern atomic_ulong svc_requests;
extern uint64_t svc_start_us;

/* The body of /bytes: byte i is SVC_PATTERN[i % SVC_PATTERN_LEN]. */
#define SVC_PATTERN \
	"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
#define SVC_PATTERN_LEN	62

/* svc.c: "svc: " and the message on stderr; the monotonic clock in us */
void svc_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
uint64_t svc_now_us(void);

/*
 * conn.c.  svc_parse: the request head at buf into req; the length of the
 * head, 0 while incomplete, -1 when malformed (req->reject is then 400).
 * svc_epoll: an epoll fd watching the listening socket and signalfd, or -1.
 * svc_accept_all: accept what is pending, each connection armed for events.
 * svc_conn_arm: watch c for events (0: stop); -1 when epoll fails.
 * svc_conn_read: read until SVC_READY, SVC_AGAIN or SVC_EOF.
 * svc_conn_next: 1 when the buffered input holds a whole request (with its
 * body when the route keeps it); no I/O.
 * svc_conn_reply: format c->rep for sending; svc_conn_flush sends it (and a
 * streamed body): 1 when done, 0 when the socket is full, -1 on failure.
 * svc_conn_close: drain, close and free c, the one way a connection ends.
 */
ssize_t svc_parse(const char *buf, size_t len, struct svc_request *req);
int svc_epoll(int lfd, int sfd);
void svc_accept_all(int lfd, int ep, uint32_t events);
int svc_conn_arm(int ep, struct svc_conn *c, uint32_t events);
int svc_conn_read(struct svc_conn *c);
int svc_conn_next(struct svc_conn *c);
void svc_conn_reply(struct svc_conn *c);
int svc_conn_flush(struct svc_conn *c);
void svc_conn_close(struct svc_conn *c);

/*
 * routes.c.  svc_route: answer req into rep (worker: the sync worker index,
 * 0 in async); when rep->wait_ms >= 0 the caller waits until rep->started_us
 * plus that, then calls svc_finish_wait.  svc_reply_release: unmap /alloc's
 * memory once the reply is sent.  svc_route_keeps_body: whether the route of
 * req wants its body in req->body (POST /echo) rather than have it dropped:
 * 0 no, 1 yes, 2 yes and the head in front of it (/echo?head=1).
 */
void svc_route(const struct svc_request *req, struct svc_reply *rep,
    int worker);
int svc_route_keeps_body(const struct svc_request *req);
void svc_finish_wait(struct svc_reply *rep, int worker);
void svc_reply_release(struct svc_reply *rep);

/* sync.c, async.c: serve until SIGTERM or SIGINT; 0, or -1 on failure */
int svc_serve_sync(int lfd, int sfd);
int svc_serve_async(int lfd, int sfd);

#endif
