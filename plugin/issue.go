package plugin

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/castore"
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

// outFile is one file an issue command writes.
type outFile struct {
	name string
	data []byte
	perm os.FileMode
}

// writeOutDir writes files into dir as one unit: it refuses before writing
// anything if a file exists and force is off, and removes what it wrote if a
// later write fails.
func writeOutDir(dir string, files []outFile, force bool) error {
	if !force {
		paths := make([]string, len(files))
		for i, f := range files {
			paths[i] = filepath.Join(dir, f.name)
		}
		if err := fsutil.CheckAbsent(paths...); err != nil {
			return fmt.Errorf("%w: use --force to overwrite, or choose another --out", err)
		}
	}
	// A new directory is made private; an existing one (the current
	// directory, ~/.docker) keeps its mode: the key file itself is 0600.
	if err := os.MkdirAll(dir, fsutil.PrivateDir); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	for i, f := range files {
		if err := fsutil.WriteFile(filepath.Join(dir, f.name), f.data, f.perm, force); err != nil {
			if !force {
				for _, done := range files[:i] {
					_ = os.Remove(filepath.Join(dir, done.name))
				}
			}
			return err
		}
	}
	return nil
}

// issueLeaf makes a key and a certificate for it from the named CA.
func issueLeaf(a *app, o issueOptions, req pki.IssueRequest) (*castore.CA, crypto.Signer, *x509.Certificate, error) {
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
	cert, err := ca.Issue(req)
	if err != nil {
		return nil, nil, nil, err
	}
	return stored, key, cert, nil
}
