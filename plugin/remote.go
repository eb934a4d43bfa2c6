package plugin

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/docker-tls/docker-tls/internal/fsutil"
	"github.com/docker-tls/docker-tls/pki"
	"github.com/docker-tls/docker-tls/remoteca"
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
}

func (o *remoteOptions) install(f *pflag.FlagSet) {
	f.StringVar(&o.url, "ca-url", "", "Remote CA to enroll with: https://HOST:2377 (docker tls ca serve; replicas separated by commas) or a cfssl server")
	f.StringVar(&o.token, "token", "", "Enrollment token from docker tls ca token: env:VAR, file:PATH or the token itself")
	f.StringVar(&o.fingerprint, "ca-fingerprint", "", "With --auth-key: the CA's SHA-256 fingerprint (sha256:AB:CD…)")
	f.StringVar(&o.authKey, "auth-key", "", "cfssl auth key (hex): env:VAR or file:PATH")
	f.StringVar(&o.profile, "profile", "", "Profile to ask a cfssl server for (default: client)")
}

func (o remoteOptions) set() bool { return o.url != "" }

func (o remoteOptions) check() error {
	switch {
	case !o.set() && (o.token != "" || o.authKey != "" || o.fingerprint != ""):
		return errors.New("--token, --auth-key and --ca-fingerprint go with --ca-url")
	case o.set() && o.token == "" && o.authKey == "":
		return errors.New("--ca-url needs --token (docker tls ca serve) or --auth-key with --ca-fingerprint (cfssl)")
	case o.token != "" && o.authKey != "":
		return errors.New("give --token or --auth-key, not both")
	case o.authKey != "" && o.fingerprint == "":
		return errors.New("--auth-key needs --ca-fingerprint sha256:…: the CA is pinned before anything is sent")
	}
	return nil
}

// remoteIssue makes a CSR for key and has the remote CA sign it. It returns
// the pinned CA and the certificate, both checked.
//
// cn is the name asked for; defaultCN, if set, is the name to use when the
// user gave none (cn is then empty).
//
// warn receives what the service says it changed of the request (a
// lifetime cut short), for the user.
func remoteIssue(ctx context.Context, o remoteOptions, key crypto.Signer, cn, defaultCN string, sans pki.SANs, profile pki.Profile, warn func(string)) (*x509.Certificate, *x509.Certificate, error) {
	if err := o.check(); err != nil {
		return nil, nil, err
	}
	c := &remoteca.Client{URL: o.url, Lifetime: o.lifetime, Notes: warn}
	var auth remoteca.Auth
	if o.token != "" {
		tok, err := readSecretRef(o.token, "--token")
		if err != nil {
			return nil, nil, err
		}
		p, err := remoteca.ParseToken(tok)
		if err != nil {
			return nil, nil, err
		}
		c.Fingerprint, auth.Token = p.Fingerprint, p.String()
		// A fingerprint given beside a token must be the one the token
		// pins: the user meant a CA, and this token is for another.
		if o.fingerprint != "" {
			fp, err := remoteca.NormalizeFingerprint(o.fingerprint)
			if err != nil {
				return nil, nil, fmt.Errorf("--ca-fingerprint: %w", err)
			}
			if fp != p.Fingerprint {
				return nil, nil, fmt.Errorf("--ca-fingerprint %s is not the CA this token is for (sha256:%s…): check which CA you meant, or leave --ca-fingerprint out (the token pins its CA)", o.fingerprint, p.Fingerprint[:16])
			}
		}
	} else {
		ref, err := readSecretRef(o.authKey, "--auth-key")
		if err != nil {
			return nil, nil, err
		}
		if auth.AuthKey, err = authKeyBytes(ref); err != nil {
			return nil, nil, err
		}
		if c.Fingerprint, err = remoteca.NormalizeFingerprint(o.fingerprint); err != nil {
			return nil, nil, fmt.Errorf("--ca-fingerprint: %w", err)
		}
	}
	if o.profile != "" {
		p, err := pki.ParseProfile(o.profile)
		if err != nil {
			return nil, nil, err
		}
		profile = p
	}
	ca, err := c.FetchCA(ctx)
	if err != nil {
		return nil, nil, err
	}
	var hosts []string
	for _, s := range sans.Strings() {
		hosts = append(hosts, strings.TrimPrefix(strings.TrimPrefix(s, "DNS:"), "IP:"))
	}
	sign := func(cn string) (*x509.Certificate, error) {
		csr, err := pki.NewCSR(key, cn, sans)
		if err != nil {
			return nil, err
		}
		return c.Sign(ctx, ca, auth, csr, profile, hosts)
	}
	// Without --client-name, let a token that names the client decide; a
	// token that does not is refused before it is spent, and the default
	// name goes instead.
	askCN := cn
	if askCN == "" && auth.Token == "" {
		askCN = defaultCN // cfssl takes the CN from the CSR
	}
	cert, err := sign(askCN)
	if err != nil && askCN == "" && defaultCN != "" && strings.Contains(err.Error(), "does not name the client") {
		cert, err = sign(defaultCN)
	}
	if err != nil {
		return nil, nil, err
	}
	return ca, cert, nil
}
