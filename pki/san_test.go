package pki

import (
	"strings"
	"testing"
)

func TestParseSANsAccepts(t *testing.T) {
	tests := []struct {
		in       []string
		wantDNS  []string
		wantIPs  []string
		warnings int
	}{
		{[]string{"host.example.com"}, []string{"host.example.com"}, nil, 0},
		{[]string{"Host.Example.COM."}, []string{"host.example.com"}, nil, 0},
		{[]string{"*.example.com"}, []string{"*.example.com"}, nil, 0},
		{[]string{"localhost"}, []string{"localhost"}, nil, 0},
		{[]string{"10.0.0.5"}, nil, []string{"10.0.0.5"}, 0},
		{[]string{"::1"}, nil, []string{"::1"}, 0},
		{[]string{"[::1]"}, nil, []string{"::1"}, 0},
		{[]string{"::ffff:10.0.0.1"}, nil, []string{"10.0.0.1"}, 0},
		{[]string{"DNS:x.example.com"}, []string{"x.example.com"}, nil, 0},
		{[]string{"dns:x.example.com"}, []string{"x.example.com"}, nil, 0},
		{[]string{"IP:192.168.0.1"}, nil, []string{"192.168.0.1"}, 0},
		{[]string{"DNS:sub.example.com,IP:192.168.0.1"}, []string{"sub.example.com"}, []string{"192.168.0.1"}, 0},
		{[]string{"a.example.com, b.example.com"}, []string{"a.example.com", "b.example.com"}, nil, 0},
		{[]string{"localhost", "LOCALHOST", "DNS:localhost"}, []string{"localhost"}, nil, 0},
		{[]string{"IP:0.0.0.0"}, nil, []string{"0.0.0.0"}, 1},
		{[]string{"::"}, nil, []string{"::"}, 1},
		{[]string{"docker_host.lan"}, []string{"docker_host.lan"}, nil, 0},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.in, "|"), func(t *testing.T) {
			s, warns, err := ParseSANs(tt.in)
			if err != nil {
				t.Fatalf("ParseSANs(%q): %v", tt.in, err)
			}
			if strings.Join(s.DNSNames, ",") != strings.Join(tt.wantDNS, ",") {
				t.Errorf("DNS = %q, want %q", s.DNSNames, tt.wantDNS)
			}
			var ips []string
			for _, ip := range s.IPs {
				ips = append(ips, ip.String())
			}
			if strings.Join(ips, ",") != strings.Join(tt.wantIPs, ",") {
				t.Errorf("IPs = %q, want %q", ips, tt.wantIPs)
			}
			if len(warns) != tt.warnings {
				t.Errorf("warnings = %q, want %d", warns, tt.warnings)
			}
		})
	}
}

func TestParseSANsRejects(t *testing.T) {
	tests := []struct {
		in      string
		wantMsg string
	}{
		{"IP=192.168.0.1", "write IP:192.168.0.1"},
		{"DNS:sub.example.com;IP=192.168.0.1", "';'"},
		{"DNS:", "no value after DNS:"},
		{"IP:", "no value after IP:"},
		{"999.1.1.1", "not a valid IP address"},
		{"1.2.3", "not a valid IP address"},
		{"IP:1.2.3", "not a valid IP address"},
		{"IP:host.example.com", "not a valid IP address"},
		{"DNS:10.0.0.1", "write IP:10.0.0.1"},
		{"host example.com", "space"},
		{"a.example.com,,b.example.com", "empty SAN"},
		{"", "empty SAN"},
		{"a.*.example.com", "leftmost"},
		{"*.com", "two labels"},
		{"foo*.example.com", "whole label"},
		{"-bad.example.com", "start or end"},
		{"host..example.com", "empty label"},
		{"tcp://host:2376", "URL"},
		{"host.example.com:2376", "without a port"},
		{"fe80::1%eth0", "zone"},
		{"héllo.example.com", "contains"},
		{strings.Repeat("a", 64) + ".example.com", "63"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, _, err := ParseSANs([]string{tt.in})
			if err == nil {
				t.Fatalf("ParseSANs(%q) accepted it", tt.in)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not mention %q", err, tt.wantMsg)
			}
		})
	}
}

func TestSANsCovers(t *testing.T) {
	s, _, err := ParseSANs([]string{"*.example.com,localhost,127.0.0.1,::1"})
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]bool{
		"a.example.com":   true,
		"A.Example.com.":  true,
		"a.b.example.com": false,
		"example.com":     false,
		"localhost":       true,
		"127.0.0.1":       true,
		"[::1]":           true,
		"127.0.0.2":       false,
		"other":           false,
	} {
		if got := s.Covers(host); got != want {
			t.Errorf("Covers(%q) = %v, want %v", host, got, want)
		}
	}
}

func FuzzParseSANs(f *testing.F) {
	for _, s := range []string{"localhost", "IP=1.2.3.4", "DNS:a;IP=b", "DNS:", "*.a.b", "::1", "1.2.3", "a,b,,c", "[::1]", "IP:0.0.0.0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, _, err := ParseSANs([]string{in})
		if err != nil {
			return
		}
		// Whatever is accepted must round-trip through the openssl form and
		// be covered by itself.
		again, _, err := ParseSANs(s.Strings())
		if err != nil {
			t.Fatalf("accepted %q but rejected its canonical form %q: %v", in, s.Strings(), err)
		}
		if again.Len() != s.Len() {
			t.Fatalf("canonical form of %q changed length: %d -> %d", in, s.Len(), again.Len())
		}
		for _, d := range s.DNSNames {
			if !strings.HasPrefix(d, "*") && !s.Covers(d) {
				t.Fatalf("%q does not cover its own name %q", in, d)
			}
		}
		for _, ip := range s.IPs {
			if !s.Covers(ip.String()) {
				t.Fatalf("%q does not cover its own IP %s", in, ip)
			}
		}
	})
}
