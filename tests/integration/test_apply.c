/*
 * `vdctl apply` and its neighbours (diff, scale, resize, delete, get) run as
 * the real binary against the real dockerd: creation with limits, a second
 * apply that changes nothing, diff's exit status, live resize, a rolling
 * replacement during which the service keeps answering, scaling, the
 * capacity refusal, recovery after SIGKILL, delete, bad input, and get's
 * JSON.
 *
 * Every test has its own service (ita<pid>-<tag>), its own state directory
 * and manifests under /tmp/vdctl-itest-apply-<pid>/<tag>/, written at run
 * time so they carry the unique names. After each test, and again after the
 * group, every service made is deleted with vdctl and then swept through the
 * Engine API by its org.vdctl.service label; the group removes the directory.
 *
 * The tree and the node are shared. The binary ($VD_VDCTL_BIN, default
 * build/vdctl) is copied into that directory first, so a rebuild by someone
 * else during the run does not pull it away mid-test. Other people's
 * replicas (containers or VMs) count against the node's capacity, so an
 * apply refused because of "other services' replicas" is retried a bounded
 * number of times.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "vdtest.h"

#define IMAGE "vdctl/example-svc:latest"
#define MiB (1024LL * 1024)
#define RUN_TIMEOUT_S 120     /* any one vdctl run */
#define MAX_ARGS 32
#define MAX_REPLICAS 16
#define MAX_SERVICES 32
#define BUSY_RETRIES 40       /* capacity refused for others' replicas */
#define BUSY_SLEEP_S 3
#define PING_WAIT_S 30        /* for replicas no apply waited for */
#define POLL_EVERY_MS 50
#define POLL_MAX 6000
#define POLL_MAX_S 300

/* ------------------------------------------------------------ fixture */

struct group {
	char root[256];          /* /tmp/vdctl-itest-apply-<pid> */
	char bin[4096];          /* our copy of the binary under test */
	int ncpu;                /* what dockerd reports */
	struct {
		char name[48];
		char state_dir[300];
	} made[MAX_SERVICES];
	int nmade;
	int cleaned;             /* made[0..cleaned) already swept */
};

static struct group G;

/* One test's service, directory and state directory. */
struct tctx {
	char svc[48];
	char dir[280];
	char state[300];
};

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

static void
ctx_init(struct tctx *t, const char *tag)
{
	snprintf(t->svc, sizeof(t->svc), "ita%d-%s", (int)getpid(), tag);
	snprintf(t->dir, sizeof(t->dir), "%s/%s", G.root, tag);
	snprintf(t->state, sizeof(t->state), "%s/state", t->dir);
	assert_int_equal(mkdir(t->dir, 0755), 0);
	assert_true(G.nmade < MAX_SERVICES);
	/* registered before anything can make it, so teardown always sweeps it */
	snprintf(G.made[G.nmade].name, sizeof(G.made[0].name), "%s", t->svc);
	snprintf(G.made[G.nmade].state_dir, sizeof(G.made[0].state_dir), "%s", t->state);
	G.nmade++;
}

/* ------------------------------------------------------- running vdctl */

/* argv: the binary, --state-dir STATE (when given), then the arguments. */
static void
build_argv(char **argv, char *state, va_list ap)
{
	size_t n = 0;
	char *a;

	argv[n++] = G.bin;
	if (state) {
		argv[n++] = (char *)"--state-dir";
		argv[n++] = state;
	}
	while ((a = va_arg(ap, char *)) && n < MAX_ARGS - 1)
		argv[n++] = a;
	argv[n] = NULL;
}

static void
run_argv(struct vt_result *r, char **argv)
{
	vt_run(argv, RUN_TIMEOUT_S, r);
}

/* Run vdctl once. The list of arguments ends with NULL. */
static void
vdctl(struct vt_result *r, char *state, ...)
{
	char *argv[MAX_ARGS];
	va_list ap;

	va_start(ap, state);
	build_argv(argv, state, ap);
	va_end(ap);
	run_argv(r, argv);
}

/* The last line of TEXT, with its newline. */
static const char *
last_line(const char *text)
{
	size_t n = strlen(text);

	if (n && text[n - 1] == '\n')
		n--;
	while (n && text[n - 1] != '\n')
		n--;
	return text + n;
}

static bool
busy_elsewhere(const struct vt_result *r)
{
	return r->status == 2 && strstr(r->err, "refusing to apply") &&
	       strstr(r->err, "other services' replicas");
}

/*
 * Run vdctl, again while it refuses for lack of capacity that other
 * services' replicas hold (someone else's tests on this shared node), at
 * most BUSY_RETRIES times.
 */
static void
vdctl_node(struct vt_result *r, char *state, ...)
{
	char *argv[MAX_ARGS];
	va_list ap;

	va_start(ap, state);
	build_argv(argv, state, ap);
	va_end(ap);
	for (int i = 0; i <= BUSY_RETRIES; i++) {
		run_argv(r, argv);
		if (!busy_elsewhere(r) || i == BUSY_RETRIES)
			return;
		fprintf(stderr, "# node busy with other services' replicas (%s %s): retry in %ds\n",
			argv[3], argv[4] ? argv[4] : "", BUSY_SLEEP_S);
		vt_result_clear(r);
		sleep(BUSY_SLEEP_S);
	}
}

/* ------------------------------------------------------------ manifests */

struct spec {
	int replicas;
	const char *cpus;   /* as written in the manifest */
	const char *memory;
	int workers;
};

static void
write_manifest(const char *path, const char *svc, const struct spec *s)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fprintf(f,
		"# written by tests/integration/test_apply.c\n"
		"service: %s\n"
		"backend: docker\n"
		"image: " IMAGE "\n"
		"command: [\"/svc\", \"--model\", \"sync\", \"--workers\", \"%d\"]\n"
		"port: 8080\n"
		"replicas: %d\n"
		"resources:\n"
		"  cpus: %s\n"
		"  memory: %s\n"
		"health:\n"
		"  http: /healthz\n"
		"update:\n"
		"  max_surge: 1\n"
		"  max_unavailable: 0\n",
		svc, s->workers, s->replicas, s->cpus, s->memory);
	assert_int_equal(fclose(f), 0);
}

static void
manifest_path(char *buf, size_t size, const struct tctx *t, const char *name)
{
	snprintf(buf, size, "%s/%s.yaml", t->dir, name);
}

/* --------------------------------------------------------- Engine API */

struct rep {
	char id[80];
	char name[64];
	char state[16];
	int idx;
	char host_ip[48];
	int port;
	char started[64];
	long long nano_cpus, memory;
};

struct snap {
	struct rep v[MAX_REPLICAS];
	int n;
};

