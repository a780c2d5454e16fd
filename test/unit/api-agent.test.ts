// The API connection pool chosen in place of client-node's agent of the request: one keep-alive agent per
// TLS identity, made again when it changes, a proxy's agent left alone.
import { expect } from 'chai';
import { HttpsProxyAgent } from 'hpagent';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { IDLE_SOCKET_MS, PooledAgent } from '../../src/k8s/api-agent.js';

type Options = { keepAlive?: boolean; timeout?: number; ca?: unknown };
const optionsOf = (a: HttpAgent | undefined) => (a as unknown as { options: Options }).options;

describe('API connection pool (PooledAgent)', () => {
  const pools: PooledAgent[] = [];
  afterEach(() => pools.splice(0).forEach((p) => p.destroy()));
  const pool = () => {
    const p = new PooledAgent();
    pools.push(p);
    return p;
  };

  it('gives every request with the same TLS settings one keep-alive agent', () => {
    const p = pool();
    const first = p.instead(new HttpsAgent({ ca: 'CA-1', servername: 'api' }));
    // client-node reads the CA afresh for each request: equal bytes, another Buffer or string.
    const second = p.instead(new HttpsAgent({ ca: Buffer.from('CA-1'), servername: 'api' }));
    expect(first).to.be.instanceOf(HttpsAgent);
    expect(second).to.equal(first);
    expect(optionsOf(first)).to.include({ keepAlive: true, timeout: IDLE_SOCKET_MS, ca: 'CA-1' });
    expect(first?.maxSockets).to.equal(Infinity);
  });

  it('makes a new agent when the TLS settings change (a rotated client certificate)', () => {
    const p = pool();
    const first = p.instead(new HttpsAgent({ ca: 'CA', cert: 'cert-1', key: 'key-1' }));
    const rotated = p.instead(new HttpsAgent({ ca: 'CA', cert: 'cert-2', key: 'key-2' }));
    expect(rotated).to.not.equal(first);
    expect(p.instead(new HttpsAgent({ ca: 'CA', cert: 'cert-2', key: 'key-2' }))).to.equal(rotated);
  });

  it('keys its sockets by host, port and server name, not by the CA, certificate and key text', () => {
    const p = pool();
    const agent = p.instead(new HttpsAgent({ ca: 'CA-TEXT', cert: 'CERT-TEXT', key: 'KEY-TEXT' }))!;
    // What Node passes getName: the request's options merged with the agent's, the TLS text included.
    const at = (port: number, servername: string) =>
      agent.getName({ host: '127.0.0.1', port, servername, ca: 'CA-TEXT', key: 'KEY-TEXT' } as object);
    const name = at(6443, 'api');
    expect(name).to.not.match(/CA-TEXT|CERT-TEXT|KEY-TEXT/);
    expect(at(6443, 'api')).to.equal(name);
    expect(at(6443, 'other')).to.not.equal(name);
    expect(at(6444, 'api')).to.not.equal(name);
  });

  it('pools plain HTTP apart from TLS, and leaves a proxy agent alone', () => {
    const p = pool();
    const plain = p.instead(new HttpAgent({}));
    expect(plain).to.be.instanceOf(HttpAgent).and.not.be.instanceOf(HttpsAgent);
    expect(optionsOf(plain).keepAlive).to.equal(true);
    expect(p.instead(new HttpsAgent({}))).to.be.instanceOf(HttpsAgent);
    expect(p.instead(new HttpsProxyAgent({ proxy: 'http://proxy:3128' }))).to.equal(undefined);
    expect(p.instead(undefined)).to.equal(undefined);
  });
});
