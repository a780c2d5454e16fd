//go:build tools

// Keeps the official commands in this module's graph so `go mod tidy` records them.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
