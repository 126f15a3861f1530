/*
 * The state directory: desired services recorded by apply, in the manifest
 * format so the manifest parser reads them back (see vd/state.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vd/cleanup.h"
#include "vd/state.h"
#include "vd/units.h"

#define MANIFEST_TAG "# manifest: "

const char *
vd_state_dir_default(void)
{
	const char *d = getenv("VDCTL_STATE_DIR");

	return d && *d ? d : VD_STATE_DIR_DEFAULT;
}

int
vd_mkdir_p(const char *path, struct vd_error *err)
{
	char tmp[PATH_MAX];

	if (strlen(path) >= sizeof(tmp))
		return vd_error_set(err, VD_EXIT_INPUT, "path '%.60s...' is too long", path);
	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return vd_error_errno(err, errno, "cannot make '%s'", tmp);
		*p = '/';
	}
	if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
		return vd_error_errno(err, errno, "cannot make '%s'", tmp);
	return 0;
}

static void
fsync_dir_of(const char *path)
{
	char dir[PATH_MAX];
	int fd;

	snprintf(dir, sizeof(dir), "%s", path);
	fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

int
vd_write_atomic(const char *path, const char *data, size_t len, struct vd_error *err)
{
	char tmp[PATH_MAX];
	int fd, n;

	n = snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return vd_error_set(err, VD_EXIT_INPUT, "path '%.60s...' is too long", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return vd_error_errno(err, errno, "cannot write '%s'", tmp);
	if (write(fd, data, len) != (ssize_t)len || fsync(fd) < 0) {
		int e = errno;

		close(fd);
		unlink(tmp);
		return vd_error_errno(err, e, "cannot write '%s'", tmp);
	}
	close(fd);
	if (rename(tmp, path) < 0) {
		int e = errno;

		unlink(tmp);
		return vd_error_errno(err, e, "cannot rename '%s' to '%s'", tmp, path);
	}
	fsync_dir_of(path);
	return 0;
}

static void
service_path(const char *dir, const char *service, char *buf, size_t size)
{
	snprintf(buf, size, "%s/services/%s.yaml", dir, service);
}

/* ------------------------------------------------------------- writing */

static json_t *
duration(int64_t ms)
{
	char buf[32];

	return json_string(vd_format_duration_ms(ms, buf, sizeof(buf)));
}

json_t *
vd_state_service_json(const struct vd_service *s)
{
	json_t *j = json_object(), *env = json_object(), *cmd = json_array();
	char listen[300], cpus[32];

	json_object_set_new(j, "service", json_string(s->name));
	json_object_set_new(j, "backend", json_string(vd_backend_name(s->backend)));
	if (s->backend == VD_BACKEND_DOCKER) {
		json_object_set_new(j, "image", json_string(s->image));
	} else {
		json_t *vm = json_object();

		if (s->vm.kernel)
			json_object_set_new(vm, "kernel", json_string(s->vm.kernel));
		if (s->vm.initrd)
			json_object_set_new(vm, "initrd", json_string(s->vm.initrd));
		if (s->vm.cmdline)
			json_object_set_new(vm, "cmdline", json_string(s->vm.cmdline));
		if (s->vm.disk)
			json_object_set_new(vm, "disk", json_string(s->vm.disk));
		json_object_set_new(vm, "accel", json_string(vd_accel_name(s->vm.accel)));
		json_object_set_new(j, "vm", vm);
	}
	for (size_t i = 0; i < s->ncommand; i++)
		json_array_append_new(cmd, json_string(s->command[i]));
	if (s->ncommand)
		json_object_set(j, "command", cmd);
	json_decref(cmd);
	for (size_t i = 0; i < s->nenv; i++) {
		const char *eq = strchr(s->env[i], '=');
		char *key = eq ? strndup(s->env[i], (size_t)(eq - s->env[i])) : NULL;

		if (key)
			json_object_set_new(env, key, json_string(eq + 1));
		free(key);
	}
	if (s->nenv)
		json_object_set(j, "env", env);
	json_decref(env);
	json_object_set_new(j, "port", json_integer(s->port));
	json_object_set_new(j, "replicas", json_integer(s->replicas));
	vd_format_milli_cpus(s->milli_cpus, cpus, sizeof(cpus));
	json_object_set_new(j, "resources",
			    json_pack("{s:f, s:I}", "cpus", strtod(cpus, NULL), "memory",
				      (json_int_t)s->memory_bytes));
	json_object_set_new(j, "health",
			    json_pack("{s:o, s:o, s:o, s:i, s:o}",
				      s->health.kind == VD_HEALTH_HTTP ? "http" : "tcp",
				      s->health.kind == VD_HEALTH_HTTP
					      ? json_string(s->health.http_path)
					      : json_true(),
				      "interval", duration(s->health.interval_ms),
				      "timeout", duration(s->health.timeout_ms),
				      "retries", s->health.retries,
				      "start_period", duration(s->health.start_period_ms)));
	if (s->balancer.enabled) {
		snprintf(listen, sizeof(listen), strchr(s->balancer.listen_host, ':') ? "[%s]:%d"
											 : "%s:%d",
			 s->balancer.listen_host, s->balancer.listen_port);
		json_object_set_new(j, "balancer",
				    json_pack("{s:s, s:s, s:i, s:i, s:o}", "listen", listen,
					      "policy", vd_lb_policy_name(s->balancer.policy),
					      "max_inflight", s->balancer.max_inflight,
					      "queue_limit", s->balancer.queue_limit,
					      "queue_timeout", duration(s->balancer.queue_timeout_ms)));
	}
	if (s->autoscale.enabled) {
		json_t *a = json_pack("{s:i, s:i, s:o, s:o, s:o}", "min", s->autoscale.min, "max",
				      s->autoscale.max, "up_window", duration(s->autoscale.up_window_ms),
				      "down_window", duration(s->autoscale.down_window_ms),
				      "cooldown", duration(s->autoscale.cooldown_ms));

		if (s->autoscale.target_p95_ms > 0)
			json_object_set_new(a, "target_p95", duration(s->autoscale.target_p95_ms));
		if (s->autoscale.target_queue > 0)
			json_object_set_new(a, "target_queue", json_real(s->autoscale.target_queue));
		json_object_set_new(j, "autoscale", a);
	}
	json_object_set_new(j, "update", json_pack("{s:i, s:i}", "max_surge", s->update.max_surge,
						   "max_unavailable", s->update.max_unavailable));
	return j;
}

