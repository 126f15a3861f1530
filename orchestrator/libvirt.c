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
 * its /init through fw_cfg files (examples/vm/init reads them).
 *
 * Per replica, vdctl keeps in STATE/libvirt/<name>/: the overlay, the serial
 * console log, and the fw_cfg files. Remove deletes them all.
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
#include "vd/driver.h"
#include "vd/labels.h"
#include "vd/log.h"
#include "vd/manifest.h"
#include "vd/state.h"
#include "vd/strbuf.h"

#define LV_DEFAULT_URI "qemu:///system"
#define LV_DEFAULT_STATE "/var/lib/vdctl"
#define LV_KEEPALIVE_INTERVAL 5 /* s; keepalive_count missed answers close the connection */
#define LV_KEEPALIVE_COUNT 3
#define LV_MEMORY_CEILING 2     /* <memory> is this many times the size, for live growth */
#define LV_VCPU_CEILING 2       /* maximum vCPUs: this many times the first count */
#define LV_CPU_PERIOD 100000    /* us */
#define LV_EVENTS_MAX 256
#define LV_KVM_PROBE_SECONDS 8
#define LV_HINT "is libvirtd running? 'make setup' starts it"

struct lv_event_queue {
	pthread_mutex_t lock;
	struct vd_event items[LV_EVENTS_MAX];
	size_t head, count;
	int efd; /* eventfd: readable while items are queued */
	int callback;
};

struct lv {
	struct vd_driver base;
	virConnectPtr conn;
	char uri[256];
	char state_dir[1024];
	struct lv_event_queue *events;
};

VD_DEFINE_CLEANUP(cleanup_domain_, virDomainPtr, virDomainFree)
#define _cleanup_domain_ _cleanup_(cleanup_domain_)

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
static int
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

/* ------------------------------------------------------------ metadata */

/* The text of <tag>...</tag> in xml, unescaped, or NULL. */
static char *
xml_field(const char *xml, const char *tag)
{
	char open[64], close[64];
	const char *a, *b;
	char *out, *o;

	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	if (!xml || !(a = strstr(xml, open)))
		return NULL;
	a += strlen(open);
	if (!(b = strstr(a, close)) || !(out = malloc((size_t)(b - a) + 1)))
		return NULL;
	for (o = out; a < b; a++) {
		static const struct {
			const char *ent;
			char c;
		} ents[] = { { "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' },
			     { "&apos;", '\'' }, { "&quot;", '"' } };
		size_t i;

		for (i = 0; *a == '&' && i < sizeof(ents) / sizeof(ents[0]); i++)
			if (strncmp(a, ents[i].ent, strlen(ents[i].ent)) == 0)
				break;
		if (*a == '&' && i < sizeof(ents) / sizeof(ents[0])) {
			*o++ = ents[i].c;
			a += strlen(ents[i].ent) - 1;
		} else {
			*o++ = *a;
		}
	}
	*o = '\0';
	return out;
}

static long
xml_long(const char *xml, const char *tag, long dflt)
{
	_cleanup_free_ char *v = xml_field(xml, tag);
	char *end;
	long n;

	if (!v)
		return dflt;
	n = strtol(v, &end, 10);
	return *v && *end == '\0' ? n : dflt;
}

/*
 * vdctl's record of a replica, kept in the <vd:replica> element of its
 * domain's metadata: the labels, the ports, when it last started, and the
 * limits vdctl set (the balloon's actual size moves on its own).
 */
struct lv_meta {
	struct vd_labels labels;
	int guest_port, host_port;
	int64_t started_ns;
	int64_t milli_cpus, memory_bytes;
};

static void
meta_clear(struct lv_meta *m)
{
	vd_labels_clear(&m->labels);
}

/* Read the record; -1 when the domain has none: it is not vdctl's. */
static int
meta_read(virDomainPtr dom, struct lv_meta *m)
{
	_cleanup_free_ char *md = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT,
						       VD_XML_NS, 0);
	_cleanup_free_ char *managed = xml_field(md, "managed");

	memset(m, 0, sizeof(*m));
	virResetLastError();
	if (!md || !managed || strcmp(managed, "true") != 0 ||
	    !(m->labels.service = xml_field(md, "service")))
		return -1;
	m->labels.index = (int)xml_long(md, "index", -1);
	m->labels.spec_hash = xml_field(md, "spec-hash");
	m->labels.manifest = xml_field(md, "manifest");
	m->guest_port = (int)xml_long(md, "guest-port", 0);
	m->host_port = (int)xml_long(md, "host-port", 0);
	m->started_ns = xml_long(md, "started", 0);
	m->milli_cpus = xml_long(md, "milli-cpus", 0);
	m->memory_bytes = xml_long(md, "memory-bytes", 0);
	return 0;
}

