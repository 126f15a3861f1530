/*
 * The state directory (orchestrator/state.c): a saved service loads back as
 * the same service (docker and libvirt, every field the manifest has), with
 * the identity of its manifest; remove and load are calm about what is not
 * there; a damaged file is a diagnostic naming it; vd_file_write_atomic replaces
 * a file whole and leaves nothing behind; vd_file_mkdir_p makes nested paths.
 *
 * Each test works in its own directory under /tmp, removed after it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vdtest.h"
#include "vd/manifest.h"
#include "vd/state.h"

/* What vd_state_load() must overwrite (with NULL when it fails). */
static struct vd_manifest not_set;

static struct {
	char dir[64];   /* the test's own directory */
	char state[96]; /* DIR/state, the state directory (not made) */
} fx;

static int
setup(void **state)
{
	(void)state;
	memset(&fx, 0, sizeof(fx));
	snprintf(fx.dir, sizeof(fx.dir), "/tmp/vd-state-XXXXXX");
	if (!mkdtemp(fx.dir))
		return -1;
	snprintf(fx.state, sizeof(fx.state), "%s/state", fx.dir);
	return 0;
}

static int
remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
teardown(void **state)
{
	(void)state;
	if (fx.dir[0] && nftw(fx.dir, remove_one, 16, FTW_DEPTH | FTW_PHYS) < 0)
		fprintf(stderr, "cannot remove %s: %s\n", fx.dir, strerror(errno));
	return 0;
}

/* ------------------------------------------------------------- helpers */

/* DIR/NAME; a static buffer of four, in turn. */
static const char *
in_dir(const char *name)
{
	static char path[4][PATH_MAX];
	static int next;
	char *p = path[next++ % 4];

	snprintf(p, PATH_MAX, "%s/%s", fx.dir, name);
	return p;
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (!f)
		fail_msg("cannot write %s: %s", path, strerror(errno));
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

/* How many entries DIR has (. and .. aside); fails the test on any
 * temporary file left there. */
static int
entries(const char *dir)
{
	struct dirent *e;
	DIR *d = opendir(dir);
	int n = 0;

	if (!d)
		fail_msg("cannot list %s: %s", dir, strerror(errno));
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (strstr(e->d_name, ".tmp"))
			fail_msg("temporary file left behind: %s/%s", dir, e->d_name);
		n++;
	}
	closedir(d);
	return n;
}

/* Load the manifest file PATH, which must be good. */
static struct vd_manifest *
load_good(const char *path)
{
	struct vd_diags diags = VD_DIAGS_INIT;
	struct vd_error err = VD_ERROR_INIT;
	struct vd_manifest *m = NULL;

	if (vd_manifest_load(&path, 1, &m, &diags, &err) < 0) {
		vd_diags_print(&diags, stderr);
		vd_diags_clear(&diags);
		fail_msg("%s: %s", path, err.msg);
	}
	return m;
}

static void
save(const struct vd_service *s, const char *manifest)
{
	struct vd_error err = VD_ERROR_INIT;

	if (vd_state_save(fx.state, s, manifest, &err) < 0)
		fail_msg("save '%s': %s", s->name, err.msg);
}

/* Load the recorded services (one, or all for NULL), which must load. */
static struct vd_manifest *
load_state(const char *service)
{
	struct vd_diags diags = VD_DIAGS_INIT;
	struct vd_error err = VD_ERROR_INIT;
	struct vd_manifest *m = NULL;
	struct vd_state_held *held = NULL;
	size_t nheld = 0;

	if (!service) {
		if (vd_state_load_all(fx.state, &m, &held, &nheld, &err) < 0)
			fail_msg("load state: %s", err.msg);
		if (nheld)
			fail_msg("held: %s: %s", held[0].service, held[0].why);
		assert_non_null(m);
		return m;
	}
	if (vd_state_load(fx.state, service, &m, &diags, &err) < 0) {
		vd_diags_print(&diags, stderr);
		vd_diags_clear(&diags);
		fail_msg("load state: %s", err.msg);
	}
	assert_non_null(m);
	assert_int_equal(diags.n, 0);
	return m;
}

/* Services A and B are the same, as the manifest's normal form sees them
 * (every field but the file and line they came from). */
