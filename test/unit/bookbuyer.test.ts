// The demo load generator: an exact request count on a fake clock, a rate that holds when answers are
// slow, bounded concurrency, set() and stop(); then real HTTP against the bookstore on loopback.
import { expect } from 'chai';
import { createClock, type Clock, type TimerId } from '@sinonjs/fake-timers';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import {
  startBookbuyer,
  type BookbuyerRequest,
  type PacerClock,
  type Sender,
} from '../../src/sandbox/apps/bookbuyer.js';
import { startBookstore } from '../../src/sandbox/apps/bookstore.js';

function pacerClock(clock: Clock): PacerClock {
  return {
    now: () => clock.now,
    setTimeout: (callback, ms) => clock.setTimeout(callback, ms),
    clearTimeout: (handle) => clock.clearTimeout(handle as TimerId),
  };
}

/** A sender answering `code` after `delayMs` of fake time (never, when delayMs is Infinity). */
function fakeSender(clock: Clock, delayMs = 0, code = 200): { send: Sender; seen: BookbuyerRequest[] } {
  const seen: BookbuyerRequest[] = [];
  return {
    seen,
    send: (req) => {
      seen.push(req);
      if (delayMs === Infinity) return new Promise<number>(() => undefined);
      if (delayMs === 0) return Promise.resolve(code);
      return new Promise<number>((resolve) => clock.setTimeout(() => resolve(code), delayMs));
    },
  };
}

describe('bookbuyer (demo load generator)', () => {
  it('sends exactly rps × seconds (+1 at t=0) on a fake clock', async () => {
    const clock = createClock(0);
    const { send } = fakeSender(clock);
    const buyer = startBookbuyer({ url: 'http://x/books-bought', rps: 20, clock: pacerClock(clock), send });
    await clock.tickAsync(10_000);
    expect(buyer.stats()).to.deep.include({ sent: 201, dropped: 0, failed: 0 });
    const final = await buyer.stop();
    expect(final.byCode).to.deep.equal({ '200': 201 });
  });

  it('keeps the rate when answers are slow (open loop), with requests overlapping', async () => {
    const clock = createClock(0);
    const { send } = fakeSender(clock, 700, 200);
    const buyer = startBookbuyer({ url: 'http://x/', rps: 50, clock: pacerClock(clock), send });
    await clock.tickAsync(4_000);
    const s = buyer.stats();
    expect(s.sent).to.equal(201);
    // 700 ms answers at 50/s: 35 outstanding at any moment, none dropped.
    expect(s.inFlight).to.equal(35);
    expect(s.dropped).to.equal(0);
    await clock.tickAsync(700);
    buyer.set({ rps: 0 });
    await clock.tickAsync(1_000);
    expect(buyer.stats()).to.deep.include({ inFlight: 0, byCode: { '200': 236 } });
    await buyer.stop();
  });

  it('caps requests in flight at maxInFlight and counts the rest as dropped', async () => {
    const clock = createClock(0);
    const { send } = fakeSender(clock, Infinity);
    const buyer = startBookbuyer({
      url: 'http://x/',
      rps: 10,
      maxInFlight: 5,
      clock: pacerClock(clock),
      send,
    });
    await clock.tickAsync(2_000);
    expect(buyer.stats()).to.deep.include({ sent: 5, inFlight: 5, dropped: 16 });
  });

  it('a late timer catches up on the requests that came due meanwhile', async () => {
    // A hand-driven clock: its one timer fires only when the test says, as after a blocked event loop.
    let now = 0;
    let due: (() => void) | undefined;
    const clock: PacerClock = {
      now: () => now,
      setTimeout: (callback) => (due = callback),
      clearTimeout: () => (due = undefined),
    };
    const buyer = startBookbuyer({
      url: 'http://x/',
      rps: 100,
      maxInFlight: 1_000,
      clock,
      send: () => Promise.resolve(200),
    });
    expect(buyer.stats().sent).to.equal(1);
    now = 1_000;
    due!();
    expect(buyer.stats().sent).to.equal(101);
    await buyer.stop();
    expect(due).to.equal(undefined);
  });

  it('sends the Host and x-source-name headers, and set() changes the rate', async () => {
    const clock = createClock(0);
    const { send, seen } = fakeSender(clock);
    const buyer = startBookbuyer({
      url: 'http://127.0.0.1:1/books-bought',
      host: 'bookstore.bookstore',
      rps: 10,
      clock: pacerClock(clock),
      send,
    });
    await clock.tickAsync(1_000);
    expect(seen[0]).to.deep.include({ host: 'bookstore.bookstore', url: 'http://127.0.0.1:1/books-bought' });
    expect(seen[0]!.headers).to.deep.equal({ 'x-source-name': 'bookbuyer' });
    expect(buyer.stats().sent).to.equal(11);
    buyer.set({ rps: 100 });
    await clock.tickAsync(1_000);
    expect(buyer.stats().sent).to.equal(11 + 101);
    await buyer.stop();
  });

  it('stop() ends it: no more requests, no timer left', async () => {
    const clock = createClock(0);
    const { send } = fakeSender(clock, 200);
    const buyer = startBookbuyer({ url: 'http://x/', rps: 10, clock: pacerClock(clock), send });
    await clock.tickAsync(1_000);
    const stopping = buyer.stop();
    // stop() waits for the requests in flight, which answer on the fake clock.
    await clock.tickAsync(200);
    const final = await stopping;
    expect(final).to.deep.include({ sent: 11, inFlight: 0, byCode: { '200': 11 } });
    expect(clock.countTimers()).to.equal(0);
    await clock.tickAsync(5_000);
    expect(buyer.stats().sent).to.equal(11);
  });

  it('drives the real bookstore over loopback at about the asked rate, counting 500s', async function () {
    this.timeout(10_000);
    const store = await startBookstore({ version: 'v2', errorRate: 0.2, latencyMs: 20 });
    const buyer = startBookbuyer({ url: `${store.url}/books-bought`, rps: 50 });
    await new Promise((r) => setTimeout(r, 1_000));
    const s = await buyer.stop();
    await store.close();
    // Real timers: a generous bound; the exact count is the fake-clock tests' job.
    expect(s.sent).to.be.within(35, 60);
    expect(s.failed).to.equal(0);
    expect((s.byCode['200'] ?? 0) + (s.byCode['500'] ?? 0)).to.equal(s.sent);
    expect(s.byCode['500']).to.equal(Math.floor(s.sent * 0.2 + 1e-9));
  });

  it('reaches a real server with the Host and x-source-name headers', async () => {
    const headers: IncomingHttpHeaders[] = [];
    const server = createServer((req, res) => {
      headers.push(req.headers);
      res.end('ok');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const buyer = startBookbuyer({
      url: `http://127.0.0.1:${port}/books-bought`,
      host: 'bookstore',
      rps: 20,
    });
    await new Promise((r) => setTimeout(r, 120));
    const s = await buyer.stop();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    expect(s.byCode['200']).to.be.at.least(1);
    expect(headers[0]).to.include({ host: 'bookstore', 'x-source-name': 'bookbuyer' });
  });

  it('counts a refused connection as failed, not as an answer', async () => {
    const buyer = startBookbuyer({ url: 'http://127.0.0.1:1/', rps: 10, timeoutMs: 500 });
    await new Promise((r) => setTimeout(r, 50));
    const s = await buyer.stop();
    expect(s.failed).to.equal(s.sent);
    expect(s.byCode).to.deep.equal({});
  });
});
