// Package plugin owns the docker-tls command line: the cobra command tree run
// as `docker tls …` or standalone `docker-tls …`, its flags, prompts, hints
// and output. Each verb has an options struct and a run function separate
// from its cobra wiring; a run function checks its flags before anything is
// read or written, calls the package that owns the work, and prints.
//
// The work lives in those packages: pki (certificates and keys, no I/O),
// keystore (where keys live, and which are in use), castore (the CAs on
// disk), contexts (Docker contexts, through docker/cli's store), certdir
// (the certificate directories written for engines and clients), renewal
// (renewing a context's certificate from its CA or CA service), probe
// (verify's checks, and reading a context as they see it), remoteca (the
// CA service, its database, its catalog of engines and its client),
// signin (the device-flow sign-in and its refresh), catalog (a catalog
// made into contexts), policy and authz (roles, and the engine side that
// enforces them), agent (agent mode's relay, renewals, start and login
// service), engine (an engine's host over SSH: setup's, every reissue's,
// policy's and teardown's transactions) and rotation (a CA rotation's
// plan, new CA, steps and the run itself, rotation.Job). internal/output
// holds the --format conventions every command shares. Errors from those packages
// carry facts (typed errors such as renewal.ExpiredError); the command that
// knows what the user ran adds what to run next.
package plugin