/* The <replica> element: in a domain's XML it declares its namespace
 * (prefixed); for virDomainSetMetadata(), which adds it, it does not. */
static void
meta_xml(struct vd_strbuf *b, bool prefixed, const struct lv_meta *m)
{
	if (prefixed)
		vd_strbuf_puts(b, "<" VD_XML_PREFIX ":replica xmlns:" VD_XML_PREFIX "='"
			       VD_XML_NS "'>");
	else
		vd_strbuf_puts(b, "<replica>");
	vd_strbuf_puts(b, "<managed>true</managed><service>");
	vd_strbuf_xml(b, m->labels.service);
	vd_strbuf_printf(b, "</service><index>%d</index><spec-hash>", m->labels.index);
	vd_strbuf_xml(b, m->labels.spec_hash ? m->labels.spec_hash : "");
	vd_strbuf_puts(b, "</spec-hash><manifest>");
	vd_strbuf_xml(b, m->labels.manifest ? m->labels.manifest : "");
	vd_strbuf_printf(b, "</manifest><guest-port>%d</guest-port><host-port>%d</host-port>"
			 "<started>%lld</started><milli-cpus>%lld</milli-cpus>"
			 "<memory-bytes>%lld</memory-bytes></%sreplica>",
			 m->guest_port, m->host_port, (long long)m->started_ns,
			 (long long)m->milli_cpus, (long long)m->memory_bytes,
			 prefixed ? VD_XML_PREFIX ":" : "");
}

/* Replace the record, live and in the definition. */
static int
meta_write(virDomainPtr dom, const struct lv_meta *m)
{
	struct vd_strbuf b = VD_STRBUF_INIT;
	_cleanup_free_ char *xml = NULL;
	unsigned flags = VIR_DOMAIN_AFFECT_CONFIG;

	if (virDomainIsActive(dom) == 1)
		flags |= VIR_DOMAIN_AFFECT_LIVE;
	meta_xml(&b, false, m);
	if (!(xml = vd_strbuf_steal(&b)))
		return -1;
	return virDomainSetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, xml, VD_XML_PREFIX,
				    VD_XML_NS, flags);
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
	if (meta_read(dom, &m) < 0)
		return vd_error_set(err, VD_EXIT_FAILURE, "refusing to touch domain '%s': it does "
				    "not carry vdctl's metadata", name ? name : "?");
	if (virDomainGetUUIDString(dom, uuid) < 0 || !(r->id = strdup(uuid)) ||
	    !(r->name = strdup(name))) {
		meta_clear(&m);
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
	if (!r)
		vd_replica_clear(&tmp);
	return dom;
}

/* --------------------------------------------------------------- files */

static void
replica_dir(const struct lv *lv, const char *name, char *buf, size_t size)
{
	snprintf(buf, size, "%s/libvirt/%s", lv->state_dir, name);
}

static void
remove_tree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[PATH_MAX + 256];

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

/* A path from a manifest, made absolute for libvirtd (whose working
 * directory is not ours): relative paths are relative to the manifest's
 * directory, or to ours when the service has no file. Missing files are left
 * for libvirt to report. */
static void
resolve(const struct vd_service *svc, const char *path, char *out, size_t size)
{
	char dir[PATH_MAX], base[PATH_MAX / 2];

	if (path[0] == '/') {
		snprintf(out, size, "%s", path);
		return;
	}
	snprintf(dir, sizeof(dir), "%s", svc->file ? svc->file : "./x");
	if (!realpath(dirname(dir), base) && !getcwd(base, sizeof(base)))
		snprintf(base, sizeof(base), ".");
	snprintf(out, size, "%s/%s", base, path);
}

/* The virtual size of a qcow2 image (bytes 24-31 of its header, big-endian)
 * or the size of a raw one. */
static int64_t
image_size(const char *path, bool *qcow2)
{
	unsigned char h[32];
	struct stat st;
	int64_t size = -1;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	*qcow2 = false;
	if (fd < 0)
		return -1;
	if (read(fd, h, sizeof(h)) == (ssize_t)sizeof(h) && memcmp(h, "QFI\xfb", 4) == 0) {
		*qcow2 = true;
		size = 0;
		for (int i = 24; i < 32; i++)
			size = (size << 8) | h[i];
	} else if (fstat(fd, &st) == 0) {
		size = st.st_size;
	}
	close(fd);
	return size;
}

