package engine

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
	"unicode"

	sshurl "github.com/docker/cli/cli/connhelper/ssh"
)

// Dest is an engine's host as docker's ssh contexts name it:
// ssh://[user@]host[:port], or [user@]host.
type Dest struct {
	User, Host, Port string
}

// ParseDest reads DEST. The user and port may be left to ~/.ssh/config.
func ParseDest(s string) (Dest, error) {
	raw := s
	if !strings.Contains(s, "://") {
		raw = "ssh://" + s
	}
	sp, err := sshurl.ParseURL(raw)
	if err != nil {
		return Dest{}, fmt.Errorf("%q is not an ssh destination (ssh://[user@]host[:port] or [user@]host): %w", s, err)
	}
	if sp.Path != "" && sp.Path != "/" {
		return Dest{}, fmt.Errorf("%q is not an ssh destination: a path (%s) has no meaning here", s, sp.Path)
	}
	if strings.HasPrefix(sp.Host, "-") || strings.HasPrefix(sp.User, "-") {
		return Dest{}, fmt.Errorf("%q is not an ssh destination: it starts with '-'", s)
	}
	for _, part := range []struct{ what, v string }{{"user", sp.User}, {"host", sp.Host}, {"port", sp.Port}} {
		for _, r := range part.v {
			if unicode.IsControl(r) || unicode.IsSpace(r) || unicode.Is(unicode.Bidi_Control, r) {
				return Dest{}, fmt.Errorf("%q is not an ssh destination: its %s holds %q", s, part.what, r)
			}
		}
	}
	return Dest{User: sp.User, Host: sp.Host, Port: sp.Port}, nil
}

// String is the destination as ssh://[user@]host[:port].
func (d Dest) String() string {
	s := "ssh://"
	if d.User != "" {
		s += d.User + "@"
	}
	if d.Port != "" {
		return s + net.JoinHostPort(d.Host, d.Port)
	}
	return s + d.Host
}

// SSHOptions say how to reach a host beyond its destination.
type SSHOptions struct {
	// Config is an ssh_config file used instead of ~/.ssh/config (ssh -F).
	Config string `json:"config,omitempty"`
	// ConnectTimeout bounds the TCP connection and handshake.
	ConnectTimeout time.Duration `json:"-"`
}

// Session is one multiplexed ssh connection to a host: the system ssh
// binary, as docker's own ssh connection helper uses it, so ~/.ssh/config,
// agents, ProxyJump and hardware keys work. One master connection (a
// control socket in a private directory) carries every command of a run,
// so a setup pays for one handshake. Commands run as root: through
// `sudo -n` when the login user is not root.
type Session struct {
	Dest Dest
	opts SSHOptions
	dir  string
	// master is the ssh process holding the connection; ours, stopped by
	// Close.
	master *exec.Cmd
	exited chan struct{}
	stderr *bytes.Buffer
	sudo   bool
	// User is the login user's name on the host, UID its uid.
	User string
	UID  string
	// HostName is the name or address ssh connects to once ~/.ssh/config
	// is applied (an alias resolved): what the Docker context dials too.
	HostName string
}

// Shell is what the engine's transactions need of a host: a script run
// as root, with stdin, and the host's name for messages. *Session is the
// one over ssh; unit tests give a scripted one.
type Shell interface {
	Run(ctx context.Context, script string, stdin []byte) ([]byte, error)
	Host() string
}

// Host is the host as the user named it.
func (s *Session) Host() string { return s.Dest.Host }

// HostKeyError is an unknown or changed host key: nothing was sent.
type HostKeyError struct {
	Dest        Dest
	Fingerprint string // SHA256:… when ssh showed it
	Changed     bool
}

func (e *HostKeyError) Error() string {
	what := "is not in known_hosts"
	if e.Changed {
		what = "has CHANGED since it was added to known_hosts (another host, or an attack)"
	}
	fp := ""
	if e.Fingerprint != "" {
		fp = " (" + e.Fingerprint + ")"
	}
	return fmt.Sprintf("the ssh host key of %s%s %s", e.Dest.Host, fp, what)
}

// SudoPasswordError is a non-root login whose sudo wants a password.
type SudoPasswordError struct{ User, Host string }

func (e *SudoPasswordError) Error() string {
	return fmt.Sprintf("%s on %s needs a password for sudo, and docker tls runs sudo without a terminal (sudo -n)", e.User, e.Host)
}

