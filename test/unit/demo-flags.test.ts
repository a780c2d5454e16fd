// `perch demo`'s flags: --router chooses SMI (the default) or Gateway API, and a router it has not, or a
// flag it does not know, is a UsageError naming the flag and the choices, before anything starts.
import { expect } from 'chai';
import { demoCommand, parseDemoFlags } from '../../src/cli/demo.js';
import { UsageError } from '../../src/cli/usage-error.js';

function usageError(run: () => unknown): string {
  try {
    run();
  } catch (err) {
    expect(err).to.be.instanceOf(UsageError);
    return (err as Error).message;
  }
  throw new Error('no UsageError');
}

describe('perch demo: flags', () => {
  it('runs over SMI unless --router says otherwise', () => {
    expect(parseDemoFlags([])).to.deep.equal({ fast: false, stay: false, router: 'smi', help: false });
    expect(parseDemoFlags(['--fast', '--router', 'gatewayapi'])).to.deep.equal({
      fast: true,
      stay: false,
      router: 'gatewayapi',
      help: false,
    });
    expect(parseDemoFlags(['--router=smi', '--kubeconfig', '/tmp/k']).router).to.equal('smi');
  });

  it('refuses a router it has not, naming the flag and both choices', () => {
    expect(usageError(() => parseDemoFlags(['--router', 'istio']))).to.equal(
      '--router "istio": not a router of the demo; use smi (an SMI TrafficSplit, the default) ' +
        'or gatewayapi (a Gateway API HTTPRoute)',
    );
    // The spelling of the spec's field is not the flag's value.
    expect(usageError(() => parseDemoFlags(['--router', 'gatewayAPI']))).to.match(/^--router "gatewayAPI": /);
  });

  it('refuses --router without a value, and says how to call it', () => {
    const message = usageError(() => parseDemoFlags(['--router']));
    expect(message).to.match(/--router/);
    expect(message).to.include('perch demo [--fast] [--router smi|gatewayapi]');
  });

  it('perch demo refuses a bad router before it starts anything', async () => {
    let caught: unknown;
    try {
      await demoCommand(['--fast', '--router', 'linkerd']);
    } catch (err) {
      caught = err;
    }
    expect(caught).to.be.instanceOf(UsageError);
    expect((caught as Error).message).to.match(/^--router "linkerd": .* use smi .* or gatewayapi /);
  });
});
