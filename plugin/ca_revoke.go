package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"github.com/docker/cli/cli"
	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/castore"
	"github.com/docker-tls/docker-tls/engine"
	"github.com/docker-tls/docker-tls/pki"
	"github.com/docker-tls/docker-tls/remoteca"
)

type caRevokeOptions struct {
	ca         string
	arg        string
	cn         string
	serial     string
	token      string
	reason     string
	noPush     bool
	db         dbOptions
	passphrase passphraseOptions
}

func newCARevokeCommand(a *app) *cobra.Command {
	var opts caRevokeOptions
	cmd := &cobra.Command{
		Use:   "revoke CN|SERIAL [--ca NAME] [--reason TEXT]",
		Short: "Revoke an identity, a certificate or a token's certificates at a served CA",
		Long: `Revoke at the CA service (docker tls ca serve), in its database:

  CN            the identity: every certificate issued to it and every token
                for it; it can neither enroll again nor renew
  SERIAL        one certificate (a unique prefix of 8 or more hex digits):
                it cannot renew
  --token ID    the token, and every certificate issued with it

The argument is taken as a CN or a serial by what the inventory holds; --cn
or --serial say which when it could be both, or revoke a name that has no
certificate yet.

Then the CA's new revocation list (X.509 CRL, signed by the CA) goes to
every engine of the CA that docker tls set up, over SSH and concurrently:
an engine with a policy (docker tls engine policy set) refuses the revoked
certificates from then on, and the command says which engines it reached.
Engines given policy set --crl-url pull the list from the CA service.

An engine without a policy checks no revocation list: a revoked certificate
still opens it until it expires. docker tls ca crl prints the list for
whatever else checks one.`,
		Example: `  docker tls ca revoke alice@laptop --ca team --reason "laptop stolen"
  docker tls ca revoke 3f2a9c1d --ca team
  docker tls ca revoke --token 5e0b1c --ca team
  docker tls ca revoke bob --no-push   # the engines learn it later, by --crl-url`,
		Args: cli.RequiresMaxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				opts.arg = args[0]
			}
			return runCARevoke(cmd.Context(), a, opts)
		},
		ValidArgsFunction: cobra.NoFileCompletions,
	}
	f := cmd.Flags()
	f.StringVar(&opts.ca, "ca", castore.DefaultName, "CA")
	f.StringVar(&opts.cn, "cn", "", "Revoke this identity (CN), even with no certificate yet")
	f.StringVar(&opts.serial, "serial", "", "Revoke the certificate with this serial")
	f.StringVar(&opts.token, "token", "", "Revoke this token (id, as in ca tokens ls) and the certificates issued with it")
	f.StringVar(&opts.reason, "reason", "", "Why, kept in the inventory")
	f.BoolVar(&opts.noPush, "no-push", false, "Do not send the new revocation list to the engines")
	opts.db.install(f)
	opts.passphrase.install(f)
	_ = cmd.RegisterFlagCompletionFunc("ca", completeCANames(a))
	return cmd
}

func runCARevoke(ctx context.Context, a *app, opts caRevokeOptions) error {
	if err := checkRevokeArgs(opts); err != nil {
		return err
	}
	stored, db, err := opts.db.openCA(ctx, a, opts.ca)
	if err != nil {
		return err
	}
	defer db.Close()
	if opts.arg != "" {
		if opts.cn, opts.serial, err = resolveRevokeArg(ctx, db, stored.Name, opts.arg); err != nil {
			return err
		}
	}
	now := time.Now()
	var rev *remoteca.Revocation
	switch {
	case opts.cn != "":
		rev, err = db.RevokeName(ctx, opts.cn, opts.reason, now)
	case opts.serial != "":
		rev, err = db.RevokeSerial(ctx, opts.serial, opts.reason, now)
	default:
		rev, err = db.RevokeTokenAndIssued(ctx, opts.token, opts.reason, now)
	}
	if err != nil {
		return err
	}
	printRevocation(a.cli.Out(), rev, opts)
	reached := 0
	if !opts.noPush {
		if reached, err = a.pushCRL(ctx, stored, db, opts.passphrase); err != nil {
			return err
		}
	}
	if last := rev.LastExpiry(); reached == 0 && last.After(now) {
		fmt.Fprintf(a.cli.Err(), "Note: no engine was sent the revocation list from here; an engine accepts these certificates until they expire (the last on %s) unless it has a policy that gets the list (docker tls engine policy set ENGINE --crl-url, or ca revoke where the engine was set up).\n",
			last.Local().Format(time.RFC3339))
	}
	return nil
}

// checkRevokeArgs refuses, before the database is opened, anything but one
// thing to revoke, and a name no certificate could carry (a control
// character would also forge lines in listings).
func checkRevokeArgs(opts caRevokeOptions) error {
	given := 0
	for _, v := range []string{opts.arg, opts.cn, opts.serial, opts.token} {
		if v != "" {
			given++
		}
	}
	if given != 1 {
		return errors.New("say what to revoke: one CN or SERIAL, or one of --cn, --serial, --token")
	}
	for _, v := range []struct{ flag, val string }{{"--cn", opts.cn}, {"CN", opts.arg}} {
		if v.val == "" {
			continue
		}
		if strings.TrimSpace(v.val) != v.val {
			return fmt.Errorf("%s %q has spaces at its start or end: give the name alone", v.flag, v.val)
		}
		if err := pki.CheckName("common name", v.val); err != nil {
			return fmt.Errorf("%s: %w", v.flag, err)
		}
	}
	return nil
}

