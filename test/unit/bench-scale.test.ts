import { expect } from 'chai';
import { AuditTally, type AuditEvent } from '../../bench/audit-tally.js';
import { measurePeer, scaleSettings, type Peer } from '../../bench/scale.js';
import {
  compare,
  comparisonFigures,
  percentile,
  ratio,
  type Comparison,
  type SideResult,
} from '../../bench/scale/report.js';
import {
  QueryAnswers,
  rollbackTimes,
  roundDue,
  routesStableAlone,
  StableAloneWrites,
} from '../../bench/scale/rollback.js';
import { BENCH_USER_AGENT, controllerRequest, sumSamples } from '../../bench/scale/side.js';
import type { Rollout } from '../../src/api/v1alpha1.js';
import { members, rolloutBody, serviceBody } from '../../bench/scale/workload.js';
import { existingSections, section, selectBenchmarks } from '../../bench/sections.js';
import type { Benchmark } from '../../bench/run.js';

const T0 = '2026-11-30T01:00:00';
const event = (over: Partial<AuditEvent>): AuditEvent => ({
  stage: 'ResponseComplete',
  verb: 'patch',
  userAgent: 'perch-controller/0.1.0 (linux/x64)',
  user: { username: 'perch-admin' },
  requestReceivedTimestamp: `${T0}.000000Z`,
  objectRef: { resource: 'rollouts', subresource: 'status', namespace: 'ns', name: 'a' },
  responseStatus: { code: 200 },
  ...over,
});
const at = (seconds: number) => `${T0.slice(0, -2)}${String(seconds).padStart(2, '0')}.000000Z`;
const base = Date.parse(`${T0}Z`);

describe("bench/scale: the controller's requests in the audit log", () => {
  it("counts the controller's requests by its user agent, or an older build's as the admin's that are not the harness's", () => {
    const tally = new AuditTally(controllerRequest('perch-admin'), {
      run: { from: base, to: base + 10_000 },
    });
    for (const e of [
      event({ requestReceivedTimestamp: at(1) }),
      // The harness's own request, and another user's, are not the controller's.
      event({ userAgent: BENCH_USER_AGENT, requestReceivedTimestamp: at(2) }),
      event({
        userAgent: 'kube-controller-manager/v1.33',
        user: { username: 'system:kcm' },
        requestReceivedTimestamp: at(3),
      }),
      // An older build with client-node's own user agent still counts, as the admin that is not the harness.
      event({
        userAgent: 'node-fetch',
        verb: 'get',
        objectRef: { resource: 'rollouts' },
        requestReceivedTimestamp: at(4),
      }),
      // Perch's user agent counts whoever it authenticates as.
      event({ user: { username: 'someone-else' }, requestReceivedTimestamp: at(5) }),
    ])
      tally.add(e);
    expect(tally.windows.run).to.deep.include({ total: 3, writes: 2, reads: 1 });
    expect(tally.windows.run.byVerbResource).to.deep.equal({ 'patch rollouts/status': 2, 'get rollouts': 1 });
  });
});

