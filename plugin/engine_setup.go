package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/docker/cli/cli"
	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/authz"
	"github.com/docker-tls/docker-tls/castore"
	"github.com/docker-tls/docker-tls/contexts"
	"github.com/docker-tls/docker-tls/engine"
	"github.com/docker-tls/docker-tls/pki"
	"github.com/docker-tls/docker-tls/policy"
	"github.com/docker-tls/docker-tls/probe"
)

func newEngineCommand(a *app) *cobra.Command {
	cmd := groupCommand("engine", "Set up Docker engines for mutual TLS over SSH, and keep them that way")
	cmd.AddCommand(newEngineSetupCommand(a), newEngineListCommand(a), newEngineRenewCommand(a), newEngineTeardownCommand(a), newEnginePolicyCommand(a), newEngineAuditCommand(a), newEnginePublishCommand(a))
	return cmd
}

type engineSetupOptions struct {
	dest              string
	name              string
	ca                string
	port              int
	tlsDir            string
	sans              []string
	clientName        string
	groups            []string
	days              int
	sshConfig         string
	restartContainers bool
	force             bool
	dryRun            bool
	agent             bool
	wait              time.Duration
	passphrase        passphraseOptions
	// grants, when given, put a policy in force once the engine is set up.
	grants       []string
	pluginBinary string
}

func newEngineSetupCommand(a *app) *cobra.Command {
	var opts engineSetupOptions
	cmd := &cobra.Command{
		Use:   "setup DEST [--name NAME]",
		Short: "Set a host's dockerd up for mutual TLS over SSH, and make a context for it",
		Long: `Connect to DEST with the system ssh (so ~/.ssh/config, agents and ProxyJump
work), read how its dockerd runs, and set it up to serve the Docker API over
mutual TLS on --port: a server certificate from --ca (its key is made here
and written only on the host, 0600), the TLS flags in a systemd drop-in of
docker tls's own (docker.service.d/docker-tls.conf) or in daemon.json where
the host already lists its sockets there, a restart of dockerd, and a check
from here. Then a context NAME with a client certificate, so that
'docker context use NAME' works.

DEST is ssh://[user@]host[:port] or [user@]host. A user other than root
needs password-less sudo. The host key must be known (known_hosts).

Running containers keep running: with live-restore off, docker tls switches
it on by a reload before the restart, or refuses (swarm mode) unless
--restart-containers. Every file changed is backed up on the host first; if
dockerd does not come back serving TLS, the files are put back and dockerd
restarted. A second run finds everything in place and changes nothing.

With --grant, the engine's policy is put in force right after, as docker tls
engine policy set does; the new context's identity must be among the admins.`,
		Example: `  docker tls engine setup root@192.0.2.10
  docker tls engine setup ssh://admin@build-1.example.com:2222 --name build-1 --dry-run
  docker tls engine setup build-2 --ca prod --port 2376 --san build-2.internal
  docker tls engine setup build-3 --client-name alice --group admins --grant group:admins=admin --grant '*=viewer'`,
		Args: cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.dest = args[0]
			return runEngineSetup(cmd.Context(), a, opts)
		},
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	f := cmd.Flags()
	f.StringVar(&opts.name, "name", "", "Name of the engine and its context (default: the host's short name)")
	f.StringVar(&opts.ca, "ca", castore.DefaultName, "CA that issues the server and client certificates")
	f.IntVar(&opts.port, "port", 2376, "TCP port dockerd serves TLS on")
	f.StringVar(&opts.tlsDir, "tls-dir", engine.DefaultTLSDir, "Directory on the host for ca.pem, server-cert.pem and server-key.pem")
	f.StringSliceVar(&opts.sans, "san", nil, "More DNS names or IP addresses for the server certificate (repeatable)")
	f.StringVar(&opts.clientName, "client-name", "", "Common name of the client certificate (default: user@laptop)")
	f.StringArrayVar(&opts.groups, "group", nil, "Group of the new context's client certificate (its O), for the engine's policy (repeatable)")
	addDaysFlag(f, &opts.days, fmt.Sprint(int(pki.DefaultServerLifetime.Hours()/24))+" for the server certificate")
	f.StringVar(&opts.sshConfig, "ssh-config", "", "ssh_config file to use instead of ~/.ssh/config (ssh -F); remembered for the engine")
	f.BoolVar(&opts.restartContainers, "restart-containers", false, "Allow a restart that stops running containers (live-restore off and not switchable)")
	f.BoolVar(&opts.force, "force", false, "Re-issue the server certificate and rewrite the configuration even if in place; replace the context")
	f.BoolVar(&opts.dryRun, "dry-run", false, "Show what the host has and what would change; change nothing")
	f.BoolVar(&opts.agent, "agent", false, "Make the context an agent-mode one (no key file)")
	f.DurationVar(&opts.wait, "wait", 30*time.Second, "How long dockerd may take to serve TLS after its restart before the change is rolled back")
	f.StringArrayVar(&opts.grants, "grant", nil, "Put a policy in force on the engine: give SUBJECT the ROLE (SUBJECT=ROLE; repeatable)")
	f.StringVar(&opts.pluginBinary, "plugin-binary", "", "With --grant: the docker-tls executable the host runs (default: this one)")
	opts.passphrase.install(f)
	_ = cmd.RegisterFlagCompletionFunc("ca", completeCANames(a))
	_ = cmd.MarkFlagFilename("ssh-config")
	_ = cmd.MarkFlagFilename("plugin-binary")
	return cmd
}

