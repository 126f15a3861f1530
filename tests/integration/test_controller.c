/*
 * The controller (vdctl-controller(8)) run as the real binary against the
 * real dockerd: one controller per state directory, apply handed to it with
 * its balancer answering, a replica killed under closed-model load without a
 * failed request, an OOM-killed replica replaced with its reason, a restart
 * of the controller that adopts the replicas without restarting any, the
 * back-off of a replica that always crashes, scale through the controller,
 * the Prometheus metrics, --daemon and SIGHUP, a VM replica destroyed with
 * virsh and replaced, and a dockerd (the suite's own, never the machine's)
 * stopped and started again.
 *
 * Each test has its own state directory (mkdtemp /tmp/itc-XXXXXX, short:
 * the control socket's path must fit in 108 bytes), service (itc<pid>-<tag>)
 * and free balancer port, and runs `vdctl --state-dir DIR controller` as a
 * child with its stderr in DIR/ctl.log. Teardown stops it (SIGTERM, SIGKILL
 * after 20 s), prints its log and the last status seen when the test did not
 * reach its end, deletes the service with vdctl alone and removes DIR.
 * Conditions are awaited by polling
 * `vdctl status --json` every 200 ms up to a deadline; no upper bound on a
 * duration is asserted. vdctl ($VD_VDCTL_BIN) is copied first, so a rebuild
 * during the run does not pull it away; an apply refused for lack of
 * capacity that other people's replicas hold is retried a bounded number of
 * times.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "vdtest.h"

#define IMAGE "vdctl/example-svc:latest"
#define SYNC_CMD "[\"/svc\", \"--model\", \"sync\", \"--workers\", \"4\"]"
#define ENV "/usr/bin/env"  /* runs docker and pgrep from $PATH */
#define RUN_TIMEOUT_S 120   /* any one command */
#define MAX_ARGS 16
#define POLL_MS 200
#define WAIT_S 60           /* a condition in status */
#define START_S 20          /* a new controller's socket to answer */
#define STOP_S 20           /* a controller to exit after SIGTERM */
#define BUSY_RETRIES 40     /* capacity refused for others' replicas */
#define BUSY_SLEEP_S 3

static struct {
	char root[64]; /* mkdtemp: our copy of vdctl */
	char bin[128];
} G;

struct tctx {
	char dir[64];  /* the state directory */
	char svc[48];
	char manifest[128];
	char log[128]; /* the controller's stderr */
	int port;      /* the balancer's; 0 without one */
	pid_t ctl;     /* the controller; 0 when none runs */
	pid_t daemon;  /* a controller started with --daemon (not our child) */
	bool applied;
	bool done;     /* the test ran to its end */
	json_t *last;  /* the last status seen */
};

/* -------------------------------------------------------------- helpers */

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Run PROG (a path) with the arguments up to NULL; returns the exit status. */
static int
run(struct vt_result *r, double timeout_s, char *prog, ...)
{
	char *argv[MAX_ARGS];
	size_t n = 0;
	va_list ap;
	char *a;

	argv[n++] = prog;
	va_start(ap, prog);
	while ((a = va_arg(ap, char *)) && n < MAX_ARGS - 1)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	return vt_run(argv, timeout_s, r);
}

/* vdctl --state-dir DIR, then the arguments up to NULL. */
#define vdctl(r, t, ...) run((r), RUN_TIMEOUT_S, G.bin, "--state-dir", (t)->dir, __VA_ARGS__)

/* Start argv (looked up on $PATH) with stdin on /dev/null and stdout and
 * stderr appended to LOG. DETACH: in a session of its own, SIGHUP ignored,
 * reparented (as `nohup CMD &` from a shell that exits), and 0 is returned;
 * otherwise the child's pid. */
static pid_t
spawn_logged(char *const argv[], const char *log, bool detach)
{
	pid_t pid = fork();
	int st, in, out;

	if (pid != 0) {
		if (pid > 0 && detach)
			while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
				;
		return pid < 0 ? -1 : detach ? 0 : pid;
	}
	if (detach) {
		setsid();
		signal(SIGHUP, SIG_IGN);
		if (fork() != 0)
			_exit(0);
	}
	in = open("/dev/null", O_RDONLY);
	out = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (in < 0 || out < 0)
		_exit(126);
	dup2(in, 0);
	dup2(out, 1);
	dup2(out, 2);
	execvp(argv[0], argv);
	_exit(127);
}

/* ---------------------------------------------------------------- dockerd */

/* PID exists and is not a zombie. */
static bool
alive(pid_t pid)
{
	char path[64], *stat, *p;
	bool yes;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (!(stat = vt_read_text(path)))
		return false;
	p = strrchr(stat, ')');
	yes = p && p[1] == ' ' && p[2] != 'Z';
	free(stat);
	return yes;
}

/*
 * A dockerd of the suite's own, for the test that stops one: its own
 * socket, data-root, exec-root, pidfile and bridge (vdctl's tests never stop,
 * restart or reconfigure the machine's dockerd, which runs other people's
 * containers). Its image store starts empty: the example image is loaded
 * into it from the machine's.
 */
static struct {
	char dir[64];    /* mkdtemp: data, exec, sock, pid, log */
	char host[96];   /* unix://DIR/sock */
	char bridge[16];
	char addr[32];
	pid_t pid;
} D;

static pid_t
own_dockerd_spawn(void)
{
	char data[96], exec[96], pidf[96], sock[96], log[96];
	char *argv[] = { (char *)"dockerd", (char *)"--data-root", data, (char *)"--exec-root",
			 exec, (char *)"--pidfile", pidf, (char *)"-H", D.host, (char *)"--bridge",
			 D.bridge, (char *)"--iptables=false", (char *)"--ip-masq=false", NULL };

	snprintf(data, sizeof(data), "%s/data", D.dir);
	snprintf(exec, sizeof(exec), "%s/exec", D.dir);
	snprintf(pidf, sizeof(pidf), "%s/pid", D.dir);
	snprintf(sock, sizeof(sock), "%s/sock", D.dir);
	snprintf(log, sizeof(log), "%s/dockerd.log", D.dir);
	return spawn_logged(argv, log, false);
}

/* Is our dockerd answering (UP) or not, within SECONDS? */
static bool
own_dockerd_wait(bool up, int seconds)
{
	struct vt_result r;
	double t0 = now_s();

	for (;;) {
		bool ok = run(&r, 15, ENV, "docker", "-H", D.host, "info", "--format", "{{.ID}}",
			      NULL) == 0;

		vt_result_clear(&r);
		if (ok == up)
			return true;
		if (now_s() - t0 > seconds)
			return false;
		sleep_ms(300);
	}
}

static void
own_dockerd_stop(void)
{
	if (D.pid > 0) {
		kill(D.pid, SIGTERM);
		for (int i = 0; i < 600 && alive(D.pid); i++)
			sleep_ms(100);
		if (alive(D.pid))
			kill(D.pid, SIGKILL);
		waitpid(D.pid, NULL, 0);
		D.pid = 0;
	}
}

