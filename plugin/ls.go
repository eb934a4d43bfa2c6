package plugin

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	flagsHelper "github.com/docker/cli/cli/flags"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command/formatter"
	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/agent"
	"github.com/docker-tls/docker-tls/contexts"
	"github.com/docker-tls/docker-tls/internal/output"
	"github.com/docker-tls/docker-tls/pki"
)

// contextView is how ls shows a context, and its JSON.
type contextView struct {
	Name        string
	Description string
	Host        string
	Current     bool
	Managed     bool
	Client      string
	Groups      []string `json:",omitempty"`
	Issuer      string
	NotAfter    time.Time
	DaysLeft    int
	KeyStore    string
	KeyID       string `json:",omitempty"`
	Locked      bool
	CA          string `json:",omitempty"`
	Agent       string `json:",omitempty"` // agent mode: "running" or "stopped"
	SignIn      bool   `json:",omitempty"` // enrolled by signing in: renew signs in again
	CAURL       string `json:",omitempty"` // the CA service it enrolled with
	Catalog     string `json:",omitempty"` // the CA service whose catalog it came from (enroll --engines)
	Imported    bool   `json:",omitempty"`
	Error       string `json:",omitempty"`
}

type lsOptions struct {
	format string
	quiet  bool
	all    bool
}

func newListCommand(a *app) *cobra.Command {
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
			return runList(a, opts)
		},
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	f := cmd.Flags()
	f.StringVar(&opts.format, "format", "", flagsHelper.FormatHelp)
	f.BoolVarP(&opts.quiet, "quiet", "q", false, "Only show context names")
	f.BoolVarP(&opts.all, "all", "a", false, "Also show contexts without TLS client certificates")
	return cmd
}

func runList(a *app, opts lsOptions) error {
	store := a.contexts()
	list, errs, err := store.List()
	if err != nil {
		return err
	}
	current := a.cli.CurrentContext()
	now := time.Now()
	views := make([]contextView, 0, len(list))
	var agentUp *bool // asked once, only if an agent-mode context is listed
	for _, c := range list {
		v := contextView{Name: c.Name, Description: c.Description, Host: c.RemoteHost(), Current: c.Name == current, Managed: c.Managed()}
		switch {
		case c.Managed():
			v.managed(c)
			if c.AgentMode() {
				if agentUp == nil {
					up := agent.Running(a.agentDir())
					agentUp = &up
				}
				v.Agent = "stopped"
				if *agentUp {
					v.Agent = "running"
				}
			}
		case c.HasFile(contexts.CertFile):
			v.madeByDocker(store, c)
		case !opts.all:
			continue
		}
		if !v.NotAfter.IsZero() {
			v.DaysLeft = int(v.NotAfter.Sub(now).Hours() / 24)
		}
		views = append(views, v)
	}
	for name, err := range errs {
		views = append(views, contextView{Name: name, Error: hint(a.configDir(), err).Error()})
	}
	l := output.Listing[contextView]{Table: contextTableFormat, Quiet: "{{.Name}}", Header: newContextListContext(),
		Row: func(v *contextView, _ bool) formatter.SubContext { return &contextListContext{v: v} }}
	if err := l.Write(a.cli.Out(), opts.format, opts.quiet, views); err != nil {
		return err
	}
	// Engines whose server certificate needs renewing, on stderr so that
	// --format output stays clean.
	if recs, _, err := a.engines().List(); err == nil {
		for _, r := range recs {
			if msg := engineExpiryNotice(r, now); msg != "" {
				fmt.Fprintln(a.cli.Err(), "warning:", msg)
			}
		}
	}
	// Automatic renewals that fail, recorded by the agent: one small file
	// per failing context, so only those are read.
	for _, name := range a.renewFailures().Failing() {
		if f, err := a.renewFailures().Get(name); err == nil {
			fmt.Fprintln(a.cli.Err(), "warning:", f.Message(name))
		}
	}
	return nil
}

// managed fills in what docker tls recorded of a context it made.
func (v *contextView) managed(c *contexts.Context) {
	v.Client, v.Groups, v.Issuer, v.NotAfter = c.TLS.Subject, c.TLS.Groups, c.TLS.Issuer, c.TLS.NotAfter
	v.KeyStore, v.KeyID, v.Locked, v.CA, v.SignIn = c.TLS.KeyStore, c.TLS.KeyID, c.Locked(), c.TLS.CA, c.TLS.SignIn
	v.CAURL, v.Catalog, v.Imported = c.TLS.CAURL, c.TLS.Catalog, c.TLS.Imported
}

