// The OSM metrics target's series as Prometheus would scrape them, on a stepped clock: exact counts,
// and no non-5xx series for a destination that answers only 5xx (the all-5xx canary of SPEC §2).
import { expect } from 'chai';
import { startOsmMetricsTarget, type OsmMetricsTarget } from '../../src/sandbox/apps/osm-metrics-target.js';

/** osm_request_total's samples for one destination, by response_code, from the /metrics text. */
async function requestsByCode(target: OsmMetricsTarget, name: string): Promise<Record<string, number>> {
  const text = await (await fetch(target.url)).text();
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    if (!line.startsWith('osm_request_total{') || !line.includes(`destination_name="${name}"`)) continue;
    const code = /response_code="([^"]*)"/.exec(line)?.[1] ?? '?';
    out[code] = Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return out;
}

describe('OSM metrics target', () => {
  let now = 0;
  let target: OsmMetricsTarget;
  beforeEach(async () => {
    now = 0;
    target = await startOsmMetricsTarget({ clock: () => now });
  });
  afterEach(() => target.close());

  it('counts requests and 500s exactly by rate × elapsed time, both series present from the start', async () => {
    target.set('ns', 'web-v2', { rps: 10, errorRate: 0.2, latencyMs: 5 });
    expect(await requestsByCode(target, 'web-v2')).to.deep.equal({ '200': 0, '500': 0 });
    now = 3000;
    expect(await requestsByCode(target, 'web-v2')).to.deep.equal({ '200': 24, '500': 6 });
  });

  it('exports no 200 series for a destination that answers only 500, even before any traffic', async () => {
    target.set('ns', 'web-v2', { rps: 10, errorRate: 1, latencyMs: 5 });
    expect(await requestsByCode(target, 'web-v2')).to.deep.equal({ '500': 0 });
    now = 5000;
    expect(await requestsByCode(target, 'web-v2')).to.deep.equal({ '500': 50 });
  });

  it('drops the 200 series of a destination that turns to answering only 500', async () => {
    target.set('ns', 'web-v2', { rps: 10, errorRate: 0, latencyMs: 5 });
    now = 1000;
    target.set('ns', 'web-v2', { rps: 10, errorRate: 1, latencyMs: 5 });
    now = 2000;
    expect(await requestsByCode(target, 'web-v2')).to.deep.equal({ '500': 10 });
  });
});

describe('OSM metrics target without durations', () => {
  it('exports osm_request_total alone, with the same exact counts, and no latency histogram', async () => {
    let now = 0;
    const full = await startOsmMetricsTarget({ clock: () => now });
    const slim = await startOsmMetricsTarget({ clock: () => now, durations: false });
    try {
      for (const t of [full, slim]) t.set('ns', 'web-v2', { rps: 10, errorRate: 0.2, latencyMs: 5 });
      now = 3000;
      const names = async (t: OsmMetricsTarget) =>
        new Set(
          (await (await fetch(t.url)).text())
            .split('\n')
            .filter((l) => l.startsWith('osm_'))
            .map((l) => l.slice(0, l.search(/[{ ]/))),
        );
      expect([...(await names(full))]).to.include('osm_request_duration_ms_bucket');
      expect([...(await names(slim))]).to.deep.equal(['osm_request_total']);
      expect(await requestsByCode(slim, 'web-v2')).to.deep.equal({ '200': 24, '500': 6 });
    } finally {
      await Promise.all([full.close(), slim.close()]);
    }
  });
});