static void
assert_same_service(const struct vd_service *a, const struct vd_service *b)
{
	struct vd_service ca = *a, cb = *b; /* shallow: the manifests own them */
	struct vd_manifest ma = { &ca, 1 }, mb = { &cb, 1 };
	json_t *ja = vd_manifest_to_json(&ma), *jb = vd_manifest_to_json(&mb);

	assert_non_null(ja);
	assert_non_null(jb);
	if (!json_equal(ja, jb)) {
		char *sa = json_dumps(ja, JSON_INDENT(2) | JSON_SORT_KEYS);
		char *sb = json_dumps(jb, JSON_INDENT(2) | JSON_SORT_KEYS);

		fprintf(stderr, "--- saved:\n%s\n--- loaded:\n%s\n", sa, sb);
		free(sa);
		free(sb);
	}
	assert_true(json_equal(ja, jb));
	json_decref(ja);
	json_decref(jb);
}

/* ------------------------------------------------------------ fixtures */

/* Every field a docker service has, none at its default. */
static const char docker_full[] =
	"service: web\n"
	"backend: docker\n"
	"image: vdctl/example-svc:latest\n"
	"command: \"/svc --name 'two words' --flag\"\n"
	"env:\n"
	"  MODE: fast\n"
	"  EMPTY:\n"
	"  EQ: \"a=b\"\n"
	"port: 9090\n"
	"replicas: 3\n"
	"resources:\n"
	"  cpus: 0.25\n"
	"  memory: 96Mi\n"
	"health:\n"
	"  http: /healthz\n"
	"  interval: 3s\n"
	"  timeout: 750ms\n"
	"  retries: 5\n"
	"  start_period: 12s\n"
	"balancer:\n"
	"  listen: \"[::1]:18081\"\n"
	"  policy: round-robin\n"
	"  max_inflight: 7\n"
	"  queue_limit: 40\n"
	"  queue_timeout: 2s\n"
	"autoscale:\n"
	"  min: 2\n"
	"  max: 9\n"
	"  target_p95: 120ms\n"
	"  target_queue: 1.5\n"
	"  up_window: 20s\n"
	"  down_window: 2m\n"
	"  cooldown: 45s\n"
	"update:\n"
	"  max_surge: 2\n"
	"  max_unavailable: 1\n";

/* The least a docker service says: every default. */
static const char docker_minimal[] =
	"service: api\n"
	"backend: docker\n"
	"image: busybox\n"
	"replicas: 1\n";

/* A VM booting a kernel, with paths relative to the manifest. */
static const char libvirt_kernel[] =
	"service: vm1\n"
	"backend: libvirt\n"
	"vm:\n"
	"  kernel: boot/vmlinuz\n"
	"  initrd: boot/initrd.gz\n"
	"  cmdline: console=ttyS0 quiet vd=1\n"
	"  accel: tcg\n"
	"port: 8080\n"
	"replicas: 2\n"
	"resources:\n"
	"  cpus: 1\n"
	"  memory: 48Mi\n"
	"health:\n"
	"  tcp: true\n"
	"  start_period: 40s\n";

/* A VM booting a disk image. */
static const char libvirt_disk[] =
	"service: vm2\n"
	"backend: libvirt\n"
	"vm: {disk: /var/lib/images/svc.qcow2, accel: kvm}\n"
	"replicas: 0\n";

/* Write TEXT as DIR/NAME and load it. */
static struct vd_manifest *
manifest(const char *name, const char *text)
{
	const char *path = in_dir(name);

	write_file(path, text);
	return load_good(path);
}

/* --------------------------------------------------------------- tests */

static void
round_trip(const char *text, const char *name)
{
	struct vd_manifest *m = manifest("m.yaml", text), *got;
	const struct vd_service *s;

	assert_int_equal(m->nservices, 1);
	save(&m->services[0], in_dir("m.yaml"));
	got = load_state(NULL);
	assert_int_equal(got->nservices, 1);
	assert_string_equal(got->services[0].name, name);
	assert_same_service(&m->services[0], &got->services[0]);
	vd_manifest_free(got);

	/* one by name, too */
	got = load_state(name);
	assert_int_equal(got->nservices, 1);
	s = vd_manifest_find(got, name);
	assert_non_null(s);
	assert_same_service(&m->services[0], s);
	vd_manifest_free(got);
	vd_manifest_free(m);
}

static void
test_round_trip_docker(void **state)
{
	(void)state;
	round_trip(docker_full, "web");
}

static void
test_round_trip_docker_defaults(void **state)
{
	(void)state;
	round_trip(docker_minimal, "api");
}

