package keystore

import "runtime"

// platformMaxSecret is the largest keyring entry the OS keyring accepts,
// including service and account names where the platform counts them.
func platformMaxSecret() int {
	switch runtime.GOOS {
	case "windows":
		return 2560
	case "darwin":
		return 3000
	}
	return 0
}
