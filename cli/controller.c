/*
 * vdctl controller: run the daemon (orchestrator/controller.c) in the
 * foreground, or detached with --daemon.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "vd/cleanup.h"
#include "vd/controller.h"
#include "vd/file.h"
#include "vd/log.h"
#include "vd/units.h"

static const char usage[] =
	"usage: vdctl controller [--daemon] [--takeover] [--pidfile FILE]\n"
	"                        [--metrics HOST:PORT] [--resync DUR]\n"
	"\n"
	"Keep the engines matching what 'vdctl apply' recorded in the state\n"
	"directory: replace replicas that die, are OOM-killed or fail their health\n"
	"check (with an exponential back-off for one that keeps failing), run the\n"
	"balancer of each service that declares one with the replicas that pass\n"
	"their check, and serve status on DIR/control.sock. While it runs, apply,\n"
	"scale, resize and delete hand their work to it. See vdctl-controller(8).\n"
	"\n"
	"SIGTERM or SIGINT stop it gracefully and leave the replicas running; a\n"
	"new controller adopts them. SIGHUP makes it read the state directory again.\n"
	"\n"
	"To restart or upgrade it without refusing a connection, start the new one\n"
	"with --daemon or --takeover while the old one runs: the old one hands over\n"
	"its lock and its listening sockets, stops its engine thread, answers what\n"
	"it holds and exits.\n"
	"\n"
	"options:\n"
	"   --daemon             detach; log to DIR/controller.log; take over from a\n"
	"                        controller running for DIR\n"
	"   --takeover           take over from a controller running for DIR (else\n"
	"                        one in the foreground refuses to start)\n"
	"   --pidfile FILE       with --daemon, where to write the pid\n"
	"                        (default DIR/controller.pid)\n"
	"   --metrics HOST:PORT  serve Prometheus metrics on http://HOST:PORT/metrics\n"
	"   --resync DUR         reconcile at least this often (default 30s)\n"
	"   -h, --help           show this help\n"
	"\n"
	"exit status: 0 stopped by a signal or handed over; 1 could not start\n"
	"(another controller runs for DIR and --takeover was not given, it did not\n"
	"hand over, or the control socket cannot be made); 2 bad arguments\n";

struct daemon_ready {
	int fd; /* the parent waits on its other end */
};

static void
tell_parent(void *arg)
{
	struct daemon_ready *r = arg;

	if (r->fd >= 0) {
		if (write(r->fd, "ok\n", 3) < 0)
			vd_warn("controller: cannot tell the parent it is ready");
		close(r->fd);
		r->fd = -1;
	}
}

/* The parent of --daemon: wait for the child's word, then exit. FROM: the
 * controller it took over from, or 0. */
static int
wait_child(pid_t pid, pid_t from, int fd, struct vd_error *err)
{
	char buf[VD_ERROR_MSG_MAX];
	ssize_t n, got = 0;

	while ((n = read(fd, buf + got, sizeof(buf) - 1 - (size_t)got)) > 0 ||
	       (n < 0 && errno == EINTR))
		got += n > 0 ? n : 0;
	close(fd);
	buf[got] = '\0';
	if (strncmp(buf, "ok\n", 3) == 0) {
		if (from)
			printf("vdctl controller: running (pid %d), took over from pid %d\n",
			       (int)pid, (int)from);
		else
			printf("vdctl controller: running (pid %d)\n", (int)pid);
		return 0;
	}
	buf[strcspn(buf, "\n")] = '\0';
	waitpid(pid, NULL, WNOHANG);
	return vd_error_set(err, VD_EXIT_FAILURE, "%s", *buf ? buf : "the controller did not start");
}

static int
detach(const char *dir, const char *pidfile, int lock_fd, pid_t from, int *ready_fd,
       struct vd_error *err)
{
	int p[2], out;
	char log[PATH_MAX + 32], pid[32];
	pid_t child;

	snprintf(log, sizeof(log), "%s/controller.log", dir);
	if (pipe2(p, O_CLOEXEC) < 0)
		return vd_error_errno(err, errno, "pipe");
	fflush(NULL);
	if ((child = fork()) < 0)
		return vd_error_errno(err, errno, "fork");
	if (child > 0) {
		close(p[1]);
		exit(wait_child(child, from, p[0], err) < 0 ? (vd_error_print(err, "vdctl"), 1) : 0);
	}
	close(p[0]);
	*ready_fd = p[1];
	setsid();
	if ((out = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) < 0)
		return vd_error_errno(err, errno, "cannot open '%s'", log);
	dup2(out, STDOUT_FILENO);
	dup2(out, STDERR_FILENO);
	close(out);
	if ((out = open("/dev/null", O_RDONLY)) >= 0) {
		dup2(out, STDIN_FILENO);
		close(out);
	}
	if (vd_controller_lock_pid(lock_fd, err) < 0)
		return -1;
	snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	return vd_file_write_atomic(pidfile, pid, strlen(pid), err);
}