/* ------------------------------------------------------------- overlays */

/*
 * The overlay is made through a libvirt storage pool over the replica's own
 * directory, so no tool runs: a transient "dir" pool, a qcow2 volume backed
 * by the golden image, and the pool is gone again.
 */
static int
make_overlay(struct lv *lv, const char *dir, const char *name, const char *golden,
	     char *out, size_t size, struct vd_error *err)
{
	struct vd_strbuf b = VD_STRBUF_INIT;
	_cleanup_free_ char *pool_xml = NULL, *vol_xml = NULL;
	virStoragePoolPtr pool;
	virStorageVolPtr vol;
	int64_t capacity;
	bool qcow2;
	int ret = 0;

	capacity = image_size(golden, &qcow2);
	if (capacity < 0)
		return vd_error_errno(err, errno, "create %s: cannot read the disk image '%s'",
				      name, golden);
	vd_strbuf_puts(&b, "<pool type='dir'><name>vdctl-");
	vd_strbuf_xml(&b, name);
	vd_strbuf_puts(&b, "</name><target><path>");
	vd_strbuf_xml(&b, dir);
	vd_strbuf_puts(&b, "</path></target></pool>");
	pool_xml = vd_strbuf_steal(&b);
	vd_strbuf_printf(&b, "<volume><name>overlay.qcow2</name><capacity unit='bytes'>%lld"
			 "</capacity><target><format type='qcow2'/><permissions><mode>0600"
			 "</mode></permissions></target><backingStore><path>",
			 (long long)capacity);
	vd_strbuf_xml(&b, golden);
	vd_strbuf_printf(&b, "</path><format type='%s'/></backingStore></volume>",
			 qcow2 ? "qcow2" : "raw");
	vol_xml = vd_strbuf_steal(&b);
	if (!pool_xml || !vol_xml)
		return vd_error_set(err, VD_EXIT_FAILURE, "out of memory");

	pool = virStoragePoolCreateXML(lv->conn, pool_xml, 0);
	if (!pool)
		return lv_error(err, "create overlay for", name);
	vol = virStorageVolCreateXML(pool, vol_xml, 0);
	if (!vol)
		ret = lv_error(err, "create overlay for", name);
	else
		virStorageVolFree(vol);
	virStoragePoolDestroy(pool);
	virStoragePoolFree(pool);
	snprintf(out, size, "%s/overlay.qcow2", dir);
	return ret;
}

/* --------------------------------------------------------- domain XML */

static int
free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd, port = -1;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

static void
qemu_arg(struct vd_strbuf *b, const char *value)
{
	vd_strbuf_puts(b, "<qemu:arg value='");
	vd_strbuf_xml(b, value);
	vd_strbuf_puts(b, "'/>");
}

/* QEMU option values are comma-separated: a comma in a path doubles. */
static void
qemu_path(char *out, size_t size, const char *prefix, const char *path)
{
	size_t n = (size_t)snprintf(out, size, "%s", prefix);

	for (; *path && n + 2 < size; path++) {
		out[n++] = *path;
		if (*path == ',')
			out[n++] = ',';
	}
	out[n] = '\0';
}

struct domain_plan {
	const char *name;
	const char *type;      /* "kvm" or "qemu" */
	char kernel[PATH_MAX], initrd[PATH_MAX], disk[PATH_MAX];
	char console[PATH_MAX], args[PATH_MAX], env[PATH_MAX];
	int host_port;
	int vcpus, max_vcpus;
	int64_t memory_kib, ceiling_kib;
};

