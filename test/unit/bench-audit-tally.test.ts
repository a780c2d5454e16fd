// The benchmarks' audit-log tally: one client's requests, each counted once, by verb and resource, per window.
import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AuditTally,
  auditTime,
  isCountedStage,
  readAuditLog,
  requestKey,
  tallyAudit,
  tallyAuditFile,
  userAgentOf,
  type AuditEvent,
} from '../../bench/audit-tally.js';
import { auditLogFiles } from '../../src/sandbox/control-plane/kube-apiserver.js';
import { readAuditLog as readSuiteAuditLog } from '../support/control-plane.js';

const FLAGGER = 'flagger/v0.0.0 (linux/amd64) kubernetes/$Format';
const PERCH = 'perch-controller/0.1.0 (linux/x64) abc';
const T0 = Date.parse('2026-01-01T00:00:00Z');

/** An audit event `ms` after T0, with microseconds in its timestamp as the API server writes them. */
function at(ms: number, e: Partial<AuditEvent> & { verb: string }): AuditEvent {
  const iso = new Date(T0 + ms).toISOString().replace('Z', '123Z');
  return { stage: 'ResponseComplete', userAgent: FLAGGER, requestReceivedTimestamp: iso, ...e };
}

const canaryStatus = { resource: 'canaries', subresource: 'status', apiGroup: 'flagger.app' };
const windows = {
  run: { from: T0, to: T0 + 10_000 },
  idle: { from: T0 + 10_000, to: T0 + 20_000 },
};

