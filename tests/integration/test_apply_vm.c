/*
 * examples/vm.yaml through the vdctl command against the real libvirtd: two
 * VM replicas booted from the initramfs and one from the golden disk, all
 * healthy and answering /info through 127.0.0.1; a second apply changes
 * nothing; a live resize; a scale-down; delete leaves no domain and no file.
 * Then VM replicas under a state directory made by mkdtemp, mode 0700, which
 * QEMU's user cannot enter: they boot, with their arguments.
 */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vdtest.h"

#define RUN_S 300
#define MiB (1024 * 1024)

static char state[128];
static char manifest[1024];

static char *
bin(void)
{
	static char path[1024];

	snprintf(path, sizeof(path), "%s", vt_env("VD_VDCTL_BIN", "build/vdctl"));
	return path;
}

/* vdctl --state-dir DIR ARGS...; the result in r. */
static int
vdctl_in(char *dir, struct vt_result *r, char *a1, char *a2, char *a3, char *a4, char *a5)
{
	char *argv[] = { bin(), "--state-dir", dir, a1, a2, a3, a4, a5, NULL };
	int status = vt_run(argv, RUN_S, r);

	if (status != 0)
		fprintf(stderr, "--- vdctl %s: exit %d\n%s%s", a1, status, r->out, r->err);
	return status;
}

static int
vdctl(struct vt_result *r, char *a1, char *a2, char *a3, char *a4, char *a5)
{
	return vdctl_in(state, r, a1, a2, a3, a4, a5);
}

static int
setup(void **st)
{
	struct vt_result r;

	(void)st;
	snprintf(state, sizeof(state), "/tmp/vdctl-itest-vm-%d", (int)getpid());
	snprintf(manifest, sizeof(manifest), "%s", vt_path("examples/vm.yaml"));
	/* nothing of the example's may be here before the test */
	vdctl(&r, "delete", manifest, NULL, NULL, NULL);
	vt_result_clear(&r);
	return 0;
}

static int
teardown(void **st)
{
	struct vt_result r;

	(void)st;
	vdctl(&r, "delete", manifest, NULL, NULL, NULL);
	vt_result_clear(&r);
	vt_rm_tree(state); /* its id, the KVM probe's answer, empty directories */
	return 0;
}

/* `vdctl get -o json`, parsed. */
/* The replicas `vdctl get` lists of examples/vm.yaml's services. */
static json_t *
get(void)
{
	struct vt_result r;
	json_t *j;

	json_t *all, *e;
	size_t i;

	assert_int_equal(vdctl(&r, "get", "-o", "json", NULL, NULL), 0);
	all = json_loads(r.out, 0, NULL);
	vt_result_clear(&r);
	assert_non_null(all);
	/* this manifest's replicas: others on the node are not this test's */
	j = json_array();
	json_array_foreach(all, i, e) {
		const char *svc = json_string_value(json_object_get(e, "service"));

		if (svc && (strcmp(svc, "vm-initrd") == 0 || strcmp(svc, "vm-disk") == 0))
			json_array_append(j, e);
	}
	json_decref(all);
	return j;
}

static json_t *
info(long port)
{
	char url[64], *body = NULL;
	json_t *j = NULL;

	snprintf(url, sizeof(url), "http://127.0.0.1:%ld/info", port);
	if (vt_http_get(url, &body, 5000) == 200)
		j = json_loads(body, 0, NULL);
	free(body);
	return j;
}

static long long
info_int(long port, const char *key)
{
	json_t *j = info(port);
	long long v = j ? json_integer_value(json_object_get(j, key)) : -1;

	json_decref(j);
	return v;
}

static json_t *
find(json_t *list, const char *service, int index)
{
	size_t i;
	json_t *e;

	json_array_foreach(list, i, e) {
		if (strcmp(json_string_value(json_object_get(e, "service")), service) == 0 &&
		    json_integer_value(json_object_get(e, "index")) == index)
			return e;
	}
	return NULL;
}

static void
test_apply_example(void **st)
{
	struct vt_result r;
	json_t *list;
	const char *names[] = { "vm-initrd", "vm-initrd", "vm-disk" };
	const int index[] = { 0, 1, 0 };

	(void)st;
	assert_int_equal(vdctl(&r, "apply", manifest, NULL, NULL, NULL), 0);
	assert_non_null(strstr(r.out, "apply: 3 created"));
	vt_result_clear(&r);

	list = get();
	assert_int_equal(json_array_size(list), 3);
	for (int i = 0; i < 3; i++) {
		json_t *e = find(list, names[i], index[i]);
		json_t *in;
		char want[64];

		assert_non_null(e);
		assert_string_equal(json_string_value(json_object_get(e, "backend")), "libvirt");
		assert_string_equal(json_string_value(json_object_get(e, "state")), "running");
		assert_string_equal(json_string_value(json_object_get(e, "health")), "healthy");
		in = info(json_integer_value(json_object_get(e, "port")));
		assert_non_null(in);
		snprintf(want, sizeof(want), "vd-%s-%d", names[i], index[i]);
		assert_string_equal(json_string_value(json_object_get(in, "id")), want);
		assert_string_equal(json_string_value(json_object_get(in, "model")),
				    i < 2 ? "async" : "sync");
		assert_int_equal(json_integer_value(json_object_get(in, "online_cpus")), 1);
		json_decref(in);
	}
	json_decref(list);

	assert_int_equal(vdctl(&r, "apply", manifest, NULL, NULL, NULL), 0);
	assert_non_null(strstr(r.out, "nothing to change: 3 replicas up to date"));
	vt_result_clear(&r);
}

