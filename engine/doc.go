// Package engine sets up and keeps a Docker engine's host serving the
// Docker API over mutual TLS, from the laptop, over SSH.
//
// It owns the engine side of docker-tls: reaching a host with the system
// ssh binary (one multiplexed connection per run, host keys checked, sudo
// without a terminal), reading what the host has (Inspect: read-only),
// deciding what to change (Plan: a pure function of what was read and
// what was asked), changing it with a backup of every file first and a
// rollback that restores those bytes when dockerd does not come back, and
// the laptop's record of the engines it set up. It also puts an engine's
// policy in force on the host (policy.go): the same binary installed as
// dockerd's authorization plugin behind a systemd socket, turned on by a
// reload only once it answers, taken away the same way, and fed the CA's
// revocation lists.
//
// Facts that shape it (moby's source): dockerd loads its TLS files only at
// start, so a new server certificate means a restart; live-restore keeps
// containers running across that restart and can itself be switched on by
// a reload (SIGHUP); an option given both as a flag and in daemon.json
// makes dockerd refuse to start, which is why Debian's `-H fd://` and a
// "hosts" key in daemon.json cannot meet. So each option goes where the
// host already keeps its options: a systemd drop-in of our own that
// restates the unit's ExecStart with the TLS flags added, or daemon.json
// when the host already lists its sockets there. The host is the truth of
// what is set up (its backup and a state file under /var/lib/docker-tls);
// the laptop's record only says where engines are.
package engine
