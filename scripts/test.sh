#!/usr/bin/env bash
# Runs every Go test once, verbosely into a log, and prints a summary: the
# packages, each skipped test with its reason, and a closing count line.
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# staticcheck first: a finding fails the run like a failing test.
staticcheck=$(go env GOPATH)/bin/staticcheck
echo "=== staticcheck ==="
if ! "$staticcheck" ./...; then
  echo "staticcheck found the problems above"
  exit 1
fi
echo "clean"

go test -count=1 -v -timeout 30m ./... >"$log" 2>&1
rc=$?

# Failures in full, so CI output shows them.
if [ $rc -ne 0 ]; then
  echo "=== failing output ==="
  grep -v -E '^(=== (RUN|PAUSE|CONT|NAME)|--- PASS|PASS$)' "$log" | tail -n 300
fi

echo "=== packages ==="
grep -E '^(ok|FAIL|---|\?)\s' "$log" | grep -v -- '--- ' || true
echo "=== skipped, and why ==="
grep -A2 -E '^\s*--- SKIP' "$log" | grep -v -E '^--$' || echo "(none)"

passed=$(grep -c -E '^\s*--- PASS' "$log")
failed=$(grep -c -E '^\s*--- FAIL' "$log")
skipped=$(grep -c -E '^\s*--- SKIP' "$log")
echo
echo "tests: $passed passed, $failed failed, $skipped skipped"
exit $rc
