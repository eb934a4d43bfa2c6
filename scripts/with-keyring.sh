#!/usr/bin/env bash
# with-keyring.sh CMD [ARG…]: runs CMD inside a private D-Bus session with an
# unlocked gnome-keyring Secret Service, so keyring tests use the real thing.
# Fresh temp dirs each run; nothing of the user's keyring is touched.
#
# If dbus-run-session or gnome-keyring-daemon is missing, CMD runs without
# one and the keyring tests skip with the reason (DOCKER_TLS_TEST_REQUIRE_KEYRING=1,
# which CI sets, turns that skip into a failure).
set -euo pipefail

if [ "${DOCKER_TLS_IN_KEYRING_SESSION:-}" = 1 ]; then
  exec "$@"
fi
if ! command -v dbus-run-session >/dev/null || ! command -v gnome-keyring-daemon >/dev/null; then
  echo "with-keyring: dbus-run-session or gnome-keyring-daemon missing (apt-get install dbus gnome-keyring): running without a Secret Service" >&2
  exec "$@"
fi

tmp=$(mktemp -d /tmp/docker-tls-keyring.XXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/run" "$tmp/data/dbus-1/services" "$tmp/home"
chmod 700 "$tmp/run"

# Should the daemon go away mid-run, the bus starts it again on the next
# call (D-Bus activation). The system's service file would start it with
# the login collection locked, and every keyring call after that fails
# ("failed to unlock correct collection login"). This session's own file,
# found first because it sits under XDG_DATA_HOME, starts it unlocked with
# the same test password, so the tests carry on with the same keyring.
cat > "$tmp/keyring-daemon" <<'EOF'
#!/bin/sh
printf "%s" "docker-tls-test" | exec gnome-keyring-daemon --foreground --components=secrets --unlock
EOF
chmod 700 "$tmp/keyring-daemon"
printf '[D-BUS Service]\nName=org.freedesktop.secrets\nExec=%s\n' "$tmp/keyring-daemon" \
  > "$tmp/data/dbus-1/services/org.freedesktop.secrets.service"

# Inside the session: start and unlock the keyring, wait until its D-Bus
# name is owned (without this wait most runs fail), then run the command.
inner='
set -euo pipefail
printf "%s" "docker-tls-test" | gnome-keyring-daemon --unlock --components=secrets >/dev/null
ok=
for _ in $(seq 1 100); do
  if dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
      org.freedesktop.DBus.NameHasOwner string:org.freedesktop.secrets 2>/dev/null | grep -q "boolean true"; then
    ok=1; break
  fi
  sleep 0.1
done
if [ -z "$ok" ]; then echo "with-keyring: the Secret Service did not come up in 10s" >&2; exit 1; fi
export DOCKER_TLS_IN_KEYRING_SESSION=1
status=0
"$@" || status=$?
exit $status
'
XDG_RUNTIME_DIR="$tmp/run" XDG_DATA_HOME="$tmp/data" \
  dbus-run-session -- bash -c "$inner" with-keyring "$@"
