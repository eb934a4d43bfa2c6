package plugin

import (
	"bufio"
	"crypto/sha1"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/docker/cli/cli"
	"github.com/spf13/cobra"
	"software.sslmate.com/src/go-pkcs12"

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

func newExportCommand(e *env) *cobra.Command {
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
			return runExport(e, opts, args[0])
		},
		ValidArgsFunction: completeContextNames(e, false),
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
func (e *env) exportable(c *contexts.Context) (probe.Target, error) {
	t := e.targetOf(e.contexts(), c)
	if t.CA == nil || t.Cert == nil {
		return t, fmt.Errorf("context %q has no TLS client certificate", c.Name)
	}
	if t.Key == nil {
		return t, fmt.Errorf("context %q: %s", c.Name, t.KeyProblem)
	}
	return t, nil
}

// confirmKeyExport asks on a terminal before a private key leaves the store.
func (e *env) confirmKeyExport(what string) error {
	if !e.cli.In().IsTerminal() {
		return nil
	}
	fmt.Fprintf(e.cli.Err(), "This writes the private key to %s. Continue? [y/N] ", what)
	line, _ := bufio.NewReader(e.cli.In()).ReadString('\n')
	if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
		return errors.New("not exported")
	}
	return nil
}

func runExport(e *env, opts exportOptions, name string) error {
	c, err := e.contexts().Get(name)
	if err != nil {
		return err
	}
	switch opts.format {
	case "env":
		if opts.out == "" {
			return runEnv(e, envOptions{shell: opts.shell}, name)
		}
		if err := e.exportDir(c, opts); err != nil {
			return err
		}
		abs, _ := filepath.Abs(opts.out)
		vars := [][2]string{{"DOCKER_HOST", c.RemoteHost()}, {"DOCKER_TLS_VERIFY", "1"}, {"DOCKER_CERT_PATH", abs}}
		return printEnv(e, name, opts.shell, vars)
	case "curl":
		if c.AgentMode() {
			return fmt.Errorf("context %q is in agent mode: there are no files for curl; use curl --unix-socket %s http://docker/_ping", name, strings.TrimPrefix(c.Host, "unix://"))
		}
		if !c.HasFile(contexts.KeyFile) {
			return fmt.Errorf("context %q is locked: curl needs the key file; docker tls unlock %s, or export --format dir", name, name)
		}
		u := "https://" + strings.TrimPrefix(c.Host, "tcp://")
		fmt.Fprintf(e.cli.Out(), "--cacert %s --cert %s --key %s %s\n",
			shQuote(filepath.Join(c.TLSDir, contexts.CAFile)), shQuote(filepath.Join(c.TLSDir, contexts.CertFile)), shQuote(filepath.Join(c.TLSDir, contexts.KeyFile)), u)
		return nil
	case "dir":
		if opts.out == "" {
			return errors.New("--format dir needs --out DIR")
		}
		if err := e.exportDir(c, opts); err != nil {
			return err
		}
		fmt.Fprintf(e.cli.Out(), "Wrote ca.pem, cert.pem and key.pem (0600) to %s\n", opts.out)
		return nil
	case "p12":
		return e.exportP12(c, opts)
	}
	return fmt.Errorf("--format %q: use env, curl, p12 or dir", opts.format)
}

func (e *env) exportDir(c *contexts.Context, opts exportOptions) error {
	t, err := e.exportable(c)
	if err != nil {
		return err
	}
	keyPEM, err := pki.EncodePrivateKey(t.Key, nil)
	if err != nil {
		return err
	}
	if err := e.confirmKeyExport(opts.out); err != nil {
		return err
	}
	return writeOutDir(opts.out, []outFile{
		{"ca.pem", pki.EncodeCertificate(t.CA), fsutil.PublicFile},
		{"cert.pem", pki.EncodeCertificate(t.Cert), fsutil.PublicFile},
		{"key.pem", keyPEM, fsutil.PrivateFile},
	}, opts.force)
}

