/*
 * What the autoscaling simulator is given (vd/autosim.h): service times as
 * the command line writes them, and recorded load, a CSV of requests a
 * second or the results file `vdctl load --output` writes, whose timeline
 * gives the arrivals and whose response times give a hint of the service
 * time.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vd/autosim.h"
#include "vd/cleanup.h"
#include "vd/units.h"

#define MAX_FILE_BYTES ((size_t)256 << 20)
#define MAX_SERVICE_MS (3600 * 1000)

void
vd_autosim_trace_clear(struct vd_autosim_trace *t)
{
	free(t->rate);
	memset(t, 0, sizeof(*t));
}

/* Room for one more second in T (CAP its allocation). */
static int
grow(struct vd_autosim_trace *t, size_t *cap, const char *name, struct vd_error *err)
{
	double *v;

	if (t->nsecs < *cap)
		return 0;
	if (t->nsecs >= VD_AUTOSIM_MAX_SECONDS)
		return vd_error_set(err, VD_EXIT_INPUT, "%s: more than %d seconds of load", name,
				    VD_AUTOSIM_MAX_SECONDS);
	*cap = *cap ? 2 * *cap : 1024;
	if (!(v = realloc(t->rate, *cap * sizeof(*v))))
		return vd_error_errno(err, ENOMEM, "cannot read '%s'", name);
	t->rate = v;
	return 0;
}

/* ========================================================= service time */

char *
vd_autosim_format_s(double sec, char *buf, size_t size)
{
	double ms = sec * 1000;

	if (fabs(ms - round(ms)) < 1e-6)
		return vd_units_format_duration_ms((int64_t)llround(ms), buf, size);
	snprintf(buf, size, "%.1fms", ms);
	return buf;
}

char *
vd_autosim_service_format(const struct vd_autosim_service *s, char *buf, size_t size)
{
	char v[32];
	size_t len;

	switch (s->dist) {
	case VD_AUTOSIM_DIST_FIXED:
		snprintf(buf, size, "%s", vd_autosim_format_s(s->mean_s, v, sizeof(v)));
		break;
	case VD_AUTOSIM_DIST_EXP:
		snprintf(buf, size, "exponential, mean %s",
			 vd_autosim_format_s(s->mean_s, v, sizeof(v)));
		break;
	case VD_AUTOSIM_DIST_QUANTILES:
		buf[0] = 0;
		for (size_t i = 0; i < s->nq && (len = strlen(buf)) < size; i++)
			snprintf(buf + len, size - len, "%sp%g %s", i ? ", " : "", s->q[i] * 100,
				 vd_autosim_format_s(s->value_s[i], v, sizeof(v)));
		len = strlen(buf);
		if (len < size)
			snprintf(buf + len, size - len, " (mean %s)",
				 vd_autosim_format_s(vd_autosim_service_mean(s), v, sizeof(v)));
		break;
	}
	return buf;
}

/* The duration in P's LEN bytes, in seconds: more than 0 (or 0 when
 * ZERO_OK), at most 1h. */
static int
parse_duration(const char *p, size_t len, double *sec, bool zero_ok, struct vd_error *err)
{
	char buf[64];
	int64_t ms;

	if (len >= sizeof(buf))
		return vd_error_set(err, VD_EXIT_INPUT, "'%.*s' is too long", (int)len, p);
	memcpy(buf, p, len);
	buf[len] = 0;
	if (vd_units_parse_duration_ms(buf, &ms, err) < 0)
		return vd_error_wrap(err, "'%s'", buf);
	if (ms > MAX_SERVICE_MS || (ms == 0 && !zero_ok))
		return vd_error_set(err, VD_EXIT_INPUT,
				    "'%s': must be more than 0 and at most "
				    "1h",
				    buf);
	*sec = (double)ms / 1000;
	return 0;
}

