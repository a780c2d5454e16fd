import { expect } from 'chai';
import { chmodSync, cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  cacheDir,
  pinnedKubernetesVersion,
  prepareBinaries,
} from '../../src/sandbox/control-plane/binaries.js';
import { controlPlaneManifestDir } from '../../src/sandbox/repo.js';

describe('control-plane binaries', () => {
  const saved = { ...process.env };
  afterEach(() => {
    for (const key of ['KUBEBUILDER_ASSETS', 'PERCH_CACHE_DIR']) {
      if (saved[key] === undefined) delete process.env[key];
      else process.env[key] = saved[key];
    }
  });

  it('reads the pinned Kubernetes version from tools/control-plane/go.mod', () => {
    expect(pinnedKubernetesVersion()).to.match(/^v1\.33\.\d+$/);
  });

  it('keys the cache folder on the manifest, so a changed go.sum never reuses an old build', () => {
    const copy = mkdtempSync(join(tmpdir(), 'perch-manifest-'));
    try {
      cpSync(controlPlaneManifestDir, copy, { recursive: true });
      const before = cacheDir(copy);
      writeFileSync(join(copy, 'go.sum'), '# changed\n', { flag: 'a' });
      expect(cacheDir(copy)).to.not.equal(before);
      expect(before).to.contain(pinnedKubernetesVersion());
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  });

  it('uses KUBEBUILDER_ASSETS when it holds the binaries (setup-envtest layout)', async () => {
    const assets = mkdtempSync(join(tmpdir(), 'perch-assets-'));
    try {
      for (const name of ['kube-apiserver', 'etcd', 'kube-controller-manager', 'kubectl']) {
        writeFileSync(join(assets, name), '#!/bin/sh\n');
        chmodSync(join(assets, name), 0o755);
      }
      process.env.KUBEBUILDER_ASSETS = assets;
      const b = await prepareBinaries();
      expect(b.source).to.equal('KUBEBUILDER_ASSETS');
      expect(b.kubeApiserver).to.equal(join(assets, 'kube-apiserver'));
      expect(b.kubectl).to.equal(join(assets, 'kubectl'));
    } finally {
      rmSync(assets, { recursive: true, force: true });
    }
  });

  it('names the fix when KUBEBUILDER_ASSETS lacks kube-apiserver', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'perch-assets-'));
    process.env.KUBEBUILDER_ASSETS = empty;
    try {
      await prepareBinaries();
      expect.fail('prepareBinaries should have refused the empty folder');
    } catch (err) {
      expect((err as Error).message)
        .to.contain(`KUBEBUILDER_ASSETS=${empty}`)
        .and.to.contain('setup-envtest');
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