// Dial opens the master connection and learns who it logged in as. The
// caller must Close the session.
func Dial(ctx context.Context, d Dest, o SSHOptions) (*Session, error) {
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = 15 * time.Second
	}
	removeStaleControlDirs(os.TempDir(), time.Now())
	// A short path: unix socket paths are limited to ~100 bytes.
	dir, err := os.MkdirTemp("", "dtls-ssh-")
	if err != nil {
		return nil, err
	}
	s := &Session{Dest: d, opts: o, dir: dir, exited: make(chan struct{}), stderr: &bytes.Buffer{}}
	s.HostName = d.Host
	if out, err := exec.CommandContext(ctx, "ssh", append(s.baseArgs("-G"), s.target()...)...).Output(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			if v, ok := strings.CutPrefix(l, "hostname "); ok && v != "" {
				s.HostName = strings.TrimSpace(v)
			}
		}
	}
	// -v shows the server's host key fingerprint, for the error when it
	// is unknown; the master's output is only ever parsed, never shown.
	args := append(s.baseArgs("-M", "-N", "-v", "-o", "ControlPersist=no", "-o", fmt.Sprintf("ConnectTimeout=%d", int(o.ConnectTimeout.Seconds()))), s.target()...)
	s.master = exec.Command("ssh", args...)
	s.master.Stdin = nil
	s.master.Stdout = io.Discard
	// Read only once Wait has returned (s.exited), so never concurrently.
	s.master.Stderr = s.stderr
	s.master.SysProcAttr = masterProcAttr()
	if err := s.master.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start ssh: %w", err)
	}
	go func() { _ = s.master.Wait(); close(s.exited) }()
	if err := s.waitReady(ctx, o.ConnectTimeout+5*time.Second); err != nil {
		s.Close()
		return nil, err
	}
	// Who we are and, for a non-root login, whether sudo works without a
	// password: one round trip.
	out, err := s.runAs(ctx, false, `id -un; id -u; [ "$(id -u)" = 0 ] || sudo -n true 2>&1 || echo "sudo failed"`, nil)
	if err != nil {
		s.Close()
		return nil, err
	}
	lines := strings.SplitN(strings.TrimSpace(string(out)), "\n", 3)
	if len(lines) < 2 {
		s.Close()
		return nil, fmt.Errorf("%s: unexpected answer to id: %q", d.Host, out)
	}
	s.User, s.UID = strings.TrimSpace(lines[0]), strings.TrimSpace(lines[1])
	if s.UID != "0" {
		s.sudo = true
		if len(lines) == 3 {
			s.Close()
			if strings.Contains(lines[2], "password") {
				return nil, &SudoPasswordError{User: s.User, Host: d.Host}
			}
			return nil, fmt.Errorf("%s on %s cannot run sudo -n: %s", s.User, d.Host, strings.SplitN(lines[2], "\n", 2)[0])
		}
	}
	return s, nil
}

// removeStaleControlDirs removes the empty control directories that
// killed runs left in tmp: a live session's holds its master's socket
// (ssh removes it when the master ends, even by signal), and a new one
// gets its socket within the connect timeout, so an empty directory older
// than two minutes is nobody's. os.Remove takes only empty directories.
func removeStaleControlDirs(tmp string, now time.Time) {
	dirs, _ := filepath.Glob(filepath.Join(tmp, "dtls-ssh-*"))
	for _, d := range dirs {
		if fi, err := os.Lstat(d); err == nil && fi.IsDir() && now.Sub(fi.ModTime()) > 2*time.Minute {
			_ = os.Remove(d)
		}
	}
}

// baseArgs are the options of every ssh call of the session: never a
// prompt, the host key checked, one control socket.
func (s *Session) baseArgs(extra ...string) []string {
	args := []string{}
	if s.opts.Config != "" {
		args = append(args, "-F", s.opts.Config)
	}
	args = append(args,
		"-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "ControlPath="+filepath.Join(s.dir, "c"),
		"-T",
	)
	return append(args, extra...)
}

// target is [-l user] [-p port] -- host.
func (s *Session) target() []string {
	var args []string
	if s.Dest.User != "" {
		args = append(args, "-l", s.Dest.User)
	}
	if s.Dest.Port != "" {
		args = append(args, "-p", s.Dest.Port)
	}
	return append(args, "--", s.Dest.Host)
}

// waitReady waits for the control socket, or explains why the master
// gave up.
func (s *Session) waitReady(ctx context.Context, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-s.exited:
			return s.masterError()
		case <-ctx.Done():
			return fmt.Errorf("ssh to %s: no connection within %s", s.Dest.Host, limit.Round(time.Second))
		case <-tick.C:
			check := exec.CommandContext(ctx, "ssh", append(s.baseArgs("-O", "check"), s.target()...)...)
			if check.Run() == nil {
				return nil
			}
		}
	}
}

