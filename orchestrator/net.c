/*
 * Small socket helpers. See vd/net.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <unistd.h>
#include <string.h>
#include <time.h>

#include "vd/clock.h"
#include "vd/net.h"

int
vd_net_addr(const char *host, int port, struct sockaddr_storage *sa, socklen_t *len)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)sa;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;

	memset(sa, 0, sizeof(*sa));
	if (!host || port < 0 || port > 65535)
		return -1;
	if (strcmp(host, "localhost") == 0)
		host = "127.0.0.1";
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)port);
		*len = sizeof(*in4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*in6);
		return 0;
	}
	return -1;
}

int
vd_net_wait(int fd, short events, int64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };

	for (;;) {
		int64_t left = deadline - vd_clock_ms();
		int n;

		if (left <= 0)
			return 0;
		n = poll(&p, 1, (int)left);
		if (n > 0)
			return 1;
		if (n == 0)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

bool
vd_net_is_listener(int fd, const struct sockaddr_storage *want)
{
	struct sockaddr_storage sa;
	socklen_t len = sizeof(sa), ilen = sizeof(int);
	int listening = 0, type = 0;
	const struct sockaddr_in *a4 = (const struct sockaddr_in *)&sa, *w4;
	const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&sa, *w6;

	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &ilen) < 0 || !listening ||
	    (ilen = sizeof(int), getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &ilen)) < 0 ||
	    type != SOCK_STREAM || getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		return false;
	if (!want)
		return sa.ss_family == AF_UNIX;
	if (sa.ss_family != want->ss_family)
		return false;
	w4 = (const struct sockaddr_in *)want;
	w6 = (const struct sockaddr_in6 *)want;
	if (sa.ss_family == AF_INET)
		return a4->sin_addr.s_addr == w4->sin_addr.s_addr &&
		       (!w4->sin_port || a4->sin_port == w4->sin_port);
	return sa.ss_family == AF_INET6 &&
	       memcmp(&a6->sin6_addr, &w6->sin6_addr, sizeof(a6->sin6_addr)) == 0 &&
	       (!w6->sin6_port || a6->sin6_port == w6->sin6_port);
}

int
vd_net_free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd, port = -1;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	close(fd);
	return port;
}
