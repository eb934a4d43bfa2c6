package pki

import (
	"crypto"
	"slices"
	"unicode"
	"unicode/utf8"

	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// Lifetimes used when the caller gives none.
const (
	DefaultCALifetime     = 10 * 365 * 24 * time.Hour
	DefaultServerLifetime = 825 * 24 * time.Hour // dockerd loads its cert only at start: long, but within what browsers and Apple accept
	DefaultClientLifetime = 90 * 24 * time.Hour  // dockerd checks no CRL: a short life is the revocation story

	// Backdate tolerates clock skew between the machine that issues and the
	// machine that verifies: a laptop a few minutes ahead of the engine.
	Backdate = 5 * time.Minute
)

// Profile is what a certificate is for.
type Profile string

// The profiles docker-tls issues.
const (
	ServerProfile Profile = "server" // EKU serverAuth, SANs required: dockerd's --tlscert
	ClientProfile Profile = "client" // EKU clientAuth: the docker CLI's --tlscert
)

// ParseProfile reads "server" or "client".
func ParseProfile(s string) (Profile, error) {
	switch Profile(strings.ToLower(s)) {
	case ServerProfile:
		return ServerProfile, nil
	case ClientProfile:
		return ClientProfile, nil
	}
	return "", fmt.Errorf("unknown profile %q: use server or client", s)
}

// CAOptions describe a new self-signed CA.
type CAOptions struct {
	// CommonName defaults to "docker-tls CA".
	CommonName   string
	Organization string
	// Lifetime defaults to DefaultCALifetime.
	Lifetime time.Duration
	// Now defaults to time.Now(); tests set it.
	Now time.Time
}

// CA is a certificate authority: its certificate and the signer for its key.
// The signer may live anywhere (memory, a keyring, a remote service).
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// NewCA makes a self-signed root CA certificate for key: BasicConstraints
// CA:TRUE critical with pathlen 0 (it signs leaves only), KeyUsage
// certSign+crlSign critical, a SubjectKeyIdentifier, a 128-bit random serial.
func NewCA(key crypto.Signer, opts CAOptions) (*CA, error) {
	if err := checkKeyStrength(key.Public()); err != nil {
		return nil, err
	}
	if err := CheckName("common name", opts.CommonName); err != nil {
		return nil, err
	}
	if err := CheckName("organization", opts.Organization); err != nil {
		return nil, err
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	life := opts.Lifetime
	if life == 0 {
		life = DefaultCALifetime
	}
	if life < 0 {
		return nil, fmt.Errorf("CA lifetime %s is negative", life)
	}
	cn := opts.CommonName
	if cn == "" {
		cn = "docker-tls CA"
	}
	serial, err := NewSerial()
	if err != nil {
		return nil, err
	}
	ski, err := SubjectKeyID(key.Public())
	if err != nil {
		return nil, err
	}
	subject := pkix.Name{CommonName: cn}
	if opts.Organization != "" {
		subject.Organization = []string{opts.Organization}
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               subject,
		NotBefore:             now.Add(-Backdate).UTC(),
		NotAfter:              now.Add(life).UTC(),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		SubjectKeyId:          ski,
		AuthorityKeyId:        ski,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse new CA certificate: %w", err)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// LoadCA pairs a CA certificate with its key and checks that they belong
// together and that the certificate may sign: CA:TRUE, certSign if KeyUsage
// is present. It does not check validity dates; Issue does, at issue time.
func LoadCA(cert *x509.Certificate, key crypto.Signer) (*CA, error) {
	if err := CheckCACert(cert); err != nil {
		return nil, err
	}
	if err := CheckKeyMatch(cert, key); err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// CheckCACert says why cert cannot act as a CA, or returns nil.
func CheckCACert(cert *x509.Certificate) error {
	if !cert.BasicConstraintsValid || !cert.IsCA {
		if cert.Version < 3 {
			return errors.New("not a CA certificate: it is an X.509 v1 certificate without BasicConstraints CA:TRUE " +
				"(what `openssl x509 -req -signkey` makes); create the CA with `openssl req -x509` or `docker tls ca init`")
		}
		return errors.New("not a CA certificate: BasicConstraints CA:TRUE is missing, so no verifier will accept what it signs")
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return errors.New("not a CA certificate: its KeyUsage lacks keyCertSign")
	}
	return nil
}

// Issuer issues certificates: a CA, or a CA whose every certificate is
// also recorded in its inventory before it is handed out.
type Issuer interface {
	Issue(IssueRequest) (*x509.Certificate, error)
	// Certificate is the issuing CA's certificate.
	Certificate() *x509.Certificate
}

// Certificate is the CA's certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.Cert }

// IssueRequest describes a leaf certificate to sign.
type IssueRequest struct {
	Profile Profile
	// PublicKey is the subject's key, from a local key or a CSR.
	PublicKey crypto.PublicKey
	// CommonName: for ClientProfile, the client's name (required); for
	// ServerProfile it defaults to the first SAN.
	CommonName string
	// Groups are the client's groups, written as the subject's
	// Organization values (the Kubernetes convention): an engine's policy
	// grants roles to them. Renewals carry them over (GroupsOf).
	Groups []string
	// SANs are required for ServerProfile; a client cert may carry some too.
	SANs SANs
	// Lifetime defaults to the profile's default.
	Lifetime time.Duration
	// Now defaults to time.Now().
	Now time.Time
}

// Issue signs a leaf certificate with the profile's extensions:
//   - server: EKU serverAuth, KeyUsage digitalSignature (+keyEncipherment
//     for RSA keys, which RSA key exchange needs), SANs required, CN the
//     first SAN;
//   - client: EKU clientAuth, KeyUsage digitalSignature, CN the client name.
//
// Both get a 128-bit random serial, NotBefore Backdate in the past, SKI and
// AKI. A lifetime reaching past the CA's own expiry is an error: silently
// cutting it short would surprise whoever planned the renewal.
func (ca *CA) Issue(req IssueRequest) (*x509.Certificate, error) {
	now := req.Now
	if now.IsZero() {
		now = time.Now()
	}
	if err := ca.checkRequest(req, now); err != nil {
		return nil, err
	}
	tmpl, life, err := profileTemplate(&req)
	if err != nil {
		return nil, err
	}
	if life < 0 {
		return nil, fmt.Errorf("lifetime %s is negative", life)
	}
	if len(req.CommonName) > 64 {
		return nil, fmt.Errorf("common name %q is longer than the 64 characters X.509 allows", req.CommonName)
	}
	notAfter := now.Add(life)
	if notAfter.After(ca.Cert.NotAfter) {
		left := int(ca.Cert.NotAfter.Sub(now).Hours() / 24)
		return nil, fmt.Errorf("a %d-day certificate would outlive its CA, which expires on %s: ask for at most %d days",
			int(life.Hours()/24), ca.Cert.NotAfter.UTC().Format("2006-01-02"), left)
	}
	serial, err := NewSerial()
	if err != nil {
		return nil, err
	}
	ski, err := SubjectKeyID(req.PublicKey)
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.Subject = pkix.Name{CommonName: req.CommonName}
	if len(req.Groups) > 0 {
		tmpl.Subject.Organization = slices.Clone(req.Groups)
	}
	tmpl.NotBefore = now.Add(-Backdate).UTC()
	tmpl.NotAfter = notAfter.UTC()
	tmpl.SubjectKeyId = ski
	// Go sets the AKI from the parent's SKI; a CA made elsewhere may lack
	// one, so compute it the same way rather than emit no AKI.
	if len(ca.Cert.SubjectKeyId) == 0 {
		if tmpl.AuthorityKeyId, err = SubjectKeyID(ca.Cert.PublicKey); err != nil {
			return nil, err
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, req.PublicKey, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("sign %s certificate: %w", req.Profile, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse new certificate: %w", err)
	}
	return cert, nil
}

// profileTemplate is the certificate a profile asks for, before its
// subject, serial and dates, and its default lifetime; a server
// certificate's CN defaults to its first SAN.
func profileTemplate(req *IssueRequest) (*x509.Certificate, time.Duration, error) {
	tmpl := &x509.Certificate{
		BasicConstraintsValid: true,
		IsCA:                  false,
		DNSNames:              req.SANs.DNSNames,
		IPAddresses:           req.SANs.IPs,
	}
	life := req.Lifetime
	switch req.Profile {
	case ServerProfile:
		if len(req.Groups) > 0 {
			return nil, 0, errors.New("groups are for client certificates: a server certificate names an engine, not a user")
		}
		if req.SANs.Len() == 0 {
			return nil, 0, errors.New("a server certificate needs at least one DNS name or IP address: clients check only these, never the CN")
		}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		if _, isRSA := req.PublicKey.(*rsa.PublicKey); isRSA {
			tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
		}
		if req.CommonName == "" {
			req.CommonName = req.SANs.First()
		}
		if life == 0 {
			life = DefaultServerLifetime
		}
	case ClientProfile:
		if strings.TrimSpace(req.CommonName) == "" {
			return nil, 0, errors.New("a client certificate needs a name (its CN)")
		}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		if life == 0 {
			life = DefaultClientLifetime
		}
	default:
		return nil, 0, fmt.Errorf("unknown profile %q", req.Profile)
	}
	return tmpl, life, nil
}

// checkRequest refuses an issue the CA cannot make now: outside its own
// validity, no or a weak key, names X.509 or terminals would mangle.
func (ca *CA) checkRequest(req IssueRequest, now time.Time) error {
	if now.Before(ca.Cert.NotBefore) {
		return fmt.Errorf("the CA is not valid until %s (check this machine's clock)", ca.Cert.NotBefore.UTC().Format(time.RFC3339))
	}
	if now.After(ca.Cert.NotAfter) {
		return fmt.Errorf("the CA expired on %s: create a new CA", ca.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	if req.PublicKey == nil {
		return errors.New("no public key to certify")
	}
	if err := CheckName("common name", req.CommonName); err != nil {
		return err
	}
	if err := CheckGroups(req.Groups); err != nil {
		return err
	}
	return checkKeyStrength(req.PublicKey)
}

// MaxGroups bounds the groups of one certificate.
const MaxGroups = 32

// CheckGroups refuses groups a policy could not tell apart or a terminal
// would mangle: empty, repeated, with spaces around, control characters,
// or too many.
func CheckGroups(groups []string) error {
	if len(groups) > MaxGroups {
		return fmt.Errorf("%d groups: a certificate carries at most %d", len(groups), MaxGroups)
	}
	for i, g := range groups {
		if g == "" || strings.TrimSpace(g) != g {
			return fmt.Errorf("the group %q is empty or has spaces at its start or end: give the name alone", g)
		}
		if err := CheckName("group", g); err != nil {
			return err
		}
		if slices.Contains(groups[:i], g) {
			return fmt.Errorf("the group %q is given twice", g)
		}
	}
	return nil
}

// GroupsOf are a client certificate's groups: its subject's Organization
// values, sorted. They are a set: the certificate holds them as one
// multi-valued RDN, whose DER SET OF keeps no order.
func GroupsOf(cert *x509.Certificate) []string {
	g := slices.Clone(cert.Subject.Organization)
	slices.Sort(g)
	return g
}

// Identity is a client certificate's user (CN) and groups, as a person
// reads them: "alice (groups dev,ops)".
func Identity(cert *x509.Certificate) string {
	if g := GroupsOf(cert); len(g) > 0 {
		return fmt.Sprintf("%s (groups %s)", cert.Subject.CommonName, strings.Join(g, ","))
	}
	return cert.Subject.CommonName
}

// NewSerial returns a random positive serial of 128 bits, as the CA/Browser
// Forum asks (at least 64 bits of entropy) with room to spare.
func NewSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for range 8 {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("random serial: %w", err)
		}
		// A serial with its top bits zero is still unique; only zero itself
		// is not a valid serial.
		if n.Sign() > 0 {
			return n, nil
		}
	}
	return nil, errors.New("random serial: the random source returned zero repeatedly")
}

// SubjectKeyID derives a key identifier as RFC 7093 section 2 method 1: the
// leftmost 160 bits of the SHA-256 of the subjectPublicKey bit string.
func SubjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	var spki struct {
		Algorithm asn1.RawValue
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, fmt.Errorf("decode public key: %w", err)
	}
	sum := sha256.Sum256(spki.PublicKey.Bytes)
	return sum[:20], nil
}

// NewCSR makes a PKCS#10 request for key with the given CN and SANs, for
// sending to a CA that holds its key elsewhere.
func NewCSR(key crypto.Signer, commonName string, sans SANs) (*x509.CertificateRequest, error) {
	if err := CheckName("common name", commonName); err != nil {
		return nil, err
	}
	tmpl := &x509.CertificateRequest{
		Subject:     pkix.Name{CommonName: commonName},
		DNSNames:    sans.DNSNames,
		IPAddresses: sans.IPs,
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, fmt.Errorf("create CSR: %w", err)
	}
	return x509.ParseCertificateRequest(der)
}

// SignCSR issues a certificate for the key in csr after checking its
// self-signature. The CSR contributes only its public key: profile, subject,
// SANs and lifetime come from req, decided by the CA's side.
func (ca *CA) SignCSR(csr *x509.CertificateRequest, req IssueRequest) (*x509.Certificate, error) {
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("CSR signature does not verify: %w", err)
	}
	req.PublicKey = csr.PublicKey
	return ca.Issue(req)
}

// CheckName refuses a subject name (what: "common name", "organization")
// that holds control characters, which would forge lines in listings and
// logs, or bidirectional controls (U+202E and its kind), which make a
// name display as another, or that is longer than X.520 allows (64
// characters).
func CheckName(what, name string) error {
	for _, r := range name {
		if unicode.IsControl(r) {
			return fmt.Errorf("the %s %q contains a control character (U+%04X): use printable characters only", what, name, r)
		}
		if unicode.Is(unicode.Bidi_Control, r) {
			return fmt.Errorf("the %s %q contains a bidirectional control (U+%04X), which makes a name display as another: use printable characters only", what, name, r)
		}
	}
	if n := utf8.RuneCountInString(name); n > 64 {
		return fmt.Errorf("the %s is %d characters long; X.509 allows at most 64", what, n)
	}
	return nil
}