func (e *env) exportP12(c *contexts.Context, opts exportOptions) error {
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
		data, err := readSmallFile(opts.passwordFile, 4096)
		if err != nil {
			return fmt.Errorf("read password file: %w", err)
		}
		password = string(trimNewline(data))
		if password == "" {
			return fmt.Errorf("password file %s is empty", opts.passwordFile)
		}
	} else {
		p, err := e.promptNew("the PKCS#12 file")
		if err != nil {
			return fmt.Errorf("a PKCS#12 file needs a password: pass --password-file FILE (%w)", err)
		}
		password = string(p)
	}
	t, err := e.exportable(c)
	if err != nil {
		return err
	}
	enc := pkcs12.Modern
	if opts.legacy {
		enc = pkcs12.LegacyDES
	}
	data, err := enc.Encode(t.Key, t.Cert, []*x509.Certificate{t.CA}, password)
	if err != nil {
		return fmt.Errorf("PKCS#12: %w", err)
	}
	if err := e.confirmKeyExport(out); err != nil {
		return err
	}
	if err := fsutil.WriteFile(out, data, fsutil.PrivateFile, opts.force); err != nil {
		return err
	}
	fmt.Fprintf(e.cli.Out(), "Wrote %s (PKCS#12, 0600) with the key and certificate of %q and its CA\n", out, name)
	return nil
}

// certView is how inspect shows a certificate, and its JSON.
type certView struct {
	Source            string    `json:"source"`
	Subject           string    `json:"subject"`
	Issuer            string    `json:"issuer"`
	Serial            string    `json:"serial"`
	NotBefore         time.Time `json:"notBefore"`
	NotAfter          time.Time `json:"notAfter"`
	DaysLeft          int       `json:"daysLeft"`
	KeyType           string    `json:"keyType"`
	SignatureAlg      string    `json:"signatureAlgorithm"`
	IsCA              bool      `json:"isCA"`
	KeyUsage          []string  `json:"keyUsage,omitempty"`
	ExtKeyUsage       []string  `json:"extKeyUsage,omitempty"`
	SANs              []string  `json:"sans,omitempty"`
	SubjectKeyID      string    `json:"subjectKeyId,omitempty"`
	AuthorityKeyID    string    `json:"authorityKeyId,omitempty"`
	FingerprintSHA256 string    `json:"fingerprintSHA256"`
	FingerprintSHA1   string    `json:"fingerprintSHA1"`
	Chain             string    `json:"chain,omitempty"`
}

func newCertView(src string, c *x509.Certificate) certView {
	sum := sha1.Sum(c.Raw)
	v := certView{Source: src, Subject: c.Subject.String(), Issuer: c.Issuer.String(), Serial: fmt.Sprintf("%x", c.SerialNumber),
		NotBefore: c.NotBefore, NotAfter: c.NotAfter, DaysLeft: int(time.Until(c.NotAfter).Hours() / 24),
		KeyType: pki.DescribeKey(c.PublicKey), SignatureAlg: c.SignatureAlgorithm.String(), IsCA: c.IsCA,
		ExtKeyUsage: pki.EKUNames(c), SANs: pki.CertSANs(c).Strings(),
		SubjectKeyID: hex.EncodeToString(c.SubjectKeyId), AuthorityKeyID: hex.EncodeToString(c.AuthorityKeyId),
		FingerprintSHA256: pki.Fingerprint(c), FingerprintSHA1: strings.ToUpper(hex.EncodeToString(sum[:]))}
	for bit, name := range map[x509.KeyUsage]string{x509.KeyUsageDigitalSignature: "digitalSignature", x509.KeyUsageKeyEncipherment: "keyEncipherment",
		x509.KeyUsageCertSign: "keyCertSign", x509.KeyUsageCRLSign: "cRLSign", x509.KeyUsageKeyAgreement: "keyAgreement"} {
		if c.KeyUsage&bit != 0 {
			v.KeyUsage = append(v.KeyUsage, name)
		}
	}
	return v
}

type inspectOptions struct {
	format string
}

func newInspectCommand(e *env) *cobra.Command {
	var opts inspectOptions
	cmd := &cobra.Command{
		Use:   "inspect FILE|CONTEXT",
		Short: "Show a certificate: subject, SANs, EKUs, validity, fingerprints, chain",
		Long: `Show the certificates in a PEM or DER file, or a context's client certificate
and CA (with whether the one chains to the other), in readable form, or
as JSON with --format json.`,
		Example: `  docker tls inspect prod
  docker tls inspect ./engine-tls/server-cert.pem
  docker tls inspect prod --format '{{.NotAfter}}'`,
		Args: cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runInspect(e, opts, args[0])
		},
		ValidArgsFunction: completeContextNames(e, false),
	}
	cmd.Flags().StringVarP(&opts.format, "format", "f", "", `"json" or a Go template per certificate`)
	return cmd
}

