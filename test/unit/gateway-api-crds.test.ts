// Locating the official Gateway API CRDs: the cache needs no Go, no Go and no cache names the fix,
// and a folder of another release is refused. Real files, a real Go, a PATH without it; no server.
import { expect } from 'chai';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  GATEWAY_API_CRDS_ENV,
  gatewayApiCacheDir,
  pinnedGatewayApiVersion,
  prepareGatewayApiCrds,
} from '../../src/sandbox/control-plane/gateway-api.js';

const HTTPROUTES = 'httproutes.gateway.networking.k8s.io';

describe('Gateway API CRDs (locating them)', function () {
  // A first fetch runs `go mod download` (fast once Go's own module cache has it).
  this.timeout(60_000);
  const keys = ['PERCH_CACHE_DIR', 'PATH', 'GO', GATEWAY_API_CRDS_ENV];
  const saved = Object.fromEntries(keys.map((k) => [k, process.env[k]]));
  const temps: string[] = [];
  const temp = (prefix: string) => {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    temps.push(dir);
    return dir;
  };
  /** A PATH that has no go (an empty folder), and $GO naming none: no Go at all. */
  const withoutGo = () => {
    process.env.PATH = temp('perch-no-go-path-');
    process.env.GO = join(temp('perch-no-go-'), 'go');
  };
  /** The official files, fetched with Go into a private cache. */
  let official: string;

  before(async () => {
    process.env.PERCH_CACHE_DIR = temp('perch-gw-official-');
    official = (await prepareGatewayApiCrds()).dir;
  });

  afterEach(() => {
    for (const k of keys) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  });

  after(() => {
    for (const dir of temps) rmSync(dir, { recursive: true, force: true });
  });

  it('reads the pinned version from tools/gateway-api/go.mod', () => {
    expect(pinnedGatewayApiVersion()).to.match(/^v1\.\d+\.\d+$/);
  });

  it('fetches them once with Go into a folder named by the version, and then needs no Go', async () => {
    const version = pinnedGatewayApiVersion();
    const cache = (process.env.PERCH_CACHE_DIR = temp('perch-gw-cache-'));
    const fetched = await prepareGatewayApiCrds();
    expect(fetched.source).to.equal('go');
    expect(fetched.dir).to.equal(join(cache, 'gateway-api', version));
    // Only CRD files: the standard channel's ValidatingAdmissionPolicy file is left out.
    expect(readdirSync(fetched.dir).filter((f) => f.includes('vap'))).to.deep.equal([]);
    expect(fetched.crds.map((c) => c.metadata?.name)).to.include(HTTPROUTES);

    withoutGo();
    const cached = await prepareGatewayApiCrds();
    expect(cached.source).to.equal('cache');
    expect(cached.dir).to.equal(fetched.dir);
    expect(cached.crds.map((c) => c.metadata?.name)).to.deep.equal(fetched.crds.map((c) => c.metadata?.name));
    for (const crd of cached.crds) {
      expect(crd.metadata?.annotations?.['gateway.networking.k8s.io/bundle-version']).to.equal(version);
      expect(crd.metadata?.annotations?.['gateway.networking.k8s.io/channel']).to.equal('standard');
    }
  });

  it('without Go and with an empty cache, says to install Go or to set PERCH_GATEWAY_API_CRDS', async () => {
    const cache = (process.env.PERCH_CACHE_DIR = temp('perch-gw-empty-'));
    withoutGo();
    const version = pinnedGatewayApiVersion();
    const err = await prepareGatewayApiCrds().then(
      () => expect.fail('prepareGatewayApiCrds should have failed without Go'),
      (e: Error) => e,
    );
    expect(err.message)
      .to.contain(`The Gateway API CRDs ${version}`)
      .and.to.contain('Go is not installed')
      .and.to.contain('https://go.dev/doc/install')
      .and.to.contain(GATEWAY_API_CRDS_ENV)
      .and.to.contain('config/crd/standard/');
    expect(readdirSync(cache)).to.deep.equal([]);
  });

  it(`${GATEWAY_API_CRDS_ENV}: the official files of the pinned version are used as they are, without Go`, async () => {
    const cache = (process.env.PERCH_CACHE_DIR = temp('perch-gw-unused-'));
    process.env[GATEWAY_API_CRDS_ENV] = official;
    withoutGo();
    const given = await prepareGatewayApiCrds();
    expect(given.source).to.equal(GATEWAY_API_CRDS_ENV);
    expect(given.dir).to.equal(official);
    expect(given.crds.map((c) => c.metadata?.name)).to.include(HTTPROUTES);
    expect(readdirSync(cache)).to.deep.equal([]);
  });

  /** A copy of the official files with `edit` applied to each one's text. */
  function editedCopy(edit: (text: string) => string): string {
    const dir = join(temp('perch-gw-other-'), 'standard');
    mkdirSync(dir);
    for (const f of readdirSync(official))
      writeFileSync(join(dir, f), edit(readFileSync(join(official, f), 'utf8')));
    return dir;
  }

  it(`${GATEWAY_API_CRDS_ENV}: a folder of another bundle-version is refused, naming both versions`, async () => {
    const version = pinnedGatewayApiVersion();
    const other = editedCopy((t) => t.replaceAll(`bundle-version: ${version}`, 'bundle-version: v1.2.1'));
    process.env[GATEWAY_API_CRDS_ENV] = other;
    const err = await prepareGatewayApiCrds().then(
      () => expect.fail('a folder of Gateway API v1.2.1 should have been refused'),
      (e: Error) => e,
    );
    expect(err.message)
      .to.contain(`${GATEWAY_API_CRDS_ENV}=${other}`)
      .and.to.contain('is Gateway API v1.2.1')
      .and.to.contain(`pins ${version}`)
      .and.to.contain(`official standard-channel CRD files of Gateway API ${version}`);
  });

  it(`${GATEWAY_API_CRDS_ENV}: the experimental channel is refused`, async () => {
    process.env[GATEWAY_API_CRDS_ENV] = editedCopy((t) =>
      t.replaceAll(
        'gateway.networking.k8s.io/channel: standard',
        'gateway.networking.k8s.io/channel: experimental',
      ),
    );
    const err = await prepareGatewayApiCrds().then(
      () => expect.fail('experimental-channel CRDs should have been refused'),
      (e: Error) => e,
    );
    expect(err.message).to.contain('experimental channel, not the standard one');
  });

  it(`${GATEWAY_API_CRDS_ENV}: a folder without the HTTPRoute CRD is refused`, async () => {
    const dir = temp('perch-gw-none-');
    process.env[GATEWAY_API_CRDS_ENV] = dir;
    const err = await prepareGatewayApiCrds().then(
      () => expect.fail('an empty folder should have been refused'),
      (e: Error) => e,
    );
    expect(err.message).to.contain(
      `${GATEWAY_API_CRDS_ENV}=${dir}: no CustomResourceDefinition ${HTTPROUTES}`,
    );
  });

  it('the cache folder is per version, under PERCH_CACHE_DIR', () => {
    process.env.PERCH_CACHE_DIR = '/somewhere';
    expect(gatewayApiCacheDir('v9.9.9')).to.equal('/somewhere/gateway-api/v9.9.9');
  });
});
