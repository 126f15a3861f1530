/*
 * Atomic writes and directories (see vd/file.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vd/cleanup.h"
#include "vd/file.h"

void
vd_file_tidy_path(const char *path, char *out, size_t size)
{
	const char *seg[256];
	size_t len[256], n = 0, up = 0, o = 0;
	bool abs = path[0] == '/';

	for (const char *p = path; *p && n < 256;) {
		size_t l;

		p += strspn(p, "/");
		l = strcspn(p, "/");
		if (!l)
			break;
		if (l == 1 && p[0] == '.') {
			/* nothing */
		} else if (l == 2 && p[0] == '.' && p[1] == '.' && n > up) {
			n--; /* DIR/.. */
		} else if (l == 2 && p[0] == '.' && p[1] == '.' && abs) {
			/* /.. is / */
		} else {
			if (l == 2 && p[0] == '.' && p[1] == '.')
				up++; /* a leading .. of a relative path stays */
			seg[n] = p;
			len[n++] = l;
		}
		p += l;
	}
	if (size == 0)
		return;
	o = (size_t)snprintf(out, size, "%s", abs ? "/" : "");
	for (size_t i = 0; i < n && o < size; i++)
		o += (size_t)snprintf(out + o, size - o, "%s%.*s", i ? "/" : "", (int)len[i], seg[i]);
	if (!abs && n == 0)
		snprintf(out, size, ".");
}

int
vd_file_mkdir_p(const char *path, struct vd_error *err)
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

/* Does PATH hold exactly DATA? */
static bool
holds(const char *path, const char *data, size_t len)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	_cleanup_free_ char *buf = NULL;
	struct stat st;
	size_t got = 0;

	if (fd < 0 || fstat(fd, &st) < 0 || (size_t)st.st_size != len || !(buf = malloc(len + 1)))
		return false;
	while (got < len) {
		ssize_t n = read(fd, buf + got, len - got);

		if (n <= 0)
			return false;
		got += (size_t)n;
	}
	return memcmp(buf, data, len) == 0;
}

int
vd_file_write_atomic(const char *path, const char *data, size_t len, struct vd_error *err)
{
	char tmp[PATH_MAX];
	int fd, n;

	if (holds(path, data, len))
		return 0;
	/* one temporary name per thread: threads of a process may write at once */
	n = snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)gettid());
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

int
vd_file_remove(const char *path, struct vd_error *err)
{
	if (unlink(path) < 0 && errno != ENOENT)
		return vd_error_errno(err, errno, "cannot remove '%s'", path);
	fsync_dir_of(path);
	return 0;
}
