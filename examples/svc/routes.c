/*
 * The endpoints of the example workload.
 *
 * Each route fills a struct svc_reply and never does I/O on the connection,
 * so both serving models share them.  /timeout is the exception that only
 * validates: it sets reply->wait_ms and the model waits its own way (a
 * worker sleeps, the event loop arms a timer), then calls svc_finish_wait.
 * /timeout, /heavy and /alloc answer with started_us and finished_us on
 * CLOCK_MONOTONIC and the worker index, which lets tests prove what ran
 * concurrently without reading a wall clock.  /bytes and /echo move bulk
 * data (for proxies in front): their bodies are streamed by conn.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "svc.h"

#define MAX_MS	600000L
#define MAX_MB	65536L

static void do_info(const struct svc_request *, const char *,
    struct svc_reply *, int);
static void do_timeout(const struct svc_request *, const char *,
    struct svc_reply *, int);
static void do_heavy(const struct svc_request *, const char *,
    struct svc_reply *, int);
static void do_alloc(const struct svc_request *, const char *,
    struct svc_reply *, int);
static void do_bytes(const struct svc_request *, const char *,
    struct svc_reply *, int);
static void do_echo(const struct svc_request *, const char *,
    struct svc_reply *, int);

static const struct route {
	const char	*path;
	const char	*method;	/* the one it answers; else 405 */
	const char	*text;	/* a fixed text/plain answer, or NULL */
	void		(*fn)(const struct svc_request *, const char *,
			    struct svc_reply *, int);
} routes[] = {
	{ "/ping", "GET", "pong\n", NULL },
	{ "/healthz", "GET", "ok\n", NULL },
	{ "/info", "GET", NULL, do_info },
	{ "/timeout", "GET", NULL, do_timeout },
	{ "/heavy", "GET", NULL, do_heavy },
	{ "/alloc", "GET", NULL, do_alloc },
	{ "/bytes", "GET", NULL, do_bytes },
	{ "/echo", "POST", NULL, do_echo },	/* its body is kept */
};

/* ------------------------------------------------------------- replies */

static void
reply_text(struct svc_reply *rep, int status, const char *text)
{
	rep->status = status;
	rep->type = "text/plain";
	rep->bodylen = strlen(text);
	memcpy(rep->body, text, rep->bodylen);
}

static void __attribute__((format(printf, 3, 4)))
reply_json(struct svc_reply *rep, int status, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(rep->body, sizeof(rep->body), fmt, ap);
	va_end(ap);
	rep->status = status;
	rep->type = "application/json";
	rep->bodylen = n < 0 ? 0 : (size_t)n < sizeof(rep->body) ?
	    (size_t)n : sizeof(rep->body) - 1;
}

static void
reply_error(struct svc_reply *rep, int status, const char *msg)
{
	reply_json(rep, status, "{\"error\":\"%s\"}\n", msg);
}

/* The body of /timeout, /heavy and /alloc, once the work is done. */
static void
reply_timing(struct svc_reply *rep, const char *unit, int worker)
{
	reply_json(rep, 200, "{\"%s\":%ld,\"worker\":%d,\"started_us\":%llu,"
	    "\"finished_us\":%llu}\n", unit, rep->arg, worker,
	    (unsigned long long)rep->started_us,
	    (unsigned long long)svc_now_us());
}

/*
 * The number name=N in query, from 0 to max, into *out; returns -1 when it
 * is missing or is not such a number.
 */
static int
query_num(const char *query, const char *name, long max, long *out)
{
	size_t n = strlen(name);
	const char *p = query;
	char *end;
	long v;

	while (*p != '\0') {
		if (strncmp(p, name, n) == 0 && p[n] == '=') {
			p += n + 1;
			if (*p < '0' || *p > '9')
				return -1;
			errno = 0;
			v = strtol(p, &end, 10);
			if (errno != 0 || (*end != '\0' && *end != '&') ||
			    v > max)
				return -1;
			*out = v;
			return 0;
		}
		p += strcspn(p, "&");
		if (*p == '&')
			p++;
	}
	return -1;
}

/* -------------------------------------------------------------- routes */

/* The route for the path of target, or NULL. */
static const struct route *
find_route(const char *target)
{
	size_t i, pathlen = strcspn(target, "?");

	for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (strlen(routes[i].path) == pathlen &&
		    memcmp(routes[i].path, target, pathlen) == 0)
			return &routes[i];
	return NULL;
}

/* Whether req is for its route's method. */
static int
method_ok(const struct route *r, const struct svc_request *req)
{
	return strcmp(r->method, "POST") == 0 ? req->post : req->get;
}

int
svc_route_keeps_body(const struct svc_request *req)
{
	const struct route *r = find_route(req->target);
	const char *query = req->target + strcspn(req->target, "?");
	long head = 0;

	if (r == NULL || r->fn != do_echo || !method_ok(r, req))
		return 0;
	if (*query == '?')
		query++;
	return query_num(query, "head", 1, &head) == 0 && head == 1 ? 2 : 1;
}

