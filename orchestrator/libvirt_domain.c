/*
 * What a libvirt replica is made of (the driver's other half, libvirt.c):
 * vdctl's metadata in the domain, the domain's XML, written and escaped
 * here, the replica's files under STATE/libvirt/<name>/ (the overlay of a
 * golden disk, the console log, the fw_cfg files its /init reads), and the
 * probe that says whether KVM really boots guests on this host.
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
#include "vd/file.h"
#include "vd/labels.h"
#include "vd/log.h"
#include "vd/manifest.h"
#include "vd/net.h"
#include "vd/strbuf.h"
#include "libvirt_int.h"

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


void
lv_meta_clear(struct lv_meta *m)
{
	vd_replica_labels_clear(&m->labels);
}

/* Read the record; -1 when the domain has none: it is not vdctl's. */
int
lv_meta_read(virDomainPtr dom, struct lv_meta *m)
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
	m->labels.owner = xml_field(md, "owner");
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
	vd_strbuf_puts(b, "</manifest>");
	if (m->labels.owner && *m->labels.owner) {
		vd_strbuf_puts(b, "<owner>");
		vd_strbuf_xml(b, m->labels.owner);
		vd_strbuf_puts(b, "</owner>");
	}
	vd_strbuf_printf(b, "<guest-port>%d</guest-port><host-port>%d</host-port>"
			 "<started>%lld</started><milli-cpus>%lld</milli-cpus>"
			 "<memory-bytes>%lld</memory-bytes></%sreplica>",
			 m->guest_port, m->host_port, (long long)m->started_ns,
			 (long long)m->milli_cpus, (long long)m->memory_bytes,
			 prefixed ? VD_XML_PREFIX ":" : "");
}

/* Replace the record, live and in the definition. */
int
lv_meta_write(virDomainPtr dom, const struct lv_meta *m)
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

/* --------------------------------------------------------------- files */

void
lv_replica_dir(const struct lv *lv, const char *name, char *buf, size_t size)
{
	snprintf(buf, size, "%s/libvirt/%s", lv->state_dir, name);
}

void
lv_remove_tree(const char *dir)
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
void
lv_resolve(const struct vd_service *svc, const char *path, char *out, size_t size)
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
int
lv_make_overlay(struct lv *lv, const char *dir, const char *name, const char *golden,
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


char *
lv_domain_xml(const struct vd_service *svc, const struct vd_labels *l, const struct domain_plan *p)
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
	struct lv_meta probe = { { "kvm-probe", 0, NULL, NULL, NULL }, 0, 0, 0, 1000, 128 << 20 };
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
		vd_file_write_atomic(cache, line, strlen(line), NULL);
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

/* The args and env files the guest's /init reads through fw_cfg. */
int
lv_write_guest_config(const struct vd_service *svc, const struct domain_plan *p,
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
	if (vd_file_write_atomic(p->args, args, strlen(args), err) < 0 ||
	    vd_file_write_atomic(p->env, env, strlen(env), err) < 0)
		return -1;
	return 0;
}

int
lv_plan_domain(struct lv *lv, const struct vd_service *svc, const char *name, const char *dir,
	    struct domain_plan *p, struct vd_error *err)
{
	memset(p, 0, sizeof(*p));
	p->name = name;
	p->type = domain_type(lv, svc->vm.accel);
	p->host_port = vd_net_free_port();
	if (p->host_port < 0)
		return vd_error_errno(err, errno, "create %s: no free port on 127.0.0.1", name);
	p->vcpus = (int)((svc->milli_cpus + 999) / 1000);
	if (p->vcpus < 1)
		p->vcpus = 1;
	p->max_vcpus = p->vcpus * LV_VCPU_CEILING;
	p->memory_kib = svc->memory_bytes / 1024;
	p->ceiling_kib = p->memory_kib * LV_MEMORY_CEILING;
	if (svc->vm.kernel)
		lv_resolve(svc, svc->vm.kernel, p->kernel, sizeof(p->kernel));
	if (svc->vm.initrd)
		lv_resolve(svc, svc->vm.initrd, p->initrd, sizeof(p->initrd));
	snprintf(p->console, sizeof(p->console), "%s/console.log", dir);
	snprintf(p->args, sizeof(p->args), "%s/args", dir);
	snprintf(p->env, sizeof(p->env), "%s/env", dir);
	return 0;
}
