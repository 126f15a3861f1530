#!/usr/bin/env bash
# make images: the example workload for both backends, built without a registry.
#
#   vdctl/example-svc:latest    Docker image, FROM scratch + the static server
#   examples/images/vmlinuz     link to the installed cloud kernel the VM
#                               images pair with (linux-image-cloud-amd64)
#   examples/images/svc-initrd.gz
#                               initramfs: busybox-static, the server, the
#                               kernel's virtio, fw_cfg, ACPI button and evdev
#                               modules, examples/vm/init
#   examples/images/svc.qcow2   golden disk: a FAT disk booted by syslinux
#                               holding the same kernel and initramfs
#
# Each artefact carries the hash of its inputs and is rebuilt only when they
# change, so re-running on a ready machine does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'images: %s\n' "$*"; }
die() { printf 'images: error: %s\n' "$*" >&2; exit 1; }

svc=build/svc
out=examples/images
[ -x "$svc" ] || die "$svc is missing; run 'make build/svc' first"
mkdir -p "$out"

hash_of() { cat "$@" | sha256sum | cut -c1-16; }

# --- Docker image -----------------------------------------------------------
image=vdctl/example-svc:latest
want=$(hash_of "$svc" examples/svc/Dockerfile)
have=$(docker image inspect -f '{{index .Config.Labels "org.vdctl.inputs"}}' "$image" 2>/dev/null || true)
if [ "$have" != "$want" ]; then
	say "building $image"
	ctx=$(mktemp -d)
	trap 'rm -rf "$ctx"' EXIT
	cp "$svc" examples/svc/Dockerfile "$ctx/"
	if ! log=$(DOCKER_BUILDKIT=0 docker build -q --label "org.vdctl.inputs=$want" \
		-t "$image" "$ctx" 2>&1); then
		printf '%s\n' "$log" >&2
		die "docker build of $image failed"
	fi
	rm -rf "$ctx"
	trap - EXIT
fi

# --- VM images --------------------------------------------------------------
kernel=$(ls -v /boot/vmlinuz-*-cloud-amd64 2>/dev/null | tail -n 1)
[ -n "$kernel" ] || die "no cloud kernel in /boot; 'make setup' installs linux-image-cloud-amd64"
kver=${kernel#/boot/vmlinuz-}
moddir=/lib/modules/$kver/kernel
ln -sfn "$kernel" "$out/vmlinuz"

modules="drivers/virtio/virtio_ring drivers/virtio/virtio drivers/virtio/virtio_pci_modern_dev
	drivers/virtio/virtio_pci_legacy_dev drivers/virtio/virtio_pci net/core/failover
	drivers/net/net_failover drivers/net/virtio_net drivers/virtio/virtio_balloon
	drivers/firmware/qemu_fw_cfg drivers/acpi/button drivers/input/evdev"
modfiles=()
for m in $modules; do
	[ -f "$moddir/$m.ko" ] || die "$moddir/$m.ko is missing"
	modfiles+=("$moddir/$m.ko")
done

want=$(hash_of "$svc" examples/vm/init examples/vm/syslinux.cfg /bin/busybox "$kernel" \
	"${modfiles[@]}" scripts/images.sh)
stamp=$out/.inputs
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] &&
	[ -f "$out/svc-initrd.gz" ] && [ -f "$out/svc.qcow2" ]; then
	exit 0
fi

say "building the initramfs and golden disk for kernel $kver"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root"/{bin,dev,proc,sys,tmp,lib/modules}
cp /bin/busybox "$root/bin/busybox"
cp "$svc" "$root/svc"
install -m 0755 examples/vm/init "$root/init"
cp "${modfiles[@]}" "$root/lib/modules/"
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -9n >"$work/initrd.gz"

# The golden disk: an unpartitioned FAT filesystem whose boot sector is
# syslinux's, with the kernel, the initramfs and syslinux.cfg inside. mtools
# writes it without mounting anything.
size_mb=$(( ($(stat -c %s "$kernel") + $(stat -c %s "$work/initrd.gz")) / 1048576 + 8 ))
truncate -s "${size_mb}M" "$work/disk.raw"
mkfs.fat -n VDSVC "$work/disk.raw" >/dev/null
mcopy -i "$work/disk.raw" "$kernel" ::vmlinuz
mcopy -i "$work/disk.raw" "$work/initrd.gz" ::initrd.gz
mcopy -i "$work/disk.raw" examples/vm/syslinux.cfg ::syslinux.cfg
syslinux --install "$work/disk.raw"
qemu-img convert -q -f raw -O qcow2 "$work/disk.raw" "$work/svc.qcow2"

# readable by QEMU, which libvirt runs as its own user
chmod 0644 "$work/initrd.gz" "$work/svc.qcow2"
mv -f "$work/initrd.gz" "$out/svc-initrd.gz"
mv -f "$work/svc.qcow2" "$out/svc.qcow2"
printf '%s\n' "$want" >"$stamp.tmp" && mv -f "$stamp.tmp" "$stamp"
say "ready: $image, $out/svc-initrd.gz, $out/svc.qcow2 (kernel $out/vmlinuz -> $kernel)"