// resolveRevokeArg says whether the argument of ca revoke is a CN the CA
// issued to or the start of a serial it issued, refusing what is both or
// neither.
func resolveRevokeArg(ctx context.Context, db *remoteca.DB, caName, arg string) (cn, serial string, err error) {
	byCN, bySerial, err := db.FindIssued(ctx, arg)
	if err != nil {
		return "", "", err
	}
	switch {
	case byCN > 0 && bySerial:
		return "", "", fmt.Errorf("%q is both a CN and the start of a serial: say which with --cn or --serial", arg)
	case byCN > 0:
		return arg, "", nil
	case bySerial:
		return "", arg, nil
	}
	if hex := strings.ToLower(strings.ReplaceAll(arg, ":", "")); len(hex) < 8 && strings.Trim(hex, "0123456789abcdef") == "" {
		return "", "", fmt.Errorf("CA %q issued nothing to %q, and as a serial it is too short: give 8 or more hex digits of it (docker tls ca issued ls)", caName, arg)
	}
	return "", "", fmt.Errorf("CA %q issued nothing to or with %q (docker tls ca issued ls); to bar a name before it enrolls, use --cn", caName, arg)
}

// printRevocation says what a revocation covered.
func printRevocation(out io.Writer, rev *remoteca.Revocation, opts caRevokeOptions) {
	switch {
	case rev.Name != "":
		fmt.Fprintf(out, "Revoked identity %q: %d certificate(s), %d token(s); it can neither enroll nor renew\n", rev.Name, len(rev.Certificates), rev.Tokens)
	case opts.token != "":
		fmt.Fprintf(out, "Revoked token %s and %d certificate(s) issued with it\n", opts.token, len(rev.Certificates))
	case len(rev.Certificates) == 0:
		fmt.Fprintf(out, "Certificate %s was already revoked\n", opts.serial)
	default:
		fmt.Fprintf(out, "Revoked certificate %s (CN %q): it cannot renew\n", rev.Certificates[0].Serial, rev.Certificates[0].CN)
	}
}

// pushCRL sends the CA's revocation list to every engine of the CA this
// laptop set up, and says which took it.
// It returns how many engines enforce the new list.
func (a *app) pushCRL(ctx context.Context, stored *castore.CA, db *remoteca.DB, pass passphraseOptions) (int, error) {
	all, _, err := a.engines().List()
	if err != nil {
		return 0, err
	}
	fp := pki.Fingerprint(stored.Cert)
	var recs []*engine.Record
	for _, r := range all {
		if r.CA == stored.Name || r.CAFingerprint == fp {
			recs = append(recs, r)
		}
	}
	if len(recs) == 0 {
		return 0, nil
	}
	crl, err := a.currentCRL(ctx, stored.Name, db, pass)
	if err != nil {
		return 0, fmt.Errorf("the revocation is recorded; the revocation list for the engines: %w", err)
	}
	var took atomic.Int32
	failed := a.eachEngine(ctx, recs, 8, func(ctx context.Context, rec *engine.Record) (string, error) {
		msg, enforced, err := a.sendCRL(ctx, rec, crl)
		if enforced {
			took.Add(1)
		}
		return msg, err
	})
	if len(failed) > 0 {
		return 0, fmt.Errorf("the revocation is recorded, and %d of %d engines did not get the new revocation list: run the same docker tls ca revoke again once they are reachable", len(failed), len(recs))
	}
	return int(took.Load()), nil
}

// sendCRL gives one engine's plugin the revocation list; enforced says
// the engine has a policy, and so refuses the revoked certificates now.
func (a *app) sendCRL(ctx context.Context, rec *engine.Record, crl []byte) (msg string, enforced bool, err error) {
	s, err := a.dialEngine(ctx, rec)
	if err != nil {
		return "", false, err
	}
	defer s.Close()
	_, err = engine.PushCRL(ctx, s, crl)
	if errors.Is(err, engine.ErrNoPolicy) {
		return "no policy, so dockerd checks no revocation list: the revoked certificates still open it until they expire (docker tls engine policy set " + rec.Name + ")", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return "refuses the revoked certificates now", true, nil
}

// currentCRL is the CA's revocation list (PEM), signed again when due.
func (a *app) currentCRL(ctx context.Context, caName string, db *remoteca.DB, pass passphraseOptions) ([]byte, error) {
	_, ca, err := a.loadCA(caName, pass)
	if err != nil {
		return nil, err
	}
	der, err := db.CRL(ctx, remoteca.FingerprintHex(ca.Cert.Raw), time.Now(), ca.CRL)
	if err != nil {
		return nil, err
	}
	return pki.EncodeCRL(der), nil
}