/* /containers/json for one service label (running ones only, or all). */
static long
list_service(const char *svc, bool running_only, json_t **reply)
{
	char path[512];

	/* {"label":["org.vdctl.service=SVC"]} and {"status":["running"]}, URL-escaped;
	 * service names are [a-z0-9-] only */
	snprintf(path, sizeof(path),
		 "/containers/json?all=%d&filters=%%7B%%22label%%22%%3A%%5B%%22org.vdctl.service"
		 "%%3D%s%%22%%5D%s%%7D",
		 running_only ? 0 : 1, svc,
		 running_only ? "%2C%22status%22%3A%5B%22running%22%5D" : "");
	return vt_docker("GET", path, NULL, reply);
}

static int
by_idx(const void *a, const void *b)
{
	const struct rep *x = a, *y = b;

	return (x->idx > y->idx) - (x->idx < y->idx);
}

/* Every container of the service (all states), inspected, sorted by index.
 * Returns the count, or -1 when the engine did not answer. */
static int
snapshot(const char *svc, struct snap *s)
{
	json_t *list = NULL, *c;
	size_t i;

	memset(s, 0, sizeof(*s));
	if (list_service(svc, false, &list) != 200 || !json_is_array(list)) {
		json_decref(list);
		return -1;
	}
	json_array_foreach(list, i, c) {
		const char *id = json_string_value(json_object_get(c, "Id"));
		json_t *j = NULL, *labels, *b;
		struct rep *r;
		char path[256];
		const char *v;

		if (!id || s->n >= MAX_REPLICAS)
			continue;
		snprintf(path, sizeof(path), "/containers/%s/json", id);
		if (vt_docker("GET", path, NULL, &j) != 200 || !j) {
			json_decref(j);
			continue; /* removed meanwhile */
		}
		r = &s->v[s->n++];
		snprintf(r->id, sizeof(r->id), "%s", id);
		v = json_string_value(json_object_get(j, "Name"));
		snprintf(r->name, sizeof(r->name), "%s", v ? (*v == '/' ? v + 1 : v) : "");
		v = json_string_value(json_object_get(json_object_get(j, "State"), "Status"));
		snprintf(r->state, sizeof(r->state), "%s", v ? v : "");
		v = json_string_value(json_object_get(json_object_get(j, "State"), "StartedAt"));
		snprintf(r->started, sizeof(r->started), "%s", v ? v : "");
		labels = json_object_get(json_object_get(j, "Config"), "Labels");
		v = json_string_value(json_object_get(labels, "org.vdctl.index"));
		r->idx = v ? atoi(v) : -1;
		r->nano_cpus = json_integer_value(json_object_get(json_object_get(j, "HostConfig"),
								  "NanoCpus"));
		r->memory = json_integer_value(json_object_get(json_object_get(j, "HostConfig"),
							       "Memory"));
		b = json_array_get(json_object_get(json_object_get(json_object_get(j,
			"NetworkSettings"), "Ports"), "8080/tcp"), 0);
		v = json_string_value(json_object_get(b, "HostIp"));
		snprintf(r->host_ip, sizeof(r->host_ip), "%s", v ? v : "");
		v = json_string_value(json_object_get(b, "HostPort"));
		r->port = v ? atoi(v) : 0;
		json_decref(j);
	}
	json_decref(list);
	qsort(s->v, (size_t)s->n, sizeof(s->v[0]), by_idx);
	return s->n;
}

/* Exactly n containers, indices 0..n-1 each once, named vd-<svc>-<i>,
 * running, published on 127.0.0.1. */
static void
assert_replicas(const char *svc, struct snap *s, int n)
{
	char name[96];

	assert_int_equal(snapshot(svc, s), n);
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "vd-%s-%d", svc, i);
		assert_int_equal(s->v[i].idx, i);
		assert_string_equal(s->v[i].name, name);
		assert_string_equal(s->v[i].state, "running");
		assert_string_equal(s->v[i].host_ip, "127.0.0.1");
		assert_true(s->v[i].port > 0);
	}
}

static long
ping(int port, long timeout_ms)
{
	char url[64];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/ping", port);
	return vt_http_get(url, NULL, timeout_ms);
}

/* GET /info of a replica, parsed. */
static json_t *
info(int port)
{
	char url[64], *body = NULL;
	json_t *j = NULL;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/info", port);
	if (vt_http_get(url, &body, 3000) == 200 && body)
		j = json_loads(body, 0, NULL);
	free(body);
	return j;
}

static void
assert_info(int port, double cpus, long long memory, int workers)
{
	json_t *j = info(port);
	json_t *c;

	assert_non_null(j);
	c = json_object_get(j, "cgroup_cpu_limit");
	assert_true(json_is_number(c));
	if (fabs(json_number_value(c) - cpus) > 0.0005)
		fprintf(stderr, "cgroup_cpu_limit %g, want %g\n", json_number_value(c), cpus);
	assert_true(fabs(json_number_value(c) - cpus) <= 0.0005);
	assert_int_equal(json_integer_value(json_object_get(j, "cgroup_memory_limit_bytes")),
			 memory);
	if (workers > 0) {
		assert_string_equal(json_string_value(json_object_get(j, "model")), "sync");
		assert_int_equal(json_integer_value(json_object_get(j, "workers")), workers);
	}
	json_decref(j);
}

/* Remove every container of the service through the Engine API. */
static int
sweep(const char *svc)
{
	json_t *list = NULL, *c;
	size_t i;
	int n = 0;

	if (list_service(svc, false, &list) != 200) {
		json_decref(list);
		return -1;
	}
	json_array_foreach(list, i, c) {
		const char *id = json_string_value(json_object_get(c, "Id"));
		char path[256];

		if (!id)
			continue;
		snprintf(path, sizeof(path), "/containers/%s?force=1&v=1", id);
		if (vt_docker("DELETE", path, NULL, NULL) == 204)
			n++;
	}
	json_decref(list);
	return n;
}

/* vdctl delete, then the sweep, for each service not cleaned yet. */
static void
clean_services(void)
{
	for (; G.cleaned < G.nmade; G.cleaned++) {
		struct vt_result r;
		int n;

		vdctl(&r, G.made[G.cleaned].state_dir, "delete", G.made[G.cleaned].name, NULL);
		/* 2: deleted already (or never made): unknown */
		if (r.status != 0 && !(r.status == 2 && strstr(r.err, "unknown service")))
			vt_dump("cleanup: vdctl delete", &r);
		vt_result_clear(&r);
		n = sweep(G.made[G.cleaned].name);
		if (n != 0)
			fprintf(stderr, "cleanup: the sweep of '%s' removed %d containers "
				"(or failed: -1)\n", G.made[G.cleaned].name, n);
	}
}

/* Copy FROM to TO, executable. */
static int
copy_binary(const char *from, const char *to)
{
	char buf[65536];
	ssize_t n = 0;
	int in = open(from, O_RDONLY | O_CLOEXEC);
	int out = in < 0 ? -1 : open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);

	while (out >= 0 && (n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n) {
			n = -1;
			break;
		}
	if (in >= 0)
		close(in);
	if (out >= 0 && close(out) < 0)
		n = -1;
	return in < 0 || out < 0 || n < 0 ? -1 : 0;
}

