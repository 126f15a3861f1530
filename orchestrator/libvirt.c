/*
 * The libvirt driver: VM replicas through the libvirt C API.
 *
 * vdctl writes each domain's XML itself, escaping every value. A replica is
 * a persistent domain named vd-<service>-<index> with vdctl's labels in a
 * <vd:replica> element of its <metadata>. It boots a kernel directly
 * (kernel, initrd, cmdline) or a golden disk through a per-replica qcow2
 * overlay. Memory is <currentMemory> under a <memory> ceiling with a virtio
 * balloon, vCPUs are `current` of a maximum with ACPI for hot-plug, and the
 * CPU share is a quota over all vCPUs (<cputune><global_quota>), so 1.5 cpus
 * means one and a half. The workload's port is forwarded from 127.0.0.1 by
 * QEMU user-mode networking; the replica's arguments and environment reach
 * its /init as fw_cfg strings on QEMU's command line (examples/vm/init reads
 * them).
 *
 * Per replica, vdctl keeps in STATE/libvirt/<name>/ the overlay and the
 * serial console log; remove deletes them. QEMU, which runs as its own user,
 * opens neither (libvirtd opens the log, vdctl the overlay at each start), so
 * the state directory may be one that user cannot enter. How a domain is
 * made (metadata, XML, files, the KVM probe) is in libvirt_domain.c.
 *
 * libvirt calls have no timeout of their own: the driver runs libvirt's
 * event loop in a thread and turns on connection keepalive, so a libvirtd
 * that stops answering fails the call within about 15 s.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vd/cleanup.h"
#include "vd/clock.h"
#include "vd/driver.h"
#include "vd/file.h"
#include "vd/labels.h"
#include "vd/log.h"
#include "vd/manifest.h"
#include "vd/strbuf.h"

#include "libvirt_int.h"

/* ---------------------------------------------------------- event loop */

static pthread_once_t loop_once = PTHREAD_ONCE_INIT;
static int loop_ok;

static void *
run_loop(void *arg)
{
	(void)arg;
	for (;;)
		if (virEventRunDefaultImpl() < 0)
			vd_warn("libvirt event loop: %s", virGetLastErrorMessage());
	return NULL;
}

static void
quiet_errors(void *data, virErrorPtr e)
{
	(void)data;
	(void)e; /* errors are reported through struct vd_error, not stderr */
}

static void
start_loop(void)
{
	pthread_t t;

	virSetErrorFunc(NULL, quiet_errors);
	if (virInitialize() < 0 || virEventRegisterDefaultImpl() < 0)
		return;
	if (pthread_create(&t, NULL, run_loop, NULL) != 0)
		return;
	pthread_detach(t);
	loop_ok = 1;
}

/* The last libvirt error as "OP OBJECT: message". */
int
lv_error(struct vd_error *err, const char *op, const char *object)
{
	virErrorPtr e = virGetLastError();
	int code = VD_EXIT_FAILURE;

	if (e && (e->code == VIR_ERR_SYSTEM_ERROR || e->code == VIR_ERR_RPC ||
		  e->code == VIR_ERR_NO_CONNECT || e->code == VIR_ERR_INTERNAL_ERROR) &&
	    e->domain == VIR_FROM_RPC)
		code = VD_EXIT_ENGINE;
	return vd_error_set(err, code, "%s %s: %s", op, object,
			    e && e->message ? e->message : "unknown libvirt error");
}

/* ------------------------------------------------------------ replicas */

static enum vd_replica_state
domain_state(virDomainPtr dom)
{
	int state, reason;

	if (virDomainGetState(dom, &state, &reason, 0) < 0)
		return VD_STATE_UNKNOWN;
	switch (state) {
	case VIR_DOMAIN_RUNNING:
	case VIR_DOMAIN_BLOCKED:
	case VIR_DOMAIN_SHUTDOWN:
		return VD_STATE_RUNNING;
	case VIR_DOMAIN_PAUSED:
	case VIR_DOMAIN_PMSUSPENDED:
		return VD_STATE_PAUSED;
	case VIR_DOMAIN_SHUTOFF:
		/* defined and never run: libvirt knows no reason */
		return reason == VIR_DOMAIN_SHUTOFF_UNKNOWN ? VD_STATE_CREATED : VD_STATE_EXITED;
	case VIR_DOMAIN_CRASHED:
		return VD_STATE_DEAD;
	default:
		return VD_STATE_UNKNOWN;
	}
}

