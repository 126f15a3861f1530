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
	j = vd_manifest_service_json(svc, 0);
	body = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | VD_MANIFEST_JSON_PRECISION)
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