static int
group_setup(void **state)
{
	const char *bin = vt_env("VD_VDCTL_BIN", "build/vdctl");
	json_t *j = NULL;
	struct stat st;

	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT); /* before the poller's thread */
	memset(&G, 0, sizeof(G));
	if (stat(bin, &st) < 0 || !(st.st_mode & S_IXUSR)) {
		fprintf(stderr, "no vdctl at %s: build it (make) or set VD_VDCTL_BIN\n", bin);
		return -1;
	}
	if (vt_docker("GET", "/images/" IMAGE "/json", NULL, NULL) != 200) {
		fprintf(stderr, "image %s is missing (or dockerd does not answer): "
			"run 'make images'\n", IMAGE);
		return -1;
	}
	if (vt_docker("GET", "/info", NULL, &j) != 200 || !j) {
		json_decref(j);
		fprintf(stderr, "dockerd does not answer GET /info\n");
		return -1;
	}
	G.ncpu = (int)json_integer_value(json_object_get(j, "NCPU"));
	json_decref(j);
	snprintf(G.root, sizeof(G.root), "/tmp/vdctl-itest-apply-%d", (int)getpid());
	if (mkdir(G.root, 0755) < 0) {
		fprintf(stderr, "mkdir %s: %s\n", G.root, strerror(errno));
		return -1;
	}
	snprintf(G.bin, sizeof(G.bin), "%s/vdctl", G.root);
	if (copy_binary(bin, G.bin) < 0) {
		fprintf(stderr, "cannot copy %s to %s: %s\n", bin, G.bin, strerror(errno));
		vt_rm_tree(G.root);
		return -1;
	}
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	G.cleaned = 0; /* once more, all of them: delete is idempotent */
	clean_services();
	vt_rm_tree(G.root);
	curl_global_cleanup();
	return 0;
}

static int
test_teardown(void **state)
{
	(void)state;
	clean_services();
	return 0;
}

/* Apply MANIFEST, expecting success. */
static void
apply_ok(struct tctx *t, const char *manifest, struct vt_result *r)
{
	vdctl_node(r, t->state, "apply", manifest, NULL);
	assert_exit(r, 0);
}

static const struct spec base = { 3, "0.1", "32Mi", 2 };

/* A fresh service of spec s, applied from t->dir/<name>.yaml. */
static void
make_service(struct tctx *t, const struct spec *s, const char *name, char *path,
	     size_t size)
{
	struct vt_result r;

	manifest_path(path, size, t, name);
	write_manifest(path, t->svc, s);
	apply_ok(t, path, &r);
	printf("# %s: apply of %d replicas: %.2fs\n", t->svc, s->replicas, r.secs);
	vt_result_clear(&r);
}

/* ---------------------------------------------------------------- tests */

/* 1. Three replicas: the containers, their names, limits and answers. */
static void
test_apply_creates(void **state)
{
	struct tctx t;
	struct vt_result r;
	struct snap s;
	char m[512], line[128];

	(void)state;
	ctx_init(&t, "create");
	manifest_path(m, sizeof(m), &t, "web");
	write_manifest(m, t.svc, &base);
	apply_ok(&t, m, &r);
	printf("# apply of 3 replicas: %.2fs\n", r.secs);
	for (int i = 0; i < 3; i++) {
		snprintf(line, sizeof(line), "vd-%s-%d", t.svc, i);
		assert_has(r.out, line);
	}
	assert_has(r.out, "apply: 3 created, 0 started, 0 resized, 0 replaced, 0 removed, "
			  "0 unchanged in ");
	vt_result_clear(&r);
	assert_replicas(t.svc, &s, 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(s.v[i].nano_cpus, 100000000);
		assert_int_equal(s.v[i].memory, 32 * MiB);
		assert_int_equal(ping(s.v[i].port, 3000), 200);
		assert_info(s.v[i].port, 0.1, 32 * MiB, 2);
	}
	/* the desired state was recorded */
	snprintf(m, sizeof(m), "%s/services/%s.yaml", t.state, t.svc);
	assert_int_equal(access(m, R_OK), 0);
}

/* 2. The same file again: nothing changes, not even a restart. */
static void
test_reapply_is_noop(void **state)
{
	struct tctx t;
	struct vt_result r;
	struct snap a, b;
	char m[512], want[128];

	(void)state;
	ctx_init(&t, "noop");
	make_service(&t, &base, "web", m, sizeof(m));
	assert_replicas(t.svc, &a, 3);
	apply_ok(&t, m, &r);
	printf("# second apply: %.2fs\n", r.secs);
	snprintf(want, sizeof(want), "nothing to change: 3 replicas up to date");
	assert_has(r.out, want);
	assert_null(strstr(r.out, "created"));
	vt_result_clear(&r);
	assert_replicas(t.svc, &b, 3);
	for (int i = 0; i < 3; i++) {
		assert_string_equal(a.v[i].id, b.v[i].id);
		assert_string_equal(a.v[i].started, b.v[i].started);
	}
}

/* 3. diff: 0 when nothing would change, 1 and the plan when something
 * would, and it changes nothing either way. */
static void
test_diff(void **state)
{
	struct spec changed = { 4, "0.2", "32Mi", 2 };
	struct tctx t;
	struct vt_result r;
	struct snap a, b;
	char m[512], m2[512], rec[600], line[256], name[96];
	char *before, *after;

	(void)state;
	ctx_init(&t, "diff");
	make_service(&t, &base, "web", m, sizeof(m));
	assert_replicas(t.svc, &a, 3);
	snprintf(rec, sizeof(rec), "%s/services/%s.yaml", t.state, t.svc);
	before = vt_read_text(rec);
	assert_non_null(before);

	vdctl_node(&r, t.state, "diff", m, NULL);
	assert_exit(&r, 0);
	assert_has(r.out, "nothing to change: 3 replicas up to date");
	printf("# diff, no change: %.2fs\n", r.secs);
	vt_result_clear(&r);

	manifest_path(m2, sizeof(m2), &t, "web-changed");
	write_manifest(m2, t.svc, &changed);
	vdctl_node(&r, t.state, "diff", m2, NULL);
	assert_exit(&r, 1);
	printf("# diff, a change: %.2fs\n", r.secs);
	for (int i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "vd-%s-%d", t.svc, i);
		snprintf(line, sizeof(line), "  %-8s %-24s %s", "resize", name,
			 "limits changed: cpus 0.1 -> 0.2\n"); /* memory stays: not shown */
		assert_has(r.out, line);
	}
	snprintf(name, sizeof(name), "vd-%s-3", t.svc);
	snprintf(line, sizeof(line), "  %-8s %-24s %s\n", "create", name, "new");
	assert_has(r.out, line);
	vt_result_clear(&r);

	/* nothing moved: the same containers, limits, start times, record */
	assert_replicas(t.svc, &b, 3);
	for (int i = 0; i < 3; i++) {
		assert_string_equal(a.v[i].id, b.v[i].id);
		assert_string_equal(a.v[i].started, b.v[i].started);
		assert_int_equal(b.v[i].nano_cpus, 100000000);
	}
	after = vt_read_text(rec);
	assert_non_null(after);
	assert_string_equal(before, after);
	free(before);
	free(after);
}

