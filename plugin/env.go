package plugin

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/docker/cli/cli/command"
	"github.com/docker/cli/cli/config"
	"golang.org/x/term"

	"github.com/docker-tls/docker-tls/castore"
	"github.com/docker-tls/docker-tls/contexts"
	"github.com/docker-tls/docker-tls/internal/journal"
	"github.com/docker-tls/docker-tls/keystore"
	"github.com/docker-tls/docker-tls/pki"
)

// PassphraseEnv names the environment variable that may hold a CA key's
// passphrase, for scripts that cannot use a file.
const PassphraseEnv = "DOCKER_TLS_CA_PASSPHRASE"

// env is what every command needs from its surroundings, resolved lazily:
// the docker CLI is initialised (config dir, --config) only when a command
// runs, and the stores are opened once per command on first use.
type env struct {
	cli command.Cli
	// keystore is the --keystore flag; empty means the plugin setting in
	// config.json ("plugins": {"tls": {"keystore": …}}), else keyring.
	keystore string

	journal  *journal.Journal
	ctxStore *contexts.Store
	caStore  *castore.Store
}

// configDir is $DOCKER_CONFIG (or --config), as the docker CLI resolved it.
func (e *env) configDir() string {
	if cf := e.cli.ConfigFile(); cf != nil && cf.Filename != "" {
		return filepath.Dir(cf.Filename)
	}
	return config.Dir()
}

// stateDir is where docker-tls keeps its own files: $DOCKER_CONFIG/tls.
func (e *env) stateDir() string { return filepath.Join(e.configDir(), "tls") }

func (e *env) keyStores() keystore.Stores {
	return keystore.Stores{Dir: filepath.Join(e.stateDir(), "keys")}
}

// defaultKeystore is the kind of store new keys go to.
func (e *env) defaultKeystore() (string, error) {
	kind := e.keystore
	if kind == "" {
		if cf := e.cli.ConfigFile(); cf != nil {
			kind, _ = cf.PluginConfig("tls", "keystore")
		}
	}
	if kind == "" {
		kind = keystore.KindKeyring
	}
	if err := keystore.CheckKind(kind); err != nil {
		return "", fmt.Errorf("%w (from --keystore or plugins.tls.keystore in config.json)", err)
	}
	return kind, nil
}

// keyStore opens a key store by kind. passphrase encrypts new keys of the
// file store and opens encrypted ones; the keyring ignores it.
func (e *env) keyStore(kind string, passphrase []byte) (keystore.Store, error) {
	return e.keyStores().Open(kind, passphrase)
}

// stores opens the CA and context stores on one journal, so that taking
// the state lock recovers what an interrupted command left in either.
func (e *env) stores() {
	if e.journal != nil {
		return
	}
	keys := e.keyStores()
	e.journal = journal.New(e.stateDir(), keys.TempDir())
	e.ctxStore = contexts.New(e.configDir(), keys, e.journal)
	e.caStore = castore.New(filepath.Join(e.stateDir(), "ca"), keys, e.journal)
}

// cas is the CA store.
func (e *env) cas() *castore.Store { e.stores(); return e.caStore }

// contexts is the Docker context store of this DOCKER_CONFIG.
func (e *env) contexts() *contexts.Store { e.stores(); return e.ctxStore }

// passphraseOptions are the flags every command that touches an encrypted
// key shares.
type passphraseOptions struct {
	file string
}

// read returns the passphrase from --passphrase-file, then $DOCKER_TLS_CA_PASSPHRASE,
// or nil if neither is set. It never echoes or logs the value.
func (p passphraseOptions) read() ([]byte, error) {
	if p.file != "" {
		data, err := readSmallFile(p.file, 4096)
		if err != nil {
			return nil, fmt.Errorf("read passphrase file: %w", err)
		}
		pass := trimNewline(data)
		if len(pass) == 0 {
			return nil, fmt.Errorf("passphrase file %s is empty", p.file)
		}
		return pass, nil
	}
	if v, ok := os.LookupEnv(PassphraseEnv); ok {
		if v == "" {
			return nil, fmt.Errorf("%s is set but empty", PassphraseEnv)
		}
		return []byte(v), nil
	}
	return nil, nil
}