// masterError turns what the failed master printed into an error.
func (s *Session) masterError() error {
	out := s.stderr.String()
	fp := ""
	if m := regexp.MustCompile(`Server host key: \S+ (SHA256:\S+)`).FindStringSubmatch(out); m != nil {
		fp = m[1]
	}
	switch {
	case strings.Contains(out, "REMOTE HOST IDENTIFICATION HAS CHANGED"):
		return &HostKeyError{Dest: s.Dest, Fingerprint: fp, Changed: true}
	case strings.Contains(out, "Host key verification failed"):
		return &HostKeyError{Dest: s.Dest, Fingerprint: fp}
	}
	var msgs []string
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "debug") || strings.HasPrefix(l, "OpenSSH_") || strings.HasPrefix(l, "Authenticated to") || strings.HasPrefix(l, "Transferred") {
			continue
		}
		msgs = append(msgs, l)
	}
	if len(msgs) == 0 {
		msgs = []string{"the connection closed"}
	}
	return fmt.Errorf("ssh to %s: %s", s.Dest.Host, strings.Join(msgs, "; "))
}

// Run runs a shell script on the host as root, with stdin, and returns its
// standard output. Secrets travel on stdin only, never in the script.
func (s *Session) Run(ctx context.Context, script string, stdin []byte) ([]byte, error) {
	return s.runAs(ctx, s.sudo, script, stdin)
}

// Stream runs a script on the host as root and copies its standard output
// to out as it comes, until the script ends or ctx does (engine audit
// --follow).
func (s *Session) Stream(ctx context.Context, script string, out io.Writer) error {
	cmd, err := s.command(ctx, s.sudo, script)
	if err != nil {
		return err
	}
	// The script's stdin stays open until ctx ends: its end tells the
	// host's side to stop (without a terminal, sshd sends it no signal).
	// An OS pipe, so that no copying goroutine keeps Run waiting.
	stdin, hold, err := os.Pipe()
	if err != nil {
		return err
	}
	defer stdin.Close()
	defer hold.Close()
	stop := context.AfterFunc(ctx, func() { hold.Close() })
	defer stop()
	var stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, out, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return &RemoteError{Host: s.Dest.Host, Err: err, Stderr: strings.TrimSpace(stderr.String())}
	}
	return nil
}

// command is the ssh command that runs script on the host, through the
// master connection.
func (s *Session) command(ctx context.Context, sudo bool, script string) (*exec.Cmd, error) {
	// The script travels base64-encoded: docker's quoting (rightly) takes
	// no control characters, and a script has newlines. It holds no secret.
	remote := []string{"sh", "-c", `eval "$(echo ` + base64.StdEncoding.EncodeToString([]byte(script)) + ` | base64 -d)"`}
	if sudo {
		remote = append([]string{"sudo", "-n", "--"}, remote...)
	}
	sp := sshurl.Spec{User: s.Dest.User, Host: s.Dest.Host, Port: s.Dest.Port}
	// Spec.Command quotes the remote command for the login shell as
	// docker's ssh helper does, and puts "--" before the host.
	args, err := sp.Command(s.baseArgs("-o", "ControlMaster=no"), remote...)
	if err != nil {
		return nil, err
	}
	return exec.CommandContext(ctx, "ssh", args...), nil
}

func (s *Session) runAs(ctx context.Context, sudo bool, script string, stdin []byte) ([]byte, error) {
	cmd, err := s.command(ctx, sudo, script)
	if err != nil {
		return nil, err
	}
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == 255 {
			select {
			case <-s.exited:
				return nil, fmt.Errorf("ssh to %s: the connection was lost", s.Dest.Host)
			default:
			}
		}
		return append(stdout.Bytes(), stderr.Bytes()...), &RemoteError{Host: s.Dest.Host, Err: err, Stderr: strings.TrimSpace(stderr.String())}
	}
	return stdout.Bytes(), nil
}

// RemoteError is a command that failed on the host.
type RemoteError struct {
	Host   string
	Err    error
	Stderr string
}

func (e *RemoteError) Error() string {
	if e.Stderr != "" {
		return fmt.Sprintf("on %s: %s", e.Host, lastLine(e.Stderr))
	}
	return fmt.Sprintf("on %s: %v", e.Host, e.Err)
}

func (e *RemoteError) Unwrap() error { return e.Err }

// Close ends the master connection (ssh -O exit, then its pid) and removes
// the control directory.
func (s *Session) Close() {
	if s.master != nil && s.master.Process != nil {
		select {
		case <-s.exited:
		default:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = exec.CommandContext(ctx, "ssh", append(s.baseArgs("-O", "exit"), s.target()...)...).Run()
			cancel()
			select {
			case <-s.exited:
			case <-time.After(3 * time.Second):
				_ = s.master.Process.Kill()
				<-s.exited
			}
		}
	}
	os.RemoveAll(s.dir)
}

func firstLine(out []byte, err error) string {
	s := strings.TrimSpace(string(out))
	if s == "" {
		return err.Error()
	}
	return strings.SplitN(s, "\n", 2)[0]
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
