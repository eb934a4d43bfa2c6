package contexts

import (
	"strings"
	"testing"
	"time"
)

func TestParseHost(t *testing.T) {
	tests := []struct {
		in, want, warn, err string
	}{
		{"tcp://engine.example.com:2376", "tcp://engine.example.com:2376", "", ""},
		{"tcp://engine.example.com", "tcp://engine.example.com:2376", "", ""},
		{"tcp://[::1]:2376", "tcp://[::1]:2376", "", ""},
		{"https://10.0.0.1:2376", "tcp://10.0.0.1:2376", "", ""},
		{"tcp://10.0.0.1:2375", "tcp://10.0.0.1:2375", "2375", ""},
		{"engine:2376", "", "", "needs a scheme"},
		{"unix:///var/run/docker.sock", "", "", "tcp://"},
		{"ssh://me@host", "", "", "tcp://"},
		{"tcp://:2376", "", "", "no host name"},
		{"tcp://h:99999", "", "", "not a TCP port"},
		{"tcp://h:2376/path", "", "", "only tcp://HOST:PORT"},
		{"", "", "", "required"},
	}
	for _, tt := range tests {
		got, warn, err := ParseHost(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseHost(%q) err = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want || !strings.Contains(warn, tt.warn) || (tt.warn == "" && warn != "") {
			t.Errorf("ParseHost(%q) = %q, %q, %v", tt.in, got, warn, err)
		}
	}
}

func TestStampMovesWhenContextsComeAndGo(t *testing.T) {
	s := Open(t.TempDir())
	before := s.Stamp()
	if _, _, err := s.Create(opts(t, "stamped")); err != nil {
		t.Fatal(err)
	}
	created := s.Stamp()
	if created == before || created == "" {
		t.Fatalf("create left the stamp at %q", created)
	}
	if s.Stamp() != created {
		t.Fatal("the stamp moved without a change")
	}
	// Coarse file-system clocks could give the removal the same time.
	time.Sleep(20 * time.Millisecond)
	if _, err := s.Remove("stamped"); err != nil {
		t.Fatal(err)
	}
	if s.Stamp() == created {
		t.Fatal("remove left the stamp unchanged")
	}
}
