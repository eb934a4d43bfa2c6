// Package output holds the output conventions every docker tls command
// follows, over docker/cli's formatter so that they match docker's own
// commands: --format json indented as docker inspect prints, a Go template
// (with docker's functions: json, join, upper, …) run once per item, and
// listings that print a table by default, names alone with --quiet.
//
// Tables quote what a terminal would misread: a control or bidirectional
// character in a stored name (a CN from a cfssl enrollment, a name written
// by an older version) could otherwise forge a row or show one name as
// another.
package output

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"strconv"
	"strings"
	"unicode"

	"github.com/docker/cli/cli/command/formatter"
	"github.com/docker/cli/templates"
)

// JSON writes v as --format json does everywhere: indented like docker
// inspect.
func JSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "    ")
	return enc.Encode(v)
}

// Template runs a --format Go template for each item, one line each.
func Template[T any](out io.Writer, format string, items []T) error {
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

// Listing is how an ls-like command prints: docker/cli's formatter, Table
// by default, Quiet with --quiet, else --format (json, or a Go template),
// over one typed SubContext per item.
type Listing[T any] struct {
	Table, Quiet string
	Header       formatter.SubContext
	// Row renders one item; table says the output is a table, where
	// control characters are quoted.
	Row func(item *T, table bool) formatter.SubContext
}

// Write prints items in format, or quiet.
func (l Listing[T]) Write(out io.Writer, format string, quiet bool, items []T) error {
	switch {
	case quiet:
		format = l.Quiet
	case format == "" || format == formatter.TableFormatKey:
		format = l.Table
	}
	ctx := formatter.Context{Output: out, Format: formatter.Format(format)}
	table := ctx.Format.IsTable()
	return ctx.Write(l.Header, func(write func(formatter.SubContext) error) error {
		for i := range items {
			if err := write(l.Row(&items[i], table)); err != nil {
				return err
			}
		}
		return nil
	})
}

// Rows is a Listing of map rows, keyed by the names the table and
// templates use ({{.ID}}); headers are the table's column titles.
func Rows(table, quiet string, headers map[string]string) Listing[map[string]any] {
	return Listing[map[string]any]{Table: table, Quiet: quiet, Header: header(headers),
		Row: func(r *map[string]any, table bool) formatter.SubContext {
			if table {
				return row(Printable(*r))
			}
			return row(*r)
		}}
}

// Printable quotes, for a table, the values of r that hold control or
// bidirectional characters; r itself is not changed.
func Printable(r map[string]any) map[string]any {
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

// row lets docker's formatter render a map: templates index it by key,
// {{json .}} marshals it whole.
type row map[string]any

func (row) FullHeader() any { return nil }

// header is a table's header row.
type header map[string]string

func (h header) FullHeader() any { return h }
