// The Flagger peer's pure parts: its pinned manifest and cache, the workload it creates, its options, and
// its figures as a side of bench/scale's table.
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
import { emptyTally, type RequestTally } from '../../bench/audit-tally.js';
import type { PeerFigures } from '../../bench/peers/flagger/figures.js';
import { checkPeerOptions } from '../../bench/peers/flagger/peer.js';
import { flaggerLabel, sideResultOf } from '../../bench/peers/flagger/side.js';
import { comparisonFigures } from '../../bench/scale/report.js';
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

  it("turns its figures into a side of the scale table, counted over the span of Perch's run window", () => {
    const tally = (over: Partial<RequestTally>): RequestTally => ({ ...emptyTally(), ...over });
    const f: PeerFigures = {
      peer: 'flagger',
      version: 'v1.36.1',
      n: 10,
      intervalSeconds: 10,
      flags: [],
      network: 'private network namespace',
      times: {
        initializeMs: 4_000,
        allSucceededMs: 56_000,
        runP50Ms: 40_000,
        runMaxMs: 55_000,
        windowMs: 70_000,
      },
      requests: {
        initialize: tally({
          total: 30,
          writes: 20,
          reads: 10,
          watches: 2,
          byVerbResource: {
            'update canaries/status': 10,
            'create events': 10,
            'get services': 10,
            'watch canaries': 2,
          },
          userAgents: ['flagger/v0.0.0'],
        }),
        run: tally({
          total: 700,
          writes: 200,
          reads: 500,
          byVerbResource: { 'update canaries/status': 120, 'create events': 80, 'get services': 500 },
          userAgents: ['flagger/v0.0.0'],
        }),
        idle: tally({ total: 7 }),
      },
      perRun: {
        writes: 20,
        writesByVerbResource: {},
        readsOutsideWatches: 50,
        cpuMs: 40,
        initializeWrites: 2,
        initializeReads: 1,
        initializeCpuMs: 8,
      },
      memory: {
        idleProcessBytes: 60 * 2 ** 20,
        peakBytes: 90 * 2 ** 20,
        afterRunsBytes: 80 * 2 ** 20,
        perCanaryBytes: 2 * 2 ** 20,
      },
      idle: { windowMs: 60_000, cpu: { cpuMs: 3_000, percentOfCore: 5 }, requests: 7 },
      sandboxCpuMs: { apiServer: 12_000, etcd: 3_000, prometheus: 500 },
    };
    const side = sideResultOf(f);
    expect(side).to.deep.equal({
      label: 'Flagger v1.36.1',
      n: 10,
      allFinishedMs: 56_000,
      finished: 10,
      unexpected: 0,
      // Its first pass over each Canary and its runs, as Perch's window holds a Rollout's whole life.
      requests: {
        'update canaries/status': 130,
        'create events': 90,
        'get services': 510,
        'watch canaries': 2,
      },
      writes: 220,
      reads: 510,
      watches: 2,
      controllerCpuSeconds: 0.48,
      idleRssKiB: 60 * 1024,
      endRssKiB: 80 * 1024,
      hwmKiB: 90 * 1024,
      idleMs: 60_000,
      idleCpuSeconds: 3,
      idleRequests: 7,
      faulty: 0,
      apiServerCpuSeconds: 12,
      etcdCpuSeconds: 3,
      prometheusCpuSeconds: 0.5,
      runMs: 70_000,
    });
    // The figures it has not are absent, so the table says "not measured" for them.
    for (const k of ['rollbackMs', 'rollbackFromDueMs', 'prometheusQueries', 'rounds', 'createMs'])
      expect(side).to.not.have.property(k);
    const perch = { ...side, label: 'after', writes: 110, controllerCpuSeconds: 0.24 };
    const figures = comparisonFigures({ n: 10, after: perch, peer: side });
    const value = (name: string) => figures.find((x) => x.name === `N = 10: ${name}`)?.value;
    expect(value('API writes per run')).to.equal('11.00; Flagger v1.36.1 22.00 (Perch/Flagger ×0.50)');
    expect(value('controller CPU per run')).to.equal(
      '24.0 ms; Flagger v1.36.1 48.0 ms (Perch/Flagger ×0.50)',
    );
    expect(value('RSS per Rollout above idle')).to.equal(
      '2048 KiB; Flagger v1.36.1 2048 KiB (Perch/Flagger ×1.00)',
    );
    expect(value('rollback latency p99')).to.equal('not measured; Flagger v1.36.1 not measured');
  });

  it('labels its column with the pinned version before it runs', () => {
    expect(flaggerLabel()).to.equal('Flagger v1.36.1');
  });
});
