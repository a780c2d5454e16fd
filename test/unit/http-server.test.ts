// The controller's endpoints on loopback: /healthz follows the health callback (a stuck worker fails it),
// /readyz the caches, /metrics the registry.
import { expect } from 'chai';
import { Registry } from 'prom-client';
import { startHttpServer, type Health } from '../../src/controller/http-server.js';

describe('controller HTTP endpoints', () => {
  it('/healthz answers 503 with the reason while the health callback says a worker is stuck', async () => {
    let health: Health = { ok: true };
    let ready = false;
    const server = await startHttpServer(
      '127.0.0.1:0',
      new Registry(),
      () => ready,
      () => health,
    );
    try {
      const get = async (path: string) => {
        const res = await fetch(`http://${server.address}${path}`);
        return [res.status, await res.text()];
      };
      expect(await get('/healthz')).to.deep.equal([200, 'ok']);
      expect(await get('/readyz')).to.deep.equal([503, 'caches not synced yet']);
      health = { ok: false, reason: 'a worker has been reconciling one Rollout for 130 s' };
      ready = true;
      expect(await get('/healthz')).to.deep.equal([
        503,
        'a worker has been reconciling one Rollout for 130 s',
      ]);
      expect(await get('/readyz')).to.deep.equal([200, 'ok']);
      expect((await get('/metrics'))[0]).to.equal(200);
    } finally {
      await server.close();
    }
  });
});
