// etcd for the local control plane: the official etcd server entry point at the
// version k8s.io/kubernetes pins, so the sandbox runs what envtest would.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
