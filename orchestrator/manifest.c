/*
 * Manifests: YAML files in, validated services out, and every mistake in
 * them as "FILE:LINE:COL: message" (format v1, man/vdctl-manifest.5).
 *
 * Three stages, one section each below:
 *  1. the reader (orchestrator/ytree.c) turns each file into trees of
 *     nodes under hard limits, refusing anchors, aliases and tags;
 *  2. the checker walks each document with the table of keys below (name,
 *     type, where the value goes, range), then applies the rules that tie
 *     fields together, then fills in the defaults that depend on others;
 *  3. the loader checks the set (unique names, distinct listen addresses),
 *     sorts the diagnostics into file order and decides.
 * The same table writes a service back out as JSON (the last section), so a
 * field added to it is read and written alike.
 * Nothing stops at the first mistake: the reader stops only at a YAML error
 * or a limit, the checker never.
 */
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "vd/cleanup.h"
#include "vd/driver.h"
#include "vd/manifest.h"
#include "vd/signals.h"
#include "vd/units.h"
#include "vd/ytree.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* enum keys store their index through an int pointer */
_Static_assert(sizeof(enum vd_backend) == sizeof(int) && sizeof(enum vd_accel) == sizeof(int) &&
		       sizeof(enum vd_lb_policy) == sizeof(int),
	       "enums are ints");
_Static_assert(VD_MANIFEST_JSON_UNITS == VD_YJSON_UNITS, "one flag");

static const struct vd_ytree_opts manifest_limits = {
	.what = "manifests",
	.max_bytes = VD_MANIFEST_MAX_BYTES,
	.max_value = VD_MANIFEST_MAX_SCALAR,
	.max_nodes = VD_MANIFEST_MAX_NODES,
	.max_depth = VD_MANIFEST_MAX_DEPTH,
};

/* =================================================================== names */

static const char *const backend_names[] = { "docker", "libvirt", NULL };
static const char *const accel_names[] = { "auto", "kvm", "tcg", NULL };
static const char *const policy_names[] = { "round-robin", "least-outstanding", "p2c", NULL };
static const char *const client_gone_names[] = { "finish", "abort", NULL };
static const char *const health_names[] = { "tcp", "http", NULL };

static const char *
enum_name(const char *const *names, size_t n, int v)
{
	return v >= 0 && (size_t)v < n - 1 ? names[v] : "unknown";
}

const char *
vd_manifest_backend_name(enum vd_backend b)
{
	return enum_name(backend_names, ARRAY_SIZE(backend_names), (int)b);
}

const char *
vd_manifest_accel_name(enum vd_accel a)
{
	return enum_name(accel_names, ARRAY_SIZE(accel_names), (int)a);
}

const char *
vd_manifest_policy_name(enum vd_lb_policy p)
{
	return enum_name(policy_names, ARRAY_SIZE(policy_names), (int)p);
}

const char *
vd_manifest_health_name(enum vd_health_kind k)
{
	return enum_name(health_names, ARRAY_SIZE(health_names), (int)k);
}

/* =================================================================== state */

/* Where each service of the set names itself and listens, for the checks
 * across documents and files; parallel to manifest->services. */
struct placed {
	size_t file_index;
	int name_line, name_col;     /* 0 when the name is invalid */
	int listen_line, listen_col; /* 0 without a valid balancer listen */
};

struct loader {
	struct vd_manifest *m;
	size_t cap;
	struct placed *placed;
	struct vd_diag_file df; /* the file being read, its diagnostics, oom */
};

/* ========================================================== 2. the checker */

/* Every key, so that the rules between fields can ask whether it was given
 * (at[]) and whether its value was good (!bad[]). */
enum field {
	F_SERVICE, F_BACKEND, F_IMAGE, F_VM, F_KERNEL, F_INITRD, F_CMDLINE, F_DISK, F_ACCEL,
	F_COMMAND, F_ENV, F_PORT, F_REPLICAS,
	F_RESOURCES, F_CPUS, F_MEMORY,
	F_HEALTH, F_HTTP, F_TCP, F_INTERVAL, F_TIMEOUT, F_RETRIES, F_START_PERIOD,
	F_BALANCER, F_LISTEN, F_POLICY, F_MAX_INFLIGHT, F_QUEUE_LIMIT, F_QUEUE_TIMEOUT,
	F_ON_CLIENT_GONE,
	F_AUTOSCALE, F_MIN, F_MAX, F_TARGET_P95, F_TARGET_QUEUE, F_UP_WINDOW, F_DOWN_WINDOW,
	F_COOLDOWN, F_UP_COOLDOWN, F_TOLERANCE, F_UTILISATION,
	F_UPDATE, F_MAX_SURGE, F_MAX_UNAVAILABLE,
	F_COUNT
};

/* One service document being checked. c.base is &s, c.arg the draft, and
 * c.variant the backend (-1 while unknown). */
struct draft {
	struct loader *l;
	struct vd_ycheck c;
	struct vd_service s;
	const struct vd_ynode *root;
	const char *name;  /* the service's name for messages, or NULL */
	char owner[64];    /* "service 'NAME'" */
	bool tcp;          /* health.tcp */
	const struct vd_ynode *at[F_COUNT]; /* each key's value node, when given */
	bool bad[F_COUNT];                  /* the value was refused */
};

#define SVC(member) offsetof(struct vd_service, member)
#define ONLY(backend) ((backend) + 1)

static void
diag(struct draft *d, const struct vd_ynode *at, const char *fmt, ...) VD_PRINTF(3, 4);

static void
diag(struct draft *d, const struct vd_ynode *at, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vd_diag_vat(&d->l->df, at->line, at->col, fmt, ap);
	va_end(ap);
}

