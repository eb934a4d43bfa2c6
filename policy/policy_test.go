package policy

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestRequired(t *testing.T) {
	tests := []struct {
		method, uri, body string
		tooLarge          bool
		want              Role
	}{
		// viewer: reads
		{"GET", "/_ping", "", false, None},
		{"HEAD", "/_ping", "", false, None},
		{"POST", "/_ping", "", false, Operator},
		{"GET", "/v1.47/version", "", false, Viewer},
		{"GET", "/v1.47/info", "", false, Viewer},
		{"GET", "/v1.47/containers/json?all=1", "", false, Viewer},
		{"GET", "/v1.47/containers/abc/json", "", false, Viewer},
		{"GET", "/v1.47/containers/abc/logs?follow=1&stdout=1", "", false, Viewer},
		{"GET", "/v1.47/containers/abc/stats?stream=0", "", false, Viewer},
		{"GET", "/v1.47/containers/abc/top", "", false, Viewer},
		{"GET", "/v1.47/images/json", "", false, Viewer},
		{"GET", "/v1.47/images/library/busybox:latest/json", "", false, Viewer},
		{"GET", "/v1.47/images/busybox/history", "", false, Viewer},
		{"GET", "/v1.47/events?since=1", "", false, Viewer},
		{"GET", "/v1.47/system/df", "", false, Viewer},
		{"GET", "/v1.47/networks", "", false, Viewer},
		{"GET", "/v1.47/volumes", "", false, Viewer},
		// operator: contents, streams and writes
		{"GET", "/v1.47/containers/abc/archive?path=/etc", "", false, Operator},
		{"HEAD", "/v1.47/containers/abc/archive?path=/etc", "", false, Operator},
		{"GET", "/v1.47/containers/abc/export", "", false, Operator},
		{"GET", "/v1.47/images/get?names=busybox", "", false, Operator},
		{"POST", "/v1.47/containers/abc/attach?stream=1", "", false, Operator},
		{"POST", "/v1.47/containers/create?name=web", `{"Image":"busybox","HostConfig":{"Binds":["data:/data"],"NetworkMode":"bridge"}}`, false, Operator},
		{"POST", "/v1.47/containers/create", `{"Image":"busybox","HostConfig":{"Mounts":[{"Type":"volume","Source":"data","Target":"/d"}]}}`, false, Operator},
		{"POST", "/v1.47/containers/abc/start", "", false, Operator},
		{"POST", "/v1.47/containers/abc/exec", `{"Cmd":["sh"],"AttachStdin":true,"Tty":true}`, false, Operator},
		{"POST", "/v1.47/exec/e1/start", `{"Detach":false,"Tty":true}`, false, Operator},
		{"DELETE", "/v1.47/containers/abc?force=1", "", false, Operator},
		{"POST", "/v1.47/images/create?fromImage=busybox", "", false, Operator},
		{"POST", "/v1.47/build?t=x", "", false, Operator},
		{"PUT", "/v1.47/containers/abc/archive?path=/tmp", "", false, Operator},
		{"POST", "/v1.47/volumes/create", `{"Name":"v","Driver":"local"}`, false, Operator},
		{"POST", "/v1.47/volumes/create", `{"Name":"t","Driver":"local","DriverOpts":{"type":"tmpfs","device":"tmpfs","o":"size=10m"}}`, false, Operator},
		{"POST", "/v1.47/networks/create", `{"Name":"n"}`, false, Operator},
		{"POST", "/v1.47/services/create", `{"TaskTemplate":{"ContainerSpec":{"Image":"busybox","Mounts":[{"Type":"volume"}]}}}`, false, Operator},
		// admin: root on the host
		{"POST", "/v1.47/containers/create", `{"Image":"busybox","HostConfig":{"Privileged":true}}`, false, Admin},
		{"POST", "/v1.47/containers/create", `{"Image":"busybox","HostConfig":{"NetworkMode":"host"}}`, false, Admin},
		{"POST", "/v1.47/containers/create", `{"Image":"busybox","HostConfig":{"PidMode":"host"}}`, false, Admin},
		{"POST", "/v1.47/containers/create", `{"Image":"busybox","HostConfig":{"IpcMode":"host"}}`, false, Admin},
		{"POST", "/v1.47/containers/create", `{"Image":"busybox","HostConfig":{"UTSMode":"host"}}`, false, Admin},
		{"POST", "/v1.47/containers/create", `{"Image":"busybox","HostConfig":{"UsernsMode":"host"}}`, false, Admin},
		{"POST", "/v1.47/containers/create", `{"Image":"busybox","HostConfig":{"Binds":["/:/host"]}}`, false, Admin},
		{"POST", "/v1.47/containers/create", `{"Image":"busybox","HostConfig":{"Mounts":[{"Type":"bind","Source":"/etc","Target":"/e"}]}}`, false, Admin},
		{"POST", "/v1.47/containers/create", `{"Image":"busybox","HostConfig":{"Devices":[{"PathOnHost":"/dev/sda"}]}}`, false, Admin},
		{"POST", "/v1.47/containers/create", `{"Image":"busybox","HostConfig":{"CapAdd":["SYS_ADMIN"]}}`, false, Admin},
		{"POST", "/v1.47/containers/create", `{"Image":"busybox","HostConfig":{"SecurityOpt":["seccomp=unconfined"]}}`, false, Admin},
		{"POST", "/v1.47/containers/create", `{"Image":"busybox","HostConfig":{"SecurityOpt":["apparmor=unconfined"]}}`, false, Admin},
		{"POST", "/v1.47/containers/create", ``, true, Admin},
		{"POST", "/v1.47/containers/create", `{"Image":`, false, Admin},
		{"POST", "/v1.47/containers/abc/exec", `{"Cmd":["sh"],"Privileged":true}`, false, Admin},
		{"POST", "/v1.47/volumes/create", `{"Name":"h","Driver":"local","DriverOpts":{"type":"none","device":"/etc","o":"bind"}}`, false, Admin},
		{"POST", "/v1.47/services/create", `{"TaskTemplate":{"ContainerSpec":{"Image":"busybox","Mounts":[{"Type":"bind","Source":"/"}]}}}`, false, Admin},
		{"POST", "/v1.47/plugins/pull?remote=x", `[]`, false, Admin},
		{"POST", "/v1.47/plugins/x/enable", "", false, Admin},
		{"DELETE", "/v1.47/plugins/x", "", false, Admin},
		{"POST", "/v1.47/swarm/init", `{}`, false, Admin},
		{"POST", "/v1.47/swarm/leave?force=1", "", false, Admin},
		{"POST", "/v1.47/nodes/n1/update?version=3", `{}`, false, Admin},
		{"DELETE", "/v1.47/nodes/n1", "", false, Admin},
	}
	if len(tests) < 30 {
		t.Fatalf("the role matrix has %d calls, want at least 30", len(tests))
	}
	rules := NewRules()
	for _, tc := range tests {
		var body []byte
		if tc.body != "" {
			body = []byte(tc.body)
		}
		got := rules.Required(Call{Method: tc.method, URI: tc.uri, Body: body, BodyTooLarge: tc.tooLarge})
		if got.Role != tc.want || got.Reason == "" {
			t.Errorf("%s %s %s: needs %v (%q), want %v", tc.method, tc.uri, tc.body, got.Role, got.Reason, tc.want)
		}
	}
}

