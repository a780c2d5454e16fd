// The demo bookstore on loopback: OSM-shaped answers, an error rate exact over N requests, added
// latency, and set() changing both at runtime.
import { expect } from 'chai';
import { Agent, request } from 'node:http';
import { startBookstore, type Bookstore } from '../../src/sandbox/apps/bookstore.js';

const agent = new Agent({ keepAlive: true, maxSockets: 8 });

function get(
  store: Bookstore,
  path: string,
): Promise<{ code: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    request(`${store.url}${path}`, { agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.once('end', () => resolve({ code: res.statusCode ?? 0, body, headers: res.headers }));
    })
      .once('error', reject)
      .end();
  });
}

/** n requests one after another, so the order the store sees is the order sent. */
async function codes(store: Bookstore, n: number, path = '/books-bought'): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push((await get(store, path)).code);
  return out;
}

describe('bookstore (demo backend)', () => {
  const stores: Bookstore[] = [];
  const start = async (...args: Parameters<typeof startBookstore>) => {
    const s = await startBookstore(...args);
    stores.push(s);
    return s;
  };
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close();
  });
  after(() => agent.destroy());

  it('answers like OSM bookstore: its version, identity header and a books-bought counter', async () => {
    const store = await start({ version: 'v2' });
    expect(store.url).to.equal(`http://127.0.0.1:${store.port}`);
    const first = await get(store, '/books-bought');
    expect(first.code).to.equal(200);
    expect(first.headers.identity).to.equal('bookstore-v2');
    expect(JSON.parse(first.body)).to.deep.equal({ version: 'v2', identity: 'bookstore-v2', booksBought: 0 });
    await get(store, '/buy-a-book/new');
    const bought = await get(store, '/buy-a-book/new');
    expect(JSON.parse(bought.body).booksBought).to.equal(2);
    expect((await get(store, '/nothing')).code).to.equal(404);
    expect((await get(store, '/healthz')).code).to.equal(200);
    expect(store.stats()).to.include({ requests: 3, errors: 0, booksBought: 2 });
  });

  it('answers exactly floor(N × errorRate) of N requests with 500, evenly spread', async () => {
    const store = await start({ version: 'v1', errorRate: 0.1 });
    const seen = await codes(store, 100);
    expect(seen.filter((c) => c === 500)).to.have.length(10);
    // Every 10th request: the same sequence on every run, so tests and metrics are stable.
    expect(seen.map((c, i) => (c === 500 ? i : -1)).filter((i) => i >= 0)).to.deep.equal([
      9, 19, 29, 39, 49, 59, 69, 79, 89, 99,
    ]);
    expect(store.stats()).to.deep.include({ requests: 100, errors: 10, byCode: { '200': 90, '500': 10 } });
  });

  it('keeps awkward rates exact (errorRate 0.3 over 30 requests is 9 errors)', async () => {
    const store = await start({ version: 'v3', errorRate: 0.3 });
    expect((await codes(store, 30)).filter((c) => c === 500)).to.have.length(9);
    const all = await start({ version: 'v4', errorRate: 1 });
    expect(await codes(all, 5)).to.deep.equal([500, 500, 500, 500, 500]);
  });

  it('adds the configured latency to every answer, errors included', async () => {
    const store = await start({ version: 'v1', latencyMs: 120, errorRate: 0.5 });
    const t0 = performance.now();
    const [ok, failed] = await codes(store, 2);
    const elapsed = performance.now() - t0;
    expect([ok, failed]).to.deep.equal([200, 500]);
    expect(elapsed).to.be.at.least(2 * 120 - 5);
  });

  it('set() changes error rate and latency from the next request on', async () => {
    const store = await start({ version: 'v2' });
    expect(await codes(store, 10)).to.not.include(500);
    store.set({ errorRate: 0.5 });
    expect((await codes(store, 10)).filter((c) => c === 500)).to.have.length(5);
    store.set({ latencyMs: 100 });
    expect(store.stats()).to.include({ errorRate: 0.5, latencyMs: 100 });
    const t0 = performance.now();
    await get(store, '/books-bought');
    expect(performance.now() - t0).to.be.at.least(95);
    store.set({ errorRate: 0, latencyMs: 0 });
    const t1 = performance.now();
    expect(await codes(store, 10)).to.not.include(500);
    expect(performance.now() - t1).to.be.below(500);
  });

  it('refuses rates outside 0..1 and negative latency', async () => {
    let err: unknown;
    await startBookstore({ version: 'v1', errorRate: 1.5 }).catch((e: unknown) => (err = e));
    expect(err).to.be.instanceOf(RangeError);
    const store = await start({ version: 'v1' });
    expect(() => store.set({ latencyMs: -1 })).to.throw(RangeError, /latencyMs/);
  });

  it('close() does not wait out a slow answer', async () => {
    const store = await startBookstore({ version: 'v1', latencyMs: 10_000 });
    const pending = get(store, '/books-bought').catch(() => 'cut');
    await new Promise((r) => setTimeout(r, 50));
    const t0 = performance.now();
    await store.close();
    expect(performance.now() - t0).to.be.below(1000);
    expect(await pending).to.equal('cut');
  });
});