/* A domain into r; -1 with err when it does not carry vdctl's metadata. */
static int
domain_replica(virDomainPtr dom, struct vd_replica *r, struct vd_error *err)
{
	char uuid[VIR_UUID_STRING_BUFLEN];
	const char *name = virDomainGetName(dom);
	struct lv_meta m;

	memset(r, 0, sizeof(*r));
	if (lv_meta_read(dom, &m) < 0)
		return vd_error_set(err, VD_EXIT_FAILURE, "refusing to touch domain '%s': it does "
				    "not carry vdctl's metadata", name ? name : "?");
	if (virDomainGetUUIDString(dom, uuid) < 0 || !(r->id = strdup(uuid)) ||
	    !(r->name = strdup(name))) {
		lv_meta_clear(&m);
		vd_replica_clear(r);
		return vd_error_set(err, VD_EXIT_FAILURE, "domain '%s': out of memory", name);
	}
	r->labels = m.labels; /* moved */
	r->state = domain_state(dom);
	r->exit_code = -1;
	r->started_ns = r->state == VD_STATE_RUNNING ? m.started_ns : 0;
	r->host_port = m.host_port;
	snprintf(r->host, sizeof(r->host), "127.0.0.1");
	r->milli_cpus = m.milli_cpus;
	r->memory_bytes = m.memory_bytes;
	r->backend = VD_BACKEND_LIBVIRT;
	r->max_memory_bytes = (int64_t)virDomainGetMaxMemory(dom) * 1024;
	r->max_milli_cpus = (int64_t)virDomainGetVcpusFlags(dom, VIR_DOMAIN_VCPU_MAXIMUM |
							     VIR_DOMAIN_AFFECT_CONFIG) * 1000;
	if (r->max_memory_bytes < 0)
		r->max_memory_bytes = 0;
	if (r->max_milli_cpus < 0)
		r->max_milli_cpus = 0;
	virResetLastError();
	return 0;
}

/* Look a replica up by UUID (or name), refusing one that is not vdctl's. */
static virDomainPtr
lookup(struct lv *lv, const char *id, const char *op, struct vd_replica *r, struct vd_error *err)
{
	virDomainPtr dom = virDomainLookupByUUIDString(lv->conn, id);
	struct vd_replica tmp;

	if (!dom)
		dom = virDomainLookupByName(lv->conn, id);
	if (!dom) {
		lv_error(err, op, id);
		return NULL;
	}
	if (domain_replica(dom, r ? r : &tmp, err) < 0) {
		virDomainFree(dom);
		return NULL;
	}
	if (r)
		tmp = *r; /* a shallow look at its owner */
	if (lv->owner[0] && tmp.labels.owner && *tmp.labels.owner &&
	    strcmp(tmp.labels.owner, lv->owner) != 0) {
		vd_error_set(err, VD_EXIT_FAILURE, "refusing to touch domain '%s': another state "
			     "directory made it (owner %s)", tmp.name, tmp.labels.owner);
		vd_replica_clear(r ? r : &tmp);
		virDomainFree(dom);
		return NULL;
	}
	if (!r)
		vd_replica_clear(&tmp);
	return dom;
}

/* ------------------------------------------------------------- events */

