// buildGoCommand with the real Go on a one-package module of its own: the executable and VERSION land in
// the cache folder whole or beside what it holds, progress counts packages, and a failed build says why.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lookupGo } from '../../src/sandbox/control-plane/binaries.js';
import { buildGoCommand, type GoCommandBuild, type GoToolchain } from '../../src/sandbox/go-build.js';

describe('go build into the cache', function () {
  // A first run compiles fmt and its dependencies into Go's build cache.
  this.timeout(120_000);
  let go: GoToolchain;
  let root: string;
  let manifestDir: string;

  before(() => {
    const found = lookupGo();
    if (!found) throw new Error('these tests build with the real Go: install Go 1.24 or newer');
    go = found;
  });

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'perch-go-build-'));
    manifestDir = join(root, 'tools', 'hello');
    mkdirSync(join(manifestDir, 'cmd', 'hello'), { recursive: true });
    writeFileSync(join(manifestDir, 'go.mod'), 'module example.com/hello\n\ngo 1.22\n');
    // A new main package each test, so Go's build cache cannot skip compiling it.
    writeFileSync(
      join(manifestDir, 'cmd', 'hello', 'main.go'),
      `package main\n\nimport "fmt"\n\nvar version = "dev"\n\nconst run = "${root}"\n\n` +
        'func main() { fmt.Println("hello", version, len(run) > 0) }\n',
    );
  });

  afterEach(() => rmSync(root, { recursive: true, force: true }));

  const options = (dir: string, lines: string[], more: Partial<GoCommandBuild> = {}): GoCommandBuild => ({
    go,
    manifestDir,
    packages: ['./cmd/hello'],
    ldflags: '-s -w -X main.version=v1.2.3',
    version: 'v1.2.3',
    dir,
    into: 'replace',
    label: 'compiling Hello',
    step: 1,
    progress: (l) => lines.push(l),
    ...more,
  });

  it('replaces the folder whole: the executable with its ldflags, VERSION, the extra files, no staging left', async () => {
    const dir = join(root, 'cache', 'hello', 'v1.2.3-id');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'stale'), 'from a build before\n');
    const lines: string[] = [];
    await buildGoCommand(
      options(dir, lines, { extraFiles: (staging) => writeFileSync(join(staging, 'crd.yaml'), 'kind: x\n') }),
    );
    expect(readdirSync(dir).sort()).to.deep.equal(['VERSION', 'crd.yaml', 'hello']);
    expect(execFileSync(join(dir, 'hello'), { encoding: 'utf8' })).to.equal('hello v1.2.3 true\n');
    expect(readFileSync(join(dir, 'VERSION'), 'utf8')).to.equal('v1.2.3\n');
    expect(readdirSync(join(dir, '..'))).to.deep.equal(['v1.2.3-id']);
    expect(lines.length).to.be.greaterThan(0);
    for (const l of lines) expect(l).to.match(/^compiling Hello: \d{1,2}% \(\d+\/\d+ packages\)$/);
  });

  it('adds to a folder that holds other executables already, leaving them be', async () => {
    const dir = join(root, 'cache', 'control-plane', 'v1.2.3-id');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'kube-apiserver'), '#!/bin/sh\n', { mode: 0o755 });
    await buildGoCommand(options(dir, [], { into: 'add' }));
    expect(readdirSync(dir).sort()).to.deep.equal(['VERSION', 'hello', 'kube-apiserver']);
    expect(execFileSync(join(dir, 'hello'), { encoding: 'utf8' })).to.equal('hello v1.2.3 true\n');
    expect(readdirSync(join(dir, '..'))).to.deep.equal(['v1.2.3-id']);
  });

  it('rejects a failed build with go’s own words and puts nothing in the cache folder', async () => {
    writeFileSync(
      join(manifestDir, 'cmd', 'hello', 'main.go'),
      'package main\n\nfunc main() { undefinedCall() }\n',
    );
    const dir = join(root, 'cache', 'hello', 'v1.2.3-id');
    const build = buildGoCommand(options(dir, []));
    await build.then(
      () => expect.fail('the build should have failed'),
      (err: Error) => {
        expect(err.message).to.match(/^go build -v -trimpath .* failed \(exit 1\):/);
        expect(err.message).to.contain('undefined: undefinedCall');
      },
    );
    expect(existsSync(dir)).to.equal(false);
  });
});
