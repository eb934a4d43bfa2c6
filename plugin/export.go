package plugin

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/docker/cli/cli"
	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/certdir"
	"github.com/docker-tls/docker-tls/contexts"
	"github.com/docker-tls/docker-tls/internal/fsutil"
	"github.com/docker-tls/docker-tls/pki"
	"github.com/docker-tls/docker-tls/probe"
)

type exportOptions struct {
	format       string
	out          string
	passwordFile string
	legacy       bool
	force        bool
	shell        string
}

func newExportCommand(a *app) *cobra.Command {
	var opts exportOptions
	cmd := &cobra.Command{
		Use:   "export CONTEXT --format env|curl|p12|dir [--out PATH]",
		Short: "Hand a context's certificates to other clients: shell, curl, browsers, a directory",
		Long: `Export what a context holds for clients that do not read Docker contexts:

  env   DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH (with --out DIR, the files are copied there first)
  curl  the curl flags (--cacert, --cert, --key) and the engine's URL
  p12   a PKCS#12 bundle for browsers and Windows (--out FILE, password from --password-file or asked twice)
  dir   ca.pem, cert.pem, key.pem in the DOCKER_CERT_PATH layout (--out DIR)

p12 and dir write the private key (0600): on a terminal they ask first. The
key comes from the key store, so a locked context exports too.`,
		Example: `  eval "$(docker tls export prod --format env)"
  eval "curl $(docker tls export prod --format curl)/_ping"   # the paths are shell-quoted
  docker tls export prod --format p12 --out prod.p12 --password-file pw.txt
  docker tls export prod --format dir --out ./prod-certs`,
		Args: cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runExport(a, opts, args[0])
		},
		ValidArgsFunction: completeContextNames(a, false),
	}
	f := cmd.Flags()
	f.StringVar(&opts.format, "format", "env", "env, curl, p12 or dir")
	f.StringVarP(&opts.out, "out", "o", "", "Where to write (p12: a file, dir and env: a directory)")
	f.StringVar(&opts.passwordFile, "password-file", "", "PKCS#12 password (p12)")
	f.BoolVar(&opts.legacy, "legacy", false, "p12 with 3DES/SHA-1 for old Windows and macOS (weaker)")
	f.BoolVar(&opts.force, "force", false, "Overwrite existing files")
	f.StringVar(&opts.shell, "shell", "", "Shell syntax for env (default: from $SHELL)")
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"env", "curl", "p12", "dir"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// exportable reads a context's CA, certificate and key (the key from the
// key store, or the context's copy for contexts docker tls did not make)
// and says what is missing.
func (a *app) exportable(c *contexts.Context) (probe.Target, error) {
	t := a.contextTargets().TargetOf(c)
	if t.CA == nil || t.Cert == nil {
		return t, fmt.Errorf("context %q has no TLS client certificate", c.Name)
	}
	if t.Key == nil {
		return t, fmt.Errorf("context %q: %s", c.Name, t.KeyProblem)
	}
	return t, nil
}

func runExport(a *app, opts exportOptions, name string) error {
	c, err := a.contexts().Get(name)
	if err != nil {
		return err
	}
	switch opts.format {
	case "env":
		if opts.out == "" {
			return runEnv(a, envOptions{shell: opts.shell}, name)
		}
		if err := a.exportDir(c, opts); err != nil {
			return err
		}
		abs, _ := filepath.Abs(opts.out)
		vars := [][2]string{{"DOCKER_HOST", c.RemoteHost()}, {"DOCKER_TLS_VERIFY", "1"}, {"DOCKER_CERT_PATH", abs}}
		return printEnv(a, name, opts.shell, vars)
	case "curl":
		if c.AgentMode() {
			return fmt.Errorf("context %q is in agent mode: there are no files for curl; use curl --unix-socket %s http://docker/_ping", name, strings.TrimPrefix(c.Host, "unix://"))
		}
		if !c.HasFile(contexts.KeyFile) {
			return fmt.Errorf("context %q is locked: curl needs the key file; docker tls unlock %s, or export --format dir", name, name)
		}
		u := "https://" + strings.TrimPrefix(c.Host, "tcp://")
		fmt.Fprintf(a.cli.Out(), "--cacert %s --cert %s --key %s %s\n",
			shQuote(filepath.Join(c.TLSDir, contexts.CAFile)), shQuote(filepath.Join(c.TLSDir, contexts.CertFile)), shQuote(filepath.Join(c.TLSDir, contexts.KeyFile)), u)
		return nil
	case "dir":
		if opts.out == "" {
			return errors.New("--format dir needs --out DIR")
		}
		if err := a.exportDir(c, opts); err != nil {
			return err
		}
		fmt.Fprintf(a.cli.Out(), "Wrote ca.pem, cert.pem and key.pem (0600) to %s\n", opts.out)
		return nil
	case "p12":
		return a.exportP12(c, opts)
	}
	return fmt.Errorf("--format %q: use env, curl, p12 or dir", opts.format)
}

func (a *app) exportDir(c *contexts.Context, opts exportOptions) error {
	t, err := a.exportable(c)
	if err != nil {
		return err
	}
	files, err := certdir.Client(t.CA, t.Cert, t.Key)
	if err != nil {
		return err
	}
	if err := a.confirmKeyExport(opts.out); err != nil {
		return err
	}
	return writeOut(opts.out, files, opts.force, "--out")
}

func (a *app) exportP12(c *contexts.Context, opts exportOptions) error {
	name := c.Name
	out := opts.out
	if out == "" {
		out = name + ".p12"
	}
	if !opts.force {
		if err := fsutil.CheckAbsent(out); err != nil {
			return fmt.Errorf("%w: use --force or another --out", err)
		}
	}
	var password string
	if opts.passwordFile != "" {
		data, err := fsutil.ReadSmall(opts.passwordFile, 4096)
		if err != nil {
			return fmt.Errorf("read password file: %w", err)
		}
		password = string(trimNewline(data))
		if password == "" {
			return fmt.Errorf("password file %s is empty", opts.passwordFile)
		}
	} else {
		p, err := a.promptNew("the PKCS#12 file")
		if err != nil {
			return fmt.Errorf("a PKCS#12 file needs a password: pass --password-file FILE (%w)", err)
		}
		password = string(p)
	}
	t, err := a.exportable(c)
	if err != nil {
		return err
	}
	data, err := pki.EncodePKCS12(t.Key, t.Cert, t.CA, password, opts.legacy)
	if err != nil {
		return err
	}
	if err := a.confirmKeyExport(out); err != nil {
		return err
	}
	if err := fsutil.WriteFile(out, data, fsutil.PrivateFile, opts.force); err != nil {
		return err
	}
	fmt.Fprintf(a.cli.Out(), "Wrote %s (PKCS#12, 0600) with the key and certificate of %q and its CA\n", out, name)
	return nil
}
