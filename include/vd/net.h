/*
 * Small socket helpers shared by the balancer, the health checks, the
 * control socket and the HTTP client: IP literals to addresses, a poll
 * bounded by a deadline, and the check of an inherited listening socket.
 */
#ifndef VD_NET_H
#define VD_NET_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

/* HOST (an IPv4 or IPv6 literal, or "localhost" for 127.0.0.1) and PORT
 * into *sa and *len. 0, or -1 when HOST is none of those or PORT is
 * outside 0-65535. No name lookup. */
int vd_net_addr(const char *host, int port, struct sockaddr_storage *sa, socklen_t *len);

/* Is FD a listening stream socket bound to WANT (its address, and its port
 * unless WANT's is 0)? WANT NULL: a listening unix stream socket. For
 * sockets a process inherits from the one it replaces. */
bool vd_net_is_listener(int fd, const struct sockaddr_storage *want);

/* A TCP port on 127.0.0.1 that was free a moment ago (the kernel's pick),
 * or -1. */
int vd_net_free_port(void);

/* Wait for EVENTS (POLLIN, POLLOUT) on fd until DEADLINE (vd_clock_ms()
 * time): 1 ready, 0 timed out, -1 poll failed (errno). */
int vd_net_wait(int fd, short events, int64_t deadline);

#endif