static char *
domain_xml(const struct vd_service *svc, const struct vd_labels *l, const struct domain_plan *p)
{
	struct vd_strbuf b = VD_STRBUF_INIT;
	char arg[PATH_MAX + 64];

	vd_strbuf_printf(&b, "<domain type='%s' xmlns:qemu='http://libvirt.org/schemas/domain/"
			 "qemu/1.0'><name>", p->type);
	vd_strbuf_xml(&b, p->name);
	vd_strbuf_puts(&b, "</name><metadata>");
	meta_xml(&b, true, &(struct lv_meta){ *l, svc->port, p->host_port, 0, svc->milli_cpus,
					      svc->memory_bytes });
	vd_strbuf_printf(&b, "</metadata><memory unit='KiB'>%lld</memory>"
			 "<currentMemory unit='KiB'>%lld</currentMemory>"
			 "<vcpu placement='static' current='%d'>%d</vcpu>"
			 "<cputune><global_period>%d</global_period>"
			 "<global_quota>%lld</global_quota></cputune>"
			 "<os><type arch='x86_64' machine='pc'>hvm</type>",
			 (long long)p->ceiling_kib, (long long)p->memory_kib, p->vcpus,
			 p->max_vcpus, LV_CPU_PERIOD,
			 (long long)svc->milli_cpus * LV_CPU_PERIOD / 1000);
	if (p->kernel[0]) {
		vd_strbuf_puts(&b, "<kernel>");
		vd_strbuf_xml(&b, p->kernel);
		vd_strbuf_puts(&b, "</kernel>");
		if (p->initrd[0]) {
			vd_strbuf_puts(&b, "<initrd>");
			vd_strbuf_xml(&b, p->initrd);
			vd_strbuf_puts(&b, "</initrd>");
		}
		vd_strbuf_puts(&b, "<cmdline>");
		vd_strbuf_xml(&b, svc->vm.cmdline ? svc->vm.cmdline : "console=ttyS0 quiet");
		vd_strbuf_puts(&b, "</cmdline>");
	} else {
		vd_strbuf_puts(&b, "<boot dev='hd'/>");
	}
	vd_strbuf_puts(&b, "</os><features><acpi/><apic/></features>"
			   "<on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot>"
			   "<on_crash>destroy</on_crash><devices>");
	if (p->disk[0]) {
		vd_strbuf_puts(&b, "<disk type='file' device='disk'><driver name='qemu' "
				   "type='qcow2'/><source file='");
		vd_strbuf_xml(&b, p->disk);
		vd_strbuf_puts(&b, "'/><target dev='vda' bus='virtio'/></disk>");
	}
	vd_strbuf_puts(&b, "<serial type='file'><source path='");
	vd_strbuf_xml(&b, p->console);
	vd_strbuf_puts(&b, "'/><target port='0'/></serial>"
			   "<memballoon model='virtio'><address type='pci' domain='0' bus='0' "
			   "slot='0x05' function='0'/></memballoon></devices><qemu:commandline>");
	/* user-mode networking, forwarded from loopback only; the NIC needs an
	 * explicit PCI slot beside the balloon */
	qemu_arg(&b, "-netdev");
	snprintf(arg, sizeof(arg), "user,id=vdnet0,hostfwd=tcp:127.0.0.1:%d-:%d", p->host_port,
		 svc->port);
	qemu_arg(&b, arg);
	qemu_arg(&b, "-device");
	qemu_arg(&b, "virtio-net-pci,netdev=vdnet0,addr=0x9");
	qemu_arg(&b, "-fw_cfg");
	qemu_path(arg, sizeof(arg), "name=opt/vdctl/args,file=", p->args);
	qemu_arg(&b, arg);
	qemu_arg(&b, "-fw_cfg");
	qemu_path(arg, sizeof(arg), "name=opt/vdctl/env,file=", p->env);
	qemu_arg(&b, arg);
	vd_strbuf_puts(&b, "</qemu:commandline></domain>");
	return vd_strbuf_steal(&b);
}

/* ------------------------------------------------------------------ KVM */

/*
 * Does KVM actually boot a guest here? /dev/kvm may exist and answer ioctls
 * while guests hang (nested virtualisation on these machines), so the probe
 * boots the host's kernel in a throw-away KVM domain and waits for its
 * banner on the serial console. The answer is kept in the state directory
 * for the host's current boot.
 */