describe('bench/scale: rollback latency', () => {
  it('tells a body that routes the stable Service alone at 100, in a merge patch or a JSON patch', () => {
    const merge = { spec: { backends: [{ service: 'web-v1', weight: 100 }] }, metadata: {} };
    expect(routesStableAlone(merge, 'web-v1')).to.equal(true);
    expect(routesStableAlone(merge, 'web-v2')).to.equal(false);
    const split = {
      spec: {
        backends: [
          { service: 'web-v1', weight: 90 },
          { service: 'web-v2', weight: 10 },
        ],
      },
    };
    expect(routesStableAlone(split, 'web-v1')).to.equal(false);
    const jsonPatch = [
      { op: 'test', path: '/metadata/resourceVersion', value: '5' },
      { op: 'replace', path: '/spec/backends', value: [{ service: 'web-v1', weight: '100' }] },
    ];
    expect(routesStableAlone(jsonPatch, 'web-v1')).to.equal(true);
    expect(routesStableAlone(undefined, 'web-v1')).to.equal(false);
  });

  it("finds the controller's accepted stable-alone TrafficSplit write after a time", () => {
    const writes = new StableAloneWrites(controllerRequest('perch-admin'), (split) =>
      split === 'a' ? 'a-stable' : undefined,
    );
    const stableAlone = { spec: { backends: [{ service: 'a-stable', weight: 100 }] } };
    const split = (over: Partial<AuditEvent>) =>
      event({
        objectRef: { resource: 'trafficsplits', namespace: 'ns', name: 'a' },
        requestObject: stableAlone,
        ...over,
      });
    for (const e of [
      // The stable-alone create is not a rollback; a refused patch did not route anything.
      split({ verb: 'create', requestReceivedTimestamp: at(5) }),
      split({ responseStatus: { code: 409 }, requestReceivedTimestamp: at(6) }),
      // Not yet complete: the same write is counted once, when it completes.
      split({ stage: 'ResponseStarted', requestReceivedTimestamp: at(6) }),
      // The harness's own write is not the controller's.
      split({ userAgent: BENCH_USER_AGENT, requestReceivedTimestamp: at(6) }),
      split({ requestReceivedTimestamp: at(7) }),
      split({ verb: 'update', requestReceivedTimestamp: at(9) }),
      // A write to a split whose stable Service is unknown, and one routing the canary too.
      split({
        objectRef: { resource: 'trafficsplits', namespace: 'ns', name: 'b' },
        requestReceivedTimestamp: at(6),
      }),
      split({
        requestObject: {
          spec: {
            backends: [
              { service: 'a-stable', weight: 50 },
              { service: 'a-canary', weight: 50 },
            ],
          },
        },
        requestReceivedTimestamp: at(6),
      }),
    ])
      writes.add(e);
    expect(writes.after('a', base + 1000)).to.equal(base + 7000);
    expect(writes.after('a', base + 8000)).to.equal(base + 9000);
    expect(writes.after('a', base + 9500)).to.equal(undefined);
    expect(writes.after('b', base)).to.equal(undefined);
  });

  it('reads when Prometheus answered each query at each evaluation time from its query log', () => {
    const answers = new QueryAnswers();
    const line = (query: string, end: number, ts: number) =>
      JSON.stringify({
        httpRequest: { clientIP: '127.0.0.1', method: 'POST', path: '/api/v1/query' },
        params: { end: new Date(end).toISOString(), query, start: new Date(end).toISOString(), step: 0 },
        stats: { timings: { execTotalTime: 0.0001 } },
        ts: new Date(ts).toISOString(),
      });
    answers.add(line('rate(a[10s])', base + 20_100, base + 20_150));
    answers.add(line('rate(a[10s])', base + 20_100, base + 20_900)); // asked again: the first answer stands
    answers.add(line('rate(b[10s])', base + 20_100, base + 20_120));
    answers.add('{"params":{"query":"rate(a[10s])"'); // cut short as Prometheus stopped
    answers.add('');
    expect(answers.at('rate(a[10s])', base + 20_100)).to.equal(base + 20_150);
    expect(answers.at('rate(b[10s])', base + 20_100)).to.equal(base + 20_120);
    expect(answers.at('rate(a[10s])', base + 30_100)).to.equal(undefined);
  });

  it('takes the due time of the round that failed: the latest one not after it began', () => {
    expect(roundDue([base + 10_000, base + 20_000, base + 30_000], base + 21_500)).to.equal(base + 20_000);
    expect(roundDue([base + 30_000], base + 21_500)).to.equal(undefined);
  });

  it("measures from the first failing measurement's at to the stable-alone write after it", () => {
    const final = {
      status: {
        phase: 'Failed',
        analysis: {
          measurements: [
            { metric: 'm', value: 100, verdict: 'Pass', at: new Date(base + 10_000).toISOString() },
            { metric: 'm', value: 0, verdict: 'Fail', at: new Date(base + 20_100).toISOString() },
          ],
        },
      },
    } as unknown as Rollout;
    const writes = [base + 5_000, base + 20_180];
    const t = rollbackTimes(
      final,
      [base + 10_000, base + 20_000],
      (since) => writes.find((w) => w >= since),
      (evaluatedAt) => (evaluatedAt === base + 20_100 ? base + 20_160 : undefined),
    );
    expect(t).to.deep.equal({
      knownAt: base + 20_100,
      dueAt: base + 20_000,
      answeredAt: base + 20_160,
      writtenAt: base + 20_180,
    });
    expect(rollbackTimes({ status: { phase: 'Succeeded' } } as unknown as Rollout, [], () => 0)).to.equal(
      undefined,
    );
  });
});

