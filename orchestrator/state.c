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
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vd/cleanup.h"
#include "vd/file.h"
#include "vd/log.h"
#include "vd/state.h"

#define MANIFEST_TAG "# manifest: "
#define DECLARED_TAG "# declared by it: "

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
	return vd_state_save_as(dir, svc, manifest, NULL, err);
}

int
vd_state_save_as(const char *dir, const struct vd_service *svc, const char *manifest,
		 const struct vd_state_declared *declared, struct vd_error *err)
{
	struct vd_state_declared own = { svc->replicas, svc->milli_cpus, svc->memory_bytes };
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
	if (!declared)
		declared = &own;
	n = asprintf(&text, "# vdctl: the desired state of service '%s', as last applied\n"
		     MANIFEST_TAG "%s\n" DECLARED_TAG "replicas=%d milli_cpus=%lld "
		     "memory_bytes=%lld\n%s\n", svc->name, manifest ? manifest : "",
		     declared->replicas, (long long)declared->milli_cpus,
		     (long long)declared->memory_bytes, body);
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

/* ------------------------------------------------------------ failures */

static pthread_mutex_t failures_lock = PTHREAD_MUTEX_INITIALIZER;

json_t *
vd_state_failures(const char *dir)
{
	char path[PATH_MAX];
	json_t *j;

	snprintf(path, sizeof(path), "%s/failures.json", dir);
	j = json_load_file(path, 0, NULL);
	if (json_is_object(j))
		return j;
	json_decref(j);
	return json_object();
}

int
vd_state_note_failure(const char *dir, const char *service, int index, const char *why,
		      struct vd_error *err)
{
	char path[PATH_MAX], key[16];
	json_t *all, *svc;
	char *text = NULL;
	int ret = 0;

	snprintf(path, sizeof(path), "%s/failures.json", dir);
	snprintf(key, sizeof(key), "%d", index);
	pthread_mutex_lock(&failures_lock);
	all = vd_state_failures(dir);
	svc = json_object_get(all, service);
	if (!why && !json_object_get(svc, key)) {
		pthread_mutex_unlock(&failures_lock); /* nothing to forget: no write */
		json_decref(all);
		return 0;
	}
	if (!json_is_object(svc)) {
		svc = json_object();
		json_object_set_new(all, service, svc);
	}
	if (why)
		json_object_set_new(svc, key, json_string(why));
	else
		json_object_del(svc, key);
	if (!json_object_size(svc))
		json_object_del(all, service);
	if (!(text = json_dumps(all, JSON_INDENT(1) | JSON_SORT_KEYS)) ||
	    vd_file_write_atomic(path, text, strlen(text), err) < 0)
		ret = text ? -1 : vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
	pthread_mutex_unlock(&failures_lock);
	free(text);
	json_decref(all);
	return ret;
}

/* ------------------------------------------------------------- locking */

int
vd_state_lock(const char *dir, const char *what, bool wait, FILE *say, int *fd,
	      struct vd_error *err)
{
	char path[PATH_MAX], holder[96] = "", me[96];
	_cleanup_close_ int lfd = -1;
	ssize_t n;
	int len;

	*fd = -1;
	if (vd_file_mkdir_p(dir, err) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/work.lock", dir);
	if ((lfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0)
		return vd_error_errno(err, errno, "cannot open '%s'", path);
	if (flock(lfd, LOCK_EX | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK)
			return vd_error_errno(err, errno, "cannot lock '%s'", path);
		if (!wait)
			return 1;
		n = pread(lfd, holder, sizeof(holder) - 1, 0);
		holder[n > 0 ? n : 0] = '\0';
		holder[strcspn(holder, "\n")] = '\0';
		if (say) {
			fprintf(say, "waiting for %s to finish with %s\n",
				*holder ? holder : "another vdctl", dir);
			fflush(say);
		}
		while (flock(lfd, LOCK_EX) < 0)
			if (errno != EINTR)
				return vd_error_errno(err, errno, "cannot lock '%s'", path);
	}
	len = snprintf(me, sizeof(me), "pid %d (%s)\n", (int)getpid(), what);
	if (ftruncate(lfd, 0) < 0 || pwrite(lfd, me, (size_t)len, 0) != len)
		vd_debug("cannot note the lock's holder in %s", path);
	*fd = vd_steal_fd(&lfd);
	return 0;
}

void
vd_state_unlock(int fd)
{
	if (fd >= 0)
		close(fd); /* the flock goes with the last descriptor */
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

int
vd_state_declared_of(const char *dir, const char *service, struct vd_state_declared *out)
{
	char path[PATH_MAX], line[256];
	_cleanup_fclose_ FILE *f = NULL;
	long long cpus, mem;

	if (!vd_manifest_valid_name(service))
		return -1;
	service_path(dir, service, path, sizeof(path));
	if (!(f = fopen(path, "r")))
		return -1;
	while (fgets(line, sizeof(line), f) && line[0] == '#')
		if (strncmp(line, DECLARED_TAG, strlen(DECLARED_TAG)) == 0 &&
		    sscanf(line + strlen(DECLARED_TAG), "replicas=%d milli_cpus=%lld "
			   "memory_bytes=%lld", &out->replicas, &cpus, &mem) == 3) {
			out->milli_cpus = cpus;
			out->memory_bytes = mem;
			return 0;
		}
	return -1;
}

static int
by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Load one service file; the service it declares must be the one its name
 * says. */
static int
load_one(const char *dir, const char *service, struct vd_manifest **out, struct vd_diags *diags,
	 struct vd_error *err)
{
	char path[PATH_MAX];
	const char *one = path;

	service_path(dir, service, path, sizeof(path));
	if (vd_manifest_load(&one, 1, out, diags, err) < 0)
		return -1;
	if ((*out)->nservices != 1 || strcmp((*out)->services[0].name, service) != 0) {
		vd_error_set(err, VD_EXIT_INPUT, "%s declares %s%s%s, not service '%s': it was "
			     "edited by hand; apply the service's manifest again", path,
			     (*out)->nservices == 1 ? "service '" : "several services",
			     (*out)->nservices == 1 ? (*out)->services[0].name : "",
			     (*out)->nservices == 1 ? "'" : "", service);
		vd_manifest_free(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}

int
vd_state_load(const char *dir, const char *service, struct vd_manifest **out,
	      struct vd_diags *diags, struct vd_error *err)
{
	char path[PATH_MAX];

	*out = NULL;
	if (!vd_manifest_valid_name(service))
		return vd_error_set(err, VD_EXIT_INPUT, "'%s' is not a service name (1 to 40 "
				    "lowercase letters, digits and '-', starting with a letter)",
				    service);
	service_path(dir, service, path, sizeof(path));
	if (access(path, F_OK) != 0)
		return vd_error_set(err, VD_EXIT_INPUT, "service '%s' is not known here "
				    "(nothing applied it; state directory %s)", service, dir);
	return load_one(dir, service, out, diags, err);
}

/* The names of the recorded services, sorted; NULL with err when the
 * directory cannot be read (a missing one has none). */
static char **
recorded_names(const char *dir, size_t *n, struct vd_error *err)
{
	char sub[PATH_MAX];
	char **names = calloc(1, sizeof(*names));
	struct dirent *e;
	DIR *d;

	*n = 0;
	snprintf(sub, sizeof(sub), "%s/services", dir);
	if (!names) {
		vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
		return NULL;
	}
	if (!(d = opendir(sub))) {
		if (errno == ENOENT)
			return names;
		vd_error_errno(err, errno, "cannot read '%s'", sub);
		free(names);
		return NULL;
	}
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);
		char **v;

		if (len < 6 || strcmp(e->d_name + len - 5, ".yaml") != 0)
			continue;
		if (!(v = realloc(names, (*n + 2) * sizeof(*v))) ||
		    !(v[*n] = strndup(e->d_name, len - 5))) {
			if (v)
				names = v;
			break;
		}
		names = v;
		names[++*n] = NULL;
	}
	closedir(d);
	if (*n > 1)
		qsort(names, *n, sizeof(*names), by_name);
	return names;
}

bool
vd_state_known(const char *dir, const char *service)
{
	char path[PATH_MAX];

	if (!vd_manifest_valid_name(service))
		return false;
	service_path(dir, service, path, sizeof(path));
	return access(path, F_OK) == 0;
}

int
vd_state_unknown(const char *dir, const char *service, const char *const *also, size_t n,
		 struct vd_error *err)
{
	struct vd_error ignore = VD_ERROR_INIT;
	struct vd_diag_guess g;
	size_t nrec = 0;
	char **rec = recorded_names(dir, &nrec, &ignore);

	vd_diag_guess_init(&g, service);
	for (size_t i = 0; rec && i < nrec; i++)
		vd_diag_guess_offer(&g, rec[i]);
	for (size_t i = 0; i < n; i++)
		vd_diag_guess_offer(&g, also[i]);
	vd_error_set(err, VD_EXIT_INPUT, "unknown service '%s'%s%s%s", service,
		     g.pick ? " (did you mean '" : "", g.pick ? g.pick : "", g.pick ? "'?)" : "");
	for (size_t i = 0; rec && i < nrec; i++)
		free(rec[i]);
	free(rec);
	return -1;
}

static int
hold(struct vd_state_held **held, size_t *nheld, const char *service, const char *why)
{
	struct vd_state_held *v = realloc(*held, (*nheld + 1) * sizeof(*v));

	if (!v)
		return -1;
	*held = v;
	v[*nheld].service = strdup(service);
	v[*nheld].why = strdup(why);
	if (!v[*nheld].service || !v[*nheld].why) {
		free(v[*nheld].service);
		free(v[*nheld].why);
		return -1;
	}
	(*nheld)++;
	return 0;
}

/* Move the one service of ONE into M. */
static int
take(struct vd_manifest *m, struct vd_manifest *one)
{
	struct vd_service *v = realloc(m->services, (m->nservices + 1) * sizeof(*v));

	if (!v)
		return -1;
	m->services = v;
	v[m->nservices++] = one->services[0];
	one->nservices = 0; /* moved */
	vd_manifest_free(one);
	return 0;
}

int
vd_state_load_all(const char *dir, struct vd_manifest **out, struct vd_state_held **held,
		  size_t *nheld, struct vd_error *err)
{
	size_t n;
	char **names = recorded_names(dir, &n, err);
	int ret = 0;

	*out = calloc(1, sizeof(**out));
	*held = NULL;
	*nheld = 0;
	if (!names || !*out) {
		free(names);
		free(*out);
		*out = NULL;
		return names ? vd_error_set(err, VD_EXIT_FAILURE, "out of memory") : -1;
	}
	for (size_t i = 0; i < n && ret == 0; i++) {
		struct vd_diags diags = VD_DIAGS_INIT;
		struct vd_error e = VD_ERROR_INIT;
		struct vd_manifest *one = NULL;
		const char *other = NULL;
		char why[VD_ERROR_MSG_MAX + 64];

		if (!vd_manifest_valid_name(names[i])) {
			snprintf(why, sizeof(why), "'%s/services/%s.yaml' is not named after a "
				 "service", dir, names[i]);
		} else if (load_one(dir, names[i], &one, &diags, &e) < 0) {
			/* the first mistake, where it is */
			if (diags.n)
				snprintf(why, sizeof(why), "%s:%d:%d: %s", diags.items[0].file,
					 diags.items[0].line, diags.items[0].col,
					 diags.items[0].msg);
			else
				snprintf(why, sizeof(why), "%s", e.msg);
		} else {
			for (size_t k = 0; k < (*out)->nservices && !other; k++)
				if (vd_manifest_listen_conflict(&(*out)->services[k],
								&one->services[0]))
					other = (*out)->services[k].name;
			if (other)
				snprintf(why, sizeof(why), "its balancer address %s:%d is already "
					 "used by service '%s'",
					 one->services[0].balancer.listen_host,
					 one->services[0].balancer.listen_port, other);
		}
		vd_diags_clear(&diags);
		if (one && !other) {
			if (take(*out, one) < 0)
				ret = vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
			continue;
		}
		vd_manifest_free(one);
		if (hold(held, nheld, names[i], why) < 0)
			ret = vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	if (ret < 0) {
		vd_manifest_free(*out);
		*out = NULL;
		vd_state_held_free(*held, *nheld);
		*held = NULL;
		*nheld = 0;
	}
	return ret;
}

void
vd_state_held_free(struct vd_state_held *held, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(held[i].service);
		free(held[i].why);
	}
	free(held);
}
