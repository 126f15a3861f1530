/*
 * Manifests: YAML files of services, parsed and validated in full before
 * anything touches an engine (format v1, man/vdctl-manifest.5).
 *
 * A file holds one or more YAML documents, one service each; several files
 * form one set, in which service names and balancer listen addresses are
 * unique. Every mistake becomes a diagnostic "FILE:LINE:COL: message"; the
 * loader collects all of them, in file order, and fails when there is any.
 *
 *   struct vd_diags diags = VD_DIAGS_INIT;
 *   struct vd_manifest *m;
 *
 *   if (vd_manifest_load(paths, n, &m, &diags, err) < 0) {
 *           vd_diags_print(&diags, stderr);
 *           vd_diags_clear(&diags);
 *           return -1;              (err: "3 errors in web.yaml", exit 2)
 *   }
 *   ...
 *   vd_manifest_free(m);
 */
#ifndef VD_MANIFEST_H
#define VD_MANIFEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "vd/diag.h" /* struct vd_diags, vd_diags_print(), vd_diags_clear() */
#include "vd/error.h"
#include "vd/lb.h"   /* enum vd_lb_policy */

/* Hard limits on input, so hostile files are refused quickly in bounded
 * memory. */
#define VD_MANIFEST_MAX_BYTES (4 << 20)  /* per file */
#define VD_MANIFEST_MAX_DEPTH 32         /* nested mappings and lists */
#define VD_MANIFEST_MAX_SCALAR (64 << 10) /* bytes in one value */
#define VD_MANIFEST_MAX_NODES 100000     /* per file */
#define VD_MANIFEST_MAX_DIAGS 100        /* per file; then it stops */

enum vd_backend { VD_BACKEND_DOCKER, VD_BACKEND_LIBVIRT };
enum vd_accel { VD_ACCEL_AUTO, VD_ACCEL_KVM, VD_ACCEL_TCG };
enum vd_health_kind { VD_HEALTH_TCP, VD_HEALTH_HTTP };

/* One service, every default filled in. Strings are owned by the manifest. */
struct vd_service {
	char *name;
	char *file; /* the file it came from */
	int line;   /* where its document starts */
	enum vd_backend backend;
	char *image; /* docker; NULL for libvirt */
	struct {
		char *kernel, *initrd, *cmdline, *disk; /* paths as written, or NULL */
		enum vd_accel accel;
	} vm; /* libvirt; all NULL for docker */
	char **command; /* argv, NULL-terminated; NULL (ncommand 0) = image's default */
	size_t ncommand;
	char **env; /* "KEY=VALUE" in file order, NULL-terminated (NULL when none) */
	size_t nenv;
	int port; /* the port the workload listens on */
	int replicas;
	int64_t milli_cpus, memory_bytes;
	struct {
		enum vd_health_kind kind;
		char *http_path; /* VD_HEALTH_HTTP only */
		int64_t interval_ms, timeout_ms, start_period_ms;
		int retries;
	} health;
	struct {
		bool enabled;
		char *listen_host; /* "127.0.0.1", "::1", "localhost" */
		int listen_port;
		enum vd_lb_policy policy;
		int max_inflight; /* per replica; 0 = no limit */
		int queue_limit;
		int64_t queue_timeout_ms;
		enum vd_lb_client_gone on_client_gone;
	} balancer;
	struct {
		bool enabled;
		int min, max;
		int64_t target_p95_ms; /* 0 = unset */
		double target_queue;   /* 0 = unset */
		int64_t up_window_ms, down_window_ms;
		int64_t cooldown_ms;    /* before a scale-down, after any change */
		int64_t up_cooldown_ms; /* before a scale-up, after a scale-up */
		double tolerance;       /* a relative change below this is not made */
		double utilisation;     /* of a replica's concurrency, in (0, 1] */
	} autoscale;
	struct {
		int max_surge, max_unavailable;
	} update;
};

struct vd_manifest {
	struct vd_service *services; /* in file order, files in the order given */
	size_t nservices;
};

/* Read, parse and validate the files PATHS ("-" is stdin) as one set. On
 * success stores a new manifest in *out (free with vd_manifest_free) and
 * returns 0. When any file has mistakes, appends them all to diags, sorted
 * in file order, stores NULL, and returns -1 with err = VD_EXIT_INPUT and a
 * summary ("3 errors in FILE"); the caller prints diags. Other failures
 * (out of memory) return -1 with err alone. */
int vd_manifest_load(const char *const *paths, size_t npaths, struct vd_manifest **out,
		     struct vd_diags *diags, struct vd_error *err);

/* Like vd_manifest_load() for one file already in memory, named NAME in
 * diagnostics; buf need not be NUL-terminated. */
int vd_manifest_parse(const char *name, const char *buf, size_t len, struct vd_manifest **out,
		      struct vd_diags *diags, struct vd_error *err);

/* Free a manifest and everything in it; NULL is fine. */
void vd_manifest_free(struct vd_manifest *m);

/*
 * A service as JSON, written from the key table the parser reads it with,
 * so that a field is read and written alike.
 *
 * flags 0: the manifest format itself (durations as "2s", cpus as 1.5,
 * memory in bytes, every default written out, unset keys left out), which
 * the state directory records, the controller's API carries and
 * vd_manifest_parse() reads back into the same service (JSON is YAML).
 *
 * VD_MANIFEST_JSON_UNITS: the normalised form for tools (`vdctl validate
 * --json`): the same keys with their units in their names and values,
 * durations in ms ("interval_ms"), memory in bytes ("memory_bytes"), CPUs
 * in milli-CPUs ("milli_cpus"), and every key present, null when unset or
 * not for this backend (vm of a docker service).
 *
 * New reference; NULL when out of memory.
 */
#define VD_MANIFEST_JSON_UNITS 1u
json_t *vd_manifest_service_json(const struct vd_service *s, unsigned flags);

/* json_dumps() flag for that JSON when the parser is to read it back: 15
 * significant digits keep every number as written (cpus 1023.999,
 * target_queue 0.1) and add none it would refuse (0.1 to 17 digits is
 * 0.10000000000000001, more decimals than cpus take). */
#define VD_MANIFEST_JSON_PRECISION JSON_REAL_PRECISION(15)

/* Every service of M in the normalised form, as a JSON array. New
 * reference; NULL when out of memory. */
json_t *vd_manifest_to_json(const struct vd_manifest *m);

/* Is S a service name ([a-z][a-z0-9-]{0,39})? Every command that takes one
 * checks it so: a name is also a file name in the state directory. */
bool vd_manifest_valid_name(const char *s);

/* Could the balancers of A and B not both listen (the same address, or a
 * wildcard against anything on the port)? False when either has none. */
bool vd_manifest_listen_conflict(const struct vd_service *a, const struct vd_service *b);

/* The service called NAME, or NULL. */
const struct vd_service *vd_manifest_find(const struct vd_manifest *m, const char *name);

/* The manifest spelling of each enum value ("docker", "least-outstanding"). */
const char *vd_manifest_backend_name(enum vd_backend b);
const char *vd_manifest_accel_name(enum vd_accel a);
const char *vd_manifest_policy_name(enum vd_lb_policy p);
const char *vd_manifest_health_name(enum vd_health_kind k);

#endif
