/*
 * idle_conns: hold N idle client connections to a balancer, from one process.
 *
 *   idle_conns [-r PATH] HOST PORT N SECONDS
 *
 * Opens N TCP connections to HOST:PORT (a numeric address; the benches use
 * 127.0.0.1 only). With -r, sends one complete "GET PATH HTTP/1.1" on each and
 * reads its whole response (Content-Length framed), so each is a real
 * keep-alive connection that has carried a request. Then prints
 *
 *   ready opened=N ok=K bad=B
 *
 * on stdout (flushed), holds the connections idle for SECONDS, checks how many
 * the peer closed meanwhile, prints
 *
 *   done closed=C
 *
 * and exits: 0 when all N were opened (and, with -r, all answered 2xx), else 1.
 * Used by tests/bench/balancer.sh to read the balancer's resident memory
 * while it holds the connections.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int connect_one(const struct sockaddr_in *sa)
{
	for (int attempt = 0; attempt < 50; attempt++) {
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -1;
		struct timeval tv = {5, 0};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		if (connect(fd, (const struct sockaddr *)sa, sizeof *sa) == 0)
			return fd;
		int e = errno;
		close(fd);
		if (e != EAGAIN && e != ECONNREFUSED && e != EINTR && e != ETIMEDOUT)
			return -1;
		struct timespec ts = {0, 20 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return -1;
}

/* Sends the request and reads one whole response; returns its status or -1. */
static int request_one(int fd, const char *req, size_t reqlen)
{
	size_t off = 0;
	while (off < reqlen) {
		ssize_t n = send(fd, req + off, reqlen - off, MSG_NOSIGNAL);
		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			return -1;
		}
		off += (size_t)n;
	}
	char buf[8192];
	size_t len = 0;
	char *eoh = NULL;
	while (!eoh) {
		if (len == sizeof buf - 1)
			return -1;
		ssize_t n = recv(fd, buf + len, sizeof buf - 1 - len, 0);
		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			return -1;
		}
		len += (size_t)n;
		buf[len] = '\0';
		eoh = strstr(buf, "\r\n\r\n");
	}
	int status = -1;
	if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
		return -1;
	size_t hdrlen = (size_t)(eoh + 4 - buf);
	long clen = 0;
	for (char *p = buf; p < eoh; p++) {
		if ((p == buf || p[-1] == '\n') && strncasecmp(p, "content-length:", 15) == 0) {
			clen = strtol(p + 15, NULL, 10);
			break;
		}
	}
	if (clen < 0)
		return -1;
	size_t have = len - hdrlen;
	while (have < (size_t)clen) {
		char sink[4096];
		size_t want = (size_t)clen - have;
		ssize_t n = recv(fd, sink, want < sizeof sink ? want : sizeof sink, 0);
		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			return -1;
		}
		have += (size_t)n;
	}
	return status;
}

int main(int argc, char **argv)
{
	const char *path = NULL;
	int opt;
	while ((opt = getopt(argc, argv, "r:")) != -1) {
		if (opt == 'r')
			path = optarg;
		else
			goto usage;
	}
	if (argc - optind != 4)
		goto usage;
	const char *host = argv[optind];
	int port = atoi(argv[optind + 1]);
	int n = atoi(argv[optind + 2]);
	int secs = atoi(argv[optind + 3]);
	if (port <= 0 || port > 65535 || n <= 0 || secs < 0)
		goto usage;

	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		fprintf(stderr, "idle_conns: %s: not a numeric IPv4 address\n", host);
		return 2;
	}

	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)n + 64) {
		rl.rlim_cur = (rlim_t)n + 64;
		if (rl.rlim_max != RLIM_INFINITY && rl.rlim_cur > rl.rlim_max)
			rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	char req[512];
	int reqlen = 0;
	if (path)
		reqlen = snprintf(req, sizeof req,
				  "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: idle_conns\r\n\r\n",
				  path, host, port);

	int *fds = calloc((size_t)n, sizeof *fds);
	if (!fds)
		return 1;
	int opened = 0, ok = 0, bad = 0;
	for (int i = 0; i < n; i++) {
		int fd = connect_one(&sa);
		if (fd < 0) {
			fprintf(stderr, "idle_conns: connection %d: %s\n", i + 1, strerror(errno));
			break;
		}
		fds[opened++] = fd;
		if (path) {
			int st = request_one(fd, req, (size_t)reqlen);
			if (st >= 200 && st < 300)
				ok++;
			else
				bad++;
		}
	}
	printf("ready opened=%d ok=%d bad=%d\n", opened, ok, bad);
	fflush(stdout);

	struct timespec ts = {secs, 0};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;

	int closed = 0;
	for (int i = 0; i < opened; i++) {
		char c;
		ssize_t r = recv(fds[i], &c, 1, MSG_PEEK | MSG_DONTWAIT);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
			closed++;
	}
	printf("done closed=%d\n", closed);
	fflush(stdout);
	for (int i = 0; i < opened; i++)
		close(fds[i]);
	free(fds);
	return (opened == n && bad == 0) ? 0 : 1;

usage:
	fprintf(stderr, "usage: idle_conns [-r PATH] HOST PORT N SECONDS\n");
	return 2;
}
