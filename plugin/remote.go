package plugin

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/docker-tls/docker-tls/internal/fsutil"
	"github.com/docker-tls/docker-tls/pki"
	"github.com/docker-tls/docker-tls/remoteca"
	"github.com/docker-tls/docker-tls/signin"
)

// readSecretRef resolves a secret given as env:VAR, file:PATH or, for
// convenience at a prompt, the literal value (which ends up in shell
// history and the process list, so the help recommends the other forms).
func readSecretRef(ref, what string) (string, error) {
	switch {
	case strings.HasPrefix(ref, "env:"):
		v := os.Getenv(ref[4:])
		if v == "" {
			return "", fmt.Errorf("%s: environment variable %s is empty or unset", what, ref[4:])
		}
		return strings.TrimSpace(v), nil
	case strings.HasPrefix(ref, "file:"):
		data, err := fsutil.ReadSmall(ref[5:], 64*1024)
		if err != nil {
			return "", fmt.Errorf("%s: %w", what, err)
		}
		return strings.TrimSpace(string(data)), nil
	}
	return strings.TrimSpace(ref), nil
}

// argvWarning warns when a token or auth key was given on the command
// line itself, where other users of the machine can read it (ps,
// /proc/PID/cmdline) and shells keep it in their history.
func (o remoteOptions) argvWarning() string {
	for _, v := range []struct{ flag, val string }{{"--token", o.token}, {"--auth-key", o.authKey}} {
		if v.val != "" && !strings.HasPrefix(v.val, "env:") && !strings.HasPrefix(v.val, "file:") {
			return fmt.Sprintf("%s on the command line can be read by other users (ps) and stays in your shell history: use %s file:PATH or %s env:VAR", v.flag, v.flag, v.flag)
		}
	}
	return ""
}

// authKeyBytes decodes a cfssl auth key: hex, as cfssl writes them.
func authKeyBytes(s string) ([]byte, error) {
	k, err := hex.DecodeString(s)
	if err != nil || len(k) < 16 {
		return nil, errors.New("the auth key must be at least 16 bytes of hex, as in cfssl's auth_keys")
	}
	return k, nil
}

// remoteOptions are the flags of every command that can issue from a
// remote CA (docker tls ca serve, or cfssl).
type remoteOptions struct {
	url         string
	token       string
	fingerprint string
	authKey     string
	profile     string
	// lifetime is asked of the CA (enroll --lifetime); zero: its default.
	lifetime time.Duration
	// noBrowser keeps a sign-in from opening a browser.
	noBrowser bool
}

func (o *remoteOptions) install(f *pflag.FlagSet) {
	f.StringVar(&o.url, "ca-url", "", "Remote CA to enroll with: https://HOST:2377 (docker tls ca serve; replicas separated by commas) or a cfssl server")
	f.StringVar(&o.token, "token", "", "Enrollment token from docker tls ca token: env:VAR, file:PATH or the token itself")
	f.StringVar(&o.fingerprint, "ca-fingerprint", "", "With --auth-key: the CA's SHA-256 fingerprint (sha256:AB:CD…)")
	f.StringVar(&o.authKey, "auth-key", "", "cfssl auth key (hex): env:VAR or file:PATH")
	f.StringVar(&o.profile, "profile", "", "Profile to ask a cfssl server for (default: client)")
	f.BoolVar(&o.noBrowser, "no-browser", false, "With a sign-in: only print the page and the code; do not open a browser")
}

func (o remoteOptions) set() bool { return o.url != "" }

// signIn says the laptop signs in with the team's identity provider: a CA
// pinned by its fingerprint, and neither a token nor an auth key.
func (o remoteOptions) signIn() bool { return o.set() && o.token == "" && o.authKey == "" }

func (o remoteOptions) check() error {
	switch {
	case !o.set() && (o.token != "" || o.authKey != "" || o.fingerprint != ""):
		return errors.New("--token, --auth-key and --ca-fingerprint go with --ca-url")
	case o.set() && o.token == "" && o.authKey == "" && o.fingerprint == "":
		return errors.New("--ca-url needs --token (docker tls ca serve), --ca-fingerprint alone to sign in with the team's identity provider (ca serve --oidc-issuer), or --auth-key with --ca-fingerprint (cfssl)")
	case o.signIn() && (o.lifetime != 0 || o.profile != ""):
		return errors.New("--lifetime and --profile go with --token or --auth-key: a sign-in gets the client certificate the CA service gives sign-ins")
	case o.token != "" && o.authKey != "":
		return errors.New("give --token or --auth-key, not both")
	case o.authKey != "" && o.fingerprint == "":
		return errors.New("--auth-key needs --ca-fingerprint sha256:…: the CA is pinned before anything is sent")
	}
	return nil
}

// remoteIssue has the remote CA of o sign a certificate for key. It
// returns the pinned CA and the certificate, both checked. warn receives
// what the service says it changed of the request (a lifetime cut short),
// for the user.
func remoteIssue(ctx context.Context, o remoteOptions, key crypto.Signer, rq remoteca.IssueRequest, warn func(string), show func(signin.Code)) (ca, cert *x509.Certificate, refreshToken string, err error) {
	if err := o.check(); err != nil {
		return nil, nil, "", err
	}
	if o.signIn() {
		if rq.CommonName != "" {
			return nil, nil, "", errors.New("--client-name: a sign-in is named by the identity provider (the user claim)")
		}
		return signInIssue(ctx, o, key, show)
	}
	cred := remoteca.Credentials{Fingerprint: o.fingerprint}
	ref, what := o.token, "--token"
	if ref == "" {
		ref, what = o.authKey, "--auth-key"
	}
	secret, err := readSecretRef(ref, what)
	if err != nil {
		return nil, nil, "", err
	}
	if o.token != "" {
		cred.Token = secret
	} else if cred.AuthKey, err = authKeyBytes(secret); err != nil {
		return nil, nil, "", err
	}
	if o.profile != "" {
		if rq.Profile, err = pki.ParseProfile(o.profile); err != nil {
			return nil, nil, "", err
		}
	}
	c := &remoteca.Client{URL: o.url, Lifetime: o.lifetime, Notes: warn}
	auth, err := c.Authenticate(cred)
	if err != nil {
		return nil, nil, "", err
	}
	ca, cert, err = c.Issue(ctx, auth, key, rq)
	return ca, cert, "", err
}

// signInIssue signs the person in with the identity provider the CA
// service names (the CA pinned by --ca-fingerprint first) and trades the
// ID token for a client certificate for key.
func signInIssue(ctx context.Context, o remoteOptions, key crypto.Signer, show func(signin.Code)) (ca, cert *x509.Certificate, refreshToken string, err error) {
	fp, err := remoteca.NormalizeFingerprint(o.fingerprint)
	if err != nil {
		return nil, nil, "", fmt.Errorf("--ca-fingerprint: %w", err)
	}
	c := &remoteca.Client{URL: o.url, Fingerprint: fp, PinnedBy: "--ca-fingerprint"}
	ca, provider, err := c.SignInInfo(ctx)
	if err != nil {
		return nil, nil, "", err
	}
	if provider == nil {
		return nil, nil, "", fmt.Errorf("the CA service at %s takes no sign-ins: enroll with a token (--token, from docker tls ca token)", o.url)
	}
	res, err := signin.Device(ctx, provider.Issuer, provider.ClientID, &http.Client{Timeout: 30 * time.Second}, show)
	if err != nil {
		return nil, nil, "", err
	}
	if cert, err = c.SignIn(ctx, ca, res.IDToken, key); err != nil {
		return nil, nil, "", err
	}
	return ca, cert, res.RefreshToken, nil
}