int
vd_autosim_service_parse(const char *s, struct vd_autosim_service *out, struct vd_error *err)
{
	struct vd_autosim_service sv = { .dist = VD_AUTOSIM_DIST_FIXED };
	const char *p = s;

	if (strncmp(s, "exp:", 4) == 0) {
		sv.dist = VD_AUTOSIM_DIST_EXP;
		p += 4;
	} else if (s[0] == 'p' && strchr(s, '=')) {
		sv.dist = VD_AUTOSIM_DIST_QUANTILES;
	}
	if (sv.dist != VD_AUTOSIM_DIST_QUANTILES) {
		if (parse_duration(p, strlen(p), &sv.mean_s, false, err) < 0)
			return -1;
		*out = sv;
		return 0;
	}
	while (*p) {
		size_t len = strcspn(p, ",");
		const char *eq = memchr(p, '=', len);
		char *end;
		double q;

		if (sv.nq == VD_AUTOSIM_MAX_QUANTILES)
			return vd_error_set(err, VD_EXIT_INPUT, "at most %d quantiles",
					    VD_AUTOSIM_MAX_QUANTILES);
		if (p[0] != 'p' || !eq)
			return vd_error_set(err, VD_EXIT_INPUT,
					    "'%.*s': expected pN=DURATION, "
					    "e.g. p95=150ms",
					    (int)len, p);
		errno = 0;
		q = strtod(p + 1, &end);
		if (end != eq || end == p + 1 || errno || !(q >= 0 && q <= 100))
			return vd_error_set(err, VD_EXIT_INPUT, "'%.*s': a quantile is p0 to p100",
					    (int)(eq - p), p);
		if (parse_duration(eq + 1, len - (size_t)(eq + 1 - p), &sv.value_s[sv.nq], true,
				   err) < 0)
			return -1;
		sv.q[sv.nq] = q / 100;
		if (sv.nq && sv.q[sv.nq] <= sv.q[sv.nq - 1])
			return vd_error_set(err, VD_EXIT_INPUT, "'%.*s': quantiles must go up",
					    (int)len, p);
		if (sv.nq && sv.value_s[sv.nq] < sv.value_s[sv.nq - 1])
			return vd_error_set(err, VD_EXIT_INPUT,
					    "'%.*s': less than the quantile "
					    "before it",
					    (int)len, p);
		sv.nq++;
		p += len;
		if (*p == ',' && *++p == 0)
			return vd_error_set(err, VD_EXIT_INPUT, "a quantile is missing after ','");
	}
	if (!(vd_autosim_service_mean(&sv) > 0))
		return vd_error_set(err, VD_EXIT_INPUT, "a mean service time of 0");
	*out = sv;
	return 0;
}

/* ================================================================== csv */

/* A number filling the field [P, P+LEN), spaces around it allowed. */
static bool
field_number(const char *p, size_t len, double *v)
{
	char buf[64], *end;

	while (len && (*p == ' ' || *p == '\t')) {
		p++;
		len--;
	}
	while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
		len--;
	if (!len || len >= sizeof(buf))
		return false;
	memcpy(buf, p, len);
	buf[len] = 0;
	errno = 0;
	*v = strtod(buf, &end);
	return !*end && !errno && isfinite(*v);
}

int
vd_autosim_trace_parse_csv(const char *name, const char *buf, size_t len,
			   struct vd_autosim_trace *t, struct vd_error *err)
{
	const char *p = buf, *end = buf + len;
	size_t cap = 0, lineno = 0;
	double second = 0, prev = 0;
	int columns = 0; /* of the data lines: 1 or 2, 0 before the first */
	bool seen = false;