/* " in service 'web'", or "" while the name is unknown. */
static const char *
in_service(const struct draft *d, char *buf, size_t size)
{
	if (!d->name)
		return "";
	snprintf(buf, size, " in service '%s'", d->name);
	return buf;
}

#define IN_SERVICE(d) in_service((d), (char[64]){ 0 }, 64)

/* ----------------------------------------------------------------- setters */

static bool
has_space_or_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || *s == 0x7f)
			return true;
	return false;
}

bool
vd_manifest_valid_name(const char *s)
{
	size_t i;

	if (!(s[0] >= 'a' && s[0] <= 'z'))
		return false;
	for (i = 1; s[i]; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return i <= 40;
}

/* A string key whose value must pass OK (else REASON), said to be EXPECTED
 * when it is not a value at all. */
static int
set_checked(struct vd_ycheck *c, const struct vd_ykey *k, const char *path,
	    const struct vd_ynode *v, const char *expected, bool (*ok)(const char *),
	    const char *reason)
{
	const char *s = vd_ytree_scalar(c, v, path, expected);

	if (!s)
		return -1;
	if (!ok(s))
		return vd_ytree_bad_value(c, v, path, reason);
	return vd_ytree_string(c, v, path, vd_ytree_field(c, k));
}

static int
set_name(struct vd_ycheck *c, const struct vd_ykey *k, const char *path,
	 const struct vd_ynode *v)
{
	return set_checked(c, k, path, v, "a name", vd_manifest_valid_name,
			   "a service name is 1 to 40 lowercase letters, digits and '-', "
			   "starting with a letter");
}

static bool
valid_image(const char *s)
{
	return !has_space_or_control(s);
}

static int
set_image(struct vd_ycheck *c, const struct vd_ykey *k, const char *path,
	  const struct vd_ynode *v)
{
	return set_checked(c, k, path, v, "an image reference", valid_image,
			   "an image reference has no spaces");
}

static bool
valid_url_path(const char *s)
{
	return s[0] == '/' && !has_space_or_control(s);
}

static int
set_http_path(struct vd_ycheck *c, const struct vd_ykey *k, const char *path,
	      const struct vd_ynode *v)
{
	return set_checked(c, k, path, v, "a URL path", valid_url_path, "expected a URL path "
			   "starting with '/', without spaces, e.g. /healthz");
}

/* health.tcp lives in the draft: the service has health.kind. */
static int
set_tcp(struct vd_ycheck *c, const struct vd_ykey *k, const char *path,
	const struct vd_ynode *v)
{
	struct draft *d = c->arg;

	(void)k;
	return vd_ytree_bool(c, v, path, &d->tcp);
}

/* ----------------------------------------------------------------- command */

static void
free_strv(char **v, size_t n)
{
	for (size_t i = 0; i < n && v; i++)
		free(v[i]);
	free(v);
}

/* Split S into words as a POSIX shell would, without any expansion:
 * whitespace separates, '...' is literal, "..." honours \" \\ \$ \`, and a
 * backslash outside quotes escapes the next character. Returns NULL with
 * *why set for malformed input, or NULL with *why NULL when out of memory. */
static char **
split_words(const char *s, size_t *count, const char **why)
{
	_cleanup_free_ char *word = malloc(strlen(s) + 1);
	char **argv = calloc(strlen(s) / 2 + 2, sizeof(*argv));
	const char *p = s;
	size_t n = 0;

	*why = NULL;
	if (!word || !argv)
		goto fail;
	for (;;) {
		size_t w = 0;

		p += strspn(p, " \t\n");
		if (!*p)
			break;
		while (*p && !strchr(" \t\n", *p)) {
			if (*p == '\'') {
				const char *end = strchr(p + 1, '\'');

				if (!end) {
					*why = "unterminated single quote";
					goto fail;
				}
				memcpy(word + w, p + 1, (size_t)(end - p - 1));
				w += (size_t)(end - p - 1);
				p = end + 1;
			} else if (*p == '"') {
				for (p++; *p && *p != '"'; p++) {
					if (*p == '\\' && p[1] && strchr("\"\\$`", p[1]))
						p++;
					word[w++] = *p;
				}
				if (!*p) {
					*why = "unterminated double quote";
					goto fail;
				}
				p++;
			} else if (*p == '\\') {
				if (!p[1]) {
					*why = "backslash at the end";
					goto fail;
				}
				word[w++] = p[1];
				p += 2;
			} else {
				word[w++] = *p++;
			}
		}
		argv[n] = strndup(word, w);
		if (!argv[n])
			goto fail;
		n++;
	}
	*count = n;
	return argv;
fail:
	free_strv(argv, n);
	return NULL;
}

static int
command_from_list(struct draft *d, const char *path, const struct vd_ynode *v)
{
	struct vd_service *s = &d->s;
	int ret = 0;

	s->command = calloc(v->n + 1, sizeof(*s->command));
	if (!s->command) {
		d->l->df.oom = true;
		return -1;
	}
	for (size_t i = 0; i < v->n; i++) {
		const struct vd_ynode *item = v->kids[i];

		if (item->kind != VD_YSCALAR) {
			if (item->kind != VD_YALIAS)
				diag(d, item, "'%s' items must be strings, not %s", path,
				     VD_YTREE_WHAT(item));
			ret = -1;
			continue;
		}
		s->command[s->ncommand] = strdup(item->text);
		if (!s->command[s->ncommand])
			d->l->df.oom = true;
		else
			s->ncommand++;
	}
	return ret;
}

static int
set_command(struct vd_ycheck *c, const struct vd_ykey *k, const char *path,
	    const struct vd_ynode *v)
{
	struct draft *d = c->arg;
	const char *why;
	size_t n = 0;
	char **argv;

	(void)k;
	if (v->kind == VD_YSEQ) {
		if (v->n == 0) {
			diag(d, v, "'%s' must not be empty (leave it out for the "
			     "image's default)", path);
			return -1;
		}
		return command_from_list(d, path, v);
	}
	if (!vd_ytree_scalar(c, v, path, "a list or a string"))
		return -1;
	argv = split_words(v->text, &n, &why);
	if (!argv) {
		if (why)
			return vd_ytree_bad_value(c, v, path, why);
		d->l->df.oom = true;
		return -1;
	}
	if (n == 0) {
		free(argv);
		return vd_ytree_bad_value(c, v, path, "no words in the command");
	}
	d->s.command = argv;
	d->s.ncommand = n;
	return 0;
}

/* --------------------------------------------------------------------- env */

static bool
valid_env_name(const char *s)
{
	if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
		return false;
	for (s++; *s; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_' ||
		      (*s >= '0' && *s <= '9')))
			return false;
	return true;
}

