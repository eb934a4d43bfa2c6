#!/usr/bin/env bash
# The whole docker-tls story on this machine, against a real dockerd on a
# free loopback port, in a throw-away DOCKER_CONFIG: nothing of yours is
# touched. Usage: scripts/demo.sh [path/to/docker-tls]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-bin/docker-tls}
[ -x "$bin" ] || { echo "demo: $bin not built (run: make build)" >&2; exit 1; }

bold=; dim=; reset=
if [ -t 1 ]; then bold=$'\e[1m'; dim=$'\e[2m'; reset=$'\e[0m'; fi
step() { printf '\n%s==> %s%s\n' "$bold" "$*" "$reset"; }
show() { printf '%s$ %s%s\n' "$dim" "$*" "$reset"; "$@"; }

missing=()
for p in docker dockerd curl; do command -v "$p" >/dev/null || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "demo: needs ${missing[*]}: install them with: sudo apt-get install docker.io curl" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "demo: starting a real dockerd needs root: run sudo make demo" >&2
  exit 1
fi

work=$(mktemp -d /tmp/docker-tls-demo.XXXX)
dockerd_pid=
host_pid=
serve_pid=
agent_started=
cleanup() {
  [ -z "$agent_started" ] || docker tls agent stop >/dev/null 2>&1 || true
  if [ -n "$serve_pid" ]; then kill -TERM "$serve_pid" 2>/dev/null || true; wait "$serve_pid" 2>/dev/null || true; fi
  if [ -n "$host_pid" ] && kill -0 "$host_pid" 2>/dev/null; then
    kill -TERM "$host_pid"
    for _ in $(seq 1 150); do kill -0 "$host_pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$host_pid" 2>/dev/null && kill -KILL "$host_pid"
  fi
  if [ -n "$dockerd_pid" ] && kill -0 "$dockerd_pid" 2>/dev/null; then
    kill -TERM "$dockerd_pid"
    for _ in $(seq 1 100); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$dockerd_pid" 2>/dev/null && kill -KILL "$dockerd_pid"
  fi
  rm -rf "$work"
}
trap cleanup EXIT

export DOCKER_CONFIG="$work/docker-config"
unset DOCKER_HOST DOCKER_CONTEXT DOCKER_CERT_PATH DOCKER_TLS_VERIFY
./scripts/install.sh "$bin" "$DOCKER_CONFIG" >/dev/null
if [ -z "${DBUS_SESSION_BUS_ADDRESS:-}" ]; then
  # No Secret Service here (make demo runs under scripts/with-keyring.sh,
  # which provides one when dbus and gnome-keyring are installed).
  echo '{"plugins": {"tls": {"keystore": "file"}}}' >"$DOCKER_CONFIG/config.json"
  echo "(no OS keyring in this session: keys go to the file key store)"
fi

# A free port on 127.0.0.1: the first one nothing answers on.
port=
for p in $(seq 23760 23860); do
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[ -n "$port" ] || { echo "demo: no free port in 23760-23860" >&2; exit 1; }

step "A CA on this machine (ECDSA P-256, 10 years)"
show docker tls ca init
show docker tls ca ls

# An engine host to set up over SSH: a real Debian with systemd, sshd and
# docker.io as installed, in a network namespace of its own
# (internal/enginehost; the first run debootstraps it, about a minute).
if command -v systemd-nspawn >/dev/null && command -v debootstrap >/dev/null; then
  step "A Debian host with docker.io, reached over SSH (booting it here under systemd-nspawn)"
  go build -o "$work/engine-host" ./scripts/engine-host
  mkfifo "$work/host.out"
  "$work/engine-host" "$work/host" >"$work/host.out" 2>"$work/host.err" &
  host_pid=$!
  read -r ready host_addr ssh_config <"$work/host.out" || true
  if [ "${ready:-}" != ready ]; then
    echo "demo: the engine host did not boot:" >&2; cat "$work/host.err" >&2; exit 1
  fi
  echo "host $host_addr: Debian's docker.service, dockerd on its unix socket only"

  step "One command: the host's dockerd serves mutual TLS, and a context for it exists"
  show docker tls engine setup "root@$host_addr" --ssh-config "$ssh_config" --name build-1
  show docker --context build-1 version --format 'over mutual TLS: engine {{.Server.Version}} on {{.Server.Os}}'
  show docker tls engine ls --check
  step "Run it again: everything is in place, nothing restarts"
  show docker tls engine setup "root@$host_addr" --ssh-config "$ssh_config" --name build-1
  step "A new server certificate, the same restart safety"
  show docker tls engine renew build-1
  step "Teardown: the host's files back byte for byte, the port closed, the context removed"
  show docker tls engine teardown build-1
else
  step "Engines over SSH: skipped (scripts/deps.sh installs systemd-nspawn and debootstrap)"
fi

step "By hand, for an engine docker tls cannot reach over SSH: a server certificate for localhost and 127.0.0.1"
show docker tls server issue localhost 127.0.0.1 --out "$work/server"
show ls -l "$work/server"

