// Package suggest finds, for a name a user typed that matches nothing,
// the names they may have meant: the closest by edit distance, for the
// "did you mean" part of an error.
package suggest

import (
	"sort"
	"strings"
)

// Closest returns up to n of candidates nearest to word, nearest first:
// those within an edit distance of a third of word's length (at least 2),
// case ignored, or that contain word or are contained in it.
func Closest(word string, candidates []string, n int) []string {
	w := strings.ToLower(word)
	limit := max(2, len([]rune(w))/3)
	type hit struct {
		name string
		d    int
	}
	var hits []hit
	seen := map[string]bool{}
	for _, c := range candidates {
		if c == "" || seen[c] {
			continue
		}
		seen[c] = true
		lc := strings.ToLower(c)
		d := distance(w, lc)
		if d <= limit || (w != "" && (strings.Contains(lc, w) || strings.Contains(w, lc))) {
			hits = append(hits, hit{c, d})
		}
	}
	sort.Slice(hits, func(i, j int) bool {
		if hits[i].d != hits[j].d {
			return hits[i].d < hits[j].d
		}
		return hits[i].name < hits[j].name
	})
	out := make([]string, 0, min(n, len(hits)))
	for i := 0; i < len(hits) && i < n; i++ {
		out = append(out, hits[i].name)
	}
	return out
}

// distance is the Levenshtein distance between a and b, in runes.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