static int
own_dockerd_start(void)
{
	struct vt_result r;
	char tar[96];
	int st;

	snprintf(D.dir, sizeof(D.dir), "/tmp/itd-XXXXXX");
	if (!mkdtemp(D.dir))
		return -1;
	snprintf(D.host, sizeof(D.host), "unix://%s/sock", D.dir);
	snprintf(D.bridge, sizeof(D.bridge), "vdbrt%d", (int)getpid() % 100000);
	snprintf(D.addr, sizeof(D.addr), "172.30.%d.1/24", 20 + (int)getpid() % 200);
	snprintf(tar, sizeof(tar), "%s/image.tar", D.dir);
	if (run(&r, 30, ENV, "ip", "link", "add", D.bridge, "type", "bridge", NULL) != 0 ||
	    (vt_result_clear(&r), run(&r, 30, ENV, "ip", "addr", "add", D.addr, "dev", D.bridge,
				      NULL)) != 0 ||
	    (vt_result_clear(&r), run(&r, 30, ENV, "ip", "link", "set", D.bridge, "up", NULL)) != 0) {
		vt_dump("our dockerd's bridge", &r);
		vt_result_clear(&r);
		return -1;
	}
	vt_result_clear(&r);
	if ((D.pid = own_dockerd_spawn()) <= 0 || !own_dockerd_wait(true, 90))
		return -1;
	st = run(&r, 120, ENV, "docker", "-H", "unix:///var/run/docker.sock", "save", "-o", tar,
		 IMAGE, NULL);
	vt_result_clear(&r);
	if (st != 0 || run(&r, 120, ENV, "docker", "-H", D.host, "load", "-i", tar, NULL) != 0) {
		vt_dump("loading " IMAGE " into our dockerd", &r);
		vt_result_clear(&r);
		return -1;
	}
	vt_result_clear(&r);
	unlink(tar);
	return 0;
}

/* Stop it, remove its bridge and its files. */
static void
own_dockerd_remove(void)
{
	struct vt_result r;

	own_dockerd_stop();
	if (D.bridge[0]) {
		run(&r, 30, ENV, "ip", "link", "del", D.bridge, NULL);
		vt_result_clear(&r);
		D.bridge[0] = '\0';
	}
	if (D.dir[0]) {
		vt_rm_tree(D.dir);
		D.dir[0] = '\0';
	}
	unsetenv("DOCKER_HOST");
}

/* ------------------------------------------------------------- controller */

/* Start `vdctl controller` (with --metrics METRICS when not NULL) and wait
 * until its socket answers. */
static void
ctl_start(struct tctx *t, const char *metrics)
{
	char maddr[64];
	char *argv[] = { G.bin, (char *)"--state-dir", t->dir, (char *)"controller",
			 metrics ? (char *)"--metrics" : NULL, maddr, NULL };
	struct vt_result r;
	double t0 = now_s();
	int st;

	snprintf(maddr, sizeof(maddr), "%s", metrics ? metrics : "");
	t->ctl = spawn_logged(argv, t->log, false);
	assert_true(t->ctl > 0);
	for (int i = 0; i < START_S * 1000 / POLL_MS && now_s() - t0 < START_S; i++) {
		if (waitpid(t->ctl, &st, WNOHANG) == t->ctl) {
			t->ctl = 0;
			fail_msg("the controller exited at its start (wait status 0x%x)", st);
		}
		st = vdctl(&r, t, "status", "--json", NULL);
		vt_result_clear(&r);
		/* 1: it answers, and a service needs its owner */
		if (st == 0 || st == 1) {
			printf("# controller pid %d answers after %.2fs\n", (int)t->ctl, now_s() - t0);
			return;
		}
		sleep_ms(POLL_MS);
	}
	fail_msg("the controller's socket did not answer within %d s", START_S);
}

/* SIGTERM the controller and reap it, with SIGKILL after STOP_S. Returns
 * its exit status, 128+N when killed by signal N, -1 when none ran. */
