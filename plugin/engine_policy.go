package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/docker/cli/cli"
	"github.com/docker/cli/cli/command/formatter"
	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/authz"
	"github.com/docker-tls/docker-tls/engine"
	"github.com/docker-tls/docker-tls/internal/dbhelper"
	"github.com/docker-tls/docker-tls/internal/fsutil"
	"github.com/docker-tls/docker-tls/internal/output"
	"github.com/docker-tls/docker-tls/pki"
	"github.com/docker-tls/docker-tls/policy"
)

func newEnginePolicyCommand(a *app) *cobra.Command {
	cmd := groupCommand("policy", "Decide who may do what on engines: roles for certificate users and groups, enforced by dockerd")
	cmd.Long = `An engine's policy gives roles to the identities in client certificates: the
certificate's CN is the user, its Organization values are the user's groups.

  viewer    read-only: ps, images, inspect, logs, events, stats, info, version, df
  operator  everything except what gives root on the host: privileged containers,
            host namespaces, bind mounts of host paths, devices, added capabilities,
            unconfined security options, exec --privileged, plugins, swarm and nodes
  admin     everything

The highest role granted to the user, one of their groups or * (any certificate
of the engine's CA) wins. dockerd asks the policy before every API call,
through its authorization plugin API; the plugin is this same binary, run by
systemd on the engine's host.`
	cmd.AddCommand(newEnginePolicySetCommand(a), newEnginePolicyShowCommand(a), newEnginePolicyOffCommand(a))
	return cmd
}

type enginePolicySetOptions struct {
	names        []string
	all          bool
	grants       []string
	revokes      []string
	local        string
	crlURL       string
	crlInterval  time.Duration
	pluginBinary string
	parallel     int
	force        bool
	passphrase   passphraseOptions
}

