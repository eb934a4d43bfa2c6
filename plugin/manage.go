package plugin

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command/formatter"
	flagsHelper "github.com/docker/cli/cli/flags"
	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/agent"
	"github.com/docker-tls/docker-tls/contexts"
	"github.com/docker-tls/docker-tls/pki"
)

// completeContextNames completes docker-tls contexts.
func completeContextNames(e *env, managedOnly bool) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		list, _, err := e.contexts().List()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		var names []string
		for _, c := range list {
			if !managedOnly || c.Managed() {
				names = append(names, c.Name)
			}
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

// managedContext returns a context docker-tls created, or says why not.
func (e *env) managedContext(name string) (*contexts.Context, error) {
	c, err := e.contexts().Get(name)
	if err != nil {
		return nil, err
	}
	if !c.Managed() {
		return nil, fmt.Errorf("context %q was not created by docker tls (no %s field); manage it with docker context, or adopt its files with docker tls import", name, contexts.Field)
	}
	return c, nil
}

// contextView is how ls shows a context, and its JSON.
type contextView struct {
	Name        string
	Description string
	Host        string
	Current     bool
	Managed     bool
	Client      string
	Issuer      string
	NotAfter    time.Time
	DaysLeft    int
	KeyStore    string
	KeyID       string `json:",omitempty"`
	Locked      bool
	CA          string `json:",omitempty"`
	Agent       string `json:",omitempty"` // agent mode: "running" or "stopped"
	Error       string `json:",omitempty"`
}

type lsOptions struct {
	format string
	quiet  bool
	all    bool
}

func newListCommand(e *env) *cobra.Command {
	var opts lsOptions
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List Docker contexts that use TLS certificates",
		Long: `List the Docker contexts that use TLS client certificates: host, client
certificate subject and issuer, days left, and where the key lives
(keyring, file, or "context" for contexts made with docker context create).
A locked context (key.pem copy removed) cannot be used by the docker CLI
until docker tls unlock. * marks the current context.`,
		Example: `  docker tls ls
  docker tls ls --format json
  docker tls ls --format '{{.Name}} {{.DaysLeft}}'`,
		Args: cli.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runList(e, opts)
		},
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	f := cmd.Flags()
	f.StringVar(&opts.format, "format", "", flagsHelper.FormatHelp)
	f.BoolVarP(&opts.quiet, "quiet", "q", false, "Only show context names")
	f.BoolVarP(&opts.all, "all", "a", false, "Also show contexts without TLS client certificates")
	return cmd
}

const contextTableFormat = "table {{.Name}}{{if .Current}} *{{end}}\t{{.Host}}\t{{.Client}}\t{{.Issuer}}\t{{.Expires}}\t{{.Key}}"

func runList(e *env, opts lsOptions) error {
	store := e.contexts()
	list, errs, err := store.List()
	if err != nil {
		return err
	}
	current := e.cli.CurrentContext()
	now := time.Now()
	views := make([]contextView, 0, len(list))
	var agentUp *bool // asked once, only if an agent-mode context is listed
	for _, c := range list {
		v := contextView{Name: c.Name, Description: c.Description, Host: c.RemoteHost(), Current: c.Name == current, Managed: c.Managed()}
		switch {
		case c.Managed():
			v.Client, v.Issuer, v.NotAfter = c.TLS.Subject, c.TLS.Issuer, c.TLS.NotAfter
			v.KeyStore, v.KeyID, v.Locked, v.CA = c.TLS.KeyStore, c.TLS.KeyID, c.Locked(), c.TLS.CA
			if c.AgentMode() {
				v.Agent = "stopped"
				if agentUp == nil {
					up := agent.Running(e.agentDir())
					agentUp = &up
				}
				if *agentUp {
					v.Agent = "running"
				}
			}
		case c.HasFile(contexts.CertFile):
			// A context made by docker context create: read its certificate.
			v.KeyStore = "context"
			data, err := store.ReadFile(c.Name, contexts.CertFile)
			if err == nil {
				if parsed, perr := pki.ParseCertificate(data); perr == nil {
					v.Client, v.Issuer, v.NotAfter = parsed.Subject.String(), parsed.Issuer.String(), parsed.NotAfter
				} else {
					v.Error = perr.Error()
				}
			} else {
				v.Error = err.Error()
			}
			v.Locked = !c.HasFile(contexts.KeyFile)
		case !opts.all:
			continue
		}
		if !v.NotAfter.IsZero() {
			v.DaysLeft = int(v.NotAfter.Sub(now).Hours() / 24)
		}
		views = append(views, v)
	}
	for name, err := range errs {
		views = append(views, contextView{Name: name, Error: err.Error()})
	}
	format := opts.format
	switch {
	case opts.quiet:
		format = "{{.Name}}"
	case format == "" || format == formatter.TableFormatKey:
		format = contextTableFormat
	}
	ctx := formatter.Context{Output: e.cli.Out(), Format: formatter.Format(format)}
	return ctx.Write(newContextListContext(), func(write func(formatter.SubContext) error) error {
		for i := range views {
			if err := write(&contextListContext{v: &views[i]}); err != nil {
				return err
			}
		}
		return nil
	})
}

