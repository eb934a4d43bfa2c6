// Package pki owns the certificate authority logic of docker-tls: key
// generation, CSRs, CA creation, signing with the server and client profiles,
// SAN parsing, parsing of every key and certificate format openssl writes, and
// the offline checks (chain, EKU, validity, key/certificate match).
//
// It is pure: bytes and structs in, bytes and structs out. It does no file or
// network I/O, reads no environment and keeps no package-level state, so every
// caller (the CLI, a signing service, tests) gets the same behaviour.
package pki
