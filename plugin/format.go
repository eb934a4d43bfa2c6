package plugin

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/docker/cli/templates"
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
