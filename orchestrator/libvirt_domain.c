/*
 * What a libvirt replica is made of (the driver's other half, libvirt.c):
 * vdctl's metadata in the domain, the domain's XML, written and escaped
 * here, the replica's files under STATE/libvirt/<name>/ (the overlay of a
 * golden disk, the console log), the fw_cfg strings its /init reads, and the
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
 * by the golden image, and the pool is gone again. The volume belongs to
 * vdctl's user, who opens it for QEMU at each start (lv_pass_overlay()): the
 * disk's source names an fdgroup, not a file QEMU opens, so QEMU's user need
 * not reach the state directory. The golden image it still opens by path.
 */
#define LV_OVERLAY_FDGROUP "vdctl-overlay"
#define LV_OVERLAY_FILE "overlay.qcow2"

int
lv_make_overlay(struct lv *lv, const char *dir, struct domain_plan *p, struct vd_error *err)
{
	struct vd_strbuf b = VD_STRBUF_INIT;
	_cleanup_free_ char *pool_xml = NULL, *vol_xml = NULL;
	virStoragePoolPtr pool;
	virStorageVolPtr vol;
	int64_t capacity;
	bool qcow2;
	int ret = 0;

	capacity = image_size(p->backing, &qcow2);
	if (capacity < 0)
		return vd_error_errno(err, errno, "create %s: cannot read the disk image '%s'",
				      p->name, p->backing);
	p->backing_format = qcow2 ? "qcow2" : "raw";
	vd_strbuf_puts(&b, "<pool type='dir'><name>vdctl-");
	vd_strbuf_xml(&b, p->name);
	vd_strbuf_puts(&b, "</name><target><path>");
	vd_strbuf_xml(&b, dir);
	vd_strbuf_puts(&b, "</path></target></pool>");
	pool_xml = vd_strbuf_steal(&b);
	vd_strbuf_printf(&b, "<volume><name>" LV_OVERLAY_FILE "</name><capacity unit='bytes'>"
			 "%lld</capacity><target><format type='qcow2'/><permissions><owner>%u"
			 "</owner><group>%u</group><mode>0600</mode></permissions></target>"
			 "<backingStore><path>", (long long)capacity, (unsigned)geteuid(),
			 (unsigned)getegid());
	vd_strbuf_xml(&b, p->backing);
	vd_strbuf_printf(&b, "</path><format type='%s'/></backingStore></volume>",
			 p->backing_format);
	vol_xml = vd_strbuf_steal(&b);
	if (!pool_xml || !vol_xml)
		return vd_error_set(err, VD_EXIT_FAILURE, "out of memory");

	pool = virStoragePoolCreateXML(lv->conn, pool_xml, 0);
	if (!pool)
		return lv_error(err, "create overlay for", p->name);
	vol = virStorageVolCreateXML(pool, vol_xml, 0);
	if (!vol)
		ret = lv_error(err, "create overlay for", p->name);
	else
		virStorageVolFree(vol);
	virStoragePoolDestroy(pool);
	virStoragePoolFree(pool);
	snprintf(p->disk, sizeof(p->disk), "%s/" LV_OVERLAY_FILE, dir);
	return ret;
}

/* libvirtd receives its own copy of the descriptor and keeps it until the
 * domain starts or this connection closes. A replica booted from a kernel
 * has no overlay, and nothing is passed. */
int
lv_pass_overlay(struct lv *lv, virDomainPtr dom, const char *name, struct vd_error *err)
{
	char dir[PATH_MAX], path[PATH_MAX + 32];
	_cleanup_close_ int fd = -1;

	lv_replica_dir(lv, name, dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/" LV_OVERLAY_FILE, dir);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return 0;
	if (fd < 0)
		return vd_error_errno(err, errno, "start %s: cannot open its disk '%s'", name,
				      path);
	if (virDomainFDAssociate(dom, LV_OVERLAY_FDGROUP, 1, &fd, 0) < 0)
		return lv_error(err, "start: pass the disk of", name);
	return 0;
}

/* ---------------------------------------------------------- guest config */

/*
 * The replica's arguments and environment reach the guest's /init
 * (examples/vm/init) as two fw_cfg entries: opt/vdctl/args holds the
 * command's words and opt/vdctl/env its KEY=VALUE words, each word in single
 * quotes ('it'\''s' for it's) and the words on one line, which /init reads
 * with `eval "set -- $(cat ...)"` and `eval "export $(cat ...)"`. They are
 * strings on QEMU's command line, -fw_cfg name=NAME,string=VALUE in the
 * domain's <qemu:commandline>, with every comma doubled as QEMU's option
 * parser wants: no file QEMU must open.
 *
 * One line, because libvirt writes a newline (or a tab) of an attribute raw
 * in the definition it keeps, and reading that back, after libvirtd
 * restarts, turns it into a space; so a word holding a control character is
 * refused. libvirt's <sysinfo type='fwcfg'> entries would keep newlines, but
 * libvirt 9.0 passes their values XML-escaped and with single commas.
 * A -fw_cfg argument is at most the kernel's MAX_ARG_STRLEN, 128 KiB.
 */
#define FW_CFG_ARG_MAX (128 * 1024 - 1)

static bool
has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20)
			return true;
	return false;
}