describe('bench/scale: the workload and settings', () => {
  it('makes every tenth Rollout faulty, each with its own three Services', () => {
    const all = members(100);
    expect(all.filter((m) => m.faulty)).to.have.length(10);
    expect(all[0]).to.deep.equal({
      name: 'app-0',
      service: 'app-0',
      stable: 'app-0-stable',
      canary: 'app-0-canary',
      faulty: true,
    });
    expect(new Set(all.flatMap((m) => [m.service, m.stable, m.canary])).size).to.equal(300);
    expect(() => members(0)).to.throw(/whole number/);
    // Headless: no cluster IP to allocate, which kube-apiserver 1.33 does in time growing with their number.
    expect(serviceBody('app-0-stable')).to.deep.include({
      spec: { clusterIP: 'None', ports: [{ port: 80, name: 'http' }], selector: { app: 'app-0-stable' } },
    });
  });

  it('gives each Rollout the steps and the 10 s success-rate check of the issue', () => {
    const body = rolloutBody(members(1)[0]!) as {
      spec: { steps: unknown[]; analysis: { interval: string } };
    };
    expect(body.spec.steps).to.deep.equal([
      { setWeight: 10 },
      { analysis: { iterations: 1 } },
      { setWeight: 50 },
      { analysis: { iterations: 1 } },
      { setWeight: 100 },
    ]);
    expect(body.spec.analysis.interval).to.equal('10s');
  });

  it('runs N = 100 and 1,000 by default, 10,000 only when asked, and names a bad variable', () => {
    const defaults = scaleSettings({});
    expect(defaults.ns).to.deep.equal([100, 1000]);
    expect(defaults.idleMs).to.equal(60_000);
    expect(defaults.baseline).to.equal(undefined);
    expect(scaleSettings({ PERCH_BENCH_SCALE_N: '10000' }).ns).to.deep.equal([10000]);
    expect(scaleSettings({ PERCH_BENCH_SCALE_BASELINE: 'none' }).baseline).to.equal(null);
    expect(scaleSettings({ PERCH_BENCH_SCALE_BASELINE: 'v0.1' }).baseline).to.equal('v0.1');
    expect(() => scaleSettings({ PERCH_BENCH_SCALE_N: '100,lots' })).to.throw(/PERCH_BENCH_SCALE_N=lots/);
    expect(() => scaleSettings({ PERCH_BENCH_SCALE_IDLE_MS: '-5' })).to.throw(/PERCH_BENCH_SCALE_IDLE_MS/);
  });

  it('runs the Flagger peer unless PERCH_BENCH_SCALE_PEER=none, and names a bad value', () => {
    expect(scaleSettings({}).peer).to.equal(true);
    expect(scaleSettings({ PERCH_BENCH_SCALE_PEER: 'flagger' }).peer).to.equal(true);
    expect(scaleSettings({ PERCH_BENCH_SCALE_PEER: 'none' }).peer).to.equal(false);
    expect(() => scaleSettings({ PERCH_BENCH_SCALE_PEER: 'argo' })).to.throw(
      /PERCH_BENCH_SCALE_PEER=argo: give flagger \(the default\) or none/,
    );
  });

  it("passes PERCH_BENCH_SCALE_NODE_ARGS to the controllers' node, split at spaces", () => {
    expect(scaleSettings({}).nodeArgs).to.deep.equal([]);
    expect(
      scaleSettings({ PERCH_BENCH_SCALE_NODE_ARGS: ' --cpu-prof  --cpu-prof-dir=/tmp/p ' }).nodeArgs,
    ).to.deep.equal(['--cpu-prof', '--cpu-prof-dir=/tmp/p']);
  });

  it('sums the samples of one metric whose labels match', () => {
    const text = [
      '# TYPE prometheus_http_requests_total counter',
      'prometheus_http_requests_total{code="200",handler="/api/v1/query"} 40',
      'prometheus_http_requests_total{code="400",handler="/api/v1/query"} 2',
      'prometheus_http_requests_total{code="200",handler="/metrics"} 9',
      'prometheus_http_requests_total_other{handler="/api/v1/query"} 1000',
    ].join('\n');
    expect(sumSamples(text, 'prometheus_http_requests_total', 'handler="/api/v1/query"')).to.equal(42);
    expect(sumSamples(text, 'prometheus_http_requests_total')).to.equal(51);
  });
});

