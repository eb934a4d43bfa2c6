#!/usr/bin/env bash
# One full set — a CA, a server certificate, and a context with a client
# certificate — made the way make bench compares (scripts/bench.sh):
#   fullset.sh articles    the articles' workflow as they write it
#                          (../shared/seeds): RSA 4096 keys, the CA key
#                          passphrase-protected (genrsa -aes256), CSRs,
#                          extfiles, signing, then docker context create;
#   fullset.sh openssl     the same steps with EC P-256 keys, as docker-tls
#                          makes them: the like-for-like comparison;
#   fullset.sh docker-tls  docker tls ca init, server issue, context create
#                          --issue.
# Each run works in a new directory under $TMPDIR and a new name.
set -euo pipefail
d=$(mktemp -d -p "${TMPDIR:-/tmp}")
n=fs$RANDOM$RANDOM
case "${1:-}" in
articles | openssl)
  cd "$d"
  export FULLSET_PASS=fullset-bench
  ec=(-algorithm EC -pkeyopt ec_paramgen_curve:P-256)
  [ "$1" = articles ] && ec=(-algorithm RSA -pkeyopt rsa_keygen_bits:4096)
  openssl genpkey "${ec[@]}" -aes256 -pass env:FULLSET_PASS -out ca-key.pem 2>/dev/null
  openssl req -new -x509 -days 365 -key ca-key.pem -passin env:FULLSET_PASS -sha256 -subj "/CN=$n CA" -out ca.pem
  openssl genpkey "${ec[@]}" -out server-key.pem 2>/dev/null
  openssl req -subj "/CN=localhost" -sha256 -new -key server-key.pem -out server.csr
  printf 'subjectAltName = DNS:localhost,IP:127.0.0.1\nextendedKeyUsage = serverAuth\n' >extfile.cnf
  openssl x509 -req -days 365 -sha256 -in server.csr -CA ca.pem -CAkey ca-key.pem -passin env:FULLSET_PASS \
    -CAcreateserial -extfile extfile.cnf -out server-cert.pem 2>/dev/null
  openssl genpkey "${ec[@]}" -out key.pem 2>/dev/null
  openssl req -subj "/CN=client" -new -key key.pem -out client.csr
  echo "extendedKeyUsage = clientAuth" >extfile-client.cnf
  openssl x509 -req -days 365 -sha256 -in client.csr -CA ca.pem -CAkey ca-key.pem -passin env:FULLSET_PASS \
    -CAcreateserial -extfile extfile-client.cnf -out cert.pem 2>/dev/null
  chmod 0400 ca-key.pem key.pem server-key.pem
  docker context create "$n" --docker "host=tcp://127.0.0.1:2376,ca=$d/ca.pem,cert=$d/cert.pem,key=$d/key.pem" >/dev/null
  ;;
docker-tls)
  docker tls ca init "$n" >/dev/null
  docker tls server issue localhost 127.0.0.1 --ca "$n" --out "$d/server" >/dev/null
  docker tls context create "$n" --host tcp://127.0.0.1:2376 --issue --ca "$n" >/dev/null
  ;;
*)
  echo "usage: fullset.sh articles|openssl|docker-tls" >&2
  exit 2
  ;;
esac
