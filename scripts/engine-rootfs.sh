#!/usr/bin/env bash
# Builds the root file system of the e2e test's engine hosts: Debian bookworm
# booted by systemd under systemd-nspawn, with Debian's openssh-server and
# docker.io as ordinary services (e2e/engines_test.go). Prints its path.
#
# The result is read-only and shared by every host (each boots it with
# --volatile=overlay), so one build serves a whole test run; it is kept in
# DIR (default /var/cache/docker-tls/e2e) and rebuilt only when this script
# changes. Needs root and debootstrap. See ../shared/recipes/engine-hosts.md
# for why each step below is there.
set -euo pipefail
cache=${1:-/var/cache/docker-tls/e2e}
version=$(sha256sum "$0" | cut -c1-12)
root=$cache/rootfs-$version
if [ -f "$root/.complete" ]; then
  echo "$root"
  exit 0
fi
mkdir -p "$cache/debs"
# A half-built tree from a killed run is started afresh.
rm -rf "$root" "$root.tmp"
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}
debootstrap --variant=minbase --cache-dir="$cache/debs" \
  --include=systemd,systemd-sysv,dbus,openssh-server,docker.io,sudo,iproute2,procps \
  bookworm "$root.tmp" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
  { tail -20 "$cache/debootstrap.log" >&2; exit 1; }

r=$root.tmp
# Each host gets its own name, host keys and machine id at boot.
: >"$r/etc/machine-id"
rm -f "$r/etc/hostname" "$r/etc/resolv.conf" "$r/etc/ssh/ssh_host_"*
# sshd: host keys and authorized keys come from bind mounts the harness
# makes per host; keys only, no passwords.
cat >"$r/etc/ssh/sshd_config.d/e2e.conf" <<'EOF'
HostKey /etc/ssh/e2e/ssh_host_ed25519_key
AuthorizedKeysFile /etc/ssh/e2e/authorized_keys/%u
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UseDNS no
EOF
# A user with password-less sudo, and one whose sudo asks for a password.
chroot "$r" useradd --create-home --shell /bin/bash deploy
chroot "$r" useradd --create-home --shell /bin/bash asker
# Locked accounts cannot log in over ssh even with a key; '*' is "no password".
chroot "$r" usermod -p '*' deploy
chroot "$r" usermod -p '*' asker
echo 'deploy ALL=(ALL) NOPASSWD: ALL' >"$r/etc/sudoers.d/deploy"
echo 'asker ALL=(ALL) ALL' >"$r/etc/sudoers.d/asker"
chmod 0440 "$r/etc/sudoers.d/deploy" "$r/etc/sudoers.d/asker"
# cgroup v1 controllers are mounted read-only inside nspawn; dockerd and runc
# need them writable.
cat >"$r/etc/systemd/system/cgroup-rw.service" <<'EOF'
[Unit]
Description=Make the cgroup v1 controllers writable for dockerd
DefaultDependencies=no
Before=containerd.service docker.service
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'for d in /sys/fs/cgroup/*/; do mount -o remount,bind,rw "$d" "$d" 2>/dev/null || true; done'
RemainAfterExit=yes
[Install]
WantedBy=multi-user.target
EOF
chroot "$r" systemctl enable cgroup-rw.service >/dev/null 2>&1
for u in getty@tty1.service console-getty.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer; do
  ln -sf /dev/null "$r/etc/systemd/system/$u"
done
# The host's address, on the veth systemd-nspawn makes (eth0 inside): the
# harness writes it to /etc/e2e/address through a bind mount.
cat >"$r/etc/systemd/system/e2e-net.service" <<'EOF'
[Unit]
Description=This test host's address on its veth
DefaultDependencies=no
Before=network.target ssh.service docker.service
Wants=network.target
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'ip link set lo up && ip addr add "$(cat /etc/e2e/address)" dev eth0 && ip link set eth0 up'
RemainAfterExit=yes
[Install]
WantedBy=multi-user.target
EOF
chroot "$r" systemctl enable e2e-net.service >/dev/null 2>&1
# A host forgotten by a killed test halts itself (the harness sets the
# lifetime in /etc/e2e-lifetime through a bind mount).
cat >"$r/etc/systemd/system/e2e-lifetime.service" <<'EOF'
[Unit]
Description=Halt this test host when its lifetime is over
[Service]
Type=simple
ExecStart=/bin/sh -c 'sleep "$(cat /etc/e2e/lifetime 2>/dev/null || echo 1800)"; systemctl poweroff'
[Install]
WantedBy=multi-user.target
EOF
chroot "$r" systemctl enable e2e-lifetime.service >/dev/null 2>&1
mkdir -p "$r/etc/ssh/e2e" "$r/etc/e2e"
chroot "$r" apt-get clean
touch "$r/.complete"
mv "$r" "$root"
# Older builds of this script are dropped.
find "$cache" -maxdepth 1 -name 'rootfs-*' ! -name "rootfs-$version" -exec rm -rf {} +
echo "$root"
