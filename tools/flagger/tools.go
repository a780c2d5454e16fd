//go:build tools

// Keeps Flagger's command in this module's graph so `go mod tidy` records its dependencies.
package tools

import _ "github.com/fluxcd/flagger/cmd/flagger"