static int
add_env(struct draft *d, const struct vd_ynode *key, const struct vd_ynode *val)
{
	struct vd_service *s = &d->s;

	if (key->kind != VD_YSCALAR || val->kind != VD_YSCALAR) {
		const struct vd_ynode *at = key->kind != VD_YSCALAR ? key : val;

		if (at->kind != VD_YALIAS)
			diag(d, at, "'env' %ss must be strings, not %s",
			     at == key ? "name" : "value", VD_YTREE_WHAT(at));
		return -1;
	}
	if (!valid_env_name(key->text)) {
		diag(d, key, "invalid environment variable name '%s' in 'env' "
		     "(letters, digits and '_', not starting with a digit)", VD_SHOW(key->text));
		return -1;
	}
	/* a plain empty value (KEY:) is the empty string; others as written */
	if (asprintf(&s->env[s->nenv], "%s=%s", key->text, vd_ytree_is_null(val) &&
		     !val->text[0] ? "" : val->text) < 0) {
		s->env[s->nenv] = NULL;
		d->l->df.oom = true;
		return -1;
	}
	s->nenv++;
	return 0;
}

static int
set_env(struct vd_ycheck *c, const struct vd_ykey *k, const char *path,
	const struct vd_ynode *v)
{
	struct draft *d = c->arg;
	int ret = 0;

	(void)k;
	if (v->kind != VD_YMAP) {
		if (v->kind != VD_YALIAS)
			diag(d, v, "'%s' must be a mapping of names to values, not %s",
			     path, VD_YTREE_WHAT(v));
		return -1;
	}
	d->s.env = calloc(v->n / 2 + 1, sizeof(*d->s.env));
	if (!d->s.env) {
		d->l->df.oom = true;
		return -1;
	}
	for (size_t i = 0; i + 1 < v->n; i += 2)
		if (!v->kids[i]->dup && add_env(d, v->kids[i], v->kids[i + 1]) < 0)
			ret = -1;
	return ret;
}

static int
set_listen(struct vd_ycheck *c, const struct vd_ykey *k, const char *path,
	   const struct vd_ynode *v)
{
	struct draft *d = c->arg;
	struct vd_error e = VD_ERROR_INIT;
	const char *s = vd_ytree_scalar(c, v, path, "an address HOST:PORT");
	char *host;
	int port;

	(void)k;
	if (!s)
		return -1;
	if (vd_units_parse_hostport(s, &host, &port, &e) < 0)
		return vd_ytree_bad_value(c, v, path, e.msg);
	free(d->s.balancer.listen_host);
	d->s.balancer.listen_host = host;
	d->s.balancer.listen_port = port;
	return 0;
}

/* ------------------------------------------------------------------- table */

static const struct vd_ykey vm_keys[] = {
	{ .name = "kernel", .field = F_KERNEL, .type = VD_YSTRING, .off = SVC(vm.kernel) },
	{ .name = "initrd", .field = F_INITRD, .type = VD_YSTRING, .off = SVC(vm.initrd) },
	{ .name = "cmdline", .field = F_CMDLINE, .type = VD_YSTRING, .off = SVC(vm.cmdline) },
	{ .name = "disk", .field = F_DISK, .type = VD_YSTRING, .off = SVC(vm.disk) },
	{ .name = "accel", .field = F_ACCEL, .type = VD_YENUM, .off = SVC(vm.accel),
	  .arg = accel_names },
};

static const struct vd_ykey resources_keys[] = {
	{ .name = "cpus", .field = F_CPUS, .type = VD_YCPUS, .off = SVC(milli_cpus) },
	{ .name = "memory", .field = F_MEMORY, .type = VD_YSIZE, .off = SVC(memory_bytes) },
};

static int put_tcp(const struct vd_ykey *k, const void *base, unsigned flags, json_t **out);
static int put_listen(const struct vd_ykey *k, const void *base, unsigned flags,
		      json_t **out);
static int put_command(const struct vd_ykey *k, const void *base, unsigned flags,
		       json_t **out);
static int put_env(const struct vd_ykey *k, const void *base, unsigned flags, json_t **out);

