// `perch demo --fast` as a person sees it on a terminal: run inside a private tmux server (a real pty,
// 130x40), the screen is read with `capture-pane` while it runs. Mid-run it shows the v2 run redrawn in
// place with a part-filled weight bar and its phase; at the end the final bars, the summary table and
// `demo passed`, exit 0; afterwards no process the demo started is alive.
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { descendants, isDead, programOf } from '../support/proc.js';

const PERCH = fileURLToPath(new URL('../../src/cli/perch.js', import.meta.url));
const EXPECTED_PROGRAMS = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'prometheus'];
const POLL_MS = 250;

const run = promisify(execFile);
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// The /proc helpers below are copied from test/e2e/demo.test.ts, which exports none (importing it would
// also register its tests).
function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Already gone.
  }
}

const shQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** A private tmux server, addressed only by its -L socket name. */
class Tmux {
  readonly socket = `perch-test-${randomBytes(6).toString('hex')}`;
  /** Where the server's socket file is; tmux leaves it behind after kill-server. */
  socketPath: string | undefined;

  async cmd(...args: string[]): Promise<string> {
    return (await run('tmux', ['-L', this.socket, ...args], { encoding: 'utf8' })).stdout;
  }

  /** The visible screen of the (only) pane, as plain text. */
  capture(): Promise<string> {
    return this.cmd('capture-pane', '-p');
  }

  async killServer(): Promise<void> {
    try {
      await this.cmd('kill-server');
    } catch {
      // No server (already gone or never started).
    }
    if (this.socketPath) rmSync(this.socketPath, { force: true });
  }
}

/** Polls `probe` every POLL_MS until it returns a value; throws with `describe()` after `timeoutMs`. */
async function pollUntil<T>(
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs: number,
  describe: () => Promise<string> | string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() >= deadline) throw new Error(`gave up after ${timeoutMs} ms: ${await describe()}`);
    await sleep(POLL_MS);
  }
}

const v2Live = /^v2 +bookstore-v1 -> bookstore-v2 +/;
const v3Live = /^v3 +bookstore-v2 -> bookstore-v3 +/;
const linesMatching = (screen: string, re: RegExp) => screen.split('\n').filter((l) => re.test(l));