type contextListContext struct {
	formatter.HeaderContext
	v *contextView
}

func newContextListContext() *contextListContext {
	c := &contextListContext{}
	c.Header = formatter.SubHeaderContext{
		"Name": "NAME", "Host": "HOST", "Client": "CLIENT", "Issuer": "ISSUER", "Expires": "EXPIRES", "Key": "KEY",
		"Description": "DESCRIPTION", "DaysLeft": "DAYS LEFT", "KeyStore": "KEY STORE", "Locked": "LOCKED",
		"Managed": "MANAGED", "NotAfter": "NOT AFTER", "Error": "ERROR", "CA": "CA", "KeyID": "KEY ID", "Agent": "AGENT",
	}
	return c
}

func (c *contextListContext) MarshalJSON() ([]byte, error) { return json.Marshal(c.v) }
func (c *contextListContext) Name() string                 { return c.v.Name }
func (c *contextListContext) Description() string          { return c.v.Description }
func (c *contextListContext) Host() string                 { return c.v.Host }
func (c *contextListContext) Current() bool                { return c.v.Current }
func (c *contextListContext) Managed() bool                { return c.v.Managed }
func (c *contextListContext) Client() string               { return commonName(c.v.Client) }
func (c *contextListContext) Issuer() string               { return commonName(c.v.Issuer) }
func (c *contextListContext) DaysLeft() int                { return c.v.DaysLeft }
func (c *contextListContext) KeyStore() string             { return c.v.KeyStore }
func (c *contextListContext) KeyID() string                { return c.v.KeyID }
func (c *contextListContext) Locked() bool                 { return c.v.Locked }
func (c *contextListContext) CA() string                   { return c.v.CA }
func (c *contextListContext) Error() string                { return c.v.Error }
func (c *contextListContext) NotAfter() string {
	if c.v.NotAfter.IsZero() {
		return ""
	}
	return c.v.NotAfter.Format(time.RFC3339)
}

func (c *contextListContext) Expires() string {
	switch {
	case c.v.Error != "":
		return "error: " + formatter.Ellipsis(c.v.Error, 40)
	case c.v.NotAfter.IsZero():
		return "-"
	case c.v.DaysLeft < 0 || time.Now().After(c.v.NotAfter):
		return "EXPIRED " + c.v.NotAfter.Format("2006-01-02")
	}
	if time.Until(c.v.NotAfter) < renewWarnWithin {
		return fmt.Sprintf("%s (%dd, renew soon)", c.v.NotAfter.Format("2006-01-02"), c.v.DaysLeft)
	}
	return fmt.Sprintf("%s (%dd)", c.v.NotAfter.Format("2006-01-02"), c.v.DaysLeft)
}

func (c *contextListContext) Agent() string { return c.v.Agent }

func (c *contextListContext) Key() string {
	switch {
	case c.v.Agent != "":
		return c.v.KeyStore + " (agent: " + c.v.Agent + ")"
	case c.v.KeyStore == "":
		return "-"
	case c.v.Locked && c.v.Managed:
		return c.v.KeyStore + " (locked)"
	case c.v.Locked:
		return "missing"
	}
	return c.v.KeyStore
}

// commonName shows "CN=alice" as "alice" and leaves longer names whole.
func commonName(dn string) string {
	if cn, ok := strings.CutPrefix(dn, "CN="); ok && !strings.Contains(cn, ",") {
		return cn
	}
	return dn
}

type rmOptions struct {
	force bool
}

