// Package testpg starts a real, throw-away PostgreSQL server (Debian's
// postgresql package) for the tests and benchmarks of the CA service: a
// fresh cluster made by initdb in a temporary directory, listening only on a
// unix socket in that directory, owned by the process that started it and
// stopped by its pid. As root it runs as the postgres user (PostgreSQL
// refuses to run as root).
//
// It is never part of the docker-tls binary.
package testpg

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
)

// Server is a running PostgreSQL.
type Server struct {
	// Dir holds the cluster, its socket and its log.
	Dir string
	// URL reaches the "postgres" database as the superuser, over the socket.
	URL  string
	cmd  *exec.Cmd
	done chan struct{}
	log  *bytes.Buffer
}

// Binaries finds initdb and postgres: on PATH, or in Debian's versioned
// directory. The error says which package to install.
func Binaries() (initdb, postgres string, err error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if q, err := exec.LookPath("postgres"); err == nil {
			return p, q, nil
		}
		if q := filepath.Join(filepath.Dir(evalLinks(p)), "postgres"); exists(q) {
			return p, q, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Sort(sort.Reverse(sort.StringSlice(dirs)))
	for _, d := range dirs {
		if exists(filepath.Join(d, "initdb")) && exists(filepath.Join(d, "postgres")) {
			return filepath.Join(d, "initdb"), filepath.Join(d, "postgres"), nil
		}
	}
	return "", "", errors.New("PostgreSQL is not installed (apt-get install postgresql)")
}

func evalLinks(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// Start makes a cluster in dir (which must not exist yet) and starts it.
// The caller stops it with Stop.
func Start(dir string) (*Server, error) {
	initdb, postgres, err := Binaries()
	if err != nil {
		return nil, err
	}
	cred, err := postgresUser()
	if err != nil {
		return nil, err
	}
	if err := makeDir(dir, cred); err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	run := func(name string, args ...string) *exec.Cmd {
		c := exec.Command(name, args...)
		c.Dir = dir
		c.Env = []string{"PATH=/usr/bin:/bin", "LANG=C", "LC_ALL=C"}
		c.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL, Setpgid: true}
		return c
	}
	out, err := run(initdb, "-D", data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	s := &Server{Dir: dir, log: &bytes.Buffer{}}
	// Only a unix socket: nothing reaches it over the network. fsync off:
	// a test cluster dies with its test; the durability under test is
	// PostgreSQL's transaction semantics, not its disk.
	s.cmd = run(postgres, "-D", data, "-k", dir, "-c", "listen_addresses=", "-c", "fsync=off",
		"-c", "max_connections=300", "-c", "shared_buffers=64MB")
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	s.done = make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	s.URL = (&url.URL{Scheme: "postgres", User: url.User("postgres"), Path: "/postgres",
		RawQuery: url.Values{"host": {dir}, "port": {"5432"}, "sslmode": {"disable"}}.Encode()}).String()
	if err := s.waitReady(time.Now().Add(30 * time.Second)); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// postgresUser is whom the server runs as: the postgres user when this
// runs as root (PostgreSQL refuses to), else this user (nil).
func postgresUser() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, errors.New("running as root, PostgreSQL needs the postgres user (apt-get install postgresql)")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// makeDir makes the cluster's directory, owned by cred's user.
func makeDir(dir string, cred *syscall.Credential) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	if cred == nil {
		return nil
	}
	// The parents are the caller's temp dirs: the postgres user must be
	// able to reach its own directory through them.
	for p := dir; p != "/" && p != "."; p = filepath.Dir(p) {
		if st, err := os.Stat(p); err == nil && st.Mode().Perm()&0o001 == 0 {
			_ = os.Chmod(p, st.Mode().Perm()|0o001)
		}
	}
	return os.Chown(dir, int(cred.Uid), int(cred.Gid))
}

// waitReady waits until the server takes connections, up to deadline.
func (s *Server) waitReady(deadline time.Time) error {
	sock := filepath.Join(s.Dir, ".s.PGSQL.5432")
	for !exists(sock) {
		select {
		case <-s.done:
			return fmt.Errorf("postgres exited:\n%s", s.log.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres did not start in 30 s:\n%s", s.log.String())
		}
	}
	// The socket appears a moment before connections are accepted.
	for {
		db, err := sql.Open("pgx", s.URL)
		if err == nil {
			err = db.Ping()
			db.Close()
		}
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres does not answer: %v\n%s", err, s.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop ends the server by its pid: a fast shutdown, then SIGKILL after 10 s.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
	s.cmd = nil
}

// CreateDB makes an empty database and returns its URL.
func (s *Server) CreateDB(name string) (string, error) {
	db, err := sql.Open("pgx", s.URL)
	if err != nil {
		return "", err
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE DATABASE "` + name + `"`); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	u, _ := url.Parse(s.URL)
	u.Path = "/" + name
	return u.String(), nil
}

// Log is what the server printed.
func (s *Server) Log() string { return s.log.String() }