static int
lifecycle_cb(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque)
{
	struct lv_event_queue *q = opaque;
	const char *name = virDomainGetName(dom);
	struct vd_event ev = { .exit_code = -1 };
	char uuid[VIR_UUID_STRING_BUFLEN];
	const char *dash;
	uint64_t one = 1;

	(void)conn;
	(void)detail;
	/* vd-<service>-<index>; the reader checks the metadata */
	if (!name || strncmp(name, VD_NAME_PREFIX, strlen(VD_NAME_PREFIX)) != 0 ||
	    !(dash = strrchr(name, '-')) || dash <= name + strlen(VD_NAME_PREFIX))
		return 0;
	if (event == VIR_DOMAIN_EVENT_STARTED)
		ev.kind = VD_EVENT_START;
	else if (event == VIR_DOMAIN_EVENT_STOPPED || event == VIR_DOMAIN_EVENT_CRASHED)
		ev.kind = VD_EVENT_DIE;
	else
		return 0;
	if (virDomainGetUUIDString(dom, uuid) < 0)
		return 0;
	snprintf(ev.id, sizeof(ev.id), "%s", uuid);
	snprintf(ev.service, sizeof(ev.service), "%.*s",
		 (int)(dash - name - strlen(VD_NAME_PREFIX)), name + strlen(VD_NAME_PREFIX));
	ev.index = atoi(dash + 1);
	pthread_mutex_lock(&q->lock);
	if (q->count < LV_EVENTS_MAX) {
		q->items[(q->head + q->count) % LV_EVENTS_MAX] = ev;
		q->count++;
	}
	pthread_mutex_unlock(&q->lock);
	if (write(q->efd, &one, sizeof(one)) < 0)
		return 0;
	return 0;
}

static void
free_queue(void *opaque)
{
	struct lv_event_queue *q = opaque;

	close(q->efd);
	pthread_mutex_destroy(&q->lock);
	free(q);
}

static int
lv_events_open(struct vd_driver *d, struct vd_error *err)
{
	struct lv *lv = (struct lv *)d;
	struct lv_event_queue *q;

	if (lv->events)
		return lv->events->efd;
	q = calloc(1, sizeof(*q));
	if (!q)
		return vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
	pthread_mutex_init(&q->lock, NULL);
	q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (q->efd < 0) {
		free(q);
		return vd_error_errno(err, errno, "events: eventfd");
	}
	q->callback = virConnectDomainEventRegisterAny(lv->conn, NULL,
						       VIR_DOMAIN_EVENT_ID_LIFECYCLE,
						       VIR_DOMAIN_EVENT_CALLBACK(lifecycle_cb),
						       q, free_queue);
	if (q->callback < 0) {
		free_queue(q);
		return lv_error(err, "events on", lv->uri);
	}
	lv->events = q;
	return q->efd;
}

static int
lv_events_read(struct vd_driver *d, struct vd_event *ev, struct vd_error *err)
{
	struct lv *lv = (struct lv *)d;
	struct lv_event_queue *q = lv->events;
	uint64_t n;

	if (!q)
		return vd_error_set(err, VD_EXIT_FAILURE, "events: the stream is not open");
	for (;;) {
		bool got = false;

		pthread_mutex_lock(&q->lock);
		if (q->count) {
			*ev = q->items[q->head];
			q->head = (q->head + 1) % LV_EVENTS_MAX;
			q->count--;
			got = true;
		} else if (read(q->efd, &n, sizeof(n)) < 0) {
			/* drained: the fd stays quiet until the next event */
		}
		pthread_mutex_unlock(&q->lock);
		if (!got)
			return 0;
		/* only domains that carry vdctl's metadata */
		virDomainPtr dom = virDomainLookupByUUIDString(lv->conn, ev->id);
		struct lv_meta m;
		int ours = dom && lv_meta_read(dom, &m) == 0;

		if (dom)
			virDomainFree(dom);
		virResetLastError();
		if (ours) {
			lv_meta_clear(&m);
			return 1;
		}
	}
}

/* ---------------------------------------------------------- operations */

static void
lv_close(struct vd_driver *d)
{
	struct lv *lv = (struct lv *)d;

	if (!lv)
		return;
	if (lv->events)
		virConnectDomainEventDeregisterAny(lv->conn, lv->events->callback);
	if (lv->conn)
		virConnectClose(lv->conn);
	free(lv);
}

