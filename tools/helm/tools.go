//go:build tools

// Keeps Helm's command in this module's graph so `go mod tidy` records its dependencies.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
