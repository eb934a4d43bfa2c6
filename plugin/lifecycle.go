package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli-plugins/hooks"
	"github.com/docker/cli/cli-plugins/metadata"
	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/agent"
	"github.com/docker-tls/docker-tls/castore"
	"github.com/docker-tls/docker-tls/internal/fsutil"
	"github.com/docker-tls/docker-tls/pki"
	"github.com/docker-tls/docker-tls/probe"
)

// renewWarnWithin is when the current context's certificate starts being
// mentioned on every command.
const renewWarnWithin = 14 * 24 * time.Hour

// expiryNotice says, in one line, that the current context's client
// certificate needs renewing, or returns "".
func (e *env) expiryNotice() string {
	name := e.cli.CurrentContext()
	if name == "" || name == "default" {
		return ""
	}
	c, err := e.contexts().Get(name)
	if err != nil || !c.Managed() {
		return ""
	}
	if c.AgentMode() && !agent.Running(e.agentDir()) {
		return fmt.Sprintf("the current context %q is in agent mode and the agent is not running: run docker tls agent", name)
	}
	left := time.Until(c.TLS.NotAfter)
	switch {
	case left <= 0:
		return fmt.Sprintf("the client certificate of the current context %q expired on %s: run docker tls renew %s", name, c.TLS.NotAfter.Format("2006-01-02"), name)
	case left < renewWarnWithin:
		return fmt.Sprintf("the client certificate of the current context %q expires in %d days (%s): run docker tls renew %s",
			name, int(left.Hours()/24), c.TLS.NotAfter.Format("2006-01-02"), name)
	}
	return ""
}

// wrapRuns makes every command print the expiry notice, once, on stderr
// before it runs (renew excepted: it is the fix), and say a full disk in
// one sentence however deep the error came from.
func wrapRuns(e *env, root *cobra.Command) {
	var visit func(*cobra.Command)
	visit = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			visit(sub)
		}
		if c.RunE == nil || c.Hidden {
			return
		}
		run, warn := c.RunE, c.Name() != "renew"
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if msg := e.expiryNotice(); warn && msg != "" {
				fmt.Fprintln(e.cli.Err(), "warning:", msg)
			}
			return diskFull(e.configDir(), run(cmd, args))
		}
	}
	visit(root)
}

// diskFull turns "no space left on device", which arrives wrapped in the
// paths of scratch files nobody knows, into one sentence naming the
// docker config directory and the fix. The journal makes "nothing half
// written" true: the next command finishes or undoes whatever this one
// began.
func diskFull(configDir string, err error) error {
	if !errors.Is(err, syscall.ENOSPC) {
		return err
	}
	return fmt.Errorf("no space left on the device holding %s: free some space and run the command again (nothing was half written)", configDir)
}

// newHookCommand answers the docker CLI's hook call after the commands
// configured in config.json ("plugins": {"tls": {"hooks": "context use"}}):
// after `docker context use NAME`, if NAME's certificate is close to expiry,
// the docker CLI shows the renew command under "What's next".
func newHookCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:    metadata.HookSubcommandName + " REQUEST",
		Hidden: true,
		Args:   cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runHook(e, cmd.OutOrStdout(), args[0])
		},
	}
}

func runHook(e *env, out io.Writer, request string) error {
	var req hooks.Request
	if err := json.Unmarshal([]byte(request), &req); err != nil {
		return fmt.Errorf("hook request: %w", err)
	}
	resp := hooks.Response{Type: hooks.NextSteps}
	// The docker CLI calls hooks after the command ran: for "context use"
	// the configuration already names the new current context. The message
	// is plain text, so docker 28's older template engine shows it too.
	if msg := e.expiryNotice(); msg != "" && req.CommandError == "" {
		resp.Template = "docker-tls: " + msg
	}
	return json.NewEncoder(out).Encode(resp)
}

type serverRenewOptions struct {
	dir        string
	ca         string
	sans       []string
	rekey      bool
	days       int
	context    string
	passphrase passphraseOptions
}