describe('perch demo --fast (on a terminal, via tmux)', function () {
  this.timeout(180_000);

  const tmux = new Tmux();
  let demoPid: number | undefined;
  let sampler: NodeJS.Timeout | undefined;
  /** PID → program of every descendant of the demo seen while it ran. */
  const seen = new Map<number, string>();

  after(async function () {
    this.timeout(60_000);
    if (sampler) clearInterval(sampler);
    // On a failure mid-run: let the demo stop what it started (SIGTERM), then take down the server.
    if (demoPid !== undefined && !isDead(demoPid)) {
      const tree = descendants(demoPid);
      for (const pid of tree) if (!seen.has(pid)) seen.set(pid, programOf(pid));
      killQuietly(demoPid, 'SIGTERM');
      const deadline = Date.now() + 30_000;
      while (!isDead(demoPid) && Date.now() < deadline) await sleep(POLL_MS);
      killQuietly(demoPid, 'SIGKILL');
    }
    await tmux.killServer();
    for (const pid of seen.keys()) if (!isDead(pid)) killQuietly(pid, 'SIGKILL');
  });

  it('redraws the runs in place, ends with the summary and exit 0, and leaves no process', async () => {
    const command = `${shQuote(process.execPath)} ${shQuote(PERCH)} demo --fast; echo EXIT=$?; sleep 600`;
    await tmux.cmd('-f', '/dev/null', 'new-session', '-d', '-x', '130', '-y', '40', command);
    tmux.socketPath = (await tmux.cmd('display-message', '-p', '#{socket_path}')).trim() || undefined;

    // The pane's process is the shell running `command`; its child is the demo's node.
    const shellPid = Number((await tmux.cmd('list-panes', '-F', '#{pane_pid}')).trim());
    expect(shellPid, 'pane PID').to.be.greaterThan(0);
    const pid = await pollUntil(
      () => descendants(shellPid).find((p) => programOf(p) === basename(process.execPath)),
      10_000,
      () => `no node process under the pane's shell (PID ${shellPid})`,
    );
    demoPid = pid;

    // /proc has no event to await: sample the demo's process tree while it runs.
    const sample = () => {
      // Named again at every sample: just after fork a child still shows its parent's command line.
      for (const child of descendants(pid)) seen.set(child, programOf(child) || seen.get(child) || '');
    };
    sample();
    sampler = setInterval(sample, 200);

    // A screen has no event to await either: poll it until the v2 run is mid-way.
    const midRun = /^v2 +bookstore-v1 -> bookstore-v2 +\[#+\.+\] +\d+% +(Progressing|Paused) /m;
    let last = '';
    const mid = await pollUntil(
      async () => {
        last = await tmux.capture();
        if (/^EXIT=\d+$/m.test(last))
          throw new Error(`the demo exited before the v2 run was mid-way:\n${last}`);
        return midRun.test(last) ? last : undefined;
      },
      120_000,
      () => `the v2 run never showed mid-way; last screen:\n${last}`,
    );
    console.log(`      screen mid-run (tmux capture-pane, 130x40):\n${mid.trimEnd()}\n`);

    const v2Mid = linesMatching(mid, v2Live);
    expect(v2Mid, 'v2 live lines on the mid-run screen (redrawn in place, not appended)').to.have.length(1);
    expect(v2Mid[0]).to.match(/\[#+\.+\] +\d+%/);
    expect(v2Mid[0]).to.match(/ (Progressing|Paused) +step \d+\/\d+ /);
    expect(v2Mid[0]).to.match(/ success +([\d.]+%|-) +[\d.]+s$/);
    expect(mid).to.match(/^load: \d+ sent \(/m);
    expect(mid, 'no escape sequences left as text').not.to.include('[2K');

    // Then until the shell prints the demo's exit status.
    const final = await pollUntil(
      async () => {
        last = await tmux.capture();
        return /^EXIT=\d+$/m.test(last) ? last : undefined;
      },
      150_000,
      () => `no EXIT= on the screen; last screen:\n${last}`,
    );
    if (sampler) clearInterval(sampler);
    sampler = undefined;
    console.log(`      final screen:\n${final.trimEnd()}\n`);
    expect(final, `final screen:\n${final}`).to.match(/^EXIT=0$/m);

    // The live block stays on screen with the final bars, once per run.
    const v2Final = linesMatching(final, v2Live);
    const v3Final = linesMatching(final, v3Live);
    expect(v2Final, `v2 live lines on the final screen:\n${final}`).to.have.length(1);
    expect(v3Final, `v3 live lines on the final screen:\n${final}`).to.have.length(1);
    expect(v2Final[0]).to.match(/ \[##########\] 100% +Succeeded /);
    expect(v3Final[0]).to.match(/ \[\.\.\.\.\.\.\.\.\.\.\] {3}0% +Failed /);
    // The summary table and the verdict.
    expect(final).to.match(/^run +canary +expected +outcome +duration$/m);
    expect(final).to.match(/^v2 +bookstore-v2 +Succeeded +Succeeded +[\d.]+s +ok$/m);
    expect(final).to.match(/^v3 +bookstore-v3 +Failed +Failed +[\d.]+s +ok$/m);
    expect(final).to.match(/^demo passed: v2 promoted, v3 rolled back$/m);

    // The demo has exited; ending the server ends the `sleep` and the shell.
    expect(isDead(pid), 'the demo process after EXIT=').to.equal(true);
    await tmux.killServer();
    await pollUntil(
      () => (isDead(shellPid) ? true : undefined),
      10_000,
      () => `the pane's shell (PID ${shellPid}) outlived kill-server`,
    );

    const programs = new Set(seen.values());
    for (const p of EXPECTED_PROGRAMS) {
      expect([...programs], `programs seen under the demo (PID ${pid})`).to.include(p);
    }
    const alive = [...seen.keys()].filter((p) => !isDead(p));
    expect(
      alive.map((p) => `${p} ${seen.get(p)}`),
      'descendants alive after the demo exited',
    ).to.deep.equal([]);
  });
});