func newEnginePolicySetCommand(a *app) *cobra.Command {
	var opts enginePolicySetOptions
	cmd := &cobra.Command{
		Use:   "set ENGINE... | --all  --grant SUBJECT=ROLE... [--revoke-grant SUBJECT]... [--local allow|deny]",
		Short: "Grant roles on engines, and have dockerd enforce them",
		Long: `Change the policy of each engine and put it in force. SUBJECT is user:CN,
group:NAME or * (any certificate of the engine's CA); ROLE is viewer, operator
or admin (docker tls engine policy --help says what each may do).

The first time, the running docker-tls binary is copied to the host (its
checksum checked there; --plugin-binary gives another, for a host of another
architecture), docker-tls-authz.socket and docker-tls-authz.service are
installed, docker.service is ordered after the socket, and dockerd is told
to consult the plugin by a reload, not a restart, once the plugin answers.
Later changes only replace the policy file, which the plugin reads again.
Every file is backed up first and put back if anything fails.

A policy that would leave none of the identities this laptop holds for the
engine an admin is refused unless --force: nobody could change it from here.
Calls that carry no certificate (the host's own unix socket) follow --local.

The plugin refuses certificates its CA revoked. docker tls ca revoke pushes
the CA's revocation list to the engines; with --crl-url (the CA service's
/crl) the plugin also pulls it every --crl-interval. A list must be signed
by a CA the engine trusts and newer than the one held; the last good one
stays in force.`,
		Example: `  docker tls engine policy set build-1 --grant user:alice=admin --grant group:ops=operator
  docker tls engine policy set build-1 --grant '*=viewer' --revoke-grant user:bob
  docker tls engine policy set --all --grant group:admins=admin
  docker tls engine policy set build-1 --crl-url https://ca.example.com:8443/crl --crl-interval 1m
  docker tls engine policy set arm-1 --grant user:alice=admin --plugin-binary ./docker-tls-linux-arm64`,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.names = args
			return runEnginePolicySet(cmd.Context(), a, opts)
		},
		ValidArgsFunction: completeEngineNames(a),
	}
	f := cmd.Flags()
	f.BoolVar(&opts.all, "all", false, "Every engine docker tls set up")
	f.StringArrayVar(&opts.grants, "grant", nil, "Give SUBJECT the ROLE (SUBJECT=ROLE; repeatable)")
	f.StringArrayVar(&opts.revokes, "revoke-grant", nil, "Take SUBJECT's grant away (repeatable)")
	f.StringVar(&opts.local, "local", "", "Calls through the host's own socket: allow (the default) or deny")
	f.StringVar(&opts.crlURL, "crl-url", "", "Pull the revocation list from this URL (docker tls ca serve's https://…/crl); none stops pulling")
	f.DurationVar(&opts.crlInterval, "crl-interval", 0, "How often to pull it, 5s to 24h (default 30s)")
	f.StringVar(&opts.pluginBinary, "plugin-binary", "", "The docker-tls executable to run on the hosts (default: this one)")
	f.IntVar(&opts.parallel, "parallel", 4, "How many engines to change at once, 1 to 64")
	f.BoolVar(&opts.force, "force", false, "Set a policy that leaves none of this laptop's identities an admin, or replace one the host cannot read")
	opts.passphrase.install(f)
	_ = cmd.RegisterFlagCompletionFunc("local", cobra.FixedCompletions([]string{"allow", "deny"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func parsePolicyEdit(opts enginePolicySetOptions) (authz.Edit, error) {
	var e authz.Edit
	var err error
	if e.Grants, e.Revokes, err = parseGrantChanges(opts.grants, opts.revokes); err != nil {
		return e, err
	}
	switch opts.local {
	case "", "allow", "deny":
		e.Local = opts.local
	default:
		return e, fmt.Errorf("--local %q: give allow or deny", opts.local)
	}
	if opts.crlURL != "" && opts.crlURL != "none" {
		u, err := url.Parse(opts.crlURL)
		if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
			return e, fmt.Errorf("--crl-url %q: give the CA service's https://HOST:PORT/crl (or none)", opts.crlURL)
		}
	}
	e.CRLURL = opts.crlURL
	if opts.crlInterval != 0 && (opts.crlInterval < 5*time.Second || opts.crlInterval > 24*time.Hour) {
		return e, fmt.Errorf("--crl-interval %s: give a duration from 5s to 24h", opts.crlInterval)
	}
	e.CRLInterval = opts.crlInterval
	return e, nil
}

// parseGrantChanges reads --grant and --revoke-grant, each subject named
// once.
func parseGrantChanges(grants, revokes []string) ([]policy.Grant, []policy.Subject, error) {
	var gs []policy.Grant
	var rs []policy.Subject
	seen := map[policy.Subject]string{}
	for _, g := range grants {
		pg, err := policy.ParseGrant(g)
		if err != nil {
			return nil, nil, err
		}
		if prev, ok := seen[pg.Subject]; ok {
			return nil, nil, fmt.Errorf("--grant %s and %s name the same subject: give one", prev, g)
		}
		seen[pg.Subject] = "--grant " + g
		gs = append(gs, pg)
	}
	for _, r := range revokes {
		s, err := policy.ParseSubject(r)
		if err != nil {
			return nil, nil, fmt.Errorf("--revoke-grant %q: %w", r, err)
		}
		if prev, ok := seen[s]; ok {
			return nil, nil, fmt.Errorf("%s and --revoke-grant %s name the same subject: give one", prev, r)
		}
		seen[s] = "--revoke-grant " + r
		rs = append(rs, s)
	}
	return gs, rs, nil
}

func runEnginePolicySet(ctx context.Context, a *app, opts enginePolicySetOptions) error {
	if err := checkEngineSelection(opts.names, opts.all, opts.parallel, "set a policy on"); err != nil {
		return err
	}
	edit, err := parsePolicyEdit(opts)
	if err != nil {
		return err
	}
	bin, err := pluginBinary(opts.pluginBinary)
	if err != nil {
		return err
	}
	recs, err := a.engineRecords(opts.names, opts.all)
	if err != nil {
		return err
	}
	crls, err := a.engineCRLs(ctx, recs, opts.passphrase)
	if err != nil {
		return err
	}
	failed := a.eachEngine(ctx, recs, opts.parallel, func(ctx context.Context, rec *engine.Record) (string, error) {
		return a.setPolicy(ctx, rec, edit, bin, crls[rec.CA], opts)
	})
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d engines did not take the policy", len(failed), len(recs))
	}
	return nil
}

// engineCRLs are the revocation lists of the engines' CAs that are on this
// laptop, by CA name: a policy is enforced with its CA's revocations from
// the first call.
func (a *app) engineCRLs(ctx context.Context, recs []*engine.Record, pass passphraseOptions) (map[string][]byte, error) {
	crls := map[string][]byte{}
	for _, r := range recs {
		if _, done := crls[r.CA]; done {
			continue
		}
		stored, err := a.cas().Get(r.CA)
		if err != nil || pki.Fingerprint(stored.Cert) != r.CAFingerprint {
			crls[r.CA] = nil // not here: ca revoke where it is, or --crl-url
			continue
		}
		db, err := dbOptions{}.open(ctx, a, stored)
		if err != nil {
			return nil, fmt.Errorf("CA %q's revocations: %w", r.CA, err)
		}
		crl, err := a.currentCRL(ctx, r.CA, db, pass)
		db.Close()
		if err != nil {
			return nil, fmt.Errorf("CA %q's revocation list: %w", r.CA, err)
		}
		crls[r.CA] = crl
	}
	return crls, nil
}

// pluginBinary reads the executable the hosts will run: this one, or
// --plugin-binary. Only a Linux executable is taken; which machine it is
// for is checked against each host.
func pluginBinary(flag string) ([]byte, error) {
	path := flag
	if path == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find this docker-tls executable to copy to the hosts: %w (give --plugin-binary)", err)
		}
		// policy set runs in docker-tls-db; the hosts get the plugin, which
		// is all the authorization plugin needs, and smaller.
		path = dbhelper.PluginPath(exe)
	}
	bin, err := fsutil.ReadSmall(path, 256<<20)
	if err != nil {
		return nil, fmt.Errorf("--plugin-binary: %w", err)
	}
	if _, err := engine.BinaryArch(bin); err != nil {
		if flag == "" {
			return nil, fmt.Errorf("this docker-tls (%s) is not a Linux executable, and engine hosts run Linux: give --plugin-binary, a docker-tls built for the hosts (GOOS=linux)", path)
		}
		return nil, fmt.Errorf("--plugin-binary %s: not a Linux executable", flag)
	}
	return bin, nil
}