static const struct vd_ykey health_keys[] = {
	{ .name = "http", .field = F_HTTP, .type = VD_YSTRING, .off = SVC(health.http_path),
	  .set = set_http_path },
	{ .name = "tcp", .field = F_TCP, .type = VD_YCUSTOM, .set = set_tcp, .put = put_tcp },
	{ .name = "interval", .field = F_INTERVAL, .type = VD_YDURATION,
	  .off = SVC(health.interval_ms), .min = 1 },
	{ .name = "timeout", .field = F_TIMEOUT, .type = VD_YDURATION,
	  .off = SVC(health.timeout_ms), .min = 1 },
	{ .name = "retries", .field = F_RETRIES, .type = VD_YINT, .off = SVC(health.retries),
	  .min = 1, .max = 100 },
	{ .name = "start_period", .field = F_START_PERIOD, .type = VD_YDURATION,
	  .off = SVC(health.start_period_ms) },
};

static const struct vd_ykey balancer_keys[] = {
	{ .name = "listen", .field = F_LISTEN, .type = VD_YCUSTOM, .set = set_listen,
	  .put = put_listen },
	{ .name = "policy", .field = F_POLICY, .type = VD_YENUM, .off = SVC(balancer.policy),
	  .arg = policy_names },
	{ .name = "max_inflight", .field = F_MAX_INFLIGHT, .type = VD_YINT,
	  .off = SVC(balancer.max_inflight), .min = 0, .max = 100000 },
	{ .name = "queue_limit", .field = F_QUEUE_LIMIT, .type = VD_YINT,
	  .off = SVC(balancer.queue_limit), .min = 0, .max = 1000000 },
	{ .name = "queue_timeout", .field = F_QUEUE_TIMEOUT, .type = VD_YDURATION,
	  .off = SVC(balancer.queue_timeout_ms), .min = 1 },
	{ .name = "on_client_gone", .field = F_ON_CLIENT_GONE, .type = VD_YENUM,
	  .off = SVC(balancer.on_client_gone), .arg = client_gone_names },
};

static const struct vd_ykey autoscale_keys[] = {
	{ .name = "min", .field = F_MIN, .type = VD_YINT, .off = SVC(autoscale.min),
	  .min = 0, .max = 1000 },
	{ .name = "max", .field = F_MAX, .type = VD_YINT, .off = SVC(autoscale.max),
	  .min = 1, .max = 1000 },
	{ .name = "target_p95", .field = F_TARGET_P95, .type = VD_YDURATION,
	  .off = SVC(autoscale.target_p95_ms), .min = 1 },
	{ .name = "target_queue", .field = F_TARGET_QUEUE, .type = VD_YNUMBER,
	  .off = SVC(autoscale.target_queue), .min = 0, .max = 1000000 },
	{ .name = "up_window", .field = F_UP_WINDOW, .type = VD_YDURATION,
	  .off = SVC(autoscale.up_window_ms), .min = 1 },
	{ .name = "down_window", .field = F_DOWN_WINDOW, .type = VD_YDURATION,
	  .off = SVC(autoscale.down_window_ms), .min = 1 },
	{ .name = "cooldown", .field = F_COOLDOWN, .type = VD_YDURATION,
	  .off = SVC(autoscale.cooldown_ms), .min = 0 },
	{ .name = "up_cooldown", .field = F_UP_COOLDOWN, .type = VD_YDURATION,
	  .off = SVC(autoscale.up_cooldown_ms), .min = 0 },
	{ .name = "tolerance", .field = F_TOLERANCE, .type = VD_YNUMBER,
	  .off = SVC(autoscale.tolerance), .min = 0, .max = 1 },
	{ .name = "utilisation", .field = F_UTILISATION, .type = VD_YNUMBER,
	  .off = SVC(autoscale.utilisation), .min = 0, .max = 1 },
};

static const struct vd_ykey update_keys[] = {
	{ .name = "max_surge", .field = F_MAX_SURGE, .type = VD_YINT,
	  .off = SVC(update.max_surge), .min = 0, .max = 1000 },
	{ .name = "max_unavailable", .field = F_MAX_UNAVAILABLE, .type = VD_YINT,
	  .off = SVC(update.max_unavailable), .min = 0, .max = 1000 },
};

#define SECTION(name, keys, enabled) \
	static const struct vd_ysection name##_section = { #name, keys, ARRAY_SIZE(keys), enabled }

SECTION(vm, vm_keys, 0);
SECTION(resources, resources_keys, 0);
SECTION(health, health_keys, 0);
SECTION(balancer, balancer_keys, 1 + SVC(balancer.enabled));
SECTION(autoscale, autoscale_keys, 1 + SVC(autoscale.enabled));
SECTION(update, update_keys, 0);

static const struct vd_ykey service_keys[] = {
	{ .name = "service", .field = F_SERVICE, .type = VD_YSTRING, .off = SVC(name),
	  .set = set_name },
	{ .name = "backend", .field = F_BACKEND, .type = VD_YENUM, .off = SVC(backend),
	  .arg = backend_names },
	{ .name = "image", .field = F_IMAGE, .type = VD_YSTRING, .off = SVC(image),
	  .set = set_image, .only = ONLY(VD_BACKEND_DOCKER) },
	{ .name = "vm", .field = F_VM, .type = VD_YSECTION, .arg = &vm_section,
	  .only = ONLY(VD_BACKEND_LIBVIRT) },
	{ .name = "command", .field = F_COMMAND, .type = VD_YCUSTOM, .set = set_command,
	  .put = put_command },
	{ .name = "env", .field = F_ENV, .type = VD_YCUSTOM, .set = set_env, .put = put_env },
	{ .name = "port", .field = F_PORT, .type = VD_YINT, .off = SVC(port), .min = 1,
	  .max = 65535 },
	{ .name = "replicas", .field = F_REPLICAS, .type = VD_YINT, .off = SVC(replicas),
	  .min = 0, .max = 1000 },
	{ .name = "resources", .field = F_RESOURCES, .type = VD_YSECTION,
	  .arg = &resources_section },
	{ .name = "health", .field = F_HEALTH, .type = VD_YSECTION, .arg = &health_section },
	{ .name = "balancer", .field = F_BALANCER, .type = VD_YSECTION,
	  .arg = &balancer_section },
	{ .name = "autoscale", .field = F_AUTOSCALE, .type = VD_YSECTION,
	  .arg = &autoscale_section },
	{ .name = "update", .field = F_UPDATE, .type = VD_YSECTION, .arg = &update_section },
};