func runEngineSetup(ctx context.Context, a *app, opts engineSetupOptions) error {
	dest, life, err := checkEngineSetup(&opts)
	if err != nil {
		return err
	}
	pol, err := setupPolicy(opts)
	if err != nil {
		return err
	}
	stored, ca, err := a.loadCA(opts.ca, opts.passphrase)
	if err != nil {
		return err
	}
	if err := notRotating(stored); err != nil {
		return err
	}
	out, errOut := a.cli.Out(), a.cli.Err()

	s, err := engine.Dial(ctx, dest, engine.SSHOptions{Config: opts.sshConfig})
	if err != nil {
		return sshHint(err, dest, opts.sshConfig)
	}
	defer s.Close()
	facts, err := engine.Inspect(ctx, s, opts.port, opts.tlsDir)
	if err != nil {
		return err
	}
	name, err := engineName(opts.name, facts.Hostname)
	if err != nil {
		return err
	}
	sans, err := engine.SANs(s.HostName, facts, opts.sans)
	if err != nil {
		return err
	}
	plan, err := engine.PlanSetup(facts, engine.Request{
		Port: opts.port, TLSDir: opts.tlsDir, CA: stored.Cert, SANs: sans,
		RestartContainers: opts.restartContainers, Force: opts.force,
		RenewWithin: 30 * 24 * time.Hour, Now: time.Now(),
	})
	if err != nil {
		return engineHint(err, name)
	}
	endpoint := "tcp://" + net.JoinHostPort(s.HostName, fmt.Sprint(opts.port))

	records := a.engines()
	rec, recErr := records.Get(name)
	existing, ctxErr := a.contexts().Get(name)
	if ctxErr != nil {
		existing = nil
	}
	haveContext := existing != nil && !opts.force
	if !opts.force {
		if err := checkReuse(name, dest, stored, rec, recErr, ctxErr); err != nil {
			return err
		}
	}

	if haveContext && len(opts.groups) > 0 {
		return fmt.Errorf("--group: context %q is kept as it is, with the groups of its certificate; add --force to make it again with these groups", name)
	}
	if !printSetupPlan(out, opts, name, endpoint, stored.Name, dest, facts, plan, haveContext) {
		return nil
	}

	target, client, err := a.engineIdentity(ctx, opts, name, endpoint, stored, existing)
	if err != nil {
		return err
	}
	su := engine.Setup{
		Engine: engine.Record{Name: name, Dest: dest.String(), SSH: engine.SSHOptions{Config: opts.sshConfig}, Context: name,
			CA: stored.Name, CAFingerprint: pki.Fingerprint(stored.Cert), Host: endpoint, Port: opts.port, TLSDir: opts.tlsDir,
			SANs: sans.Strings()},
		Facts: facts, Plan: plan, Issuer: a.recorded(ctx, stored, ca, "engine "+name), Lifetime: life, ReadyTimeout: opts.wait, Verify: probe.ServesAPI(target),
		Recorded: recErr == nil,
		Changing: func() { fmt.Fprintf(errOut, "Changing %s…\n", dest.Host) },
	}
	if client != nil {
		su.Context = func() error {
			_, err := a.createContext(adoption{name: name, host: endpoint, description: "engine " + dest.String(),
				caCert: client.caCert, cert: client.cert, key: client.key, caName: client.caName, agent: opts.agent, force: opts.force || ctxErr == nil})
			return err
		}
	}
	done, err := records.Setup(ctx, s, su)
	var ce *engine.ContextError
	if errors.As(err, &ce) {
		return fmt.Errorf("%w (run the command again)", err)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Engine %s serves mutual TLS on %s (server certificate until %s). Use it: docker context use %s\n",
		name, endpoint, done.NotAfter.Format("2006-01-02"), name)
	if pol == nil {
		return nil
	}
	return a.setupEnginePolicy(ctx, done, pol, opts.passphrase)
}

