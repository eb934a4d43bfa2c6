// Package crashpoint names the step boundaries of docker-tls's multi-store
// changes so that tests can kill the process exactly there. In the shipped
// binary Hit does nothing and compiles away; a binary built with
// `-tags crashtest` (the e2e crash suite builds one) dies by SIGKILL at the
// step named in DOCKER_TLS_TEST_CRASH_AT, and appends every step it passes
// to the file named in DOCKER_TLS_TEST_CRASH_LOG so the suite can find them
// all without a hand-kept list.
package crashpoint