static int
ctl_stop(struct tctx *t)
{
	pid_t pid = t->ctl;
	double t0 = now_s();
	bool reaped = false;
	int st = 0;

	if (pid <= 0)
		return -1;
	t->ctl = 0;
	kill(pid, SIGTERM);
	for (int i = 0; i < STOP_S * 20 && !reaped && now_s() - t0 < STOP_S; i++)
		if (!(reaped = waitpid(pid, &st, WNOHANG) == pid))
			sleep_ms(50);
	if (!reaped) {
		fprintf(stderr, "the controller still runs %d s after SIGTERM: SIGKILL\n", STOP_S);
		kill(pid, SIGKILL);
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
	}
	printf("# controller stopped in %.2fs\n", now_s() - t0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
}

/* ----------------------------------------------------------------- status */

static json_t *
status_json(struct tctx *t)
{
	struct vt_result r;
	json_t *j = NULL;

	/* 1: printed, and a service needs its owner (held, balancer down) */
	if (vdctl(&r, t, "status", "--json", NULL) <= 1 && r.status >= 0)
		j = json_loads(r.out, 0, NULL);
	vt_result_clear(&r);
	if (j) {
		json_decref(t->last);
		t->last = json_incref(j);
	}
	return j;
}

/* A string member, "" when missing or null. */
static const char *
str(json_t *o, const char *key)
{
	const char *v = json_string_value(json_object_get(o, key));

	return v ? v : "";
}

static long long
num(json_t *o, const char *key)
{
	return (long long)json_number_value(json_object_get(o, key));
}

static json_t *
service_of(json_t *st, const char *name)
{
	json_t *s;
	size_t i;

	json_array_foreach(json_object_get(st, "services"), i, s)
		if (strcmp(str(s, "name"), name) == 0)
			return s;
	return NULL;
}

static json_t *
replica_of(json_t *svc, int index)
{
	json_t *r;
	size_t i;

	json_array_foreach(json_object_get(svc, "replicas"), i, r)
		if (num(r, "index") == index)
			return r;
	return NULL;
}

static json_t *
docker_of(json_t *st)
{
	return json_object_get(json_object_get(st, "engines"), "docker");
}

typedef bool pred_fn(struct tctx *t, json_t *st, const void *arg);

/* Poll status until OK says yes, for up to SECONDS. Returns that status (to
 * json_decref), or fails the test naming WHAT. */
static json_t *
wait_status(struct tctx *t, pred_fn *ok, const void *arg, int seconds, const char *what)
{
	double t0 = now_s();

	for (int i = 0; i < seconds * 1000 / POLL_MS + 1; i++) {
		json_t *st = status_json(t);

		if (st && ok(t, st, arg)) {
			printf("# %s: after %.2fs\n", what, now_s() - t0);
			return st;
		}
		json_decref(st);
		if (now_s() - t0 > seconds)
			break;
		sleep_ms(POLL_MS);
	}
	fail_msg("%s: not seen within %d s", what, seconds);
	return NULL;
}

/* Docker up; *arg replicas desired, ready, listed and healthy; the balancer
 * listening (when there is one). */
static bool
ready_pred(struct tctx *t, json_t *st, const void *arg)
{
	json_t *s = service_of(st, t->svc), *r;
	int n = *(const int *)arg;
	size_t i;

	if (!s || !json_is_true(json_object_get(docker_of(st), "up")) ||
	    num(s, "desired") != n || num(s, "ready") != n ||
	    json_array_size(json_object_get(s, "replicas")) != (size_t)n)
		return false;
	json_array_foreach(json_object_get(s, "replicas"), i, r)
		if (strcmp(str(r, "health"), "healthy") != 0)
			return false;
	return !t->port || json_is_true(json_object_get(json_object_get(s, "balancer"), "up"));
}

static json_t *
wait_ready(struct tctx *t, int n, int seconds)
{
	char what[64];

	snprintf(what, sizeof(what), "%d ready", n);
	return wait_status(t, ready_pred, &n, seconds, what);
}

/* A replacement of index `index`: healthy, a new id, a restart counted. */
struct restarted {
	int index;
	const char *old_id;
	const char *reason; /* a part of last_reason */
};

static bool
restarted_pred(struct tctx *t, json_t *st, const void *arg)
{
	const struct restarted *w = arg;
	json_t *r = replica_of(service_of(st, t->svc), w->index);

	return r && strcmp(str(r, "health"), "healthy") == 0 &&
	       strcmp(str(r, "id"), w->old_id) != 0 && num(r, "restarts") >= 1 &&
	       strstr(str(r, "last_reason"), w->reason);
}

/* -------------------------------------------------------------- services */

struct spec {
	int replicas;
	const char *command; /* a YAML flow sequence */
	const char *start_period;
	bool balancer;
	const char *interval; /* of the health checks; NULL: 500ms */
	const char *balancer_opts; /* more of the balancer's flow mapping, ", k: v" */
	const char *extra;         /* more lines, as they are */
	const char *cpus;          /* NULL: 0.05 */
};

static const struct spec web3 = { 3, SYNC_CMD, "5s", true, NULL, NULL, NULL, NULL };

static void
write_manifest(struct tctx *t, const struct spec *s)
{
	FILE *f = fopen(t->manifest, "w");

	assert_non_null(f);
	fprintf(f, "# written by tests/integration/test_controller.c\n"
		"service: %s\nbackend: docker\nimage: " IMAGE "\ncommand: %s\nport: 8080\n"
		"replicas: %d\nresources: {cpus: %s, memory: 64Mi}\n"
		"health: {http: /healthz, interval: %s, timeout: 500ms, retries: 2, "
		"start_period: %s}\n%s",
		t->svc, s->command, s->replicas, s->cpus ? s->cpus : "0.05",
		s->interval ? s->interval : "500ms", s->start_period, s->extra ? s->extra : "");
	if (s->balancer)
		fprintf(f, "balancer: {listen: 127.0.0.1:%d%s}\n", t->port,
			s->balancer_opts ? s->balancer_opts : "");
	else
		t->port = 0;
	assert_int_equal(fclose(f), 0);
}

/* vdctl apply [--no-wait] MANIFEST, again while the node is full of other
 * services' replicas; expects exit 0. */
static void
apply(struct tctx *t, struct vt_result *r, bool wait)
{
	for (int i = 0; i <= BUSY_RETRIES; i++) {
		t->applied = true;
		if (wait)
			vdctl(r, t, "apply", t->manifest, NULL);
		else
			vdctl(r, t, "apply", "--no-wait", t->manifest, NULL);
		if (r->status != 2 || !strstr(r->err, "other services' replicas") ||
		    i == BUSY_RETRIES)
			break;
		fprintf(stderr, "# node busy with other services' replicas: retry in %ds\n",
			BUSY_SLEEP_S);
		vt_result_clear(r);
		sleep(BUSY_SLEEP_S);
	}
	printf("# apply: %.2fs\n", r->secs);
	assert_exit(r, 0);
}

/* Write the manifest of S, start a controller, apply, wait for all ready. */
static void
bring_up(struct tctx *t, const struct spec *s, const char *metrics)
{
	struct vt_result r;

	write_manifest(t, s);
	ctl_start(t, metrics);
	apply(t, &r, true);
	vt_result_clear(&r);
	json_decref(wait_ready(t, s->replicas, WAIT_S));
}

/* KEY of replica INDEX in the status now, into OUT; not empty. */
static void
replica_field(struct tctx *t, int index, const char *key, char *out, size_t size)
{
	json_t *st = status_json(t);

	assert_non_null(st);
	snprintf(out, size, "%s", str(replica_of(service_of(st, t->svc), index), key));
	json_decref(st);
	assert_true(*out);
}

static long
get(int port, const char *path, char **body)
{
	char url[128];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
	return vt_http_get(url, body, 10000);
}

/* 9. --daemon detaches once its socket answers and writes its pid; SIGHUP
 * makes it read a state directory changed by hand at once (its resync is
 * 10 minutes); SIGTERM stops it and removes the pid file. */
static void
test_daemon_sighup(void **state)
{
	static const struct spec one = { 1, SYNC_CMD, "5s", false, NULL, NULL, NULL, NULL };
	struct tctx *t = *state;
	struct vt_result r;
	char pidfile[128], path[160], *text, *p;
	FILE *f;

	write_manifest(t, &one);
	vdctl(&r, t, "controller", "--daemon", "--resync", "10m", NULL);
	assert_exit(&r, 0);
	assert_has(r.out, "running (pid ");
	vt_result_clear(&r);
	snprintf(pidfile, sizeof(pidfile), "%s/controller.pid", t->dir);
	text = vt_read_text(pidfile);
	assert_non_null(text);
	t->daemon = atoi(text);
	free(text);
	assert_true(t->daemon > 0 && alive(t->daemon));
	apply(t, &r, true);
	vt_result_clear(&r);
	json_decref(wait_ready(t, 1, WAIT_S));

	/* the recorded count, 1, made 2 by hand */
	snprintf(path, sizeof(path), "%s/services/%s.yaml", t->dir, t->svc);
	text = vt_read_text(path);
	assert_non_null(text);
	assert_non_null(p = strstr(text, "\"replicas\": 1,"));
	p[strlen("\"replicas\": ")] = '2';
	assert_non_null(f = fopen(path, "w"));
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
	free(text);
	assert_int_equal(kill(t->daemon, SIGHUP), 0);
	json_decref(wait_ready(t, 2, WAIT_S));

	assert_int_equal(kill(t->daemon, SIGTERM), 0);
	for (int i = 0; i < STOP_S * 20 && alive(t->daemon); i++)
		sleep_ms(50);
	assert_false(alive(t->daemon));
	t->daemon = 0;
	assert_int_equal(access(pidfile, F_OK), -1);
	t->done = true;
}

/* ------------------------------------------------------------------- VMs */

static bool
healthy_pred(struct tctx *t, json_t *st, const void *arg)
{
	json_t *r = replica_of(service_of(st, t->svc), *(const int *)arg);

	return r && strcmp(str(r, "health"), "healthy") == 0;
}

/* 10. A VM replica destroyed with virsh is replaced, its reason shown, and
 * the balancer routes to the new one. */
static void
test_vm_destroy(void **state)
{
	struct tctx *t = *state;
	struct restarted w = { 0, NULL, "stopped" };
	const char *images = vt_env("VD_IMAGES_DIR", "examples/images");
	char images_abs[PATH_MAX], name[96], id[80];
	struct vt_result r;
	const int index = 0;
	FILE *f;

	assert_non_null(realpath(images, images_abs));
	f = fopen(t->manifest, "w");
	assert_non_null(f);
	fprintf(f, "# written by tests/integration/test_controller.c\n"
		"service: %s\nbackend: libvirt\n"
		"vm: {kernel: %s/vmlinuz, initrd: %s/svc-initrd.gz, cmdline: console=ttyS0 quiet}\n"
		"command: [\"/svc\", \"--model\", \"async\"]\nport: 8080\nreplicas: 1\n"
		"resources: {cpus: 0.5, memory: 256Mi}\n"
		"health: {http: /healthz, interval: 1s, start_period: 120s}\n"
		"balancer: {listen: 127.0.0.1:%d}\n",
		t->svc, images_abs, images_abs, t->port);
	assert_int_equal(fclose(f), 0);
	ctl_start(t, NULL);
	apply(t, &r, true);
	vt_result_clear(&r);
	json_decref(wait_status(t, healthy_pred, &index, 2 * WAIT_S, "the VM healthy"));
	replica_field(t, 0, "id", id, sizeof(id));
	replica_field(t, 0, "name", name, sizeof(name));
	w.old_id = id;

	run(&r, RUN_TIMEOUT_S, ENV, "virsh", "-c", "qemu:///system", "destroy", name, NULL);
	assert_exit(&r, 0);
	vt_result_clear(&r);
	json_decref(wait_status(t, restarted_pred, &w, 3 * WAIT_S, "the VM replaced"));
	assert_int_equal(get(t->port, "/ping", NULL), 200);
	t->done = true;
}

/* ------------------------------------------------------- setup, teardown */

/* *state is the test's tag; it becomes the test's context. */
static int
setup(void **state)
{
	struct tctx *t = calloc(1, sizeof(*t));

	if (!t)
		return -1;
	snprintf(t->dir, sizeof(t->dir), "/tmp/itc-XXXXXX");
	if (!mkdtemp(t->dir)) {
		fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
		free(t);
		return -1;
	}
	snprintf(t->svc, sizeof(t->svc), "itc%d-%s", (int)getpid(), (const char *)*state);
	snprintf(t->manifest, sizeof(t->manifest), "%s/svc.yaml", t->dir);
	snprintf(t->log, sizeof(t->log), "%s/ctl.log", t->dir);
	t->port = vt_free_port();
	*state = t;
	printf("# %s in %s, balancer port %d\n", t->svc, t->dir, t->port);
	return t->port > 0 ? 0 : -1;
}

static int
teardown(void **state)
{
	struct tctx *t = *state;
	struct vt_result r;
	int st = ctl_stop(t);

	if (t->daemon > 0) {
		kill(t->daemon, SIGTERM);
		for (int i = 0; i < STOP_S * 20 && alive(t->daemon); i++)
			sleep_ms(50);
	}

	if (!t->done) {
		char *log = vt_read_text(t->log);
		char *last = t->last ? json_dumps(t->last, JSON_INDENT(1)) : NULL;

		fprintf(stderr, "--- %s failed; the controller's log (exit %d):\n%s--- the last "
			"status:\n%s\n---\n", t->svc, st, log ? log : "(none)\n",
			last ? last : "(none)");
		free(log);
		free(last);
	}
	if (t->applied) {
		if (D.dir[0] && !own_dockerd_wait(true, 0) && (D.pid = own_dockerd_spawn()) > 0)
			own_dockerd_wait(true, 90); /* to delete what is in it */
		vdctl(&r, t, "delete", t->svc, NULL);
		if (r.status != 0)
			vt_dump("teardown: vdctl delete", &r);
		vt_result_clear(&r);
	}
	json_decref(t->last);
	vt_rm_tree(t->dir);
	own_dockerd_remove();
	free(t);
	return 0;
}

static int
group_setup(void **state)
{
	struct vt_result r;
	int st;

	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (vt_docker("GET", "/images/" IMAGE "/json", NULL, NULL) != 200) {
		fprintf(stderr, "no image %s (or no dockerd): run 'make setup'\n", IMAGE);
		return -1;
	}
	snprintf(G.root, sizeof(G.root), "/tmp/itc-bin-XXXXXX");
	if (!mkdtemp(G.root)) {
		fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
		return -1;
	}
	snprintf(G.bin, sizeof(G.bin), "%s/vdctl", G.root);
	st = run(&r, 30, (char *)"/bin/cp", vt_env("VD_VDCTL_BIN", "build/vdctl"), G.bin, NULL);
	if (st != 0)
		vt_dump("cannot copy vdctl", &r);
	vt_result_clear(&r);
	return st == 0 ? 0 : -1;
}

static int
group_teardown(void **state)
{
	(void)state;
	own_dockerd_remove();
	vt_rm_tree(G.root);
	curl_global_cleanup();
	return 0;
}

/* ------------------------------------------------------------------ tests */

/* 1. One controller per state directory; status without one exits 3. */
static void
test_lock(void **state)
{
	struct tctx *t = *state;
	struct vt_result r;
	char want[64], empty[] = "/tmp/itc-empty-XXXXXX";

	ctl_start(t, NULL);
	vdctl(&r, t, "controller", NULL);
	assert_exit(&r, 1);
	assert_has(r.err, "a controller already runs for");
	snprintf(want, sizeof(want), "(pid %d)", (int)t->ctl);
	assert_has(r.err, want);
	vt_result_clear(&r);
	assert_int_equal(waitpid(t->ctl, NULL, WNOHANG), 0); /* the first one runs on */

	assert_non_null(mkdtemp(empty));
	run(&r, RUN_TIMEOUT_S, G.bin, "--state-dir", empty, "status", NULL);
	rmdir(empty);
	assert_exit(&r, 3);
	assert_has(r.err, "no controller runs for");
	vt_result_clear(&r);
	t->done = true;
}

/* 2. apply handed to the controller: progress, summary, a balancer that
 * answers; status as a table; the socket's mode. */
static void
test_apply(void **state)
{
	struct tctx *t = *state;
	struct vt_result r;
	struct stat sb;
	char path[128], *body = NULL;
	json_t *st;

	write_manifest(t, &web3);
	ctl_start(t, NULL);
	apply(t, &r, true);
	assert_has(r.out, "created");
	assert_has(r.out, "healthy");
	assert_has(r.out, "apply: 3 created, 0 started, 0 resized, 0 replaced, 0 removed");
	vt_result_clear(&r);

	st = wait_ready(t, 3, WAIT_S);
	snprintf(path, sizeof(path), "127.0.0.1:%d", t->port);
	assert_string_equal(str(json_object_get(service_of(st, t->svc), "balancer"), "listen"),
			    path);
	json_decref(st);
	assert_int_equal(get(t->port, "/ping", &body), 200);
	assert_non_null(body);
	assert_true(strncmp(body, "pong", 4) == 0);
	free(body);

	vdctl(&r, t, "status", NULL);
	assert_exit(&r, 0);
	assert_has(r.out, t->svc);
	vt_result_clear(&r);

	snprintf(path, sizeof(path), "%s/control.sock", t->dir);
	assert_int_equal(stat(path, &sb), 0);
	assert_true(S_ISSOCK(sb.st_mode));
	assert_int_equal(sb.st_mode & 07777, 0600);
	t->done = true;
}

/*
 * A replica slow to listen (1.5 s) joins its balancer once it answers, not
 * a check interval (10 minutes here) later: until it first passes it is
 * checked every 100 ms. Before, its first check failed and the next came
 * 10 minutes on, past this test's 60 s wait.
 */
static void
test_cold_start(void **state)
{
	static const struct spec slow = { 1,
					  "[\"/svc\", \"--model\", \"sync\", \"--workers\", "
					  "\"2\", \"--start-delay\", \"1500\"]",
					  "1m", true, "10m", NULL, NULL, NULL };
	struct tctx *t = *state;
	struct vt_result r;
	char *body = NULL;

	write_manifest(t, &slow);
	ctl_start(t, NULL);
	apply(t, &r, false);
	vt_result_clear(&r);
	json_decref(wait_ready(t, 1, WAIT_S));
	assert_int_equal(get(t->port, "/ping", &body), 200);
	assert_non_null(body);
	assert_true(strncmp(body, "pong", 4) == 0);
	free(body);
	t->done = true;
}

/* Load through the balancer in the background: the load profile BODY
 * after its target line; results in DIR/res.json. */
static void
load_start_profile(struct tctx *t, struct vt_proc *load, const char *body)
{
	static char profile[128], results[128];
	char *argv[] = { G.bin, (char *)"load", profile, (char *)"--output", results, NULL };
	FILE *f;

	snprintf(profile, sizeof(profile), "%s/load.yaml", t->dir);
	snprintf(results, sizeof(results), "%s/res.json", t->dir);
	f = fopen(profile, "w");
	assert_non_null(f);
	fprintf(f, "target: http://127.0.0.1:%d\n%s", t->port, body);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(vt_spawn(load, argv), 0);
}

/* Closed-model load through the balancer for 6 s, in the background:
 * 10 users, GET /timeout?ms=5 with a 5-10 ms wait, results in DIR/res.json. */
static void
load_start(struct tctx *t, struct vt_proc *load)
{
	load_start_profile(t, load,
			   "model: closed\nusers: 10\nspawn_rate: 100\n"
			   "wait_time: {min: 5ms, max: 10ms}\nduration: 6s\ntimeout: 10s\n"
			   "requests:\n  - {name: t, method: GET, path: /timeout?ms=5}\n");
}

/* Wait for the load to end and check what it saw: every request answered
 * 200, and no error but those of kind ALLOWED (NULL: none at all). Returns
 * how many errors of that kind there were. */
static long long
load_check(struct tctx *t, struct vt_proc *load, const char *allowed)
{
	char results[128], *text;
	struct vt_result r;
	json_t *res, *sum, *codes, *errors, *v;
	const char *kind;
	long long n_allowed = 0;

	vt_finish(load, 60, &r);
	assert_exit(&r, 0);
	vt_result_clear(&r);
	snprintf(results, sizeof(results), "%s/res.json", t->dir);
	text = vt_read_text(results);
	assert_non_null(text);
	res = json_loads(text, 0, NULL);
	sum = json_object_get(res, "summary");
	codes = json_object_get(sum, "codes");
	errors = json_object_get(sum, "errors");
	json_object_foreach(errors, kind, v) {
		if (allowed && strcmp(kind, allowed) == 0)
			n_allowed += (long long)json_integer_value(v);
	}
	if (!sum || json_object_size(errors) > (n_allowed ? 1u : 0u) ||
	    num(codes, "200") != num(sum, "responses"))
		fprintf(stderr, "--- %s:\n%s\n", results, text);
	free(text);
	assert_non_null(sum);
	printf("# load: %lld requests, %lld responses, %lld %s, p99 %.1f ms\n",
	       num(sum, "requests"), num(sum, "responses"), n_allowed, allowed ? allowed : "",
	       json_number_value(json_object_get(json_object_get(sum, "response_time"), "p99")));
	assert_int_equal(json_object_size(errors), n_allowed ? 1 : 0);
	assert_false(json_is_true(json_object_get(res, "interrupted")));
	assert_true(num(sum, "responses") > 100);
	assert_int_equal(num(sum, "responses") + n_allowed, num(sum, "requests"));
	assert_int_equal(num(codes, "200"), num(sum, "responses")); /* and no other code */
	json_decref(res);
	return n_allowed;
}

/* 3. A replica killed under load: no request fails (the balancer retries
 * idempotent ones elsewhere), and it is replaced. */
static void
test_kill_under_load(void **state)
{
	struct tctx *t = *state;
	struct restarted w = { 1, NULL, "exited" };
	struct vt_result r;
	struct vt_proc load;
	char name[96], id[80];

	bring_up(t, &web3, NULL);
	replica_field(t, 1, "id", id, sizeof(id));
	w.old_id = id;
	load_start(t, &load);
	sleep_ms(2000);
	snprintf(name, sizeof(name), "vd-%s-1", t->svc);
	run(&r, 30, ENV, "docker", "kill", name, NULL);
	assert_exit(&r, 0);
	vt_result_clear(&r);
	assert_int_equal(load_check(t, &load, NULL), 0);

	json_decref(wait_status(t, restarted_pred, &w, WAIT_S, "index 1 replaced"));
	json_decref(wait_ready(t, 3, WAIT_S));
	t->done = true;
}

/* 4. A replica over its memory limit is OOM-killed and replaced. */
static void
test_oom(void **state)
{
	static const struct spec one = { 1, SYNC_CMD, "5s", false, NULL, NULL, NULL, NULL };
	struct tctx *t = *state;
	struct restarted w = { 0, NULL, "OOM-killed" };
	char url[128], addr[64], id[80];
	json_t *st;
	long code;

	bring_up(t, &one, NULL);
	replica_field(t, 0, "id", id, sizeof(id));
	replica_field(t, 0, "address", addr, sizeof(addr));
	assert_true(strncmp(addr, "127.0.0.1:", 10) == 0);
	snprintf(url, sizeof(url), "http://%s/alloc?mb=200", addr);
	w.old_id = id;

	code = vt_http_get(url, NULL, 20000);
	printf("# GET /alloc?mb=200: %ld\n", code);
	assert_true(code != 200);
	st = wait_status(t, restarted_pred, &w, WAIT_S, "index 0 replaced after the OOM kill");
	assert_string_equal(str(replica_of(service_of(st, t->svc), 0), "last_reason"),
			    "OOM-killed");
	json_decref(st);
	t->done = true;
}

/* 5. A new controller adopts the replicas a stopped one left: same ids, no
 * restart, and its balancer answers; a load running through the restart
 * sees every request it sent answered 200, and only refused connections
 * while no controller listened. */
static void
test_restart(void **state)
{
	struct tctx *t = *state;
	char ids[3][80];
	struct vt_proc load;
	json_t *st;

	bring_up(t, &web3, NULL);
	for (int i = 0; i < 3; i++)
		replica_field(t, i, "id", ids[i], sizeof(ids[i]));
	/* under load: what was sent is answered; while no controller listens,
	 * connections are refused (vdctl-controller(8)), and nothing else */
	load_start(t, &load);
	sleep_ms(2000);
	assert_int_equal(ctl_stop(t), 0);
	ctl_start(t, NULL);
	load_check(t, &load, "ECONNREFUSED");
	st = wait_ready(t, 3, WAIT_S);
	for (int i = 0; i < 3; i++) {
		json_t *r = replica_of(service_of(st, t->svc), i);

		assert_string_equal(str(r, "id"), ids[i]);
		assert_int_equal(num(r, "restarts"), 0);
	}
	json_decref(st);
	assert_int_equal(get(t->port, "/ping", NULL), 200);
	t->done = true;
}

/* 5b. A controller started with --takeover while one runs takes over its
 * lock and listening sockets (vdctl-controller(8), RESTARTS AND UPGRADES):
 * under load, not a connection refused and not a request failed; the old
 * one exits 0, and the new one answers status with the same replicas
 * healthy, none restarted. */
static void
test_takeover(void **state)
{
	struct tctx *t = *state;
	char *argv[] = { G.bin, (char *)"--state-dir", t->dir, (char *)"controller",
			 (char *)"--takeover", NULL };
	char ids[3][80];
	struct vt_proc load;
	pid_t old;
	double t0;
	bool reaped = false;
	int st = 0;
	json_t *s;

	bring_up(t, &web3, NULL);
	for (int i = 0; i < 3; i++)
		replica_field(t, i, "id", ids[i], sizeof(ids[i]));
	load_start(t, &load);
	sleep_ms(2000);
	old = t->ctl;
	t0 = now_s();
	t->ctl = spawn_logged(argv, t->log, false);
	assert_true(t->ctl > 0);
	for (int i = 0; i < STOP_S * 20 && !reaped; i++)
		if (!(reaped = waitpid(old, &st, WNOHANG) == old))
			sleep_ms(50);
	if (!reaped) {
		kill(old, SIGKILL);
		waitpid(old, NULL, 0);
		fail_msg("the old controller still runs %d s after the new one started", STOP_S);
	}
	printf("# the old controller exited %.2fs after the new one started\n", now_s() - t0);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_int_equal(waitpid(t->ctl, &st, WNOHANG), 0); /* the new one runs */
	assert_int_equal(load_check(t, &load, NULL), 0);

	s = wait_ready(t, 3, WAIT_S);
	for (int i = 0; i < 3; i++) {
		json_t *r = replica_of(service_of(s, t->svc), i);

		assert_string_equal(str(r, "id"), ids[i]);
		assert_int_equal(num(r, "restarts"), 0);
	}
	json_decref(s);
	assert_int_equal(get(t->port, "/ping", NULL), 200);
	t->done = true;
}

/* 6. A replica that always crashes (svc exits 2 on an unknown flag) is
 * replaced with a growing back-off, 1 s, 2 s, 4 s..., not in a tight loop;
 * status shows the back-off left. */
static void
test_crash_backoff(void **state)
{
	static const struct spec bad = { 1, "[\"/svc\", \"--no-such-flag\"]", "0s", false,
					 NULL, NULL, NULL, NULL };
	struct tctx *t = *state;
	struct vt_result r;
	long long restarts = 0;
	bool backoff_seen = false;
	double t0;

	write_manifest(t, &bad);
	ctl_start(t, NULL);
	apply(t, &r, false);
	vt_result_clear(&r);
	t0 = now_s();
	for (int i = 0; i < 12 * 1000 / POLL_MS && now_s() - t0 < 12; i++) {
		json_t *st = status_json(t);
		json_t *rep = replica_of(service_of(st, t->svc), 0);

		if (rep && num(rep, "restarts") > restarts)
			restarts = num(rep, "restarts");
		if (rep && json_number_value(json_object_get(rep, "backoff_s")) > 0)
			backoff_seen = true;
		json_decref(st);
		sleep_ms(POLL_MS);
	}
	printf("# crash loop: %lld restarts seen in 12 s, back-off %sseen\n", restarts,
	       backoff_seen ? "" : "not ");
	assert_true(restarts >= 2);
	assert_true(restarts <= 6);
	assert_true(backoff_seen);
	t->done = true;
}

/* 7. scale through the controller removes the highest indices. */
static void
test_scale(void **state)
{
	struct tctx *t = *state;
	struct vt_result r;
	char arg[80], filter[128], name[96];
	json_t *st;

	bring_up(t, &web3, NULL);
	snprintf(arg, sizeof(arg), "%s=1", t->svc);
	vdctl(&r, t, "scale", arg, NULL);
	assert_exit(&r, 0);
	printf("# scale 3 -> 1: %.2fs\n", r.secs);
	assert_has(r.out, "removed");
	vt_result_clear(&r);

	snprintf(name, sizeof(name), "vd-%s-2", t->svc);
	snprintf(filter, sizeof(filter), "name=^%s$", name);
	run(&r, 30, ENV, "docker", "ps", "-a", "--filter", filter, "--format", "{{.Names}}",
	    NULL);
	assert_exit(&r, 0);
	assert_null(strstr(r.out, name));
	vt_result_clear(&r);
	st = wait_ready(t, 1, WAIT_S);
	/* status shows what the manifest declares, drifted from */
	assert_int_equal(json_integer_value(json_object_get(json_object_get(service_of(st, t->svc),
							    "manifest_declares"), "replicas")), 3);
	json_decref(st);
	vdctl(&r, t, "status", NULL);
	assert_has(r.out, "its manifest says 3 replicas");
	vt_result_clear(&r);
	/* applying the manifest sets it back, and says so */
	vdctl(&r, t, "apply", t->manifest, NULL);
	assert_exit(&r, 0);
	assert_has(r.out, "was scaled to 1 since its manifest was applied; applying it sets 3 "
			  "replicas again");
	vt_result_clear(&r);
	json_decref(wait_ready(t, 3, WAIT_S));
	t->done = true;
}

/* ---------------------------------------------------------- autoscaling */

#define AS_CMD "[\"/svc\", \"--model\", \"sync\", \"--workers\", \"2\"]"
#define AS_LB ", max_inflight: 2, queue_timeout: 30s"
/* open-model load of GET /timeout?ms=100 (a replica of AS_CMD serves 20 a
 * second), PHASES in the profile's own words */
#define AS_LOAD(phases) \
	"model: open\narrivals: constant\nkeep_alive_pool: 128\ntimeout: 25s\nphases:\n" phases \
	"requests:\n  - {name: t, method: GET, path: \"/timeout?ms=100\"}\n"

static json_t *
autoscale_of(struct tctx *t, json_t *st)
{
	return json_object_get(service_of(st, t->svc), "autoscale");
}

/* The autoscaler set at least *arg replicas. */
static bool
scaled_to_pred(struct tctx *t, json_t *st, const void *arg)
{
	return num(autoscale_of(t, st), "desired") >= *(const int *)arg;
}

/* An autoscaler event of T's service with reason ARG; its why is printed. */
static bool
event_pred(struct tctx *t, json_t *st, const void *arg)
{
	json_t *e;
	size_t i;

	json_array_foreach(json_object_get(st, "autoscale_events"), i, e)
		if (strcmp(str(e, "service"), t->svc) == 0 && strcmp(str(e, "reason"), arg) == 0) {
			printf("# event: %s\n", str(e, "why"));
			return true;
		}
	return false;
}

/* 16. A step in load scales up while it lasts, its end scales down after
 * the down window, and no request fails on the way (those on removed
 * replicas were drained first); scale refuses an autoscaled service. */
static void
test_autoscale_step(void **state)
{
	static const struct spec as = {
		.replicas = 1, .command = AS_CMD, .start_period = "5s", .balancer = true,
		.balancer_opts = AS_LB,
		.extra = "autoscale: {min: 1, max: 6, target_p95: 300ms, up_window: 3s, "
			 "down_window: 10s, cooldown: 3s}\n",
	};
	struct tctx *t = *state;
	struct vt_proc load;
	struct vt_result r;
	char arg[80];
	int three = 3;
	json_t *st;

	bring_up(t, &as, NULL);
	/* 60 a second wants ceil(60 x 0.1 / (2 x 0.7)) = 5 replicas */
	load_start_profile(t, &load, AS_LOAD("  - {duration: 3s, arrival_rate: 5}\n"
					     "  - {duration: 10s, arrival_rate: 60}\n"
					     "  - {duration: 5s, arrival_rate: 5}\n"));
	json_decref(wait_status(t, scaled_to_pred, &three, 30, "3 or more replicas"));
	load_check(t, &load, NULL);
	json_decref(wait_ready(t, 1, WAIT_S));
	st = status_json(t);
	t->last = st;
	assert_true(event_pred(t, st, "load") || event_pred(t, st, "latency"));
	assert_true(event_pred(t, st, "down"));
	assert_true(num(autoscale_of(t, st), "ups") >= 1);
	assert_true(num(autoscale_of(t, st), "downs") >= 1);
	vdctl(&r, t, "status", "--events", t->svc, NULL);
	assert_exit(&r, 0);
	assert_has(r.out, " -> 1: ");
	vt_result_clear(&r);

	snprintf(arg, sizeof(arg), "%s=3", t->svc);
	vdctl(&r, t, "scale", arg, NULL);
	assert_exit(&r, 2);
	assert_has(r.err, "is autoscaled (min 1, max 6)");
	vt_result_clear(&r);
	json_decref(wait_ready(t, 1, WAIT_S));
	t->done = true;
}

/* 17. min 0: with no request over the down window the last replica goes;
 * the next request waits in the balancer while one starts, and is served. */
static void
test_autoscale_zero(void **state)
{
	static const struct spec as = {
		.replicas = 1, .command = AS_CMD, .start_period = "5s", .balancer = true,
		.balancer_opts = AS_LB,
		.extra = "autoscale: {min: 0, max: 2, target_p95: 300ms, up_window: 1s, "
			 "down_window: 3s, cooldown: 1s}\n",
	};
	struct tctx *t = *state;
	char *body = NULL;
	double t0;
	json_t *st;

	bring_up(t, &as, NULL);
	json_decref(wait_ready(t, 0, WAIT_S));
	t0 = now_s();
	assert_int_equal(get(t->port, "/ping", &body), 200);
	printf("# the first request after zero: %.2fs\n", now_s() - t0);
	assert_non_null(body);
	assert_true(strncmp(body, "pong", 4) == 0);
	free(body);
	st = wait_ready(t, 1, WAIT_S);
	t->last = st;
	assert_true(event_pred(t, st, "to zero"));
	assert_true(event_pred(t, st, "from zero"));
	assert_false(event_pred(t, st, "latency")); /* the cold start is no reason for more */
	t->done = true;
}

/* 18. A scale-up that the node's capacity stops is made as far as it fits
 * and reported as the node's doing, not the policy's. */
static void
test_autoscale_node_full(void **state)
{
	static char cpus[32];
	static struct spec as = {
		.replicas = 1, .command = AS_CMD, .start_period = "5s", .balancer = true,
		.balancer_opts = AS_LB,
		.extra = "autoscale: {min: 1, max: 6, target_p95: 300ms, up_window: 2s, "
			 "down_window: 10s, cooldown: 3s}\n",
	};
	struct tctx *t = *state;
	struct vt_proc load;
	json_t *info = NULL, *st;
	int ncpu;

	/* each replica promised half the node's CPUs: it holds 2 */
	assert_int_equal(vt_docker("GET", "/info", NULL, &info), 200);
	ncpu = (int)json_integer_value(json_object_get(info, "NCPU"));
	json_decref(info);
	assert_true(ncpu >= 1);
	snprintf(cpus, sizeof(cpus), "%g", ncpu / 2.0);
	as.cpus = cpus;
	bring_up(t, &as, NULL);
	load_start_profile(t, &load, AS_LOAD("  - {duration: 8s, arrival_rate: 60}\n"));
	st = wait_status(t, event_pred, "node full", 30, "a decision the node stopped");
	t->last = st;
	assert_has(str(autoscale_of(t, st), "why"), "the node holds 2");
	assert_int_equal(num(autoscale_of(t, st), "desired"), 2);
	load_check(t, &load, NULL);
	t->done = true;
}

/* 19. A spike past what the replica serves, with clients that give up after
 * 3 s: the balancer sees each one leave and drops its request when it is
 * still queued; once ten have left it knows their patience, and from then
 * on refuses at once (503) what would wait past it less the service time,
 * or answers 504 then. One replica, 2 workers, 500 ms a request (4 a
 * second); 12 a second for 10 s. Without this the replica would serve every
 * request sent, most to clients long gone. */
static void
test_overload_clients_leave(void **state)
{
	static const struct spec one = {
		.replicas = 1, .command = AS_CMD, .start_period = "5s", .balancer = true,
		.balancer_opts = ", max_inflight: 2, queue_timeout: 30s",
		.interval = "10m", /* no health check counts at the replica meanwhile */
	};
	struct tctx *t = *state;
	struct vt_proc load;
	struct vt_result r;
	char results[128], *text, *body = NULL;
	json_t *res, *sum, *st, *b, *errs;
	long long before, after, ok, sent, timeouts, served, gone, early, late, patience;

	bring_up(t, &one, NULL);
	assert_int_equal(get(t->port, "/info", &body), 200);
	before = json_integer_value(json_object_get(res = json_loads(body, 0, NULL), "requests"));
	json_decref(res);
	free(body);
	load_start_profile(t, &load,
			   "model: open\narrivals: constant\ntimeout: 3s\nphases:\n"
			   "  - {duration: 10s, arrival_rate: 12}\n"
			   "requests:\n  - {name: t, method: GET, path: \"/timeout?ms=500\"}\n");
	vt_finish(&load, 60, &r);
	assert_exit(&r, 0);
	vt_result_clear(&r);
	sleep_ms(1500); /* what is on the replica finishes */
	body = NULL;
	assert_int_equal(get(t->port, "/info", &body), 200);
	after = json_integer_value(json_object_get(res = json_loads(body, 0, NULL), "requests"));
	json_decref(res);
	free(body);

	snprintf(results, sizeof(results), "%s/res.json", t->dir);
	text = vt_read_text(results);
	assert_non_null(text);
	res = json_loads(text, 0, NULL);
	free(text);
	sum = json_object_get(res, "summary");
	sent = num(sum, "requests");
	ok = num(json_object_get(sum, "codes"), "200");
	timeouts = num(json_object_get(sum, "errors"), "ETIMEDOUT");
	json_decref(res);
	served = after - before - 1; /* the second /info counts itself */
	st = status_json(t);
	t->last = st;
	b = json_object_get(service_of(st, t->svc), "balancer");
	errs = json_object_get(b, "errors");
	gone = num(errs, "client_gone");
	early = num(errs, "refused_early");
	late = num(errs, "queue_timeout");
	patience = num(b, "client_patience_ms");
	printf("# sent %lld, received %lld, gave up %lld; the replica served %lld; the balancer "
	       "saw %lld leave, refused %lld early, %lld late; patience %lld ms\n",
	       sent, ok, timeouts, served, gone, early, late, patience);
	assert_true(timeouts > 0);        /* the spike did overload it */
	assert_true(gone >= timeouts - 2); /* each one that left was seen leave */
	assert_true(patience >= 2500 && patience <= 6000);
	assert_true(early + late > 0);
	assert_true(served >= ok);
	assert_true(served <= sent / 2);
	assert_true(served - ok <= sent / 4);
	t->done = true;
}

/* The body of /metrics on port *arg has the lines of test 8. */
static bool
metrics_pred(struct tctx *t, json_t *st, const void *arg)
{
	char want[128], *body = NULL;
	bool ok;

	(void)st;
	snprintf(want, sizeof(want), "vdctl_replicas_desired{service=\"%s\"} 3\n", t->svc);
	ok = get(*(const int *)arg, "/metrics", &body) == 200 && body && strstr(body, want) &&
	     strstr(body, "vdctl_engine_up{engine=\"docker\"} 1\n");
	if (!ok)
		fprintf(stderr, "# /metrics:\n%s\n", body ? body : "(no answer)");
	free(body);
	return ok;
}

/*
 * The exposition format's rules: each family's HELP and TYPE come before its
 * samples, which are all together; a summary has its _sum and _count.
 */
static void
check_exposition(const char *body)
{
	char family[128] = "", done[64][128];
	size_t ndone = 0;
	const char *line = body;

	while (*line) {
		const char *end = strchr(line, '\n');
		char name[128];
		size_t n = end ? (size_t)(end - line) : strlen(line);

		if (strncmp(line, "# TYPE ", 7) == 0) {
			assert_int_equal(sscanf(line + 7, "%127s", family), 1);
			for (size_t i = 0; i < ndone; i++)
				if (strcmp(done[i], family) == 0)
					fail_msg("family %s comes back after others", family);
			assert_true(ndone < 64);
			snprintf(done[ndone++], sizeof(done[0]), "%s", family);
		} else if (n && line[0] != '#') {
			assert_int_equal(sscanf(line, "%127[a-z_]", name), 1);
			if (strcmp(name, family) != 0 &&
			    !(strncmp(name, family, strlen(family)) == 0 &&
			      (strcmp(name + strlen(family), "_sum") == 0 ||
			       strcmp(name + strlen(family), "_count") == 0)))
				fail_msg("sample %s under the family %s", name, family);
		}
		line += n + (end ? 1 : 0);
	}
}

/* 8. Prometheus metrics on --metrics, by the format's rules; --metrics may
 * not take a service's balancer address. */
static void
test_metrics(void **state)
{
	struct tctx *t = *state;
	int port = vt_free_port();
	char addr[64], want[160], *body = NULL;
	struct vt_result r;

	assert_true(port > 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	bring_up(t, &web3, addr);
	json_decref(wait_status(t, metrics_pred, &port, WAIT_S, "the metrics"));
	for (int i = 0; i < 5; i++)
		assert_int_equal(get(t->port, "/ping", NULL), 200);
	assert_int_equal(get(port, "/metrics", &body), 200);
	check_exposition(body);
	snprintf(want, sizeof(want), "vdctl_response_seconds_count{service=\"%s\"} ", t->svc);
	assert_has(body, want);
	snprintf(want, sizeof(want),
		 "vdctl_balancer_errors_total{service=\"%s\",kind=\"client_gone\"} 0\n", t->svc);
	assert_has(body, want);
	snprintf(want, sizeof(want), "vdctl_response_seconds_sum{service=\"%s\"} ", t->svc);
	assert_has(body, want);
	free(body);
	ctl_stop(t);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", t->port);
	vdctl(&r, t, "controller", "--metrics", addr, NULL);
	assert_exit(&r, 2);
	assert_has(r.err, "balancer address");
	vt_result_clear(&r);
	t->done = true;
}

/* 8b. A balancer address another process holds: the apply through the
 * controller says so (exit 1), status exits 1 and shows it NOT LISTENING,
 * and once the address is free the balancer listens. */
static void
test_balancer_port_taken(void **state)
{
	struct tctx *t = *state;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct vt_result r;
	int fd;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)t->port);
	/* close-on-exec: the controller this test starts must not hold it too */
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 4), 0);
	write_manifest(t, &web3);
	ctl_start(t, NULL);
	t->applied = true;
	vdctl(&r, t, "apply", t->manifest, NULL);
	assert_exit(&r, 1);
	assert_has(r.err, "its balancer does not listen");
	vt_result_clear(&r);
	vdctl(&r, t, "status", NULL);
	assert_exit(&r, 1);
	assert_has(r.out, "NOT LISTENING");
	vt_result_clear(&r);
	close(fd);
	json_decref(wait_ready(t, 3, WAIT_S));
	vdctl(&r, t, "status", NULL);
	assert_exit(&r, 0);
	vt_result_clear(&r);
	t->done = true;
}

