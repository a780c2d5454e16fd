// The SMI TrafficSplit CRD (crds/smi-trafficsplit.yaml) as a person meets it: through the real
// kubectl against the local control plane. Apply, get, patch, label, watch, every served version,
// schema validation, and the API server refusing requests without the right token.
import { dumpYaml } from '@kubernetes/client-node';
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ControlPlane } from '../../src/sandbox/control-plane/index.js';
import { crdsDir } from '../../src/sandbox/repo.js';
import { sharedControlPlane, testNamespace } from '../support/control-plane.js';
import { EventLog } from '../support/events.js';
import { kubectl, kubectlOk } from '../support/kubectl.js';

const GROUP = 'split.smi-spec.io';
const CRD_NAME = `trafficsplits.${GROUP}`;
const VERSIONS = ['v1alpha1', 'v1alpha2', 'v1alpha3', 'v1alpha4'] as const;
type Version = (typeof VERSIONS)[number];

interface Backend {
  service: string;
  weight: number | string;
}
interface Match {
  kind: string;
  name: string;
  apiGroup?: string;
}
interface TrafficSplit {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    resourceVersion: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  spec: { service: string; backends: Backend[]; matches?: Match[] };
}
interface WatchEvent {
  type: string;
  object: TrafficSplit;
}

/** A TrafficSplit manifest as YAML, the way a person would pipe it to `kubectl apply -f -`. */
function manifest(
  name: string,
  spec: Record<string, unknown>,
  version: Version = 'v1alpha2',
  metadata: Record<string, unknown> = {},
): string {
  return dumpYaml({
    apiVersion: `${GROUP}/${version}`,
    kind: 'TrafficSplit',
    metadata: { name, ...metadata },
    spec,
  });
}

const weightOf = (ts: TrafficSplit, service: string) =>
  ts.spec.backends.find((b) => b.service === service)?.weight;

/** `kubectl get <resource> <name> -o json`, parsed. */
async function getJson(kubeconfig: string, ns: string, name: string, resource = 'ts'): Promise<TrafficSplit> {
  return JSON.parse(
    await kubectlOk(kubeconfig, ['get', resource, name, '-n', ns, '-o', 'json']),
  ) as TrafficSplit;
}

/** A kubectl table (`kubectl get` without -o) as header cells and rows of cells. */
function parseTable(out: string): { header: string[]; rows: string[][] } {
  const [head = '', ...lines] = out.trimEnd().split('\n');
  return { header: head.trim().split(/\s+/), rows: lines.map((l) => l.trim().split(/\s+/)) };
}

