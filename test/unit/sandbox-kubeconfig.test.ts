// The sandbox writes its kubeconfig only where that cannot destroy a person's own: a new file, or
// one the sandbox wrote before. Removal on exit follows the same rule.
import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  assertSandboxKubeconfigPath,
  isSandboxKubeconfig,
  writeKubeconfig,
} from '../../src/sandbox/control-plane/kubeconfig.js';

describe('sandbox kubeconfig path guard', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'perch-unit-kubeconfig-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const params = { server: 'https://127.0.0.1:1', caPem: 'ca', token: 't', user: 'admin' };

  it('accepts a new path and a sandbox kubeconfig written before', () => {
    const file = join(dir, 'new.kubeconfig');
    expect(() => assertSandboxKubeconfigPath(file)).not.to.throw();
    expect(isSandboxKubeconfig(file), 'nothing there yet').to.equal(false);
    writeKubeconfig(file, params);
    expect(() => assertSandboxKubeconfigPath(file)).not.to.throw();
    expect(isSandboxKubeconfig(file)).to.equal(true);
  });

  it("refuses a person's own kubeconfig, naming the flag and the fix, and leaves it as it was", () => {
    const file = join(dir, 'config');
    const own = 'apiVersion: v1\nkind: Config\ncurrent-context: prod\n';
    writeFileSync(file, own);
    expect(() => assertSandboxKubeconfigPath(file)).to.throw(
      /--kubeconfig .*config: the file exists and is not a Perch sandbox kubeconfig.*Give a new path/,
    );
    expect(isSandboxKubeconfig(file)).to.equal(false);
    expect(readFileSync(file, 'utf8')).to.equal(own);
  });

  it('refuses a file that is not YAML at all', () => {
    const file = join(dir, 'notes.txt');
    writeFileSync(file, ': : not yaml [');
    expect(() => assertSandboxKubeconfigPath(file)).to.throw(/not a Perch sandbox kubeconfig/);
  });
});
