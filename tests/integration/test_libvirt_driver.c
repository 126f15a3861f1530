/*
 * The libvirt driver against the real libvirtd with QEMU TCG, under a state
 * directory made by mkdtemp (mode 0700, which QEMU's user cannot enter): two
 * replicas booted from the example initramfs and one from the golden disk,
 * seen from inside through 127.0.0.1; a live resize of CPUs and memory
 * without a reboot, and a refusal above the ceiling; stats; the disk replica
 * stopped and started again; a graceful stop seen as an event; removal that
 * leaves no domain, overlay or log; a domain without vdctl's metadata left
 * alone; a bad kernel path named with the replica; an argument with commas,
 * quotes and markup reaching the guest whole, and one with a newline
 * refused; libxml2's own warnings kept off stderr.
 */
#include <dirent.h>
#include <fcntl.h>
#include <libvirt/libvirt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vd/driver.h"
#include "vd/labels.h"
#include "vd/manifest.h"
#include "vdtest.h"

#define MiB (1024 * 1024)
#define BOOT_SECONDS 180

struct fixture {
	struct vd_driver *d;
	struct vd_driver_config cfg;
	char state[256];
	char kernel[1100], initrd[1100], disk[1100];
	char svc_name[40], disk_name[40];
	struct vd_service svc, dsvc; /* initramfs, golden disk */
	char *ids[4];                /* initrd 0, initrd 1, disk 0, odd arguments */
	int ports[4];
	virConnectPtr conn;
	virDomainPtr stranger;
};

static char *async_cmd[] = { "/svc", "--model", "async" };
static char *sync_cmd[] = { "/svc", "--model", "sync", "--workers", "2" };

static void
remove_service(struct fixture *f, const char *service)
{
	struct vd_error err = VD_ERROR_INIT;
	struct vd_replica_list l = { 0 };

	if (vd_driver_list(f->d, service, &l, &err) == 0)
		for (size_t i = 0; i < l.n; i++)
			vd_driver_remove(f->d, l.v[i].id, &err);
	vd_replica_list_clear(&l);
}