static int
lv_open(const struct vd_driver_config *cfg, struct vd_driver **out, struct vd_error *err)
{
	const char *uri = cfg ? cfg->endpoint : NULL;
	const char *state = cfg && cfg->state_dir ? cfg->state_dir : LV_DEFAULT_STATE;
	struct lv *lv;

	if (strlen(state) >= sizeof(lv->state_dir))
		return vd_error_set(err, VD_EXIT_INPUT, "state directory '%.40s...' is too long",
				    state);

	pthread_once(&loop_once, start_loop);
	if (!loop_ok)
		return vd_error_set(err, VD_EXIT_FAILURE, "cannot start libvirt's event loop");
	if (!uri || !*uri)
		uri = LV_DEFAULT_URI;
	lv = calloc(1, sizeof(*lv));
	if (!lv)
		return vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
	lv->base.ops = &vd_libvirt_driver;
	snprintf(lv->uri, sizeof(lv->uri), "%s", uri);
	snprintf(lv->state_dir, sizeof(lv->state_dir), "%s", state);
	snprintf(lv->owner, sizeof(lv->owner), "%s", cfg && cfg->owner ? cfg->owner : "");
	lv->conn = virConnectOpen(uri);
	if (!lv->conn) {
		virErrorPtr e = virGetLastError();

		vd_error_set(err, VD_EXIT_ENGINE, "cannot reach libvirt at %s: %s (%s)", uri,
			     e && e->message ? e->message : "no answer", LV_HINT);
		free(lv);
		return -1;
	}
	/* remote connections: a silent libvirtd fails calls instead of hanging */
	if (virConnectSetKeepAlive(lv->conn, LV_KEEPALIVE_INTERVAL, LV_KEEPALIVE_COUNT) < 0)
		virResetLastError();
	*out = &lv->base;
	return 0;
}

static int
lv_capacity(struct vd_driver *d, struct vd_capacity *out, struct vd_error *err)
{
	struct lv *lv = (struct lv *)d;
	virNodeInfo info;

	virNodeMemoryStatsPtr stats = NULL;
	int n = 0;

	if (virNodeGetInfo(lv->conn, &info) < 0)
		return lv_error(err, "node info of", lv->uri);
	out->cpus = (int)info.cpus;
	out->memory_bytes = (int64_t)info.memory * 1024;
	/* virNodeGetInfo's memory comes from the NUMA topology, which on some
	 * virtual machines is a fraction of the real total: the node's memory
	 * statistics say it right */
	if (virNodeGetMemoryStats(lv->conn, VIR_NODE_MEMORY_STATS_ALL_CELLS, NULL, &n, 0) == 0 &&
	    n > 0 && (stats = calloc((size_t)n, sizeof(*stats))) &&
	    virNodeGetMemoryStats(lv->conn, VIR_NODE_MEMORY_STATS_ALL_CELLS, stats, &n, 0) == 0)
		for (int i = 0; i < n; i++)
			if (strcmp(stats[i].field, VIR_NODE_MEMORY_STATS_TOTAL) == 0)
				out->memory_bytes = (int64_t)stats[i].value * 1024;
	free(stats);
	virResetLastError();
	return 0;
}

static int
lv_list(struct vd_driver *d, const char *service, struct vd_replica_list *out,
	struct vd_error *err)
{
	struct lv *lv = (struct lv *)d;
	virDomainPtr *doms = NULL;
	int n = virConnectListAllDomains(lv->conn, &doms, 0);

	out->v = NULL;
	out->n = 0;
	if (n < 0)
		return lv_error(err, "list domains of", lv->uri);
	for (int i = 0; i < n; i++) {
		struct vd_error skip = VD_ERROR_INIT;
		struct vd_replica r, *slot;

		if (domain_replica(doms[i], &r, &skip) == 0) {
			if ((service && strcmp(r.labels.service, service) != 0) ||
			    !(slot = vd_replica_list_add(out)))
				vd_replica_clear(&r);
			else
				*slot = r;
		}
		virDomainFree(doms[i]);
	}
	free(doms);
	vd_replica_list_sort(out);
	return 0;
}