const side = (over: Partial<SideResult>): SideResult => ({
  label: 'after',
  n: 10,
  allFinishedMs: 30_000,
  finished: 10,
  unexpected: 0,
  createMs: 100,
  requests: { 'patch rollouts/status': 100, 'create events': 80, 'get rollouts': 1 },
  writes: 180,
  reads: 1,
  watches: 0,
  controllerCpuSeconds: 1.5,
  idleRssKiB: 100 * 1024,
  endRssKiB: 110 * 1024,
  hwmKiB: 120 * 1024,
  idleMs: 60_000,
  idleCpuSeconds: 0.6,
  idleRequests: 0,
  rollbackMs: [10, 20],
  faulty: 1,
  prometheusQueries: 30,
  rounds: 30,
  reconciles: 95,
  eventLoopDelayMs: { p99: 12, max: 40 },
  apiServerCpuSeconds: 2,
  etcdCpuSeconds: 0.5,
  prometheusCpuSeconds: 0.1,
  runMs: 40_000,
  ...over,
});

describe('bench/scale: the figures', () => {
  it('takes nearest-rank percentiles', () => {
    expect(percentile([5, 1, 4, 2, 3], 50)).to.equal(3);
    expect(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 99)).to.equal(10);
    expect(Number.isNaN(percentile([], 50))).to.equal(true);
  });

  it('gives after ÷ before, and none where it means nothing', () => {
    expect(ratio(50, 200)).to.equal('×0.25');
    expect(ratio(300, 200)).to.equal('×1.50');
    expect(ratio(0, 0)).to.equal('×1');
    expect(ratio(5, 0)).to.equal('–');
    expect(ratio(undefined, 3)).to.equal('–');
  });

  it('shows before → after with the ratio, then the peer with Perch ÷ peer', () => {
    const c: Comparison = {
      n: 10,
      before: side({ label: 'before', writes: 240 }),
      after: side({}),
      peer: side({ label: 'Flagger v1.36.1', writes: 220 }),
    };
    const perRun = (r: SideResult) => r.writes / r.n;
    expect(compare(c, perRun, (v) => v.toFixed(1))).to.equal(
      '24.0 → 18.0 (×0.75); Flagger v1.36.1 22.0 (Perch/Flagger ×0.82)',
    );
    expect(compare({ n: 10, after: side({}) }, perRun, (v) => v.toFixed(1))).to.equal('18.0');
  });

  it('has a row per figure of the issue and one per kind of write, and says when a side did not finish', () => {
    const c: Comparison = {
      n: 10,
      before: side({ label: 'before', allFinishedMs: undefined, finished: 7, unexpected: 1 }),
      after: side({}),
    };
    const figures = comparisonFigures(c);
    const names = figures.map((f) => f.name);
    for (const name of [
      'N = 10: time until all finished',
      'N = 10: API writes per run',
      'N = 10:   patch rollouts/status per run',
      'N = 10:   create events per run',
      'N = 10: reads outside watches per run',
      'N = 10: controller CPU per run',
      'N = 10: RSS per Rollout above idle',
      'N = 10: idle CPU, 60 s after all finished',
      'N = 10: idle requests, 60 s after all finished',
      'N = 10: rollback latency p50',
      'N = 10: rollback latency p99',
      'N = 10: Prometheus queries per check round',
      'N = 10: kube-apiserver CPU per run',
      'N = 10: etcd CPU per run',
    ])
      expect(names).to.include(name);
    const value = (name: string) => figures.find((f) => f.name === `N = 10: ${name}`)?.value;
    expect(value('time until all finished')).to.equal('n/a → 30.0 s (–)');
    expect(value('controller CPU per run')).to.equal('150 ms → 150 ms (×1.00)');
    expect(value('RSS per Rollout above idle')).to.equal('1024 KiB → 1024 KiB (×1.00)');
    expect(value('idle CPU, 60 s after all finished')).to.equal('1.00 % → 1.00 % (×1.00)');
    expect(value('reconciles per run')).to.equal('9.5 → 9.5 (×1.00)');
    expect(value('controller event-loop delay p99')).to.equal('12.0 ms → 12.0 ms (×1.00)');
    expect(value('controller event-loop delay max')).to.equal('40.0 ms → 40.0 ms (×1.00)');
    expect(value('before did not finish as expected')).to.equal('7 of 10 ended, 1 in an unexpected phase');
  });

  it("gives every figure the peer measured its Perch/peer ratio, and says 'not measured' for the rest", () => {
    const peer = side({
      label: 'Flagger v1.36.1',
      requests: { 'update canaries/status': 90, 'create events': 60, 'get services': 400 },
      writes: 150,
      reads: 400,
      controllerCpuSeconds: 0.5,
      faulty: 0,
      rollbackMs: undefined,
      rollbackFromDueMs: undefined,
      prometheusQueries: undefined,
      rounds: undefined,
      createMs: undefined,
      eventLoopDelayMs: undefined,
      reconciles: undefined,
    });
    const figures = comparisonFigures({ n: 10, after: side({ rollbackFromDueMs: [30, 40] }), peer });
    const value = (name: string) => figures.find((f) => f.name === `N = 10: ${name}`)?.value;
    expect(value('controller CPU per run')).to.equal('150 ms; Flagger v1.36.1 50.0 ms (Perch/Flagger ×3.00)');
    expect(value('API writes per run')).to.equal('18.00; Flagger v1.36.1 15.00 (Perch/Flagger ×1.20)');
    expect(value('  create events per run')).to.equal('8.00; Flagger v1.36.1 6.00 (Perch/Flagger ×1.33)');
    // A kind only the peer writes has its row too.
    expect(value('  update canaries/status per run')).to.equal(
      '0.00; Flagger v1.36.1 9.00 (Perch/Flagger ×0.0)',
    );
    expect(value('reads outside watches per run')).to.equal(
      '0.100; Flagger v1.36.1 40.000 (Perch/Flagger ×0.0025)',
    );
    for (const name of [
      'rollback latency p50',
      'rollback latency p99',
      'rollback latency from the round due, p50',
      'rollback latency from the round due, p99',
      'Prometheus queries per check round',
      'creating the N Rollouts (client side)',
      'controller event-loop delay p99',
      'reconciles per run',
    ])
      expect(value(name), name).to.match(/; Flagger v1\.36\.1 not measured$/);
    expect(value('rollback latency p50')).to.equal('10.0 ms; Flagger v1.36.1 not measured');
    // Every other figure has a ratio.
    const rest = figures.filter((f) => !f.value.endsWith('not measured'));
    expect(rest.length).to.be.greaterThan(15);
    for (const f of rest) expect(f.value, f.name).to.match(/\(Perch\/Flagger (×[\d.]+|–)\)$/);
  });

  it("stands the peer's error in place of its figures when it failed", async () => {
    const lines: string[] = [];
    const failing: Peer = {
      label: 'Flagger v1.36.1',
      run: () =>
        Promise.reject(new Error('Flagger is not built and Go is not installed: https://go.dev/doc/install')),
    };
    const c: Comparison = { n: 10, after: side({}) };
    await measurePeer(failing, c, 60_000, (line) => lines.push(line));
    expect(c.peer).to.equal(undefined);
    expect(lines).to.deep.equal([
      'N=10 Flagger v1.36.1 failed: Flagger is not built and Go is not installed: https://go.dev/doc/install',
    ]);
    const figures = comparisonFigures(c);
    expect(figures.find((f) => f.name === 'N = 10: API writes per run')?.value).to.equal('18.00');
    expect(figures.at(-1)).to.deep.include({
      name: 'N = 10: Flagger v1.36.1 not measured',
      value: 'Flagger is not built and Go is not installed: https://go.dev/doc/install',
    });

    const working: Peer = {
      label: 'Flagger v1.36.1',
      run: (o) => Promise.resolve(side({ label: 'Flagger v1.36.1', n: o.n })),
    };
    const ok: Comparison = { n: 10, after: side({}) };
    await measurePeer(working, ok, 60_000, () => {});
    expect(ok.peer?.label).to.equal('Flagger v1.36.1');
    expect(ok.peerFailure).to.equal(undefined);
  });

  it('shows the figures after alone, with the error, when the build before failed', () => {
    const error = 'perch controller exited (1) during the run: [{"msg":"boom"}]';
    const figures = comparisonFigures({ n: 10, after: side({}), beforeFailure: { label: 'before', error } });
    expect(figures.find((f) => f.name === 'N = 10: API writes per run')?.value).to.equal('18.00');
    expect(figures.at(-1)).to.deep.include({ name: 'N = 10: before not measured', value: error });
  });
});

