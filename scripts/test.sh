#!/usr/bin/env bash
# Runs every Go test once, verbosely into a log, and prints a summary: the
# packages, each skipped test with its reason, and a closing count line.
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
cov=$(mktemp -d)
trap 'rm -rf "$log" "$cov"' EXIT
mkdir -p "$cov/unit" "$cov/e2e"

# staticcheck first: a finding fails the run like a failing test.
staticcheck=$(go env GOPATH)/bin/staticcheck
echo "=== staticcheck ==="
if ! "$staticcheck" ./...; then
  echo "staticcheck found the problems above"
  exit 1
fi
echo "clean"
echo "=== gofmt ==="
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change: $unformatted"
  exit 1
fi
echo "clean"

# Coverage of unit and e2e tests together: unit test binaries write to
# $cov/unit; the e2e suite builds the plugin with -cover, and every run of
# it (through the real docker CLI) writes to $cov/e2e.
# First, alone: the test that owns a machine-wide setting (an engine host
# on a machine whose net.ipv4.ip_forward is 0, as on one that never ran
# dockerd). It saves and restores the setting; nothing else may run
# beside it.
alone='^TestHostOnMachineWithoutForwarding$'
echo "=== alone: $alone ==="
DOCKER_TLS_TEST_MACHINE_WIDE=1 go test -count=1 -v -timeout 10m -cover -run "$alone" ./internal/enginehost -args -test.gocoverdir="$cov/unit" >"$log" 2>&1
rc=$?
grep -E '^\s*--- (PASS|FAIL|SKIP)' "$log" || tail -20 "$log"

DOCKER_TLS_E2E_COVERDIR="$cov/e2e" go test -count=1 -v -timeout 30m -cover -skip "$alone" ./... -args -test.gocoverdir="$cov/unit" >>"$log" 2>&1
rc2=$?
[ $rc -ne 0 ] || rc=$rc2

# Failures in full, so CI output shows them: the output of each failing
# package (go test prints a package's output in one piece, ending with its
# ok/FAIL line), without the lines of passing tests, at most 300 lines each.
if [ $rc -ne 0 ]; then
  echo "=== failing output ==="
  grep -v -E '^(=== (RUN|PAUSE|CONT|NAME)|\s*--- PASS|PASS$)' "$log" |
    awk '{ buf[n++] = $0 }
         /^(ok|FAIL|\?)[ \t]+[^ \t]+/ {
           if ($1 == "FAIL") { start = (n > 300) ? n - 300 : 0; for (i = start; i < n; i++) print buf[i] }
           n = 0
         }
         END { if (n > 0) { start = (n > 300) ? n - 300 : 0; for (i = start; i < n; i++) print buf[i] } }'
fi

echo "=== packages ==="
grep -E '^(ok|FAIL|---|\?)\s' "$log" | grep -v -- '--- ' || true
echo "=== coverage per package: unit tests, and unit + e2e ==="
printf "%-32s %10s %10s\n" package unit unit+e2e
# Blocks are merged by source position, since a package's unit-test build
# and the e2e build differ (test files) and covdata would not merge them.
go tool covdata textfmt -i="$cov/unit" -o "$cov/unit.txt"
go tool covdata textfmt -i="$cov/e2e" -o "$cov/e2e.txt" 2>/dev/null || echo "mode: set" >"$cov/e2e.txt"
awk -f scripts/covmerge.awk "$cov/unit.txt" "$cov/e2e.txt" | sort
echo "=== skipped, and why ==="
grep -A2 -E '^\s*--- SKIP' "$log" | grep -v -E '^--$' || echo "(none)"

passed=$(grep -c -E '^\s*--- PASS' "$log")
failed=$(grep -c -E '^\s*--- FAIL' "$log")
skipped=$(grep -c -E '^\s*--- SKIP' "$log")
echo
echo "tests: $passed passed, $failed failed, $skipped skipped"
exit $rc