func TestRoleOf(t *testing.T) {
	var p Policy
	for _, s := range []string{"group:ops=operator", "user:alice=admin", "*=viewer", "group:ops=viewer"} {
		g, err := ParseGrant(s)
		if err != nil {
			t.Fatal(err)
		}
		p.Set(g)
	}
	if len(p.Grants) != 3 {
		t.Fatalf("grants %v: Set must replace a subject's grant", p.Grants)
	}
	tests := []struct {
		id   Identity
		want Role
		by   Subject
	}{
		{Identity{User: "alice", Groups: []string{"ops"}}, Admin, "user:alice"},
		{Identity{User: "bob", Groups: []string{"dev", "ops"}}, Viewer, "group:ops"}, // ops was lowered to viewer; the first grant of a tie names it
		{Identity{User: "carol"}, Viewer, Everyone},
	}
	for _, tc := range tests {
		if r, g := p.RoleOf(tc.id); r != tc.want || g.Subject != tc.by {
			t.Errorf("%+v: %v by %q, want %v by %q", tc.id, r, g.Subject, tc.want, tc.by)
		}
	}
	p.Set(Grant{Subject: "group:ops", Role: Operator})
	if r, _ := p.RoleOf(Identity{User: "bob", Groups: []string{"ops"}}); r != Operator {
		t.Errorf("the highest role wins: %v", r)
	}
	if !p.Remove(Everyone) || p.Remove(Everyone) {
		t.Error("Remove")
	}
	if r, _ := p.RoleOf(Identity{User: "carol"}); r != None {
		t.Errorf("without * carol has %v", r)
	}
	if err := p.KeepsAdmin([]Identity{{User: "bob", Groups: []string{"ops"}}}); !errors.Is(err, ErrNoAdmin) {
		t.Errorf("KeepsAdmin without an admin: %v", err)
	}
	if err := p.KeepsAdmin([]Identity{{User: "bob"}, {User: "alice"}}); err != nil {
		t.Errorf("KeepsAdmin with alice: %v", err)
	}
	data, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var back Policy
	if err := json.Unmarshal(data, &back); err != nil || back.Check() != nil || len(back.Grants) != len(p.Grants) {
		t.Errorf("round trip %s: %v %+v", data, err, back)
	}
}

func TestParseGrantRefuses(t *testing.T) {
	for _, s := range []string{"alice=admin", "user:alice", "user:=admin", "user:alice=root", "host:x=admin", "user: alice=admin", "group:a\nb=viewer"} {
		if _, err := ParseGrant(s); err == nil {
			t.Errorf("%q parsed", s)
		}
	}
	bad := Policy{Grants: []Grant{{Subject: "user:a", Role: Admin}, {Subject: "user:a", Role: Viewer}}}
	if err := bad.Check(); err == nil {
		t.Error("a subject granted twice passed Check")
	}
	var r Role
	if err := json.Unmarshal([]byte(`"superuser"`), &r); err == nil {
		t.Error("an unknown role unmarshalled")
	}
}

// BenchmarkRequired is the judging of one call, which the engine's
// authorization plugin does on every API request.
func BenchmarkRequired(b *testing.B) {
	rules := NewRules()
	calls := []Call{
		{Method: "GET", URI: "/v1.47/containers/json?all=1"},
		{Method: "POST", URI: "/v1.47/containers/create?name=web", Body: []byte(`{"Image":"busybox","Cmd":["sleep","60"],"HostConfig":{"Binds":["data:/data"],"NetworkMode":"bridge","RestartPolicy":{"Name":"no"}}}`)},
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if rules.Required(calls[i%2]).Role == None {
			b.Fatal("no role")
		}
	}
}