static bool
probe_kvm(struct lv *lv)
{
	char cache[PATH_MAX + 32], console[PATH_MAX + 32], boot_id[64] = "", line[128];
	struct vd_strbuf b = VD_STRBUF_INIT;
	_cleanup_free_ char *xml = NULL;
	_cleanup_fclose_ FILE *f = NULL;
	const char *kernel = "/boot/vmlinuz";
	struct lv_meta probe = { { "kvm-probe", 0, NULL, NULL }, 0, 0, 0, 1000, 128 << 20 };
	virDomainPtr dom;
	bool works = false;

	if (access("/dev/kvm", R_OK | W_OK) != 0)
		return false;
	if ((f = fopen("/proc/sys/kernel/random/boot_id", "r")))
		if (!fgets(boot_id, sizeof(boot_id), f))
			boot_id[0] = '\0';
	boot_id[strcspn(boot_id, "\n")] = '\0';
	snprintf(cache, sizeof(cache), "%s/libvirt/kvm-probe", lv->state_dir);
	if (f)
		fclose(f);
	if ((f = fopen(cache, "r")) && fgets(line, sizeof(line), f) &&
	    strncmp(line, boot_id, strlen(boot_id)) == 0 && boot_id[0])
		return strstr(line, " yes") != NULL;

	if (access(kernel, R_OK) != 0) {
		DIR *d = opendir("/boot");
		struct dirent *e;
		static char found[PATH_MAX];

		while (d && (e = readdir(d)))
			if (strncmp(e->d_name, "vmlinuz-", 8) == 0)
				snprintf(found, sizeof(found), "/boot/%s", e->d_name);
		if (d)
			closedir(d);
		if (!found[0])
			return false;
		kernel = found;
	}
	snprintf(console, sizeof(console), "%s/libvirt/kvm-probe.console", lv->state_dir);
	unlink(console);
	vd_strbuf_printf(&b, "<domain type='kvm'><name>vd-kvm-probe-%d</name><metadata>",
			 (int)getpid());
	meta_xml(&b, true, &probe);
	vd_strbuf_puts(&b, "</metadata><memory unit='MiB'>128</memory><vcpu>1</vcpu>"
			   "<os><type arch='x86_64' machine='pc'>hvm</type><kernel>");
	vd_strbuf_xml(&b, kernel);
	vd_strbuf_puts(&b, "</kernel><cmdline>console=ttyS0 panic=-1</cmdline></os>"
			   "<devices><serial type='file'><source path='");
	vd_strbuf_xml(&b, console);
	vd_strbuf_puts(&b, "'/></serial></devices></domain>");
	if (!(xml = vd_strbuf_steal(&b)) || !(dom = virDomainCreateXML(lv->conn, xml, 0))) {
		virResetLastError();
		return false;
	}
	for (int i = 0; i < LV_KVM_PROBE_SECONDS * 10 && !works; i++) {
		FILE *c = fopen(console, "r");

		while (c && fgets(line, sizeof(line), c))
			works |= strstr(line, "Linux version") != NULL;
		if (c)
			fclose(c);
		if (!works)
			usleep(100 * 1000);
	}
	virDomainDestroy(dom);
	virDomainFree(dom);
	virResetLastError();
	unlink(console);
	snprintf(line, sizeof(line), "%s %s\n", boot_id, works ? "yes" : "no");
	if (boot_id[0])
		vd_write_atomic(cache, line, strlen(line), NULL);
	vd_info("KVM %s on this host; accel auto uses %s", works ? "boots guests" :
		"does not boot guests", works ? "kvm" : "tcg (software emulation)");
	return works;
}

/* The probe's answer, once per process: parallel creates wait for it. */
static bool
kvm_boots(struct lv *lv)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static int known = -1;
	bool works;

	pthread_mutex_lock(&lock);
	if (known < 0)
		known = probe_kvm(lv);
	works = known;
	pthread_mutex_unlock(&lock);
	return works;
}