static int
group_setup(void **state)
{
	static struct fixture f;
	struct vd_error err = VD_ERROR_INIT;
	const char *images = vt_env("VD_IMAGES_DIR", "examples/images");
	char dir[1024];
	int id = (int)getpid() % 100000;

	memset(&f, 0, sizeof(f));
	*state = &f;
	if (!realpath(images, dir))
		return -1;
	/* 0700, left so: QEMU must need no file of it */
	snprintf(f.state, sizeof(f.state), "/tmp/vdctl-itest-XXXXXX");
	if (!mkdtemp(f.state))
		return -1;
	snprintf(f.kernel, sizeof(f.kernel), "%s/vmlinuz", dir);
	snprintf(f.initrd, sizeof(f.initrd), "%s/svc-initrd.gz", dir);
	snprintf(f.disk, sizeof(f.disk), "%s/svc.qcow2", dir);
	snprintf(f.svc_name, sizeof(f.svc_name), "itest-lv%d", id);
	snprintf(f.disk_name, sizeof(f.disk_name), "itest-lvd%d", id);
	f.cfg.state_dir = f.state;
	f.cfg.endpoint = vt_env("VD_LIBVIRT_URI", "qemu:///system");
	if (vd_driver_open(&vd_libvirt_driver, &f.cfg, &f.d, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return -1;
	}
	f.conn = virConnectOpen(f.cfg.endpoint);

	f.svc.name = f.svc_name;
	f.svc.backend = VD_BACKEND_LIBVIRT;
	f.svc.vm.kernel = f.kernel;
	f.svc.vm.initrd = f.initrd;
	f.svc.vm.cmdline = "console=ttyS0 quiet";
	f.svc.vm.accel = VD_ACCEL_TCG;
	f.svc.command = async_cmd;
	f.svc.ncommand = 3;
	f.svc.port = 8080;
	f.svc.milli_cpus = 1000;
	f.svc.memory_bytes = 256 * MiB;

	f.dsvc = f.svc;
	f.dsvc.name = f.disk_name;
	f.dsvc.vm.kernel = f.dsvc.vm.initrd = f.dsvc.vm.cmdline = NULL;
	f.dsvc.vm.disk = f.disk;
	f.dsvc.command = sync_cmd;
	f.dsvc.ncommand = 5;
	f.dsvc.milli_cpus = 500;
	f.dsvc.memory_bytes = 192 * MiB;
	return 0;
}

static int
group_teardown(void **state)
{
	struct fixture *f = *state;

	if (!f->d) {
		if (f->state[0])
			vt_rm_tree(f->state);
		return 0;
	}
	remove_service(f, f->svc_name);
	remove_service(f, f->disk_name);
	if (f->stranger) {
		virDomainUndefine(f->stranger);
		virDomainFree(f->stranger);
	}
	for (int i = 0; i < 4; i++)
		free(f->ids[i]);
	vd_driver_close(f->d);
	if (f->conn)
		virConnectClose(f->conn);
	vt_rm_tree(f->state);
	return 0;
}

static json_t *
get_info(int port)
{
	char url[128];
	char *body = NULL;
	json_t *j;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/info", port);
	if (vt_http_get(url, &body, 5000) != 200) {
		free(body);
		return NULL;
	}
	j = json_loads(body, 0, NULL);
	free(body);
	return j;
}

static long long
info_int(int port, const char *key)
{
	json_t *j = get_info(port);
	long long v = j ? json_integer_value(json_object_get(j, key)) : -1;

	json_decref(j);
	return v;
}

static void
show_console(struct fixture *f, const char *service, int index)
{
	char path[512], line[256];
	FILE *c;

	snprintf(path, sizeof(path), "%s/libvirt/vd-%s-%d/console.log", f->state, service, index);
	if (!(c = fopen(path, "r")))
		return;
	fprintf(stderr, "--- %s\n", path);
	while (fgets(line, sizeof(line), c))
		fputs(line, stderr);
	fclose(c);
}

static void
create_start(struct fixture *f, struct vd_service *svc, int index, int slot)
{
	struct vd_error err = VD_ERROR_INIT;
	struct vd_labels l = { svc->name, index, "hash0", "itest", NULL };
	struct vd_replica r;

	if (vd_driver_create(f->d, svc, &l, &r, &err) < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(r.state, VD_STATE_CREATED);
	assert_true(r.host_port > 0);
	f->ids[slot] = strdup(r.id);
	f->ports[slot] = r.host_port;
	vd_replica_clear(&r);
	if (vd_driver_start(f->d, f->ids[slot], &err) < 0)
		fail_msg("%s", err.msg);
}

/* Poll /info until KEY satisfies the test or 30 s pass; the guest's view
 * of a hot-plugged CPU or a balloon change takes a moment. */
static long long
wait_info(int port, const char *key, long long lo, long long hi)
{
	long long v = -1;

	for (int i = 0; i < 150; i++) {
		v = info_int(port, key);
		if (v >= lo && v <= hi)
			break;
		usleep(200 * 1000);
	}
	return v;
}

static void
test_boot_three(void **state)
{
	struct fixture *f = *state;
	const char *names[3] = { f->svc_name, f->svc_name, f->disk_name };
	int index[3] = { 0, 1, 0 };

	create_start(f, &f->svc, 0, 0);
	create_start(f, &f->svc, 1, 1);
	create_start(f, &f->dsvc, 0, 2);
	for (int i = 0; i < 3; i++) {
		char url[128], want[64];
		json_t *info;
		long long mem;

		snprintf(url, sizeof(url), "http://127.0.0.1:%d/ping", f->ports[i]);
		if (vt_wait_http(url, BOOT_SECONDS) != 0)
			show_console(f, names[i], index[i]);
		assert_int_equal(vt_wait_http(url, 1), 0);
		info = get_info(f->ports[i]);
		assert_non_null(info);
		snprintf(want, sizeof(want), "vd-%s-%d", names[i], index[i]);
		assert_string_equal(json_string_value(json_object_get(info, "id")), want);
		assert_string_equal(json_string_value(json_object_get(info, "model")),
				    i < 2 ? "async" : "sync");
		assert_int_equal(json_integer_value(json_object_get(info, "online_cpus")), 1);
		json_decref(info);
		/* the balloon's size, less what the kernel keeps; the guest boots
		 * seeing the ceiling until its balloon driver inflates */
		mem = wait_info(f->ports[i], "mem_total_bytes", (i < 2 ? 256 : 192) * MiB / 2,
				(i < 2 ? 256 : 192) * MiB);
		assert_true(mem <= (i < 2 ? 256 : 192) * MiB);
		assert_true(mem > (i < 2 ? 256 : 192) * MiB / 2);
	}
}

static void
test_resize_live(void **state)
{
	struct fixture *f = *state;
	struct vd_error err = VD_ERROR_INIT;
	struct vd_replica before, after;
	long long pid = info_int(f->ports[0], "pid"), up = info_int(f->ports[0], "uptime_ms");
	long long v;

	assert_int_equal(vd_driver_inspect(f->d, f->ids[0], &before, &err), 0);
	assert_true(before.started_ns > 0);

	/* up: 1 -> 2 vCPUs and 256 -> 384 MiB */
	if (vd_driver_resize(f->d, f->ids[0], 2000, 384 * MiB, &err) < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(wait_info(f->ports[0], "online_cpus", 2, 2), 2);
	v = wait_info(f->ports[0], "mem_total_bytes", 300 * MiB, 384 * MiB);
	assert_true(v > 300 * MiB && v <= 384 * MiB);

	/* down: 1.5 cpus, 160 MiB */
	if (vd_driver_resize(f->d, f->ids[0], 1500, 160 * MiB, &err) < 0)
		fail_msg("%s", err.msg);
	v = wait_info(f->ports[0], "mem_total_bytes", 1, 160 * MiB);
	assert_true(v > 0 && v <= 160 * MiB);

	assert_int_equal(vd_driver_inspect(f->d, f->ids[0], &after, &err), 0);
	assert_int_equal(after.milli_cpus, 1500);
	assert_int_equal(after.memory_bytes, 160 * MiB);
	/* no reboot: the same server process, still counting up */
	assert_true(after.started_ns == before.started_ns);
	assert_int_equal(info_int(f->ports[0], "pid"), pid);
	assert_true(info_int(f->ports[0], "uptime_ms") > up);
	vd_replica_clear(&before);
	vd_replica_clear(&after);

	/* above the ceiling it was made with (2 x 256 MiB, 2 vCPUs) */
	assert_int_equal(vd_driver_resize(f->d, f->ids[0], 1000, 1024 * MiB, &err), -1);
	assert_non_null(strstr(err.msg, "ceiling"));
	assert_non_null(strstr(err.msg, "replaced"));
	assert_int_equal(vd_driver_resize(f->d, f->ids[0], 3000, 256 * MiB, &err), -1);
	assert_non_null(strstr(err.msg, "vCPUs"));
}

static void
test_stats(void **state)
{
	struct fixture *f = *state;
	struct vd_error err = VD_ERROR_INIT;
	struct vd_stats st;

	if (vd_driver_stats(f->d, f->ids[1], &st, &err) < 0)
		fail_msg("%s", err.msg);
	assert_true(st.cpu_time_ns > 0);
	assert_true(st.memory_usage > 0);
	assert_int_equal(st.memory_limit, 256 * MiB);
	assert_true(st.cpu_percent >= 0);
}

/* The disk replica stopped and started again: its overlay, in a directory
 * QEMU's user cannot enter, is handed to libvirt again at each start. */
static void
test_disk_restart(void **state)
{
	struct fixture *f = *state;
	struct vd_error err = VD_ERROR_INIT;
	struct vd_replica r;
	char url[128];

	if (vd_driver_stop(f->d, f->ids[2], 0, &err) < 0)
		fail_msg("%s", err.msg);
	assert_int_equal(vd_driver_inspect(f->d, f->ids[2], &r, &err), 0);
	assert_int_equal(r.state, VD_STATE_EXITED);
	vd_replica_clear(&r);
	if (vd_driver_start(f->d, f->ids[2], &err) < 0)
		fail_msg("%s", err.msg);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/ping", f->ports[2]);
	if (vt_wait_http(url, BOOT_SECONDS) != 0)
		show_console(f, f->disk_name, 0);
	assert_int_equal(vt_wait_http(url, 1), 0);
	assert_int_equal(info_int(f->ports[2], "workers"), 2);
}

static void
test_stranger_untouched(void **state)
{
	struct fixture *f = *state;
	struct vd_error err = VD_ERROR_INIT;
	struct vd_replica_list l = { 0 };
	char xml[1024], uuid[VIR_UUID_STRING_BUFLEN];

	snprintf(xml, sizeof(xml),
		 "<domain type='qemu'><name>vd-%s-9</name><memory unit='MiB'>64</memory>"
		 "<vcpu>1</vcpu><os><type arch='x86_64' machine='pc'>hvm</type></os></domain>",
		 f->svc_name);
	f->stranger = virDomainDefineXML(f->conn, xml);
	assert_non_null(f->stranger);
	assert_int_equal(virDomainGetUUIDString(f->stranger, uuid), 0);

	assert_int_equal(vd_driver_list(f->d, f->svc_name, &l, &err), 0);
	assert_int_equal(l.n, 2);
	for (size_t i = 0; i < l.n; i++) {
		assert_int_equal(l.v[i].labels.index, (int)i);
		assert_string_not_equal(l.v[i].id, uuid);
	}
	vd_replica_list_clear(&l);
	assert_int_equal(vd_driver_remove(f->d, uuid, &err), -1);
	assert_non_null(strstr(err.msg, "does not carry vdctl's metadata"));
	assert_int_equal(vd_driver_start(f->d, uuid, &err), -1);
	assert_int_equal(virDomainIsPersistent(f->stranger), 1);
	assert_int_equal(virDomainIsActive(f->stranger), 0);
}

static void
test_graceful_stop_event(void **state)
{
	struct fixture *f = *state;
	struct vd_error err = VD_ERROR_INIT;
	struct vd_replica r;
	struct vd_event ev;
	struct pollfd pfd = { .events = POLLIN };
	char path[512], line[256];
	bool died = false, graceful = false;
	time_t deadline;
	FILE *c;

	pfd.fd = vd_driver_events_open(f->d, &err);
	assert_true(pfd.fd >= 0);
	if (vd_driver_stop(f->d, f->ids[1], 20, &err) < 0)
		fail_msg("%s", err.msg);
	deadline = time(NULL) + 30;
	while (!died && time(NULL) < deadline) {
		poll(&pfd, 1, 1000);
		while (vd_driver_events_read(f->d, &ev, &err) == 1)
			died |= ev.kind == VD_EVENT_DIE && strcmp(ev.service, f->svc_name) == 0 &&
				ev.index == 1;
	}
	assert_true(died);
	assert_int_equal(vd_driver_inspect(f->d, f->ids[1], &r, &err), 0);
	assert_int_equal(r.state, VD_STATE_EXITED);
	vd_replica_clear(&r);

	/* the guest's workload was asked to stop, not cut off */
	snprintf(path, sizeof(path), "%s/libvirt/vd-%s-1/console.log", f->state, f->svc_name);
	c = fopen(path, "r");
	assert_non_null(c);
	while (fgets(line, sizeof(line), c))
		graceful |= strstr(line, "exited with status 0") != NULL;
	fclose(c);
	assert_true(graceful);
}

static void
test_bad_kernel(void **state)
{
	struct fixture *f = *state;
	struct vd_error err = VD_ERROR_INIT;
	struct vd_service svc = f->svc;
	struct vd_labels l = { f->svc_name, 5, "hash0", "itest", NULL };
	struct vd_replica r;
	int rc;

	svc.vm.kernel = "/nonexistent/vmlinuz";
	rc = vd_driver_create(f->d, &svc, &l, &r, &err);
	if (rc == 0) {
		char *id = strdup(r.id);

		vd_replica_clear(&r);
		rc = vd_driver_start(f->d, id, &err);
		free(id);
	}
	assert_int_equal(rc, -1);
	assert_non_null(strstr(err.msg, "vd-"));
	assert_non_null(strstr(err.msg, "-5"));
	assert_non_null(strstr(err.msg, "/nonexistent/vmlinuz"));
}

/*
 * A word holding what QEMU's option parser (commas), XML (quotes, markup)
 * and the guest's shell (quotes, $, backquotes, a backslash) treat specially
 * reaches the guest whole: /init echoes the words it starts /svc with, and
 * /svc, which takes no such argument, names it and exits (the VM powers off).
 */
static void
test_odd_argument(void **state)
{
	struct fixture *f = *state;
	static char odd[] = "a,b,,c 'q' \"d\" & <x> $HOME `id` \\";
	char *cmd[] = { "/svc", "--model", "async", odd };
	struct vd_service svc = f->svc;
	char started[128], named[128], path[512], line[512];
	bool seen_start = false, seen_name = false;
	time_t deadline = time(NULL) + BOOT_SECONDS;

	svc.command = cmd;
	svc.ncommand = 4;
	create_start(f, &svc, 7, 3);
	snprintf(started, sizeof(started), "vdctl-guest: starting /svc --model async %s\r", odd);
	snprintf(named, sizeof(named), "svc: unexpected argument '%s'\r", odd);
	snprintf(path, sizeof(path), "%s/libvirt/vd-%s-7/console.log", f->state, f->svc_name);
	while (!seen_name && time(NULL) < deadline) {
		FILE *c = fopen(path, "r");

		while (c && fgets(line, sizeof(line), c)) {
			seen_start |= strstr(line, started) != NULL;
			seen_name |= strstr(line, named) != NULL;
		}
		if (c)
			fclose(c);
		if (!seen_name)
			sleep(1);
	}
	if (!seen_start || !seen_name)
		show_console(f, f->svc_name, 7);
	assert_true(seen_start);
	assert_true(seen_name);
}

/* A newline cannot pass (the guest reads one line of words): refused before
 * anything is made. */
static void
test_newline_refused(void **state)
{
	struct fixture *f = *state;
	struct vd_error err = VD_ERROR_INIT;
	char *cmd[] = { "/svc", "--model", "async\nsync" };
	char *env[] = { "NOTE=one\ntwo" };
	struct vd_service svc = f->svc;
	struct vd_labels l = { f->svc_name, 8, "hash0", "itest", NULL };
	struct vd_replica r;
	char path[512];
	struct stat st;

	svc.command = cmd;
	svc.ncommand = 3;
	assert_int_equal(vd_driver_create(f->d, &svc, &l, &r, &err), -1);
	assert_int_equal(err.code, VD_EXIT_INPUT);
	assert_non_null(strstr(err.msg, "word 3 of the command"));
	svc = f->svc;
	svc.env = env;
	svc.nenv = 1;
	assert_int_equal(vd_driver_create(f->d, &svc, &l, &r, &err), -1);
	assert_int_equal(err.code, VD_EXIT_INPUT);
	assert_non_null(strstr(err.msg, "'NOTE'"));
	snprintf(path, sizeof(path), "%s/libvirt/vd-%s-8", f->state, f->svc_name);
	assert_int_equal(stat(path, &st), -1);
	snprintf(path, sizeof(path), "vd-%s-8", f->svc_name);
	assert_null(virDomainLookupByName(f->conn, path));
}

static void
test_remove_leaves_nothing(void **state)
{
	struct fixture *f = *state;
	struct vd_error err = VD_ERROR_INIT;
	struct vd_replica_list l = { 0 };
	char path[512];
	struct stat st;

	remove_service(f, f->svc_name);
	remove_service(f, f->disk_name);
	assert_int_equal(vd_driver_list(f->d, f->svc_name, &l, &err), 0);
	assert_int_equal(l.n, 0);
	assert_int_equal(vd_driver_list(f->d, f->disk_name, &l, &err), 0);
	assert_int_equal(l.n, 0);
	for (int i = 0; i < 4; i++) {
		virDomainPtr dom = f->ids[i] ? virDomainLookupByUUIDString(f->conn, f->ids[i]) : NULL;

		assert_null(dom);
	}
	/* no overlay, console log or guest files */
	snprintf(path, sizeof(path), "%s/libvirt/vd-%s-0", f->state, f->disk_name);
	assert_int_equal(stat(path, &st), -1);
	snprintf(path, sizeof(path), "%s/libvirt/vd-%s-1/console.log", f->state, f->svc_name);
	assert_int_equal(stat(path, &st), -1);
	/* the stranger is still there */
	assert_int_equal(virDomainIsPersistent(f->stranger), 1);
}

static void
test_unreachable(void **state)
{
	struct vd_error err = VD_ERROR_INIT;
	struct vd_driver_config cfg = {
		.endpoint = "qemu+unix:///system?socket=/nonexistent/libvirt-sock",
		.state_dir = "/tmp",
	};
	struct vd_driver *d = NULL;

	(void)state;
	assert_int_equal(vd_driver_open(&vd_libvirt_driver, &cfg, &d, &err), -1);
	assert_int_equal(err.code, VD_EXIT_ENGINE);
	assert_non_null(strstr(err.msg, "/nonexistent/libvirt-sock"));
	assert_non_null(strstr(err.msg, "make setup"));
}

/*
 * libxml2 prints some warnings on stderr by itself: parsing a missing file
 * (the test driver's test:///PATH parses PATH in this process) gave "I/O
 * warning : failed to load external entity". Nothing reaches stderr now;
 * libvirt's error, naming the file, comes back in err.
 */
static void
test_libxml_quiet(void **state)
{
	struct vd_error err = VD_ERROR_INIT;
	struct vd_driver_config cfg = {
		.endpoint = "test:///nonexistent/vdctl-itest.xml",
		.state_dir = "/tmp",
	};
	struct vd_driver *d = NULL;
	char path[] = "/tmp/vdctl-itest-stderr-XXXXXX", out[4096] = "";
	int fd = mkstemp(path), saved, rc;
	ssize_t n;

	(void)state;
	assert_true(fd >= 0);
	unlink(path);
	fflush(stderr);
	saved = dup(2);
	assert_true(saved >= 0);
	dup2(fd, 2);
	rc = vd_driver_open(&vd_libvirt_driver, &cfg, &d, &err);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	n = pread(fd, out, sizeof(out) - 1, 0);
	close(fd);
	out[n > 0 ? n : 0] = '\0';
	assert_int_equal(rc, -1);
	assert_non_null(strstr(err.msg, "/nonexistent/vdctl-itest.xml"));
	if (out[0])
		fprintf(stderr, "--- on stderr:\n%s", out);
	assert_string_equal(out, "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_boot_three),
		cmocka_unit_test(test_resize_live),
		cmocka_unit_test(test_stats),
		cmocka_unit_test(test_disk_restart),
		cmocka_unit_test(test_stranger_untouched),
		cmocka_unit_test(test_graceful_stop_event),
		cmocka_unit_test(test_bad_kernel),
		cmocka_unit_test(test_odd_argument),
		cmocka_unit_test(test_newline_refused),
		cmocka_unit_test(test_remove_leaves_nothing),
		cmocka_unit_test(test_unreachable),
		cmocka_unit_test(test_libxml_quiet),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