/* Remove the pid file, unless a controller that took over has written its own. */
static void
remove_pidfile(const char *path)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = fopen(path, "r");

	if (f && getline(&text, &len, f) > 0 && atoi(text) == (int)getpid())
		unlink(path);
	if (f)
		fclose(f);
	free(text);
}

int
cmd_controller(int argc, char **argv, struct vd_error *err)
{
	static const struct option options[] = {
		{ "daemon", no_argument, NULL, 'd' },
		{ "takeover", no_argument, NULL, 't' },
		{ "pidfile", required_argument, NULL, 'p' },
		{ "metrics", required_argument, NULL, 'm' },
		{ "resync", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct vd_node_config node;
	struct vd_controller_opts o = { 0 };
	struct daemon_ready ready = { -1 };
	struct vd_error why = VD_ERROR_INIT;
	struct vd_controller_handover from = { .lock_fd = -1 };
	char dir[PATH_MAX], pidfile[PATH_MAX + 32] = "";
	_cleanup_free_ char *host = NULL;
	bool daemon = false, takeover = false;
	int c, lock, ret;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (c) {
		case 'd':
			daemon = takeover = true;
			break;
		case 't':
			takeover = true;
			break;
		case 'p':
			snprintf(pidfile, sizeof(pidfile), "%s", optarg);
			break;
		case 'm':
			if (vd_units_parse_hostport(optarg, &host, &o.metrics_port, &why) < 0)
				return cli_usage_error(err, "controller", "invalid --metrics '%s': %s",
						       optarg, why.msg);
			o.metrics_host = host;
			break;
		case 'r':
			if (vd_units_parse_duration_ms(optarg, &o.resync_ms, &why) < 0 || o.resync_ms <= 0)
				return cli_usage_error(err, "controller", "invalid --resync '%s': %s",
						       optarg, why.msg[0] ? why.msg
									  : "must be more than 0");
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			return cli_unknown_option(err, "controller", options, argv[optind - 1]);
		}
	}
	if (optind != argc)
		return cli_usage_error(err, "controller", "unexpected argument '%s'", argv[optind]);
	if (*pidfile && !daemon)
		return cli_usage_error(err, "controller", "--pidfile goes with --daemon");

	cli_node(&node);
	if (vd_file_mkdir_p(node.state_dir, err) < 0)
		return vd_error_wrap(err, "state directory");
	/* a daemon leaves the working directory: keep every path absolute */
	if (!realpath(node.state_dir, dir))
		return vd_error_errno(err, errno, "state directory '%s'", node.state_dir);
	node.state_dir = dir;
	vd_log_set_timestamps(1);
	if (vd_log_get_level() == VD_LOG_WARN) /* the default: a line per event */
		vd_log_set_level(VD_LOG_INFO);
	if ((lock = vd_controller_lock(dir, err)) < 0) {
		/* one runs: it hands its lock and its sockets over, or nothing changes */
		if (!takeover || err->sys_errno != EWOULDBLOCK)
			return -1;
		vd_error_clear(err);
		if (vd_controller_take_over(dir, &from, err) < 0)
			return -1;
		lock = from.lock_fd;
		from.lock_fd = -1;
		o.inherited = &from;
		if (vd_controller_lock_pid(lock, err) < 0) {
			vd_controller_handover_release(&from);
			close(lock);
			return -1;
		}
	}
	if (daemon) {
		if (!*pidfile)
			snprintf(pidfile, sizeof(pidfile), "%s/controller.pid", dir);
		if (detach(dir, pidfile, lock, from.pid, &ready.fd, err) < 0) {
			if (ready.fd >= 0 && write(ready.fd, err->msg, strlen(err->msg)) < 0)
				vd_warn("controller: cannot tell the parent why");
			return -1;
		}
		if (chdir("/") < 0)
			vd_warn("controller: chdir /: %s", strerror(errno));
	}
	if (from.pid)
		vd_info("controller: took over from pid %d: its lock and %zu listening sockets",
			(int)from.pid, from.n - 1);
	o.node = &node;
	o.ready = tell_parent;
	o.ready_arg = &ready;
	o.lock_fd = lock;
	ret = vd_controller_run(&o, err);
	vd_controller_handover_release(&from);
	if (ret < 0 && ready.fd >= 0 && write(ready.fd, err->msg, strlen(err->msg)) < 0)
		vd_warn("controller: cannot tell the parent why");
	if (ready.fd >= 0)
		close(ready.fd);
	if (daemon)
		remove_pidfile(pidfile);
	close(lock);
	return ret;
}
