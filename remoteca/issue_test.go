package remoteca

import (
	"strings"
	"testing"
)

func TestAuthenticatePinsTheCA(t *testing.T) {
	fp := strings.Repeat("ab", 32)
	other := strings.Repeat("cd", 32)
	token := "DTLS1-" + fp + "-" + strings.Repeat("s", 40)
	tests := []struct {
		name    string
		cred    Credentials
		wantFP  string
		wantTok bool
		wantErr string
	}{
		{name: "token alone", cred: Credentials{Token: token}, wantFP: fp, wantTok: true},
		{name: "token and its own fingerprint", cred: Credentials{Token: token, Fingerprint: "sha256:" + strings.ToUpper(fp)}, wantFP: fp, wantTok: true},
		{name: "token and another CA", cred: Credentials{Token: token, Fingerprint: other}, wantErr: "is not the CA this token is for (sha256:abababababababab…)"},
		{name: "token and a bad fingerprint", cred: Credentials{Token: token, Fingerprint: "xyz"}, wantErr: "--ca-fingerprint: fingerprint"},
		{name: "truncated token", cred: Credentials{Token: "DTLS1-" + fp + "-short"}, wantErr: "truncated"},
		{name: "auth key and fingerprint", cred: Credentials{AuthKey: []byte("0123456789abcdef"), Fingerprint: other}, wantFP: other},
		{name: "auth key without fingerprint", cred: Credentials{AuthKey: []byte("0123456789abcdef")}, wantErr: "--ca-fingerprint"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &Client{URL: "https://127.0.0.1:1"}
			auth, err := c.Authenticate(tc.cred)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if c.Fingerprint != "" {
					t.Errorf("a refused credential pinned %s", c.Fingerprint)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Fingerprint != tc.wantFP || (auth.Token != "") != tc.wantTok || (auth.AuthKey != nil) == tc.wantTok {
				t.Errorf("pinned %s, auth %+v", c.Fingerprint, auth)
			}
		})
	}
}