static const struct vd_ysection service_section = {
	NULL, service_keys, ARRAY_SIZE(service_keys), 0
};

static void
wrong_backend(struct vd_ycheck *c, const struct vd_ykey *k, const struct vd_ynode *key)
{
	struct draft *d = c->arg;

	diag(d, key, "'%s' is a %s key, but %s%s%s uses backend %s", k->name,
	     backend_names[k->only - 1], d->name ? "service '" : "this service",
	     d->name ? d->name : "", d->name ? "'" : "", backend_names[c->variant]);
}

/* ------------------------------------------------------ rules and defaults */

/* The text of top-level KEY in ROOT when it is a scalar, or NULL. */
static const char *
peek(const struct vd_ynode *root, const char *key)
{
	const struct vd_ynode *v = vd_ytree_get(root, key);

	return v && v->kind == VD_YSCALAR ? v->text : NULL;
}

/* The service's name and backend, known before its keys are checked in
 * order, so that every message can name the service and the keys of the
 * other backend are recognised wherever they come. */
static void
prescan(struct draft *d)
{
	const char *name = peek(d->root, "service");
	const char *backend = peek(d->root, "backend");

	d->name = name && vd_manifest_valid_name(name) ? name : NULL;
	if (d->name)
		snprintf(d->owner, sizeof(d->owner), "service '%s'", d->name);
	d->c.owner = d->name ? d->owner : NULL;
	d->c.variant = -1;
	for (int i = 0; backend && backend_names[i]; i++)
		if (strcmp(backend, backend_names[i]) == 0)
			d->c.variant = i;
}

static void
set_defaults(struct vd_service *s)
{
	s->port = 8080;
	s->milli_cpus = 1000;
	s->memory_bytes = 256 * VD_MIB;
	s->vm.accel = VD_ACCEL_AUTO;
	s->health.kind = VD_HEALTH_TCP;
	s->health.interval_ms = 2000;
	s->health.timeout_ms = 1000;
	s->health.retries = 3;
	s->health.start_period_ms = 10000;
	s->balancer.policy = VD_LB_LEAST_OUTSTANDING;
	s->balancer.max_inflight = 0;
	s->balancer.queue_limit = 1000;
	s->balancer.queue_timeout_ms = 60000;
	s->autoscale.min = 1;
	s->autoscale.max = 10;
	s->autoscale.up_window_ms = 10000;
	s->autoscale.down_window_ms = 120000;
	s->autoscale.cooldown_ms = 30000;
	s->autoscale.up_cooldown_ms = 0;
	s->autoscale.tolerance = 0.1;
	s->autoscale.utilisation = 0.7;
	s->update.max_surge = 1;
	s->update.max_unavailable = 0;
}

/* Given and accepted. */
static bool
good(const struct draft *d, enum field f)
{
	return d->at[f] && !d->bad[f];
}

static void
require(struct draft *d, enum field f, const char *key, const char *why)
{
	if (!d->at[f])
		diag(d, d->root, "missing required key '%s'%s%s", key, IN_SERVICE(d), why);
}

static void
check_required(struct draft *d)
{
	require(d, F_SERVICE, "service", "");
	require(d, F_BACKEND, "backend", " (docker or libvirt)");
	if (d->c.variant == VD_BACKEND_DOCKER)
		require(d, F_IMAGE, "image", " (backend docker runs an image)");
	if (d->c.variant == VD_BACKEND_LIBVIRT)
		require(d, F_VM, "vm", " (backend libvirt boots a kernel or a disk)");
	require(d, F_REPLICAS, "replicas", "");
}

/* What the engine enforces at the least (vd/driver.h). */
static void
check_cpus(struct draft *d)
{
	int64_t min = vd_driver_min_milli_cpus(d->c.variant);
	char reason[96], m[16];

	if (good(d, F_CPUS) && d->s.milli_cpus < min) {
		snprintf(reason, sizeof(reason), "engines enforce at least %s cpus",
			 vd_units_format_milli_cpus(min, m, sizeof(m)));
		vd_ytree_bad_value(&d->c, d->at[F_CPUS], "resources.cpus", reason);
	}
}

static void
check_memory(struct draft *d)
{
	int64_t min = vd_driver_min_memory(d->c.variant);
	const struct vd_ynode *v = d->at[F_MEMORY];
	char reason[96];

	if (!good(d, F_MEMORY))
		return;
	if (d->s.memory_bytes < min) {
		snprintf(reason, sizeof(reason), "%s%s needs at least %" PRId64 " MiB",
			 d->c.variant >= 0 ? "backend " : "a replica",
			 d->c.variant >= 0 ? backend_names[d->c.variant] : "", min / VD_MIB);
		vd_ytree_bad_value(&d->c, v, "resources.memory", reason);
	} else if (d->s.memory_bytes > VD_TIB) {
		vd_ytree_bad_value(&d->c, v, "resources.memory", "must be at most 1Ti");
	}
}

