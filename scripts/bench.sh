#!/usr/bin/env bash
# Prints the figures the closing notes quote: Go benchmarks of the crypto per
# key type, then the whole-process time of `docker tls client issue` beside
# `docker context ls` (the CLI's own start-up cost, for scale).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== Go benchmarks (pki) =="
go test -run '^$' -bench . -benchmem -benchtime "${BENCHTIME:-10x}" ./pki | grep -E '^(Benchmark|ok|goos|cpu)'

echo
echo "== whole process =="
make -s build
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export DOCKER_CONFIG="$tmp/config" HOME="$tmp"
mkdir -p "$DOCKER_CONFIG/cli-plugins"
cp bin/docker-tls "$DOCKER_CONFIG/cli-plugins/docker-tls"
# The file key store: a benchmark must not depend on (or fill) a keyring.
echo '{"plugins": {"tls": {"keystore": "file"}}}' >"$DOCKER_CONFIG/config.json"
if ! command -v docker >/dev/null; then
  echo "docker CLI not installed (apt-get install docker.io): skipping process timings"
  exit 0
fi
docker tls ca init >/dev/null
RUNS=${RUNS:-20}

# mean_ms CMD…: mean wall time of RUNS runs, in milliseconds.
mean_ms() {
  local runs=${runs:-$RUNS}
  local start end i
  start=$(date +%s%N)
  for i in $(seq 1 "$runs"); do "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; return 1; }; done
  end=$(date +%s%N)
  echo $(( (end - start) / runs / 1000000 ))
}
n=0
issue() { n=$((n + 1)); docker tls client issue "bench$n" --out "$tmp/c$n"; }
printf '%-45s %6s ms (mean of %d)\n' "docker context ls" "$(mean_ms docker context ls)" "$RUNS"
printf '%-45s %6s ms (mean of %d)\n' "docker tls ca ls" "$(mean_ms docker tls ca ls)" "$RUNS"
printf '%-45s %6s ms (mean of %d)\n' "docker tls client issue (ECDSA P-256)" "$(mean_ms issue)" "$RUNS"
printf '%-45s %6s ms (mean of %d)\n' "docker-tls client issue (standalone)" "$(mean_ms bash -c 'd=$(mktemp -d -p '"$tmp"'); "$DOCKER_CONFIG/cli-plugins/docker-tls" client issue x --out "$d"')" "$RUNS"

echo
echo "== listing 1000 contexts (whole process) =="
go run ./scripts/populate-contexts -n "${CONTEXTS:-1000}"
runs_ls=${RUNS_LS:-10}
ctx_ms=$(runs=$runs_ls mean_ms docker context ls)
tls_ms=$(runs=$runs_ls mean_ms docker tls ls)
printf '%-45s %6s ms (mean of %d)\n' "docker context ls" "$ctx_ms" "$runs_ls"
printf '%-45s %6s ms (mean of %d)\n' "docker tls ls" "$tls_ms" "$runs_ls"
printf '%-45s %6s (target: at most 2.0)\n' "ratio" "$(awk -v a="$tls_ms" -v b="$ctx_ms" 'BEGIN { printf "%.2f", a / b }')"