static const char *
domain_type(struct lv *lv, enum vd_accel accel)
{
	switch (accel) {
	case VD_ACCEL_KVM:
		return "kvm";
	case VD_ACCEL_TCG:
		return "qemu";
	case VD_ACCEL_AUTO:
		break;
	}
	return kvm_boots(lv) ? "kvm" : "qemu";
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
		int ours = dom && meta_read(dom, &m) == 0;

		if (dom)
			virDomainFree(dom);
		virResetLastError();
		if (ours) {
			meta_clear(&m);
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

/* The args and env files the guest's /init reads through fw_cfg. */
static int
write_guest_config(const struct vd_service *svc, const struct domain_plan *p,
		   struct vd_error *err)
{
	struct vd_strbuf b = VD_STRBUF_INIT;
	_cleanup_free_ char *args = NULL, *env = NULL;
	bool has_port = false;

	for (size_t i = 0; i < svc->ncommand; i++)
		vd_strbuf_printf(&b, "%s\n", svc->command[i]);
	args = vd_strbuf_steal(&b);
	for (size_t i = 0; i < svc->nenv; i++) {
		vd_strbuf_printf(&b, "%s\n", svc->env[i]);
		has_port |= strncmp(svc->env[i], "PORT=", 5) == 0;
	}
	if (!has_port)
		vd_strbuf_printf(&b, "PORT=%d\n", svc->port);
	vd_strbuf_printf(&b, "REPLICA_ID=%s\n", p->name);
	env = vd_strbuf_steal(&b);
	if (!args || !env)
		return vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
	if (vd_write_atomic(p->args, args, strlen(args), err) < 0 ||
	    vd_write_atomic(p->env, env, strlen(env), err) < 0)
		return -1;
	return 0;
}

static int
plan_domain(struct lv *lv, const struct vd_service *svc, const char *name, const char *dir,
	    struct domain_plan *p, struct vd_error *err)
{
	memset(p, 0, sizeof(*p));
	p->name = name;
	p->type = domain_type(lv, svc->vm.accel);
	p->host_port = free_port();
	if (p->host_port < 0)
		return vd_error_errno(err, errno, "create %s: no free port on 127.0.0.1", name);
	p->vcpus = (int)((svc->milli_cpus + 999) / 1000);
	if (p->vcpus < 1)
		p->vcpus = 1;
	p->max_vcpus = p->vcpus * LV_VCPU_CEILING;
	p->memory_kib = svc->memory_bytes / 1024;
	p->ceiling_kib = p->memory_kib * LV_MEMORY_CEILING;
	if (svc->vm.kernel)
		resolve(svc, svc->vm.kernel, p->kernel, sizeof(p->kernel));
	if (svc->vm.initrd)
		resolve(svc, svc->vm.initrd, p->initrd, sizeof(p->initrd));
	snprintf(p->console, sizeof(p->console), "%s/console.log", dir);
	snprintf(p->args, sizeof(p->args), "%s/args", dir);
	snprintf(p->env, sizeof(p->env), "%s/env", dir);
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
	char name[96], dir[2048], golden[PATH_MAX];

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
	replica_dir(lv, name, dir, sizeof(dir));
	remove_tree(dir); /* left by a create that was killed before it defined the domain */
	if (vd_mkdir_p(dir, err) < 0)
		return vd_error_wrap(err, "create %s", name);
	if (plan_domain(lv, svc, name, dir, &p, err) < 0 ||
	    write_guest_config(svc, &p, err) < 0)
		goto fail;
	if (svc->vm.disk && !svc->vm.kernel) {
		resolve(svc, svc->vm.disk, golden, sizeof(golden));
		if (make_overlay(lv, dir, name, golden, p.disk, sizeof(p.disk), err) < 0)
			goto fail;
	}
	if (!(xml = domain_xml(svc, l, &p))) {
		vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
		goto fail;
	}
	if (!(dom = virDomainDefineXML(lv->conn, xml))) {
		lv_error(err, "create", name);
		goto fail;
	}
	return domain_replica(dom, out, err);
fail:
	remove_tree(dir);
	return -1;
}

/* Record the start time in the metadata, for inspect. */
static void
mark_started(virDomainPtr dom)
{
	struct lv_meta m;
	struct timespec ts;

	if (meta_read(dom, &m) < 0)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	m.started_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	if (meta_write(dom, &m) < 0)
		vd_warn("cannot record the start of %s: %s", virDomainGetName(dom),
			virGetLastErrorMessage());
	virResetLastError();
	meta_clear(&m);
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
	replica_dir(lv, r.name, dir, sizeof(dir));
	remove_tree(dir);
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
	if (meta_read(dom, &m) == 0) {
		m.milli_cpus = milli_cpus;
		m.memory_bytes = memory_bytes;
		if (meta_write(dom, &m) < 0)
			lv_error(err, "resize: record the new limits of", r.name);
		else
			ret = 0;
		meta_clear(&m);
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
	struct timespec t0, t1;
	double wall_ns;
	int n;

	if (!dom)
		return -1;
	memset(out, 0, sizeof(*out));
	/* two samples half a second apart, as the Docker engine takes its two */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (virDomainGetInfo(dom, &a) < 0)
		return lv_error(err, "stats", id);
	usleep(500 * 1000);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (virDomainGetInfo(dom, &b) < 0)
		return lv_error(err, "stats", id);
	wall_ns = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
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
	.min_memory_bytes = 32 << 20, /* what a small guest kernel boots in */
	.open = lv_open,
	.close = lv_close,
	.capacity = lv_capacity,
	.list = lv_list,
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
