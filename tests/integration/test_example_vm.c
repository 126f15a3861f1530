/*
 * The example VM images under the real libvirtd with QEMU TCG: one replica
 * booted from the initramfs (direct kernel boot) and one from the golden disk
 * (syslinux), both answering /ping and /info through a host forward on
 * 127.0.0.1. They boot side by side to keep the test short on 2 cores.
 *
 * The domains are transient and carry vdctl's metadata; teardown destroys
 * them and removes their console logs, whatever happened.
 */
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vd/labels.h"
#include "vdtest.h"

#define BOOT_SECONDS 120

struct vm {
	const char *kind; /* "initrd" or "disk" */
	char name[64];
	char log[256];
	int port;
	virDomainPtr dom;
};

struct fixture {
	virConnectPtr conn;
	struct vm vms[2];
};

static int
vm_xml(const struct vm *vm, char *xml, size_t size)
{
	const char *images = vt_env("VD_IMAGES_DIR", "examples/images");
	char dir[1024], boot[3072], disk[2048] = "";
	int n;

	if (strlen(images) >= sizeof(dir) || !realpath(images, dir) || strlen(dir) > 900)
		return -1;
	if (strcmp(vm->kind, "initrd") == 0) {
		snprintf(boot, sizeof(boot),
			 "<kernel>%s/vmlinuz</kernel><initrd>%s/svc-initrd.gz</initrd>"
			 "<cmdline>console=ttyS0 quiet panic=-1 -- --model sync --workers 2"
			 "</cmdline>", dir, dir);
	} else {
		/* the golden disk itself, read-only: the test writes nothing to it */
		snprintf(boot, sizeof(boot), "<boot dev='hd'/>");
		snprintf(disk, sizeof(disk),
			 "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
			 "<source file='%s/svc.qcow2'/><target dev='vda' bus='virtio'/>"
			 "<readonly/></disk>", dir);
	}
	n = snprintf(xml, size,
		 "<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>"
		 "<name>%s</name>"
		 "<metadata><" VD_XML_PREFIX ":replica xmlns:" VD_XML_PREFIX "='" VD_XML_NS "'>"
		 "<service>itest</service><index>0</index></" VD_XML_PREFIX ":replica></metadata>"
		 "<memory unit='MiB'>256</memory><vcpu>1</vcpu>"
		 "<os><type arch='x86_64' machine='pc'>hvm</type>%s</os>"
		 "<features><acpi/></features>"
		 "<on_poweroff>destroy</on_poweroff><on_crash>destroy</on_crash>"
		 "<devices>%s"
		 "<serial type='file'><source path='%s'/><target port='0'/></serial>"
		 "<memballoon model='virtio'><address type='pci' domain='0' bus='0' "
		 "slot='0x05' function='0'/></memballoon>"
		 "</devices>"
		 "<qemu:commandline>"
		 "<qemu:arg value='-netdev'/>"
		 "<qemu:arg value='user,id=n0,hostfwd=tcp:127.0.0.1:%d-:8080'/>"
		 "<qemu:arg value='-device'/><qemu:arg value='virtio-net-pci,netdev=n0,addr=0x9'/>"
		 "</qemu:commandline></domain>",
		 vm->name, boot, disk, vm->log, vm->port);
	return n > 0 && (size_t)n < size ? 0 : -1;
}

static void
show_console(const struct vm *vm)
{
	char line[512];
	FILE *f = fopen(vm->log, "r");

	if (!f)
		return;
	fprintf(stderr, "--- console of %s\n", vm->name);
	while (fgets(line, sizeof(line), f))
		fputs(line, stderr);
	fclose(f);
}

static int
setup(void **state)
{
	static struct fixture f;
	static const char *kinds[] = { "initrd", "disk" };
	char xml[16384];

	memset(&f, 0, sizeof(f));
	*state = &f; /* so teardown cleans up whatever setup made */
	f.conn = virConnectOpen(vt_env("VD_LIBVIRT_URI", "qemu:///system"));
	if (!f.conn)
		return -1;
	for (int i = 0; i < 2; i++) {
		struct vm *vm = &f.vms[i];

		vm->kind = kinds[i];
		snprintf(vm->name, sizeof(vm->name), "vd-itest%s-%d-0", kinds[i], (int)getpid());
		snprintf(vm->log, sizeof(vm->log), "/tmp/%s.console.log", vm->name);
		vm->port = vt_free_port();
		if (vm->port < 0 || vm_xml(vm, xml, sizeof(xml)) < 0)
			return -1;
		vm->dom = virDomainCreateXML(f.conn, xml, 0);
		if (!vm->dom) {
			fprintf(stderr, "create %s: %s\n", vm->name, virGetLastErrorMessage());
			return -1;
		}
	}
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	if (!f || !f->conn)
		return 0;
	for (int i = 0; i < 2; i++) {
		if (f->vms[i].dom) {
			virDomainDestroy(f->vms[i].dom);
			virDomainFree(f->vms[i].dom);
		}
		unlink(f->vms[i].log);
	}
	virConnectClose(f->conn);
	return 0;
}

static void
check_vm(struct vm *vm)
{
	char url[128];
	char *body = NULL;
	json_t *info;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/ping", vm->port);
	if (vt_wait_http(url, BOOT_SECONDS) != 0)
		show_console(vm);
	assert_int_equal(vt_wait_http(url, 1), 0);

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/info", vm->port);
	assert_int_equal(vt_http_get(url, &body, 5000), 200);
	info = json_loads(body, 0, NULL);
	free(body);
	assert_non_null(info);
	assert_int_equal(json_integer_value(json_object_get(info, "online_cpus")), 1);
	assert_string_equal(json_string_value(json_object_get(info, "model")), "sync");
	assert_int_equal(json_integer_value(json_object_get(info, "workers")), 2);
	/* 256 MiB of RAM, less what the kernel keeps for itself */
	assert_true(json_integer_value(json_object_get(info, "mem_total_bytes")) > (128 << 20));
	assert_true(json_integer_value(json_object_get(info, "mem_total_bytes")) <= (256 << 20));
	json_decref(info);
}

static void
test_initramfs_vm_answers(void **state)
{
	struct fixture *f = *state;

	check_vm(&f->vms[0]);
}

static void
test_golden_disk_vm_answers(void **state)
{
	struct fixture *f = *state;

	check_vm(&f->vms[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_initramfs_vm_answers),
		cmocka_unit_test(test_golden_disk_vm_answers),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