/*
 * One capacity check for every command: with the example's VM replicas up
 * (1.5 cpus), scale and resize of a Docker service of the same state
 * directory count them, as apply does (they asked only Docker before, and
 * went through).
 */
static void
test_capacity_counts_vms(void **st)
{
	char path[256], cpus[16], twice[16];
	struct vt_result r;
	json_t *info = NULL;
	long ncpu = 0;
	double c;
	FILE *f;

	(void)st;
	if (vt_docker("GET", "/info", NULL, &info) == 200)
		ncpu = (long)json_integer_value(json_object_get(info, "NCPU"));
	json_decref(info);
	assert_true(ncpu > 0);
	if (ncpu > 8)
		skip(); /* the numbers below want a node of a few cpus */
	/* one replica fits beside the VMs, two do not */
	c = (double)(ncpu * 100 - 150) * 0.75 / 100;
	snprintf(cpus, sizeof(cpus), "%.2f", c);
	snprintf(twice, sizeof(twice), "--cpus=%.2f", 2 * c);
	snprintf(path, sizeof(path), "%s/docker.yaml", state);
	assert_non_null(f = fopen(path, "w"));
	fprintf(f, "service: cap-docker\nbackend: docker\nimage: vdctl/example-svc:latest\n"
		"replicas: 1\nresources: {cpus: %s, memory: 32Mi}\n", cpus);
	fclose(f);
	assert_int_equal(vdctl(&r, "apply", path, NULL, NULL, NULL), 0);
	vt_result_clear(&r);
	vdctl(&r, "scale", "cap-docker=2", NULL, NULL, NULL);
	assert_int_equal(r.status, 2);
	assert_non_null(strstr(r.err, "refusing to apply"));
	assert_non_null(strstr(r.err, "other services' replicas"));
	vt_result_clear(&r);
	vdctl(&r, "resize", "cap-docker", twice, NULL, NULL);
	assert_int_equal(r.status, 2);
	assert_non_null(strstr(r.err, "refusing to apply"));
	vt_result_clear(&r);
	assert_int_equal(vdctl(&r, "delete", "cap-docker", NULL, NULL, NULL), 0);
	vt_result_clear(&r);
}

static void
test_resize_and_scale(void **st)
{
	struct vt_result r;
	json_t *list, *e;
	long port;
	long long mem = -1;

	(void)st;
	list = get();
	port = (long)json_integer_value(json_object_get(find(list, "vm-initrd", 0), "port"));
	json_decref(list);

	/* 256 -> 384 MiB, within the ceiling (the node has 2 cpus: the cpus stay) */
	assert_int_equal(vdctl(&r, "resize", "vm-initrd", "--memory=384Mi", NULL, NULL), 0);
	assert_non_null(strstr(r.out, "resized live"));
	vt_result_clear(&r);
	for (int i = 0; i < 150 && !(mem > 300 * MiB && mem <= 384 * MiB); i++) {
		mem = info_int(port, "mem_total_bytes");
		usleep(200 * 1000);
	}
	assert_true(mem > 300 * MiB && mem <= 384 * MiB);

	assert_int_equal(vdctl(&r, "scale", "vm-initrd=1", NULL, NULL, NULL), 0);
	assert_non_null(strstr(r.out, "vd-vm-initrd-1"));
	vt_result_clear(&r);
	list = get();
	assert_int_equal(json_array_size(list), 2);
	e = find(list, "vm-initrd", 0);
	assert_non_null(e);
	assert_int_equal(json_integer_value(json_object_get(e, "memory_bytes")), 384 * MiB);
	assert_int_equal(json_integer_value(json_object_get(e, "milli_cpus")), 500);
	assert_null(find(list, "vm-initrd", 1));
	json_decref(list);
}

static void
test_delete_leaves_nothing(void **st)
{
	struct vt_result r;
	char dir[256];
	struct dirent *e;
	DIR *d;
	json_t *list;

	(void)st;
	assert_int_equal(vdctl(&r, "delete", manifest, NULL, NULL, NULL), 0);
	vt_result_clear(&r);
	list = get();
	assert_int_equal(json_array_size(list), 0);
	json_decref(list);
	/* no overlay, console log or guest files left */
	snprintf(dir, sizeof(dir), "%s/libvirt", state);
	d = opendir(dir);
	while (d && (e = readdir(d)))
		assert_true(strncmp(e->d_name, "vd-", 3) != 0);
	if (d)
		closedir(d);
}