static void
test_round_trip_libvirt_kernel(void **state)
{
	struct vd_manifest *got;
	char want[PATH_MAX];

	(void)state;
	round_trip(libvirt_kernel, "vm1");

	/* the paths were recorded absolute, relative to the manifest */
	got = load_state("vm1");
	assert_non_null(realpath(fx.dir, want));
	strncat(want, "/boot/vmlinuz", sizeof(want) - strlen(want) - 1);
	assert_string_equal(got->services[0].vm.kernel, want);
	assert_int_equal(got->services[0].vm.accel, VD_ACCEL_TCG);
	assert_string_equal(got->services[0].vm.cmdline, "console=ttyS0 quiet vd=1");
	assert_null(got->services[0].image);
	vd_manifest_free(got);
}

static void
test_round_trip_libvirt_disk(void **state)
{
	(void)state;
	round_trip(libvirt_disk, "vm2");
}

/* Several services, saved in any order, load sorted by name; a save
 * replaces the service's earlier record. */
static void
test_several_and_resave(void **state)
{
	struct vd_manifest *web = manifest("web.yaml", docker_full);
	struct vd_manifest *api = manifest("api.yaml", docker_minimal);
	struct vd_manifest *vm = manifest("vm.yaml", libvirt_kernel), *got;
	char services[PATH_MAX];

	(void)state;
	save(&web->services[0], in_dir("web.yaml"));
	save(&vm->services[0], in_dir("vm.yaml"));
	save(&api->services[0], in_dir("api.yaml"));
	got = load_state(NULL);
	assert_int_equal(got->nservices, 3);
	assert_string_equal(got->services[0].name, "api");
	assert_string_equal(got->services[1].name, "vm1");
	assert_string_equal(got->services[2].name, "web");
	assert_same_service(&api->services[0], &got->services[0]);
	assert_same_service(&vm->services[0], &got->services[1]);
	assert_same_service(&web->services[0], &got->services[2]);
	vd_manifest_free(got);

	/* scaled: the record follows, still one file per service */
	web->services[0].replicas = 11;
	save(&web->services[0], in_dir("web.yaml"));
	got = load_state("web");
	assert_int_equal(got->services[0].replicas, 11);
	assert_same_service(&web->services[0], &got->services[0]);
	vd_manifest_free(got);
	snprintf(services, sizeof(services), "%s/services", fx.state);
	assert_int_equal(entries(services), 3);

	vd_manifest_free(web);
	vd_manifest_free(api);
	vd_manifest_free(vm);
}

