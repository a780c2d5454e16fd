// The benchmarks' /proc readings: CPU time from /proc/<pid>/stat, resident memory from /proc/<pid>/status.
import { expect } from 'chai';
import {
  bytesOfStatus,
  clockTicksPerSecond,
  commOf,
  cpuMsOf,
  cpuTicksOfStat,
  pidOfProgram,
  procUsage,
} from '../../bench/proc-usage.js';

// A real line's shape (fields 1-20 shown): utime 1234 and stime 56 are fields 14 and 15.
const stat = (comm: string) =>
  `4242 (${comm}) S 1 4242 4242 0 -1 4194560 5000 0 12 0 1234 56 0 0 20 0 9 0 7777 123456789 4000\n`;

describe('bench /proc usage', () => {
  it('reads utime + stime, counting fields from the last parenthesis of the command name', () => {
    expect(cpuTicksOfStat(stat('flagger'))).to.equal(1290);
    // A command name may hold spaces and parentheses of its own.
    expect(cpuTicksOfStat(stat('a) b (c) 7 8'))).to.equal(1290);
    const node = '4242 (node (my) x) S 1 4242 4242 0 -1 4194560 900 0 0 0 1234 567 0 0 20 0 11 0 100 0 0';
    expect(cpuTicksOfStat(node)).to.equal(1801);
  });

  it('refuses a line that is not /proc/<pid>/stat', () => {
    expect(() => cpuTicksOfStat('nothing here')).to.throw(/not a \/proc\/<pid>\/stat line/);
    expect(() => cpuTicksOfStat('1 (x) S 1 2')).to.throw(/no utime and stime/);
  });

  it('reads kB fields of /proc/<pid>/status in bytes', () => {
    const status = 'Name:\tflagger\nVmHWM:\t   65432 kB\nVmRSS:\t   60000 kB\nThreads:\t9\n';
    expect(bytesOfStatus(status, 'VmHWM')).to.equal(65432 * 1024);
    expect(bytesOfStatus(status, 'VmRSS')).to.equal(60000 * 1024);
    expect(() => bytesOfStatus(status, 'VmSwap')).to.throw(/no VmSwap/);
  });

  it("reads this process's CPU time as Node's own clock of it does, and its memory", () => {
    const before = procUsage(process.pid);
    const start = process.cpuUsage();
    let x = 0;
    // Busy until Node says 150 ms of CPU went by, however contended the machine is.
    while (process.cpuUsage(start).user + process.cpuUsage(start).system < 150_000) x += Math.sqrt(x + 1);
    const used = process.cpuUsage(start);
    const after = procUsage(process.pid);
    expect(x).to.be.greaterThan(0);
    // Same kernel counters, in clock ticks (10 ms at USER_HZ 100) rather than microseconds.
    const tickMs = 1000 / clockTicksPerSecond();
    expect(after.cpuMs - before.cpuMs).to.be.closeTo((used.user + used.system) / 1000, 3 * tickMs);
    expect(after.rssBytes).to.be.greaterThan(10 * 2 ** 20);
    expect(after.peakRssBytes).to.be.at.least(after.rssBytes);
  });

  it('gives the CPU of several processes by name, and finds a program among PIDs by its comm', () => {
    const comm = commOf(process.pid);
    expect(comm).to.be.a('string').and.not.equal('');
    expect(pidOfProgram([999_999_999, process.pid], comm!)).to.equal(process.pid);
    expect(() => pidOfProgram([process.pid], 'etcd')).to.throw(
      new RegExp(`no process runs etcd among ${process.pid} ${comm}`),
    );
    expect(commOf(999_999_999)).to.equal(undefined);
    const before = procUsage(process.pid).cpuMs;
    const cpu = cpuMsOf({ self: process.pid });
    expect(Object.keys(cpu)).to.deep.equal(['self']);
    expect(cpu.self).to.be.at.least(before);
    expect(cpu.self).to.be.at.most(procUsage(process.pid).cpuMs);
  });
});