	memset(t, 0, sizeof(*t));
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl ? nl : end) - p), comma;
		const char *line = p, *sep;
		double rate;
		int cols;

		p = nl ? nl + 1 : end;
		lineno++;
		if (n && line[n - 1] == '\r')
			n--;
		while (n && (*line == ' ' || *line == '\t')) {
			line++;
			n--;
		}
		if (!n || line[0] == '#')
			continue;
		sep = memchr(line, ',', n);
		comma = sep ? (size_t)(sep - line) : n;
		cols = comma < n ? 2 : 1;
		if (cols == 2 && memchr(line + comma + 1, ',', n - comma - 1)) {
			vd_error_set(err, VD_EXIT_INPUT,
				     "%s:%zu: more than 2 columns (expected "
				     "SECOND,RATE or RATE)",
				     name, lineno);
			goto fail;
		}
		if (!(cols == 1 ? field_number(line, n, &rate)
				: field_number(line, comma, &second) &&
					  field_number(line + comma + 1, n - comma - 1, &rate))) {
			if (!seen) { /* a header */
				seen = true;
				continue;
			}
			vd_error_set(err, VD_EXIT_INPUT,
				     "%s:%zu: '%.*s' is not SECOND,RATE or RATE", name, lineno,
				     (int)(n > 60 ? 60 : n), line);
			goto fail;
		}
		seen = true;
		if (columns && cols != columns) {
			vd_error_set(err, VD_EXIT_INPUT, "%s:%zu: %d column%s here, %d before",
				     name, lineno, cols, cols == 1 ? "" : "s", columns);
			goto fail;
		}
		columns = cols;
		if (cols == 2 && (second != floor(second) || fabs(second) > 1e15)) {
			vd_error_set(err, VD_EXIT_INPUT,
				     "%s:%zu: second '%g' is not a whole number", name, lineno,
				     second);
			goto fail;
		}
		if (cols == 2 && t->nsecs && second != prev + 1) {
			vd_error_set(err, VD_EXIT_INPUT,
				     "%s:%zu: second %.0f after %.0f (seconds "
				     "follow one another)",
				     name, lineno, second, prev);
			goto fail;
		}
		prev = second;
		if (!(rate >= 0 && rate <= VD_AUTOSIM_MAX_RATE)) {
			vd_error_set(err, VD_EXIT_INPUT, "%s:%zu: rate %g is not from 0 to %g",
				     name, lineno, rate, VD_AUTOSIM_MAX_RATE);
			goto fail;
		}
		if (grow(t, &cap, name, err) < 0)
			goto fail;
		t->rate[t->nsecs++] = rate;
	}
	if (!t->nsecs) {
		vd_error_set(err, VD_EXIT_INPUT, "%s: no second of load in it", name);
		goto fail;
	}
	return 0;
fail:
	vd_autosim_trace_clear(t);
	return -1;
}

