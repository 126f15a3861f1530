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
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vd/cleanup.h"
#include "vd/file.h"
#include "vd/state.h"

#define MANIFEST_TAG "# manifest: "

const char *
vd_state_dir_default(void)
{
	const char *d = getenv("VDCTL_STATE_DIR");

	return d && *d ? d : VD_STATE_DIR_DEFAULT;
}

/* Read DIR/id into out: 0; 1 when there is none; -1 with err when it cannot
 * be read or is damaged. */
static int
read_id(const char *path, char out[VD_STATE_ID_LEN + 1], struct vd_error *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	char buf[VD_STATE_ID_LEN + 2];
	ssize_t n;

	if (fd < 0 && errno == ENOENT)
		return 1;
	if (fd < 0)
		return vd_error_errno(err, errno, "cannot read '%s'", path);
	n = read(fd, buf, sizeof(buf));
	if (n < VD_STATE_ID_LEN || (n > VD_STATE_ID_LEN && buf[VD_STATE_ID_LEN] != '\n') ||
	    strspn(buf, "0123456789abcdef") < VD_STATE_ID_LEN)
		return vd_error_set(err, VD_EXIT_FAILURE, "'%s' is damaged: it should hold the "
				    "state directory's id (32 hex digits)", path);
	memcpy(out, buf, VD_STATE_ID_LEN);
	out[VD_STATE_ID_LEN] = '\0';
	return 0;
}

int
vd_state_id(const char *dir, bool make, char out[VD_STATE_ID_LEN + 1], struct vd_error *err)
{
	char path[PATH_MAX], tmp[PATH_MAX + 32], text[VD_STATE_ID_LEN + 2];
	unsigned char raw[VD_STATE_ID_LEN / 2];
	_cleanup_close_ int fd = -1;
	int ret;

	out[0] = '\0';
	snprintf(path, sizeof(path), "%s/id", dir);
	if ((ret = read_id(path, out, err)) <= 0)
		return ret;
	if (!make)
		return 1;
	if (vd_file_mkdir_p(dir, err) < 0)
		return -1;
	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return vd_error_errno(err, errno, "cannot make an id for '%s'", dir);
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(text + 2 * i, 3, "%02x", raw[i]);
	text[VD_STATE_ID_LEN] = '\n';
	/* made whole beside it, then linked into place: of two made at once,
	 * one wins and both read it */
	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)gettid());
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0 ||
	    write(fd, text, VD_STATE_ID_LEN + 1) != VD_STATE_ID_LEN + 1 || fsync(fd) < 0) {
		ret = vd_error_errno(err, errno, "cannot write '%s'", tmp);
		unlink(tmp);
		return ret;
	}
	if (link(tmp, path) < 0 && errno != EEXIST) {
		ret = vd_error_errno(err, errno, "cannot make '%s'", path);
		unlink(tmp);
		return ret;
	}
	unlink(tmp);
	return read_id(path, out, err) == 0 ? 0 : -1;
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
	if (vd_file_mkdir_p(sub, err) < 0)
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
	return vd_file_write_atomic(path, text, (size_t)n, err);
}

int
vd_state_remove(const char *dir, const char *service, struct vd_error *err)
{
	char path[PATH_MAX];

	service_path(dir, service, path, sizeof(path));
	return vd_file_remove(path, err);
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