static void
test_manifest_identity(void **state)
{
	struct vd_manifest *web = manifest("web.yaml", docker_full);
	struct vd_manifest *api = manifest("api.yaml", docker_minimal);
	struct vd_error err = VD_ERROR_INIT;
	char buf[PATH_MAX];

	(void)state;
	save(&web->services[0], "/srv/manifests/web.yaml");
	save(&api->services[0], "/srv/manifests/with space 'and quotes'.yaml");
	assert_int_equal(vd_state_manifest_of(fx.state, "web", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/srv/manifests/web.yaml");
	assert_int_equal(vd_state_manifest_of(fx.state, "api", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/srv/manifests/with space 'and quotes'.yaml");

	/* a later save from another manifest takes over */
	save(&web->services[0], "/srv/other.yaml");
	assert_int_equal(vd_state_manifest_of(fx.state, "web", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/srv/other.yaml");

	/* a small buffer gets a truncated, terminated string */
	assert_int_equal(vd_state_manifest_of(fx.state, "web", buf, 5), 0);
	assert_string_equal(buf, "/srv");

	/* nothing recorded */
	assert_int_equal(vd_state_manifest_of(fx.state, "nope", buf, sizeof(buf)), -1);

	/* a newline would end the comment it is kept in: refused */
	assert_int_equal(vd_state_save(fx.state, &web->services[0], "/a\nb.yaml", &err), -1);
	assert_int_equal(err.code, VD_EXIT_INPUT);
	assert_has(err.msg, "newline");
	assert_int_equal(vd_state_manifest_of(fx.state, "web", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/srv/other.yaml");

	vd_manifest_free(web);
	vd_manifest_free(api);
}

static void
test_remove(void **state)
{
	struct vd_manifest *web = manifest("web.yaml", docker_full);
	struct vd_manifest *api = manifest("api.yaml", docker_minimal), *got;
	struct vd_error err = VD_ERROR_INIT;

	(void)state;
	/* nothing there at all: not even the state directory */
	assert_int_equal(vd_state_remove(fx.state, "web", &err), 0);
	assert_int_equal(err.code, 0);

	save(&web->services[0], "/m.yaml");
	save(&api->services[0], "/m.yaml");
	assert_int_equal(vd_state_remove(fx.state, "web", &err), 0);
	assert_int_equal(vd_state_remove(fx.state, "web", &err), 0); /* again */
	assert_int_equal(vd_state_remove(fx.state, "never", &err), 0);
	assert_int_equal(err.code, 0);
	got = load_state(NULL);
	assert_int_equal(got->nservices, 1);
	assert_string_equal(got->services[0].name, "api");
	vd_manifest_free(got);
	assert_int_equal(vd_state_manifest_of(fx.state, "web", (char[8]){ 0 }, 8), -1);

	vd_manifest_free(web);
	vd_manifest_free(api);
}

static void
test_load_empty_or_missing(void **state)
{
	struct vd_diags diags = VD_DIAGS_INIT;
	struct vd_error err = VD_ERROR_INIT;
	struct vd_manifest *m;
	char services[PATH_MAX];

	(void)state;
	/* no directory */
	m = load_state(NULL);
	assert_int_equal(m->nservices, 0);
	vd_manifest_free(m);

	/* a directory with no services/ in it, then an empty services/ with
	 * something that is not a record */
	assert_int_equal(mkdir(fx.state, 0755), 0);
	m = load_state(NULL);
	assert_int_equal(m->nservices, 0);
	vd_manifest_free(m);
	snprintf(services, sizeof(services), "%s/services", fx.state);
	assert_int_equal(mkdir(services, 0755), 0);
	write_file(in_dir("state/services/notes.txt"), "not a service\n");
	write_file(in_dir("state/services/.yaml"), "service: x\n");
	m = load_state(NULL);
	assert_int_equal(m->nservices, 0);
	vd_manifest_free(m);

	/* one service asked for by name that is not there */
	m = &not_set;
	assert_int_equal(vd_state_load(fx.state, "web", &m, &diags, &err), -1);
	assert_null(m);
	assert_int_equal(err.code, VD_EXIT_INPUT);
	assert_has(err.msg, "'web'");
	assert_int_equal(diags.n, 0);
}

static void
test_truncated_file(void **state)
{
	struct vd_manifest *web = manifest("web.yaml", docker_full), *m;
	struct vd_diags diags = VD_DIAGS_INIT;
	struct vd_error err = VD_ERROR_INIT;
	struct vd_state_held *held = NULL;
	size_t nheld = 0;
	char path[PATH_MAX];
	char *text;
	bool named = false;

	(void)state;
	save(&web->services[0], "/m.yaml");
	snprintf(path, sizeof(path), "%s/services/web.yaml", fx.state);
	text = vt_read_text(path);
	assert_non_null(text);
	/* cut in the middle of the JSON body */
	assert_int_equal(truncate(path, (off_t)(strlen(text) * 2 / 3)), 0);
	free(text);

	/* all of them: that one is held, naming its file and where */
	m = &not_set;
	assert_int_equal(vd_state_load_all(fx.state, &m, &held, &nheld, &err), 0);
	assert_non_null(m);
	assert_int_equal(m->nservices, 0);
	assert_int_equal(nheld, 1);
	assert_string_equal(held[0].service, "web");
	named = strncmp(held[0].why, path, strlen(path)) == 0 && held[0].why[strlen(path)] == ':';
	if (!named)
		fprintf(stderr, "held: %s\n", held[0].why);
	assert_true(named);
	vd_state_held_free(held, nheld);
	vd_manifest_free(m);

	/* the same, asked for by name */
	vd_error_clear(&err);
	assert_int_equal(vd_state_load(fx.state, "web", &m, &diags, &err), -1);
	assert_true(diags.n > 0);
	assert_string_equal(diags.items[0].file, path);
	vd_diags_clear(&diags);

	/* an empty file is no service either */
	write_file(path, "");
	vd_error_clear(&err);
	assert_int_equal(vd_state_load(fx.state, "web", &m, &diags, &err), -1);
	assert_true(diags.n > 0);
	assert_string_equal(diags.items[0].file, path);
	vd_diags_clear(&diags);
	vd_manifest_free(web);
}

static void
test_write_atomic(void **state)
{
	static const char longer[] = "a longer first version\nof two lines\n";
	struct vd_error err = VD_ERROR_INIT;
	const char *path = in_dir("f.txt");
	char before[64] = { 0 }, stale[PATH_MAX];
	char *got;
	int fd;

	(void)state;
	assert_int_equal(vd_file_write_atomic(path, longer, strlen(longer), &err), 0);
	got = vt_read_text(path);
	assert_string_equal(got, longer);
	free(got);

	/* a reader of the old file keeps the old content, whole; the path
	 * has the new one, whole, with nothing of the longer one after it */
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(vd_file_write_atomic(path, "short\n", 6, &err), 0);
	assert_int_equal(read(fd, before, sizeof(before) - 1), (ssize_t)strlen(longer));
	assert_string_equal(before, longer);
	close(fd);
	got = vt_read_text(path);
	assert_string_equal(got, "short\n");
	free(got);

	/* empty, and data with NULs in it: exactly LEN bytes */
	assert_int_equal(vd_file_write_atomic(path, "", 0, &err), 0);
	got = vt_read_text(path);
	assert_string_equal(got, "");
	free(got);
	assert_int_equal(vd_file_write_atomic(path, "a\0b", 3, &err), 0);
	got = vt_read_text(path);
	assert_memory_equal(got, "a\0b", 3);
	free(got);
	assert_int_equal(entries(fx.dir), 1);

	/* a longer temporary left by an earlier write that died (its name is
	 * the file's, ".tmp." and the pid) is not part of the new content */
	snprintf(stale, sizeof(stale), "%s.tmp.%d", path, (int)getpid());
	write_file(stale, longer);
	assert_int_equal(vd_file_write_atomic(path, "new\n", 4, &err), 0);
	got = vt_read_text(path);
	assert_string_equal(got, "new\n");
	free(got);
	assert_int_equal(entries(fx.dir), 1);

	/* into a directory that is not there: an error naming the file,
	 * and nothing written */
	assert_int_equal(vd_file_write_atomic(in_dir("no/such/f.txt"), "x", 1, &err), -1);
	assert_int_equal(err.sys_errno, ENOENT);
	assert_has(err.msg, "no/such/f.txt");
	assert_int_equal(entries(fx.dir), 1);

	/* over a directory: the rename fails, the temporary goes */
	assert_int_equal(mkdir(in_dir("d"), 0755), 0);
	write_file(in_dir("d/keep"), "x");
	vd_error_clear(&err);
	assert_int_equal(vd_file_write_atomic(in_dir("d"), "x", 1, &err), -1);
	assert_has(err.msg, "rename");
	assert_int_equal(entries(fx.dir), 2);
}

static void
test_mkdir_p(void **state)
{
	struct vd_error err = VD_ERROR_INIT;
	char long_path[PATH_MAX + 16];
	struct stat st;

	(void)state;
	assert_int_equal(vd_file_mkdir_p(in_dir("a/b/c/d"), &err), 0);
	assert_int_equal(stat(in_dir("a/b/c/d"), &st), 0);
	assert_true(S_ISDIR(st.st_mode));

	/* again, and beside it, and with a trailing slash */
	assert_int_equal(vd_file_mkdir_p(in_dir("a/b/c/d"), &err), 0);
	assert_int_equal(vd_file_mkdir_p(in_dir("a/b/e"), &err), 0);
	assert_int_equal(vd_file_mkdir_p(in_dir("x/y/"), &err), 0);
	assert_int_equal(stat(in_dir("x/y"), &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(entries(in_dir("a/b")), 2);

	/* a file in the way */
	write_file(in_dir("file"), "x");
	assert_int_equal(vd_file_mkdir_p(in_dir("file/sub"), &err), -1);
	assert_int_equal(err.sys_errno, ENOTDIR);
	assert_has(err.msg, "file/sub");

	/* too long for a path */
	memset(long_path, 'x', sizeof(long_path) - 1);
	long_path[0] = '/';
	long_path[sizeof(long_path) - 1] = '\0';
	vd_error_clear(&err);
	assert_int_equal(vd_file_mkdir_p(long_path, &err), -1);
	assert_int_equal(err.code, VD_EXIT_INPUT);
	assert_has(err.msg, "too long");
}

static void
test_state_dir_default(void **state)
{
	(void)state;
	assert_int_equal(setenv("VDCTL_STATE_DIR", fx.state, 1), 0);
	assert_string_equal(vd_state_dir_default(), fx.state);
	assert_int_equal(setenv("VDCTL_STATE_DIR", "", 1), 0);
	assert_string_equal(vd_state_dir_default(), VD_STATE_DIR_DEFAULT);
	assert_int_equal(unsetenv("VDCTL_STATE_DIR"), 0);
	assert_string_equal(vd_state_dir_default(), VD_STATE_DIR_DEFAULT);
}

int
main(void)
{
#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_round_trip_docker),
		T(test_round_trip_docker_defaults),
		T(test_round_trip_libvirt_kernel),
		T(test_round_trip_libvirt_disk),
		T(test_several_and_resave),
		T(test_manifest_identity),
		T(test_remove),
		T(test_load_empty_or_missing),
		T(test_truncated_file),
		T(test_write_atomic),
		T(test_mkdir_p),
		T(test_state_dir_default),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
