package certdir

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/docker-tls/docker-tls/internal/fsutil"
	"github.com/docker-tls/docker-tls/internal/pkitest"
	"github.com/docker-tls/docker-tls/pki"
)

func issueServer(t *testing.T, ca *pki.CA, names ...string) ([]File, *pki.CA) {
	t.Helper()
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	sans, _, err := pki.ParseSANs(names)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue(pki.IssueRequest{Profile: pki.ServerProfile, SANs: sans, PublicKey: key.Public(), Lifetime: 30 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	files, err := Server(ca.Cert, cert, key, "/etc/docker/tls")
	if err != nil {
		t.Fatal(err)
	}
	return files, ca
}

func TestWriteIsOneUnit(t *testing.T) {
	ca := pkitest.NewCA(t, "certdir CA", "")
	files, _ := issueServer(t, ca, "engine.example.com")
	dir := filepath.Join(t.TempDir(), "out")
	if err := Write(dir, files, false); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("a new directory is %v (%v), want 0700", fi.Mode().Perm(), err)
	}
	if fi, err := os.Stat(filepath.Join(dir, ServerKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the key is %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	var dj DaemonJSON
	data, _ := os.ReadFile(filepath.Join(dir, DaemonJSONFile))
	if err := json.Unmarshal(data, &dj); err != nil || !dj.TLSVerify || dj.TLSKey != "/etc/docker/tls/server-key.pem" {
		t.Errorf("daemon.json = %s (%v)", data, err)
	}
	var raw map[string]any
	_ = json.Unmarshal(data, &raw)
	if _, ok := raw["hosts"]; ok {
		t.Error(`daemon.json has "hosts": dockerd under systemd would refuse to start`)
	}

	// A second write without force refuses before changing anything.
	other, _ := issueServer(t, ca, "other.example.com")
	before, _ := os.ReadFile(filepath.Join(dir, ServerCertFile))
	if err := Write(dir, other, false); !errors.Is(err, fsutil.ErrExists) {
		t.Fatalf("Write over existing files = %v, want ErrExists", err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, ServerCertFile)); !slices.Equal(before, after) {
		t.Error("a refused write changed the certificate")
	}
	if err := Write(dir, other, true); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, ServerCertFile)); slices.Equal(before, after) {
		t.Error("a forced write left the old certificate")
	}

	// A write that fails halfway removes what it wrote.
	fresh := t.TempDir()
	if err := os.Mkdir(filepath.Join(fresh, ServerKeyFile), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := Write(fresh, files, false); err == nil {
		t.Fatal("Write over a directory in place of the key succeeded")
	}
	entries, _ := os.ReadDir(fresh)
	if len(entries) != 1 {
		t.Errorf("a refused write left %d entries, want only the directory that was there", len(entries))
	}
}

func TestServerDirRenew(t *testing.T) {
	ca := pkitest.NewCA(t, "certdir CA", "")
	files, _ := issueServer(t, ca, "engine.example.com", "192.0.2.10")
	dir := t.TempDir()
	if err := Write(dir, files, true); err != nil {
		t.Fatal(err)
	}
	sd, err := ReadServer(dir)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		r       ServerRenewal
		newKey  bool
		want    []string
		wantDur time.Duration
	}{
		{name: "same names and key", want: []string{"DNS:engine.example.com", "IP:192.0.2.10"}, wantDur: 30 * 24 * time.Hour},
		{name: "new names, new key, a year", r: ServerRenewal{SANs: mustSANs(t, "new.example.com"), Rekey: true, Lifetime: 365 * 24 * time.Hour},
			newKey: true, want: []string{"DNS:new.example.com"}, wantDur: 365 * 24 * time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cert, err := sd.Renew(ca.Cert, ca, tc.r)
			if err != nil {
				t.Fatal(err)
			}
			now, err := ReadServer(dir)
			if err != nil {
				t.Fatal(err)
			}
			if !now.Cert.Equal(cert) || !slices.Equal(pki.CertSANs(cert).Strings(), tc.want) {
				t.Errorf("the directory holds %v, want the new certificate for %v", pki.CertSANs(now.Cert).Strings(), tc.want)
			}
			if err := pki.CheckKeyMatch(now.Cert, now.Key); err != nil {
				t.Errorf("the directory's key is not its certificate's: %v", err)
			}
			if same := pki.CheckKeyMatch(cert, sd.Key) == nil; same == tc.newKey {
				t.Errorf("rekey %v: the key was kept: %v", tc.newKey, same)
			}
			if d := cert.NotAfter.Sub(cert.NotBefore) - pki.Backdate; d != tc.wantDur {
				t.Errorf("lifetime %v, want %v", d, tc.wantDur)
			}
			if m, _ := filepath.Glob(filepath.Join(dir, "*.new")); len(m) > 0 {
				t.Errorf("left %v", m)
			}
		})
	}
	if ca2, err := sd.Check(time.Now()); err != nil || !ca2.Equal(ca.Cert) {
		t.Errorf("Check of a whole directory: %v", err)
	}
	wrongKey, _ := pki.GenerateKey(pki.ECDSAP256)
	if _, err := (&ServerDir{Dir: dir, Cert: sd.Cert, Key: wrongKey}).Check(time.Now()); err == nil {
		t.Error("Check passed a key that is not the certificate's")
	}
	if _, err := sd.Check(sd.Cert.NotAfter.Add(time.Hour)); err == nil {
		t.Error("Check passed an expired certificate")
	}
	other := pkitest.NewCA(t, "another CA", "")
	if _, err := sd.Renew(other.Cert, other, ServerRenewal{}); !errors.Is(err, ErrOtherCA) {
		t.Errorf("renewal from another CA = %v, want ErrOtherCA", err)
	}
	if _, err := ReadServer(t.TempDir()); err == nil {
		t.Error("an empty directory read as a server directory")
	}
}

func mustSANs(t *testing.T, names ...string) pki.SANs {
	t.Helper()
	s, _, err := pki.ParseSANs(names)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
