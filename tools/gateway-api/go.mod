// The pinned Gateway API release whose official CRDs (config/crd/standard/) the local
// control plane installs. No Go code imports it: `go mod download` fetches the module for
// those files only, so do not `go mod tidy` this folder (it would drop the requirement).
module perch.dev/tools/gateway-api

go 1.26.0

require sigs.k8s.io/gateway-api v1.6.3
