// The benchmarks' audit-log tally: one client's finished requests, by verb and resource, per time window.
import { expect } from 'chai';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tallyAudit, tallyAuditFile, userAgentOf, type AuditLine } from '../../bench/audit-tally.js';

const FLAGGER = 'flagger/v0.0.0 (linux/amd64) kubernetes/$Format';
const PERCH = 'perch-controller/0.1.0 (linux/x64) abc';
const T0 = Date.parse('2026-01-01T00:00:00Z');

/** An audit event `ms` after T0, with microseconds in its timestamp as the API server writes them. */
function at(ms: number, e: Partial<AuditLine> & { verb: string }): AuditLine {
  const iso = new Date(T0 + ms).toISOString().replace('Z', '123Z');
  return { stage: 'ResponseComplete', userAgent: FLAGGER, requestReceivedTimestamp: iso, ...e };
}

const canaryStatus = { resource: 'canaries', subresource: 'status', apiGroup: 'flagger.app' };
const windows = [
  { name: 'run', from: T0, to: T0 + 10_000 },
  { name: 'idle', from: T0 + 10_000, to: T0 + 20_000 },
];

describe('bench audit tally', () => {
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
        at(7, { verb: 'watch', objectRef: { resource: 'canaries', apiGroup: 'flagger.app' } }),
        at(15_000, { verb: 'get', objectRef: { resource: 'services' } }),
      ],
      userAgentOf('flagger'),
      windows,
    );
    expect(t.run).to.deep.include({ total: 7, writes: 4, reads: 2, watches: 1, failed: 0 });
    expect(t.run!.byVerbResource).to.deep.equal({
      'update canaries.flagger.app/status': 2,
      'create events': 1,
      'patch trafficsplits.split.smi-spec.io': 1,
      'get services': 1,
      'list canaries.flagger.app': 1,
      'watch canaries.flagger.app': 1,
    });
    expect(t.idle).to.deep.include({ total: 1, writes: 0, reads: 1 });
    expect(t.run!.userAgents).to.deep.equal([FLAGGER]);
  });

  it('leaves out other clients, unfinished stages and requests outside every window; counts refusals', () => {
    const t = tallyAudit(
      [
        at(1, { verb: 'update', userAgent: PERCH, objectRef: canaryStatus }),
        at(2, { verb: 'update', userAgent: 'kubectl/v1.33.0 (linux/amd64)', objectRef: canaryStatus }),
        at(3, { verb: 'watch', stage: 'ResponseStarted', objectRef: { resource: 'services' } }),
        at(-5, { verb: 'create', objectRef: { resource: 'events' } }),
        at(25_000, { verb: 'create', objectRef: { resource: 'events' } }),
        at(4, { verb: 'update', objectRef: canaryStatus, responseStatus: { code: 409 } }),
      ],
      userAgentOf('flagger'),
      windows,
    );
    expect(t.run).to.deep.include({ total: 1, writes: 1, failed: 1 });
    expect(t.idle!.total).to.equal(0);
  });

  it('matches a program by the first word of its user agent only', () => {
    const flagger = userAgentOf('flagger');
    expect(flagger(FLAGGER)).to.equal(true);
    expect(flagger('flagger-loadtester/1.0')).to.equal(false);
    expect(flagger('')).to.equal(false);
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
});