/* ============================================================= results */

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double
median(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The service-time hint: each second's min, median, p95 and p99 (in ms),
 * the median of each over the seconds with responses. */
static void
hint(json_t *tl, struct vd_autosim_trace *t, double *scratch)
{
	static const char *const keys[] = { "min", "median", "p95", "p99" };
	static const double q[] = { 0, 0.5, 0.95, 0.99 };
	struct vd_autosim_service sv = { .dist = VD_AUTOSIM_DIST_QUANTILES };
	size_t i, k;
	json_t *e;

	for (k = 0; k < 4; k++) {
		size_t n = 0;

		json_array_foreach(tl, i, e) {
			json_t *v = json_object_get(json_object_get(e, "response_time"), keys[k]);

			if (json_number_value(json_object_get(e, "responses")) > 0 &&
			    json_is_number(v) && json_number_value(v) >= 0)
				scratch[n++] = json_number_value(v);
		}
		if (!n)
			continue;
		sv.q[sv.nq] = q[k];
		sv.value_s[sv.nq] = median(scratch, n) / 1000;
		if (sv.nq && sv.value_s[sv.nq] < sv.value_s[sv.nq - 1])
			sv.value_s[sv.nq] = sv.value_s[sv.nq - 1];
		sv.nq++;
	}
	if (sv.nq && vd_autosim_service_mean(&sv) > 0) {
		t->has_service = true;
		t->service = sv;
	}
}

int
vd_autosim_trace_parse_results(const char *name, const char *buf, size_t len,
			       struct vd_autosim_trace *t, struct vd_error *err)
{
	_cleanup_(json_decrefp) json_t *root = NULL;
	_cleanup_free_ double *scratch = NULL;
	json_error_t je;
	json_t *tl, *e;
	size_t i, cap = 0;

	memset(t, 0, sizeof(*t));
	root = json_loadb(buf, len, 0, &je);
	if (!root && je.line > 0)
		return vd_error_set(err, VD_EXIT_INPUT, "cannot read '%s': %s (line %d)", name,
				    je.text, je.line);
	if (!root)
		return vd_error_set(err, VD_EXIT_INPUT, "cannot read '%s': %s", name, je.text);
	tl = json_object_get(root, "timeline");
	if (!json_is_array(tl) || json_integer_value(json_object_get(root, "vdctl_load")) != 1)
		return vd_error_set(err, VD_EXIT_INPUT,
				    "'%s' is not a results file of vdctl "
				    "load --output",
				    name);
	json_array_foreach(tl, i, e) {
		json_t *v = json_object_get(e, "requests");
		double rate = json_number_value(v);

		if (!json_is_number(v) || !(rate >= 0 && rate <= VD_AUTOSIM_MAX_RATE)) {
			vd_error_set(err, VD_EXIT_INPUT,
				     "%s: timeline[%zu]: no requests from 0 to %g", name, i,
				     VD_AUTOSIM_MAX_RATE);
			vd_autosim_trace_clear(t);
			return -1;
		}
		if (grow(t, &cap, name, err) < 0) {
			vd_autosim_trace_clear(t);
			return -1;
		}
		t->rate[t->nsecs++] = rate;
	}
	if (!t->nsecs)
		return vd_error_set(err, VD_EXIT_INPUT, "%s: no second of load in its timeline",
				    name);
	if (!(scratch = malloc(t->nsecs * sizeof(*scratch)))) {
		vd_autosim_trace_clear(t);
		return vd_error_errno(err, ENOMEM, "cannot read '%s'", name);
	}
	hint(tl, t, scratch);
	return 0;
}

/* ================================================================ files */

/* The whole of PATH, NUL-terminated, in *out (to free). */
static int
read_whole(const char *path, char **out, size_t *len, struct vd_error *err)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *buf = NULL;
	size_t n = 0, cap = 0;
	struct stat st;
	ssize_t got;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		goto fail;
	if (S_ISDIR(st.st_mode)) {
		errno = EISDIR;
		goto fail;
	}
	for (;;) {
		if (n + 1 >= cap) {
			char *b;

			cap = cap ? 2 * cap : 65536;
			if (cap > MAX_FILE_BYTES + 1)
				return vd_error_set(err, VD_EXIT_INPUT,
						    "cannot read '%s': larger "
						    "than %zu MiB",
						    path, MAX_FILE_BYTES >> 20);
			if (!(b = realloc(buf, cap)))
				return vd_error_errno(err, ENOMEM, "cannot read '%s'", path);
			buf = b;
		}
		got = read(fd, buf + n, cap - n - 1);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			goto fail;
		if (got == 0)
			break;
		n += (size_t)got;
	}
	buf[n] = 0;
	*out = vd_steal_ptr(&buf);
	*len = n;
	return 0;
fail:
	vd_error_errno(err, errno, "cannot read '%s'", path);
	err->code = VD_EXIT_INPUT;
	return -1;
}

int
vd_autosim_trace_read_csv(const char *path, struct vd_autosim_trace *t, struct vd_error *err)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;

	memset(t, 0, sizeof(*t));
	if (read_whole(path, &buf, &len, err) < 0)
		return -1;
	return vd_autosim_trace_parse_csv(path, buf, len, t, err);
}

int
vd_autosim_trace_read_results(const char *path, struct vd_autosim_trace *t, struct vd_error *err)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;

	memset(t, 0, sizeof(*t));
	if (read_whole(path, &buf, &len, err) < 0)
		return -1;
	return vd_autosim_trace_parse_results(path, buf, len, t, err);
}
