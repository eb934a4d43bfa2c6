package agent

import "errors"

// redirect: the agent does not run on Windows (no named pipes yet).
func redirect(from, to int) error { return errors.New("not supported on Windows") }
