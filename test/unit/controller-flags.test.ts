// `perch controller`'s admission flags: a bad value is a UsageError naming the flag, before anything starts.
import { expect } from 'chai';
import { controllerCommand } from '../../src/cli/controller.js';
import { UsageError } from '../../src/cli/usage-error.js';

async function usageError(argv: string[]): Promise<string> {
  try {
    await controllerCommand(argv);
  } catch (err) {
    expect(err).to.be.instanceOf(UsageError);
    return (err as Error).message;
  }
  throw new Error(`perch controller ${argv.join(' ')} did not fail`);
}

describe('perch controller: --allowed-prometheus-urls and --template-namespace', () => {
  afterEach(() => {
    delete process.env.PERCH_ALLOWED_PROMETHEUS_URLS;
    delete process.env.PERCH_TEMPLATE_NAMESPACE;
  });

  it('refuses an allowed entry that is not an http(s) base URL, naming the flag and the entry', async () => {
    expect(await usageError(['--allowed-prometheus-urls', 'http://prom:9090,prometheus:9090'])).to.equal(
      '--allowed-prometheus-urls: prometheus:9090 has scheme prometheus; use http:// or https:// ' +
        '(each entry is a URL prefix such as http://prometheus.monitoring:9090)',
    );
    expect(await usageError(['--allowed-prometheus-urls', 'http://prom:9090/?tenant=a'])).to.contain(
      '--allowed-prometheus-urls: http://prom:9090/?tenant=a has a ?query or #fragment',
    );
  });

  it('reads PERCH_ALLOWED_PROMETHEUS_URLS and PERCH_TEMPLATE_NAMESPACE like the flags', async () => {
    // A kubeconfig that cannot load: were the variables ignored, the command would fail there, not start.
    const noCluster = ['--kubeconfig', '/nonexistent/kubeconfig'];
    process.env.PERCH_ALLOWED_PROMETHEUS_URLS = 'ftp://prom';
    expect(await usageError(noCluster)).to.match(/^--allowed-prometheus-urls: ftp:\/\/prom has scheme ftp/);
    delete process.env.PERCH_ALLOWED_PROMETHEUS_URLS;
    process.env.PERCH_TEMPLATE_NAMESPACE = 'Shared_Metrics';
    expect(await usageError(noCluster)).to.match(
      /^--template-namespace "Shared_Metrics": not a namespace name/,
    );
  });

  it('refuses a template namespace that is no namespace name, and a --prometheus-url that is no URL', async () => {
    expect(await usageError(['--template-namespace', 'metrics/shared'])).to.equal(
      `--template-namespace "metrics/shared": not a namespace name; use lower-case letters, digits and '-'`,
    );
    expect(await usageError(['--prometheus-url', 'prometheus'])).to.equal(
      '--prometheus-url prometheus: is not a URL; write e.g. http://prometheus.monitoring:9090',
    );
  });
});
