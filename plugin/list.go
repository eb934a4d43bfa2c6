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

// writeRows prints simple listings with docker's formatter: table, json,
// or a template over map rows.
func writeRows(a *app, format string, quiet bool, table, quietFormat string, rows []map[string]any, headers map[string]string) error {
	switch {
	case quiet:
		format = quietFormat
	case format == "" || format == formatter.TableFormatKey:
		format = table
	}
	ctx := formatter.Context{Output: a.cli.Out(), Format: formatter.Format(format)}
	tableFormat := ctx.Format.IsTable()
	return ctx.Write(header(headers), func(write func(formatter.SubContext) error) error {
		for _, r := range rows {
			if tableFormat {
				r = printableRow(r)
			}
			if err := write(row(r)); err != nil {
				return err
			}
		}
		return nil
	})
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
