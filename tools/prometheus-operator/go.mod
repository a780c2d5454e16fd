// The pinned Prometheus Operator release whose official ServiceMonitor CRD
// (example/prometheus-operator-crd/) the chart tests install to check charts/perch's ServiceMonitor
// against. No Go code imports it: `go mod download` fetches the module for that file only, so do not
// `go mod tidy` this folder (it would drop the requirement).
module perch.dev/tools/prometheus-operator

go 1.26.0

require github.com/prometheus-operator/prometheus-operator v0.85.0
