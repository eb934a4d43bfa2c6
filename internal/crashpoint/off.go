//go:build !crashtest || !unix

package crashpoint

// Hit marks a step boundary; without the crashtest build tag it does nothing.
func Hit(string) {}
