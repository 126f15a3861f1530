/*
 * Fuzz the balancer's request path: the bytes of each input arrive from a
 * client, through the real listener, parser, head rewriting, routing and
 * relaying, to a backend in the same event loop that answers every request
 * head it sees with a small 200. The input must never crash the balancer,
 * leak, or touch memory it does not own.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vd/ev.h"
#include "vd/lb.h"

#define ROUNDS 256

static struct vd_ev *ev;
static struct vd_lb *lb;
static struct vd_ev_handle backend;

struct conn {
	struct vd_ev_handle h;
	struct conn *prev, *next; /* kept in a list: epoll alone would hide them from LSan */
	char tail[3];             /* the end of what was read, to find blank lines across reads */
};

static struct conn *conns;

/* Close with a reset: at thousands of inputs a second, closed sockets in
 * TIME-WAIT would use up the loopback's ports. */
static void
close_hard(int fd)
{
	struct linger l = { 1, 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	close(fd);
}

static int64_t
stop(struct vd_ev *e, void *arg)
{
	(void)arg;
	vd_ev_stop(e);
	return -1;
}

/* One round of the loop: what is ready now, without waiting. */
static void
round_once(void)
{
	vd_ev_timer(ev, 0, stop, NULL);
	vd_ev_run(ev);
}

static void
free_conn(void *arg)
{
	struct conn *c = arg;

	if (c->prev)
		c->prev->next = c->next;
	else
		conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c);
}

/* The backend: one 200 for every blank line (end of a head) it reads. */
static void
backend_conn(struct vd_ev *e, struct vd_ev_handle *h, uint32_t events)
{
	static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
	struct conn *c = (struct conn *)h;
	char buf[4096];
	ssize_t n = read(h->fd, buf, sizeof(buf));

	(void)events;
	if (n <= 0) {
		vd_ev_del(e, h);
		close(h->fd);
		h->fd = -1;
		vd_ev_defer(e, free_conn, c);
		return;
	}
	for (ssize_t i = 0; i < n; i++) {
		memmove(c->tail, c->tail + 1, 2);
		c->tail[2] = buf[i];
		if (c->tail[2] == '\n' && (c->tail[1] == '\n' || c->tail[0] == '\n'))
			if (write(h->fd, ok, sizeof(ok) - 1) < 0)
				break;
	}
}

static void
backend_accept(struct vd_ev *e, struct vd_ev_handle *h, uint32_t events)
{
	int fd;

	(void)events;
	while ((fd = accept4(h->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		struct conn *c = calloc(1, sizeof(*c));

		c->next = conns;
		if (conns)
			conns->prev = c;
		conns = c;
		c->h.fd = fd;
		c->h.fn = backend_conn;
		vd_ev_add(e, &c->h, EPOLLIN);
	}
}

static int
setup(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	struct vd_lb_config cfg;
	struct vd_error err = VD_ERROR_INIT;
	struct rlimit rl;

	/* the harness writes to sockets the balancer may have closed */
	signal(SIGPIPE, SIG_IGN);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	ev = vd_ev_new(&err);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	backend.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	backend.fn = backend_accept;
	if (!ev || bind(backend.fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(backend.fd, 128) < 0 || getsockname(backend.fd, (struct sockaddr *)&sa, &len) < 0)
		return -1;
	vd_ev_add(ev, &backend, EPOLLIN);
	vd_lb_config_default(&cfg);
	cfg.listen_port = 0;
	cfg.max_inflight = 1;
	cfg.queue_limit = 4;
	lb = vd_lb_new(ev, &cfg, &err);
	if (!lb || vd_lb_add_replica(lb, "b", "127.0.0.1", ntohs(sa.sin_port), &err) < 0)
		return -1;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	struct sockaddr_in sa = { .sin_family = AF_INET }, src = { .sin_family = AF_INET };
	static uint32_t next_src;
	char sink[65536];
	int fd;

	if (!ready && setup() < 0)
		abort();
	ready = 1;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)vd_lb_port(lb));
	/* a new source address in 127/8 for each input, so that thousands of
	 * connections a second never run out of loopback ports */
	next_src = next_src % 0xfffffe + 1;
	src.sin_addr.s_addr = htonl(0x7f000000u | next_src);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("fuzz_lb: connect");
		if (fd >= 0)
			close(fd);
		return 0;
	}
	fcntl(fd, F_SETFL, O_NONBLOCK);
	for (size_t off = 0; off < size;) {
		ssize_t n = write(fd, data + off, size - off);

		if (n > 0)
			off += (size_t)n;
		else
			round_once(); /* let the balancer drain the socket */
	}
	/* until the balancer closes it or nothing moves for a few rounds */
	for (int i = 0, quiet = 0; i < ROUNDS && quiet < 4; i++) {
		ssize_t n;

		round_once();
		n = read(fd, sink, sizeof(sink));
		if (n == 0)
			break;
		quiet = n > 0 ? 0 : quiet + 1;
	}
	close_hard(fd);
	/* the backend hangs up too: a request it never answered (its head was
	 * garbage to it) fails over to the balancer's failure paths, and each
	 * input starts from nothing */
	for (struct conn *c = conns; c; c = c->next) {
		if (c->h.fd < 0)
			continue;
		vd_ev_del(ev, &c->h);
		close_hard(c->h.fd);
		c->h.fd = -1;
		vd_ev_defer(ev, free_conn, c);
	}
	for (int i = 0; i < 8; i++)
		round_once();
	return 0;
}
