#!/usr/bin/env bash
# The CA service side by side with cfssl, in one run on this machine:
# docker tls ca serve (one-time tokens, its SQLite state) against cfssl
# v1.6.5 serve over HTTPS with its sqlite certificate database (the durable
# set-up like for like), both driven by scripts/caload: enrollments per
# second at 20 and 200 concurrent clients, each a fresh P-256 key and CSR;
# then docker-tls's rate with 100,000 tokens and inventory rows stored,
# beside its rate with 2,000. Needs the docker CLI, cfssl (scripts/deps.sh
# builds it), openssl and sqlite3. Everything lives in a temp dir and is
# stopped by pid.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${CA_N:-2000}
BIG=${CA_BIG:-100000}

cfssl=$(command -v cfssl || echo "$(go env GOPATH)/bin/cfssl")
for p in docker openssl sqlite3 "$cfssl"; do
  if ! command -v "$p" >/dev/null; then
    echo "skipped: $p is not installed (scripts/deps.sh)"
    exit 0
  fi
done

make -s build
go build -o bin/caload ./scripts/caload
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
export GOPATH="$(go env GOPATH)" GOMODCACHE="$(go env GOMODCACHE)" GOCACHE="$(go env GOCACHE)"
export DOCKER_CONFIG="$tmp/config" HOME="$tmp"
./scripts/install.sh bin/docker-tls "$DOCKER_CONFIG" >/dev/null
echo '{"plugins": {"tls": {"keystore": "file"}}}' >"$DOCKER_CONFIG/config.json"

# A loopback port nothing listens on (bounded tries).
free_port() {
  local p
  for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 40000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
  done
  return 1
}
wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "nothing listens on $1" >&2; return 1; }

# --- cfssl: a P-256 CA, an HTTPS certificate, an auth key, a sqlite DB ---
c="$tmp/cfssl"
mkdir -p "$c"
openssl ecparam -name prime256v1 -genkey -noout -out "$c/ca-key.pem" 2>/dev/null
openssl req -x509 -new -key "$c/ca-key.pem" -subj "/CN=cfssl bench CA" -days 30 -sha256 \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign -out "$c/ca.pem" 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out "$c/tls-key.pem" 2>/dev/null
openssl req -new -key "$c/tls-key.pem" -subj "/CN=127.0.0.1" -out "$c/tls.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$c/ext"
openssl x509 -req -in "$c/tls.csr" -CA "$c/ca.pem" -CAkey "$c/ca-key.pem" -CAcreateserial -days 30 -sha256 -extfile "$c/ext" -out "$c/tls.pem" 2>/dev/null
key=$(openssl rand -hex 16)
(umask 077; echo "$key" >"$c/auth.key") # caload reads it from there, never from argv
cat >"$c/config.json" <<EOF
{"signing": {"default": {"expiry": "168h"},
  "profiles": {"client": {"expiry": "2160h", "usages": ["digital signature", "client auth"], "auth_key": "k"}}},
 "auth_keys": {"k": {"type": "standard", "key": "$key"}}}
EOF
# cfssl's own schema, from its v1.6.5 sources (the "Up" sections).
mig="$(go env GOMODCACHE)/github.com/cloudflare/cfssl@v1.6.5/certdb/sqlite/migrations"
[ -d "$mig" ] || go mod download github.com/cloudflare/cfssl@v1.6.5 >/dev/null 2>&1 || true
[ -d "$mig" ] || mig="$(cd "$tmp" && GOFLAGS=-mod=mod go mod download -json github.com/cloudflare/cfssl@v1.6.5 | sed -n 's/.*"Dir": "\(.*\)",/\1/p')/certdb/sqlite/migrations"
for f in "$mig"/*.sql; do awk '/\+goose Up/{on=1; next} /\+goose Down/{on=0} on' "$f"; done | sqlite3 "$c/certs.db"
echo "{\"driver\": \"sqlite3\", \"data_source\": \"$c/certs.db\"}" >"$c/db.json"
cport=$(free_port)
"$cfssl" serve -address 127.0.0.1 -port "$cport" -ca "$c/ca.pem" -ca-key "$c/ca-key.pem" -config "$c/config.json" \
  -db-config "$c/db.json" -tls-cert "$c/tls.pem" -tls-key "$c/tls-key.pem" -loglevel 5 >"$tmp/cfssl.log" 2>&1 &
pids+=($!)
wait_port "$cport"

# --- docker-tls: a CA and ca serve on its own SQLite ---
docker tls ca init bench >/dev/null
cp "$DOCKER_CONFIG/tls/ca/bench/ca.pem" "$tmp/dtls-ca.pem"
dport=$(free_port)
start_serve() {
  docker tls ca serve --ca bench --listen "127.0.0.1:$dport" --san 127.0.0.1 >>"$tmp/serve.log" 2>&1 &
  pids+=($!)
  serve_pid=$!
  wait_port "$dport"
}
stop_serve() { kill "$serve_pid"; wait "$serve_pid" 2>/dev/null || true; }
start_serve

mint() { docker tls ca token --ca bench --count "$1" --ttl 1h --format json 2>/dev/null >"$tmp/tokens.json"; }
field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p"; }
line() { printf '%-58s %8s/s  p50 %6s ms  p99 %6s ms  errors %s\n' "$1" "$(echo "$2" | field rate)" "$(echo "$2" | field p50_ms)" "$(echo "$2" | field p99_ms)" "$(echo "$2" | field errors)"; }

declare -A dtls cf
for clients in 20 200; do
  mint "$N"
  dtls[$clients]=$(bin/caload -url "https://127.0.0.1:$dport" -ca "$tmp/dtls-ca.pem" -tokens "$tmp/tokens.json" -clients "$clients" -n "$N")
  cf[$clients]=$(bin/caload -url "https://127.0.0.1:$cport" -ca "$c/ca.pem" -auth-key-file "$c/auth.key" -clients "$clients" -n "$N")
  line "docker tls ca serve, tokens, SQLite ($clients clients)" "${dtls[$clients]}"
  line "cfssl v1.6.5 serve, auth key, sqlite certdb ($clients clients)" "${cf[$clients]}"
  printf '%-58s %8s  (goal: at least 1.0, zero errors)\n' "docker-tls / cfssl" \
    "$(awk -v a="$(echo "${dtls[$clients]}" | field rate)" -v b="$(echo "${cf[$clients]}" | field rate)" 'BEGIN { printf "%.2f", a / b }')"
done
rows=$(sqlite3 "$c/certs.db" 'select count(*) from certificates')
echo "(cfssl recorded $rows certificates in its database)"

# --- the same with BIG tokens and inventory rows already stored ---
stop_serve
bin/caload -populate "$DOCKER_CONFIG/tls/services/bench/service.db" -n "$BIG" >/dev/null
start_serve
mint "$N"
big=$(bin/caload -url "https://127.0.0.1:$dport" -ca "$tmp/dtls-ca.pem" -tokens "$tmp/tokens.json" -clients 20 -n "$N")
line "docker tls ca serve with $BIG more tokens and rows (20 clients)" "$big"
printf '%-58s %8s  (goal: at least 0.8)\n' "rate with $BIG stored / rate with $N" \
  "$(awk -v a="$(echo "$big" | field rate)" -v b="$(echo "${dtls[20]}" | field rate)" 'BEGIN { printf "%.2f", a / b }')"
