// Package certdir owns the directories of certificate files docker tls
// writes for use elsewhere: an engine's server directory (server issue:
// ca.pem, server-cert.pem, server-key.pem and a daemon.json snippet,
// re-issued in place by server renew) and a client directory (client
// issue, export --format dir: ca.pem, cert.pem, key.pem).
//
// A directory is written as one unit: every existing file is refused
// before the first write (unless forced), and a failed write removes what
// it wrote. Re-issuing in place writes every new file beside the old one
// first and renames them over the old ones only when all are written, so
// a directory is never left with a certificate of one issue and a key of
// another.
package certdir

import (
	"crypto"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"

	"github.com/docker-tls/docker-tls/internal/fsutil"
	"github.com/docker-tls/docker-tls/pki"
)

// File names, as dockerd's --tlscacert/--tlscert/--tlskey and the docker
// CLI's DOCKER_CERT_PATH expect them.
const (
	CAFile         = "ca.pem"
	ServerCertFile = "server-cert.pem"
	ServerKeyFile  = "server-key.pem"
	DaemonJSONFile = "daemon.json"
	CertFile       = "cert.pem"
	KeyFile        = "key.pem"
)

// File is one file of a directory.
type File struct {
	Name string
	Data []byte
	Perm os.FileMode
}

// Write writes files into dir as one unit: with force off it refuses
// (fsutil.ErrExists) before writing anything if one exists, and removes
// what it wrote if a later write fails. A new directory is made 0700; an
// existing one (the current directory) keeps its mode: key files are 0600
// themselves.
func Write(dir string, files []File, force bool) error {
	if !force {
		paths := make([]string, len(files))
		for i, f := range files {
			paths[i] = filepath.Join(dir, f.Name)
		}
		if err := fsutil.CheckAbsent(paths...); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dir, fsutil.PrivateDir); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	for i, f := range files {
		if err := fsutil.WriteFile(filepath.Join(dir, f.Name), f.Data, f.Perm, force); err != nil {
			if !force {
				for _, done := range files[:i] {
					_ = os.Remove(filepath.Join(dir, done.Name))
				}
			}
			return err
		}
	}
	return nil
}

// Replace puts files into the existing directory dir in place of the
// ones of the same names: every new file is written beside its old one
// first (NAME.new), then each is renamed over it.
func Replace(dir string, files []File) error {
	for _, f := range files {
		if err := fsutil.WriteFile(filepath.Join(dir, f.Name+".new"), f.Data, f.Perm, true); err != nil {
			return err
		}
	}
	for _, f := range files {
		if err := os.Rename(filepath.Join(dir, f.Name+".new"), filepath.Join(dir, f.Name)); err != nil {
			return fmt.Errorf("switch %s: %w", f.Name, err)
		}
	}
	return nil
}

// Client is a client directory's files.
func Client(ca, cert *x509.Certificate, key crypto.Signer) ([]File, error) {
	keyPEM, err := pki.EncodePrivateKey(key, nil)
	if err != nil {
		return nil, err
	}
	return []File{
		{CAFile, pki.EncodeCertificate(ca), fsutil.PublicFile},
		{CertFile, pki.EncodeCertificate(cert), fsutil.PublicFile},
		{KeyFile, keyPEM, fsutil.PrivateFile},
	}, nil
}

// DaemonJSON is the TLS part of /etc/docker/daemon.json. It carries no
// "hosts" key on purpose: on systemd hosts dockerd already gets -H from its
// unit, and both together make dockerd refuse to start.
type DaemonJSON struct {
	TLSVerify bool   `json:"tlsverify"`
	TLSCACert string `json:"tlscacert"`
	TLSCert   string `json:"tlscert"`
	TLSKey    string `json:"tlskey"`
}

// ServerPaths are the files Server's directory holds, in dir.
func ServerPaths(dir string) []string {
	return []string{filepath.Join(dir, CAFile), filepath.Join(dir, ServerCertFile), filepath.Join(dir, ServerKeyFile), filepath.Join(dir, DaemonJSONFile)}
}

// NewDaemonJSON points dockerd at a server directory installed at
// installDir on the engine's host.
func NewDaemonJSON(installDir string) DaemonJSON {
	return DaemonJSON{
		TLSVerify: true,
		TLSCACert: path.Join(installDir, CAFile),
		TLSCert:   path.Join(installDir, ServerCertFile),
		TLSKey:    path.Join(installDir, ServerKeyFile),
	}
}

// Server is a server directory's files, its daemon.json pointing at
// installDir.
func Server(ca, cert *x509.Certificate, key crypto.Signer, installDir string) ([]File, error) {
	keyPEM, err := pki.EncodePrivateKey(key, nil)
	if err != nil {
		return nil, err
	}
	dj, err := json.MarshalIndent(NewDaemonJSON(installDir), "", "  ")
	if err != nil {
		return nil, err
	}
	return []File{
		{CAFile, pki.EncodeCertificate(ca), fsutil.PublicFile},
		{ServerCertFile, pki.EncodeCertificate(cert), fsutil.PublicFile},
		{ServerKeyFile, keyPEM, fsutil.PrivateFile},
		{DaemonJSONFile, append(dj, '\n'), fsutil.PublicFile},
	}, nil
}