/* The boot files must be there and readable: a kernel, an initrd, a disk. */
static int
lv_check(struct vd_driver *d, const struct vd_service *svc, struct vd_error *err)
{
	const char *files[] = { svc->vm.kernel, svc->vm.initrd, svc->vm.disk };
	const char *what[] = { "kernel", "initrd", "disk" };
	char path[PATH_MAX];

	(void)d;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		if (!files[i])
			continue;
		lv_resolve(svc, files[i], path, sizeof(path));
		if (access(path, R_OK) < 0) {
			vd_error_errno(err, errno, "service '%s': vm.%s '%s'", svc->name, what[i],
				       path);
			err->code = VD_EXIT_INPUT; /* the manifest names it: input */
			return -1;
		}
	}
	return 0;
}

static int
lv_create(struct vd_driver *d, const struct vd_service *svc, const struct vd_labels *l,
	  struct vd_replica *out, struct vd_error *err)
{
	struct lv *lv = (struct lv *)d;
	struct domain_plan p;
	_cleanup_free_ char *xml = NULL;
	_cleanup_domain_ virDomainPtr dom = NULL;
	char name[96], dir[2048];

	vd_replica_name(name, sizeof(name), l->service, l->index);
	if (!svc->vm.kernel && !svc->vm.disk)
		return vd_error_set(err, VD_EXIT_INPUT, "create %s: the service has no vm kernel "
				    "or disk", name);
	/* defining over an existing domain would redefine it: refuse, and let
	 * the caller adopt it (its files are left alone) */
	if ((dom = virDomainLookupByName(lv->conn, name))) {
		vd_error_set(err, VD_EXIT_FAILURE, "create %s: a domain of that name exists", name);
		err->sys_errno = EEXIST;
		return -1;
	}
	virResetLastError();
	lv_replica_dir(lv, name, dir, sizeof(dir));
	lv_remove_tree(dir); /* left by a create that was killed before it defined the domain */
	if (vd_file_mkdir_p(dir, err) < 0)
		return vd_error_wrap(err, "create %s", name);
	if (lv_plan_domain(lv, svc, name, dir, &p, err) < 0 ||
	    (p.backing[0] && lv_make_overlay(lv, dir, &p, err) < 0))
		goto fail;
	if (!(xml = lv_domain_xml(svc, l, &p))) {
		vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
		goto fail;
	}
	lv_plan_clear(&p);
	if (!(dom = virDomainDefineXML(lv->conn, xml))) {
		lv_error(err, "create", name);
		goto fail;
	}
	return domain_replica(dom, out, err);
fail:
	lv_plan_clear(&p);
	lv_remove_tree(dir);
	return -1;
}

/* Record the start time in the metadata, for inspect. */
static void
mark_started(virDomainPtr dom)
{
	struct lv_meta m;

	if (lv_meta_read(dom, &m) < 0)
		return;
	m.started_ns = vd_clock_wall_ns();
	if (lv_meta_write(dom, &m) < 0)
		vd_warn("cannot record the start of %s: %s", virDomainGetName(dom),
			virGetLastErrorMessage());
	virResetLastError();
	lv_meta_clear(&m);
}

static int
lv_start(struct vd_driver *d, const char *id, struct vd_error *err)
{
	struct lv *lv = (struct lv *)d;
	_cleanup_domain_ virDomainPtr dom = lookup(lv, id, "start", NULL, err);
	const char *name;

	if (!dom)
		return -1;
	/* before the call that may fail: any libvirt call resets the last error */
	name = virDomainGetName(dom);
	if (virDomainIsActive(dom) == 1)
		return 0;
	if (lv_pass_overlay(lv, dom, name, err) < 0)
		return -1;
	if (virDomainCreate(dom) < 0)
		return lv_error(err, "start", name);
	mark_started(dom);
	return 0;
}