// setPolicy changes one engine's policy and puts it in force.
func (a *app) setPolicy(ctx context.Context, rec *engine.Record, edit authz.Edit, bin, crl []byte, opts enginePolicySetOptions) (string, error) {
	ids, err := a.laptopIdentities(rec)
	if err != nil {
		return "", err
	}
	s, err := a.dialEngine(ctx, rec)
	if err != nil {
		return "", err
	}
	defer s.Close()
	res, err := engine.SetPolicy(ctx, s, engine.PolicySet{Engine: *rec, Edit: edit, Admins: ids, Force: opts.force, Binary: bin, CRL: crl})
	var (
		unreadable *engine.UnreadablePolicyError
		arch       *engine.ArchError
	)
	switch {
	case errors.As(err, &unreadable):
		return "", fmt.Errorf("%w: give --force to replace it, or run docker tls engine policy off %s", err, rec.Name)
	case errors.Is(err, engine.ErrNoPolicyYet):
		return "", fmt.Errorf("%w: give --grant SUBJECT=ROLE, such as --grant %s=admin", err, firstSubject(ids))
	case errors.Is(err, policy.ErrNoAdmin):
		return "", fmt.Errorf("the policy would leave none of this laptop's identities for the engine (%s) an admin, and nobody could change it from here: grant one of them admin, or give --force", identityList(ids))
	case errors.As(err, &arch):
		return "", fmt.Errorf("%w: give --plugin-binary, a docker-tls built for linux on %s", err, arch.Host)
	case err != nil:
		return "", err
	}
	summary := policySummary(res.Config)
	if len(res.Notes) > 0 {
		summary += " (" + strings.Join(res.Notes, ", ") + ")"
	}
	switch plan := res.Plan; {
	case plan.UpToDate():
		return "the policy was in force already: " + summary, nil
	case plan.DaemonJSON != nil:
		return "policy in force: " + summary + "; plugin installed, dockerd reloaded (no restart)", nil
	case plan.Binary != nil:
		return "policy in force: " + summary + "; plugin updated", nil
	}
	return "policy in force: " + summary + "; the plugin read the new policy", nil
}