static bool
docker_down_pred(struct tctx *t, json_t *st, const void *arg)
{
	(void)t;
	(void)arg;
	return json_is_false(json_object_get(docker_of(st), "up")) &&
	       *str(docker_of(st), "error");
}

/* 10. A damaged record holds its service alone: a controller that starts
 * with one of its services/ records truncated runs every other service (its
 * balancer, its healing), and status names the held one with FILE:LINE:COL
 * and exits 1. */
static void
test_damaged_record(void **state)
{
	struct tctx *t = *state;
	struct vt_result r;
	struct restarted w = { 1, NULL, "exited" };
	char other[64], path[160], rec[200], id[80], name[96];
	json_t *st, *o;
	FILE *f;

	bring_up(t, &web3, NULL);
	/* a second service beside it, no balancer */
	snprintf(other, sizeof(other), "%.40s-b", t->svc);
	snprintf(path, sizeof(path), "%s/b.yaml", t->dir);
	assert_non_null(f = fopen(path, "w"));
	fprintf(f, "service: %s\nbackend: docker\nimage: " IMAGE "\nreplicas: 1\n"
		"resources: {cpus: 0.05, memory: 32Mi}\n", other);
	assert_int_equal(fclose(f), 0);
	vdctl(&r, t, "apply", path, NULL);
	assert_exit(&r, 0);
	vt_result_clear(&r);
	ctl_stop(t);
	snprintf(rec, sizeof(rec), "%s/services/%s.yaml", t->dir, other);
	assert_int_equal(truncate(rec, 0), 0);
	ctl_start(t, NULL);
	json_decref(wait_ready(t, 3, WAIT_S));
	assert_int_equal(get(t->port, "/ping", NULL), 200);
	vdctl(&r, t, "status", NULL);
	assert_exit(&r, 1);
	assert_has(r.out, "HELD");
	assert_has(r.out, rec);
	assert_has(r.out, ":1:1: ");
	vt_result_clear(&r);
	st = status_json(t);
	assert_non_null(st);
	assert_non_null(o = service_of(st, other));
	assert_non_null(strstr(str(o, "held"), "empty"));
	json_decref(st);
	/* healing goes on for the others */
	replica_field(t, 1, "id", id, sizeof(id));
	w.old_id = id;
	snprintf(name, sizeof(name), "vd-%s-1", t->svc);
	run(&r, 30, ENV, "docker", "kill", name, NULL);
	assert_exit(&r, 0);
	vt_result_clear(&r);
	json_decref(wait_status(t, restarted_pred, &w, WAIT_S, "index 1 replaced"));
	/* its replicas were left alone; delete takes them with the record */
	vdctl(&r, t, "delete", other, NULL);
	assert_exit(&r, 0);
	assert_has(r.out, "1 replica removed");
	vt_result_clear(&r);
	t->done = true;
}