/*
 * Answer req into rep.  worker is the sync worker index, 0 in async.  When
 * rep->wait_ms is >= 0 on return, the caller waits that long from
 * rep->started_us and then calls svc_finish_wait.
 */
void
svc_route(const struct svc_request *req, struct svc_reply *rep, int worker)
{
	const char *query = req->target + strcspn(req->target, "?");
	const struct route *r;

	atomic_fetch_add(&svc_requests, 1);
	rep->wait_ms = -1;
	rep->arg = 0;
	rep->map = NULL;
	rep->allow = NULL;
	rep->stream = rep->chunked = 0;
	rep->data = NULL;
	rep->datalen = 0;
	rep->started_us = svc_now_us();
	if (*query == '?')
		query++;
	switch (req->reject) {
	case 0:
		break;
	case 411:
		reply_error(rep, 411, "chunked request bodies are not supported");
		return;
	case 413:
		reply_error(rep, 413, "request body too large");
		return;
	case 414:
		reply_error(rep, 414, "request target too long");
		return;
	case 431:
		reply_error(rep, 431, "request headers too large");
		return;
	case 500:
		reply_error(rep, 500, "out of memory");
		return;
	default:
		reply_error(rep, 400, "malformed request");
		return;
	}
	if ((r = find_route(req->target)) == NULL)
		reply_error(rep, 404, "not found");
	else if (!method_ok(r, req)) {
		reply_error(rep, 405, "method not allowed");
		rep->allow = r->method;
	} else if (r->text != NULL)
		reply_text(rep, 200, r->text);
	else
		r->fn(req, query, rep, worker);
}

void
svc_finish_wait(struct svc_reply *rep, int worker)
{
	reply_timing(rep, "ms", worker);
}

/* Give back what a reply holds once it is sent: the /alloc mapping. */
void
svc_reply_release(struct svc_reply *rep)
{
	if (rep->map != NULL)
		munmap(rep->map, rep->maplen);
	rep->map = NULL;
}

static void
do_timeout(const struct svc_request *req, const char *query,
    struct svc_reply *rep, int worker)
{
	(void)req;
	(void)worker;
	if (query_num(query, "ms", MAX_MS, &rep->arg) == -1)
		reply_error(rep, 400, "ms must be a whole number up to 600000");
	else
		rep->wait_ms = rep->arg;
}

static uint64_t
thread_cpu_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Whether SIGTERM or SIGINT waits for the loop: a long /heavy must not
 * hold up the exit of the async model, whose loop it blocks. */
static int
stop_pending(void)
{
	sigset_t set;

	return sigpending(&set) == 0 &&
	    (sigismember(&set, SIGTERM) == 1 || sigismember(&set, SIGINT) == 1);
}

/* Spend ms of this thread's CPU time: a CPU quota stretches it. */
static void
do_heavy(const struct svc_request *req, const char *query,
    struct svc_reply *rep, int worker)
{
	volatile unsigned long sink = 0;
	uint64_t until;
	unsigned long i;

	(void)req;
	if (query_num(query, "ms", MAX_MS, &rep->arg) == -1) {
		reply_error(rep, 400, "ms must be a whole number up to 600000");
		return;
	}
	until = thread_cpu_us() + (uint64_t)rep->arg * 1000;
	while (thread_cpu_us() < until && !stop_pending())
		for (i = 0; i < 1000; i++)
			sink += i;
	reply_timing(rep, "ms", worker);
}

/* Map and touch mb MiB, kept until the reply is sent: memory limits and the
 * OOM killer see it. */
static void
do_alloc(const struct svc_request *req, const char *query,
    struct svc_reply *rep, int worker)
{
	size_t len, off, page = (size_t)sysconf(_SC_PAGESIZE);
	char *p, msg[128];

	(void)req;
	if (query_num(query, "mb", MAX_MB, &rep->arg) == -1) {
		reply_error(rep, 400, "mb must be a whole number up to 65536");
		return;
	}
	len = (size_t)rep->arg << 20;
	if (len > 0) {
		p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED) {
			snprintf(msg, sizeof(msg), "cannot map %ld MiB: %s",
			    rep->arg, strerror(errno));
			reply_error(rep, 500, msg);
			return;
		}
		for (off = 0; off < len; off += page)
			p[off] = 1;
		rep->map = p;
		rep->maplen = len;
	}
	reply_timing(rep, "mb", worker);
}

/*
 * n bytes of SVC_PATTERN (up to SVC_DATA_MAX), with Content-Length, or in
 * chunks of up to SVC_CHUNK with chunked=1.
 */
static void
do_bytes(const struct svc_request *req, const char *query,
    struct svc_reply *rep, int worker)
{
	long n, chunked = 0;

	(void)req;
	(void)worker;
	if (query_num(query, "n", (long)SVC_DATA_MAX, &n) == -1) {
		reply_error(rep, 400, "n must be a whole number up to 67108864");
		return;
	}
	query_num(query, "chunked", 1, &chunked);
	rep->status = 200;
	rep->type = "application/octet-stream";
	rep->bodylen = 0;
	rep->stream = 1;
	rep->chunked = chunked == 1;
	rep->datalen = (size_t)n;
}