// setupEnginePolicy puts the policy of engine setup --grant in force on
// the engine just set up.
func (a *app) setupEnginePolicy(ctx context.Context, done *engine.Record, pol *policyToSet, pass passphraseOptions) error {
	crls, err := a.engineCRLs(ctx, []*engine.Record{done}, pass)
	if err != nil {
		return fmt.Errorf("the engine is set up, its policy is not: %w (docker tls engine policy set %s)", err, done.Name)
	}
	msg, err := a.setPolicy(ctx, done, pol.edit, pol.binary, crls[done.CA], enginePolicySetOptions{})
	if err != nil {
		return fmt.Errorf("the engine is set up, its policy is not: %w (docker tls engine policy set %s)", err, done.Name)
	}
	fmt.Fprintf(a.cli.Out(), "%s: %s\n", done.Name, msg)
	return nil
}

// setupPolicy is engine setup's --grant, checked before anything is
// written: the grants parse, the binary is a Linux executable, and the new
// context's identity is an admin.
func setupPolicy(opts engineSetupOptions) (*policyToSet, error) {
	if len(opts.grants) == 0 {
		if opts.pluginBinary != "" {
			return nil, errors.New("--plugin-binary goes with --grant: it is the binary that enforces the policy")
		}
		return nil, nil
	}
	edit, err := parsePolicyEdit(enginePolicySetOptions{grants: opts.grants})
	if err != nil {
		return nil, err
	}
	cn := strings.TrimSpace(opts.clientName)
	if cn == "" {
		cn = defaultClientName()
	}
	p := policy.Policy{Grants: edit.Grants}
	if err := p.KeepsAdmin([]policy.Identity{{User: cn, Groups: opts.groups}}); err != nil {
		return nil, fmt.Errorf("--grant: the policy gives the engine's context (user:%s%s) no admin role, and nobody could change it from here: grant user:%s=admin, or set the policy later with docker tls engine policy set --force", cn, groupsNote(opts.groups), cn)
	}
	bin, err := pluginBinary(opts.pluginBinary)
	if err != nil {
		return nil, err
	}
	return &policyToSet{edit, bin}, nil
}

// policyToSet is a policy to put in force with the binary that enforces it.
type policyToSet struct {
	edit   authz.Edit
	binary []byte
}

func groupsNote(groups []string) string {
	if len(groups) == 0 {
		return ""
	}
	return ", groups " + strings.Join(groups, ", ")
}

// engineIdentity is the identity the check after the restart uses: the
// context's when it is kept, else a new client certificate, which the new
// context gets.
func (a *app) engineIdentity(ctx context.Context, opts engineSetupOptions, name, endpoint string, stored *castore.CA, existing *contexts.Context) (probe.Target, *issuedClient, error) {
	target := probe.Target{Name: name, Host: endpoint, CA: stored.Cert}
	if existing != nil && !opts.force {
		t := a.contextTargets().TargetOf(existing)
		target.Cert, target.Key = t.Cert, t.Key
		return target, nil, nil
	}
	// The new context's key store, checked before its certificate is
	// issued and long before the host changes.
	if _, err := a.defaultKeystore(); err != nil {
		return probe.Target{}, nil, err
	}
	client, err := a.issueClient(ctx, clientSpec{ca: opts.ca, name: opts.clientName, groups: opts.groups, keyType: string(pki.DefaultKeyType), passphrase: opts.passphrase, dest: "context " + name})
	if err != nil {
		return probe.Target{}, nil, err
	}
	target.Cert, target.Key = client.cert, client.key
	return target, client, nil
}

// checkEngineSetup checks engine setup's flags before anything is read or
// written, and makes --ssh-config absolute (it is remembered for the
// engine, and later commands run from other directories).
func checkEngineSetup(opts *engineSetupOptions) (engine.Dest, time.Duration, error) {
	dest, err := engine.ParseDest(opts.dest)
	if err != nil {
		return engine.Dest{}, 0, err
	}
	if opts.port < 1 || opts.port > 65535 {
		return engine.Dest{}, 0, fmt.Errorf("--port %d is not a TCP port", opts.port)
	}
	if err := checkWait(opts.wait); err != nil {
		return engine.Dest{}, 0, err
	}
	if err := engine.CheckTLSDir(opts.tlsDir); err != nil {
		return engine.Dest{}, 0, fmt.Errorf("--tls-dir %w", err)
	}
	if opts.sshConfig != "" {
		abs, err := sshConfigFile(opts.sshConfig)
		if err != nil {
			return engine.Dest{}, 0, err
		}
		opts.sshConfig = abs
	}
	if err := pki.CheckGroups(opts.groups); err != nil {
		return engine.Dest{}, 0, fmt.Errorf("--group: %w", err)
	}
	if opts.name != "" {
		if err := contexts.ValidateName(opts.name); err != nil {
			return engine.Dest{}, 0, err
		}
	}
	life, err := lifetime(opts.days)
	if err != nil {
		return engine.Dest{}, 0, err
	}
	if life == 0 {
		life = pki.DefaultServerLifetime
	}
	return dest, life, nil
}