/* 10b. A user who may not use the sockets is told so, not that nothing
 * runs: the control socket (a controller runs), Docker's socket. */
static void
test_permission_denied(void **state)
{
	struct tctx *t = *state;
	struct vt_result r;
	char open_dir[] = "/tmp/itc-nobody-XXXXXX", m[96];
	FILE *f;

	bring_up(t, &web3, NULL);
	/* the copy of vdctl is for everyone to run; the state directory stays 0700 */
	assert_int_equal(chmod(G.root, 0755), 0);
	run(&r, 30, "/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
	    G.bin, "--state-dir", t->dir, "status", NULL);
	assert_exit(&r, 1);
	assert_has(r.err, "permission denied");
	assert_null(strstr(r.err, "no controller runs"));
	vt_result_clear(&r);
	/* Docker's socket, with a state directory of its own */
	assert_non_null(mkdtemp(open_dir));
	assert_int_equal(chmod(open_dir, 0777), 0);
	snprintf(m, sizeof(m), "%s/m.yaml", open_dir);
	assert_non_null(f = fopen(m, "w"));
	fprintf(f, "service: nobodys\nbackend: docker\nimage: " IMAGE "\nreplicas: 1\n");
	fclose(f);
	run(&r, 30, "/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
	    G.bin, "--state-dir", open_dir, "apply", m, NULL);
	assert_exit(&r, 3);
	assert_has(r.err, "Permission denied");
	assert_has(r.err, "the socket is not yours to use");
	assert_null(strstr(r.err, "is dockerd running"));
	vt_result_clear(&r);
	assert_int_equal(chmod(G.root, 0700), 0);
	vt_rm_tree(open_dir);
	t->done = true;
}