static int
wait_shutoff(virDomainPtr dom, int ms)
{
	for (int waited = 0; waited < ms; waited += 100) {
		if (virDomainIsActive(dom) == 0)
			return 0;
		usleep(100 * 1000);
	}
	return virDomainIsActive(dom) == 0 ? 0 : -1;
}

static int
lv_stop(struct vd_driver *d, const char *id, int grace_s, struct vd_error *err)
{
	struct lv *lv = (struct lv *)d;
	_cleanup_domain_ virDomainPtr dom = lookup(lv, id, "stop", NULL, err);
	const char *name;

	if (!dom)
		return -1;
	name = virDomainGetName(dom);
	if (virDomainIsActive(dom) == 0)
		return 0;
	/* the ACPI power button: the guest's /init stops the workload and powers off */
	if (grace_s > 0 && virDomainShutdownFlags(dom, VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN) == 0 &&
	    wait_shutoff(dom, grace_s * 1000) == 0)
		return 0;
	virResetLastError();
	if (virDomainDestroy(dom) < 0)
		return lv_error(err, "stop", name);
	virResetLastError();
	return 0;
}

static int
lv_remove(struct vd_driver *d, const char *id, struct vd_error *err)
{
	struct lv *lv = (struct lv *)d;
	struct vd_replica r;
	virDomainPtr dom = lookup(lv, id, "remove", &r, err);
	char dir[2048];

	if (!dom) {
		virErrorPtr e = virGetLastError();

		/* already gone is done */
		if (e && e->code == VIR_ERR_NO_DOMAIN) {
			virResetLastError();
			vd_error_clear(err);
			return 0;
		}
		return -1;
	}
	if (virDomainIsActive(dom) == 1 && virDomainDestroy(dom) < 0) {
		lv_error(err, "remove", r.name);
		goto out;
	}
	if (virDomainUndefineFlags(dom, VIR_DOMAIN_UNDEFINE_MANAGED_SAVE |
					       VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA) < 0) {
		lv_error(err, "remove", r.name);
		goto out;
	}
	lv_replica_dir(lv, r.name, dir, sizeof(dir));
	lv_remove_tree(dir);
	virDomainFree(dom);
	vd_replica_clear(&r);
	return 0;
out:
	virDomainFree(dom);
	vd_replica_clear(&r);
	return -1;
}

static int
lv_inspect(struct vd_driver *d, const char *id, struct vd_replica *out, struct vd_error *err)
{
	_cleanup_domain_ virDomainPtr dom = lookup((struct lv *)d, id, "inspect", out, err);

	return dom ? 0 : -1;
}

static int
set_quota(virDomainPtr dom, int64_t milli_cpus, unsigned flags)
{
	virTypedParameterPtr params = NULL;
	int n = 0, max = 0, ret;

	if (virTypedParamsAddLLong(&params, &n, &max, VIR_DOMAIN_SCHEDULER_GLOBAL_QUOTA,
				   milli_cpus * LV_CPU_PERIOD / 1000) < 0)
		return -1;
	ret = virDomainSetSchedulerParametersFlags(dom, params, n, flags);
	virTypedParamsFree(params, n);
	return ret;
}

static int
lv_resize(struct vd_driver *d, const char *id, int64_t milli_cpus, int64_t memory_bytes,
	  struct vd_error *err)
{
	struct lv *lv = (struct lv *)d;
	const unsigned both = VIR_DOMAIN_AFFECT_LIVE | VIR_DOMAIN_AFFECT_CONFIG;
	struct vd_replica r;
	struct lv_meta m;
	_cleanup_domain_ virDomainPtr dom = lookup(lv, id, "resize", &r, err);
	unsigned long ceiling_kib;
	int max_vcpus, vcpus = (int)((milli_cpus + 999) / 1000);
	int ret = -1;