/* 4. cpus and memory only: resized live, not restarted. */
static void
test_resize_in_place(void **state)
{
	struct spec bigger = { 3, "0.2", "48Mi", 2 };
	struct tctx t;
	struct vt_result r;
	struct snap a, b;
	char m[512], m2[512];

	(void)state;
	ctx_init(&t, "resize");
	make_service(&t, &base, "web", m, sizeof(m));
	assert_replicas(t.svc, &a, 3);
	manifest_path(m2, sizeof(m2), &t, "web-bigger");
	write_manifest(m2, t.svc, &bigger);
	apply_ok(&t, m2, &r);
	printf("# apply resizing 3 replicas: %.2fs\n", r.secs);
	assert_has(r.out, "resized live: cpus 0.1 -> 0.2, memory 32 MiB -> 48 MiB");
	assert_has(r.out, "apply: 0 created, 0 started, 3 resized, 0 replaced, 0 removed");
	vt_result_clear(&r);
	assert_replicas(t.svc, &b, 3);
	for (int i = 0; i < 3; i++) {
		assert_string_equal(a.v[i].id, b.v[i].id);
		assert_string_equal(a.v[i].started, b.v[i].started);
		assert_int_equal(b.v[i].nano_cpus, 200000000);
		assert_int_equal(b.v[i].memory, 48 * MiB);
		assert_info(b.v[i].port, 0.2, 48 * MiB, 2);
	}
}

/* The poller of test 5: the service's running containers, pinged. */
struct poller {
	const char *svc;
	atomic_int stop;
	int polls;
	int list_errors;
	int min_answered;
	int min_listed;
	char worst[512]; /* the poll with the fewest answers */
};

static void *
poll_service(void *arg)
{
	struct poller *p = arg;
	double t0 = now_s();

	p->min_answered = p->min_listed = 1 << 30;
	for (int i = 0; i < POLL_MAX && !atomic_load(&p->stop) && now_s() - t0 < POLL_MAX_S;
	     i++) {
		json_t *list = NULL, *c;
		int answered = 0, listed = 0;
		char what[512] = "";
		size_t k, len = 0;

		if (list_service(p->svc, true, &list) != 200 || !json_is_array(list)) {
			json_decref(list);
			p->list_errors++;
			sleep_ms(POLL_EVERY_MS);
			continue;
		}
		json_array_foreach(list, k, c) {
			json_t *ports = json_object_get(c, "Ports"), *pt;
			const char *name = json_string_value(json_array_get(
				json_object_get(c, "Names"), 0));
			size_t q;
			int port = 0;
			long st;

			json_array_foreach(ports, q, pt) {
				const char *ip = json_string_value(json_object_get(pt, "IP"));

				if (json_integer_value(json_object_get(pt, "PrivatePort")) == 8080 &&
				    ip && strcmp(ip, "127.0.0.1") == 0)
					port = (int)json_integer_value(json_object_get(pt,
										       "PublicPort"));
			}
			listed++;
			st = port ? ping(port, 3000) : -1;
			if (st == 200)
				answered++;
			if (len < sizeof(what) - 1)
				len += (size_t)snprintf(what + len, sizeof(what) - len, " %s:%ld",
							name ? name : "?", st);
		}
		json_decref(list);
		p->polls++;
		if (answered < p->min_answered) {
			p->min_answered = answered;
			snprintf(p->worst, sizeof(p->worst), "poll %d at %.2fs:%s", p->polls,
				 now_s() - t0, what);
		}
		if (listed < p->min_listed)
			p->min_listed = listed;
		sleep_ms(POLL_EVERY_MS);
	}
	return NULL;
}

/* 5. A command change rolls the replicas one at a time (surge 1,
 * unavailable 0) and the service answers throughout. */
static void
test_rolling_replacement(void **state)
{
	struct spec next = { 3, "0.1", "32Mi", 3 };
	struct poller p;
	struct tctx t;
	struct vt_result r;
	struct snap a, b;
	struct vt_proc pr;
	pthread_t th;
	char m[512], m2[512], *argv[MAX_ARGS];
	int n = 0;

	(void)state;
	ctx_init(&t, "roll");
	make_service(&t, &base, "web", m, sizeof(m));
	assert_replicas(t.svc, &a, 3);
	manifest_path(m2, sizeof(m2), &t, "web-workers3");
	write_manifest(m2, t.svc, &next);

	/* the capacity check is the same as for the applied file: wait out a
	 * busy node with diff first, so the apply watched below runs */
	vdctl_node(&r, t.state, "diff", m2, NULL);
	assert_exit(&r, 1);
	vt_result_clear(&r);

	memset(&p, 0, sizeof(p));
	p.svc = t.svc;
	atomic_init(&p.stop, 0);
	assert_int_equal(pthread_create(&th, NULL, poll_service, &p), 0);
	argv[n++] = G.bin;
	argv[n++] = (char *)"--state-dir";
	argv[n++] = t.state;
	argv[n++] = (char *)"apply";
	argv[n++] = m2;
	argv[n] = NULL;
	if (vt_spawn(&pr, argv) < 0) {
		atomic_store(&p.stop, 1);
		pthread_join(th, NULL);
		fail_msg("cannot run %s", G.bin);
	}
	vt_finish(&pr, RUN_TIMEOUT_S, &r);
	atomic_store(&p.stop, 1);
	pthread_join(th, NULL);
	printf("# rolling apply: %.2fs, %d polls, fewest answering %d of %d listed "
	       "(%s), %d list errors\n", r.secs, p.polls, p.min_answered, p.min_listed,
	       p.worst, p.list_errors);
	assert_exit(&r, 0);
	assert_has(r.out, "(surge)");
	assert_has(r.out, "replaced (spec changed)");
	assert_has(r.out, "removed (surge no longer needed)");
	assert_has(r.out, "apply: 1 created, 0 started, 0 resized, 3 replaced, 1 removed");
	vt_result_clear(&r);

	assert_int_equal(p.list_errors, 0);
	assert_true(p.polls >= 5);
	if (p.min_answered < 3)
		fprintf(stderr, "the service dipped below 3 answering replicas: %s\n", p.worst);
	assert_true(p.min_answered >= 3);

	assert_replicas(t.svc, &b, 3);
	for (int i = 0; i < 3; i++) {
		for (int j = 0; j < 3; j++)
			assert_string_not_equal(b.v[i].id, a.v[j].id);
		assert_int_equal(ping(b.v[i].port, 3000), 200);
		assert_info(b.v[i].port, 0.1, 32 * MiB, 3);
	}
}

/* 6. scale up keeps what is there and adds the next indices; scale down
 * removes the highest. */