static void
check_vm(struct draft *d)
{
	const struct vd_ynode *vm = d->at[F_VM];

	if (!vm || vm->kind != VD_YMAP)
		return;
	if (d->at[F_KERNEL] && d->at[F_DISK])
		diag(d, d->at[F_DISK], "'vm.kernel' and 'vm.disk' exclude each other: "
		     "boot a kernel (with an initrd) or a disk image");
	else if (!d->at[F_KERNEL] && !d->at[F_DISK])
		diag(d, vm, "'vm' needs 'kernel' (with 'initrd') or 'disk'");
	if (d->at[F_INITRD] && !d->at[F_KERNEL])
		diag(d, d->at[F_INITRD], "'vm.initrd' needs 'vm.kernel'");
	if (d->at[F_CMDLINE] && !d->at[F_KERNEL])
		diag(d, d->at[F_CMDLINE], "'vm.cmdline' needs 'vm.kernel' (a disk image "
		     "boots with its own command line)");
	/* a VM's words reach its /init on one line (QEMU's fw_cfg string) */
	for (size_t i = 0; d->at[F_COMMAND] && i < d->s.ncommand; i++)
		if (strpbrk(d->s.command[i], "\n\t\r")) {
			diag(d, d->at[F_COMMAND], "'command' of a libvirt service cannot hold a "
			     "newline or a tab: its words reach the guest on one line");
			break;
		}
	for (size_t i = 0; d->at[F_ENV] && i < d->s.nenv; i++)
		if (strpbrk(d->s.env[i], "\n\t\r")) {
			diag(d, d->at[F_ENV], "'env' of a libvirt service cannot hold a newline "
			     "or a tab: it reaches the guest on one line");
			break;
		}
}

static void
check_health(struct draft *d)
{
	if (!good(d, F_TCP))
		return;
	if (d->tcp && d->at[F_HTTP])
		diag(d, d->at[F_TCP], "'health.http' and 'health.tcp' exclude each "
		     "other: pick one check");
	else if (!d->tcp && !d->at[F_HTTP])
		diag(d, d->at[F_TCP], "'health.tcp: false' leaves no check: give "
		     "'health.http: PATH' or leave 'tcp' out");
}

static void
check_autoscale(struct draft *d)
{
	const struct vd_ynode *as = d->at[F_AUTOSCALE];

	if (!as || as->kind != VD_YMAP)
		return;
	if (!d->bad[F_MIN] && !d->bad[F_MAX] && (d->at[F_MIN] || d->at[F_MAX]) &&
	    d->s.autoscale.min > d->s.autoscale.max)
		diag(d, d->at[F_MIN] ? d->at[F_MIN] : d->at[F_MAX],
		     "'autoscale.min' (%d) is greater than 'autoscale.max' (%d)",
		     d->s.autoscale.min, d->s.autoscale.max);
	if (!d->at[F_TARGET_P95] && !d->at[F_TARGET_QUEUE])
		diag(d, as, "'autoscale' needs a target: 'target_p95', "
		     "'target_queue' or both");
	if (good(d, F_DOWN_WINDOW) && d->s.autoscale.down_window_ms > VD_SIG_MAX_SPAN_MS)
		diag(d, d->at[F_DOWN_WINDOW], "'autoscale.down_window' is at most 1h");
	else if (!d->bad[F_UP_WINDOW] && !d->bad[F_DOWN_WINDOW] &&
		 (d->at[F_UP_WINDOW] || d->at[F_DOWN_WINDOW]) &&
		 d->s.autoscale.up_window_ms > d->s.autoscale.down_window_ms)
		diag(d, d->at[F_UP_WINDOW] ? d->at[F_UP_WINDOW] : d->at[F_DOWN_WINDOW],
		     "'autoscale.up_window' is longer than 'autoscale.down_window': "
		     "the short window adds replicas, the long one removes them");
}

static void
check_update(struct draft *d)
{
	const struct vd_ynode *at = d->at[F_MAX_SURGE] ? d->at[F_MAX_SURGE]
						       : d->at[F_MAX_UNAVAILABLE];

	if (at && !d->bad[F_MAX_SURGE] && !d->bad[F_MAX_UNAVAILABLE] &&
	    d->s.update.max_surge == 0 && d->s.update.max_unavailable == 0)
		diag(d, at, "'update.max_surge' and 'update.max_unavailable' are both 0: "
		     "a rolling update could not make progress");
}

static void
check_balancer(struct draft *d)
{
	const struct vd_ynode *b = d->at[F_BALANCER];

	if (b && b->kind == VD_YMAP && !d->at[F_LISTEN])
		diag(d, b, "missing required key 'listen' in 'balancer'%s%s%s",
		     d->name ? " of service '" : "", d->name ? d->name : "",
		     d->name ? "'" : "");
}

/* The defaults that depend on other fields. */
static void
finish_defaults(struct draft *d)
{
	struct vd_service *s = &d->s;

	if (s->backend == VD_BACKEND_LIBVIRT && !d->at[F_START_PERIOD])
		s->health.start_period_ms = 30000;
	if (s->health.http_path)
		s->health.kind = VD_HEALTH_HTTP;
	if (s->vm.kernel && !s->vm.cmdline && !(s->vm.cmdline = strdup("console=ttyS0 quiet")))
		d->l->df.oom = true;
}

/* ============================================================== 3. the set */

static void
service_release(struct vd_service *s)
{
	free(s->name);
	free(s->file);
	free(s->image);
	free(s->vm.kernel);
	free(s->vm.initrd);
	free(s->vm.cmdline);
	free(s->vm.disk);
	free_strv(s->command, s->ncommand);
	free_strv(s->env, s->nenv);
	free(s->health.http_path);
	free(s->balancer.listen_host);
}

