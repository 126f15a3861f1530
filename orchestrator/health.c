/*
 * One health check, blocking and bounded: a non-blocking connect and a poll
 * for each step, within one deadline.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "vd/cleanup.h"
#include "vd/health.h"

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for EVENTS on fd until the deadline: 1 ready, 0 timed out. */
static int
wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	int64_t left;
	int n;

	for (;;) {
		left = deadline - now_ms();
		if (left <= 0)
			return 0;
		n = poll(&p, 1, (int)left);
		if (n > 0)
			return 1;
		if (n == 0)
			return 0;
		if (errno != EINTR)
			return 0;
	}
}

static enum vd_health_result
connect_to(const char *host, int port, int64_t deadline, int *out)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	socklen_t len;
	int fd, soerr = 0;
	socklen_t slen = sizeof(soerr);

	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)port);
		len = sizeof(*in4);
	} else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		len = sizeof(*in6);
	} else {
		return VD_HEALTH_NO_ADDRESS;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return VD_HEALTH_CONNECT_FAIL;
	if (connect(fd, (struct sockaddr *)&ss, len) < 0 && errno != EINPROGRESS) {
		close(fd);
		return VD_HEALTH_CONNECT_FAIL;
	}
	if (!wait_fd(fd, POLLOUT, deadline)) {
		close(fd);
		return VD_HEALTH_TIMEOUT;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &slen) < 0 || soerr) {
		close(fd);
		return VD_HEALTH_CONNECT_FAIL;
	}
	*out = fd;
	return VD_HEALTH_OK;
}

static enum vd_health_result
http_get(int fd, const char *host, const char *path, int64_t deadline)
{
	char req[1024], resp[256];
	size_t got = 0;
	int n, status;

	n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: vdctl-health\r\n"
		     "Connection: close\r\n\r\n", path, host);
	if (n <= 0 || (size_t)n >= sizeof(req) || !wait_fd(fd, POLLOUT, deadline) ||
	    send(fd, req, (size_t)n, MSG_NOSIGNAL) != n)
		return VD_HEALTH_CLOSED;
	/* the status line is all a check needs */
	while (got < sizeof(resp) - 1 && !memchr(resp, '\n', got)) {
		ssize_t r;

		if (!wait_fd(fd, POLLIN, deadline))
			return VD_HEALTH_TIMEOUT;
		r = recv(fd, resp + got, sizeof(resp) - 1 - got, 0);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (r <= 0)
			return got ? VD_HEALTH_HTTP_BAD_REPLY : VD_HEALTH_CLOSED;
		got += (size_t)r;
	}
	resp[got] = '\0';
	if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1)
		return VD_HEALTH_HTTP_BAD_REPLY;
	return status >= 200 && status < 400 ? VD_HEALTH_OK : VD_HEALTH_HTTP_BAD_STATUS;
}

enum vd_health_result
vd_health_check(const struct vd_service *svc, const char *host, int port, int timeout_ms)
{
	int64_t deadline;
	enum vd_health_result r;
	_cleanup_close_ int fd = -1;

	if (!host || !*host || port <= 0)
		return VD_HEALTH_NO_ADDRESS;
	if (timeout_ms <= 0)
		timeout_ms = svc->health.timeout_ms > 0 ? (int)svc->health.timeout_ms : 1000;
	deadline = now_ms() + timeout_ms;
	r = connect_to(host, port, deadline, &fd);
	if (r != VD_HEALTH_OK || svc->health.kind == VD_HEALTH_TCP)
		return r;
	return http_get(fd, host, svc->health.http_path ? svc->health.http_path : "/", deadline);
}

const char *
vd_health_result_name(enum vd_health_result r)
{
	static const char *const names[] = {
		[VD_HEALTH_OK] = "healthy",
		[VD_HEALTH_NO_ADDRESS] = "no address",
		[VD_HEALTH_CONNECT_FAIL] = "connection refused",
		[VD_HEALTH_TIMEOUT] = "timed out",
		[VD_HEALTH_HTTP_BAD_STATUS] = "bad HTTP status",
		[VD_HEALTH_HTTP_BAD_REPLY] = "not an HTTP answer",
		[VD_HEALTH_CLOSED] = "closed without answering",
	};

	return (unsigned)r < sizeof(names) / sizeof(names[0]) ? names[r] : "unknown";
}