static void
test_scale(void **state)
{
	struct tctx t;
	struct vt_result r;
	struct snap a, b, c;
	char m[512], arg[64];

	(void)state;
	ctx_init(&t, "scale");
	make_service(&t, &base, "web", m, sizeof(m));
	assert_replicas(t.svc, &a, 3);

	snprintf(arg, sizeof(arg), "%s=5", t.svc);
	vdctl_node(&r, t.state, "scale", arg, NULL);
	assert_exit(&r, 0);
	printf("# scale 3 -> 5: %.2fs\n", r.secs);
	assert_has(r.out, "scale: 2 created, 0 started, 0 resized, 0 replaced, 0 removed, "
			  "3 unchanged");
	vt_result_clear(&r);
	assert_replicas(t.svc, &b, 5);
	for (int i = 0; i < 3; i++)
		assert_string_equal(a.v[i].id, b.v[i].id);
	for (int i = 0; i < 5; i++)
		assert_int_equal(ping(b.v[i].port, 3000), 200);

	snprintf(arg, sizeof(arg), "%s=2", t.svc);
	vdctl_node(&r, t.state, "scale", arg, NULL);
	assert_exit(&r, 0);
	printf("# scale 5 -> 2: %.2fs\n", r.secs);
	assert_has(r.out, "scale: 0 created, 0 started, 0 resized, 0 replaced, 3 removed, "
			  "2 unchanged");
	vt_result_clear(&r);
	assert_replicas(t.svc, &c, 2);
	for (int i = 0; i < 2; i++) {
		assert_string_equal(a.v[i].id, c.v[i].id);
		assert_string_equal(a.v[i].started, c.v[i].started);
	}
	/* apply wins, as kubectl's, but diff shows the drift first */
	vdctl(&r, t.state, "diff", m, NULL);
	assert_exit(&r, 1);
	assert_has(r.out, "was scaled to 2 since its manifest was applied; applying it sets 3 "
			  "replicas again");
	vt_result_clear(&r);
}

/* 7. More cpus than the node has: refused with the numbers, nothing made;
 * --overcommit applies it. */
