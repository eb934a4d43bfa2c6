package plugin

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/castore"
	"github.com/docker-tls/docker-tls/certdir"
	"github.com/docker-tls/docker-tls/internal/fsutil"
	"github.com/docker-tls/docker-tls/pki"
)

// issueOptions are the flags server issue and client issue share.
type issueOptions struct {
	ca         string
	out        string
	keyType    string
	days       int
	force      bool
	passphrase passphraseOptions
}

func (o *issueOptions) install(cmd *cobra.Command, a *app, defaultDays int) {
	f := cmd.Flags()
	f.StringVar(&o.ca, "ca", castore.DefaultName, "CA that signs the certificate")
	f.StringVarP(&o.out, "out", "o", "", "Directory to write the files to (created 0700 if missing)")
	f.StringVar(&o.keyType, "key-type", string(pki.DefaultKeyType), "Key type: "+keyTypeNames())
	addDaysFlag(f, &o.days, fmt.Sprint(defaultDays))
	f.BoolVar(&o.force, "force", false, "Overwrite existing files in the output directory")
	o.passphrase.install(f)
	_ = cmd.MarkFlagRequired("out")
	_ = cmd.MarkFlagDirname("out")
	_ = cmd.RegisterFlagCompletionFunc("ca", completeCANames(a))
	_ = cmd.RegisterFlagCompletionFunc("key-type", completeKeyTypes)
}

// writeOut writes a directory of files as one unit (certdir.Write),
// with the flags that get past an existing file.
func writeOut(dir string, files []certdir.File, force bool, flag string) error {
	err := certdir.Write(dir, files, force)
	if errors.Is(err, fsutil.ErrExists) {
		return fmt.Errorf("%w: use --force to overwrite, or choose another %s", err, flag)
	}
	return err
}

// issueLeaf makes a key and a certificate for it from the named CA.
func issueLeaf(a *app, o issueOptions, req pki.IssueRequest, dest string) (*castore.CA, crypto.Signer, *x509.Certificate, error) {
	kt, err := pki.ParseKeyType(o.keyType)
	if err != nil {
		return nil, nil, nil, err
	}
	if req.Lifetime, err = lifetime(o.days); err != nil {
		return nil, nil, nil, err
	}
	stored, ca, err := a.loadCA(o.ca, o.passphrase)
	if err != nil {
		return nil, nil, nil, err
	}
	key, err := pki.GenerateKey(kt)
	if err != nil {
		return nil, nil, nil, err
	}
	req.PublicKey = key.Public()
	cert, err := a.recorded(context.Background(), stored, ca, dest).Issue(req)
	if err != nil {
		return nil, nil, nil, err
	}
	return stored, key, cert, nil
}

// absOr is path made absolute for the CA's inventory, or path as given.
func absOr(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return path
}