/* ------------------------------------------- a state directory of 0700 */

static char private_dir[64];
static char private_manifest[128];

static int
private_teardown(void **st)
{
	struct vt_result r;

	(void)st;
	if (!private_dir[0])
		return 0;
	vdctl_in(private_dir, &r, "delete", private_manifest, NULL, NULL, NULL);
	vt_result_clear(&r);
	vt_rm_tree(private_dir);
	private_dir[0] = '\0';
	return 0;
}

/*
 * QEMU runs as its own user, who cannot enter a directory of mode 0700: it
 * must open no file of the state directory. One replica boots a kernel, one
 * the golden disk (its overlay lives in the state directory); each got its
 * arguments (the model and workers /info shows) and its environment
 * (REPLICA_ID, the id /info shows).
 */
static void
test_private_state_dir(void **st)
{
	const char *images = vt_env("VD_IMAGES_DIR", "examples/images");
	const char *names[] = { "vmpriv-initrd", "vmpriv-disk" };
	char dir[PATH_MAX], overlay[256];
	struct vt_result r;
	struct stat sb;
	json_t *all, *e;
	size_t i;
	FILE *f;
	int seen = 0;

	(void)st;
	assert_non_null(realpath(images, dir));
	snprintf(private_dir, sizeof(private_dir), "/tmp/vdctl-itest-0700-XXXXXX");
	assert_non_null(mkdtemp(private_dir));
	assert_int_equal(stat(private_dir, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0700);
	snprintf(private_manifest, sizeof(private_manifest), "%s/vm.yaml", private_dir);
	f = fopen(private_manifest, "w");
	assert_non_null(f);
	fprintf(f, "service: %s\nbackend: libvirt\n"
		"vm: {kernel: %s/vmlinuz, initrd: %s/svc-initrd.gz, accel: tcg}\n"
		"command: [/svc, --model, sync, --workers, \"3\"]\n"
		"env: {NOTE: \"it's a, b\"}\nport: 8080\nreplicas: 1\n"
		"resources: {cpus: 0.5, memory: 256Mi}\n"
		"health: {http: /healthz, start_period: 60s}\n---\n"
		"service: %s\nbackend: libvirt\nvm: {disk: %s/svc.qcow2, accel: tcg}\n"
		"command: [/svc, --model, async]\nport: 8080\nreplicas: 1\n"
		"resources: {cpus: 0.5, memory: 192Mi}\n"
		"health: {http: /healthz, start_period: 60s}\n",
		names[0], dir, dir, names[1], dir);
	assert_int_equal(fclose(f), 0);

	assert_int_equal(vdctl_in(private_dir, &r, "apply", private_manifest, NULL, NULL, NULL), 0);
	assert_has(r.out, "apply: 2 created");
	vt_result_clear(&r);
	/* vdctl left the directory as it was */
	assert_int_equal(stat(private_dir, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0700);
	snprintf(overlay, sizeof(overlay), "%s/libvirt/vd-%s-0/overlay.qcow2", private_dir,
		 names[1]);
	assert_int_equal(stat(overlay, &sb), 0);

	assert_int_equal(vdctl_in(private_dir, &r, "get", "-o", "json", NULL, NULL), 0);
	all = json_loads(r.out, 0, NULL);
	vt_result_clear(&r);
	assert_non_null(all);
	json_array_foreach(all, i, e) {
		const char *svc = json_string_value(json_object_get(e, "service"));
		int k = svc && strcmp(svc, names[0]) == 0 ? 0 :
			svc && strcmp(svc, names[1]) == 0 ? 1 : -1;
		json_t *in;
		char want[64];

		if (k < 0)
			continue;
		seen |= 1 << k;
		assert_string_equal(json_string_value(json_object_get(e, "health")), "healthy");
		in = info(json_integer_value(json_object_get(e, "port")));
		assert_non_null(in);
		snprintf(want, sizeof(want), "vd-%s-0", names[k]);
		assert_string_equal(json_string_value(json_object_get(in, "id")), want);
		assert_string_equal(json_string_value(json_object_get(in, "model")),
				    k == 0 ? "sync" : "async");
		assert_int_equal(json_integer_value(json_object_get(in, "workers")), k == 0 ? 3 : 1);
		json_decref(in);
	}
	json_decref(all);
	assert_int_equal(seen, 3);

	assert_int_equal(vdctl_in(private_dir, &r, "delete", private_manifest, NULL, NULL, NULL),
			 0);
	assert_has(r.out, "2 replicas removed");
	vt_result_clear(&r);
	assert_int_equal(stat(overlay, &sb), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_apply_example),
		cmocka_unit_test(test_capacity_counts_vms),
		cmocka_unit_test(test_resize_and_scale),
		cmocka_unit_test(test_delete_leaves_nothing),
		cmocka_unit_test_teardown(test_private_state_dir, private_teardown),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
