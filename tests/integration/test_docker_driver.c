/*
 * The Docker driver against the real dockerd: three replicas of the example
 * image with limits, seen from inside and in inspect; a live resize without
 * a restart; stats; an OOM kill seen as an event and in inspect; removal
 * that leaves nothing; a container without vdctl's labels left alone; and an
 * unreachable engine as a quick exit-3 error.
 */
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vd/driver.h"
#include "vd/labels.h"
#include "vd/manifest.h"
#include "vdtest.h"

#define NREPLICAS 3
#define MiB (1024 * 1024)

struct fixture {
	struct vd_driver *d;
	char service[40];
	struct vd_service svc;
	char *ids[NREPLICAS];
	int ports[NREPLICAS];
	char stranger[128]; /* a container without vdctl's labels */
};

static char *command[] = { "/svc", "--model", "async" };

static void
remove_all(struct fixture *f)
{
	struct vd_error err = VD_ERROR_INIT;
	struct vd_replica_list l = { 0 };

	if (vd_driver_list(f->d, f->service, &l, &err) == 0)
		for (size_t i = 0; i < l.n; i++)
			vd_driver_remove(f->d, l.v[i].id, &err);
	vd_replica_list_clear(&l);
}

static int
group_setup(void **state)
{
	static struct fixture f;
	struct vd_error err = VD_ERROR_INIT;

	memset(&f, 0, sizeof(f));
	snprintf(f.service, sizeof(f.service), "itest-dk%d", (int)getpid() % 100000);
	if (vd_driver_open(&vd_docker_driver, NULL, &f.d, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		return -1;
	}
	f.svc.name = f.service;
	f.svc.backend = VD_BACKEND_DOCKER;
	f.svc.image = "vdctl/example-svc:latest";
	f.svc.command = command;
	f.svc.ncommand = 3;
	f.svc.port = 8080;
	f.svc.replicas = NREPLICAS;
	f.svc.milli_cpus = 500;
	f.svc.memory_bytes = 64 * MiB;
	*state = &f;
	return 0;
}

static int
group_teardown(void **state)
{
	struct fixture *f = *state;
	char path[256];

	remove_all(f);
	if (f->stranger[0]) {
		snprintf(path, sizeof(path), "/containers/%s?force=1", f->stranger);
		vt_docker("DELETE", path, NULL, NULL);
	}
	for (int i = 0; i < NREPLICAS; i++)
		free(f->ids[i]);
	vd_driver_close(f->d);
	return 0;
}

static json_t *
get_info(int port)
{
	char url[128];
	char *body = NULL;
	json_t *j;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/info", port);
	assert_int_equal(vt_http_get(url, &body, 5000), 200);
	j = json_loads(body, 0, NULL);
	free(body);
	assert_non_null(j);
	return j;
}

static void
test_create_with_limits(void **state)
{
	struct fixture *f = *state;
	struct vd_error err = VD_ERROR_INIT;
	char url[128];

	for (int i = 0; i < NREPLICAS; i++) {
		struct vd_labels l = { f->service, i, "hash0", "itest", NULL };
		struct vd_replica r;

		assert_int_equal(vd_driver_create(f->d, &f->svc, &l, &r, &err), 0);
		assert_int_equal(r.state, VD_STATE_CREATED);
		f->ids[i] = strdup(r.id);
		vd_replica_clear(&r);
		assert_int_equal(vd_driver_start(f->d, f->ids[i], &err), 0);
		assert_int_equal(vd_driver_inspect(f->d, f->ids[i], &r, &err), 0);
		assert_int_equal(r.state, VD_STATE_RUNNING);
		assert_int_equal(r.milli_cpus, 500);
		assert_int_equal(r.memory_bytes, 64 * MiB);
		assert_string_equal(r.labels.service, f->service);
		assert_int_equal(r.labels.index, i);
		assert_string_equal(r.labels.spec_hash, "hash0");
		assert_string_equal(r.host, "127.0.0.1");
		assert_true(r.host_port > 0);
		f->ports[i] = r.host_port;
		vd_replica_clear(&r);
	}
	for (int i = 0; i < NREPLICAS; i++) {
		json_t *info;

		snprintf(url, sizeof(url), "http://127.0.0.1:%d/ping", f->ports[i]);
		assert_int_equal(vt_wait_http(url, 30), 0);
		info = get_info(f->ports[i]);
		assert_int_equal(json_integer_value(json_object_get(info,
				 "cgroup_memory_limit_bytes")), 64 * MiB);
		assert_true(json_real_value(json_object_get(info, "cgroup_cpu_limit")) > 0.49);
		assert_true(json_real_value(json_object_get(info, "cgroup_cpu_limit")) < 0.51);
		assert_string_equal(json_string_value(json_object_get(info, "model")), "async");
		json_decref(info);
	}
}

static void
test_list_is_ours_only(void **state)
{
	struct fixture *f = *state;
	struct vd_error err = VD_ERROR_INIT;
	struct vd_replica_list l = { 0 };
	json_t *reply = NULL;
	char body[512], path[256];
	bool seen;

	/* a stranger named like a replica, labelled like one but for "managed" */
	snprintf(body, sizeof(body),
		 "{\"Image\":\"vdctl/example-svc:latest\",\"Labels\":{\"" VD_LABEL_SERVICE
		 "\":\"%s\",\"" VD_LABEL_INDEX "\":\"9\"}}", f->service);
	snprintf(path, sizeof(path), "/containers/create?name=vd-%s-9", f->service);
	assert_int_equal(vt_docker("POST", path, body, &reply), 201);
	snprintf(f->stranger, sizeof(f->stranger), "%s",
		 json_string_value(json_object_get(reply, "Id")));
	json_decref(reply);

	assert_int_equal(vd_driver_list(f->d, f->service, &l, &err), 0);
	assert_int_equal(l.n, NREPLICAS);
	for (size_t i = 0; i < l.n; i++) {
		assert_int_equal(l.v[i].labels.index, (int)i);
		assert_string_not_equal(l.v[i].id, f->stranger);
	}
	vd_replica_list_clear(&l);
	assert_int_equal(vd_driver_list(f->d, NULL, &l, &err), 0);
	seen = false;
	for (size_t i = 0; i < l.n; i++)
		seen |= strcmp(l.v[i].id, f->stranger) == 0;
	assert_false(seen);
	vd_replica_list_clear(&l);

	assert_int_equal(vd_driver_remove(f->d, f->stranger, &err), -1);
	assert_non_null(strstr(err.msg, "does not carry vdctl's labels"));
	assert_int_equal(vd_driver_stop(f->d, f->stranger, 1, &err), -1);
	assert_int_equal(vd_driver_resize(f->d, f->stranger, 100, 32 * MiB, &err), -1);
	snprintf(path, sizeof(path), "/containers/%s/json", f->stranger);
	assert_int_equal(vt_docker("GET", path, NULL, NULL), 200);
}

static void
test_resize_live(void **state)
{
	struct fixture *f = *state;
	struct vd_error err = VD_ERROR_INIT;
	struct vd_replica before, after;
	json_t *info;

	assert_int_equal(vd_driver_inspect(f->d, f->ids[1], &before, &err), 0);
	assert_int_equal(vd_driver_resize(f->d, f->ids[1], 1500, 96 * MiB, &err), 0);
	assert_int_equal(vd_driver_inspect(f->d, f->ids[1], &after, &err), 0);
	assert_int_equal(after.state, VD_STATE_RUNNING);
	assert_int_equal(after.milli_cpus, 1500);
	assert_int_equal(after.memory_bytes, 96 * MiB);
	/* the same process: not restarted */
	assert_true(before.started_ns > 0);
	assert_true(before.started_ns == after.started_ns);
	vd_replica_clear(&before);
	vd_replica_clear(&after);

	info = get_info(f->ports[1]);
	assert_int_equal(json_integer_value(json_object_get(info, "cgroup_memory_limit_bytes")),
			 96 * MiB);
	assert_true(json_real_value(json_object_get(info, "cgroup_cpu_limit")) > 1.49);
	assert_true(json_real_value(json_object_get(info, "cgroup_cpu_limit")) < 1.51);
	json_decref(info);
}

static void
test_stats_under_limit(void **state)
{
	struct fixture *f = *state;
	struct vd_error err = VD_ERROR_INIT;
	struct vd_stats st;

	assert_int_equal(vd_driver_stats(f->d, f->ids[0], &st, &err), 0);
	assert_int_equal(st.memory_limit, 64 * MiB);
	assert_true(st.memory_usage > 0);
	assert_true(st.memory_usage < st.memory_limit);
	assert_true(st.cpu_time_ns > 0);
	assert_true(st.cpu_percent >= 0);
}

static void
test_oom_is_seen(void **state)
{
	struct fixture *f = *state;
	struct vd_error err = VD_ERROR_INIT;
	struct vd_replica r;
	struct vd_event ev;
	struct pollfd pfd;
	char url[128];
	bool oom = false, died = false;
	time_t deadline;

	pfd.fd = vd_driver_events_open(f->d, &err);
	assert_true(pfd.fd >= 0);
	pfd.events = POLLIN;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/alloc?mb=256", f->ports[2]);
	vt_http_get(url, NULL, 10000); /* the replica dies answering */

	deadline = time(NULL) + 30;
	while (!(oom && died) && time(NULL) < deadline) {
		int got;

		poll(&pfd, 1, 1000);
		while ((got = vd_driver_events_read(f->d, &ev, &err)) == 1) {
			if (strcmp(ev.service, f->service) != 0 || ev.index != 2)
				continue;
			oom |= ev.kind == VD_EVENT_OOM;
			died |= ev.kind == VD_EVENT_DIE;
		}
		assert_int_equal(got, 0);
	}
	assert_true(oom);
	assert_true(died);
	assert_int_equal(vd_driver_inspect(f->d, f->ids[2], &r, &err), 0);
	assert_true(r.oom_killed);
	assert_int_equal(r.state, VD_STATE_EXITED);
	vd_replica_clear(&r);
}

static void
test_remove_leaves_nothing(void **state)
{
	struct fixture *f = *state;
	struct vd_error err = VD_ERROR_INIT;
	struct vd_replica_list l = { 0 };
	char path[256];

	for (int i = 0; i < NREPLICAS; i++)
		assert_int_equal(vd_driver_remove(f->d, f->ids[i], &err), 0);
	assert_int_equal(vd_driver_list(f->d, f->service, &l, &err), 0);
	assert_int_equal(l.n, 0);
	for (int i = 0; i < NREPLICAS; i++) {
		snprintf(path, sizeof(path), "/containers/%s/json", f->ids[i]);
		assert_int_equal(vt_docker("GET", path, NULL, NULL), 404);
	}
	/* removing what is gone is not an error */
	assert_int_equal(vd_driver_remove(f->d, f->ids[0], &err), 0);
}

static void
test_missing_image(void **state)
{
	struct fixture *f = *state;
	struct vd_error err = VD_ERROR_INIT;
	struct vd_service svc = f->svc;
	struct vd_labels l = { f->service, 7, "hash0", "itest", NULL };
	struct vd_replica r;

	svc.image = "vdctl/no-such-image:latest";
	assert_int_equal(vd_driver_create(f->d, &svc, &l, &r, &err), -1);
	assert_int_equal(err.code, VD_EXIT_FAILURE);
	assert_non_null(strstr(err.msg, "create vd-"));
	assert_non_null(strstr(err.msg, "make images"));
}

static void
test_unreachable_engine(void **state)
{
	struct vd_error err = VD_ERROR_INIT;
	struct vd_driver_config cfg = { .endpoint = "unix:///nonexistent/docker.sock" };
	struct vd_driver *d = NULL;
	char tcp[64];

	(void)state;
	assert_int_equal(vd_driver_open(&vd_docker_driver, &cfg, &d, &err), -1);
	assert_int_equal(err.code, VD_EXIT_ENGINE);
	assert_non_null(strstr(err.msg, "unix:///nonexistent/docker.sock"));
	assert_non_null(strstr(err.msg, "make setup"));

	/* nothing listens there: refused at once, not a hang */
	snprintf(tcp, sizeof(tcp), "tcp://127.0.0.1:%d", vt_free_port());
	cfg.endpoint = tcp;
	cfg.timeout_ms = 2000;
	vd_error_clear(&err);
	assert_int_equal(vd_driver_open(&vd_docker_driver, &cfg, &d, &err), -1);
	assert_int_equal(err.code, VD_EXIT_ENGINE);

	/* a socket that takes the connection and never answers: the call
	 * timeout ends it */
	{
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		char ep[128];
		int lfd = socket(AF_UNIX, SOCK_STREAM, 0);

		snprintf(sa.sun_path, sizeof(sa.sun_path), "/tmp/vd-itest-mute-%d.sock",
			 (int)getpid());
		unlink(sa.sun_path);
		assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
		assert_int_equal(listen(lfd, 4), 0);
		snprintf(ep, sizeof(ep), "unix://%s", sa.sun_path);
		cfg.endpoint = ep;
		cfg.timeout_ms = 500;
		vd_error_clear(&err);
		assert_int_equal(vd_driver_open(&vd_docker_driver, &cfg, &d, &err), -1);
		assert_int_equal(err.code, VD_EXIT_ENGINE);
		assert_non_null(strstr(err.msg, "timed out"));
		close(lfd);
		unlink(sa.sun_path);
	}

	cfg.endpoint = "http://example";
	assert_int_equal(vd_driver_open(&vd_docker_driver, &cfg, &d, &err), -1);
	assert_int_equal(err.code, VD_EXIT_INPUT);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_with_limits),
		cmocka_unit_test(test_list_is_ours_only),
		cmocka_unit_test(test_resize_live),
		cmocka_unit_test(test_stats_under_limit),
		cmocka_unit_test(test_oom_is_seen),
		cmocka_unit_test(test_remove_leaves_nothing),
		cmocka_unit_test(test_missing_image),
		cmocka_unit_test(test_unreachable_engine),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
