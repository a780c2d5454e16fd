// The sandbox writes a kubeconfig only where that cannot destroy a person's own: a new file, or one a
// sandbox wrote before. The demo's well-known copy also leaves alone the one of a sandbox still
// running (two demos at once), and is removed on exit only while it still holds what was written.
import { expect } from 'chai';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  assertSandboxKubeconfigPath,
  publishKubeconfig,
  writeKubeconfig,
} from '../../src/sandbox/control-plane/kubeconfig.js';
import { listenOnLoopback } from '../../src/sandbox/free-port.js';

describe('sandbox kubeconfig: path guard and the demo’s well-known copy', () => {
  let dir: string;
  const servers: Server[] = [];
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'perch-unit-kubeconfig-'))));
  afterEach(async () => {
    rmSync(dir, { recursive: true, force: true });
    await Promise.all(servers.splice(0).map((s) => new Promise((done) => s.close(done))));
  });

  const params = (server: string) => ({ server, caPem: 'ca', token: 't', user: 'admin' });
  const OWN = 'apiVersion: v1\nkind: Config\ncurrent-context: prod\n';

  /** A loopback port that accepts connections, standing for another sandbox's running API server. */
  async function running(): Promise<string> {
    const server = createServer((socket) => socket.destroy());
    servers.push(server);
    return `https://127.0.0.1:${await listenOnLoopback(server)}`;
  }

  it('accepts a new path and a sandbox kubeconfig written before', () => {
    const file = join(dir, 'new.kubeconfig');
    expect(() => assertSandboxKubeconfigPath(file)).not.to.throw();
    writeKubeconfig(file, params('https://127.0.0.1:1'));
    expect(() => assertSandboxKubeconfigPath(file)).not.to.throw();
  });

  it("refuses a person's own kubeconfig, naming the flag and the fix", () => {
    const file = join(dir, 'config');
    writeFileSync(file, OWN);
    expect(() => assertSandboxKubeconfigPath(file)).to.throw(
      /--kubeconfig .*config: the file exists and is not a Perch sandbox kubeconfig.*Give a new path/,
    );
  });

  it('refuses a file that is not YAML at all', () => {
    const file = join(dir, 'notes.txt');
    writeFileSync(file, ': : not yaml [');
    expect(() => assertSandboxKubeconfigPath(file)).to.throw(/not a Perch sandbox kubeconfig/);
  });

  it('publishes over nothing or a stale sandbox kubeconfig, and unpublishes only its own content', async () => {
    const mine = writeKubeconfig(join(dir, 'mine'), params(await running()));
    const to = join(dir, 'demo.kubeconfig');
    const fresh = await publishKubeconfig(mine, to);
    expect(fresh.path).to.equal(to);
    expect(fresh.skipped).to.equal(undefined);
    expect(readFileSync(to, 'utf8')).to.equal(readFileSync(mine, 'utf8'));
    fresh.unpublish();
    expect(existsSync(to)).to.equal(false);

    // A copy left by a demo that was killed: nothing answers at its server any more.
    writeKubeconfig(to, params('https://127.0.0.1:9'));
    const overStale = await publishKubeconfig(mine, to);
    expect(overStale.path).to.equal(to);
    // Another demo took the path since: its copy stays.
    writeKubeconfig(to, params('https://127.0.0.1:10'));
    overStale.unpublish();
    expect(existsSync(to)).to.equal(true);
  });

  it("leaves another running sandbox's copy and a person's kubeconfig alone, pointing at its own", async () => {
    const mine = writeKubeconfig(join(dir, 'mine'), params(await running()));
    const to = join(dir, 'demo.kubeconfig');
    const other = writeKubeconfig(to, params(await running()));
    const before = readFileSync(other, 'utf8');
    const busy = await publishKubeconfig(mine, to);
    expect(busy.path).to.equal(mine);
    expect(busy.skipped).to.match(/belongs to another sandbox that is still running/);
    busy.unpublish();
    expect(readFileSync(to, 'utf8')).to.equal(before);

    writeFileSync(to, OWN);
    const person = await publishKubeconfig(mine, to);
    expect(person.path).to.equal(mine);
    expect(person.skipped).to.match(/not a Perch sandbox kubeconfig/);
    expect(readFileSync(to, 'utf8')).to.equal(OWN);
  });
});
