package plugin

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/term"
)

// prompt asks for a passphrase on the terminal without echo, or says how to
// give one when there is no terminal.
func (a *app) prompt(what string) ([]byte, error) {
	in := a.cli.In()
	if !in.IsTerminal() {
		return nil, fmt.Errorf("%s is encrypted: pass --passphrase-file FILE or set %s", what, PassphraseEnv)
	}
	fmt.Fprintf(a.cli.Err(), "Passphrase for %s: ", what)
	pass, err := term.ReadPassword(int(in.FD()))
	fmt.Fprintln(a.cli.Err())
	if err != nil {
		return nil, fmt.Errorf("read passphrase: %w", err)
	}
	if len(pass) == 0 {
		return nil, errors.New("empty passphrase")
	}
	return pass, nil
}

// promptNew asks twice for a new passphrase on the terminal.
func (a *app) promptNew(what string) ([]byte, error) {
	if !a.cli.In().IsTerminal() {
		return nil, fmt.Errorf("%s needs a passphrase: pass --passphrase-file FILE or set %s", what, PassphraseEnv)
	}
	first, err := a.prompt(what)
	if err != nil {
		return nil, err
	}
	again, err := a.prompt(what + " (again)")
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(first, again) {
		return nil, errors.New("the passphrases do not match")
	}
	return first, nil
}

// confirmKeyExport asks on a terminal before a private key leaves the store.
func (a *app) confirmKeyExport(what string) error {
	if !a.cli.In().IsTerminal() {
		return nil
	}
	if !a.askYes(fmt.Sprintf("This writes the private key to %s. Continue?", what)) {
		return errors.New("not exported")
	}
	return nil
}

// askYes asks a yes/no question on stderr; only y or yes is a yes.
func (a *app) askYes(question string) bool {
	fmt.Fprintf(a.cli.Err(), "%s [y/N] ", question)
	line, _ := bufio.NewReader(a.cli.In()).ReadString('\n')
	answer := strings.ToLower(strings.TrimSpace(line))
	return answer == "y" || answer == "yes"
}
