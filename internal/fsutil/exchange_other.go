//go:build !linux

package fsutil

import "fmt"

// Exchange swaps two paths atomically where the OS can; here it cannot.
func Exchange(a, b string) error {
	return fmt.Errorf("exchange %s and %s: %w", a, b, ErrExchangeUnsupported)
}
