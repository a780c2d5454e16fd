// Installs CustomResourceDefinitions (crds/, the official Gateway API ones) and waits until the API
// server serves them.
import {
  ApiextensionsV1Api,
  KubernetesObjectApi,
  loadAllYaml,
  PatchStrategy,
  type KubeConfig,
  type KubernetesObject,
  type V1CustomResourceDefinition,
} from '@kubernetes/client-node';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describeApiError } from '../../k8s/api-error.js';
import { waitFor } from '../wait.js';

/** The CRDs in a YAML file, or in every *.yaml / *.yml file of a folder (in name order); other kinds are skipped. */
export function readCrds(path: string): V1CustomResourceDefinition[] {
  const files = statSync(path).isDirectory()
    ? readdirSync(path)
        .filter((f) => /\.ya?ml$/.test(f))
        .sort()
        .map((f) => join(path, f))
    : [path];
  return files
    .flatMap((f) => loadAllYaml(readFileSync(f, 'utf8')) as KubernetesObject[])
    .filter((o): o is V1CustomResourceDefinition => o?.kind === 'CustomResourceDefinition');
}

/**
 * Server-side applies every CRD (those of a folder, or the ones given), then waits for each to be
 * Established. All are applied before any wait, so the API server sets them up side by side.
 */
export async function installCrds(
  kc: KubeConfig,
  source: string | readonly V1CustomResourceDefinition[],
): Promise<string[]> {
  const objects = KubernetesObjectApi.makeApiClient(kc);
  const extensions = kc.makeApiClient(ApiextensionsV1Api);
  const crds = typeof source === 'string' ? readCrds(source) : source;
  const from = typeof source === 'string' ? ` from ${source}` : '';
  for (const crd of crds) {
    try {
      await objects.patch(crd, undefined, undefined, 'perch-sandbox', true, PatchStrategy.ServerSideApply);
    } catch (err) {
      throw describeApiError(err, `installing CRD ${crd.metadata?.name}${from}`);
    }
  }
  const names = crds.map((c) => c.metadata?.name ?? '');
  for (const name of names) {
    await waitFor(
      async () => {
        const crd = await extensions.readCustomResourceDefinition({ name });
        const established = crd.status?.conditions?.find((c) => c.type === 'Established');
        return established?.status === 'True' ? true : undefined;
      },
      { what: `CRD ${name} to be Established`, timeoutMs: 30_000 },
    );
  }
  return names;
}
