package e2e

import (
	"time"

	"crypto/x509"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// contextCert reads the client certificate the docker CLI uses for a context.
func contextCert(t *testing.T, e *Env, name string) *x509.Certificate {
	t.Helper()
	r := e.Docker("context", "inspect", name, "--format", "{{.Storage.TLSPath}}")
	requireOK(t, r)
	return readCert(t, filepath.Join(strings.TrimSpace(r.Stdout), "docker", "cert.pem"))
}

func samePublicKey(a, b *x509.Certificate) bool {
	return string(a.RawSubjectPublicKeyInfo) == string(b.RawSubjectPublicKeyInfo)
}

// TestRenewAgainstRealDockerd: a certificate two days from expiry is renewed
// by renew --all --within 7d and the docker CLI works before and after; a
// rekey changes the key; a renewal through ca serve needs no token, and an
// unreachable CA leaves the old certificate working.
func TestRenewAgainstRealDockerd(t *testing.T) {
	need(t, "docker")
	needRoot(t)
	need(t, "dockerd")
	e := NewEnv(t)
	e.MustTLS("ca", "init")
	d, _ := e.StartEngine(t, "srv")
	ver := func(ctx string) {
		t.Helper()
		requireOK(t, e.Docker("--context", ctx, "version", "--format", "{{.Server.Version}}"))
	}

	e.MustTLS("context", "create", "soon", "--host", d.Host, "--issue", "--days", "2")
	e.MustTLS("context", "create", "fresh", "--host", d.Host, "--issue")
	ver("soon")
	before, freshBefore := contextCert(t, e, "soon"), contextCert(t, e, "fresh")

	dry := e.MustTLS("renew", "--all", "--within", "7d", "--dry-run")
	if !strings.Contains(dry.Stdout, "soon: would renew") || strings.Contains(dry.Stdout, "fresh") {
		t.Fatalf("dry run:\n%s", dry.Stdout)
	}
	if contextCert(t, e, "soon").SerialNumber.Cmp(before.SerialNumber) != 0 {
		t.Fatal("--dry-run changed the certificate")
	}
	r := e.MustTLS("renew", "--all", "--within", "7d")
	if !strings.Contains(r.Stdout, "soon: renewed") || strings.Contains(r.Stdout, "fresh") {
		t.Fatalf("renew --all:\n%s", r.Stdout)
	}
	after := contextCert(t, e, "soon")
	if after.SerialNumber.Cmp(before.SerialNumber) == 0 || !samePublicKey(before, after) || after.Subject.CommonName != before.Subject.CommonName {
		t.Fatal("renew did not re-issue the same identity with a new serial")
	}
	if contextCert(t, e, "fresh").SerialNumber.Cmp(freshBefore.SerialNumber) != 0 {
		t.Fatal("renew --all touched a certificate outside --within")
	}
	ver("soon")

	e.MustTLS("renew", "soon", "--rekey")
	rekeyed := contextCert(t, e, "soon")
	if samePublicKey(after, rekeyed) {
		t.Fatal("--rekey kept the key")
	}
	ver("soon")
	keys := e.MustTLS("keys", "ls", "--format", "{{.Owner}}")
	if strings.Count(keys.Stdout, "context/soon") != 1 || strings.Contains(keys.Stdout, "orphan") {
		t.Fatalf("keys after rekey:\n%s", keys.Stdout)
	}

	t.Run("through ca serve, with mutual TLS and no token", func(t *testing.T) {
		host := NewEnv(t)
		host.MustTLS("ca", "init", "engine")
		hsrv := host.Path("srv")
		host.MustTLS("server", "issue", "localhost", "127.0.0.1", "--ca", "engine", "--out", hsrv)
		hd := StartDockerd(t, ServerDir(hsrv))
		port, _ := freePort()
		listen := fmt.Sprintf("127.0.0.1:%d", port)
		serve := host.Start("docker", "tls", "ca", "serve", "--ca", "engine", "--listen", listen, "--san", "127.0.0.1")
		serve.WaitFor("Serving CA")
		url := "https://" + listen
		// A short life, so that the renewal window (its last third) opens
		// within the test.
		const life = 12 * time.Second
		e.MustTLS("enroll", "remote", "--ca-url", url, "--token", mintToken(t, host, e, "--ca", "engine"), "--lifetime", life.String(), "--host", hd.Host)
		old := contextCert(t, e, "remote")
		if got := old.NotAfter.Sub(old.NotBefore) - 5*time.Minute; got != life {
			t.Fatalf("enroll --lifetime %s gave %s", life, got)
		}
		requireFail(t, e.TLS("renew", "remote"), "too early to renew", "old certificate is unchanged")

		// The CA is unreachable: renew fails, and the old certificate still works.
		if code := serve.Stop(); code != 0 {
			t.Fatalf("ca serve exit %d", code)
		}
		requireFail(t, e.TLS("renew", "remote"), "cannot reach the CA", "old certificate is unchanged")
		if contextCert(t, e, "remote").SerialNumber.Cmp(old.SerialNumber) != 0 {
			t.Fatal("a failed renew changed the certificate")
		}
		requireOK(t, e.Docker("--context", "remote", "version", "--format", "{{.Server.Version}}"))

		serve = host.Start("docker", "tls", "ca", "serve", "--ca", "engine", "--listen", listen, "--san", "127.0.0.1")
		serve.WaitFor("Serving CA")
		time.Sleep(time.Until(old.NotAfter.Add(-life/3 + 500*time.Millisecond)))
		e.MustTLS("renew", "remote")
		renewed := contextCert(t, e, "remote")
		if renewed.SerialNumber.Cmp(old.SerialNumber) == 0 {
			t.Fatal("not renewed")
		}
		requireOK(t, e.Docker("--context", "remote", "version", "--format", "{{.Server.Version}}"))
		inv := host.MustTLS("ca", "issued", "ls", "--ca", "engine", "--format", "json")
		if !strings.Contains(inv.Stdout, fmt.Sprintf("%x", old.SerialNumber)) {
			t.Fatalf("inventory does not record the renewal:\n%s", inv.Stdout)
		}
		if !strings.Contains(serve.Output(), "renewed serial=") {
			t.Fatalf("ca serve log:\n%s", serve.Output())
		}
		// No new token was minted for the renewal.
		if toks := host.MustTLS("ca", "tokens", "ls", "--ca", "engine", "-q"); len(strings.Fields(toks.Stdout)) != 1 {
			t.Fatalf("tokens:\n%s", toks.Stdout)
		}
	})
}

// TestGroupsInCertificates: --group puts the groups into the client
// certificate's subject as Organization values, as openssl shows them; the
// real docker CLI reaches a real dockerd with it; a renewal with a new key
// keeps them; ls and inspect show them.
func TestGroupsInCertificates(t *testing.T) {
	need(t, "docker")
	need(t, "openssl")
	needRoot(t)
	need(t, "dockerd")
	e := NewEnv(t)
	e.MustTLS("ca", "init")
	d, _ := e.StartEngine(t, "srv")
	e.MustTLS("context", "create", "grp", "--host", d.Host, "--issue", "--client-name", "alice", "--group", "ops", "--group", "dev")
	requireOK(t, e.Docker("--context", "grp", "version", "--format", "{{.Server.Version}}"))
	r := e.Docker("context", "inspect", "grp", "--format", "{{.Storage.TLSPath}}")
	requireOK(t, r)
	certPath := filepath.Join(strings.TrimSpace(r.Stdout), "docker", "cert.pem")
	subject := openssl(t, e.Path(), "x509", "-in", certPath, "-noout", "-subject", "-nameopt", "RFC2253")
	if !strings.Contains(subject, "CN=alice") || !strings.Contains(subject, "O=dev") || !strings.Contains(subject, "O=ops") {
		t.Fatalf("openssl shows the subject %q, want CN=alice with O=dev and O=ops", subject)
	}
	before := contextCert(t, e, "grp")
	e.MustTLS("renew", "grp", "--rekey")
	after := contextCert(t, e, "grp")
	if samePublicKey(before, after) || fmt.Sprint(after.Subject.Organization) != fmt.Sprint(before.Subject.Organization) {
		t.Fatalf("renew --rekey: key changed %v, groups %v -> %v", !samePublicKey(before, after), before.Subject.Organization, after.Subject.Organization)
	}
	requireOK(t, e.Docker("--context", "grp", "version", "--format", "{{.Server.Version}}"))
	if ls := e.MustTLS("ls", "--format", "{{.Name}} {{.Client}} {{.Groups}}"); !strings.Contains(ls.Stdout, "grp alice dev,ops") {
		t.Fatalf("ls:\n%s", ls.Stdout)
	}
	if in := e.MustTLS("inspect", "grp"); !strings.Contains(in.Stdout, "Groups               dev, ops") {
		t.Fatalf("inspect:\n%s", in.Stdout)
	}
}

// TestRenewAfterExpiry: two laptops enrolled with 15 s certificates sleep
// past their end. Against a service run with --renew-after-expiry, verify
// says the certificate expired and that docker tls renew may bring it
// back, and renew does, for the same identity, with no token; the engine
// takes the new certificate. Against a service without it, renew is
// refused in one sentence that says why and how to enroll again. So is a
// certificate that expired longer ago than the service's window, and one
// whose identity was revoked while it slept.
func TestRenewAfterExpiry(t *testing.T) {
	t.Parallel() // mostly waiting for certificates to expire
	host, laptop, d, _ := remoteCAEngine(t)
	graceURL, grace := caServe(t, host, "engine", "--renew-after-expiry", "1h")
	strictURL, _ := caServe(t, host, "engine")
	shortURL, _ := caServe(t, host, "engine", "--renew-after-expiry", "1s")
	enroll := func(name, url, cn string, flags ...string) {
		t.Helper()
		tok := mintToken(t, host, laptop, append([]string{"--ca", "engine", "--cn", cn}, flags...)...)
		laptop.MustTLS("enroll", name, "--ca-url", url, "--token", tok, "--host", d.Host, "--lifetime", "15s")
	}
	enroll("slept", graceURL, "sleeper", "--group", "ops")
	enroll("strict", strictURL, "strict")
	enroll("overslept", shortURL, "overslept")
	enroll("gone", graceURL, "gone-laptop")
	requireOK(t, laptop.Docker("--context", "slept", "version", "--format", "{{.Server.Version}}"))
	laptop.waitExpired("slept", 40*time.Second)
	if v := laptop.TLS("verify", "slept"); v.Code == 0 || !strings.Contains(v.Stdout, `the client certificate "sleeper" expired on`) || !strings.Contains(v.Stdout, "fix: docker tls renew slept (a CA service run with --renew-after-expiry") {
		t.Errorf("verify of an expired enrolled context: %s", v)
	}

	r := laptop.MustTLS("renew", "slept")
	t.Logf("renew after expiry: %s", strings.TrimSpace(r.Stdout))
	requireOK(t, laptop.Docker("--context", "slept", "version", "--format", "{{.Server.Version}}"))
	if ls := laptop.MustTLS("ls", "--format", "{{.Name}} {{.Groups}}"); !strings.Contains(ls.Stdout, "slept ops") {
		t.Errorf("the renewed certificate lost its groups:\n%s", ls.Stdout)
	}
	if !strings.Contains(grace.Output(), "renewed-after-expiry serial=") {
		t.Errorf("ca serve did not log the renewal after expiry:\n%s", grace.Output())
	}
	// strict was enrolled after slept: under load it may still be valid
	// (and then rightly renew); wait until it has expired too.
	laptop.waitExpired("strict", 30*time.Second)
	requireFail(t, laptop.TLS("renew", "strict"), "expired on", "this service renews only valid certificates", "docker tls ca token", "docker tls enroll strict --force")

	// Past the window: overslept's service renews within 1 s of the end.
	laptop.waitExpired("overslept", 30*time.Second)
	time.Sleep(2 * time.Second)
	requireFail(t, laptop.TLS("renew", "overslept"), "and this service renews expired certificates only within 1s of their end")

	// Revoked while it slept: within the window, and still refused.
	laptop.waitExpired("gone", 30*time.Second)
	host.MustTLS("ca", "revoke", "gone-laptop", "--ca", "engine", "--no-push")
	requireFail(t, laptop.TLS("renew", "gone"), "the CA refused: this certificate was revoked by the CA's operator: it cannot renew", "(the old certificate is unchanged)")
	if ls := laptop.MustTLS("ls", "--format", "{{.Name}} {{.Expires}}"); !strings.Contains(ls.Stdout, "gone EXPIRED") {
		t.Errorf("a refused renewal changed the context:\n%s", ls.Stdout)
	}
}
