package plugin

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/docker-tls/docker-tls/castore"
	"github.com/docker-tls/docker-tls/contexts"
	"github.com/docker-tls/docker-tls/engine"
	"github.com/docker-tls/docker-tls/keystore"
	"github.com/docker-tls/docker-tls/remoteca"
	"github.com/docker-tls/docker-tls/renewal"
	"github.com/docker-tls/docker-tls/rotation"
)

// hinted is an error hint already added what to run.
type hinted struct{ error }

func (h hinted) Unwrap() error { return h.error }

// hint adds, to an error that carries facts, what the user runs next: the
// one place where the lower packages' typed errors meet the commands that
// fix them (as age's errorWithHint in cmd/age). Every command's error
// passes through it (wrapRuns), once.
func hint(configDir string, err error) error {
	var (
		done    hinted
		expired *renewal.ExpiredError
		changed *renewal.CAChangedError
		noCA    *castore.NotFoundError
		damaged *contexts.DamagedError
		foreign *contexts.NotManagedError
		retire  *rotation.RetireError
	)
	switch {
	case err == nil || errors.As(err, &done):
		return err
	case errors.As(err, &retire):
		// First: whatever made retiring fail, --continue finishes it.
		return hinted{fmt.Errorf("%w (run --continue)", err)}
	case errors.Is(err, syscall.ENOSPC):
		// It arrives wrapped in the paths of scratch files nobody knows.
		// The journal makes "nothing half written" true: the next command
		// finishes or undoes whatever this one began.
		return hinted{fmt.Errorf("no space left on the device holding %s: free some space and run the command again (nothing was half written)", configDir)}
	case errors.As(err, &expired) && expired.SignIn && expired.Catalog != "":
		return hinted{fmt.Errorf("%w: a new sign-in is needed: docker tls enroll --engines --ca-url %s --ca-fingerprint sha256:%s renews every context of that catalog (docker tls renew %s, this one)", err, expired.Catalog, expired.Fingerprint, expired.Context)}
	case errors.As(err, &expired) && expired.SignIn:
		return hinted{fmt.Errorf("%w: a new sign-in is needed: docker tls renew %s", err, expired.Context)}
	case errors.As(err, &expired):
		return hinted{fmt.Errorf("%w: get a new token (docker tls ca token) and run docker tls enroll %s --force --ca-url %s --token …", err, expired.Context, expired.CAURL)}
	case errors.As(err, &changed):
		return hinted{fmt.Errorf("%w: re-create the context with docker tls context create --force", err)}
	case errors.Is(err, renewal.ErrImported):
		return hinted{fmt.Errorf("%w: renew it where it was issued, then docker tls import --force", err)}
	case errors.As(err, &noCA):
		return hinted{fmt.Errorf("%w (create it with `docker tls ca init %s` or adopt one with `docker tls ca import`)", err, noCA.Name)}
	case errors.Is(err, castore.ErrExists):
		return hinted{fmt.Errorf("%w: use --force to replace it (its key will be deleted)", err)}
	case errors.Is(err, contexts.ErrExists):
		return hinted{fmt.Errorf("%w: use --force to replace it", err)}
	case errors.As(err, &damaged) && damaged.Replace:
		return hinted{fmt.Errorf("%w: docker tls rm --force %s removes it, or --force replaces it", err, damaged.Name)}
	case errors.As(err, &damaged):
		return hinted{fmt.Errorf("%w: docker tls rm --force %s removes it", err, damaged.Name)}
	case errors.As(err, &foreign):
		return hinted{fmt.Errorf("%w; manage it with docker context, or adopt its files with docker tls import", err)}
	case errors.Is(err, keystore.ErrKeyringUnavailable):
		return hinted{fmt.Errorf("%w (use --keystore file on machines without one)", err)}
	case errors.Is(err, keystore.ErrKeyTooLarge):
		return hinted{fmt.Errorf("%w: use --key-type ecdsa-p256 or --keystore file", err)}
	case errors.Is(err, keystore.ErrIndexDamaged):
		return hinted{fmt.Errorf("%w; docker tls keys prune rebuilds it from the CAs and contexts that use keyring keys", err)}
	}
	return stepHint(err)
}

// stepHint adds to the errors of a rotation, a lock or unlock, and a CA
// database's lookups the flag or command that goes on from there.
func stepHint(err error) error {
	var (
		noDB    *rotation.NoDBError
		token   *remoteca.NoSuchTokenError
		serial  *remoteca.NoSuchSerialError
		keyFile *contexts.KeyFileError
		agent   *contexts.AgentModeError
	)
	switch {
	case errors.Is(err, rotation.ErrAborting):
		return hinted{fmt.Errorf("%w: finish that with --abort", err)}
	case errors.Is(err, rotation.ErrRetireBegun):
		return hinted{fmt.Errorf("%w (--continue)", err)}
	case errors.As(err, &noDB):
		return hinted{fmt.Errorf("%w: give the same --db as when the rotation began", err)}
	case errors.As(err, &token):
		return hinted{fmt.Errorf("%w (docker tls ca tokens ls)", err)}
	case errors.As(err, &serial):
		return hinted{fmt.Errorf("%w (docker tls ca issued ls)", err)}
	case errors.As(err, &keyFile):
		return hinted{fmt.Errorf("%w: docker tls unlock --force %s restores it from the key store", err, keyFile.Name)}
	case errors.As(err, &agent):
		return hinted{fmt.Errorf("%w (docker tls agent lock drops keys from the agent's memory)", err)}
	}
	return err
}

// engineHint adds to an engine's error what to run on that engine.
func engineHint(err error, name string) error {
	var refused *engine.LocalCallsRefusedError
	if errors.As(err, &refused) {
		return hinted{fmt.Errorf("%w: run docker tls engine policy set %s --local allow, then this again (and --local deny after it)", err, name)}
	}
	return err
}