describe('bench/run: a section of BENCHMARKS.md', () => {
  const m = {
    nproc: 2,
    cpu: 'cpu',
    memory: '1 GiB',
    kernel: 'Linux x',
    node: 'v20',
    load: '0.10',
    date: '2026-11-30T00:00:00Z',
  };
  const b: Benchmark = { file: 'scale.ts', title: 'Scale', run: () => Promise.reject(new Error('unused')) };

  it('puts notes (bench/scale/PROFILE.md) after the figures, within the section kept by the next run', () => {
    const notes = '### Where the time went\n\nGC 7 %.';
    const text = section(b, m, { description: 'd', figures: [{ name: 'f', value: '1' }], notes }, 3);
    expect(text.indexOf('| f | 1 |  |')).to.be.lessThan(text.indexOf('### Where the time went'));
    expect(existingSections(`# Benchmarks\n\n${text}`).get('scale.ts')).to.contain('GC 7 %.');
    expect(section(b, m, { description: 'd', figures: [] }, 3)).to.not.contain('###');
  });
});

describe('bench/run: choosing benchmarks and keeping the other sections', () => {
  const bench = (file: string): Benchmark => ({
    file,
    title: file,
    run: () => Promise.resolve({ description: '', figures: [] }),
  });
  const all = ['sandbox.ts', 'controller.ts', 'scale.ts'].map(bench);

  it('runs all by default, or those PERCH_BENCH_ONLY names, and refuses an unknown one', () => {
    expect(selectBenchmarks(all, undefined)).to.have.length(3);
    expect(selectBenchmarks(all, 'scale,sandbox.ts').map((b) => b.file)).to.deep.equal([
      'sandbox.ts',
      'scale.ts',
    ]);
    expect(() => selectBenchmarks(all, 'scales')).to.throw(/PERCH_BENCH_ONLY: no benchmark scales/);
  });

  it('reads back the sections of BENCHMARKS.md as they were written', () => {
    const one = '## Sandbox (`bench/sandbox.ts`)\n\ntext\n\n| a | b |\n';
    const two = '## Scale (`bench/scale.ts`)\n\nmore\n';
    const sections = existingSections(`# Benchmarks\n\nintro\n\n${[one, two].join('\n')}`);
    expect([...sections.keys()]).to.deep.equal(['sandbox.ts', 'scale.ts']);
    expect(sections.get('sandbox.ts')).to.equal(one);
    expect(sections.get('scale.ts')).to.equal(two);
  });
});
