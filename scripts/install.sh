#!/usr/bin/env bash
# install.sh BINARY [DOCKER_CONFIG]: installs docker-tls as a Docker CLI
# plugin, so that `docker tls …` works, with its database helper
# (docker-tls.d/docker-tls-db beside BINARY, internal/dbhelper). Atomic: each
# new binary is copied next to the old one and renamed over it, the helper
# first, so that a new plugin never runs beside an old or missing helper.
set -euo pipefail
bin=${1:?usage: install.sh BINARY [DOCKER_CONFIG]}
config=${2:-${DOCKER_CONFIG:-$HOME/.docker}}
helper="$(dirname "$bin")/docker-tls.d/docker-tls-db"
[ -f "$helper" ] || { echo "install.sh: $helper is missing: build both with make build" >&2; exit 1; }
dest="$config/cli-plugins"
mkdir -p "$dest/docker-tls.d"
put() { # put SOURCE TARGET
  local tmp
  tmp=$(mktemp "$(dirname "$2")/.docker-tls.XXXXXX")
  cp "$1" "$tmp"
  chmod 0755 "$tmp"
  mv -f "$tmp" "$2"
}
put "$helper" "$dest/docker-tls.d/docker-tls-db"
put "$bin" "$dest/docker-tls"
echo "installed $dest/docker-tls and $dest/docker-tls.d/docker-tls-db"
if command -v docker >/dev/null; then
  docker --config "$config" tls --help >/dev/null 2>&1 && echo "docker tls is ready: docker tls --help" \
    || echo "warning: the docker CLI does not list the plugin yet (is $config the config it reads?)" >&2
fi
