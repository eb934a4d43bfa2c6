package plugin

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/docker/cli/cli"
	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/agent"
	"github.com/docker-tls/docker-tls/internal/output"
	"github.com/docker-tls/docker-tls/keystore"
	"github.com/docker-tls/docker-tls/renewal"
)

// agentSupported says why agent mode is unavailable on this platform.
func agentSupported() error {
	if runtime.GOOS == "windows" {
		return errors.New("agent mode is not available on Windows yet (it needs named pipes, npipe://): use a context with a key file, and docker tls lock between uses")
	}
	return nil
}

// agentEndpoints lists the agent-mode contexts for the agent.
func (a *app) agentEndpoints() ([]agent.Endpoint, error) {
	list, _, err := a.contexts().List()
	if err != nil {
		return nil, err
	}
	return agent.Endpoints(list), nil
}

type agentOptions struct {
	foreground     bool
	idleLock       time.Duration
	keyringTimeout time.Duration
	caCheck        time.Duration
	logFile        string // set by the background start: agent.log, rotated
}

// agentLogMax caps agent.log; past it the log moves to agent.log.1.
const agentLogMax = 5 << 20

func newAgentCommand(a *app) *cobra.Command {
	var opts agentOptions
	cmd := &cobra.Command{
		Use:   "agent [--foreground] [--idle-lock 8h]",
		Short: "Serve agent-mode contexts: keys only in memory, relayed over mutual TLS",
		Long: `Start the agent that serves contexts created with --agent. Each such context
points the docker CLI at a private Unix socket; the agent loads the
context's key from the OS keyring on first use, keeps it only in memory, and
relays every connection byte for byte to the engine over mutual TLS (TLS
1.2+, the engine's certificate checked against the context's CA and name).
attach, exec -it, logs -f, events, build and cp work unchanged.

The sockets live in a 0700 directory ($XDG_RUNTIME_DIR/docker-tls-…, or
$DOCKER_CONFIG/tls/run), each 0600; on Linux the agent also refuses any
peer of another uid. It logs connections, never key material.

Without --foreground it starts in the background and returns; its log is
agent.log in that directory (kept under 5 MiB, the previous part in
agent.log.1). If an agent already serves this DOCKER_CONFIG
it says so and succeeds, so the command can sit in a shell profile (with
--foreground, for service managers, that is an error). Windows is not
supported yet (named pipes).`,
		Example: `  docker tls context create prod --host tcp://engine.example.com:2376 --issue --agent
  docker tls agent
  docker --context prod ps
  docker tls agent lock      # forget every key now
  docker tls agent install   # start at login (systemd user unit / launchd agent)
  docker tls agent --ca-check 1m   # notice a CA rotation at the CA services sooner`,
		Args: cli.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAgent(cmd.Context(), a, opts)
		},
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	f := cmd.Flags()
	f.BoolVar(&opts.foreground, "foreground", false, "Run in the foreground, logging to stderr")
	f.DurationVar(&opts.idleLock, "idle-lock", 0, "Drop a key from memory after it was unused this long (e.g. 8h)")
	f.DurationVar(&opts.keyringTimeout, "keyring-timeout", keystore.DefaultTimeout, "Give up on the OS keyring after this long")
	f.DurationVar(&opts.caCheck, "ca-check", 5*time.Minute, "How often to ask the CA services of enrolled contexts whether their CA is being rotated (then renew at once)")
	f.StringVar(&opts.logFile, "log-file", "", "Log to this file, kept under 5 MiB by moving it to FILE.1 (the background start uses it)")
	_ = f.MarkHidden("log-file")
	cmd.AddCommand(
		agentControlCommand(a, "status", "Show whether the agent runs, and what it serves"),
		agentControlCommand(a, "stop", "Stop the agent"),
		agentControlCommand(a, "lock", "Drop every key from the agent's memory now"),
		newAgentInstallCommand(a),
	)
	return cmd
}

// checkAgentSpans refuses spans the agent cannot use, the same for agent
// and agent install (which writes them into a service unit).
func checkAgentSpans(idleLock, keyringTimeout time.Duration) error {
	if idleLock < 0 {
		return fmt.Errorf("--idle-lock %s: give a positive span like 8h, or leave it out", idleLock)
	}
	if keyringTimeout < 100*time.Millisecond || keyringTimeout > 10*time.Minute {
		return fmt.Errorf("--keyring-timeout %s: give a span from 100ms to 10m", keyringTimeout)
	}
	return nil
}

