package plugin

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command/formatter"
	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/contexts"
	"github.com/docker-tls/docker-tls/internal/output"
	"github.com/docker-tls/docker-tls/pki"
	"github.com/docker-tls/docker-tls/probe"
)

type verifyOptions struct {
	all      bool
	host     string
	caFile   string
	certFile string
	keyFile  string
	offline  bool
	timeout  time.Duration
	parallel int
	format   string
	strict   bool
	quiet    bool
	pass     passphraseOptions
}

func newVerifyCommand(a *app) *cobra.Command {
	var opts verifyOptions
	cmd := &cobra.Command{
		Use:   "verify [CONTEXT...] [--all] [--host tcp://HOST:PORT --ca FILE [--cert FILE --key FILE]]",
		Short: "Find what is wrong with a TLS connection to an engine, and say how to fix it",
		Long: `Check a context (the current one by default), several, or all of them:

  endpoint      the host is tcp://HOST:PORT (warns on 2375)
  ca            the CA is a CA and valid now
  client-cert   the client certificate chains to it, has clientAuth, is valid (warns under 14 days or past 2/3 of its life)
  client-key    the key is there (key store or context copy) and matches
  agent         agent-mode contexts: the agent answers on its socket and relays
  dns, tcp      the name resolves; the port connects (refused, timed out and unreachable are told apart)
  tls           the port speaks TLS (plain HTTP and other protocols are named)
  server-chain  the server certificate chains to the context's CA, not to the system roots
  server-name   the server certificate's SANs cover the host dialled (the docker CLI ignores the CN)
  server-eku    the server certificate has serverAuth
  server-expiry the server certificate is valid now
  client-auth   the daemon asks for a client certificate (--tlsverify), warns if not
  client-accepted  the daemon accepts ours; if not, which CA it trusts instead
  protocol      the TLS version and cipher
  api           /_ping and /version through the Docker API client

Each failure says in one sentence what is wrong and the command that fixes it.
Exit status: 0 when nothing failed, 1 when something did (--strict: or warned).
--format json prints a stable array of reports (see the README).`,
		Example: `  docker tls verify
  docker tls verify prod staging
  docker tls verify --all --parallel 32 --timeout 3s
  docker tls verify --host tcp://192.0.2.10:2376 --ca ca.pem --cert cert.pem --key key.pem
  docker tls verify prod --format json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runVerify(cmd.Context(), a, opts, args)
		},
		ValidArgsFunction: completeContextNames(a, false),
	}
	f := cmd.Flags()
	f.BoolVarP(&opts.all, "all", "a", false, "Check every context that uses TLS client certificates, concurrently")
	f.StringVarP(&opts.host, "host", "H", "", "Check an endpoint without a context (with --ca, --cert, --key)")
	f.StringVar(&opts.caFile, "ca", "", "CA certificate file, with --host")
	f.StringVar(&opts.certFile, "cert", "", "Client certificate file, with --host")
	f.StringVar(&opts.keyFile, "key", "", "Client key file, with --host")
	f.BoolVar(&opts.offline, "offline", false, "Check only the local files, not the network")
	f.DurationVar(&opts.timeout, "timeout", 5*time.Second, "Time limit for each network step")
	f.IntVar(&opts.parallel, "parallel", defaultParallel(), "How many endpoints to check at once")
	f.StringVar(&opts.format, "format", "", `Output: "table" (default), "json", or a Go template per report`)
	f.BoolVar(&opts.strict, "strict", false, "Exit 1 on warnings too")
	f.BoolVarP(&opts.quiet, "quiet", "q", false, "Print nothing; only the exit status tells")
	opts.pass.install(f)
	_ = cmd.MarkFlagFilename("ca", "pem", "crt")
	_ = cmd.MarkFlagFilename("cert", "pem", "crt")
	_ = cmd.MarkFlagFilename("key", "pem", "key")
	return cmd
}

// defaultParallel: the checks wait on the network, not the CPU.
func defaultParallel() int { return max(16, 8*runtime.GOMAXPROCS(0)) }

func runVerify(ctx context.Context, a *app, opts verifyOptions, names []string) error {
	if opts.timeout <= 0 {
		return errors.New("--timeout must be positive, e.g. 5s")
	}
	if opts.parallel < 1 {
		return errors.New("--parallel must be at least 1")
	}
	targets, err := a.verifyTargets(opts, names)
	if err != nil {
		return err
	}
	// --format json and templates get the engine's architecture too (an
	// extra /version); the table shows what /_ping said.
	arch := opts.format != "" && opts.format != formatter.TableFormatKey
	reports := probe.RunAll(ctx, targets, probe.Options{Timeout: opts.timeout, Offline: opts.offline, Arch: arch}, opts.parallel)
	if !opts.quiet {
		if err := a.printReports(opts.format, reports); err != nil {
			return err
		}
	}
	failed, warned := 0, 0
	for _, r := range reports {
		switch r.Worst() {
		case probe.Fail:
			failed++
		case probe.Warn:
			warned++
		}
	}
	if failed > 0 || (opts.strict && warned > 0) {
		return cli.StatusError{StatusCode: 1, Status: fmt.Sprintf("verify: %d of %d failed, %d with warnings", failed, len(reports), warned)}
	}
	return nil
}

// verifyTargets resolves what to check: --host files, named contexts,
// every TLS context (--all), or the current context.
func (a *app) verifyTargets(opts verifyOptions, names []string) ([]probe.Target, error) {
	if opts.host != "" {
		if len(names) > 0 || opts.all {
			return nil, errors.New("--host checks one endpoint: give no context names and no --all with it")
		}
		return a.hostTarget(opts)
	}
	if opts.caFile != "" || opts.certFile != "" || opts.keyFile != "" {
		return nil, errors.New("--ca, --cert and --key go with --host; a context brings its own files")
	}
	if err := namesOrAll(names, opts.all, false, "context", "verify"); err != nil {
		return nil, err
	}
	names, err := a.verifyNames(names, opts.all)
	if err != nil {
		return nil, err
	}
	targets := make([]probe.Target, 0, len(names))
	for _, n := range names {
		t, err := a.contextTarget(n)
		if err != nil {
			return nil, err
		}
		targets = append(targets, t)
	}
	return targets, nil
}

// verifyNames are the contexts verify checks: those named, every one with
// TLS certificates (all), or the current one.
func (a *app) verifyNames(names []string, all bool) ([]string, error) {
	if all {
		list, _, err := a.contexts().List()
		if err != nil {
			return nil, err
		}
		for _, c := range list {
			if c.Managed() || c.HasFile(contexts.CertFile) {
				names = append(names, c.Name)
			}
		}
		if len(names) == 0 {
			return nil, errors.New("no context uses TLS certificates: create one with docker tls context create")
		}
	}
	if len(names) > 0 {
		return names, nil
	}
	cur := a.cli.CurrentContext()
	if cur == "" || cur == "default" {
		return nil, errors.New(`the current context is "default", which docker tls does not manage: name a context, use --all, or --host with --ca`)
	}
	return []string{cur}, nil
}

// contextTargets reads contexts as verify checks them.
func (a *app) contextTargets() probe.Contexts {
	return probe.Contexts{
		Store: a.contexts(),
		StoredKey: func(c *contexts.Context) (crypto.Signer, error) {
			ks, err := a.keyStore(c.TLS.KeyStore, nil)
			if err != nil {
				return nil, nil // not openable without a prompt: key.pem decides
			}
			key, err := ks.Get(c.TLS.KeyID)
			if err != nil {
				return nil, err
			}
			return key, nil
		},
		RenewalProblem: func(name string) string {
			if f, err := a.renewFailures().Get(name); err == nil {
				return f.Message(name)
			}
			return ""
		},
	}
}

// contextTarget reads a context's CA, certificate and key.
func (a *app) contextTarget(name string) (probe.Target, error) {
	return a.contextTargets().Target(name)
}

func (a *app) hostTarget(opts verifyOptions) ([]probe.Target, error) {
	host, _, err := contexts.ParseHost(opts.host)
	if err != nil {
		return nil, err
	}
	if opts.caFile == "" {
		return nil, errors.New("--host needs --ca FILE: the CA the engine's certificate must chain to")
	}
	t := probe.Target{Name: host, Host: host}
	data, err := readPEMFile(opts.caFile)
	if err != nil {
		return nil, fmt.Errorf("read CA certificate: %w", err)
	}
	if _, err := pki.ParseCertificates(data); err != nil {
		return nil, fmt.Errorf("CA certificate %s: %w", opts.caFile, err)
	}
	t.CA, t.MoreCAs = probe.CABundle(data)
	if (opts.certFile == "") != (opts.keyFile == "") {
		return nil, errors.New("--cert and --key go together")
	}
	if opts.certFile == "" {
		t.KeyProblem = "no client certificate given (--cert and --key)"
		return []probe.Target{t}, nil
	}
	if data, err = readPEMFile(opts.certFile); err != nil {
		return nil, fmt.Errorf("read client certificate: %w", err)
	}
	if t.Cert, err = pki.ParseCertificate(data); err != nil {
		return nil, fmt.Errorf("client certificate %s: %w", opts.certFile, err)
	}
	if t.Key, _, err = a.readKeyFile(opts.keyFile, "client key", opts.pass); err != nil {
		return nil, err
	}
	return []probe.Target{t}, nil
}

func (a *app) printReports(format string, reports []*probe.Report) error {
	out := a.cli.Out()
	switch {
	case format == formatter.JSONFormatKey:
		return output.JSON(out, reports)
	case format != "" && format != formatter.TableFormatKey:
		return output.Template(out, format, reports)
	}
	color := out.IsTerminal() && runtime.GOOS != "windows"
	if len(reports) == 1 {
		printReport(out, reports[0], color)
		return nil
	}
	printSummary(out, reports, color)
	return nil
}

// statusWord is how a check's status reads in a report.
func statusWord(st probe.Status) string {
	switch st {
	case probe.OK:
		return "ok"
	case probe.Info:
		return "info"
	case probe.Skip:
		return "skip"
	case probe.Warn:
		return "WARN"
	case probe.Fail:
		return "FAIL"
	}
	return string(st)
}

// statusColor is a status's colour on a terminal.
func statusColor(st probe.Status) string {
	switch st {
	case probe.OK:
		return "\x1b[32m"
	case probe.Warn:
		return "\x1b[33m"
	case probe.Fail:
		return "\x1b[31m"
	}
	return "\x1b[2m"
}

func paint(s string, st probe.Status, color bool) string {
	if !color {
		return s
	}
	return statusColor(st) + s + "\x1b[0m"
}

func printReport(out io.Writer, r *probe.Report, color bool) {
	fmt.Fprintf(out, "%s (%s)\n", r.Name, r.Host)
	for _, c := range r.Checks {
		fmt.Fprintf(out, "  %s  %-16s %s\n", paint(fmt.Sprintf("%-4s", statusWord(c.Status)), c.Status, color), c.ID, c.Message)
		if c.Fix != "" && (c.Status == probe.Fail || c.Status == probe.Warn) {
			fmt.Fprintf(out, "  %-4s  %-16s fix: %s\n", "", "", c.Fix)
		}
	}
	fmt.Fprintf(out, "%s: %d failed, %d warnings (%s)\n", paint(strings.ToUpper(string(r.Worst())), r.Worst(), color),
		r.Count(probe.Fail), r.Count(probe.Warn), r.Duration.Round(time.Millisecond))
}

func printSummary(out io.Writer, reports []*probe.Report, color bool) {
	fmt.Fprintf(out, "%-24s %-32s %-6s %s\n", "CONTEXT", "HOST", "RESULT", "FIRST PROBLEM")
	failed, warned := 0, 0
	for _, r := range reports {
		problem := "-"
		if c := r.First(probe.Fail); c != nil {
			problem = c.Message
			failed++
		} else if c := r.First(probe.Warn); c != nil {
			problem = c.Message
			warned++
		}
		fmt.Fprintf(out, "%-24s %-32s %s %s\n", r.Name, r.Host, paint(fmt.Sprintf("%-6s", statusWord(r.Worst())), r.Worst(), color), problem)
	}
	fmt.Fprintf(out, "\n%d checked: %d ok, %d with warnings, %d failed. Details: docker tls verify NAME\n",
		len(reports), len(reports)-failed-warned, warned, failed)
}
