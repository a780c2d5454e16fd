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