/* 9. dockerd stopped and started again: status says it is down, and once
 * it is back the replicas it stopped are replaced. The dockerd is one of the
 * suite's own (its socket, data-root, exec-root, pidfile and bridge): the
 * machine's, with other people's containers in it, is never touched. */
static void
test_dockerd_restart(void **state)
{
	struct tctx *t = *state;
	double t0;
	json_t *st;

	if (own_dockerd_start() < 0)
		fail_msg("cannot start a dockerd of our own in %s", D.dir);
	/* vdctl, the controller and `docker` all go to it */
	setenv("DOCKER_HOST", D.host, 1);
	bring_up(t, &web3, NULL);
	printf("# stopping our dockerd (pid %d)\n", (int)D.pid);
	t0 = now_s();
	own_dockerd_stop();
	if (!own_dockerd_wait(false, 60))
		fail_msg("our dockerd still answers 60 s after SIGTERM");
	printf("# dockerd stopped after %.2fs\n", now_s() - t0);
	st = wait_status(t, docker_down_pred, NULL, WAIT_S, "docker down in status");
	printf("# status: docker: %s\n", str(docker_of(st), "error"));
	json_decref(st);

	t0 = now_s();
	if ((D.pid = own_dockerd_spawn()) <= 0 || !own_dockerd_wait(true, 90))
		fail_msg("our dockerd does not answer 90 s after its start; see %s/dockerd.log",
			 D.dir);
	printf("# dockerd answers after %.2fs\n", now_s() - t0);
	json_decref(wait_ready(t, 3, 120));
	assert_int_equal(get(t->port, "/ping", NULL), 200);
	t->done = true;
}

#define T(f, tag) cmocka_unit_test_prestate_setup_teardown(f, setup, teardown, (void *)tag)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_lock, "lock"),
		T(test_apply, "apply"),
		T(test_cold_start, "cold"),
		T(test_kill_under_load, "kill"),
		T(test_oom, "oom"),
		T(test_restart, "restart"),
		T(test_takeover, "takeover"),
		T(test_crash_backoff, "crash"),
		T(test_scale, "scale"),
		T(test_metrics, "metrics"),
		T(test_balancer_port_taken, "lbport"),
		T(test_daemon_sighup, "daemon"),
		T(test_vm_destroy, "vm"),
		T(test_damaged_record, "held"),
		T(test_permission_denied, "perm"),
		T(test_autoscale_step, "asstep"),
		T(test_autoscale_zero, "aszero"),
		T(test_autoscale_node_full, "asfull"),
		T(test_overload_clients_leave, "spike"),
		T(test_dockerd_restart, "dockerd"), /* a dockerd of its own */
	};

	/* VT_FILTER=test_autoscale* runs those alone (a cmocka glob) */
	if (getenv("VT_FILTER"))
		cmocka_set_test_filter(getenv("VT_FILTER"));
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
