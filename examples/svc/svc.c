/*
 * svc: start-up of the example workload.
 *
 * Reads the flags and $PORT, opens the listening socket, turns SIGTERM and
 * SIGINT into a signalfd the serving loop watches (so the server exits 0 at
 * once, and also as PID 1 in a container, where a signal with no handler is
 * dropped), then hands over to the chosen serving model.  Nothing here reads
 * /etc or needs a shell: the server runs alone in a FROM-scratch image and
 * in a busybox initramfs.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "svc.h"

struct svc_config svc_cfg = { SVC_SYNC, 1, 8080, "0.0.0.0", 0 };
atomic_ulong svc_requests;
uint64_t svc_start_us;

static const char usage_text[] =
    "usage: svc [--model sync|async] [--workers N] [--port N] [--listen ADDR]\n"
    "           [--start-delay MS]\n"
    "\n"
    "    --model sync   N workers, each serving one request at a time (default)\n"
    "    --model async  one thread and one event loop\n"
    "    --workers N    sync workers, 1 to 256 (default 1)\n"
    "    --port N       port to listen on (default $PORT, else 8080)\n"
    "    --listen ADDR  IPv4 or IPv6 address (default 0.0.0.0)\n"
    "    --start-delay MS  listen only after MS ms, 0 to 60000: a slow start\n"
    "\n"
    "endpoints: /ping /healthz /info /timeout?ms=N /heavy?ms=N /alloc?mb=N\n"
    "    /bytes?n=N[&chunked=1]  N bytes of a pattern, in chunks or not\n"
    "    POST /echo[?head=1]     the request body back (after its head)\n";

void
svc_warn(const char *fmt, ...)
{
	va_list ap;

	fputs("svc: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

uint64_t
svc_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Parse a decimal in [min, max]; returns -1 when s is not one. */
static int
parse_int(const char *s, int min, int max, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		return -1;
	*out = (int)v;
	return 0;
}

static int
parse_flags(int argc, char **argv, struct svc_config *cfg)
{
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "workers", required_argument, NULL, 'w' },
		{ "port", required_argument, NULL, 'p' },
		{ "listen", required_argument, NULL, 'l' },
		{ "start-delay", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *env = getenv("PORT");
	int c;

	if (env != NULL && *env != '\0' &&
	    parse_int(env, 1, 65535, &cfg->port) == -1)
		cfg->port = -1;		/* an error unless --port is given */
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			if (strcmp(optarg, "sync") == 0)
				cfg->model = SVC_SYNC;
			else if (strcmp(optarg, "async") == 0)
				cfg->model = SVC_ASYNC;
			else {
				svc_warn("unknown model '%s'", optarg);
				return -1;
			}
			break;
		case 'w':
			if (parse_int(optarg, 1, SVC_MAX_WORKERS,
			    &cfg->workers) == -1) {
				svc_warn("invalid worker count '%s'", optarg);
				return -1;
			}
			break;
		case 'p':
			if (parse_int(optarg, 1, 65535, &cfg->port) == -1) {
				svc_warn("invalid port '%s'", optarg);
				return -1;
			}
			break;
		case 'l':
			cfg->listen = optarg;
			break;
		case 'd':
			if (parse_int(optarg, 0, 60000,
			    &cfg->start_delay_ms) == -1) {
				svc_warn("invalid start delay '%s'", optarg);
				return -1;
			}
			break;
		case 'h':
			fputs(usage_text, stdout);
			exit(0);
		case ':':
			svc_warn("option '%s' needs a value", argv[optind - 1]);
			return -1;
		default:
			svc_warn("unknown option '%s'", argv[optind - 1]);
			return -1;
		}
	}
	if (optind < argc) {
		svc_warn("unexpected argument '%s'", argv[optind]);
		return -1;
	}
	if (cfg->port == -1) {
		svc_warn("invalid PORT '%s'", env);
		return -1;
	}
	if (cfg->model == SVC_ASYNC)
		cfg->workers = 1;
	return 0;
}

/* addr:port as people write it, [addr]:port for IPv6. */
static void
format_addr(char *buf, size_t len, const char *addr, int port)
{
	if (strchr(addr, ':') != NULL)
		snprintf(buf, len, "[%s]:%d", addr, port);
	else
		snprintf(buf, len, "%s:%d", addr, port);
}

/* Open the non-blocking listening socket; returns the fd or -1. */
static int
listen_on(const char *addr, int port)
{
	struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct sockaddr *sa = (struct sockaddr *)&sin;
	socklen_t salen = sizeof(sin);
	int fd, on = 1, off = 0;
	char name[128];

	sin.sin_port = sin6.sin6_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
		if (inet_pton(AF_INET6, addr, &sin6.sin6_addr) != 1) {
			svc_warn("invalid listen address '%s'", addr);
			return -1;
		}
		sa = (struct sockaddr *)&sin6;
		salen = sizeof(sin6);
	}
	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1) {
		svc_warn("cannot create socket: %s", strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (sa->sa_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
	if (bind(fd, sa, salen) == -1 || listen(fd, 1024) == -1) {
		format_addr(name, sizeof(name), addr, port);
		svc_warn("cannot listen on %s: %s", name, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* Block SIGTERM and SIGINT in every thread; returns a signalfd for them. */
static int
signal_fd(void)
{
	sigset_t set;
	int fd;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd == -1)
		svc_warn("cannot create signalfd: %s", strerror(errno));
	return fd;
}

/* The one line the server prints when all is well. */
static void
print_banner(const struct svc_config *cfg)
{
	char addr[128];

	format_addr(addr, sizeof(addr), cfg->listen, cfg->port);
	if (cfg->model == SVC_ASYNC)
		fprintf(stderr, "svc: listening on %s, model async\n", addr);
	else
		fprintf(stderr, "svc: listening on %s, model sync, %d worker%s\n",
		    addr, cfg->workers, cfg->workers == 1 ? "" : "s");
}

int
main(int argc, char **argv)
{
	int lfd, sfd, r;

	if (parse_flags(argc, argv, &svc_cfg) == -1) {
		fputs(usage_text, stderr);
		return 2;
	}
	if ((sfd = signal_fd()) == -1)
		return 1;
	if (svc_cfg.start_delay_ms > 0) {
		struct timespec ts = { svc_cfg.start_delay_ms / 1000,
		    (long)(svc_cfg.start_delay_ms % 1000) * 1000000 };

		while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
			;
	}
	if ((lfd = listen_on(svc_cfg.listen, svc_cfg.port)) == -1)
		return 1;
	svc_start_us = svc_now_us();
	print_banner(&svc_cfg);
	if (svc_cfg.model == SVC_ASYNC)
		r = svc_serve_async(lfd, sfd);
	else
		r = svc_serve_sync(lfd, sfd);
	return r == 0 ? 0 : 1;
}