// prompt asks for a passphrase on the terminal without echo, or says how to
// give one when there is no terminal.
func (e *env) prompt(what string) ([]byte, error) {
	in := e.cli.In()
	if !in.IsTerminal() {
		return nil, fmt.Errorf("%s is encrypted: pass --passphrase-file FILE or set %s", what, PassphraseEnv)
	}
	fmt.Fprintf(e.cli.Err(), "Passphrase for %s: ", what)
	pass, err := term.ReadPassword(int(in.FD()))
	fmt.Fprintln(e.cli.Err())
	if err != nil {
		return nil, fmt.Errorf("read passphrase: %w", err)
	}
	if len(pass) == 0 {
		return nil, errors.New("empty passphrase")
	}
	return pass, nil
}

// promptNew asks twice for a new passphrase on the terminal.
func (e *env) promptNew(what string) ([]byte, error) {
	if !e.cli.In().IsTerminal() {
		return nil, fmt.Errorf("%s needs a passphrase: pass --passphrase-file FILE or set %s", what, PassphraseEnv)
	}
	first, err := e.prompt(what)
	if err != nil {
		return nil, err
	}
	again, err := e.prompt(what + " (again)")
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(first, again) {
		return nil, errors.New("the passphrases do not match")
	}
	return first, nil
}

// readKeyFile reads a private key in any format openssl writes. Its
// passphrase comes from --passphrase-file or the environment, or is asked
// for on a terminal only when the key is encrypted. what names the key in
// errors ("CA key", "client key"). It returns the passphrase that opened an
// encrypted key, and nil for a plain one.
func (e *env) readKeyFile(path, what string, pp passphraseOptions) (crypto.Signer, []byte, error) {
	data, err := readPEMFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", what, err)
	}
	pass, err := pp.read()
	if err != nil {
		return nil, nil, err
	}
	encrypted := pki.IsEncryptedKey(data)
	if encrypted && pass == nil {
		if pass, err = e.prompt(path); err != nil {
			return nil, nil, err
		}
	}
	key, err := pki.ParsePrivateKey(data, pass)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", what, path, err)
	}
	if !encrypted {
		pass = nil
	}
	return key, pass, nil
}

// loadCA returns the named CA ready to sign, asking for its key's passphrase
// if the key is encrypted and none was given.
func (e *env) loadCA(name string, pp passphraseOptions) (*castore.CA, *pki.CA, error) {
	pass, err := pp.read()
	if err != nil {
		return nil, nil, err
	}
	stored, err := e.cas().Get(name)
	if err != nil {
		return nil, nil, err
	}
	signer, err := e.cas().Signer(stored, pass)
	if errors.Is(err, pki.ErrPassphraseRequired) {
		if pass, err = e.prompt(fmt.Sprintf("the key of CA %q", name)); err != nil {
			return nil, nil, err
		}
		signer, err = e.cas().Signer(stored, pass)
	}
	if errors.Is(err, pki.ErrWrongPassphrase) {
		return nil, nil, fmt.Errorf("wrong passphrase for the key of CA %q", name)
	}
	if err != nil {
		return nil, nil, err
	}
	return stored, signer, nil
}

func readSmallFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, nil
}

// readPEMFile reads a certificate or key file of reasonable size.
func readPEMFile(path string) ([]byte, error) {
	data, err := readSmallFile(path, 1<<20)
	if err != nil {
		return nil, err
	}
	return data, nil
}

func trimNewline(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// lifetime converts a --days flag to a duration; 0 means the profile's default.
func lifetime(days int) (time.Duration, error) {
	if days < 0 || days > 100*365 {
		return 0, fmt.Errorf("--days %d: give a number of days from 1 to 36500", days)
	}
	return time.Duration(days) * 24 * time.Hour, nil
}

func keyTypeNames() string {
	var names []string
	for _, t := range pki.KeyTypes() {
		names = append(names, string(t))
	}
	return strings.Join(names, ", ")
}

// lockState takes the state lock for a command that reads and changes
// several stores as one step (keys prune), recovering first what an
// interrupted command left. The stores take it themselves otherwise.
func (e *env) lockState() (func(), error) { e.stores(); return e.journal.Lock() }