/** A GET over TLS with exactly the given headers; a private agent, so no kept-alive socket outlives it. */
function rawGet(
  url: string,
  ca: string,
  headers: Record<string, string>,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsGet(url, { ca, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

describe('kubectl and the SMI TrafficSplit CRD', function () {
  this.timeout(90_000);
  let cp: ControlPlane;
  let kubeconfig: string;

  before(async function () {
    this.timeout(180_000);
    cp = await sharedControlPlane();
    kubeconfig = cp.kubeconfig;
  });

  const namespace = (prefix: string) => testNamespace(cp.kubeConfig(), prefix);

  it('kubectl apply -f crds/ re-applies the CRDs idempotently and kubectl get crd shows TrafficSplit', async () => {
    const line = `customresourcedefinition.apiextensions.k8s.io/${CRD_NAME}`;
    // The sandbox installed the CRDs with server-side apply; this first client-side apply adopts them.
    const first = await kubectlOk(kubeconfig, ['apply', '-f', crdsDir]);
    expect(first).to.match(new RegExp(`${line.replace(/\./g, '\\.')} (configured|unchanged)`));
    const second = await kubectlOk(kubeconfig, ['apply', '-f', crdsDir]);
    expect(second).to.contain(`${line} unchanged`);

    const table = parseTable(await kubectlOk(kubeconfig, ['get', 'crd', CRD_NAME]));
    expect(table.header.slice(0, 2)).to.deep.equal(['NAME', 'CREATED']);
    expect(table.rows.map((r) => r[0])).to.deep.equal([CRD_NAME]);

    const crd = JSON.parse(await kubectlOk(kubeconfig, ['get', 'crd', CRD_NAME, '-o', 'json'])) as {
      spec: {
        names: { shortNames: string[] };
        versions: { name: string; served: boolean; storage: boolean }[];
      };
      status: { conditions: { type: string; status: string }[] };
    };
    expect(crd.spec.names.shortNames).to.deep.equal(['ts']);
    expect(crd.spec.versions.filter((v) => v.served).map((v) => v.name)).to.have.members([...VERSIONS]);
    expect(crd.spec.versions.filter((v) => v.storage).map((v) => v.name)).to.deep.equal(['v1alpha2']);
    expect(crd.status.conditions.find((c) => c.type === 'Established')?.status).to.equal('True');
  });

  it('lives through apply, get, patch (merge and json), annotate, label and delete', async () => {
    const ns = await namespace('kubectl-ts-lifecycle');
    const spec = {
      service: 'bookstore',
      backends: [
        { service: 'bookstore-v1', weight: 90 },
        { service: 'bookstore-v2', weight: 10 },
      ],
    };

    const applied = await kubectlOk(kubeconfig, ['apply', '-n', ns, '-f', '-'], manifest('bookstore', spec));
    expect(applied.trim()).to.equal(`trafficsplit.${GROUP}/bookstore created`);
    // A second, unlabelled split in the namespace, so the label selector below has something to leave out.
    await kubectlOk(kubeconfig, ['apply', '-n', ns, '-f', '-'], manifest('other', spec));

    const table = parseTable(await kubectlOk(kubeconfig, ['get', 'ts', 'bookstore', '-n', ns]));
    expect(table.rows).to.have.length(1);
    expect(table.rows[0]?.[0]).to.equal('bookstore');

    let ts = await getJson(kubeconfig, ns, 'bookstore');
    expect(ts.kind).to.equal('TrafficSplit');
    expect(ts.apiVersion.startsWith(`${GROUP}/`)).to.equal(true);
    expect(ts.metadata.name).to.equal('bookstore');
    expect(ts.metadata.namespace).to.equal(ns);
    expect(ts.spec).to.deep.equal(spec);
    const uid = ts.metadata.uid;

    // Merge patch: lists are replaced whole.
    const merge = {
      spec: {
        backends: [
          { service: 'bookstore-v1', weight: 60 },
          { service: 'bookstore-v2', weight: 40 },
        ],
      },
    };
    const merged = await kubectlOk(kubeconfig, [
      'patch',
      'ts',
      'bookstore',
      '-n',
      ns,
      '--type',
      'merge',
      '-p',
      JSON.stringify(merge),
    ]);
    expect(merged.trim()).to.equal(`trafficsplit.${GROUP}/bookstore patched`);
    ts = await getJson(kubeconfig, ns, 'bookstore');
    expect(ts.spec.backends).to.deep.equal(merge.spec.backends);

    // JSON patch on one weight.
    const replace = [{ op: 'replace', path: '/spec/backends/0/weight', value: 25 }];
    await kubectlOk(kubeconfig, [
      'patch',
      'ts',
      'bookstore',
      '-n',
      ns,
      '--type',
      'json',
      '-p',
      JSON.stringify(replace),
    ]);
    ts = await getJson(kubeconfig, ns, 'bookstore');
    expect(weightOf(ts, 'bookstore-v1')).to.equal(25);
    expect(weightOf(ts, 'bookstore-v2')).to.equal(40);

    // A JSON patch whose `test` op fails is refused whole: the replace after it does not happen.
    const guarded = [
      { op: 'test', path: '/spec/backends/0/weight', value: 99 },
      { op: 'replace', path: '/spec/backends/0/weight', value: 0 },
    ];
    const refused = await kubectl(kubeconfig, [
      'patch',
      'ts',
      'bookstore',
      '-n',
      ns,
      '--type',
      'json',
      '-p',
      JSON.stringify(guarded),
    ]);
    expect(refused.code).to.not.equal(0);
    // kubectl reports the 422 from the failed `test` op only as an invalid request.
    expect(refused.stderr).to.contain('The request is invalid');
    expect(weightOf(await getJson(kubeconfig, ns, 'bookstore'), 'bookstore-v1')).to.equal(25);

    const annotated = await kubectlOk(kubeconfig, [
      'annotate',
      'ts',
      'bookstore',
      '-n',
      ns,
      'perch.dev/note=first canary',
    ]);
    expect(annotated.trim()).to.equal(`trafficsplit.${GROUP}/bookstore annotated`);
    const labeled = await kubectlOk(kubeconfig, ['label', 'ts', 'bookstore', '-n', ns, 'tier=canary']);
    expect(labeled.trim()).to.equal(`trafficsplit.${GROUP}/bookstore labeled`);
    ts = await getJson(kubeconfig, ns, 'bookstore');
    expect(ts.metadata.annotations?.['perch.dev/note']).to.equal('first canary');
    expect(ts.metadata.labels).to.deep.equal({ tier: 'canary' });
    expect(ts.metadata.uid).to.equal(uid);

    const selected = await kubectlOk(kubeconfig, ['get', 'ts', '-n', ns, '-l', 'tier=canary', '-o', 'name']);
    expect(selected.trim().split('\n')).to.deep.equal([`trafficsplit.${GROUP}/bookstore`]);
    const everything = await kubectlOk(kubeconfig, ['get', 'ts', '-n', ns, '-o', 'name']);
    expect(everything.trim().split('\n')).to.have.members([
      `trafficsplit.${GROUP}/bookstore`,
      `trafficsplit.${GROUP}/other`,
    ]);
    const none = await kubectl(kubeconfig, ['get', 'ts', '-n', ns, '-l', 'tier=stable']);
    expect(none.code).to.equal(0);
    expect(none.stdout.trim()).to.equal('');
    expect(none.stderr).to.contain(`No resources found in ${ns} namespace`);

    const deleted = await kubectlOk(kubeconfig, ['delete', 'ts', 'bookstore', '-n', ns]);
    expect(deleted.trim()).to.equal(`trafficsplit.${GROUP} "bookstore" deleted`);
    const gone = await kubectl(kubeconfig, ['get', 'ts', 'bookstore', '-n', ns]);
    expect(gone.code).to.not.equal(0);
    expect(gone.stderr).to.contain('NotFound');
    expect(gone.stderr).to.contain(`${CRD_NAME} "bookstore" not found`);
    // The other split is untouched.
    expect((await getJson(kubeconfig, ns, 'other')).spec).to.deep.equal(spec);
  });

  it('kubectl get trafficsplits and get ts show a SERVICE column with the root service', async () => {
    const ns = await namespace('kubectl-ts-columns');
    const root = `reviews.${ns}.svc.cluster.local`;
    const spec = { service: root, backends: [{ service: 'reviews-v1', weight: 100 }] };
    await kubectlOk(kubeconfig, ['apply', '-n', ns, '-f', '-'], manifest('reviews', spec));

    for (const resource of ['trafficsplits', 'ts', 'trafficsplit', CRD_NAME]) {
      const { header, rows } = parseTable(await kubectlOk(kubeconfig, ['get', resource, '-n', ns]));
      expect(header, resource).to.deep.equal(['NAME', 'SERVICE', 'AGE']);
      expect(rows, resource).to.have.length(1);
      expect(rows[0]?.[0], resource).to.equal('reviews');
      expect(rows[0]?.[header.indexOf('SERVICE')], resource).to.equal(root);
    }
  });

  it('kubectl get ts -w sees a later weight change', async () => {
    const ns = await namespace('kubectl-ts-watch');
    const spec = {
      service: 'podinfo',
      backends: [
        { service: 'podinfo-primary', weight: 90 },
        { service: 'podinfo-canary', weight: 10 },
      ],
    };
    await kubectlOk(kubeconfig, ['apply', '-n', ns, '-f', '-'], manifest('podinfo', spec));

    const events = new EventLog<WatchEvent>();
    const watch = spawn(
      'kubectl',
      ['get', 'ts', 'podinfo', '-n', ns, '-w', '-o', 'json', '--output-watch-events'],
      {
        env: { ...process.env, KUBECONFIG: kubeconfig },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      watch.once('exit', (code, signal) => resolve({ code, signal })),
    );
    let stdout = '';
    let stderr = '';
    watch.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    // With --output-watch-events, kubectl writes one compact JSON event per line.
    watch.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      const lines = stdout.split('\n');
      stdout = lines.pop() ?? '';
      for (const line of lines.filter((l) => l.trim() !== '')) events.push(JSON.parse(line) as WatchEvent);
    });
    const spawned = new Promise<void>((resolve, reject) => {
      watch.once('spawn', resolve);
      watch.once('error', reject);
    });
    await spawned;
    const pid = watch.pid;
    expect(pid).to.be.a('number');

    let exit: { code: number | null; signal: NodeJS.Signals | null };
    try {
      const canary = (w: number) => (e: WatchEvent) => weightOf(e.object, 'podinfo-canary') === w;
      const initial = await events.find(
        (e) => e.type === 'ADDED' && canary(10)(e),
        20_000,
        `the initial object on the watch (stderr: ${stderr})`,
      );
      expect(initial.object.metadata.name).to.equal('podinfo');
      expect(events.seen.some(canary(35))).to.equal(false);

      const patch = [{ op: 'replace', path: '/spec/backends/1/weight', value: 35 }];
      await kubectlOk(kubeconfig, [
        'patch',
        'ts',
        'podinfo',
        '-n',
        ns,
        '--type',
        'json',
        '-p',
        JSON.stringify(patch),
      ]);
      const modified = await events.find(
        (e) => e.type === 'MODIFIED' && canary(35)(e),
        20_000,
        `the patched weight on the watch (stderr: ${stderr})`,
      );
      expect(modified.object.metadata.uid).to.equal(initial.object.metadata.uid);
      expect(Number(modified.object.metadata.resourceVersion)).to.be.greaterThan(
        Number(initial.object.metadata.resourceVersion),
      );
      expect(weightOf(modified.object, 'podinfo-primary')).to.equal(90);
    } finally {
      // Only ever the PID this test started.
      if (watch.exitCode === null && watch.signalCode === null) process.kill(pid!, 'SIGTERM');
      exit = await exited;
    }
    expect(exit.code !== null || exit.signal !== null).to.equal(true);
    expect(() => process.kill(pid!, 0)).to.throw(/ESRCH/);
  });

  describe('every served version', () => {
    const backends = (canary: number | string) => [
      { service: 'web-stable', weight: 100 },
      { service: 'web-canary', weight: canary },
    ];
    const matches = [{ kind: 'HTTPRouteGroup', name: 'web-routes', apiGroup: 'specs.smi-spec.io' }];
    const cases: { version: Version; spec: Record<string, unknown> }[] = [
      // v1alpha1 weights are quantities: "500m", or a plain integer.
      {
        version: 'v1alpha1',
        spec: {
          service: 'web',
          backends: [
            { service: 'web-stable', weight: 1 },
            { service: 'web-canary', weight: '500m' },
          ],
        },
      },
      { version: 'v1alpha2', spec: { service: 'web', backends: backends(5) } },
      { version: 'v1alpha3', spec: { service: 'web', backends: backends(5), matches } },
      { version: 'v1alpha4', spec: { service: 'web', backends: backends(5), matches } },
    ];
    for (const { version, spec } of cases) {
      it(`applies a ${version} TrafficSplit and reads it back at ${version}`, async () => {
        const ns = await namespace(`kubectl-ts-${version}`);
        const out = await kubectlOk(
          kubeconfig,
          ['apply', '-n', ns, '-f', '-'],
          manifest('web', spec, version),
        );
        expect(out.trim()).to.equal(`trafficsplit.${GROUP}/web created`);
        const ts = await getJson(kubeconfig, ns, 'web', `trafficsplits.${version}.${GROUP}`);
        expect(ts.apiVersion).to.equal(`${GROUP}/${version}`);
        expect(ts.kind).to.equal('TrafficSplit');
        expect(ts.spec).to.deep.equal(spec);
      });
    }
  });

  describe('schema violations are refused by kubectl apply', () => {
    const cases: { what: string; version: Version; spec: Record<string, unknown>; messages: string[] }[] = [
      {
        what: 'a string weight in v1alpha2',
        version: 'v1alpha2',
        spec: { service: 'root', backends: [{ service: 'a', weight: 'ten' }] },
        messages: ['spec.backends[0].weight', 'must be of type integer'],
      },
      {
        what: 'a negative weight in v1alpha2',
        version: 'v1alpha2',
        spec: {
          service: 'root',
          backends: [
            { service: 'a', weight: 100 },
            { service: 'b', weight: -1 },
          ],
        },
        messages: ['spec.backends[1].weight', 'greater than or equal to 0'],
      },
      {
        what: 'a missing spec.service',
        version: 'v1alpha2',
        spec: { backends: [{ service: 'a', weight: 100 }] },
        messages: ['spec.service', 'Required value'],
      },
      {
        what: 'an empty backends list',
        version: 'v1alpha2',
        spec: { service: 'root', backends: [] },
        messages: ['spec.backends', 'at least 1 items'],
      },
      {
        what: 'a backend without a service',
        version: 'v1alpha4',
        spec: { service: 'root', backends: [{ weight: 100 }] },
        messages: ['spec.backends[0].service', 'Required value'],
      },
      {
        what: 'a v1alpha1 weight "ten" (not a quantity)',
        version: 'v1alpha1',
        spec: { service: 'root', backends: [{ service: 'a', weight: 'ten' }] },
        messages: ['spec.backends[0].weight', 'should match'],
      },
      {
        what: 'a v1alpha3 match without a name',
        version: 'v1alpha3',
        spec: {
          service: 'root',
          backends: [{ service: 'a', weight: 100 }],
          matches: [{ kind: 'HTTPRouteGroup' }],
        },
        messages: ['spec.matches[0].name', 'Required value'],
      },
    ];
    for (const { what, version, spec, messages } of cases) {
      it(`refuses ${what}`, async () => {
        const ns = await namespace('kubectl-ts-invalid');
        const r = await kubectl(kubeconfig, ['apply', '-n', ns, '-f', '-'], manifest('bad', spec, version));
        expect(r.code, r.stdout).to.not.equal(0);
        expect(r.stderr).to.contain('The TrafficSplit "bad" is invalid');
        for (const m of messages) expect(r.stderr).to.contain(m);
        const gone = await kubectl(kubeconfig, ['get', 'ts', 'bad', '-n', ns]);
        expect(gone.code).to.not.equal(0);
        expect(gone.stderr).to.contain('NotFound');
      });
    }
  });

  describe('authentication', () => {
    let dir: string;
    let server: string;
    let caData: string;
    let caPem: string;

    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'perch-kubectl-auth-'));
      // The server and CA as the admin kubeconfig gives them.
      const cluster = cp.kubeConfig().getCurrentCluster();
      if (!cluster?.caData) throw new Error('the admin kubeconfig has no cluster CA data');
      server = cluster.server;
      caData = cluster.caData;
      caPem = Buffer.from(caData, 'base64').toString('utf8');
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    /** A copy of the admin kubeconfig with the same server and CA but the given user entry. */
    function kubeconfigWith(name: string, user: Record<string, string>): string {
      const file = join(dir, `${name}.kubeconfig`);
      const config = {
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'sandbox', cluster: { server, 'certificate-authority-data': caData } }],
        users: [{ name, user }],
        contexts: [{ name: 'sandbox', context: { cluster: 'sandbox', user: name } }],
        'current-context': 'sandbox',
      };
      writeFileSync(file, dumpYaml(config), { mode: 0o600 });
      return file;
    }

    it('kubectl without a token, or with a wrong one, is refused as Unauthorized', async () => {
      const ns = await namespace('kubectl-ts-auth');
      await kubectlOk(
        kubeconfig,
        ['apply', '-n', ns, '-f', '-'],
        manifest('secret', { service: 'root', backends: [{ service: 'a', weight: 100 }] }),
      );

      // The copy itself is sound: with the real token it lists the split.
      const admin = await kubectl(kubeconfigWith('admin', { token: cp.token }), ['get', 'ts', '-A']);
      expect(admin.code, admin.stderr).to.equal(0);
      expect(admin.stdout).to.contain(ns);

      // A user entry with no credential at all makes kubectl prompt for a username instead of
      // asking the server, so the tokenless user names itself only: a request with no bearer token.
      const tokenless = await kubectl(kubeconfigWith('nobody', { username: 'nobody' }), ['get', 'ts', '-A']);
      expect(tokenless.code).to.not.equal(0);
      expect(tokenless.stderr).to.match(/Unauthorized|401/);
      expect(tokenless.stdout).to.not.contain(ns);

      const wrong = await kubectl(kubeconfigWith('intruder', { token: `${cp.token}x` }), ['get', 'ts', '-A']);
      expect(wrong.code).to.not.equal(0);
      expect(wrong.stderr).to.match(/Unauthorized|401/);
      expect(wrong.stdout).to.not.contain(ns);
    });

    it('a raw HTTPS request to /api without an Authorization header gets 401', async () => {
      const anonymous = await rawGet(`${server}/api`, caPem, {});
      expect(anonymous.status).to.equal(401);
      expect((JSON.parse(anonymous.body) as { reason: string }).reason).to.equal('Unauthorized');

      const wrong = await rawGet(`${server}/api`, caPem, { Authorization: 'Bearer not-the-token' });
      expect(wrong.status).to.equal(401);

      const admin = await rawGet(`${server}/api`, caPem, { Authorization: `Bearer ${cp.token}` });
      expect(admin.status).to.equal(200);
      expect((JSON.parse(admin.body) as { kind: string }).kind).to.equal('APIVersions');
    });
  });
});