/* The request's body back (conn.c read it whole; with head=1 the head is in
 * front of it), with Content-Length. */
static void
do_echo(const struct svc_request *req, const char *query,
    struct svc_reply *rep, int worker)
{
	(void)query;
	(void)worker;
	rep->status = 200;
	rep->type = "application/octet-stream";
	rep->bodylen = 0;
	rep->stream = 1;
	rep->data = req->body;
	rep->datalen = req->bodylen;
}

/* ---------------------------------------------------------------- /info */

/* Read the small file path into buf as a string; -1 when it is absent. */
static int
read_small(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return 0;
}

/* MemTotal as JSON: /proc/meminfo, else sysinfo(2) when /proc is missing. */
static void
mem_total(char *out, size_t len)
{
	unsigned long long kb;
	struct sysinfo si;
	char buf[256];

	if (read_small("/proc/meminfo", buf, sizeof(buf)) == 0 &&
	    sscanf(buf, "MemTotal: %llu kB", &kb) == 1)
		snprintf(out, len, "%llu", kb * 1024);
	else if (sysinfo(&si) == 0)
		snprintf(out, len, "%llu",
		    (unsigned long long)si.totalram * si.mem_unit);
	else
		snprintf(out, len, "null");
}

/* The number in the small file path; -1 when absent or not a number. */
static int
read_num(const char *path, long long *v)
{
	char buf[64], *end;

	if (read_small(path, buf, sizeof(buf)) == -1)
		return -1;
	*v = strtoll(buf, &end, 10);
	return end == buf ? -1 : 0;
}

/* The cgroup (v1, else v2) memory limit as JSON, null when unlimited. */
static void
cgroup_memory_limit(char *out, size_t len)
{
	long long v;

	if ((read_num("/sys/fs/cgroup/memory/memory.limit_in_bytes", &v) == 0 ||
	    read_num("/sys/fs/cgroup/memory.max", &v) == 0) && v < 1LL << 62)
		snprintf(out, len, "%lld", v);
	else
		snprintf(out, len, "null");	/* none, "max" or v1's huge */
}

/* The cgroup CPU quota in CPUs (1.5) as JSON, null when unlimited. */
static void
cgroup_cpu_limit(char *out, size_t len)
{
	long long quota = -1, period = 0;
	char buf[64];

	if (read_small("/sys/fs/cgroup/cpu.max", buf, sizeof(buf)) == 0) {
		if (sscanf(buf, "%lld %lld", &quota, &period) != 2)
			quota = -1;		/* "max 100000" */
	} else if (read_num("/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
	    &quota) == 0)
		read_num("/sys/fs/cgroup/cpu/cpu.cfs_period_us", &period);
	else if (read_num("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us",
	    &quota) == 0)
		read_num("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us",
		    &period);
	if (quota > 0 && period > 0)
		snprintf(out, len, "%g", (double)quota / (double)period);
	else
		snprintf(out, len, "null");
}

/* s as the inside of a JSON string, cut to fit out. */
static void
json_escape(char *out, size_t len, const char *s)
{
	size_t o = 0;
	unsigned char ch;

	for (; *s != '\0' && o + 7 < len; s++) {
		ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\') {
			out[o++] = '\\';
			out[o++] = (char)ch;
		} else if (ch < 0x20)
			o += (size_t)snprintf(out + o, len - o, "\\u%04x", ch);
		else
			out[o++] = (char)ch;
	}
	out[o] = '\0';
}

static void
do_info(const struct svc_request *req, const char *query,
    struct svc_reply *rep, int worker)
{
	char id[256], mem[32], cgmem[32], cgcpu[32];
	const char *name = getenv("REPLICA_ID");
	struct utsname uts;

	(void)req;
	(void)query;
	(void)worker;
	if (name == NULL || *name == '\0')
		name = uname(&uts) == 0 ? uts.nodename : "";
	json_escape(id, sizeof(id), name);
	mem_total(mem, sizeof(mem));
	cgroup_memory_limit(cgmem, sizeof(cgmem));
	cgroup_cpu_limit(cgcpu, sizeof(cgcpu));
	reply_json(rep, 200, "{\"id\":\"%s\",\"model\":\"%s\",\"workers\":%d,"
	    "\"port\":%d,\"pid\":%ld,\"online_cpus\":%ld,"
	    "\"mem_total_bytes\":%s,\"cgroup_memory_limit_bytes\":%s,"
	    "\"cgroup_cpu_limit\":%s,\"uptime_ms\":%llu,\"requests\":%lu}\n",
	    id, svc_cfg.model == SVC_ASYNC ? "async" : "sync",
	    svc_cfg.workers, svc_cfg.port, (long)getpid(),
	    sysconf(_SC_NPROCESSORS_ONLN), mem, cgmem, cgcpu,
	    (unsigned long long)(svc_now_us() - svc_start_us) / 1000,
	    atomic_load(&svc_requests));
}
