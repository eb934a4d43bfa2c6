package plugin

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"strconv"
	"strings"
	"unicode"

	flagsHelper "github.com/docker/cli/cli/flags"

	"github.com/docker/cli/cli/command/formatter"
	"github.com/docker/cli/templates"
	"github.com/spf13/cobra"

	"github.com/docker-tls/docker-tls/castore"
)

// printJSON writes v as --format json does everywhere: indented like
// docker inspect.
func printJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "    ")
	return enc.Encode(v)
}

// printTemplate runs a --format Go template (docker/cli's functions: json,
// join, upper, …) for each item, one line each.
func printTemplate[T any](out io.Writer, format string, items []T) error {
	tmpl, err := templates.Parse(format)
	if err != nil {
		return fmt.Errorf("template parsing error: %w", err)
	}
	for _, it := range items {
		// Execution errors already start with "template:".
		if err := tmpl.Execute(out, it); err != nil {
			return err
		}
		fmt.Fprintln(out)
	}
	return nil
}

// listing is how an ls-like command prints (ls, ca ls, keys ls, ca issued
// ls, ca tokens ls, engine ls): docker/cli's formatter, its table format
// by default, quiet with --quiet, else --format (json, or a Go template
// with docker's functions), over one typed SubContext per item.
type listing[T any] struct {
	table, quiet string
	header       formatter.SubContext
	// row renders one item; table says the output is a table, where
	// control characters are quoted.
	row func(item *T, table bool) formatter.SubContext
}

func (l listing[T]) write(out io.Writer, format string, quiet bool, items []T) error {
	switch {
	case quiet:
		format = l.quiet
	case format == "" || format == formatter.TableFormatKey:
		format = l.table
	}
	ctx := formatter.Context{Output: out, Format: formatter.Format(format)}
	table := ctx.Format.IsTable()
	return ctx.Write(l.header, func(write func(formatter.SubContext) error) error {
		for i := range items {
			if err := write(l.row(&items[i], table)); err != nil {
				return err
			}
		}
		return nil
	})
}

// writeRows prints a listing whose items are map rows.
func writeRows(a *app, format string, quiet bool, table, quietFormat string, rows []map[string]any, headers map[string]string) error {
	l := listing[map[string]any]{table: table, quiet: quietFormat, header: header(headers),
		row: func(r *map[string]any, table bool) formatter.SubContext {
			if table {
				return row(printableRow(*r))
			}
			return row(*r)
		}}
	return l.write(a.cli.Out(), format, quiet, rows)
}

// printableRow quotes, for a table, the values that hold control or
// bidirectional characters (a name stored by an older docker-tls, a CN
// from a cfssl enrollment): raw, a newline would forge a row and U+202E
// would show a name as another.
func printableRow(r map[string]any) map[string]any {
	var out map[string]any
	for k, v := range r {
		s, ok := v.(string)
		if !ok || !strings.ContainsFunc(s, func(c rune) bool { return unicode.IsControl(c) || unicode.Is(unicode.Bidi_Control, c) }) {
			continue
		}
		if out == nil {
			out = maps.Clone(r)
		}
		out[k] = strconv.QuoteToGraphic(s)
	}
	if out == nil {
		return r
	}
	return out
}

// row lets docker's formatter render a map: templates index it by key
// ({{.ID}}), {{json .}} marshals it whole. header is the table's header row.
type row map[string]any

func (row) FullHeader() any { return nil }

type header map[string]string

func (h header) FullHeader() any { return h }

// commonName shows "CN=alice" as "alice" and leaves longer names whole.
func commonName(dn string) string {
	if cn, ok := strings.CutPrefix(dn, "CN="); ok && !strings.Contains(cn, ",") {
		return cn
	}
	return dn
}

type caListFlags struct {
	ca     string
	format string
	quiet  bool
}

func (o *caListFlags) install(cmd *cobra.Command, a *app, quietHelp string) {
	f := cmd.Flags()
	f.StringVar(&o.ca, "ca", castore.DefaultName, "CA")
	f.StringVar(&o.format, "format", "", flagsHelper.FormatHelp)
	f.BoolVarP(&o.quiet, "quiet", "q", false, quietHelp)
	_ = cmd.RegisterFlagCompletionFunc("ca", completeCANames(a))
}
