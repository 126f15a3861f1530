/*
 * The example image under the real dockerd: a container made from
 * vdctl/example-svc:latest with limits answers /ping and /info through a port
 * published on 127.0.0.1, and sees its limits from inside.
 *
 * This talks to the Engine API directly; the Docker driver has its own tests.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vd/labels.h"
#include "vdtest.h"

#define IMAGE "vdctl/example-svc:latest"

struct fixture {
	char name[64];
	char id[128];
	char url[128];
};

static int
setup(void **state)
{
	static struct fixture f;
	json_t *reply = NULL;
	char body[2048], path[256];
	long status;

	memset(&f, 0, sizeof(f));
	snprintf(f.name, sizeof(f.name), "vd-itest-%d-0", (int)getpid());
	if (vt_docker("GET", "/images/" IMAGE "/json", NULL, NULL) != 200) {
		fprintf(stderr, "image %s is missing: run 'make images'\n", IMAGE);
		return -1;
	}
	snprintf(body, sizeof(body),
		 "{\"Image\":\"%s\",\"Cmd\":[\"/svc\",\"--model\",\"async\"],"
		 "\"Env\":[\"PORT=8080\",\"REPLICA_ID=%s\"],"
		 "\"Labels\":{\"" VD_LABEL_MANAGED "\":\"true\",\"" VD_LABEL_SERVICE
		 "\":\"itest\",\"" VD_LABEL_INDEX "\":\"0\"},"
		 "\"ExposedPorts\":{\"8080/tcp\":{}},"
		 "\"HostConfig\":{\"Memory\":67108864,\"MemorySwap\":67108864,"
		 "\"NanoCpus\":500000000,\"PortBindings\":{\"8080/tcp\":"
		 "[{\"HostIp\":\"127.0.0.1\",\"HostPort\":\"\"}]}}}",
		 IMAGE, f.name);
	snprintf(path, sizeof(path), "/containers/create?name=%s", f.name);
	status = vt_docker("POST", path, body, &reply);
	if (status != 201 || !reply) {
		fprintf(stderr, "create: %ld\n", status);
		json_decref(reply);
		return -1;
	}
	snprintf(f.id, sizeof(f.id), "%s", json_string_value(json_object_get(reply, "Id")));
	json_decref(reply);
	*state = &f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char path[256];

	snprintf(path, sizeof(path), "/containers/%s?force=1&v=1", f->id);
	vt_docker("DELETE", path, NULL, NULL);
	return 0;
}

static const char *
published_port(const char *id)
{
	static char port[16];
	json_t *reply = NULL, *b;
	char path[256];

	snprintf(path, sizeof(path), "/containers/%s/json", id);
	if (vt_docker("GET", path, NULL, &reply) != 200)
		return NULL;
	b = json_object_get(json_object_get(json_object_get(reply, "NetworkSettings"),
					    "Ports"), "8080/tcp");
	b = json_array_get(b, 0);
	snprintf(port, sizeof(port), "%s", json_string_value(json_object_get(b, "HostPort")));
	assert_string_equal(json_string_value(json_object_get(b, "HostIp")), "127.0.0.1");
	json_decref(reply);
	return port;
}

static void
test_image_serves_with_limits(void **state)
{
	struct fixture *f = *state;
	json_t *info;
	char path[256], url[256];
	char *body = NULL;
	const char *port;

	snprintf(path, sizeof(path), "/containers/%s/start", f->id);
	assert_int_equal(vt_docker("POST", path, NULL, NULL), 204);
	port = published_port(f->id);
	assert_non_null(port);

	snprintf(url, sizeof(url), "http://127.0.0.1:%s/ping", port);
	assert_int_equal(vt_wait_http(url, 30), 0);

	snprintf(url, sizeof(url), "http://127.0.0.1:%s/info", port);
	assert_int_equal(vt_http_get(url, &body, 5000), 200);
	info = json_loads(body, 0, NULL);
	free(body);
	assert_non_null(info);
	assert_string_equal(json_string_value(json_object_get(info, "model")), "async");
	assert_string_equal(json_string_value(json_object_get(info, "id")), f->name);
	assert_int_equal(json_integer_value(json_object_get(info, "cgroup_memory_limit_bytes")),
			 67108864);
	assert_true(json_number_value(json_object_get(info, "cgroup_cpu_limit")) > 0.49);
	assert_true(json_number_value(json_object_get(info, "cgroup_cpu_limit")) < 0.51);
	assert_true(json_integer_value(json_object_get(info, "online_cpus")) >= 1);
	json_decref(info);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_image_serves_with_limits, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
