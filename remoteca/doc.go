// Package remoteca owns issuing certificates across the network, so that a
// CA key can stay on the engine's host or in a CA service while clients
// send only CSRs: the enrollment tokens, the signing service behind
// `docker tls ca serve` (a compatible subset of cfssl's API: info and
// authsign), the inventory of what it issued, and the client behind
// `docker tls enroll` that pins the CA by fingerprint.
package remoteca
