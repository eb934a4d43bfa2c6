// Package plugin owns the docker-tls command line: the cobra command tree run
// as `docker tls …` or standalone `docker-tls …`, its flags, prompts, hints
// and output. Each verb has an options struct and a run function separate
// from its cobra wiring.
//
// The work lives in the packages each command calls: pki (certificates and
// keys, no I/O), keystore (where keys live), castore (the CAs on disk),
// contexts (Docker contexts, through docker/cli's store), probe (verify's
// live checks), remoteca (the CA service, its database and its client),
// agent (agent mode's relay and renewals), engine (an engine's host over
// SSH) and rotation (a CA rotation's phases and record). What still runs
// here beyond wiring (the steps of a CA rotation on engines and contexts,
// engine setup's crash-ordered sequence) is on its way to those packages.
package plugin