func newServerRenewCommand(e *env) *cobra.Command {
	var opts serverRenewOptions
	cmd := &cobra.Command{
		Use:   "renew DIR",
		Short: "Re-issue a server certificate directory in place, keeping its names",
		Long: `Re-issue the server certificate in DIR (from docker tls server issue) from the
same CA, with the same SANs (or --san to change them) and key (or --rekey).
The new files are written next to the old ones and then renamed into place.

dockerd reads its TLS files only when it starts: copy DIR to the engine's
host and restart dockerd. With --context NAME the engine is asked whether
live-restore is on; without it a restart stops the running containers.`,
		Example: `  docker tls server renew ./engine-tls
  docker tls server renew ./engine-tls --san engine.example.com,192.0.2.10 --context prod`,
		Args: cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.dir = args[0]
			return runServerRenew(cmd.Context(), e, opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.ca, "ca", castore.DefaultName, "CA that issued the certificate")
	f.StringSliceVar(&opts.sans, "san", nil, "Replace the names (default: keep the current ones)")
	f.BoolVar(&opts.rekey, "rekey", false, "Make a new key too")
	f.IntVar(&opts.days, "days", 0, "Lifetime in days (default: the old certificate's)")
	f.StringVar(&opts.context, "context", "", "A context for this engine, to ask it whether live-restore is on")
	f.StringVar(&opts.passphrase.file, "passphrase-file", "", "Passphrase of the CA key, if encrypted")
	_ = cmd.RegisterFlagCompletionFunc("ca", completeCANames(e))
	_ = cmd.RegisterFlagCompletionFunc("context", completeContextNames(e, false))
	return cmd
}

func runServerRenew(ctx context.Context, e *env, opts serverRenewOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	read := func(f string) ([]byte, error) { return readPEMFile(filepath.Join(opts.dir, f)) }
	certPEM, err := read("server-cert.pem")
	if err != nil {
		return fmt.Errorf("%s: %w", opts.dir, err)
	}
	keyPEM, err := read("server-key.pem")
	if err != nil {
		return fmt.Errorf("%s: %w", opts.dir, err)
	}
	old, err := pki.ParseCertificate(certPEM)
	if err != nil {
		return fmt.Errorf("server-cert.pem: %w", err)
	}
	key, err := pki.ParsePrivateKey(keyPEM, nil)
	if err != nil {
		return fmt.Errorf("server-key.pem: %w", err)
	}
	stored, ca, err := e.loadCA(opts.ca, opts.passphrase)
	if err != nil {
		return err
	}
	if err := old.CheckSignatureFrom(stored.Cert); err != nil {
		return fmt.Errorf("%s was not issued by CA %q: give the right --ca", filepath.Join(opts.dir, "server-cert.pem"), opts.ca)
	}
	sans := pki.CertSANs(old)
	if len(opts.sans) > 0 {
		var warnings []pki.SANWarning
		if sans, warnings, err = pki.ParseSANs(opts.sans); err != nil {
			return err
		}
		for _, w := range warnings {
			fmt.Fprintln(e.cli.Err(), "warning:", w)
		}
	}
	if opts.rekey {
		kt, err := pki.KeyTypeOf(key.Public())
		if err != nil {
			return err
		}
		if key, err = pki.GenerateKey(kt); err != nil {
			return err
		}
	}
	life := old.NotAfter.Sub(old.NotBefore) - pki.Backdate
	if opts.days > 0 {
		life = time.Duration(opts.days) * 24 * time.Hour
	}
	cert, err := ca.Issue(pki.IssueRequest{Profile: pki.ServerProfile, SANs: sans, PublicKey: key.Public(), Lifetime: life})
	if err != nil {
		return err
	}
	files := []outFile{{"server-cert.pem", pki.EncodeCertificate(cert), fsutil.PublicFile}, {"ca.pem", pki.EncodeCertificate(stored.Cert), fsutil.PublicFile}}
	if opts.rekey {
		kp, err := pki.EncodePrivateKey(key, nil)
		if err != nil {
			return err
		}
		files = append([]outFile{{"server-key.pem", kp, fsutil.PrivateFile}}, files...)
	}
	// New files next to the old ones first, then renamed over them.
	for _, f := range files {
		if err := fsutil.WriteFile(filepath.Join(opts.dir, f.name+".new"), f.data, f.perm, true); err != nil {
			return err
		}
	}
	for _, f := range files {
		if err := os.Rename(filepath.Join(opts.dir, f.name+".new"), filepath.Join(opts.dir, f.name)); err != nil {
			return fmt.Errorf("switch %s: %w", f.name, err)
		}
	}
	out := e.cli.Out()
	fmt.Fprintf(out, "Renewed %s: %s, serial %x, valid until %s\n", filepath.Join(opts.dir, "server-cert.pem"), strings.Join(sans.Strings(), ", "), cert.SerialNumber, cert.NotAfter.Format("2006-01-02"))
	fmt.Fprintln(out, "dockerd reads its certificate only at start: copy the directory to the engine's host and restart dockerd (systemctl restart docker).")
	if opts.context == "" {
		fmt.Fprintln(out, "Without live-restore a restart stops running containers; --context NAME asks the engine whether it is on.")
		return nil
	}
	t, err := e.contextTarget(e.contexts(), opts.context)
	if err != nil {
		return err
	}
	on, err := probe.LiveRestore(ctx, t, 10*time.Second)
	switch {
	case err != nil:
		fmt.Fprintf(out, "Could not ask the engine about live-restore (%v): without it a restart stops running containers.\n", err)
	case on:
		fmt.Fprintln(out, "live-restore is on: containers keep running while dockerd restarts.")
	default:
		fmt.Fprintln(out, "live-restore is OFF: restarting dockerd stops every running container. Plan a window, or set \"live-restore\": true in daemon.json first.")
	}
	return nil
}