func newRemoveCommand(e *env) *cobra.Command {
	var opts rmOptions
	cmd := &cobra.Command{
		Use:     "rm NAME [NAME...]",
		Aliases: []string{"remove"},
		Short:   "Remove docker-tls contexts and their keys",
		Long: `Remove Docker contexts created by docker tls, with their client keys in the
key store. Asks for confirmation on a terminal; elsewhere --force is
required. The current context is removed only with --force.`,
		Example: `  docker tls rm lab
  docker tls rm --force old-1 old-2`,
		Args: cli.RequiresMinArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRemove(e, opts, args)
		},
		ValidArgsFunction: completeContextNames(e, true),
	}
	cmd.Flags().BoolVarP(&opts.force, "force", "f", false, "Remove without confirmation, including the current context")
	return cmd
}

func runRemove(e *env, opts rmOptions, names []string) error {
	for _, n := range names {
		c, err := e.contexts().Get(n)
		switch {
		case errors.Is(err, contexts.ErrNotFound):
			return err
		case err != nil && !opts.force:
			return fmt.Errorf("%w: docker tls rm --force %s removes it", err, n)
		case err != nil:
			continue // damaged: removed with --force
		case !c.Managed():
			return fmt.Errorf("context %q was not created by docker tls (no %s field); remove it with docker context rm", n, contexts.Field)
		case c.Name == e.cli.CurrentContext() && !opts.force:
			return fmt.Errorf("context %q is in use (docker context use): switch away first, or use --force", c.Name)
		}
	}
	if !opts.force {
		if !e.cli.In().IsTerminal() {
			return errors.New("removing deletes the client key for good: confirm with --force")
		}
		fmt.Fprintf(e.cli.Err(), "Remove %s and their keys from the key store? [y/N] ", strings.Join(names, ", "))
		line, _ := bufio.NewReader(e.cli.In()).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
			return errors.New("not removed")
		}
	}
	var errs []error
	for _, n := range names {
		c, err := e.contexts().Remove(n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if c != nil && c.AgentMode() {
			_, _, _ = agent.Call(e.agentDir(), "reload") // the agent closes its socket and forgets the key now
		}
		fmt.Fprintln(e.cli.Out(), n)
	}
	return errors.Join(errs...)
}

func newLockCommand(e *env) *cobra.Command {
	var toAgent bool
	cmd := &cobra.Command{
		Use:   "lock NAME",
		Short: "Remove a context's on-disk key copy, keeping the key in the key store",
		Long: `Remove the key.pem copy from a docker-tls context. The key stays in the key
store; until docker tls unlock NAME, the docker CLI cannot use the context
(it fails to load the TLS key), and docker tls ls shows it as locked.

With --agent the context is converted to agent mode for good: no key file,
and the docker CLI reaches the engine through docker tls agent.`,
		Example: `  docker tls lock prod
  docker tls unlock prod
  docker tls lock --agent prod`,
		Args: cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if toAgent {
				c, err := e.managedContext(args[0])
				if err != nil {
					return err
				}
				return e.convertToAgent(c)
			}
			return runLock(e, args[0])
		},
		ValidArgsFunction: completeContextNames(e, true),
	}
	cmd.Flags().BoolVar(&toAgent, "agent", false, "Convert the context to agent mode (no key file at all)")
	return cmd
}

func newUnlockCommand(e *env) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "unlock NAME",
		Short: "Restore a locked context's key copy from the key store",
		Long: `Write the context's key.pem copy again from the key store, after checking
that the stored key is the key of the context's certificate. With --force
it also replaces a key.pem that is there but damaged or not the key of the
certificate, which docker tls verify reports as a client-key failure.`,
		Example: `  docker tls unlock prod
  docker tls unlock --force prod`,
		Args: cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runUnlock(e, args[0], force)
		},
		ValidArgsFunction: completeContextNames(e, true),
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Also replace a key.pem that does not match the certificate")
	return cmd
}

func runLock(e *env, name string) error {
	err := e.contexts().Lock(name)
	switch {
	case errors.Is(err, contexts.ErrAlreadyLocked):
		fmt.Fprintf(e.cli.Out(), "Context %q is already locked\n", name)
		return nil
	case err != nil:
		return err
	}
	fmt.Fprintf(e.cli.Out(), "Locked context %q: the docker CLI cannot use it until docker tls unlock %s\n", name, name)
	return nil
}

