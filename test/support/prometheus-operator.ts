// The Prometheus Operator's own ServiceMonitor CRD, at the release tools/prometheus-operator/go.mod pins,
// from Go's module cache (`go mod download`, once): the chart tests check charts/perch's ServiceMonitor
// against the real schema on the sandbox's API server.
import { join } from 'node:path';
import { lookupGo } from '../../src/sandbox/control-plane/binaries.js';
import { repoRoot } from '../../src/sandbox/repo.js';
import { downloadModule } from '../../src/sandbox/go-build.js';

const MODULE = 'github.com/prometheus-operator/prometheus-operator';
const manifestDir = join(repoRoot, 'tools', 'prometheus-operator');

/** The path of monitoring.coreos.com_servicemonitors.yaml in the module cache (read-only there). */
export async function serviceMonitorCrdFile(): Promise<string> {
  const go = lookupGo();
  if (!go) throw new Error(`Go is needed to fetch ${MODULE} (pinned in tools/prometheus-operator/go.mod)`);
  const moduleDir = await downloadModule(go, manifestDir, MODULE);
  return join(moduleDir, 'example', 'prometheus-operator-crd', 'monitoring.coreos.com_servicemonitors.yaml');
}
