package suggest

import (
	"reflect"
	"testing"
)

func TestClosest(t *testing.T) {
	names := []string{"alice@lap1", "alice@lap2", "bob@desk", "carol", "Alice@Lap1", "ci-runner-7"}
	for _, tc := range []struct {
		word string
		n    int
		want []string
	}{
		{"alice@lpa1", 3, []string{"Alice@Lap1", "alice@lap1", "alice@lap2"}},
		{"bob@dsk", 3, []string{"bob@desk"}},
		{"alice", 2, []string{"Alice@Lap1", "alice@lap1"}},
		{"zebra", 3, []string{}},
		{"carl", 3, []string{"carol"}},
		{"ci-runner-8", 1, []string{"ci-runner-7"}},
	} {
		if got := Closest(tc.word, names, tc.n); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Closest(%q) = %q, want %q", tc.word, got, tc.want)
		}
	}
}

func TestDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		d    int
	}{{"", "", 0}, {"a", "", 1}, {"kitten", "sitting", 3}, {"flaw", "lawn", 2}, {"héllo", "hello", 1}} {
		if d := distance(tc.a, tc.b); d != tc.d {
			t.Errorf("distance(%q, %q) = %d, want %d", tc.a, tc.b, d, tc.d)
		}
	}
}