	if (!dom)
		return -1;
	ceiling_kib = virDomainGetMaxMemory(dom);
	max_vcpus = virDomainGetVcpusFlags(dom, VIR_DOMAIN_VCPU_MAXIMUM | VIR_DOMAIN_AFFECT_CONFIG);
	if (memory_bytes / 1024 > (int64_t)ceiling_kib) {
		vd_error_set(err, VD_EXIT_FAILURE, "resize %s: %lld MiB is above the %lu MiB "
			     "ceiling it was made with; it must be replaced", r.name,
			     (long long)(memory_bytes >> 20), ceiling_kib >> 10);
		goto out;
	}
	if (max_vcpus > 0 && vcpus > max_vcpus) {
		vd_error_set(err, VD_EXIT_FAILURE, "resize %s: %d vCPUs is above the %d it was "
			     "made with; it must be replaced", r.name, vcpus, max_vcpus);
		goto out;
	}
	if (vcpus < 1)
		vcpus = 1;
	/* live and in the definition, so a restart keeps the new size */
	if ((vcpus != virDomainGetVcpusFlags(dom, VIR_DOMAIN_AFFECT_LIVE) &&
	     virDomainSetVcpusFlags(dom, (unsigned)vcpus, both) < 0) ||
	    set_quota(dom, milli_cpus, both) < 0 ||
	    virDomainSetMemoryFlags(dom, (unsigned long)(memory_bytes / 1024), both) < 0) {
		lv_error(err, "resize", r.name);
		goto out;
	}
	if (lv_meta_read(dom, &m) == 0) {
		m.milli_cpus = milli_cpus;
		m.memory_bytes = memory_bytes;
		if (lv_meta_write(dom, &m) < 0)
			lv_error(err, "resize: record the new limits of", r.name);
		else
			ret = 0;
		lv_meta_clear(&m);
	}
out:
	vd_replica_clear(&r);
	return ret;
}

static int
lv_stats(struct vd_driver *d, const char *id, struct vd_stats *out, struct vd_error *err)
{
	struct lv *lv = (struct lv *)d;
	_cleanup_domain_ virDomainPtr dom = lookup(lv, id, "stats", NULL, err);
	virDomainMemoryStatStruct mem[VIR_DOMAIN_MEMORY_STAT_NR];
	virDomainInfo a, b;
	int64_t t0, t1;
	double wall_ns;
	int n;

	if (!dom)
		return -1;
	memset(out, 0, sizeof(*out));
	/* two samples half a second apart, as the Docker engine takes its two */
	t0 = vd_clock_us();
	if (virDomainGetInfo(dom, &a) < 0)
		return lv_error(err, "stats", id);
	usleep(500 * 1000);
	t1 = vd_clock_us();
	if (virDomainGetInfo(dom, &b) < 0)
		return lv_error(err, "stats", id);
	wall_ns = (double)(t1 - t0) * 1e3;
	out->cpu_time_ns = (int64_t)b.cpuTime;
	out->cpu_percent = wall_ns > 0 ? (double)(b.cpuTime - a.cpuTime) / wall_ns * 100 : 0;
	out->memory_limit = (int64_t)b.memory * 1024;
	n = virDomainMemoryStats(dom, mem, VIR_DOMAIN_MEMORY_STAT_NR, 0);
	for (int i = 0; i < n; i++) {
		if (mem[i].tag == VIR_DOMAIN_MEMORY_STAT_RSS)
			out->memory_usage = (int64_t)mem[i].val * 1024;
		else if (mem[i].tag == VIR_DOMAIN_MEMORY_STAT_ACTUAL_BALLOON)
			out->memory_limit = (int64_t)mem[i].val * 1024;
	}
	virResetLastError();
	return 0;
}

const struct vd_driver_ops vd_libvirt_driver = {
	.name = "libvirt",
	.default_endpoint = LV_DEFAULT_URI,
	.endpoint_env = "VDCTL_LIBVIRT_URI",
	.open = lv_open,
	.close = lv_close,
	.capacity = lv_capacity,
	.list = lv_list,
	.check = lv_check,
	.create = lv_create,
	.start = lv_start,
	.stop = lv_stop,
	.remove = lv_remove,
	.inspect = lv_inspect,
	.resize = lv_resize,
	.stats = lv_stats,
	.events_open = lv_events_open,
	.events_read = lv_events_read,
};