// madeByDocker fills in a context made by docker context create, from
// its certificate.
func (v *contextView) madeByDocker(store *contexts.Store, c *contexts.Context) {
	v.KeyStore = "context"
	v.Locked = !c.HasFile(contexts.KeyFile)
	data, err := store.ReadFile(c.Name, contexts.CertFile)
	if err != nil {
		v.Error = err.Error()
		return
	}
	parsed, err := pki.ParseCertificate(data)
	if err != nil {
		v.Error = err.Error()
		return
	}
	v.Client, v.Groups, v.Issuer, v.NotAfter = parsed.Subject.String(), pki.GroupsOf(parsed), parsed.Issuer.String(), parsed.NotAfter
}

type contextListContext struct {
	formatter.HeaderContext
	v *contextView
}

func newContextListContext() *contextListContext {
	c := &contextListContext{}
	c.Header = formatter.SubHeaderContext{
		"Name": "NAME", "Host": "HOST", "Client": "CLIENT", "Groups": "GROUPS", "Issuer": "ISSUER", "Expires": "EXPIRES", "Key": "KEY",
		"Description": "DESCRIPTION", "DaysLeft": "DAYS LEFT", "KeyStore": "KEY STORE", "Locked": "LOCKED",
		"Managed": "MANAGED", "NotAfter": "NOT AFTER", "Error": "ERROR", "CA": "CA", "KeyID": "KEY ID", "Agent": "AGENT", "Origin": "ORIGIN",
	}
	return c
}

const contextTableFormat = "table {{.Name}}{{if .Current}} *{{end}}\t{{.Host}}\t{{.Client}}\t{{.Groups}}\t{{.Issuer}}\t{{.Expires}}\t{{.Key}}\t{{.Origin}}"

func (c *contextListContext) MarshalJSON() ([]byte, error) { return json.Marshal(c.v) }

func (c *contextListContext) Name() string { return c.v.Name }

func (c *contextListContext) Description() string { return c.v.Description }

func (c *contextListContext) Host() string { return c.v.Host }

func (c *contextListContext) Current() bool { return c.v.Current }

func (c *contextListContext) Managed() bool { return c.v.Managed }

func (c *contextListContext) Client() string { return contexts.SubjectCN(c.v.Client) }

func (c *contextListContext) Groups() string { return strings.Join(c.v.Groups, ",") }

func (c *contextListContext) Issuer() string { return commonName(c.v.Issuer) }

func (c *contextListContext) DaysLeft() int { return c.v.DaysLeft }

func (c *contextListContext) KeyStore() string { return c.v.KeyStore }

func (c *contextListContext) KeyID() string { return c.v.KeyID }

func (c *contextListContext) Locked() bool { return c.v.Locked }

func (c *contextListContext) CA() string { return c.v.CA }

func (c *contextListContext) Error() string { return c.v.Error }

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
	case (c.v.DaysLeft < 0 || time.Now().After(c.v.NotAfter)) && c.v.SignIn:
		return "EXPIRED " + c.v.NotAfter.Format("2006-01-02") + " (sign in again: docker tls renew " + c.v.Name + ")"
	case c.v.DaysLeft < 0 || time.Now().After(c.v.NotAfter):
		return "EXPIRED " + c.v.NotAfter.Format("2006-01-02")
	}
	if time.Until(c.v.NotAfter) < renewWarnWithin {
		return fmt.Sprintf("%s (%dd, renew soon)", c.v.NotAfter.Format("2006-01-02"), c.v.DaysLeft)
	}
	return fmt.Sprintf("%s (%dd)", c.v.NotAfter.Format("2006-01-02"), c.v.DaysLeft)
}

func (c *contextListContext) Agent() string { return c.v.Agent }

// Origin is where the context's certificate comes from: a catalog of
// engines, a sign-in or an enrollment at a CA service, a local CA, an
// import, or docker context create.
func (c *contextListContext) Origin() string {
	v := c.v
	switch {
	case v.Catalog != "":
		return "catalog " + serviceHost(v.Catalog)
	case v.SignIn:
		return "sign-in " + serviceHost(v.CAURL)
	case v.CAURL != "":
		return "enrolled " + serviceHost(v.CAURL)
	case v.CA != "":
		return "ca " + v.CA
	case v.Imported:
		return "imported"
	case v.KeyStore == "context":
		return "docker context"
	}
	return "-"
}

// serviceHost is the first HOST:PORT of a CA service URL (replicas
// separated by commas), short enough for a table.
func serviceHost(raw string) string {
	first, _, _ := strings.Cut(raw, ",")
	if u, err := url.Parse(strings.TrimSpace(first)); err == nil && u.Host != "" {
		return u.Host
	}
	return first
}

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
