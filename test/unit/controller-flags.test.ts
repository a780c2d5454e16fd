// `perch controller`'s flags: a bad value is a UsageError naming the flag, before anything starts.
import { expect } from 'chai';
import { CONTROLLER_USAGE, controllerCommand } from '../../src/cli/controller.js';
import { UsageError } from '../../src/cli/usage-error.js';
import { defaultWorkers } from '../../src/controller/workers.js';

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

describe('perch controller: --kube-api-qps, --kube-api-burst and --workers', () => {
  // A kubeconfig that cannot load: a value that passed would fail there, with another error.
  const noCluster = ['--kubeconfig', '/nonexistent/kubeconfig'];
  afterEach(() => {
    delete process.env.PERCH_KUBE_API_QPS;
    delete process.env.PERCH_KUBE_API_BURST;
    delete process.env.PERCH_WORKERS;
  });

  it('refuses a rate that is not a positive number and a burst that is not a whole number, naming the flag', async () => {
    for (const qps of ['0', 'fast', '', '1e3', '-5'])
      expect(await usageError([...noCluster, `--kube-api-qps=${qps}`])).to.equal(
        `--kube-api-qps ${qps}: give a positive number of requests per second, such as 200`,
      );
    for (const burst of ['0', '2.5', 'lots'])
      expect(await usageError([...noCluster, '--kube-api-burst', burst])).to.equal(
        `--kube-api-burst ${burst}: give a whole number of requests, at least 1, such as 400`,
      );
  });

  it('refuses a worker count that is not a whole number from 1 to 1000, saying the default', async () => {
    for (const workers of ['0', '1001', 'many', '2.5'])
      expect(await usageError([...noCluster, '--workers', workers])).to.equal(
        `--workers ${workers}: give a whole number of Rollouts to reconcile at once, from 1 to 1000 ` +
          `(default ${defaultWorkers()} on this machine)`,
      );
  });

  it('reads PERCH_KUBE_API_QPS, PERCH_KUBE_API_BURST and PERCH_WORKERS like the flags; a flag wins', async () => {
    process.env.PERCH_KUBE_API_QPS = '0';
    expect(await usageError(noCluster)).to.match(/^--kube-api-qps 0: /);
    expect(await usageError([...noCluster, '--kube-api-qps', 'x'])).to.match(/^--kube-api-qps x: /);
    delete process.env.PERCH_KUBE_API_QPS;
    process.env.PERCH_KUBE_API_BURST = '0.5';
    expect(await usageError(noCluster)).to.match(/^--kube-api-burst 0.5: /);
    delete process.env.PERCH_KUBE_API_BURST;
    process.env.PERCH_WORKERS = '0';
    expect(await usageError(noCluster)).to.match(/^--workers 0: /);
  });

  it('takes good values and goes on to load the kubeconfig', async () => {
    const args = [...noCluster, '--kube-api-qps', '0.5', '--kube-api-burst', '1', '--workers', '1000'];
    const err: unknown = await controllerCommand(args).catch((e: unknown) => e);
    expect(err).to.not.be.instanceOf(UsageError);
    expect((err as Error).message).to.contain('/nonexistent/kubeconfig');
  });

  it('sizes the default workers by cores: 4 each, at least 4, at most 32', () => {
    expect([1, 2, 3, 8, 64].map((cores) => defaultWorkers(cores))).to.deep.equal([4, 8, 12, 32, 32]);
  });

  it('documents each flag and its default in --help', () => {
    expect(CONTROLLER_USAGE).to.contain('--kube-api-qps N').and.contain('(default 200)');
    expect(CONTROLLER_USAGE).to.contain('--kube-api-burst N').and.contain('(default 400)');
    expect(CONTROLLER_USAGE).to.contain(`--workers N`).and.contain(`${defaultWorkers()} here`);
  });
});