// hostContextName is the context name a host's own name gives: its first
// label.
func hostContextName(hostname string) (string, error) {
	name := strings.SplitN(hostname, ".", 2)[0]
	if err := contexts.ValidateName(name); err != nil {
		return "", fmt.Errorf("the host's name %q cannot name a context: give --name", hostname)
	}
	return name, nil
}

// checkReuse refuses to take over a name that is another context, another
// host's engine, or an engine of another CA, unless --force.
func checkReuse(name string, dest engine.Dest, stored *castore.CA, rec *engine.Record, recErr, ctxErr error) error {
	switch {
	case ctxErr == nil && recErr != nil:
		return fmt.Errorf("context %q already exists and is not an engine docker tls set up: give --name another, or --force to replace it", name)
	case recErr == nil && rec.Dest != dest.String():
		return fmt.Errorf("engine %q is %s, not %s: give --name another, or --force", name, rec.Dest, dest)
	case recErr == nil && rec.CAFingerprint != pki.Fingerprint(stored.Cert):
		// Its context's client certificate is from the other CA: both must
		// move together.
		return fmt.Errorf("engine %q was set up with CA %q, not this CA %q: run again with --force to move it (a new server certificate and a new client certificate for its context)", name, rec.CA, stored.Name)
	}
	return nil
}

// sshConfigFile checks an --ssh-config path (an existing regular file:
// ssh -F ignores a directory without a word) and returns it absolute.
func sshConfigFile(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("--ssh-config %q: %w", p, err)
	}
	fi, err := os.Stat(abs)
	switch {
	case err != nil:
		return "", fmt.Errorf("--ssh-config %q: %w: give an ssh_config file", p, errors.Unwrap(err))
	case !fi.Mode().IsRegular():
		return "", fmt.Errorf("--ssh-config %q is not a file: give an ssh_config file (ssh -F reads one file)", p)
	}
	return abs, nil
}

// sshHint adds the command that fixes an ssh failure.
func sshHint(err error, d engine.Dest, config string) error {
	f := ""
	if config != "" {
		f = " -F " + config
	}
	port := ""
	if d.Port != "" {
		port = " -p " + d.Port
	}
	var hk *engine.HostKeyError
	var sp *engine.SudoPasswordError
	switch {
	case errors.As(err, &hk) && hk.Changed:
		return fmt.Errorf("%w: nothing was sent; if the host was really re-installed, remove the old key (ssh-keygen -R %s) and accept the new one after checking it", err, d.Host)
	case errors.As(err, &hk):
		return fmt.Errorf("%w: nothing was sent; check the fingerprint on the host (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then accept it with: ssh%s%s -o StrictHostKeyChecking=accept-new %s true", err, f, port, d.Host)
	case errors.As(err, &sp):
		return fmt.Errorf("%w: allow it password-less sudo (e.g. '%s ALL=(ALL) NOPASSWD: ALL' in /etc/sudoers.d/), or connect as root", err, sp.User)
	}
	return err
}

// printSetupPlan shows what engine setup found and will change, and says
// whether to go on: not when all is in place, nor on a dry run.
func printSetupPlan(out io.Writer, opts engineSetupOptions, name, endpoint, caName string, dest engine.Dest, facts *engine.Facts, plan *engine.Plan, haveContext bool) bool {
	printHostFacts(out, dest, facts, plan)
	if plan.UpToDate() && haveContext {
		fmt.Fprintf(out, "Engine %s is set up already (%s, context %s): nothing changed\n", name, endpoint, name)
		return false
	}
	for _, n := range plan.Notes {
		fmt.Fprintln(out, " -", n)
	}
	if !haveContext {
		fmt.Fprintf(out, " - create context %s for %s with a client certificate from CA %q\n", name, endpoint, caName)
	}
	if opts.dryRun {
		fmt.Fprintln(out, "Dry run: nothing was changed")
		return false
	}
	return true
}

// printHostFacts says in one line what engine setup found on the host.
func printHostFacts(out io.Writer, dest engine.Dest, facts *engine.Facts, plan *engine.Plan) {
	version := facts.ServerVersion
	if version == "" {
		version = facts.DockerdVer + " (not running)"
	}
	fmt.Fprintf(out, "%s: %s, dockerd %s, %d running containers, live-restore %s; options go in the %s\n",
		dest.Host, facts.OS, version, facts.Running, onOff(facts.LiveRestore), plan.Mode)
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// engineName is the name engine setup gives the engine and its context:
// --name, or the host's own name.
func engineName(given, hostname string) (string, error) {
	if given != "" {
		return given, nil
	}
	return hostContextName(hostname)
}
