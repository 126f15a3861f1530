/*
 * The floor for `vdctl apply`: N containers of an image created and started
 * straight through the Engine API, 8 calls at once, then polled until each
 * answers /ping on its published 127.0.0.1 port. Prints the seconds taken.
 *
 *   raw_apply up NAME_PREFIX IMAGE N    make them, wait for /ping
 *   raw_apply down NAME_PREFIX N        remove them
 *   raw_apply wait PORT...              poll 127.0.0.1:PORT/ping until all
 *                                       answer (for compose's replicas)
 *
 * Only for tests/bench/apply.sh; it touches only containers it named.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PARALLEL 8

static const char *prefix, *image;
static int total, next_i;
static int ports[1000];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

struct buf {
	char *p;
	size_t n;
};

static size_t
sink(char *d, size_t s, size_t n, void *u)
{
	struct buf *b = u;
	char *p = realloc(b->p, b->n + s * n + 1);

	if (!p)
		return 0;
	memcpy(p + b->n, d, s * n);
	b->p = p;
	b->n += s * n;
	p[b->n] = '\0';
	return s * n;
}

static long
call(CURL *c, const char *method, const char *path, const char *body, json_t **reply)
{
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	struct buf b = { NULL, 0 };
	char url[512];
	long status = -1;

	snprintf(url, sizeof(url), "http://docker/v1.41%s", path);
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, "/var/run/docker.sock");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (reply)
		*reply = b.p ? json_loads(b.p, 0, NULL) : NULL;
	free(b.p);
	curl_slist_free_all(h);
	return status;
}

static void *
up_worker(void *arg)
{
	CURL *c = curl_easy_init();
	char path[256], body[1024];
	json_t *j;

	(void)arg;
	for (;;) {
		int i;

		pthread_mutex_lock(&lock);
		i = next_i++;
		pthread_mutex_unlock(&lock);
		if (i >= total)
			break;
		snprintf(body, sizeof(body),
			 "{\"Image\":\"%s\",\"Cmd\":[\"/svc\",\"--model\",\"sync\",\"--workers\","
			 "\"2\"],\"ExposedPorts\":{\"8080/tcp\":{}},\"HostConfig\":{\"Memory\":"
			 "33554432,\"MemorySwap\":33554432,\"NanoCpus\":50000000,\"PortBindings\":"
			 "{\"8080/tcp\":[{\"HostIp\":\"127.0.0.1\",\"HostPort\":\"\"}]}}}", image);
		snprintf(path, sizeof(path), "/containers/create?name=%s-%d", prefix, i);
		if (call(c, "POST", path, body, NULL) != 201)
			fprintf(stderr, "create %s-%d failed\n", prefix, i);
		snprintf(path, sizeof(path), "/containers/%s-%d/start", prefix, i);
		call(c, "POST", path, NULL, NULL);
		snprintf(path, sizeof(path), "/containers/%s-%d/json", prefix, i);
		if (call(c, "GET", path, NULL, &j) == 200) {
			json_t *p = json_array_get(json_object_get(json_object_get(json_object_get(
				j, "NetworkSettings"), "Ports"), "8080/tcp"), 0);

			ports[i] = atoi(json_string_value(json_object_get(p, "HostPort")));
		}
		json_decref(j);
	}
	curl_easy_cleanup(c);
	return NULL;
}

static int
ping(CURL *c, int port)
{
	char url[64];
	long status = 0;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/ping", port);
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 1000L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
	struct buf b = { NULL, 0 };
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	free(b.p);
	return status == 200;
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	pthread_t t[PARALLEL];
	double t0 = now();
	CURL *c;

	if (argc < 3 || (strcmp(argv[1], "up") == 0 && argc < 5) ||
	    (strcmp(argv[1], "down") == 0 && argc < 4)) {
		fprintf(stderr, "usage: raw_apply up PREFIX IMAGE N | down PREFIX N | wait PORT...\n");
		return 2;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	prefix = argv[2];
	c = curl_easy_init();
	if (strcmp(argv[1], "wait") == 0) {
		for (int i = 2; i < argc && now() - t0 < 120;)
			if (ping(c, atoi(argv[i])))
				i++;
			else
				usleep(20 * 1000);
		printf("%.3f\n", now() - t0);
		return 0;
	}
	if (strcmp(argv[1], "down") == 0) {
		char path[256];

		total = atoi(argv[3]);
		for (int i = 0; i < total; i++) {
			snprintf(path, sizeof(path), "/containers/%s-%d?force=1&v=1", prefix, i);
			call(c, "DELETE", path, NULL, NULL);
		}
		return 0;
	}
	image = argv[3];
	total = atoi(argv[4]);
	if (total < 1 || total > 1000)
		return 2;
	for (int i = 0; i < PARALLEL; i++)
		pthread_create(&t[i], NULL, up_worker, NULL);
	for (int i = 0; i < PARALLEL; i++)
		pthread_join(t[i], NULL);
	/* all healthy, polled as vdctl polls: bounded at 120 s */
	for (int i = 0; i < total && now() - t0 < 120;)
		if (ports[i] && ping(c, ports[i]))
			i++;
		else
			usleep(20 * 1000);
	printf("%.3f\n", now() - t0);
	curl_easy_cleanup(c);
	return 0;
}
