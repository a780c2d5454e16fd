// The Flagger peer's pure parts: its pinned manifest and cache, the workload it creates, its options.
import { expect } from 'chai';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  flaggerCacheDir,
  flaggerManifestDir,
  pinnedFlaggerVersion,
  prepareFlagger,
} from '../../bench/peers/flagger/build.js';
import { checkPeerOptions } from '../../bench/peers/flagger/peer.js';
import { SUCCESS_RATE } from '../../bench/scale/workload.js';
import {
  canary,
  FLAGGER_SUCCESS_RATE,
  servicesOf,
  triggerPatch,
} from '../../bench/peers/flagger/workload.js';

describe('bench Flagger peer', () => {
  const saved = { ...process.env };
  afterEach(() => {
    for (const key of ['GO', 'PERCH_CACHE_DIR']) {
      if (saved[key] === undefined) delete process.env[key];
      else process.env[key] = saved[key];
    }
  });

  it('pins Flagger v1.36.1 in tools/flagger/go.mod and keys its cache on the manifest', () => {
    expect(pinnedFlaggerVersion()).to.equal('v1.36.1');
    const copy = mkdtempSync(join(tmpdir(), 'perch-flagger-manifest-'));
    try {
      cpSync(flaggerManifestDir, copy, { recursive: true });
      const before = flaggerCacheDir(copy);
      writeFileSync(join(copy, 'go.sum'), '# changed\n', { flag: 'a' });
      expect(flaggerCacheDir(copy)).to.not.equal(before);
      expect(before).to.contain('v1.36.1');
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  });

  it('says how to get Go when Flagger is not built and Go is missing', async () => {
    const cache = mkdtempSync(join(tmpdir(), 'perch-flagger-cache-'));
    process.env.PERCH_CACHE_DIR = cache;
    process.env.GO = join(cache, 'no-go-here');
    try {
      await prepareFlagger();
      expect.fail('prepareFlagger should have said Go is missing');
    } catch (err) {
      expect((err as Error).message).to.match(/tools\/flagger\/go\.mod.*Go is not installed/s);
      expect((err as Error).message).to.contain('https://go.dev/doc/install');
    } finally {
      rmSync(cache, { recursive: true, force: true });
    }
  });

  it("queries bench/scale's success rate with Flagger's template variables only", () => {
    expect(FLAGGER_SUCCESS_RATE).to.not.contain('{{ canary }}');
    const variables = new Set([...FLAGGER_SUCCESS_RATE.matchAll(/\{\{\s*(\w+)\s*\}\}/g)].map((m) => m[1]));
    // Flagger 1.36's MetricTemplateModel: name, namespace, target, service, ingress, route, interval, variables.
    expect([...variables].sort()).to.deep.equal(['interval', 'namespace', 'target']);
    // The same query as Perch's, its window the metric's interval (10 s) as Perch's is the check interval.
    expect(FLAGGER_SUCCESS_RATE.replaceAll('{{ target }}', '{{ canary }}')).to.equal(SUCCESS_RATE);
  });

  it('makes Canaries over a Service with stepWeights [10, 50] and a metric Flagger reads from the template', () => {
    const c = canary(7, { intervalSeconds: 10 }) as {
      spec: {
        targetRef: object;
        analysis: { stepWeights: number[]; interval: string; metrics: { name: string }[] };
      };
    };
    expect(c.spec.targetRef).to.deep.equal({ apiVersion: 'v1', kind: 'Service', name: 'app-7' });
    expect(c.spec.analysis.stepWeights).to.deep.equal([10, 50]);
    expect(c.spec.analysis.interval).to.equal('10s');
    // Flagger answers these two names with its built-in mesh queries, ignoring the templateRef.
    for (const m of c.spec.analysis.metrics)
      expect(m.name).to.not.be.oneOf(['request-success-rate', 'request-duration']);
  });

  it('makes the three Services of a run headless, all selecting v1 until the trigger', () => {
    const services = servicesOf(3);
    expect(services.map((s) => s.metadata?.name)).to.deep.equal(['app-3', 'app-3-canary', 'app-3-primary']);
    for (const s of services) {
      expect(s.spec?.clusterIP).to.equal('None');
      expect(s.spec?.selector).to.deep.equal({ app: 'app-3', version: 'v1' });
    }
    expect(triggerPatch(3)).to.deep.equal({ spec: { selector: { app: 'app-3', version: 'v2' } } });
  });

  it('names the field of a bad option', () => {
    expect(() => checkPeerOptions({ n: 0, idleMs: 0 })).to.throw(/^n: 0/);
    expect(() => checkPeerOptions({ n: 2.5, idleMs: 0 })).to.throw(/^n: 2\.5/);
    expect(() => checkPeerOptions({ n: 1, idleMs: -1 })).to.throw(/^idleMs: -1/);
    expect(() => checkPeerOptions({ n: 1, idleMs: 0, intervalSeconds: 0 })).to.throw(/^intervalSeconds: 0/);
    expect(() => checkPeerOptions({ n: 1, idleMs: 0, qps: 0 })).to.throw(/^qps: 0/);
    expect(() => checkPeerOptions({ n: 1, idleMs: 0 })).to.not.throw();
  });
});