func runUnlock(e *env, name string, force bool) error {
	err := e.contexts().Unlock(name, force)
	switch {
	case errors.Is(err, contexts.ErrNotLocked):
		fmt.Fprintf(e.cli.Out(), "Context %q is not locked\n", name)
		return nil
	case err != nil:
		return err
	}
	fmt.Fprintf(e.cli.Out(), "Unlocked context %q\n", name)
	return nil
}

type envOptions struct {
	shell string
}

func newEnvCommand(e *env) *cobra.Command {
	var opts envOptions
	cmd := &cobra.Command{
		Use:   "env NAME",
		Short: "Print DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH for a context",
		Long: `Print shell commands that point the docker CLI (and other Docker API
clients) at a context's engine without using contexts: DOCKER_HOST,
DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH (the context's own TLS directory,
in the ca.pem/cert.pem/key.pem layout). No key material is printed.`,
		Example: `  eval "$(docker tls env prod)"                      # bash, zsh
  docker tls env prod --shell fish | source            # fish
  docker tls env prod --shell powershell | Invoke-Expression`,
		Args: cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runEnv(e, opts, args[0])
		},
		ValidArgsFunction: completeContextNames(e, false),
	}
	cmd.Flags().StringVar(&opts.shell, "shell", "", "Shell syntax: bash, zsh, sh, fish, powershell, cmd (default: from $SHELL)")
	_ = cmd.RegisterFlagCompletionFunc("shell", cobra.FixedCompletions([]string{"bash", "zsh", "sh", "fish", "powershell", "cmd"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func runEnv(e *env, opts envOptions, name string) error {
	c, err := e.contexts().Get(name)
	if err != nil {
		return err
	}
	if c.AgentMode() {
		fmt.Fprintf(e.cli.Out(), "export DOCKER_HOST=%s\n# agent mode: no TLS variables; the agent must be running (docker tls agent)\n", shQuote(c.Host))
		return nil
	}
	if !c.HasFile(contexts.CertFile) {
		return fmt.Errorf("context %q has no TLS client certificate", name)
	}
	if c.Locked() {
		fmt.Fprintf(e.cli.Err(), "warning: context %q is locked; run docker tls unlock %s first\n", name, name)
	}
	shell := opts.shell
	if shell == "" {
		shell = filepath.Base(os.Getenv("SHELL"))
		if runtime.GOOS == "windows" && shell == "." {
			shell = "powershell"
		}
	}
	vars := [][2]string{{"DOCKER_HOST", c.Host}, {"DOCKER_TLS_VERIFY", "1"}, {"DOCKER_CERT_PATH", c.TLSDir}}
	return printEnv(e, name, opts.shell, vars)
}

// printEnv prints variable assignments in the syntax of a shell (from
// $SHELL when none is given).
func printEnv(e *env, name, shell string, vars [][2]string) error {
	if shell == "" {
		shell = filepath.Base(os.Getenv("SHELL"))
		if runtime.GOOS == "windows" && shell == "." {
			shell = "powershell"
		}
	}
	out := e.cli.Out()
	switch shell {
	case "fish":
		for _, v := range vars {
			fmt.Fprintf(out, "set -gx %s %s;\n", v[0], fishQuote(v[1]))
		}
		fmt.Fprintf(out, "# Run this command to configure your shell:\n# docker tls env %s --shell fish | source\n", name)
	case "powershell", "pwsh":
		for _, v := range vars {
			fmt.Fprintf(out, "$Env:%s = \"%s\"\n", v[0], strings.ReplaceAll(v[1], "\"", "`\""))
		}
		fmt.Fprintf(out, "# Run this command to configure your shell:\n# & docker tls env %s --shell powershell | Invoke-Expression\n", name)
	case "cmd":
		for _, v := range vars {
			fmt.Fprintf(out, "SET %s=%s\n", v[0], v[1])
		}
	case "bash", "zsh", "sh", "dash", "ksh", "", ".":
		for _, v := range vars {
			fmt.Fprintf(out, "export %s=%s\n", v[0], shQuote(v[1]))
		}
		fmt.Fprintf(out, "# Run this command to configure your shell:\n# eval \"$(docker tls env %s)\"\n", name)
	default:
		return fmt.Errorf("unknown shell %q: use --shell bash, zsh, sh, fish, powershell or cmd", shell)
	}
	return nil
}

func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, "'", `\'`).Replace(s) + "'"
}