func policySummary(cfg *authz.Config) string {
	local := "local calls allowed"
	if cfg.LocalDeny {
		local = "local calls refused"
	}
	if cfg.CRLURL != "" {
		every, _ := cfg.PullInterval()
		local += fmt.Sprintf(", revocations pulled from %s every %s", cfg.CRLURL, every)
	}
	if len(cfg.Policy.Grants) == 0 {
		return "no grants, " + local
	}
	return cfg.Policy.String() + ", " + local
}

// laptopIdentities are the identities this laptop holds for rec's engine.
func (a *app) laptopIdentities(rec *engine.Record) ([]policy.Identity, error) {
	held, err := a.contexts().IdentitiesFor(rec.Context, rec.Host, rec.CAFingerprint)
	ids := make([]policy.Identity, len(held))
	for i, h := range held {
		ids[i] = policy.Identity(h)
	}
	return ids, err
}

func identityList(ids []policy.Identity) string {
	if len(ids) == 0 {
		return "it holds none"
	}
	var s []string
	for _, id := range ids {
		if len(id.Groups) > 0 {
			s = append(s, fmt.Sprintf("user:%s (groups %s)", id.User, strings.Join(id.Groups, ", ")))
		} else {
			s = append(s, "user:"+id.User)
		}
	}
	return strings.Join(s, "; ")
}

func firstSubject(ids []policy.Identity) string {
	if len(ids) == 0 {
		return "user:NAME"
	}
	return "user:" + ids[0].User
}

type enginePolicyShowOptions struct {
	name   string
	format string
}

func newEnginePolicyShowCommand(a *app) *cobra.Command {
	var opts enginePolicyShowOptions
	cmd := &cobra.Command{
		Use:   "show ENGINE [--format json]",
		Short: "Show an engine's policy, read from its host",
		Example: `  docker tls engine policy show build-1
  docker tls engine policy show build-1 --format json`,
		Args: cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.name = args[0]
			return runEnginePolicyShow(cmd.Context(), a, opts)
		},
		ValidArgsFunction: completeEngineNames(a),
	}
	cmd.Flags().StringVarP(&opts.format, "format", "f", "", "json, or a Go template (fields .Engine .State .LocalDeny .Grants .Plugin)")
	return cmd
}

// policyView is what policy show prints.
type policyView struct {
	Engine    string         `json:"engine"`
	State     string         `json:"state"`
	LocalDeny bool           `json:"localDeny"`
	Grants    []policy.Grant `json:"grants"`
	Plugin    string         `json:"plugin"`
	CRLURL    string         `json:"crlURL,omitempty"`
	// CRLEvery is how often the list is pulled from CRLURL.
	CRLEvery string `json:"crlInterval,omitempty"`
	// CRLs are the revocation lists the plugin holds.
	CRLs []authz.CRLInfo `json:"crls"`
}

// policyState says in a few words whether dockerd enforces the policy.
func policyState(f *engine.PolicyFacts) string {
	switch {
	case f.Enabled && f.Config != nil:
		return "enforced"
	case f.Enabled:
		return "enforced, but the policy file is missing: every call is refused"
	case f.Units || f.Config != nil:
		return "installed, not consulted by dockerd: run docker tls engine policy set again"
	}
	return "off"
}

func runEnginePolicyShow(ctx context.Context, a *app, opts enginePolicyShowOptions) error {
	rec, s, err := a.openEngine(ctx, opts.name)
	if err != nil {
		return err
	}
	defer s.Close()
	f, err := engine.InspectPolicy(ctx, s)
	if err != nil {
		return err
	}
	v := policyView{Engine: rec.Name, State: policyState(f), Plugin: "docker-tls-authz.service " + f.Service, Grants: []policy.Grant{}, CRLs: []authz.CRLInfo{}}
	if f.Config != nil {
		cfg, err := authz.ParseConfig(f.Config)
		if err != nil {
			return fmt.Errorf("the policy on the host (%s) does not read (%v): the plugin keeps the last good one; docker tls engine policy set %s --force replaces it", engine.PolicyPath, err, rec.Name)
		}
		v.LocalDeny, v.Grants, v.CRLURL = cfg.LocalDeny, cfg.Policy.Grants, cfg.CRLURL
		if cfg.CRLURL != "" {
			every, _ := cfg.PullInterval()
			v.CRLEvery = every.String()
		}
	}
	var st authz.Status
	if f.Status != nil && json.Unmarshal(f.Status, &st) == nil && st.CRLs != nil {
		v.CRLs = st.CRLs
	}
	return printPolicy(a.cli.Out(), v, opts.format, time.Now())
}