int
vd_state_save(const char *dir, const struct vd_service *svc, const char *manifest,
	      struct vd_error *err)
{
	char path[PATH_MAX], sub[PATH_MAX];
	_cleanup_free_ char *body = NULL, *text = NULL;
	json_t *j;
	int n;

	if (strchr(manifest ? manifest : "", '\n'))
		return vd_error_set(err, VD_EXIT_INPUT, "manifest path has a newline in it");
	snprintf(sub, sizeof(sub), "%s/services", dir);
	if (vd_mkdir_p(sub, err) < 0)
		return vd_error_wrap(err, "state directory");
	j = vd_state_service_json(svc);
	body = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6))
		 : NULL;
	json_decref(j);
	if (!body)
		return vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
	n = asprintf(&text, "# vdctl: the desired state of service '%s', as last applied\n"
		     MANIFEST_TAG "%s\n%s\n", svc->name, manifest ? manifest : "", body);
	if (n < 0)
		return vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
	service_path(dir, svc->name, path, sizeof(path));
	return vd_write_atomic(path, text, (size_t)n, err);
}

int
vd_state_remove(const char *dir, const char *service, struct vd_error *err)
{
	char path[PATH_MAX];

	service_path(dir, service, path, sizeof(path));
	if (unlink(path) < 0 && errno != ENOENT)
		return vd_error_errno(err, errno, "cannot remove '%s'", path);
	fsync_dir_of(path);
	return 0;
}

/* ------------------------------------------------------------- reading */

int
vd_state_manifest_of(const char *dir, const char *service, char *buf, size_t size)
{
	char path[PATH_MAX], line[PATH_MAX + 64];
	_cleanup_fclose_ FILE *f = NULL;

	service_path(dir, service, path, sizeof(path));
	if (!(f = fopen(path, "r")))
		return -1;
	while (fgets(line, sizeof(line), f) && line[0] == '#') {
		if (strncmp(line, MANIFEST_TAG, strlen(MANIFEST_TAG)) == 0) {
			line[strcspn(line, "\n")] = '\0';
			snprintf(buf, size, "%s", line + strlen(MANIFEST_TAG));
			return 0;
		}
	}
	return -1;
}

static int
by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
vd_state_load(const char *dir, const char *service, struct vd_manifest **out,
	      struct vd_diags *diags, struct vd_error *err)
{
	char sub[PATH_MAX];
	char **paths = NULL;
	size_t n = 0;
	struct dirent *e;
	DIR *d;
	int ret;

	*out = NULL;
	if (service) {
		char path[PATH_MAX];
		const char *one = path;

		service_path(dir, service, path, sizeof(path));
		if (access(path, R_OK) != 0)
			return vd_error_set(err, VD_EXIT_INPUT, "service '%s' is not known here "
					    "(nothing applied it; state directory %s)", service, dir);
		return vd_manifest_load(&one, 1, out, diags, err);
	}
	snprintf(sub, sizeof(sub), "%s/services", dir);
	d = opendir(sub);
	while (d && (e = readdir(d))) {
		size_t len = strlen(e->d_name);
		char **v;

		if (len < 6 || strcmp(e->d_name + len - 5, ".yaml") != 0)
			continue;
		v = realloc(paths, (n + 1) * sizeof(*v));
		if (!v)
			break;
		paths = v;
		if (asprintf(&paths[n], "%s/%s", sub, e->d_name) < 0)
			break;
		n++;
	}
	if (d)
		closedir(d);
	if (n > 1)
		qsort(paths, n, sizeof(*paths), by_name);
	if (n == 0) {
		*out = calloc(1, sizeof(**out));
		ret = *out ? 0 : vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
	} else {
		ret = vd_manifest_load((const char *const *)paths, n, out, diags, err);
	}
	for (size_t i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
	return ret;
}
