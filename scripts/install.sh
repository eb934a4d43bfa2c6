#!/usr/bin/env bash
# install.sh BINARY [DOCKER_CONFIG]: installs docker-tls as a Docker CLI
# plugin, so that `docker tls …` works. Atomic: the new binary is copied
# next to the old one and renamed over it.
set -euo pipefail
bin=${1:?usage: install.sh BINARY [DOCKER_CONFIG]}
config=${2:-${DOCKER_CONFIG:-$HOME/.docker}}
dest="$config/cli-plugins"
mkdir -p "$dest"
tmp=$(mktemp "$dest/.docker-tls.XXXXXX")
cp "$bin" "$tmp"
chmod 0755 "$tmp"
mv -f "$tmp" "$dest/docker-tls"
echo "installed $dest/docker-tls"
if command -v docker >/dev/null; then
  docker --config "$config" tls --help >/dev/null 2>&1 && echo "docker tls is ready: docker tls --help" \
    || echo "warning: the docker CLI does not list the plugin yet (is $config the config it reads?)" >&2
fi