// printPolicy prints what policy show read, as format says.
func printPolicy(out io.Writer, v policyView, format string, now time.Time) error {
	switch format {
	case formatter.JSONFormatKey:
		return output.JSON(out, v)
	case "":
	default:
		return output.Template(out, format, []policyView{v})
	}
	local := "allowed"
	if v.LocalDeny {
		local = "refused"
	}
	fmt.Fprintf(out, "Engine:       %s\nState:        %s\nLocal calls:  %s\nPlugin:       %s\nRevocations:  %s\n\n", v.Engine, v.State, local, v.Plugin, crlSummary(v.CRLs, v.CRLURL, v.CRLEvery, now))
	tw := tabwriter.NewWriter(out, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "SUBJECT\tROLE")
	for _, g := range v.Grants {
		fmt.Fprintf(tw, "%s\t%s\n", g.Subject, g.Role)
	}
	return tw.Flush()
}

// crlSummary says which revocation lists an engine holds, and how old.
func crlSummary(held []authz.CRLInfo, url, every string, now time.Time) string {
	pull := "; pushed by docker tls ca revoke"
	if url != "" {
		pull = "; pulled from " + url + " every " + every
	}
	if len(held) == 0 {
		return "no revocation list held" + pull
	}
	var parts []string
	for _, c := range held {
		p := fmt.Sprintf("list %s of %s, %d revoked, issued %s ago", c.Number, c.CA, c.Revoked, now.Sub(c.ThisUpdate).Round(time.Second))
		if now.After(c.NextUpdate) {
			p += " (past its next update)"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, "; ") + pull
}

type enginePolicyOffOptions struct {
	names    []string
	all      bool
	parallel int
}

func newEnginePolicyOffCommand(a *app) *cobra.Command {
	var opts enginePolicyOffOptions
	cmd := &cobra.Command{
		Use:   "off ENGINE... | --all",
		Short: "Stop enforcing engines' policies, and take the plugin away",
		Long: `Tell dockerd to stop consulting the plugin (a reload, no restart), stop the
plugin and remove what policy set installed: the units, the binary, the
policy. The audit trail stays in ` + engine.AuditDir + ` (engine teardown removes it).
Every certificate of the engine's CA is then admin again.`,
		Example: `  docker tls engine policy off build-1
  docker tls engine policy off --all`,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.names = args
			return runEnginePolicyOff(cmd.Context(), a, opts)
		},
		ValidArgsFunction: completeEngineNames(a),
	}
	cmd.Flags().BoolVar(&opts.all, "all", false, "Every engine docker tls set up")
	cmd.Flags().IntVar(&opts.parallel, "parallel", 4, "How many engines to change at once, 1 to 64")
	return cmd
}

func runEnginePolicyOff(ctx context.Context, a *app, opts enginePolicyOffOptions) error {
	if err := checkEngineSelection(opts.names, opts.all, opts.parallel, "turn the policy off on"); err != nil {
		return err
	}
	recs, err := a.engineRecords(opts.names, opts.all)
	if err != nil {
		return err
	}
	failed := a.eachEngine(ctx, recs, opts.parallel, a.policyOff)
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d engines still have their policy", len(failed), len(recs))
	}
	return nil
}

// policyOff takes one engine's policy away, and says whether it had one.
func (a *app) policyOff(ctx context.Context, rec *engine.Record) (string, error) {
	s, err := a.dialEngine(ctx, rec)
	if err != nil {
		return "", err
	}
	defer s.Close()
	off, err := engine.PolicyOff(ctx, s, true)
	if err != nil {
		return "", err
	}
	if !off {
		return "had no policy", nil
	}
	return "policy off: dockerd reloaded without the plugin, plugin removed (the audit trail stays in " + engine.AuditDir + ")", nil
}