static void
test_over_capacity(void **state)
{
	struct spec huge = { 3, "1.5", "32Mi", 1 };
	struct tctx t;
	struct vt_result r;
	struct snap s;
	char m[512], want[128];

	(void)state;
	ctx_init(&t, "cap");
	assert_true(G.ncpu > 0);
	if (3 * 1.5 <= G.ncpu)
		skip(); /* a node this big takes the manifest */
	manifest_path(m, sizeof(m), &t, "huge");
	write_manifest(m, t.svc, &huge);
	vdctl(&r, t.state, "apply", m, NULL);
	assert_exit(&r, 2);
	assert_has(r.err, "refusing to apply: it needs ");
	snprintf(want, sizeof(want), "the node has %d cpus", G.ncpu);
	assert_has(r.err, want);
	snprintf(want, sizeof(want), "%s: 3 x 1.5 cpus, 3 x 32 MiB", t.svc);
	assert_has(r.err, want);
	assert_has(r.err, "nothing was changed");
	assert_string_equal(r.out, "");
	vt_result_clear(&r);
	assert_int_equal(snapshot(t.svc, &s), 0);
	/* diff shows the plan and apply's refusal, and exits as its help says */
	vdctl(&r, t.state, "diff", m, NULL);
	assert_exit(&r, 2);
	assert_has(r.out, "note: apply would refuse this");
	assert_has(r.out, "create");
	vt_result_clear(&r);

	vdctl(&r, t.state, "apply", "--overcommit", m, NULL);
	assert_exit(&r, 0);
	printf("# apply --overcommit of 3 x 1.5 cpus: %.2fs\n", r.secs);
	assert_has(r.out, "apply: 3 created");
	vt_result_clear(&r);
	assert_replicas(t.svc, &s, 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(s.v[i].nano_cpus, 1500000000);

	vdctl(&r, t.state, "delete", t.svc, NULL);
	assert_exit(&r, 0);
	vt_result_clear(&r);
	assert_int_equal(snapshot(t.svc, &s), 0);
}

/* 8. vdctl killed with SIGKILL in the middle of an apply; the next apply
 * finishes the work. */
static void
test_sigkill_recovery(void **state)
{
	/* the three asked for, then two earlier ones that catch the engine
	 * calls still in flight */
	static const int kill_ms[] = { 300, 100, 700, 50, 20 };
	struct spec six = { 6, "0.1", "32Mi", 1 };
	struct tctx t;
	struct vt_result r;
	struct snap s;
	char m[512], *argv[MAX_ARGS];

	(void)state;
	ctx_init(&t, "kill");
	manifest_path(m, sizeof(m), &t, "six");
	write_manifest(m, t.svc, &six);
	argv[0] = G.bin;
	argv[1] = (char *)"--state-dir";
	argv[2] = t.state;
	argv[3] = (char *)"apply";
	argv[4] = m;
	argv[5] = NULL;
	for (size_t k = 0; k < sizeof(kill_ms) / sizeof(kill_ms[0]); k++) {
		struct vt_proc pr;
		struct vt_result killed;

		/* a clean start each round (the first: nothing to delete, unknown) */
		vdctl(&r, t.state, "delete", t.svc, NULL);
		assert_exit(&r, k == 0 ? 2 : 0);
		vt_result_clear(&r);
		assert_int_equal(snapshot(t.svc, &s), 0);

		assert_int_equal(vt_spawn(&pr, argv), 0);
		sleep_ms(kill_ms[k]);
		kill(pr.pid, SIGKILL);
		vt_finish(&pr, RUN_TIMEOUT_S, &killed);
		if (killed.status != 128 + SIGKILL)
			vt_dump("the apply ended before the kill", &killed);
		printf("# killed at %d ms (exit %d after %.2fs), its last line: %s%s", kill_ms[k],
		       killed.status, killed.secs, last_line(killed.out),
		       *last_line(killed.out) ? "" : "(none)\n");
		vt_result_clear(&killed);

		/* again at once, as a user would: what the engine still does for
		 * the killed run must not trip this one */
		vdctl_node(&r, t.state, "apply", m, NULL);
		if (r.status != 0 && strstr(r.err, "Conflict"))
			fprintf(stderr, "vdctl bug: the apply after a SIGKILL tried to create a "
				"replica that the killed run's create, still in the engine, "
				"made meanwhile (HTTP 409)\n");
		assert_exit(&r, 0);
		printf("# apply after the kill: %.2fs: %s", r.secs, last_line(r.out));
		vt_result_clear(&r);
		assert_replicas(t.svc, &s, 6);
		for (int i = 0; i < 6; i++) {
			char url[64];

			/* an apply that found them all made may not have waited
			 * for their health: allow them a bounded start */
			snprintf(url, sizeof(url), "http://127.0.0.1:%d/ping", s.v[i].port);
			assert_int_equal(vt_wait_http(url, PING_WAIT_S), 0);
		}
	}
}

/* 9. delete FILE removes every replica and the record. */
static void
test_delete(void **state)
{
	struct tctx t;
	struct vt_result r;
	struct snap s;
	char m[512], rec[600], arg[64];

	(void)state;
	ctx_init(&t, "delete");
	make_service(&t, &base, "web", m, sizeof(m));
	assert_replicas(t.svc, &s, 3);

	vdctl(&r, t.state, "delete", m, NULL);
	assert_exit(&r, 0);
	printf("# delete of 3 replicas: %.2fs\n", r.secs);
	assert_has(r.out, "delete: 3 replicas removed in ");
	vt_result_clear(&r);
	assert_int_equal(snapshot(t.svc, &s), 0);
	snprintf(rec, sizeof(rec), "%s/services/%s.yaml", t.state, t.svc);
	assert_int_equal(access(rec, F_OK), -1);

	/* gone: neither recorded nor held by an engine */
	vdctl(&r, t.state, "get", t.svc, NULL);
	assert_exit(&r, 2);
	assert_has(r.err, "unknown service");
	vt_result_clear(&r);
	vdctl(&r, t.state, "get", NULL);
	assert_exit(&r, 0);
	assert_null(strstr(r.out, t.svc));
	vt_result_clear(&r);

	snprintf(arg, sizeof(arg), "%s=2", t.svc);
	vdctl(&r, t.state, "scale", arg, NULL);
	assert_exit(&r, 2);
	assert_has(r.err, "is not known here");
	vt_result_clear(&r);
	assert_int_equal(snapshot(t.svc, &s), 0);
}

/* 10. Bad input is refused with exit 2 and changes nothing. */
static void
test_bad_input(void **state)
{
	struct tctx t;
	struct vt_result r;
	struct snap s;
	char m[512], want[700], rec[600];
	FILE *f;

	(void)state;
	ctx_init(&t, "bad");
	manifest_path(m, sizeof(m), &t, "typo");
	f = fopen(m, "w");
	assert_non_null(f);
	fprintf(f, "service: %s\n"            /* 1 */
		"backend: docker\n"           /* 2 */
		"image: " IMAGE "\n"          /* 3 */
		"replcas: 3\n"                /* 4: the key typo */
		"resources:\n"                /* 5 */
		"  cpus: lots\n"              /* 6: the value typo, column 9 */
		"  memory: 32Mi\n"            /* 7 */
		"health: {http: /healthz}\n", /* 8 */
		t.svc);
	assert_int_equal(fclose(f), 0);
	vdctl(&r, t.state, "apply", m, NULL);
	assert_exit(&r, 2);
	snprintf(want, sizeof(want), "%s:4:1: unknown key 'replcas'", m);
	assert_has(r.err, want);
	assert_has(r.err, "(did you mean 'replicas'?)");
	snprintf(want, sizeof(want), "%s:6:9: invalid value 'lots' for 'resources.cpus'", m);
	assert_has(r.err, want);
	snprintf(want, sizeof(want), "%s:1:1: missing required key 'replicas'", m);
	assert_has(r.err, want);
	assert_string_equal(r.out, "");
	vt_result_clear(&r);
	assert_int_equal(snapshot(t.svc, &s), 0);
	snprintf(rec, sizeof(rec), "%s/services/%s.yaml", t.state, t.svc);
	assert_int_equal(access(rec, F_OK), -1);

	vdctl(&r, t.state, "scale", "nosuch=2", NULL);
	assert_exit(&r, 2);
	assert_has(r.err, "service 'nosuch' is not known here");
	vt_result_clear(&r);

	vdctl(&r, t.state, "resize", t.svc, "--cpus", "lots", NULL);
	assert_exit(&r, 2);
	assert_has(r.err, "invalid --cpus 'lots'");
	vt_result_clear(&r);
	assert_int_equal(snapshot(t.svc, &s), 0);
}

/* 11. get -o json: one entry per replica, as the engine holds it. */
static void
test_get_json(void **state)
{
	struct spec two = { 2, "0.1", "32Mi", 1 };
	struct tctx t;
	struct vt_result r;
	struct snap s;
	json_error_t jerr;
	json_t *j, *e;
	char m[512], name[96];
	size_t i;
	bool seen[2] = { false, false };

	(void)state;
	ctx_init(&t, "get");
	make_service(&t, &two, "web", m, sizeof(m));
	assert_replicas(t.svc, &s, 2);
	vdctl(&r, t.state, "get", "-o", "json", t.svc, NULL);
	assert_exit(&r, 0);
	j = json_loads(r.out, 0, &jerr);
	if (!j)
		fprintf(stderr, "not JSON: %s at line %d\n%s", jerr.text, jerr.line, r.out);
	assert_non_null(j);
	assert_true(json_is_array(j));
	assert_int_equal(json_array_size(j), 2);
	json_array_foreach(j, i, e) {
		int idx = (int)json_integer_value(json_object_get(e, "index"));

		assert_true(json_is_integer(json_object_get(e, "index")));
		assert_true(idx == 0 || idx == 1);
		assert_false(seen[idx]);
		seen[idx] = true;
		snprintf(name, sizeof(name), "vd-%s-%d", t.svc, idx);
		assert_string_equal(json_string_value(json_object_get(e, "service")), t.svc);
		assert_string_equal(json_string_value(json_object_get(e, "name")), name);
		assert_string_equal(json_string_value(json_object_get(e, "backend")), "docker");
		assert_string_equal(json_string_value(json_object_get(e, "state")), "running");
		assert_string_equal(json_string_value(json_object_get(e, "health")), "healthy");
		assert_int_equal(json_integer_value(json_object_get(e, "milli_cpus")), 100);
		assert_int_equal(json_integer_value(json_object_get(e, "memory_bytes")), 32 * MiB);
		assert_string_equal(json_string_value(json_object_get(e, "host")), "127.0.0.1");
		assert_int_equal(json_integer_value(json_object_get(e, "port")), s.v[idx].port);
		assert_string_equal(json_string_value(json_object_get(e, "id")), s.v[idx].id);
		assert_true(json_integer_value(json_object_get(e, "started_ns")) > 0);
	}
	json_decref(j);
	vt_result_clear(&r);
}


/* 12. Two state directories on one engine: the second sees none of the
 * first's replicas, plans nothing for them, and cannot take them over. */
static void
test_two_state_dirs(void **state)
{
	struct spec one = { 1, "0.1", "32Mi", 1 };
	struct tctx t;
	struct vt_result r;
	struct snap s, after;
	char m[512], other[400];

	(void)state;
	ctx_init(&t, "owners");
	make_service(&t, &one, "web", m, sizeof(m));
	assert_replicas(t.svc, &s, 1);
	snprintf(other, sizeof(other), "%s/other-state", t.dir);

	vdctl(&r, other, "get", NULL);
	assert_exit(&r, 0);
	assert_null(strstr(r.out, t.svc));
	vt_result_clear(&r);
	vdctl(&r, other, "get", t.svc, NULL);
	assert_exit(&r, 2);
	assert_has(r.err, "unknown service");
	vt_result_clear(&r);
	vdctl(&r, other, "get", "--all-owners", NULL);
	assert_exit(&r, 0);
	assert_has(r.out, "OWNER");
	assert_has(r.out, t.svc);
	vt_result_clear(&r);
	vdctl(&r, other, "delete", "--dry-run", t.svc, NULL);
	assert_exit(&r, 2);
	assert_has(r.err, "unknown service");
	vt_result_clear(&r);

	/* the same manifest from the other directory: refused at the name */
	vdctl(&r, other, "apply", "--no-wait", m, NULL);
	assert_exit(&r, 1);
	assert_has(r.out, "another state directory made");
	vt_result_clear(&r);
	assert_replicas(t.svc, &after, 1);
	assert_string_equal(after.v[0].id, s.v[0].id);
	assert_int_equal(after.v[0].nano_cpus, s.v[0].nano_cpus);
	vdctl(&r, other, "delete", t.svc, NULL); /* recorded there by the refused apply */
	assert_exit(&r, 0);
	assert_has(r.out, "0 replicas removed");
	vt_result_clear(&r);
	assert_replicas(t.svc, &after, 1);
	assert_string_equal(after.v[0].id, s.v[0].id);
}

/* 13. A balancer address another recorded service has is refused up front,
 * naming it; nothing of the second service is made or recorded. */
static void
test_balancer_address_taken(void **state)
{
	struct tctx t;
	struct vt_result r;
	struct snap s;
	char m1[512], m2[512], second[48], rec[600];
	int port = vt_free_port();
	FILE *f;

	(void)state;
	ctx_init(&t, "lbaddr");
	snprintf(second, sizeof(second), "%.40s-b", t.svc);
	assert_true(G.nmade < MAX_SERVICES);
	snprintf(G.made[G.nmade].name, sizeof(G.made[0].name), "%s", second);
	snprintf(G.made[G.nmade].state_dir, sizeof(G.made[0].state_dir), "%s", t.state);
	G.nmade++;
	for (int k = 0; k < 2; k++) {
		if (!k)
			manifest_path(m1, sizeof(m1), &t, "first");
		else
			manifest_path(m2, sizeof(m2), &t, "second");
		f = fopen(k ? m2 : m1, "w");
		assert_non_null(f);
		fprintf(f, "service: %s\nbackend: docker\nimage: " IMAGE "\nreplicas: 1\n"
			"resources: {cpus: 0.1, memory: 32Mi}\n"
			"balancer: {listen: \"127.0.0.1:%d\"}\n", k ? second : t.svc, port);
		assert_int_equal(fclose(f), 0);
	}
	vdctl_node(&r, t.state, "apply", "--no-wait", m1, NULL);
	assert_exit(&r, 0);
	vt_result_clear(&r);
	vdctl(&r, t.state, "apply", "--no-wait", m2, NULL);
	assert_exit(&r, 2);
	assert_has(r.err, "is already used by service '");
	assert_has(r.err, t.svc);
	assert_has(r.err, "nothing was changed");
	vt_result_clear(&r);
	assert_int_equal(snapshot(second, &s), 0);
	snprintf(rec, sizeof(rec), "%s/services/%s.yaml", t.state, second);
	assert_int_equal(access(rec, F_OK), -1);
}

/* 14. Service names that are paths never reach the state directory, and a
 * record that declares another service is refused. */
static void
test_names_are_not_paths(void **state)
{
	struct spec one = { 1, "0.1", "32Mi", 1 };
	struct tctx t;
	struct vt_result r;
	struct snap s;
	char m[512], from[600], to[600], cmd[64];
	char *text;
	FILE *f;

	(void)state;
	ctx_init(&t, "paths");
	make_service(&t, &one, "web", m, sizeof(m));
	vdctl(&r, t.state, "scale", "../services/x=1", NULL);
	assert_exit(&r, 2);
	assert_has(r.err, "is not a service name");
	vt_result_clear(&r);
	vdctl(&r, t.state, "scale", "../../tmp/y=2", NULL);
	assert_exit(&r, 2);
	vt_result_clear(&r);
	vdctl(&r, t.state, "resize", "../../tmp/y", "--cpus", "0.2", NULL);
	assert_exit(&r, 2);
	assert_has(r.err, "is not a service name");
	vt_result_clear(&r);
	vdctl(&r, t.state, "get", "../x", NULL);
	assert_exit(&r, 2);
	vt_result_clear(&r);

	/* a copy of the record under another name */
	snprintf(from, sizeof(from), "%s/services/%s.yaml", t.state, t.svc);
	snprintf(to, sizeof(to), "%s/services/%s-copy.yaml", t.state, t.svc);
	assert_non_null(text = vt_read_text(from));
	assert_non_null(f = fopen(to, "w"));
	fputs(text, f);
	fclose(f);
	free(text);
	snprintf(cmd, sizeof(cmd), "%s-copy=3", t.svc);
	vdctl(&r, t.state, "scale", cmd, NULL);
	assert_exit(&r, 2);
	assert_has(r.err, "not service '");
	vt_result_clear(&r);
	assert_replicas(t.svc, &s, 1);
	unlink(to);
}

/* 15. Work on a state directory is one at a time: an apply waits for the
 * holder of DIR/work.lock, says who it is, and then does its work; two
 * applies started together both succeed. */
static void
test_one_at_a_time(void **state)
{
	struct spec one = { 1, "0.1", "32Mi", 1 }, two = { 2, "0.1", "32Mi", 1 };
	struct tctx t;
	struct vt_result r, r2;
	struct vt_proc p, p2;
	struct snap s;
	char m[512], lock[400], me[64], *out = NULL, buf[512];
	char *argv[] = { G.bin, (char *)"--state-dir", t.state, (char *)"apply", m, NULL };
	size_t len = 0;
	double t0;
	int fd;

	(void)state;
	ctx_init(&t, "lock");
	argv[2] = t.state;
	manifest_path(m, sizeof(m), &t, "web");
	write_manifest(m, t.svc, &one);
	assert_int_equal(mkdir(t.state, 0755), 0);
	snprintf(lock, sizeof(lock), "%s/work.lock", t.state);
	fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(flock(fd, LOCK_EX), 0);
	snprintf(me, sizeof(me), "pid %d (the test)\n", (int)getpid());
	assert_int_equal(write(fd, me, strlen(me)), (ssize_t)strlen(me));
	assert_int_equal(vt_spawn(&p, argv), 0);
	/* it says whom it waits for, and makes nothing meanwhile */
	t0 = now_s();
	while (!(out && strstr(out, "waiting for pid")) && now_s() - t0 < 30) {
		struct pollfd pf = { .fd = p.out, .events = POLLIN };
		ssize_t n;

		if (poll(&pf, 1, 200) > 0 && (n = read(p.out, buf, sizeof(buf))) > 0)
			vt_append(&out, &len, buf, (size_t)n);
	}
	assert_non_null(out);
	snprintf(buf, sizeof(buf), "waiting for pid %d (the test) to finish with %s", (int)getpid(),
		 t.state);
	assert_has(out, buf);
	sleep_ms(300);
	assert_int_equal(snapshot(t.svc, &s), 0);
	close(fd);
	vt_finish(&p, RUN_TIMEOUT_S, &r);
	assert_exit(&r, 0);
	assert_has(r.out, "apply: 1 created");
	vt_result_clear(&r);
	free(out);
	assert_replicas(t.svc, &s, 1);

	/* two at once: the second waits for the first, neither trips on it */
	write_manifest(m, t.svc, &two);
	assert_int_equal(vt_spawn(&p, argv), 0);
	assert_int_equal(vt_spawn(&p2, argv), 0);
	vt_finish(&p, RUN_TIMEOUT_S, &r);
	vt_finish(&p2, RUN_TIMEOUT_S, &r2);
	if (r.status || r2.status) {
		vt_dump("the first", &r);
		vt_dump("the second", &r2);
	}
	assert_exit(&r, 0);
	assert_exit(&r2, 0);
	vt_result_clear(&r);
	vt_result_clear(&r2);
	assert_replicas(t.svc, &s, 2);
}

/* 16. Say why: an image the engine does not have is refused before
 * anything changes; a replica that did not come up is shown with the reason;
 * an engine that does not answer is named and its replicas marked. */
static void
test_say_why(void **state)
{
	struct tctx t;
	struct vt_result r;
	struct snap s;
	char m[512], vm[512], rec[600], line[256];
	FILE *f;

	(void)state;
	ctx_init(&t, "why");
	manifest_path(m, sizeof(m), &t, "noimage");
	assert_non_null(f = fopen(m, "w"));
	fprintf(f, "service: %s\nbackend: docker\nimage: vdctl/no-such-image:1\nreplicas: 1\n"
		"resources: {cpus: 0.1, memory: 32Mi}\n", t.svc);
	assert_int_equal(fclose(f), 0);
	vdctl(&r, t.state, "apply", m, NULL);
	assert_exit(&r, 2);
	assert_has(r.err, "image 'vdctl/no-such-image:1' is not in the Docker engine");
	assert_has(r.err, "nothing was changed");
	vt_result_clear(&r);
	snprintf(rec, sizeof(rec), "%s/services/%s.yaml", t.state, t.svc);
	assert_int_equal(access(rec, F_OK), -1);
	assert_int_equal(snapshot(t.svc, &s), 0);

	/* a replica that exits at once: apply fails, get says why */
	assert_non_null(f = fopen(m, "w"));
	fprintf(f, "service: %s\nbackend: docker\nimage: " IMAGE "\n"
		"command: [\"/svc\", \"--no-such-option\"]\nreplicas: 1\n"
		"resources: {cpus: 0.1, memory: 32Mi}\nhealth: {http: /healthz}\n", t.svc);
	assert_int_equal(fclose(f), 0);
	vdctl_node(&r, t.state, "apply", "--timeout", "3s", m, NULL);
	assert_exit(&r, 1);
	vt_result_clear(&r);
	vdctl(&r, t.state, "get", t.svc, NULL);
	assert_exit(&r, 0);
	snprintf(line, sizeof(line), "vd-%s-0: vd-%s-0 did not become healthy within 3s (it is "
		 "exited", t.svc, t.svc);
	assert_has(r.out, line);
	vt_result_clear(&r);

	/* a health check that gets 404: told by its status, in get's column */
	assert_non_null(f = fopen(m, "w"));
	fprintf(f, "service: %s\nbackend: docker\nimage: " IMAGE "\n"
		"command: [\"/svc\", \"--model\", \"async\"]\nreplicas: 1\n"
		"resources: {cpus: 0.1, memory: 32Mi}\nhealth: {http: /nope}\n", t.svc);
	assert_int_equal(fclose(f), 0);
	vdctl_node(&r, t.state, "apply", "--timeout", "2s", m, NULL);
	assert_exit(&r, 1);
	assert_has(r.err, "last check: HTTP 404");
	vt_result_clear(&r);
	vdctl(&r, t.state, "get", t.svc, NULL);
	assert_exit(&r, 0);
	assert_has(r.out, " running  HTTP 404 ");
	vt_result_clear(&r);

	/* a VM service recorded on libvirt's test driver, whose domains live in
	 * the process that made them; then get with dockerd out of reach */
	manifest_path(vm, sizeof(vm), &t, "vm");
	assert_non_null(f = fopen(vm, "w"));
	fprintf(f, "service: %s-vm\nbackend: libvirt\nvm: {kernel: /etc/hostname, accel: tcg}\n"
		"replicas: 1\nresources: {cpus: 0.1, memory: 64Mi}\n", t.svc);
	assert_int_equal(fclose(f), 0);
	vdctl(&r, t.state, "--libvirt-uri", "test:///default", "apply", "--no-wait", vm, NULL);
	assert_exit(&r, 0);
	vt_result_clear(&r);
	vdctl(&r, t.state, "--libvirt-uri", "test:///default", "--docker-host",
	      "unix:///nonexistent/docker.sock", "get", NULL);
	assert_exit(&r, 0);
	assert_has(r.err, "engine docker did not answer");
	snprintf(line, sizeof(line), "%-20s %-8d %-8s %-8s %-18s", t.svc, 0, "docker", "unknown",
		 "engine down");
	assert_has(r.out, line);
	vt_result_clear(&r);
	/* none answers: exit 3, naming it */
	vdctl(&r, t.state, "--libvirt-uri", "test:///nonexistent-vd.xml", "--docker-host",
	      "unix:///nonexistent/docker.sock", "get", NULL);
	assert_exit(&r, 3);
	assert_has(r.err, "no engine answers");
	vt_result_clear(&r);
	snprintf(line, sizeof(line), "%s-vm", t.svc);
	vdctl(&r, t.state, "--libvirt-uri", "test:///default", "delete", line, NULL);
	vt_result_clear(&r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_apply_creates, test_teardown),
		cmocka_unit_test_teardown(test_reapply_is_noop, test_teardown),
		cmocka_unit_test_teardown(test_diff, test_teardown),
		cmocka_unit_test_teardown(test_resize_in_place, test_teardown),
		cmocka_unit_test_teardown(test_rolling_replacement, test_teardown),
		cmocka_unit_test_teardown(test_scale, test_teardown),
		cmocka_unit_test_teardown(test_over_capacity, test_teardown),
		cmocka_unit_test_teardown(test_sigkill_recovery, test_teardown),
		cmocka_unit_test_teardown(test_delete, test_teardown),
		cmocka_unit_test_teardown(test_bad_input, test_teardown),
		cmocka_unit_test_teardown(test_get_json, test_teardown),
		cmocka_unit_test_teardown(test_two_state_dirs, test_teardown),
		cmocka_unit_test_teardown(test_balancer_address_taken, test_teardown),
		cmocka_unit_test_teardown(test_names_are_not_paths, test_teardown),
		cmocka_unit_test_teardown(test_one_at_a_time, test_teardown),
		cmocka_unit_test_teardown(test_say_why, test_teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
