// Installs the CustomResourceDefinitions of crds/ and waits until the API server serves them.
import {
  ApiextensionsV1Api,
  KubernetesObjectApi,
  loadAllYaml,
  PatchStrategy,
  type KubeConfig,
  type KubernetesObject,
  type V1CustomResourceDefinition,
} from '@kubernetes/client-node';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describeApiError } from '../../k8s/api-error.js';
import { waitFor } from '../wait.js';

export function readCrds(dir: string): V1CustomResourceDefinition[] {
  return readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .flatMap((f) => loadAllYaml(readFileSync(join(dir, f), 'utf8')) as KubernetesObject[])
    .filter((o): o is V1CustomResourceDefinition => o?.kind === 'CustomResourceDefinition');
}

/** Server-side applies every CRD in `dir`, then waits for each to be Established. */
export async function installCrds(kc: KubeConfig, dir: string): Promise<string[]> {
  const objects = KubernetesObjectApi.makeApiClient(kc);
  const extensions = kc.makeApiClient(ApiextensionsV1Api);
  const crds = readCrds(dir);
  for (const crd of crds) {
    try {
      await objects.patch(crd, undefined, undefined, 'perch-sandbox', true, PatchStrategy.ServerSideApply);
    } catch (err) {
      throw describeApiError(err, `installing CRD ${crd.metadata?.name} from ${dir}`);
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
