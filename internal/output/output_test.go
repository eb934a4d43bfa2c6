package output

import (
	"bytes"
	"strings"
	"testing"
)

func TestRows(t *testing.T) {
	rows := []map[string]any{
		{"Name": "alice", "Uses": 1},
		{"Name": "bob\nmallory  1", "Uses": 2},
		{"Name": "\u202eevil", "Uses": 3},
	}
	l := Rows("table {{.Name}}\t{{.Uses}}", "{{.Name}}", map[string]string{"Name": "NAME", "Uses": "USES"})
	tests := []struct {
		format string
		quiet  bool
		want   string
	}{
		{format: "", want: "NAME                USES\nalice               1\n\"bob\\nmallory  1\"   2\n\"\\u202eevil\"        3\n"},
		{quiet: true, want: "alice\nbob\nmallory  1\n\u202eevil\n"},
		{format: "{{.Uses}}:{{.Name}}", want: "1:alice\n2:bob\nmallory  1\n3:\u202eevil\n"},
		{format: "{{json .}}", want: `{"Name":"alice","Uses":1}` + "\n" + `{"Name":"bob\nmallory  1","Uses":2}` + "\n" + "{\"Name\":\"\u202eevil\",\"Uses\":3}" + "\n"},
	}
	for _, tc := range tests {
		var b bytes.Buffer
		if err := l.Write(&b, tc.format, tc.quiet, rows); err != nil {
			t.Fatal(err)
		}
		if b.String() != tc.want {
			t.Errorf("format %q quiet %v:\n%q\nwant\n%q", tc.format, tc.quiet, b.String(), tc.want)
		}
	}
	if rows[1]["Name"] != "bob\nmallory  1" {
		t.Error("Printable changed the row it was given")
	}
}

func TestJSONAndTemplate(t *testing.T) {
	var b bytes.Buffer
	if err := JSON(&b, map[string]int{"a": 1}); err != nil || b.String() != "{\n    \"a\": 1\n}\n" {
		t.Errorf("JSON = %q, %v", b.String(), err)
	}
	b.Reset()
	if err := Template(&b, "{{.}}-{{upper .}}", []string{"x", "y"}); err != nil || b.String() != "x-X\ny-Y\n" {
		t.Errorf("Template = %q, %v", b.String(), err)
	}
	if err := Template(&b, "{{.Missing", []string{"x"}); err == nil || !strings.HasPrefix(err.Error(), "template parsing error") {
		t.Errorf("a bad template: %v", err)
	}
}