func runInspect(e *env, opts inspectOptions, arg string) error {
	var views []certView
	if data, err := readPEMFile(arg); err == nil {
		certs, err := pki.ParseCertificates(data)
		if err != nil {
			return fmt.Errorf("%s: %w", arg, err)
		}
		for i, c := range certs {
			v := newCertView(arg, c)
			if i+1 < len(certs) {
				v.Chain = chainWord(c, certs[i+1])
			}
			views = append(views, v)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	} else {
		c, cerr := e.contexts().Get(arg)
		if cerr != nil {
			return fmt.Errorf("%s is neither a file nor a context", arg)
		}
		caPEM, certPEM, err := contextPEMs(e.contexts(), c)
		if err != nil {
			return fmt.Errorf("context %q has no client certificate", arg)
		}
		leaf, err := pki.ParseCertificate(certPEM)
		if err != nil {
			return err
		}
		v := newCertView("context "+c.Name+" cert.pem", leaf)
		if ca, err := pki.ParseCertificate(caPEM); err == nil {
			v.Chain = chainWord(leaf, ca)
			views = append(views, v, newCertView("context "+c.Name+" ca.pem", ca))
		} else {
			views = append(views, v)
		}
	}
	return printCertViews(e.cli.Out(), opts.format, views)
}

func chainWord(leaf, issuer *x509.Certificate) string {
	if err := leaf.CheckSignatureFrom(issuer); err != nil {
		return fmt.Sprintf("NOT signed by %q: %v", issuer.Subject.CommonName, err)
	}
	return fmt.Sprintf("signed by %q", issuer.Subject.CommonName)
}

func printCertViews(out io.Writer, format string, views []certView) error {
	switch format {
	case "json":
		return printJSON(out, views)
	case "":
		for i, v := range views {
			if i > 0 {
				fmt.Fprintln(out)
			}
			fmt.Fprintf(out, "%s\n", v.Source)
			row := func(k, val string) {
				if val != "" {
					fmt.Fprintf(out, "  %-20s %s\n", k, val)
				}
			}
			row("Subject", v.Subject)
			row("Issuer", v.Issuer)
			row("Serial", v.Serial)
			row("Valid", fmt.Sprintf("%s to %s (%d days left)", v.NotBefore.Format(time.RFC3339), v.NotAfter.Format(time.RFC3339), v.DaysLeft))
			row("Key", v.KeyType)
			row("Signature", v.SignatureAlg)
			row("CA", fmt.Sprint(v.IsCA))
			row("Key usage", strings.Join(v.KeyUsage, ", "))
			row("Extended key usage", strings.Join(v.ExtKeyUsage, ", "))
			row("SANs", strings.Join(v.SANs, ", "))
			row("Subject key ID", v.SubjectKeyID)
			row("Authority key ID", v.AuthorityKeyID)
			row("SHA-256", v.FingerprintSHA256)
			row("SHA-1", v.FingerprintSHA1)
			row("Chain", v.Chain)
		}
		return nil
	}
	return printTemplate(out, format, views)
}

type daemonConfigOptions struct {
	dir        string
	listen     string
	format     string
	installDir string
}

func newDaemonConfigCommand(e *env) *cobra.Command {
	var opts daemonConfigOptions
	cmd := &cobra.Command{
		Use:   "daemon-config --dir DIR [--listen tcp://0.0.0.0:2376] [--format daemon.json|systemd|flags]",
		Short: "Print dockerd's TLS configuration for a server certificate directory",
		Long: `Print how to start dockerd with the files of docker tls server issue:

  daemon.json  the tlsverify/tlscacert/tlscert/tlskey keys for /etc/docker/daemon.json
  systemd      a drop-in for /etc/systemd/system/docker.service.d/ with the empty
               ExecStart= line that clears the packaged one, and -H for --listen
  flags        the dockerd command line

The listening address goes in the systemd drop-in (-H), never as "hosts" in
daemon.json: on systemd hosts dockerd already gets -H from its unit, and
both together make it refuse to start.`,
		Example: `  docker tls daemon-config --dir ./engine-tls > daemon.json
  docker tls daemon-config --dir ./engine-tls --format systemd | sudo tee /etc/systemd/system/docker.service.d/tls.conf`,
		Args: cli.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDaemonConfig(e, opts)
		},
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	f := cmd.Flags()
	f.StringVar(&opts.dir, "dir", "", "Directory from docker tls server issue (ca.pem, server-cert.pem, server-key.pem)")
	f.StringVar(&opts.listen, "listen", "tcp://0.0.0.0:2376", "Address dockerd listens on for TLS")
	f.StringVar(&opts.format, "format", "daemon.json", "daemon.json, systemd or flags")
	f.StringVar(&opts.installDir, "install-dir", "", "Where the files live on the engine's host (default: --dir, made absolute)")
	_ = cmd.MarkFlagRequired("dir")
	_ = cmd.MarkFlagDirname("dir")
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"daemon.json", "systemd", "flags"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func runDaemonConfig(e *env, opts daemonConfigOptions) error {
	// The files must be there and fit together.
	read := func(f string) ([]byte, error) { return readPEMFile(filepath.Join(opts.dir, f)) }
	caPEM, err := read("ca.pem")
	if err != nil {
		return fmt.Errorf("--dir %s: %w", opts.dir, err)
	}
	certPEM, err := read("server-cert.pem")
	if err != nil {
		return fmt.Errorf("--dir %s: %w", opts.dir, err)
	}
	keyPEM, err := read("server-key.pem")
	if err != nil {
		return fmt.Errorf("--dir %s: %w", opts.dir, err)
	}
	ca, err := pki.ParseCertificate(caPEM)
	if err != nil {
		return fmt.Errorf("ca.pem: %w", err)
	}
	cert, err := pki.ParseCertificate(certPEM)
	if err != nil {
		return fmt.Errorf("server-cert.pem: %w", err)
	}
	key, err := pki.ParsePrivateKey(keyPEM, nil)
	if err != nil {
		return fmt.Errorf("server-key.pem: %w", err)
	}
	if err := pki.CheckKeyMatch(cert, key); err != nil {
		return err
	}
	if err := pki.VerifyLeaf(cert, ca, pki.ServerProfile, time.Now()); err != nil {
		return fmt.Errorf("server-cert.pem: %w", err)
	}
	listen, warning, err := contexts.ParseHost(opts.listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	if warning != "" {
		fmt.Fprintln(e.cli.Err(), "warning:", warning)
	}
	dir := opts.installDir
	if dir == "" {
		if dir, err = filepath.Abs(opts.dir); err != nil {
			return err
		}
	}
	dj := daemonJSON{TLSVerify: true, TLSCACert: path.Join(dir, "ca.pem"), TLSCert: path.Join(dir, "server-cert.pem"), TLSKey: path.Join(dir, "server-key.pem")}
	out := e.cli.Out()
	switch opts.format {
	case "daemon.json":
		data, _ := json.MarshalIndent(dj, "", "  ")
		fmt.Fprintln(out, string(data))
		fmt.Fprintf(e.cli.Err(), "note: add the listening address with -H %s in dockerd's systemd drop-in (--format systemd), not as \"hosts\" here: with systemd's -H, a \"hosts\" key makes dockerd refuse to start\n", listen)
	case "systemd":
		fmt.Fprintf(out, "# /etc/systemd/system/docker.service.d/docker-tls.conf, then: systemctl daemon-reload && systemctl restart docker\n")
		fmt.Fprintf(out, "[Service]\nExecStart=\nExecStart=/usr/bin/dockerd -H fd:// -H %s --tlsverify --tlscacert=%s --tlscert=%s --tlskey=%s\n", listen, dj.TLSCACert, dj.TLSCert, dj.TLSKey)
		fmt.Fprintln(e.cli.Err(), "note: the empty ExecStart= line clears the packaged one; keep \"hosts\" and the tls keys out of daemon.json, or dockerd refuses to start")
	case "flags":
		fmt.Fprintf(out, "dockerd -H %s --tlsverify --tlscacert=%s --tlscert=%s --tlskey=%s\n", listen, dj.TLSCACert, dj.TLSCert, dj.TLSKey)
	default:
		return fmt.Errorf("--format %q: use daemon.json, systemd or flags", opts.format)
	}
	return nil
}
