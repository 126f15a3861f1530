/*
 * examples/vm.yaml through the vdctl command against the real libvirtd: two
 * VM replicas booted from the initramfs and one from the golden disk, all
 * healthy and answering /info through 127.0.0.1; a second apply changes
 * nothing; a live resize; a scale-down; delete leaves no domain and no file.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* vdctl --state-dir STATE ARGS...; the result in r. */
static int
vdctl(struct vt_result *r, char *a1, char *a2, char *a3, char *a4, char *a5)
{
	char *argv[] = { bin(), "--state-dir", state, a1, a2, a3, a4, a5, NULL };
	int status = vt_run(argv, RUN_S, r);

	if (status != 0)
		fprintf(stderr, "--- vdctl %s: exit %d\n%s%s", a1, status, r->out, r->err);
	return status;
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
	char path[256];

	(void)st;
	vdctl(&r, "delete", manifest, NULL, NULL, NULL);
	vt_result_clear(&r);
	snprintf(path, sizeof(path), "%s/libvirt/kvm-probe", state);
	unlink(path);
	snprintf(path, sizeof(path), "%s/libvirt", state);
	rmdir(path);
	snprintf(path, sizeof(path), "%s/services", state);
	rmdir(path);
	rmdir(state);
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_apply_example),
		cmocka_unit_test(test_resize_and_scale),
		cmocka_unit_test(test_delete_leaves_nothing),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
