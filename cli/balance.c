/*
 * vdctl balance: the embedded balancer on its own, in front of backends
 * given on the command line (for benchmarks, and for people who only want
 * a fast least-outstanding proxy with a queue).
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "vd/lb.h"
#include "vd/log.h"
#include "vd/units.h"

static const char usage[] =
	"usage: vdctl balance --listen HOST:PORT --backend HOST:PORT [--backend ...]\n"
	"                     [--policy POLICY] [--max-inflight N] [--queue-limit N]\n"
	"                     [--queue-timeout DUR] [--on-client-gone finish|abort]\n"
	"                     [--stats DUR]\n"
	"\n"
	"Run vdctl's HTTP/1.1 balancer in the foreground until SIGINT or SIGTERM:\n"
	"keep-alive to clients and pooled keep-alive connections to the backends,\n"
	"bodies streamed, a FIFO queue when every backend is at --max-inflight.\n"
	"A backend that refuses connections is ejected and probed back.\n"
	"\n"
	"options:\n"
	"   --listen HOST:PORT     where to listen (127.0.0.1:8000)\n"
	"   --backend HOST:PORT    a backend, by IP address; give one per backend\n"
	"   --policy POLICY        least-outstanding (default), round-robin or p2c\n"
	"   --max-inflight N       requests at once per backend; 0 = no limit (0)\n"
	"   --queue-limit N        waiting requests before 503 (1000)\n"
	"   --queue-timeout DUR    wait before 504 (60s); a request that could expect\n"
	"                          to wait longer (queued ahead x recent service time /\n"
	"                          backends' slots) is answered 503 with Retry-After\n"
	"                          at once\n"
	"   --on-client-gone HOW   a client that leaves while its request is on a\n"
	"                          backend: finish (the backend finishes it, the answer\n"
	"                          is dropped; default) or abort (close that backend\n"
	"                          connection); a queued one is always dropped unsent\n"
	"   --stats DUR            print a line of numbers this often; 0 = never (5s)\n"
	"   -h, --help             show this help\n"
	"\n"
	"The stats line: connections, requests in flight and queued, responses a\n"
	"second and latency percentiles over the last 10 s, responses by class and\n"
	"errors by kind since the start.\n";

struct every {
	struct vd_lb *lb;
	int64_t ms;
};

static int64_t
print_stats(struct vd_ev *ev, void *arg)
{
	struct every *e = arg;
	struct vd_lb_stats s;
	struct vd_error err = VD_ERROR_INIT;
	char errs[512] = "";
	size_t len = 0;
	uint64_t nerr = 0;

	(void)ev;
	if (vd_lb_stats(e->lb, &s, &err) < 0)
		return e->ms;
	for (int k = 0; k < VD_LB_ERR_KINDS; k++) {
		nerr += s.errors[k];
		if (s.errors[k] && len < sizeof(errs) - 1)
			len += (size_t)snprintf(errs + len, sizeof(errs) - len, " %s=%llu",
						vd_lb_error_name(k), (unsigned long long)s.errors[k]);
	}
	printf("conns=%llu inflight=%d queued=%d rps=%.0f p50=%.2fms p90=%.2fms p99=%.2fms "
	       "max=%.2fms wait_p99=%.2fms 2xx=%llu 4xx=%llu 5xx=%llu errors=%llu%s\n",
	       (unsigned long long)s.connections, s.inflight, s.queued, s.rps10,
	       (double)s.total10.p50 / 1000, (double)s.total10.p90 / 1000,
	       (double)s.total10.p99 / 1000, (double)s.total10.max / 1000,
	       (double)s.wait10.p99 / 1000, (unsigned long long)s.responses[2],
	       (unsigned long long)s.responses[4], (unsigned long long)s.responses[5],
	       (unsigned long long)nerr, errs);
	fflush(stdout);
	free(s.replicas);
	return e->ms;
}

/*
 * Run as the lean sibling binary vdctl-lb when it is installed next to this
 * one (see cli/lb_main.c). Returns only when it is not there.
 */
static void
exec_lean(char **argv)
{
	char self[PATH_MAX], path[PATH_MAX + 16];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	static const char *const names[] = { "error", "warn", "info", "debug" };

	if (n <= 0)
		return;
	self[n] = '\0';
	if (strcmp(basename(self), "vdctl-lb") == 0)
		return;
	snprintf(path, sizeof(path), "%s/vdctl-lb", dirname(self));
	if (access(path, X_OK) != 0)
		return;
	/* the log level set by vdctl's global options goes along */
	setenv("VDCTL_LOG", names[vd_log_get_level()], 1);
	execv(path, argv);
}

