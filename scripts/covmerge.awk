# Reads text coverage profiles (go tool covdata textfmt): unit first, then
# e2e. A block counts as covered when any profile ran it; statements are
# counted once per block. Prints per-package unit and unit+e2e coverage.
FNR == 1 { file++ }
/^mode:/ { next }
{
  split($1, loc, ":"); path = loc[1]; pkg = path; sub("/[^/]*$", "", pkg)
  sub("github.com/docker-tls/docker-tls/?", "./", pkg)
  key = $1; stmts[key] = $2; pkgOf[key] = pkg
  if ($3 > 0) { if (file == 1) unitHit[key] = 1; anyHit[key] = 1 }
  if (file == 1) inUnit[pkg] = 1
}
END {
  for (k in stmts) {
    p = pkgOf[k]; total[p] += stmts[k]
    if (k in unitHit) u[p] += stmts[k]
    if (k in anyHit) a[p] += stmts[k]
  }
  for (p in total) {
    if (total[p] == 0) continue
    ut = (p in inUnit) ? sprintf("%.1f%%", 100 * u[p] / total[p]) : "-"
    printf "%-32s %10s %9.1f%%\n", p, ut, 100 * a[p] / total[p]
  }
}