step "A real dockerd with --tlsverify on 127.0.0.1:$port"
d="$work/dockerd"
mkdir -p "$d"
printf '%s$ dockerd -H tcp://127.0.0.1:%s --tlsverify --tlscacert=… --tlscert=… --tlskey=… (own data-root, no bridge, no iptables)%s\n' "$dim" "$port" "$reset"
dockerd -H "tcp://127.0.0.1:$port" -H "unix://$d/docker.sock" --tlsverify \
  --tlscacert="$work/server/ca.pem" --tlscert="$work/server/server-cert.pem" --tlskey="$work/server/server-key.pem" \
  --data-root "$d/root" --exec-root "$d/exec" --pidfile "$d/docker.pid" \
  --bridge=none --iptables=false --ip6tables=false --ip-masq=false --ip-forward=false --storage-driver=vfs >"$d/log" 2>&1 &
dockerd_pid=$!
for _ in $(seq 1 300); do
  grep -q "API listen on 127.0.0.1:$port" "$d/log" && break
  kill -0 "$dockerd_pid" 2>/dev/null || { echo "demo: dockerd exited:" >&2; tail -20 "$d/log" >&2; exit 1; }
  sleep 0.2
done
grep -q "API listen on 127.0.0.1:$port" "$d/log" || { echo "demo: dockerd did not start in 60s" >&2; tail -20 "$d/log" >&2; exit 1; }
echo "dockerd is listening (pid $dockerd_pid)"

step "A client certificate for you"
show docker tls client issue demo-user --out "$work/client"

step "The docker CLI over mutual TLS"
show docker --tlsverify --tlscacert="$work/client/ca.pem" --tlscert="$work/client/cert.pem" --tlskey="$work/client/key.pem" \
  -H "tcp://127.0.0.1:$port" version --format 'client {{.Client.Version}} -> engine {{.Server.Version}} (API {{.Server.APIVersion}})'

step "curl with the same files"
show curl -sS --cacert "$work/client/ca.pem" --cert "$work/client/cert.pem" --key "$work/client/key.pem" "https://127.0.0.1:$port/_ping"
echo

step "Without a client certificate the engine refuses"
if curl -sS --max-time 10 --cacert "$work/client/ca.pem" "https://127.0.0.1:$port/_ping" 2>&1; then
  echo "demo: the engine answered without a client certificate!" >&2; exit 1
fi
echo "(refused, as it should be)"

step "A Docker context: key in the key store, docker context use switches to it"
show docker tls context create demo --host "tcp://127.0.0.1:$port" --issue --description "docker-tls demo engine"
show docker tls ls
show docker context use demo
show docker version --format 'via the context: engine {{.Server.Version}}'
show docker context use default

step "docker tls verify: every check, live"
show docker tls verify demo

step "Agent mode: the context's key only in the agent's memory, no key file at all"
show docker tls lock --agent demo
show docker context inspect demo --format 'docker endpoint: {{.Endpoints.docker.Host}}, TLS files: {{len .TLSMaterial}}'
show docker tls agent
agent_started=1
show docker --context demo version --format 'through the agent: engine {{.Server.Version}}'
show docker tls agent status
show docker tls agent stop
agent_started=

step "A CA service: the CA key stays on its host; a laptop enrolls with a one-time token"
caport=
for p in $(seq 23870 23970); do
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then caport=$p; break; fi
done
printf '%s$ docker tls ca serve --listen 127.0.0.1:%s --san 127.0.0.1 &%s\n' "$dim" "$caport" "$reset"
docker tls ca serve --listen "127.0.0.1:$caport" --san 127.0.0.1 2>"$work/serve.log" &
serve_pid=$!
for _ in $(seq 1 100); do grep -q "Serving CA" "$work/serve.log" && break; sleep 0.1; done
printf '%s$ docker tls ca token --cn demo-laptop > token   (a secret: it goes to a 0600 file, not the screen)%s\n' "$dim" "$reset"
(umask 077; docker tls ca token --cn demo-laptop >"$work/token")
show docker tls enroll team --ca-url "https://127.0.0.1:$caport" --token "file:$work/token" --lifetime 1h --host "tcp://127.0.0.1:$port"
show docker --context team version --format 'enrolled: engine {{.Server.Version}}'
show docker tls ca issued ls
show docker tls renew team || true
show docker tls ca revoke demo-laptop --reason "demo: laptop lost"
show docker tls ca issued ls --format '{{.CN}}: {{.State}} ({{.Reason}})'
echo "(the service's log, one line per event, never a secret:)"
sed -n 's/^[0-9/]* [0-9:]* /  /p' "$work/serve.log"

step "What a mistake looks like: a context made from the wrong CA"
show docker tls ca init other
show docker tls context create wrongca --host "tcp://127.0.0.1:$port" --ca other --issue
show docker tls verify wrongca --timeout 5s || true

step "Done: dockerd, ca serve and the engine host stopped, $work removed"
