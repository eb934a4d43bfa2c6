package pki

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestIssueGroups(t *testing.T) {
	key, err := GenerateKey(ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := NewCA(key, CAOptions{CommonName: "groups CA", Organization: "Team"})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := GenerateKey(ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		req      IssueRequest
		want     []string
		identity string
		wantErr  string
	}{
		{name: "none", req: IssueRequest{Profile: ClientProfile, CommonName: "alice"}, identity: "alice"},
		{name: "two", req: IssueRequest{Profile: ClientProfile, CommonName: "alice", Groups: []string{"ops", "dev team"}}, want: []string{"dev team", "ops"}, identity: "alice (groups dev team,ops)"},
		{name: "repeated", req: IssueRequest{Profile: ClientProfile, CommonName: "alice", Groups: []string{"ops", "ops"}}, wantErr: "given twice"},
		{name: "empty", req: IssueRequest{Profile: ClientProfile, CommonName: "alice", Groups: []string{""}}, wantErr: "empty"},
		{name: "padded", req: IssueRequest{Profile: ClientProfile, CommonName: "alice", Groups: []string{" ops"}}, wantErr: "spaces"},
		{name: "control", req: IssueRequest{Profile: ClientProfile, CommonName: "alice", Groups: []string{"ops\nadmin"}}, wantErr: "control character"},
		{name: "too many", req: IssueRequest{Profile: ClientProfile, CommonName: "alice", Groups: strings.Split(strings.Repeat("g,", MaxGroups)+"last", ",")}, wantErr: "at most"},
		{name: "server", req: IssueRequest{Profile: ServerProfile, SANs: SANs{DNSNames: []string{"e.example"}}, Groups: []string{"ops"}}, wantErr: "client certificates"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.PublicKey, tc.req.Lifetime = leaf.Public(), time.Hour
			cert, err := ca.Issue(tc.req)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := GroupsOf(cert); !slices.Equal(got, tc.want) || cert.Subject.CommonName != "alice" {
				t.Errorf("groups %v (CN %q), want %v", got, cert.Subject.CommonName, tc.want)
			}
			if got := Identity(cert); got != tc.identity {
				t.Errorf("Identity = %q, want %q", got, tc.identity)
			}
		})
	}
}
