package pki

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// SANs are the subject alternative names of a server certificate. Go's TLS
// stack (and so dockerd and the docker CLI) checks only these, never the CN.
type SANs struct {
	DNSNames []string
	IPs      []net.IP
}

// Len is the number of names.
func (s SANs) Len() int { return len(s.DNSNames) + len(s.IPs) }

// First is the first name given, used as the certificate's CN.
func (s SANs) First() string {
	if len(s.DNSNames) > 0 {
		return s.DNSNames[0]
	}
	if len(s.IPs) > 0 {
		return s.IPs[0].String()
	}
	return ""
}

// Strings lists the names in openssl's "DNS:x" / "IP:x" form.
func (s SANs) Strings() []string {
	out := make([]string, 0, s.Len())
	for _, d := range s.DNSNames {
		out = append(out, "DNS:"+d)
	}
	for _, ip := range s.IPs {
		out = append(out, "IP:"+ip.String())
	}
	return out
}

// SANWarning is something legal but probably not what the user meant.
type SANWarning string

// ParseSANs reads host names and addresses as users type them: bare names
// ("host.example.com", "*.example.com", "10.0.0.5", "::1"), openssl's
// "DNS:x" and "IP:x" forms, and comma-separated lists of either. Duplicates
// are dropped. The mistakes of the guides people copy ("IP=1.2.3.4",
// "DNS:a;IP=b", "DNS:" with nothing after it, "999.1.1.1", spaces) are
// rejected with a sentence that says what to type instead.
func ParseSANs(values []string) (SANs, []SANWarning, error) {
	var (
		s        SANs
		warnings []SANWarning
		seen     = map[string]bool{}
	)
	for _, v := range values {
		for _, item := range strings.Split(v, ",") {
			name, isIP, err := parseSAN(item)
			if err != nil {
				return SANs{}, nil, err
			}
			key := strings.ToLower(name)
			if seen[key] {
				continue
			}
			seen[key] = true
			if isIP {
				addr := netip.MustParseAddr(name)
				if addr.IsUnspecified() {
					warnings = append(warnings, SANWarning(fmt.Sprintf(
						"%s is the 'listen on every address' wildcard, not an address a client connects to; add the host's real IP or name", name)))
				}
				s.IPs = append(s.IPs, net.IP(addr.AsSlice()))
				continue
			}
			s.DNSNames = append(s.DNSNames, name)
		}
	}
	return s, warnings, nil
}

// parseSAN returns the canonical name and whether it is an IP address.
func parseSAN(raw string) (string, bool, error) {
	kind, item, err := splitSAN(raw)
	if err != nil {
		return "", false, err
	}
	// An IPv6 literal may come bracketed, as in a URL.
	if strings.HasPrefix(item, "[") && strings.HasSuffix(item, "]") {
		item = item[1 : len(item)-1]
	}
	if addr, err := netip.ParseAddr(item); err == nil {
		if kind == "DNS" {
			return "", false, fmt.Errorf("SAN DNS:%s is an IP address: write IP:%s", item, item)
		}
		if addr.Zone() != "" {
			return "", false, fmt.Errorf("SAN %q has an IPv6 zone; certificates cannot name one", item)
		}
		return addr.Unmap().String(), true, nil
	}
	if kind == "IP" || looksNumeric(item) {
		return "", false, fmt.Errorf("SAN %q is not a valid IP address", item)
	}
	if err := checkDNSName(item); err != nil {
		return "", false, err
	}
	return strings.ToLower(strings.TrimSuffix(item, ".")), false, nil
}

// splitSAN reads one SAN as written: kind is DNS or IP when it has that
// prefix (openssl's TYPE:VALUE), else empty.
func splitSAN(raw string) (kind, item string, err error) {
	item = strings.TrimSpace(raw)
	switch {
	case item == "":
		return "", "", fmt.Errorf("empty SAN in %q: remove the extra comma", raw)
	case strings.ContainsAny(item, " \t"):
		return "", "", fmt.Errorf("SAN %q contains a space: separate names with commas or repeat --san", item)
	case strings.Contains(item, ";"):
		return "", "", fmt.Errorf("SAN %q contains ';': separate names with commas, e.g. DNS:a.example.com,IP:192.168.0.1", item)
	}
	if i := strings.Index(item, "="); i >= 0 {
		return "", "", fmt.Errorf("SAN %q uses '=': write %s:%s (openssl's form is TYPE:VALUE)", item, strings.ToUpper(item[:i]), item[i+1:])
	}
	prefix, value, ok := strings.Cut(item, ":")
	if prefix = strings.ToUpper(prefix); !ok || (prefix != "DNS" && prefix != "IP") {
		return "", item, nil
	}
	if value == "" {
		return "", "", fmt.Errorf("SAN %q has no value after %s", raw, prefix+":")
	}
	return prefix, value, nil
}

// looksNumeric catches things like 999.1.1.1 or 1.2.3 that are meant as IPv4
// addresses, which would otherwise pass as (all-numeric) DNS names.
func looksNumeric(s string) bool {
	s = strings.TrimSuffix(s, ".")
	return s != "" && strings.Trim(s, "0123456789.") == ""
}

func checkDNSName(name string) error {
	n := strings.TrimSuffix(name, ".")
	if len(n) > 253 {
		return fmt.Errorf("DNS name %q is longer than 253 characters", name)
	}
	if strings.Contains(n, "://") || strings.ContainsAny(n, "/?#@") {
		return fmt.Errorf("SAN %q looks like a URL: give only the host name", name)
	}
	if strings.Contains(n, ":") {
		return fmt.Errorf("SAN %q contains ':': give the host without a port, and use DNS: or IP: as the only prefix", name)
	}
	labels := strings.Split(n, ".")
	for i, l := range labels {
		if err := checkLabel(name, l, i, len(labels)); err != nil {
			return err
		}
	}
	return nil
}

// checkLabel checks label i of the n labels of the DNS name.
func checkLabel(name, l string, i, n int) error {
	switch {
	case l == "*" && i != 0:
		return fmt.Errorf("DNS name %q: a wildcard may only be the leftmost label", name)
	case l == "*" && n < 3:
		return fmt.Errorf("DNS name %q: a wildcard needs at least two labels after it (*.example.com)", name)
	case l == "*":
		return nil
	case l == "":
		return fmt.Errorf("DNS name %q has an empty label", name)
	case len(l) > 63:
		return fmt.Errorf("DNS name %q has a label longer than 63 characters", name)
	case strings.Contains(l, "*"):
		return fmt.Errorf("DNS name %q: '*' must be a whole label (*.example.com)", name)
	case l[0] == '-' || l[len(l)-1] == '-':
		return fmt.Errorf("DNS name %q: a label may not start or end with '-'", name)
	}
	for _, r := range l {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return fmt.Errorf("DNS name %q contains %q: only letters, digits, '-' and '.' are allowed", name, r)
		}
	}
	return nil
}

// Covers reports whether the SANs include host (a name or an IP address),
// applying the same wildcard rule as Go's crypto/x509.
func (s SANs) Covers(host string) bool {
	if addr, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return slices.ContainsFunc(s.IPs, func(ip net.IP) bool {
			a, ok := netip.AddrFromSlice(ip)
			return ok && a.Unmap() == addr.Unmap()
		})
	}
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	for _, d := range s.DNSNames {
		if d == h {
			return true
		}
		if rest, ok := strings.CutPrefix(d, "*."); ok {
			if i := strings.Index(h, "."); i > 0 && h[i+1:] == rest {
				return true
			}
		}
	}
	return false
}