static bool
is_wildcard(const char *host)
{
	return strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0;
}

static bool
is_loopback(const char *host)
{
	return strcmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 ||
	       strcmp(host, "::1") == 0;
}

bool
vd_manifest_listen_conflict(const struct vd_service *a, const struct vd_service *b)
{
	const char *x = a->balancer.listen_host, *y = b->balancer.listen_host;

	if (!a->balancer.enabled || !b->balancer.enabled ||
	    a->balancer.listen_port != b->balancer.listen_port)
		return false;
	return strcmp(x, y) == 0 || is_wildcard(x) || is_wildcard(y) ||
	       ((strcmp(x, "localhost") == 0 || strcmp(y, "localhost") == 0) &&
		is_loopback(x) && is_loopback(y));
}

/* " (first declared at line 3)" or " (first declared at other.yaml:3:10)". */
static const char *
where_first(const struct loader *l, const struct vd_service *s, const struct placed *p,
	    int line, int col, char *buf, size_t size)
{
	if (p->file_index == l->df.index)
		snprintf(buf, size, "line %d", line);
	else
		snprintf(buf, size, "%s:%d:%d", s->file, line, col);
	return buf;
}

/* Compare the newest service of the set with those before it. */
static void
check_against_set(struct loader *l, const struct vd_ynode *name_at,
		  const struct vd_ynode *listen_at)
{
	size_t last = l->m->nservices - 1;
	const struct vd_service *s = &l->m->services[last];
	char where[300];

	for (size_t i = 0; i < last && (name_at || listen_at); i++) {
		const struct vd_service *o = &l->m->services[i];
		const struct placed *p = &l->placed[i];

		if (name_at && p->name_line && strcmp(o->name, s->name) == 0) {
			where_first(l, o, p, p->name_line, p->name_col, where, sizeof(where));
			vd_ytree_diag(&l->df, name_at, "duplicate service name '%s' (first "
				      "declared at %s)", s->name, where);
			name_at = NULL; /* once is enough */
		}
		if (listen_at && p->listen_line && vd_manifest_listen_conflict(o, s)) {
			where_first(l, o, p, p->listen_line, p->listen_col, where, sizeof(where));
			vd_ytree_diag(&l->df, listen_at, "balancer listen address '%s' is already "
				      "used by service '%s' (%s)", listen_at->text, o->name, where);
			listen_at = NULL;
		}
	}
}

/* Move the checked service into the set. */
static void
add_service(struct loader *l, struct draft *d)
{
	struct vd_manifest *m = l->m;
	const struct vd_ynode *name_at = good(d, F_SERVICE) ? d->at[F_SERVICE] : NULL;
	const struct vd_ynode *listen_at = good(d, F_LISTEN) ? d->at[F_LISTEN] : NULL;

	if (m->nservices == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 8;
		struct vd_service *sv = reallocarray(m->services, cap, sizeof(*sv));
		struct placed *pv = sv ? reallocarray(l->placed, cap, sizeof(*pv)) : NULL;

		if (sv)
			m->services = sv;
		if (!sv || !pv) {
			service_release(&d->s);
			l->df.oom = true;
			return;
		}
		l->placed = pv;
		l->cap = cap;
	}
	m->services[m->nservices] = d->s;
	l->placed[m->nservices] = (struct placed){
		l->df.index,
		name_at ? name_at->line : 0, name_at ? name_at->col : 0,
		listen_at ? listen_at->line : 0, listen_at ? listen_at->col : 0,
	};
	m->nservices++;
	check_against_set(l, name_at, listen_at);
}

/*
 * VM boot files are made absolute here, relative to the manifest's own
 * directory (or ours for standard input): libvirtd, the recorded state and
 * the spec hash must all see one path, wherever vdctl runs from.
 */
static void
absolute_path(struct draft *d, char **path)
{
	char dir[PATH_MAX], base[PATH_MAX], *abs = NULL;

	if (!*path || (*path)[0] == '/')
		return;
	if (strcmp(d->l->df.file, "<stdin>") == 0 || !strchr(d->l->df.file, '/'))
		snprintf(dir, sizeof(dir), ".");
	else
		snprintf(dir, sizeof(dir), "%s", d->l->df.file);
	if (!realpath(strchr(d->l->df.file, '/') ? dirname(dir) : dir, base) ||
	    asprintf(&abs, "%s/%s", base, *path) < 0) {
		/* an unreadable directory: leave the path as written */
		return;
	}
	free(*path);
	*path = abs;
}

static void
absolute_paths(struct draft *d)
{
	absolute_path(d, &d->s.vm.kernel);
	absolute_path(d, &d->s.vm.initrd);
	absolute_path(d, &d->s.vm.disk);
}

/* Check one service document and add it to the set (vd_ytree_doc_fn). */
static void
check_document(void *arg, const struct vd_ynode *root, int doc_line)
{
	struct loader *l = arg;
	struct draft d = { .l = l, .root = root };

	if (root->kind != VD_YMAP) {
		if (root->kind != VD_YALIAS)
			vd_ytree_diag(&l->df, root, "a service is a mapping of keys (service, "
				      "backend, ...), not %s", VD_YTREE_WHAT(root));
		return;
	}
	d.c = (struct vd_ycheck){ .df = &l->df, .base = &d.s, .arg = &d, .at = d.at,
				  .bad = d.bad, .top = &service_section,
				  .wrong_variant = wrong_backend };
	set_defaults(&d.s);
	d.s.line = doc_line;
	d.s.file = strdup(l->df.file);
	if (!d.s.file) {
		l->df.oom = true;
		return;
	}
	prescan(&d);
	vd_ytree_walk(&d.c, &service_section, root);
	check_required(&d);
	check_cpus(&d);
	check_memory(&d);
	check_vm(&d);
	check_health(&d);
	check_autoscale(&d);
	check_update(&d);
	check_balancer(&d);
	finish_defaults(&d);
	absolute_paths(&d);
	add_service(l, &d);
}

