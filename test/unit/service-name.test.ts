// serviceName and serviceFqdn: the one reading of a Service name that validation, checks and the router share.
import { expect } from 'chai';
import { serviceFqdn, serviceName } from '../../src/api/service-name.js';

describe('service names of a namespace', () => {
  it('a short name as is, and the FQDN of its own namespace shortened', () => {
    expect(serviceName('shop', 'web')).to.equal('web');
    expect(serviceName('shop', 'web-v2')).to.equal('web-v2');
    expect(serviceName('shop', 'web.shop.svc.cluster.local')).to.equal('web');
  });

  it('nothing for another namespace, a partial FQDN, or a name Kubernetes refuses', () => {
    for (const bad of [
      'web.other.svc.cluster.local',
      'web.shop',
      'web.shop.svc',
      '.shop.svc.cluster.local',
      'Web',
      '-web',
      'web-',
      'web_v2',
      '',
      'a'.repeat(64),
      `${'a'.repeat(64)}.shop.svc.cluster.local`,
    ]) {
      expect(serviceName('shop', bad), bad).to.equal(undefined);
    }
    expect(serviceName('shop', 'a'.repeat(63))).to.equal('a'.repeat(63));
  });

  it('the root service as the FQDN of the namespace, from a short name or the FQDN', () => {
    expect(serviceFqdn('shop', 'web')).to.equal('web.shop.svc.cluster.local');
    expect(serviceFqdn('shop', 'web.shop.svc.cluster.local')).to.equal('web.shop.svc.cluster.local');
    expect(serviceFqdn('shop', 'web.other.svc.cluster.local')).to.equal(undefined);
    expect(serviceFqdn('shop', 'Web')).to.equal(undefined);
  });
});