describe('bench audit tally', () => {
  it('keeps the microseconds of an audit timestamp', () => {
    const base = Date.parse('2026-11-30T01:00:00Z');
    expect(auditTime('2026-11-30T01:00:00.123456Z') - base).to.be.closeTo(123.456, 1e-3);
    expect(auditTime('2026-11-30T01:00:00Z')).to.equal(base);
    expect(auditTime('2026-11-30T02:00:00.5+01:00')).to.equal(base + 500);
    expect(Number.isNaN(auditTime('not a time'))).to.equal(true);
  });

  it('names a request by verb and resource with its subresource, whatever its API group', () => {
    expect(
      requestKey(at(0, { verb: 'patch', objectRef: { resource: 'rollouts', subresource: 'status' } })),
    ).to.equal('patch rollouts/status');
    // Core Events (Flagger) and events.k8s.io Events share a row.
    expect(requestKey(at(0, { verb: 'create', objectRef: { resource: 'events' } }))).to.equal(
      'create events',
    );
    expect(
      requestKey(at(0, { verb: 'create', objectRef: { resource: 'events', apiGroup: 'events.k8s.io' } })),
    ).to.equal('create events');
    expect(requestKey(at(0, { verb: 'get' }))).to.equal('get nonresource');
  });

  it('counts a watch when it starts and any other request when it completes or panics', () => {
    const stage = (verb: string, s: string) => isCountedStage(at(0, { verb, stage: s }));
    expect(stage('watch', 'ResponseStarted')).to.equal(true);
    expect(stage('watch', 'ResponseComplete')).to.equal(false);
    expect(stage('get', 'ResponseStarted')).to.equal(false);
    expect(stage('get', 'RequestReceived')).to.equal(false);
    expect(stage('get', 'ResponseComplete')).to.equal(true);
    expect(stage('patch', 'Panic')).to.equal(true);
  });

  it('counts writes by verb and resource, reads outside watches apart, per window', () => {
    const t = tallyAudit(
      [
        at(1, { verb: 'update', objectRef: canaryStatus }),
        at(2, { verb: 'update', objectRef: canaryStatus }),
        at(3, { verb: 'create', objectRef: { resource: 'events' } }),
        at(4, { verb: 'patch', objectRef: { resource: 'trafficsplits', apiGroup: 'split.smi-spec.io' } }),
        at(5, { verb: 'get', objectRef: { resource: 'services' } }),
        at(6, { verb: 'list', objectRef: { resource: 'canaries', apiGroup: 'flagger.app' } }),
        // A LIST with watch=true is audited as `watch`: not a read outside the watches.
        at(7, { verb: 'watch', stage: 'ResponseStarted', objectRef: { resource: 'canaries' } }),
        at(15_000, { verb: 'get', objectRef: { resource: 'services' } }),
      ],
      userAgentOf('flagger'),
      windows,
    );
    expect(t.run).to.deep.include({ total: 7, writes: 4, reads: 2, watches: 1, failed: 0 });
    expect(t.run.byVerbResource).to.deep.equal({
      'update canaries/status': 2,
      'create events': 1,
      'patch trafficsplits': 1,
      'get services': 1,
      'list canaries': 1,
      'watch canaries': 1,
    });
    expect(t.idle).to.deep.include({ total: 1, writes: 0, reads: 1 });
    expect(t.run.userAgents).to.deep.equal([FLAGGER]);
  });

  it('leaves out other clients, stages not counted and requests outside every window; counts refusals', () => {
    const tally = new AuditTally(userAgentOf('flagger'), windows);
    for (const e of [
      at(1, { verb: 'update', userAgent: PERCH, objectRef: canaryStatus }),
      at(2, { verb: 'update', userAgent: 'kubectl/v1.33.0 (linux/amd64)', objectRef: canaryStatus }),
      // A watch's end and a GET's start: each request is counted once, at its other stage.
      at(3, { verb: 'watch', objectRef: { resource: 'services' } }),
      at(3, { verb: 'get', stage: 'ResponseStarted', objectRef: { resource: 'services' } }),
      at(-5, { verb: 'create', objectRef: { resource: 'events' } }),
      at(25_000, { verb: 'create', objectRef: { resource: 'events' } }),
      at(4, { verb: 'update', objectRef: canaryStatus, responseStatus: { code: 409 } }),
    ])
      tally.add(e);
    expect(tally.windows.run).to.deep.include({ total: 1, writes: 1, failed: 1 });
    expect(tally.windows.idle.total).to.equal(0);
    // The client's requests outside the windows still show that the filter matched something.
    expect(tally.clientEvents).to.equal(3);
  });

  it('matches a program by the first word of its user agent only', () => {
    const flagger = userAgentOf('flagger');
    const ua = (userAgent: string | undefined) => flagger(at(0, { verb: 'get', userAgent }));
    expect(ua(FLAGGER)).to.equal(true);
    expect(ua('flagger-loadtester/1.0')).to.equal(false);
    expect(ua('')).to.equal(false);
    expect(ua(undefined)).to.equal(false);
    expect(userAgentOf('perch-controller')(at(0, { verb: 'get', userAgent: PERCH }))).to.equal(true);
  });

  it('reads a log file line by line, skipping a line still being written', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'perch-audit-tally-'));
    try {
      const file = join(dir, 'audit.log');
      const lines = [
        at(1, { verb: 'update', objectRef: canaryStatus }),
        at(2, { verb: 'get', objectRef: { resource: 'services' } }),
      ].map((e) => JSON.stringify(e));
      writeFileSync(file, `${lines.join('\n')}\n\n{"stage":"ResponseCompl`);
      const t = await tallyAuditFile(file, userAgentOf('flagger'), windows);
      expect(t.run).to.deep.include({ total: 2, writes: 1, reads: 1 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads the backups kube-apiserver rotated the log into (at 100 MB), oldest first, then the log itself', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'perch-audit-tally-'));
    try {
      const file = join(dir, 'audit.log');
      const write = (name: string, ...events: AuditEvent[]) =>
        writeFileSync(join(dir, name), events.map((e) => `${JSON.stringify(e)}\n`).join(''));
      write('audit-2026-11-30T10-07-00.000.log', at(2, { verb: 'patch', objectRef: canaryStatus }));
      write('audit-2026-11-30T10-05-00.000.log', at(1, { verb: 'create', objectRef: canaryStatus }));
      write('audit.log', at(3, { verb: 'get', objectRef: { resource: 'services' } }));
      write('audit-other.log', at(4, { verb: 'delete', objectRef: canaryStatus })); // not a backup of audit.log
      expect(auditLogFiles(file).map((f) => f.slice(dir.length + 1))).to.deep.equal([
        'audit-2026-11-30T10-05-00.000.log',
        'audit-2026-11-30T10-07-00.000.log',
        'audit.log',
      ]);
      const verbs: string[] = [];
      expect(await readAuditLog(file, (e) => verbs.push(e.verb ?? ''))).to.equal(3);
      expect(verbs).to.deep.equal(['create', 'patch', 'get']);
      // The tests' own reader (test/support) reads the same, so a rotation never hides a test's requests.
      expect(readSuiteAuditLog(file).map((e) => e.verb)).to.deep.equal(['create', 'patch', 'get']);
      const t = await tallyAuditFile(file, userAgentOf('flagger'), windows);
      expect(t.run).to.deep.include({ total: 3, writes: 2, reads: 1 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
