// Package remoteca owns issuing certificates across the network, so that a
// CA key can stay on the engine's host or in a CA service while clients
// send only CSRs: the enrollment tokens, the signing service behind
// `docker tls ca serve` (a compatible subset of cfssl's API: info and
// authsign, plus mutual-TLS renewal and /healthz), its database, and the
// client behind `docker tls enroll` that pins the CA by fingerprint.
// It also keeps the team's catalog of engines (catalog.go): catalog admins
// publish engines with their policies, and any holder of a valid
// certificate lists the engines where it has a role.
//
// The service's state (tokens as hashes, every certificate issued, revoked
// names) lives in a DB: an embedded SQLite file for one process, or
// PostgreSQL for replicas behind one name. Its rules are decided by
// transactions, not by the process: a token is spent at most its number of
// uses across replicas; the same token or certificate with the same key,
// retried, gets the certificate already issued (so a client whose answer
// was lost retries without losing anything); a certificate renews once, in
// the last third of its life; a revoked certificate or name neither renews
// nor enrolls. dockerd checks no revocation list, so revocation here stops
// renewal and re-enrollment, and short lifetimes bound the rest.
package remoteca
