package plugin

import (
	"crypto"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/docker/cli/cli/command"
	"github.com/docker/cli/cli/config"

	"github.com/docker-tls/docker-tls/agent"
	"github.com/docker-tls/docker-tls/castore"
	"github.com/docker-tls/docker-tls/contexts"
	"github.com/docker-tls/docker-tls/engine"
	"github.com/docker-tls/docker-tls/internal/journal"
	"github.com/docker-tls/docker-tls/keystore"
	"github.com/docker-tls/docker-tls/pki"
)

// app is what every command needs from its surroundings, resolved lazily:
// the docker CLI is initialised (config dir, --config) only when a command
// runs, and the stores are opened once per command on first use.
type app struct {
	cli command.Cli
	// keystore is the --keystore flag; empty means the plugin setting in
	// config.json ("plugins": {"tls": {"keystore": …}}), else keyring.
	keystore string
	// keyring replaces the OS keyring when set: the in-process command
	// tests give an in-memory one. Nothing in the binary sets it.
	keyring keystore.Backend

	journal  *journal.Journal
	ctxStore *contexts.Store
	caStore  *castore.Store
	// readyStore is the key store defaultKeystore found ready, so that a
	// command asking twice asks the keyring once.
	readyStore string
}

// configDir is $DOCKER_CONFIG (or --config), as the docker CLI resolved it.
func (a *app) configDir() string {
	if cf := a.cli.ConfigFile(); cf != nil && cf.Filename != "" {
		return filepath.Dir(cf.Filename)
	}
	return config.Dir()
}

// stateDir is where docker-tls keeps its own files: $DOCKER_CONFIG/tls.
func (a *app) stateDir() string { return filepath.Join(a.configDir(), "tls") }

func (a *app) keyStores() keystore.Stores {
	return keystore.Stores{Dir: filepath.Join(a.stateDir(), "keys"), Backend: a.keyring}
}

// defaultKeystore is the kind of store new keys go to, once it can take
// them.
func (a *app) defaultKeystore() (string, error) {
	kind := a.keystore
	if kind == "" {
		if cf := a.cli.ConfigFile(); cf != nil {
			kind, _ = cf.PluginConfig("tls", "keystore")
		}
	}
	if kind == "" {
		kind = keystore.KindKeyring
	}
	if err := keystore.CheckKind(kind); err != nil {
		return "", fmt.Errorf("%w (from --keystore or plugins.tls.keystore in config.json)", err)
	}
	// Checked here, before a command writes anything: a keyring that cannot
	// be reached is refused in one sentence, not after a certificate was
	// issued or a token spent for a key that has nowhere to go.
	if a.readyStore != kind {
		if err := a.keyStores().Ready(kind); err != nil {
			return "", err
		}
		a.readyStore = kind
	}
	return kind, nil
}

// keyStore opens a key store by kind. passphrase encrypts new keys of the
// file store and opens encrypted ones; the keyring ignores it.
func (a *app) keyStore(kind string, passphrase []byte) (keystore.Store, error) {
	return a.keyStores().Open(kind, passphrase)
}

// stores opens the CA and context stores on one journal, so that taking
// the state lock recovers what an interrupted command left in either.
func (a *app) stores() {
	if a.journal != nil {
		return
	}
	keys := a.keyStores()
	a.journal = journal.New(a.stateDir(), keys.TempDir())
	a.ctxStore = contexts.New(a.configDir(), keys, a.journal)
	a.caStore = castore.New(filepath.Join(a.stateDir(), "ca"), keys, a.journal)
}

// cas is the CA store.
func (a *app) cas() *castore.Store { a.stores(); return a.caStore }

// engines are the records of the engines engine setup made.
func (a *app) engines() engine.Records {
	return engine.Records{Dir: filepath.Join(a.stateDir(), "engines")}
}

// contexts is the Docker context store of this DOCKER_CONFIG.
func (a *app) contexts() *contexts.Store { a.stores(); return a.ctxStore }

// lockState takes the state lock for a command that reads and changes
// several stores as one step (keys prune), recovering first what an
// interrupted command left. The stores take it themselves otherwise.
func (a *app) lockState() (func(), error) { a.stores(); return a.journal.Lock() }

// loadCA returns the named CA ready to sign, asking for its key's passphrase
// if the key is encrypted and none was given.
func (a *app) loadCA(name string, pp passphraseOptions) (*castore.CA, *pki.CA, error) {
	stored, signer, _, err := a.loadCAPassphrase(name, pp)
	return stored, signer, err
}

// loadCAPassphrase is loadCA that also returns the passphrase that opened
// the key (nil for a plain one), for a process that loads it again later
// (ca serve following a rotation).
func (a *app) loadCAPassphrase(name string, pp passphraseOptions) (*castore.CA, *pki.CA, []byte, error) {
	pass, err := pp.read()
	if err != nil {
		return nil, nil, nil, err
	}
	stored, err := a.cas().Get(name)
	if err != nil {
		return nil, nil, nil, err
	}
	signer, err := a.cas().Signer(stored, pass)
	if errors.Is(err, pki.ErrPassphraseRequired) {
		if pass, err = a.prompt(fmt.Sprintf("the key of CA %q", name)); err != nil {
			return nil, nil, nil, err
		}
		signer, err = a.cas().Signer(stored, pass)
	}
	if errors.Is(err, pki.ErrWrongPassphrase) {
		return nil, nil, nil, fmt.Errorf("wrong passphrase for the key of CA %q", name)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	return stored, signer, pass, nil
}

// readKeyFile reads a private key in any format openssl writes. Its
// passphrase comes from --passphrase-file or the environment, or is asked
// for on a terminal only when the key is encrypted. what names the key in
// errors ("CA key", "client key"). It returns the passphrase that opened an
// encrypted key, and nil for a plain one.
func (a *app) readKeyFile(path, what string, pp passphraseOptions) (crypto.Signer, []byte, error) {
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
		if pass, err = a.prompt(path); err != nil {
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

// agentDir is the agent's runtime directory for this DOCKER_CONFIG.
func (a *app) agentDir() string { return agent.RunDir(a.configDir()) }

// PassphraseEnv names the environment variable that may hold a CA key's
// passphrase, for scripts that cannot use a file.
const PassphraseEnv = "DOCKER_TLS_CA_PASSPHRASE"
