package plugin

import (
	"crypto/sha1"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/docker/cli/cli"
	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/internal/output"
	"github.com/docker-tls/docker-tls/pki"
)

// certView is how inspect shows a certificate, and its JSON.
type certView struct {
	Source            string    `json:"source"`
	Subject           string    `json:"subject"`
	Groups            []string  `json:"groups,omitempty"`
	Issuer            string    `json:"issuer"`
	Serial            string    `json:"serial"`
	NotBefore         time.Time `json:"notBefore"`
	NotAfter          time.Time `json:"notAfter"`
	DaysLeft          int       `json:"daysLeft"`
	KeyType           string    `json:"keyType"`
	SignatureAlg      string    `json:"signatureAlgorithm"`
	IsCA              bool      `json:"isCA"`
	KeyUsage          []string  `json:"keyUsage,omitempty"`
	ExtKeyUsage       []string  `json:"extKeyUsage,omitempty"`
	SANs              []string  `json:"sans,omitempty"`
	SubjectKeyID      string    `json:"subjectKeyId,omitempty"`
	AuthorityKeyID    string    `json:"authorityKeyId,omitempty"`
	FingerprintSHA256 string    `json:"fingerprintSHA256"`
	FingerprintSHA1   string    `json:"fingerprintSHA1"`
	Chain             string    `json:"chain,omitempty"`
}

func newCertView(src string, c *x509.Certificate) certView {
	sum := sha1.Sum(c.Raw)
	v := certView{Source: src, Subject: c.Subject.String(), Issuer: c.Issuer.String(), Serial: fmt.Sprintf("%x", c.SerialNumber),
		NotBefore: c.NotBefore, NotAfter: c.NotAfter, DaysLeft: int(time.Until(c.NotAfter).Hours() / 24),
		KeyType: pki.DescribeKey(c.PublicKey), SignatureAlg: c.SignatureAlgorithm.String(), IsCA: c.IsCA,
		ExtKeyUsage: pki.EKUNames(c), SANs: pki.CertSANs(c).Strings(),
		SubjectKeyID: hex.EncodeToString(c.SubjectKeyId), AuthorityKeyID: hex.EncodeToString(c.AuthorityKeyId),
		FingerprintSHA256: pki.Fingerprint(c), FingerprintSHA1: strings.ToUpper(hex.EncodeToString(sum[:])),
		KeyUsage: pki.KeyUsageNames(c)}
	// A client's Organization values are its groups; a CA's or a
	// server's organization is only a name.
	if !c.IsCA && slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		v.Groups = pki.GroupsOf(c)
	}
	return v
}

type inspectOptions struct {
	format string
}

func newInspectCommand(a *app) *cobra.Command {
	var opts inspectOptions
	cmd := &cobra.Command{
		Use:   "inspect FILE|CONTEXT",
		Short: "Show a certificate: subject, SANs, EKUs, validity, fingerprints, chain",
		Long: `Show the certificates in a PEM or DER file, or a context's client certificate
and CA (with whether the one chains to the other), in readable form, or
as JSON with --format json.`,
		Example: `  docker tls inspect prod
  docker tls inspect ./engine-tls/server-cert.pem
  docker tls inspect prod --format '{{.NotAfter}}'`,
		Args: cli.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runInspect(a, opts, args[0])
		},
		ValidArgsFunction: completeContextNames(a, false),
	}
	cmd.Flags().StringVarP(&opts.format, "format", "f", "", `"json" or a Go template per certificate`)
	return cmd
}

func runInspect(a *app, opts inspectOptions, arg string) error {
	var views []certView
	if data, err := readPEMFile(arg); err == nil {
		certs, err := pki.ParseCertificates(data)
		if err != nil {
			return fmt.Errorf("%s: %w", arg, err)
		}
		for i, c := range certs {
			v := newCertView(arg, c)
			if i+1 < len(certs) {
				v.Chain = chainWord(c, certs[i+1])
			}
			views = append(views, v)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	} else {
		c, cerr := a.contexts().Get(arg)
		if cerr != nil {
			return fmt.Errorf("%s is neither a file nor a context", arg)
		}
		caPEM, certPEM, err := a.contexts().PEMs(c)
		if err != nil {
			return fmt.Errorf("context %q has no client certificate", arg)
		}
		leaf, err := pki.ParseCertificate(certPEM)
		if err != nil {
			return err
		}
		v := newCertView("context "+c.Name+" cert.pem", leaf)
		if ca, err := pki.ParseCertificate(caPEM); err == nil {
			v.Chain = chainWord(leaf, ca)
			views = append(views, v, newCertView("context "+c.Name+" ca.pem", ca))
		} else {
			views = append(views, v)
		}
	}
	return printCertViews(a.cli.Out(), opts.format, views)
}

func chainWord(leaf, issuer *x509.Certificate) string {
	if err := leaf.CheckSignatureFrom(issuer); err != nil {
		return fmt.Sprintf("NOT signed by %q: %v", issuer.Subject.CommonName, err)
	}
	return fmt.Sprintf("signed by %q", issuer.Subject.CommonName)
}

func printCertViews(out io.Writer, format string, views []certView) error {
	switch format {
	case "json":
		return output.JSON(out, views)
	case "":
		for i, v := range views {
			if i > 0 {
				fmt.Fprintln(out)
			}
			fmt.Fprintf(out, "%s\n", v.Source)
			row := func(k, val string) {
				if val != "" {
					fmt.Fprintf(out, "  %-20s %s\n", k, val)
				}
			}
			row("Subject", v.Subject)
			row("Groups", strings.Join(v.Groups, ", "))
			row("Issuer", v.Issuer)
			row("Serial", v.Serial)
			row("Valid", fmt.Sprintf("%s to %s (%d days left)", v.NotBefore.Format(time.RFC3339), v.NotAfter.Format(time.RFC3339), v.DaysLeft))
			row("Key", v.KeyType)
			row("Signature", v.SignatureAlg)
			row("CA", fmt.Sprint(v.IsCA))
			row("Key usage", strings.Join(v.KeyUsage, ", "))
			row("Extended key usage", strings.Join(v.ExtKeyUsage, ", "))
			row("SANs", strings.Join(v.SANs, ", "))
			row("Subject key ID", v.SubjectKeyID)
			row("Authority key ID", v.AuthorityKeyID)
			row("SHA-256", v.FingerprintSHA256)
			row("SHA-1", v.FingerprintSHA1)
			row("Chain", v.Chain)
		}
		return nil
	}
	return output.Template(out, format, views)
}