int
cmd_balance(int argc, char **argv, struct vd_error *err)
{
	static const struct option options[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "backend", required_argument, NULL, 'b' },
		{ "policy", required_argument, NULL, 'p' },
		{ "max-inflight", required_argument, NULL, 'm' },
		{ "queue-limit", required_argument, NULL, 'q' },
		{ "queue-timeout", required_argument, NULL, 't' },
		{ "on-client-gone", required_argument, NULL, 'g' },
		{ "stats", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct vd_lb_config cfg;
	struct vd_error why = VD_ERROR_INIT;
	char *hosts[256];
	int ports[256], nb = 0, c, sig;
	int64_t v, stats_ms = 5000;
	char *listen_host = NULL;
	struct vd_ev *ev;
	struct vd_lb *lb;
	struct every every;

	vd_lb_config_default(&cfg);
	exec_lean(argv);
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (c) {
		case 'l':
			free(listen_host);
			listen_host = NULL;
			if (vd_units_parse_hostport(optarg, &listen_host, &cfg.listen_port, &why) < 0)
				return cli_usage_error(err, "balance", "invalid --listen '%s': %s",
						       optarg, why.msg);
			cfg.listen_host = listen_host;
			break;
		case 'b':
			if (nb == 256)
				return cli_usage_error(err, "balance", "at most 256 backends");
			if (vd_units_parse_hostport(optarg, &hosts[nb], &ports[nb], &why) < 0)
				return cli_usage_error(err, "balance", "invalid --backend '%s': %s",
						       optarg, why.msg);
			nb++;
			break;
		case 'p':
			if (strcmp(optarg, "round-robin") == 0)
				cfg.policy = VD_LB_ROUND_ROBIN;
			else if (strcmp(optarg, "least-outstanding") == 0)
				cfg.policy = VD_LB_LEAST_OUTSTANDING;
			else if (strcmp(optarg, "p2c") == 0)
				cfg.policy = VD_LB_P2C;
			else
				return cli_usage_error(err, "balance", "unknown --policy '%s' "
						       "(round-robin, least-outstanding, p2c)", optarg);
			break;
		case 'm':
		case 'q':
			if (vd_units_parse_int64(optarg, 0, 1000000, &v, &why) < 0)
				return cli_usage_error(err, "balance", "invalid --%s '%s': %s",
						       c == 'm' ? "max-inflight" : "queue-limit",
						       optarg, why.msg);
			*(c == 'm' ? &cfg.max_inflight : &cfg.queue_limit) = (int)v;
			break;
		case 't':
		case 's':
			if (vd_units_parse_duration_ms(optarg, &v, &why) < 0 && strcmp(optarg, "0") != 0)
				return cli_usage_error(err, "balance", "invalid --%s '%s': %s",
						       c == 't' ? "queue-timeout" : "stats", optarg,
						       why.msg);
			if (strcmp(optarg, "0") == 0)
				v = 0;
			if (c == 't')
				cfg.queue_timeout_ms = v > 0 ? v : 1;
			else
				stats_ms = v;
			break;
		case 'g':
			if (strcmp(optarg, "finish") != 0 && strcmp(optarg, "abort") != 0)
				return cli_usage_error(err, "balance", "unknown --on-client-gone '%s' "
						       "(finish, abort)", optarg);
			cfg.abort_on_client_gone = strcmp(optarg, "abort") == 0;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			return cli_unknown_option(err, "balance", options, argv[optind - 1]);
		}
	}
	if (optind < argc)
		return cli_usage_error(err, "balance", "unexpected argument '%s'", argv[optind]);
	if (nb == 0)
		return cli_usage_error(err, "balance", "no --backend given");
	if (!(ev = vd_ev_new(err)))
		return -1;
	if (vd_ev_stop_on_signal(ev, SIGINT, err) < 0 || vd_ev_stop_on_signal(ev, SIGTERM, err) < 0 ||
	    !(lb = vd_lb_new(ev, &cfg, err))) {
		vd_ev_free(ev);
		return -1;
	}
	for (int i = 0; i < nb; i++) {
		char name[80];

		snprintf(name, sizeof(name), strchr(hosts[i], ':') ? "[%s]:%d" : "%s:%d", hosts[i],
			 ports[i]);
		if (vd_lb_add_replica(lb, name, hosts[i], ports[i], err) < 0) {
			vd_lb_free(lb);
			vd_ev_free(ev);
			return -1;
		}
		free(hosts[i]);
	}
	vd_info("balancing %s:%d over %d backends", cfg.listen_host, vd_lb_port(lb), nb);
	every = (struct every){ lb, stats_ms };
	if (stats_ms > 0)
		vd_ev_timer(ev, stats_ms, print_stats, &every);
	sig = vd_ev_run(ev);
	if (stats_ms > 0)
		print_stats(ev, &every);
	vd_lb_free(lb);
	vd_ev_free(ev);
	free(listen_host);
	return sig < 0 ? vd_error_errno(err, errno, "event loop") : 0;
}
