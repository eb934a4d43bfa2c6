#!/usr/bin/env bash
# Installs what the full test suite and the demo use: a real dockerd
# (docker.io), openssl and curl for interop, busybox-static for a container
# image, a Secret Service (gnome-keyring under dbus) for keyring tests,
# cfssl for remote-CA interop, systemd, whose systemd-analyze checks the
# unit that agent install writes, and what the engine tests' hosts are made
# of: debootstrap, systemd-nspawn (systemd-container; installing it may
# upgrade the machine's systemd), iproute2 and OpenSSH, and PostgreSQL, which
# the CA service's tests start in a temp dir (internal/testpg), and sqlite3,
# with which make bench creates cfssl's certificate database, and socat, the
# hand-made relay make bench times agent mode against.
# Idempotent. Without root it lists what is missing and carries on, so the
# unit tests still run and the rest skip with a reason.
set -euo pipefail
pkgs=(docker.io openssl curl busybox-static dbus gnome-keyring libsecret-tools ca-certificates systemd
  debootstrap systemd-container iproute2 openssh-client util-linux postgresql sqlite3 socat)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "deps: not installed: ${missing[*]}" >&2
    echo "deps: tests that need them will be skipped; to run them: sudo apt-get install ${missing[*]}" >&2
  else
    echo "deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi
go mod download

# cfssl, a real third-party CA server for the remote-CA interop tests; it
# builds from the Go module proxy in a minute or two.
gobin=$(go env GOPATH)/bin
if ! command -v cfssl >/dev/null && [ ! -x "$gobin/cfssl" ]; then
  echo "deps: building cfssl v1.6.5 (go install)"
  go install github.com/cloudflare/cfssl/cmd/cfssl@v1.6.5 || echo "deps: cfssl did not build; its tests will be skipped" >&2
fi

# staticcheck, which `make test` runs before the tests: the code stays clean.
if [ ! -x "$gobin/staticcheck" ]; then
  echo "deps: building staticcheck v0.8.2 (go install)"
  go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
fi
