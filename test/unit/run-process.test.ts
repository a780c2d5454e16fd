// runProcess with real child processes (node itself): what it printed on each stream, its exit code,
// the input, environment and folder it was given, and a command that cannot start.
import { expect } from 'chai';
import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runProcess } from '../../src/sandbox/run-process.js';

const node = (script: string, opts = {}) => runProcess(process.execPath, ['-e', script], opts);

describe('runProcess', () => {
  it('collects stdout and stderr apart, with the exit code', async () => {
    const r = await node('process.stdout.write("out"); process.stderr.write("err"); process.exitCode = 3');
    expect(r).to.deep.equal({ code: 3, stdout: 'out', stderr: 'err' });
  });

  it('writes the input to stdin and closes it; without input stdin ends at once', async () => {
    const echo =
      'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => console.log(`[${s}]`))';
    expect((await node(echo, { input: 'kind: Rollout\n' })).stdout).to.equal('[kind: Rollout\n]\n');
    expect((await node(echo)).stdout).to.equal('[]\n');
  });

  it('gives the code of one that exits without reading its input (no EPIPE thrown)', async () => {
    const r = await node('process.exit(5)', { input: 'x'.repeat(4 * 1024 * 1024) });
    expect(r.code).to.equal(5);
  });

  it('runs with the environment and folder given', async () => {
    const dir = realpathSync(mkdtempSync(join(tmpdir(), 'perch-run-process-')));
    try {
      const r = await node('console.log(process.env.PERCH_PROBE, process.cwd())', {
        env: { ...process.env, PERCH_PROBE: 'given' },
        cwd: dir,
      });
      expect(r.stdout).to.equal(`given ${dir}\n`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('gives -1 for a process a signal ended', async () => {
    const r = await node('process.kill(process.pid, "SIGKILL")');
    expect(r.code).to.equal(-1);
  });

  it('rejects when the command cannot start', async () => {
    const missing = join(tmpdir(), 'perch-no-such-command');
    await runProcess(missing, []).then(
      () => expect.fail('a missing command should reject'),
      (err: NodeJS.ErrnoException) => expect(err.code).to.equal('ENOENT'),
    );
  });
});
