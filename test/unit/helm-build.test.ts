// The pinned Helm the chart tests build: its version read from tools/helm/go.mod, its cache keyed on the
// manifest, and a clear word when Go is missing.
import { expect } from 'chai';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { helmCacheDir, helmManifestDir, pinnedHelmVersion, prepareHelm } from '../support/helm.js';

describe('helm build', () => {
  const saved = { ...process.env };
  afterEach(() => {
    for (const key of ['GO', 'PERCH_CACHE_DIR']) {
      if (saved[key] === undefined) delete process.env[key];
      else process.env[key] = saved[key];
    }
  });

  it('pins helm.sh/helm/v3 v3.22.0 in tools/helm/go.mod and keys its cache on the manifest', () => {
    expect(pinnedHelmVersion()).to.equal('v3.22.0');
    const copy = mkdtempSync(join(tmpdir(), 'perch-helm-manifest-'));
    try {
      cpSync(helmManifestDir, copy, { recursive: true });
      const before = helmCacheDir(copy);
      writeFileSync(join(copy, 'go.sum'), '# changed\n', { flag: 'a' });
      expect(helmCacheDir(copy)).to.not.equal(before);
      expect(before).to.contain(join('helm', 'v3.22.0-'));
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  });

  it('says how to get Go when Helm is not built and Go is missing', async () => {
    const cache = mkdtempSync(join(tmpdir(), 'perch-helm-cache-'));
    process.env.PERCH_CACHE_DIR = cache;
    process.env.GO = join(cache, 'no-go-here');
    try {
      await prepareHelm();
      expect.fail('prepareHelm should have said Go is missing');
    } catch (err) {
      expect((err as Error).message).to.match(/tools\/helm\/go\.mod.*Go is not installed/s);
      expect((err as Error).message).to.contain('https://go.dev/doc/install');
    } finally {
      rmSync(cache, { recursive: true, force: true });
    }
  });
});
