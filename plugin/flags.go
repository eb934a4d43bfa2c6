package plugin

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/docker-tls/docker-tls/internal/fsutil"
	"github.com/docker-tls/docker-tls/keystore"
	"github.com/docker-tls/docker-tls/pki"
)

// passphraseOptions are the flags every command that touches an encrypted
// key shares.
type passphraseOptions struct {
	file string
}

// read returns the passphrase from --passphrase-file, then $DOCKER_TLS_CA_PASSPHRASE,
// or nil if neither is set. It never echoes or logs the value.
func (p passphraseOptions) read() ([]byte, error) {
	if p.file != "" {
		data, err := fsutil.ReadSmall(p.file, 4096)
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

// readPEMFile reads a certificate or key file of reasonable size.
func readPEMFile(path string) ([]byte, error) {
	return fsutil.ReadSmall(path, 1<<20)
}

func trimNewline(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// addDaysFlag adds --days, with one help text everywhere: 0, the flag's
// zero value, means the default, which def names.
func addDaysFlag(f *pflag.FlagSet, days *int, def string) {
	f.IntVar(days, "days", 0, "Lifetime in days, 1 to 36500; 0 or unset: "+def)
}

// install adds --passphrase-file, with one help text everywhere.
func (p *passphraseOptions) install(f *pflag.FlagSet) {
	f.StringVar(&p.file, "passphrase-file", "", "File holding the passphrase of an encrypted key (else $"+PassphraseEnv+", else a prompt on a terminal)")
}

// lifetime converts a --days flag to a duration; 0 means the default.
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

// parseSpan reads a span as users write it: 30d, 2w, 12h, 90m.
func parseSpan(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	for suffix, unit := range map[string]time.Duration{"d": 24 * time.Hour, "w": 7 * 24 * time.Hour} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			if err != nil || v < 0 {
				return 0, fmt.Errorf("%q: give a span like 30d, 2w or 12h", s)
			}
			if v > math.MaxInt64/int64(unit) {
				return 0, fmt.Errorf("%q is longer than 292 years: give a span like 30d, 2w or 12h", s)
			}
			return time.Duration(v) * unit, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q: give a span like 30d, 2w or 12h", s)
	}
	return d, nil
}

func completeKeyTypes(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	var names []string
	for _, t := range pki.KeyTypes() {
		names = append(names, string(t))
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

// completeKeystores completes --keystore and --to with the kinds and their help.
func completeKeystores(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
	var out []cobra.Completion
	for _, k := range keystore.Kinds() {
		out = append(out, cobra.CompletionWithDesc(k[0], k[1]))
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// keystoreHelp lists the key store kinds for flag help, from the one list
// in package keystore.
func keystoreHelp() string {
	var parts []string
	for _, k := range keystore.Kinds() {
		parts = append(parts, fmt.Sprintf("%q (%s)", k[0], k[1]))
	}
	return strings.Join(parts, " or ")
}

// completeContextNames completes docker-tls contexts.
func completeContextNames(a *app, managedOnly bool) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		list, _, err := a.contexts().List()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		var names []string
		for _, c := range list {
			if !managedOnly || c.Managed() {
				names = append(names, c.Name)
			}
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeCANames completes the names of stored CAs.
func completeCANames(a *app) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		cas, _, err := a.cas().List()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		var names []string
		for _, c := range cas {
			names = append(names, c.Name)
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

// namesOrAll is the rule of every command that takes NAME… or --all: one
// of the two, never both; with required, never neither. what is the kind
// of name ("context", "engine"), verb what the command does to them.
func namesOrAll(names []string, all, required bool, what, verb string) error {
	switch {
	case all && len(names) > 0:
		return fmt.Errorf("give %s names or --all, not both", what)
	case required && !all && len(names) == 0:
		return fmt.Errorf("name the %ss to %s, or give --all", what, verb)
	}
	return nil
}
