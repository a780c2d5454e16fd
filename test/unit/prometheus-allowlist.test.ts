// PrometheusAllowlist: --allowed-prometheus-urls prefixes matched on URL boundaries, never as raw strings.
import { expect } from 'chai';
import { parseBaseUrl, PrometheusAllowlist } from '../../src/controller/prometheus-allowlist.js';

describe('allowed Prometheus URL prefixes', () => {
  const allow = (prefixes: string[], address: string) => new PrometheusAllowlist(prefixes).allows(address);

  it('admits the prefix itself and any path below it, trailing slashes or not', () => {
    for (const prefix of ['http://prom:9090', 'http://prom:9090/', 'http://prom:9090//']) {
      for (const address of [
        'http://prom:9090',
        'http://prom:9090/',
        'http://prom:9090/prometheus',
        'http://prom:9090/prometheus/',
      ]) {
        expect(allow([prefix], address), `${prefix} → ${address}`).to.equal(true);
      }
    }
  });

  it('never admits a longer port, a lookalike host, another scheme or a credential trick', () => {
    for (const address of [
      'http://prom:90901',
      'http://prom:9090.evil.example',
      'http://prom:9090.evil.example:9090',
      'http://prom:9090@evil.example',
      'http://prom:9090@evil.example:9090',
      'http://user@prom:9090',
      'https://prom:9090',
      'http://prom',
      'http://prometheus:9090',
      'http://evil.example/http://prom:9090',
      'http://evil.example?http://prom:9090',
    ]) {
      expect(allow(['http://prom:9090'], address), address).to.equal(false);
    }
    expect(allow(['http://prom:909'], 'http://prom:9090')).to.equal(false);
    expect(allow(['http://prom'], 'http://prometheus')).to.equal(false);
    expect(allow(['http://prom'], 'http://prom.evil.example')).to.equal(false);
    expect(allow(['http://prom:9090'], 'http://prom.evil.example:9090')).to.equal(false);
  });

  it('matches a path prefix on segment boundaries, after dot segments are resolved', () => {
    const prefixes = ['https://mon.example/prometheus/'];
    expect(allow(prefixes, 'https://mon.example/prometheus')).to.equal(true);
    expect(allow(prefixes, 'https://mon.example/prometheus/tenant-a')).to.equal(true);
    expect(allow(prefixes, 'https://mon.example/prometheus-admin')).to.equal(false);
    expect(allow(prefixes, 'https://mon.example/prometheus/../admin')).to.equal(false);
    expect(allow(prefixes, 'https://mon.example/prometheus/%2e%2e/admin')).to.equal(false);
    expect(allow(prefixes, 'https://mon.example/')).to.equal(false);
  });

  it('ignores the case of scheme and host and the default port, as the request does', () => {
    expect(allow(['http://Prom.Monitoring:80'], 'HTTP://prom.monitoring/')).to.equal(true);
    expect(allow(['https://prom.monitoring'], 'https://prom.monitoring:443/x')).to.equal(true);
    expect(allow(['http://prom.monitoring'], 'http://prom.monitoring:8080')).to.equal(false);
  });

  it('refuses an address with a query or fragment, which would move the request off its path', () => {
    expect(allow(['http://prom:9090'], 'http://prom:9090?x=1')).to.equal(false);
    expect(allow(['http://prom:9090'], 'http://prom:9090#frag')).to.equal(false);
    expect(allow(['http://prom:9090'], 'http://prom:9090?')).to.equal(false);
  });

  it('admits nothing with no prefixes, and any of several prefixes', () => {
    expect(allow([], 'http://prom:9090')).to.equal(false);
    const prefixes = ['http://a:9090', 'https://b.example/prom'];
    expect(allow(prefixes, 'http://a:9090')).to.equal(true);
    expect(allow(prefixes, 'https://b.example/prom/x')).to.equal(true);
    expect(allow(prefixes, 'http://b.example/prom')).to.equal(false);
  });

  it('says why a base URL is not one', () => {
    expect(parseBaseUrl('http://prom:9090')).to.include({ ok: true });
    expect(parseBaseUrl('prometheus:9090')).to.deep.include({ ok: false });
    expect(parseBaseUrl('prom')).to.deep.equal({
      ok: false,
      problem: 'is not a URL; write e.g. http://prometheus.monitoring:9090',
    });
    expect(parseBaseUrl('ftp://prom')).to.deep.equal({
      ok: false,
      problem: 'has scheme ftp; use http:// or https://',
    });
    expect(parseBaseUrl('http://prom/?a')).to.deep.equal({
      ok: false,
      problem: 'has a ?query or #fragment; give the base URL only',
    });
  });
});
