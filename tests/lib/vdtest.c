/*
 * Test helpers: loopback sockets, libcurl for HTTP, bounded polling.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "vdtest.h"
#include "vd/net.h"

struct buf {
	char *data;
	size_t len;
};

static size_t
collect(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct buf *b = userdata;
	size_t n = size * nmemb;
	char *p = realloc(b->data, b->len + n + 1);

	if (!p)
		return 0;
	b->data = p;
	memcpy(b->data + b->len, ptr, n);
	b->len += n;
	b->data[b->len] = '\0';
	return n;
}

int
vt_free_port(void)
{
	return vd_net_free_port();
}

static long
request(const char *unix_path, const char *method, const char *url, const char *body,
	char **out, long timeout_ms)
{
	struct curl_slist *hdrs = NULL;
	struct buf b = { NULL, 0 };
	long status = -1;
	CURL *c = curl_easy_init();

	if (!c)
		return -1;
	curl_easy_setopt(c, CURLOPT_URL, url);
	if (unix_path)
		curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, unix_path);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 2000 ? timeout_ms : 2000);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	if (body) {
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	}
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	if (out)
		*out = b.data;
	else
		free(b.data);
	return status;
}

long
vt_http_get(const char *url, char **body, long timeout_ms)
{
	return request(NULL, "GET", url, NULL, body, timeout_ms);
}

int
vt_wait_http(const char *url, int seconds)
{
	struct timespec start, now;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		if (vt_http_get(url, NULL, 1000) == 200)
			return 0;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - start.tv_sec >= seconds)
			return -1;
		usleep(200 * 1000);
	}
}

long
vt_docker(const char *method, const char *path, const char *body, json_t **reply)
{
	char url[1024];
	char *out = NULL;
	long status;

	snprintf(url, sizeof(url), "http://localhost%s", path);
	status = request("/var/run/docker.sock", method, url, body, &out, 30000);
	if (reply)
		*reply = out && *out ? json_loads(out, 0, NULL) : NULL;
	free(out);
	return status;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------ running programs */


void
vt_result_clear(struct vt_result *r)
{
	free(r->out);
	free(r->err);
	memset(r, 0, sizeof(*r));
}

/* Start argv[0] with stdout and stderr on pipes, stdin on /dev/null. */
int
vt_spawn(struct vt_proc *p, char *const argv[])
{
	int o[2], e[2];

	if (pipe2(o, O_CLOEXEC) < 0)
		return -1;
	if (pipe2(e, O_CLOEXEC) < 0) {
		close(o[0]);
		close(o[1]);
		return -1;
	}
	p->t0 = now_s();
	p->pid = fork();
	if (p->pid < 0) {
		close(o[0]);
		close(o[1]);
		close(e[0]);
		close(e[1]);
		return -1;
	}
	if (p->pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		if (null >= 0)
			dup2(null, 0);
		dup2(o[1], 1);
		dup2(e[1], 2);
		execv(argv[0], argv);
		_exit(127);
	}
	close(o[1]);
	close(e[1]);
	p->out = o[0];
	p->err = e[0];
	return 0;
}

void
vt_append(char **buf, size_t *len, const char *data, size_t n)
{
	char *b = realloc(*buf, *len + n + 1);

	if (!b)
		return;
	memcpy(b + *len, data, n);
	*len += n;
	b[*len] = '\0';
	*buf = b;
}

char *
vt_read_text(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL, chunk[4096];
	size_t len = 0, n;

	if (!f)
		return NULL;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		vt_append(&buf, &len, chunk, n);
	fclose(f);
	return buf ? buf : calloc(1, 1);
}

size_t
vt_count(const char *s, const char *needle)
{
	size_t n = 0;

	for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* Read both pipes to their end and reap the child; kill it after
 * timeout_s seconds. Every loop is bounded by that deadline (and the pipes'
 * end once the child is dead). */
void
vt_finish(struct vt_proc *p, double timeout_s, struct vt_result *r)
{
	double deadline = p->t0 + timeout_s;
	size_t olen = 0, elen = 0;
	bool killed = false;
	int st = 0, after_kill = 0;

	memset(r, 0, sizeof(*r));
	r->out = calloc(1, 1);
	r->err = calloc(1, 1);
	while (p->out >= 0 || p->err >= 0) {
		struct pollfd pf[2] = { { p->out, POLLIN, 0 }, { p->err, POLLIN, 0 } };
		double left = deadline - now_s();
		char buf[8192];

		if (left <= 0 && !killed) {
			kill(p->pid, SIGKILL);
			killed = true;
			r->timed_out = true;
		}
		if (killed && after_kill++ > 30)
			break; /* something else holds the pipes open */
		if (poll(pf, 2, left > 0 ? (int)(left * 1000) + 1 : 1000) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < 2; i++) {
			int *fd = i ? &p->err : &p->out;
			ssize_t n;

			if (*fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			n = read(*fd, buf, sizeof(buf));
			if (n > 0) {
				if (i)
					vt_append(&r->err, &elen, buf, (size_t)n);
				else
					vt_append(&r->out, &olen, buf, (size_t)n);
			} else if (n == 0 || errno != EINTR) {
				close(*fd);
				*fd = -1;
			}
		}
	}
	if (p->out >= 0)
		close(p->out);
	if (p->err >= 0)
		close(p->err);
	while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR)
		;
	r->secs = now_s() - p->t0;
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
}

int
vt_run(char *const argv[], double timeout_s, struct vt_result *r)
{
	struct vt_proc p;

	memset(r, 0, sizeof(*r));
	r->status = -1;
	if (vt_spawn(&p, argv) < 0) {
		fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
		return -1;
	}
	vt_finish(&p, timeout_s, r);
	return r->status;
}

const char *
vt_path(const char *rel)
{
	static char path[4][4096];
	static int next;
	char *p = path[next++ % 4];

	snprintf(p, sizeof(path[0]), "%s/%s", vt_env("VD_ROOT", "."), rel);
	return p;
}

const char *
vt_env(const char *name, const char *dflt)
{
	const char *v = getenv(name);

	return v && *v ? v : dflt;
}

void
vt_dump(const char *what, const struct vt_result *r)
{
	fprintf(stderr, "--- %s: exit %d%s in %.2fs\n--- stdout:\n%s--- stderr:\n%s---\n", what,
		r->status, r->timed_out ? " (timed out)" : "", r->secs, r->out ? r->out : "",
		r->err ? r->err : "");
}

static int
rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

int
vt_rm_tree(const char *path)
{
	return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}