/* WORD quoted for /init's shell, its commas doubled for QEMU. */
static void
fw_cfg_word(struct vd_strbuf *b, const char *word)
{
	if (b->len && b->s[b->len - 1] == '\'')
		vd_strbuf_puts(b, " ");
	vd_strbuf_puts(b, "'");
	for (; *word; word++) {
		if (*word == '\'')
			vd_strbuf_puts(b, "'\\''");
		else if (*word == ',')
			vd_strbuf_puts(b, ",,");
		else
			vd_strbuf_append(b, word, 1);
	}
	vd_strbuf_puts(b, "'");
}

/* -fw_cfg's value for opt/vdctl/args (env false) or opt/vdctl/env: the
 * service's variables, PORT unless it sets its own, and REPLICA_ID. */
static char *
fw_cfg_value(const struct vd_service *svc, const char *name, bool env)
{
	struct vd_strbuf b = VD_STRBUF_INIT;
	char word[128];
	bool has_port = false;

	vd_strbuf_printf(&b, "name=opt/vdctl/%s,string=", env ? "env" : "args");
	for (size_t i = 0; !env && i < svc->ncommand; i++)
		fw_cfg_word(&b, svc->command[i]);
	for (size_t i = 0; env && i < svc->nenv; i++) {
		fw_cfg_word(&b, svc->env[i]);
		has_port |= strncmp(svc->env[i], "PORT=", 5) == 0;
	}
	if (env && !has_port) {
		snprintf(word, sizeof(word), "PORT=%d", svc->port);
		fw_cfg_word(&b, word);
	}
	if (env) {
		snprintf(word, sizeof(word), "REPLICA_ID=%s", name);
		fw_cfg_word(&b, word);
	}
	return vd_strbuf_steal(&b);
}

static int
plan_guest_config(const struct vd_service *svc, struct domain_plan *p, struct vd_error *err)
{
	for (size_t i = 0; i < svc->ncommand; i++)
		if (has_control(svc->command[i]))
			return vd_error_set(err, VD_EXIT_INPUT, "create %s: word %zu of the "
					    "command holds a newline or another control "
					    "character, which a VM's arguments cannot carry",
					    p->name, i + 1);
	for (size_t i = 0; i < svc->nenv; i++)
		if (has_control(svc->env[i]))
			return vd_error_set(err, VD_EXIT_INPUT, "create %s: the value of '%.*s' "
					    "holds a newline or another control character, "
					    "which a VM's environment cannot carry", p->name,
					    (int)strcspn(svc->env[i], "="), svc->env[i]);
	/* libvirt refuses an empty string: without a command /init runs its own */
	if ((svc->ncommand && !(p->fw_args = fw_cfg_value(svc, p->name, false))) ||
	    !(p->fw_env = fw_cfg_value(svc, p->name, true)))
		return vd_error_set(err, VD_EXIT_FAILURE, "out of memory");
	if (p->fw_args && strlen(p->fw_args) > FW_CFG_ARG_MAX)
		return vd_error_set(err, VD_EXIT_INPUT, "create %s: the command takes more than "
				    "the %d bytes a VM receives through QEMU's command line",
				    p->name, FW_CFG_ARG_MAX);
	if (strlen(p->fw_env) > FW_CFG_ARG_MAX)
		return vd_error_set(err, VD_EXIT_INPUT, "create %s: the environment takes more "
				    "than the %d bytes a VM receives through QEMU's command line",
				    p->name, FW_CFG_ARG_MAX);
	return 0;
}

/* --------------------------------------------------------- domain XML */

static void
qemu_arg(struct vd_strbuf *b, const char *value)
{
	vd_strbuf_puts(b, "<qemu:arg value='");
	vd_strbuf_xml(b, value);
	vd_strbuf_puts(b, "'/>");
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
		vd_strbuf_printf(&b, "' fdgroup='%s'/><backingStore type='file'><format type='%s'/>"
				 "<source file='", LV_OVERLAY_FDGROUP, p->backing_format);
		vd_strbuf_xml(&b, p->backing);
		vd_strbuf_puts(&b, "'/></backingStore><target dev='vda' bus='virtio'/></disk>");
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
	if (p->fw_args) {
		qemu_arg(&b, "-fw_cfg");
		qemu_arg(&b, p->fw_args);
	}
	qemu_arg(&b, "-fw_cfg");
	qemu_arg(&b, p->fw_env);
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
	if (svc->vm.disk && !svc->vm.kernel)
		lv_resolve(svc, svc->vm.disk, p->backing, sizeof(p->backing));
	snprintf(p->console, sizeof(p->console), "%s/console.log", dir);
	return plan_guest_config(svc, p, err);
}

void
lv_plan_clear(struct domain_plan *p)
{
	free(p->fw_args);
	free(p->fw_env);
	p->fw_args = p->fw_env = NULL;
}
