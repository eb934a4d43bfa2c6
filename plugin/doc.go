// Package plugin owns the docker-tls command line: the cobra command tree run
// as `docker tls …` or standalone `docker-tls …`, its flags, prompts and
// output. Each verb has an options struct and a run function separate from
// its cobra wiring; the work itself lives in pki, castore and keystore.
package plugin