/* ============================================================== the loader */

/* One file, from PATH or (PATH NULL) from BUF. */
static void
read_manifest(struct loader *l, const char *path, const char *buf, size_t len)
{
	int n = path ? vd_ytree_read_file(path, &manifest_limits, &l->df, check_document, l)
		     : vd_ytree_read(buf, len, &manifest_limits, &l->df, check_document, l);

	if (n == 0 && l->df.count == 0)
		vd_diag_at(&l->df, 1, 1, "empty manifest: no services declared");
}

static int
loader_init(struct loader *l, struct vd_diags *diags, struct vd_error *err)
{
	*l = (struct loader){ .m = calloc(1, sizeof(*l->m)) };
	if (!l->m)
		return vd_error_errno(err, ENOMEM, "cannot load manifests");
	vd_diag_file_init(&l->df, diags, VD_MANIFEST_MAX_DIAGS);
	return 0;
}

static int
loader_finish(struct loader *l, struct vd_manifest **out, struct vd_error *err)
{
	free(l->placed);
	*out = NULL;
	if (l->df.oom) {
		vd_manifest_free(l->m);
		return vd_error_errno(err, ENOMEM, "cannot load manifests");
	}
	if (vd_diag_file_end(&l->df, err) < 0) {
		vd_manifest_free(l->m);
		return -1;
	}
	*out = l->m;
	return 0;
}

int
vd_manifest_load(const char *const *paths, size_t npaths, struct vd_manifest **out,
		 struct vd_diags *diags, struct vd_error *err)
{
	struct loader l;

	if (loader_init(&l, diags, err) < 0)
		return -1;
	for (size_t i = 0; i < npaths && !l.df.oom; i++) {
		vd_diag_file_begin(&l.df, strcmp(paths[i], "-") == 0 ? "<stdin>" : paths[i], i);
		read_manifest(&l, paths[i], NULL, 0);
	}
	return loader_finish(&l, out, err);
}

int
vd_manifest_parse(const char *name, const char *buf, size_t len, struct vd_manifest **out,
		  struct vd_diags *diags, struct vd_error *err)
{
	struct loader l;

	if (loader_init(&l, diags, err) < 0)
		return -1;
	vd_diag_file_begin(&l.df, name, 0);
	read_manifest(&l, NULL, buf, len);
	return loader_finish(&l, out, err);
}

void
vd_manifest_free(struct vd_manifest *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nservices; i++)
		service_release(&m->services[i]);
	free(m->services);
	free(m);
}

const struct vd_service *
vd_manifest_find(const struct vd_manifest *m, const char *name)
{
	for (size_t i = 0; i < m->nservices; i++)
		if (m->services[i].name && strcmp(m->services[i].name, name) == 0)
			return &m->services[i];
	return NULL;
}

/* ================================================================= as JSON */

/* The writers of the custom keys: the value as the parser takes it back,
 * or NULL (*out) when unset. -1 when out of memory. */

static int
put_tcp(const struct vd_ykey *k, const void *base, unsigned flags, json_t **out)
{
	const struct vd_service *s = base;

	(void)k;
	(void)flags;
	*out = s->health.kind == VD_HEALTH_TCP ? json_true() : NULL;
	return 0;
}

static int
put_listen(const struct vd_ykey *k, const void *base, unsigned flags, json_t **out)
{
	const struct vd_service *s = base;
	const char *host = s->balancer.listen_host;
	char listen[300];

	(void)k;
	(void)flags;
	if (!host)
		return 0;
	snprintf(listen, sizeof(listen), strchr(host, ':') ? "[%s]:%d" : "%s:%d", host,
		 s->balancer.listen_port);
	*out = json_string(listen);
	return *out ? 0 : -1;
}

static int
put_command(const struct vd_ykey *k, const void *base, unsigned flags, json_t **out)
{
	const struct vd_service *s = base;

	(void)k;
	(void)flags;
	if (!s->ncommand)
		return 0;
	*out = json_array();
	for (size_t i = 0; *out && i < s->ncommand; i++) {
		if (json_array_append_new(*out, json_string(s->command[i])) < 0) {
			json_decref(*out);
			*out = NULL;
		}
	}
	return *out ? 0 : -1;
}

static int
put_env(const struct vd_ykey *k, const void *base, unsigned flags, json_t **out)
{
	const struct vd_service *s = base;

	(void)k;
	(void)flags;
	if (!s->nenv)
		return 0;
	*out = json_object();
	for (size_t i = 0; *out && i < s->nenv; i++) {
		const char *eq = strchr(s->env[i], '=');
		_cleanup_free_ char *name = strndup(s->env[i], (size_t)(eq - s->env[i]));

		if (!name || json_object_set_new(*out, name, json_string(eq + 1)) < 0) {
			json_decref(*out);
			*out = NULL;
		}
	}
	return *out ? 0 : -1;
}

json_t *
vd_manifest_service_json(const struct vd_service *s, unsigned flags)
{
	return vd_ytree_json(&service_section, s, (int)s->backend, flags);
}

json_t *
vd_manifest_to_json(const struct vd_manifest *m)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < m->nservices; i++) {
		json_t *o = vd_manifest_service_json(&m->services[i], VD_MANIFEST_JSON_UNITS);

		if (!o || json_array_append_new(a, o) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}
