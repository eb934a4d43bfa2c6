package plugin

import (
	"encoding/json"
	"fmt"
	"time"

	flagsHelper "github.com/docker/cli/cli/flags"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command/formatter"
	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/castore"
	"github.com/docker-tls/docker-tls/internal/output"
	"github.com/docker-tls/docker-tls/pki"
)

// caView is how a CA is shown by ls and inspect (and their JSON).
type caView struct {
	Name        string
	Subject     string
	Issuer      string
	Serial      string
	KeyType     string
	NotBefore   time.Time
	NotAfter    time.Time
	DaysLeft    int
	Fingerprint string
	KeyStore    string
	KeyID       string
	Imported    bool
	Path        string
	// NextFingerprint is the new CA of a rotation in progress (ca rotate).
	NextFingerprint string `json:",omitempty"`
	Error           string `json:",omitempty"`
}

func newCAView(c *castore.CA, now time.Time) caView {
	next := ""
	if c.NextCert != nil {
		next = pki.Fingerprint(c.NextCert)
	}
	return caView{
		NextFingerprint: next,
		Name:            c.Name,
		Subject:         c.Cert.Subject.String(),
		Issuer:          c.Cert.Issuer.String(),
		Serial:          fmt.Sprintf("%x", c.Cert.SerialNumber),
		KeyType:         pki.DescribeKey(c.Cert.PublicKey),
		NotBefore:       c.Cert.NotBefore,
		NotAfter:        c.Cert.NotAfter,
		DaysLeft:        int(c.Cert.NotAfter.Sub(now).Hours() / 24),
		Fingerprint:     pki.Fingerprint(c.Cert),
		KeyStore:        c.KeyStore,
		KeyID:           c.KeyID,
		Imported:        c.Imported,
		Path:            c.CertPath,
	}
}

type caListOptions struct {
	format string
	quiet  bool
}

func newCAListCommand(a *app) *cobra.Command {
	var opts caListOptions
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List CAs",
		Example: `  docker tls ca ls
  docker tls ca ls --format json
  docker tls ca ls --format '{{.Name}} {{.NotAfter}}'`,
		Args: cli.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCAList(a, opts)
		},
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	f := cmd.Flags()
	f.StringVar(&opts.format, "format", "", flagsHelper.FormatHelp)
	f.BoolVarP(&opts.quiet, "quiet", "q", false, "Only show CA names")
	return cmd
}

func runCAList(a *app, opts caListOptions) error {
	cas, errs, err := a.cas().List()
	if err != nil {
		return err
	}
	now := time.Now()
	views := make([]caView, 0, len(cas)+len(errs))
	for _, c := range cas {
		views = append(views, newCAView(c, now))
	}
	for name, err := range errs {
		views = append(views, caView{Name: name, Error: err.Error()})
	}
	l := output.Listing[caView]{Table: caTableFormat, Quiet: "{{.Name}}", Header: newCAListContext(),
		Row: func(v *caView, _ bool) formatter.SubContext { return &caListContext{v: v} }}
	return l.Write(a.cli.Out(), opts.format, opts.quiet, views)
}

const caTableFormat = "table {{.Name}}\t{{.KeyType}}\t{{.Expires}}\t{{.KeyStore}}\t{{.Fingerprint}}"

type caListContext struct {
	formatter.HeaderContext
	v *caView
}

func newCAListContext() *caListContext {
	c := &caListContext{}
	c.Header = formatter.SubHeaderContext{
		"Name": "NAME", "KeyType": "KEY", "Expires": "EXPIRES", "KeyStore": "KEY STORE",
		"Fingerprint": "FINGERPRINT (SHA-256)", "Subject": "SUBJECT", "DaysLeft": "DAYS LEFT",
		"NotAfter": "NOT AFTER", "NotBefore": "NOT BEFORE", "Error": "ERROR", "Imported": "IMPORTED",
		"Serial": "SERIAL", "Issuer": "ISSUER", "KeyID": "KEY ID", "Path": "PATH",
	}
	return c
}

func (c *caListContext) MarshalJSON() ([]byte, error) { return json.Marshal(c.v) }

func (c *caListContext) Name() string { return c.v.Name }

func (c *caListContext) KeyType() string { return c.v.KeyType }

func (c *caListContext) KeyStore() string { return c.v.KeyStore }

func (c *caListContext) KeyID() string { return c.v.KeyID }

func (c *caListContext) Subject() string { return c.v.Subject }

func (c *caListContext) Issuer() string { return c.v.Issuer }

func (c *caListContext) Serial() string { return c.v.Serial }

func (c *caListContext) Path() string { return c.v.Path }

func (c *caListContext) Imported() bool { return c.v.Imported }

func (c *caListContext) DaysLeft() int { return c.v.DaysLeft }

func (c *caListContext) Error() string { return c.v.Error }

func (c *caListContext) NotBefore() string { return c.v.NotBefore.Format(time.RFC3339) }

func (c *caListContext) NotAfter() string { return c.v.NotAfter.Format(time.RFC3339) }

// Fingerprint is shortened in the table, like docker's IDs; the full value
// is in JSON, inspect and templates on .FullFingerprint.
func (c *caListContext) Fingerprint() string {
	if len(c.v.Fingerprint) > 23 {
		return c.v.Fingerprint[:23] + "…"
	}
	return c.v.Fingerprint
}

func (c *caListContext) FullFingerprint() string { return c.v.Fingerprint }

func (c *caListContext) Expires() string {
	if c.v.Error != "" {
		return "error: " + formatter.Ellipsis(c.v.Error, 40)
	}
	if c.v.DaysLeft < 0 {
		return "expired " + c.v.NotAfter.Format("2006-01-02")
	}
	return fmt.Sprintf("%s (%dd)", c.v.NotAfter.Format("2006-01-02"), c.v.DaysLeft)
}
