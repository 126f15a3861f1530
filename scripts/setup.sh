#!/usr/bin/env bash
# make setup: install and start everything vdctl builds, tests and runs on.
#
# Idempotent and cheap on a ready machine: packages are installed only when
# missing, daemons are started only when they do not answer. There is no
# systemd on the machines vdctl is developed on, so dockerd, libvirtd and
# virtlogd are started here by hand, with their logs in /var/log.
set -euo pipefail

packages=(
	# build and unit tests
	gcc make pkg-config libvirt-dev libcurl4-openssl-dev libyaml-dev
	libjansson-dev libcmocka-dev libhttp-parser-dev
	# fuzzing (clang's libFuzzer)
	clang libclang-rt-14-dev
	# engines
	docker.io libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils
	# guest images: a kernel, a static shell, initramfs and boot disk tools
	linux-image-cloud-amd64 busybox-static cpio syslinux syslinux-common
	mtools dosfstools
	# peers the benches measure against, and curl for readiness checks
	haproxy wrk nginx-light docker-compose curl bc
)

say() { printf 'setup: %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
	exec sudo -E "$0" "$@"
fi

missing=()
while read -r status pkg; do
	[ "$status" = "ii" ] || missing+=("$pkg")
done < <(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' "${packages[@]}" 2>/dev/null |
	awk '{print $1, $2}')
# dpkg-query says nothing at all of packages it has never heard of
for pkg in "${packages[@]}"; do
	dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null | grep -q '^ii' ||
		[[ " ${missing[*]} " == *" $pkg "* ]] || missing+=("$pkg")
done

if [ "${#missing[@]}" -gt 0 ]; then
	say "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/var/log/vdctl-setup-apt.log 2>&1 || {
		tail -n 30 /var/log/vdctl-setup-apt.log >&2
		say "apt-get install failed; the whole log is /var/log/vdctl-setup-apt.log" >&2
		exit 1
	}
fi

# wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND until it succeeds
wait_for() {
	local limit=$1 what=$2
	shift 2
	local i
	for ((i = 0; i < limit * 10; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	say "$what did not answer within ${limit}s" >&2
	return 1
}

docker_ok() { curl -fsS --max-time 2 --unix-socket /var/run/docker.sock http://localhost/_ping; }
if ! docker_ok >/dev/null 2>&1; then
	say "starting dockerd (log: /var/log/dockerd.log)"
	nohup dockerd >/var/log/dockerd.log 2>&1 </dev/null &
	wait_for 60 dockerd docker_ok || { tail -n 20 /var/log/dockerd.log >&2; exit 1; }
fi

if ! pgrep -x virtlogd >/dev/null; then
	say "starting virtlogd"
	virtlogd -d
fi
libvirt_ok() { timeout 5 virsh -c qemu:///system version; }
if ! libvirt_ok >/dev/null 2>&1; then
	say "starting libvirtd (log: /var/log/libvirt/libvirtd.log)"
	mkdir -p /var/log/libvirt
	libvirtd -d
	wait_for 30 libvirtd libvirt_ok
fi

say "ready: dockerd $(curl -fsS --max-time 2 --unix-socket /var/run/docker.sock \
	http://localhost/version | sed -n 's/.*"Version":"\([^"]*\)".*/\1/p' | head -n1), \
libvirt $(virsh -c qemu:///system version 2>/dev/null | sed -n 's/.*libvirt \([0-9.]*\)$/\1/p' | head -n1)"