func runAgent(ctx context.Context, a *app, opts agentOptions) error {
	if err := agentSupported(); err != nil {
		return err
	}
	if opts.caCheck < time.Second || opts.caCheck > 24*time.Hour {
		return fmt.Errorf("--ca-check %s: give a span from 1s to 24h", opts.caCheck)
	}
	if err := checkAgentSpans(opts.idleLock, opts.keyringTimeout); err != nil {
		return err
	}
	dir := a.agentDir()
	if agent.Running(dir) {
		if opts.foreground {
			return agent.ErrRunning
		}
		// Starting is idempotent; the running agent keeps its own settings.
		st, _, err := agent.Call(dir, "status")
		if err != nil {
			return err
		}
		fmt.Fprintf(a.cli.Out(), "The agent is already running (pid %d), serving %s\n", st.PID, dir)
		return nil
	}
	if !opts.foreground {
		return a.startAgentBackground(dir, opts)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	var logTo io.Writer = a.cli.Err()
	if opts.logFile != "" {
		// Descriptors 1 and 2 follow the log, so a panic lands in it too.
		lf, err := agent.OpenLogFile(opts.logFile, agentLogMax, 1, 2)
		if err != nil {
			return err
		}
		defer lf.Close()
		logTo = lf
	}
	return agent.Run(ctx, agent.Config{
		Dir:       dir,
		Endpoints: a.agentEndpoints,
		Stamp:     a.contexts().Stamp,
		LoadKey: func(kind, id string) (crypto.Signer, error) {
			ks, err := a.keyStore(kind, nil)
			if err != nil {
				return nil, err
			}
			if k, ok := ks.(*keystore.Keyring); ok {
				k.Timeout = opts.keyringTimeout
			}
			return ks.Get(id)
		},
		IdleLock:      opts.idleLock,
		Log:           log.New(logTo, "docker-tls agent: ", log.LstdFlags),
		Renewals:      func() ([]agent.Due, error) { return renewal.Due(a.contexts()) },
		Renew:         a.agentRenew,
		RotationCheck: func(ctx context.Context) []string { return renewal.BehindRotation(ctx, a.contexts()) },
		CheckEvery:    opts.caCheck,
	})
}

// startAgentBackground re-runs this binary as `docker-tls agent
// --foreground` in a new session, logging to agent.log, and waits until it
// answers.
func (a *app) startAgentBackground(dir string, opts agentOptions) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	args := []string{"--config", a.configDir(), "agent", "--foreground", "--keyring-timeout", opts.keyringTimeout.String(), "--ca-check", opts.caCheck.String(), "--log-file", filepath.Join(dir, "agent.log")}
	if opts.idleLock > 0 {
		args = append(args, "--idle-lock", opts.idleLock.String())
	}
	// Run standalone, not as a plugin invocation of the docker CLI, and
	// hand the long-lived child no secret from our environment.
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DOCKER_CLI_PLUGIN_") && !strings.HasPrefix(kv, PassphraseEnv+"=") {
			env = append(env, kv)
		}
	}
	pid, logPath, err := agent.Start(dir, exe, args, env)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.cli.Out(), "Agent started (pid %d), serving %s; log: %s\n", pid, dir, logPath)
	return nil
}

// printAgentStatus prints what agent status answered, as format says.
func printAgentStatus(out io.Writer, st *agent.Status, format string, now time.Time) error {
	if format == "json" {
		return output.JSON(out, st)
	}
	if format != "" {
		return output.Template(out, format, []*agent.Status{st})
	}
	fmt.Fprintf(out, "Agent running, pid %d, since %s, %d open connection(s), %d in all\n", st.PID, st.Started.Format(time.RFC3339), st.Connections, st.Total)
	for _, c := range st.Contexts {
		state := "key not loaded"
		if c.KeyLoaded {
			state = "key in memory"
		}
		fmt.Fprintf(out, "  %-20s %-32s %s  (%s)\n", c.Name, c.Remote, state, c.Socket)
	}
	if len(st.Renewals) > 0 {
		fmt.Fprintln(out, "Automatic renewals (from the CA service each context enrolled with):")
	}
	for _, r := range st.Renewals {
		fmt.Fprintln(out, renewalLine(r, now))
	}
	return nil
}

// renewalLine is one context's automatic renewal as agent status shows
// it. The agent renews only valid certificates: an expired one says in
// the same line what renews it instead.
func renewalLine(r agent.RenewalStatus, now time.Time) string {
	name := fmt.Sprintf("  %-20s ", r.Name)
	if !now.Before(r.NotAfter) {
		expired := name + "EXPIRED " + r.NotAfter.Local().Format(time.RFC3339) + ": "
		if r.SignIn {
			return expired + "a new sign-in is needed: docker tls renew " + r.Name
		}
		return expired + "the agent renews only valid certificates: docker tls renew " + r.Name + " (a CA service run with --renew-after-expiry renews it for a while after its end), or enroll again with a new token"
	}
	line := fmt.Sprintf("%sexpires %s, renews from %s", name, r.NotAfter.Local().Format(time.RFC3339), r.Due.Local().Format(time.RFC3339))
	if r.LastError != "" {
		line += fmt.Sprintf("; FAILING (%d attempt(s), next %s): %s", r.Failures, r.NextTry.Local().Format(time.RFC3339), r.LastError)
	}
	return line
}

func agentControlCommand(a *app, op, short string) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:     op,
		Short:   short,
		Example: "  docker tls agent " + op,
		Args:    cli.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, locked, err := agent.Call(a.agentDir(), op)
			if err != nil {
				if op == "stop" && errors.Is(err, agent.ErrNotRunning) {
					fmt.Fprintln(a.cli.Out(), "The agent is not running")
					return nil
				}
				return err
			}
			out := a.cli.Out()
			switch op {
			case "status":
				return printAgentStatus(out, st, format, time.Now())
			case "stop":
				fmt.Fprintln(out, "Agent stopping")
			case "lock":
				fmt.Fprintf(out, "Dropped %d key(s) from the agent's memory\n", locked)
			}
			return nil
		},
	}
	if op == "status" {
		cmd.Example = "  docker tls agent status\n  docker tls agent status --format json\n  docker tls agent status --format '{{.PID}}'"
		cmd.Flags().StringVar(&format, "format", "", `"json" or a Go template over the status (.PID, .Started, .Dir, .Connections, .Total, .IdleLock, .Contexts: .Name, .Socket, .Remote, .KeyLoaded; .Renewals: .Name, .Due, .NotAfter, .Failures, .LastError, .NextTry, .Renewed)`)
		_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"json"}, cobra.ShellCompDirectiveNoFileComp))
	}
	return cmd
}
