// The promotion window: Berlin business hours across both DST switches, the UTC default, the next
// opening when closed (checked against a minute-by-minute scan), and errors that name the field.
import { expect } from 'chai';
import { createTask, getTasks } from 'node-cron';
import {
  compileWindow,
  WINDOW_HORIZON_MS,
  type Window,
  type WindowSpec,
} from '../../src/controller/window.js';

const MINUTE = 60_000;
const at = (iso: string) => Date.parse(iso);

function compile(spec: WindowSpec): Window {
  const result = compileWindow(spec);
  if (!result.ok) throw new Error(`expected a window, got ${result.error.message}`);
  return result.value;
}

function expectInvalid(spec: WindowSpec, field: string) {
  const result = compileWindow(spec);
  if (result.ok) throw new Error(`expected ${JSON.stringify(spec)} to be invalid`);
  expect(result.error.field).to.equal(field);
  expect(result.error.message.startsWith(field), result.error.message).to.equal(true);
  return result.error;
}

describe('compileWindow', () => {
  describe('Berlin business hours, "* 9-16 * * 1-5"', () => {
    const berlin = compile({ schedule: '* 9-16 * * 1-5', timeZone: 'Europe/Berlin' });

    // Summer time began Sunday 2025-03-30 (UTC+1 → UTC+2), so 09:00 Berlin is 08:00Z on the Friday
    // before and 07:00Z on the Monday after.
    it('opens at 09:00 and closes after 16:59 Berlin time in winter (UTC+1)', () => {
      expect(berlin.state(at('2025-03-28T07:59:00Z'))).to.deep.equal({
        open: false,
        nextOpenAt: at('2025-03-28T08:00:00Z'),
      });
      expect(berlin.state(at('2025-03-28T08:00:00Z'))).to.deep.equal({ open: true });
      expect(berlin.state(at('2025-03-28T15:59:59.999Z'))).to.deep.equal({ open: true });
    });

    it('stays closed over the weekend of the spring switch and opens Monday 09:00 summer time', () => {
      const monday = { open: false, nextOpenAt: at('2025-03-31T07:00:00Z') };
      expect(berlin.state(at('2025-03-28T16:00:00Z'))).to.deep.equal(monday); // Friday 17:00
      expect(berlin.state(at('2025-03-29T10:00:00Z'))).to.deep.equal(monday); // Saturday 11:00
      expect(berlin.state(at('2025-03-30T01:30:00Z'))).to.deep.equal(monday); // the switch itself
      expect(berlin.state(at('2025-03-31T06:59:00Z'))).to.deep.equal(monday); // Monday 08:59
      expect(berlin.state(at('2025-03-31T07:00:00Z'))).to.deep.equal({ open: true });
      expect(berlin.state(at('2025-03-31T14:59:00Z'))).to.deep.equal({ open: true }); // 16:59 CEST
      expect(berlin.state(at('2025-03-31T15:00:00Z'))).to.deep.equal({
        open: false,
        nextOpenAt: at('2025-04-01T07:00:00Z'),
      });
    });

    it('the same UTC time is outside on the Friday and inside on the Monday', () => {
      expect(berlin.state(at('2025-03-28T07:30:00Z')).open).to.equal(false); // 08:30 CET
      expect(berlin.state(at('2025-03-31T07:30:00Z')).open).to.equal(true); // 09:30 CEST
    });

    it('follows the autumn switch back to winter time', () => {
      // Summer time ended Sunday 2025-10-26 (UTC+2 → UTC+1).
      expect(berlin.state(at('2025-10-24T14:59:00Z'))).to.deep.equal({ open: true }); // Fri 16:59 CEST
      expect(berlin.state(at('2025-10-24T15:00:00Z'))).to.deep.equal({
        open: false,
        nextOpenAt: at('2025-10-27T08:00:00Z'), // Mon 09:00 CET
      });
      expect(berlin.state(at('2025-10-27T07:59:00Z')).open).to.equal(false);
      expect(berlin.state(at('2025-10-27T15:59:00Z')).open).to.equal(true); // 16:59 CET
    });
  });

  describe('DST edge minutes', () => {
    const halfPastTwo = compile({ schedule: '30 2 * * *', timeZone: 'Europe/Berlin' });

    it('opens in both passes of the repeated hour when clocks go back', () => {
      expect(halfPastTwo.state(at('2025-10-26T00:30:00Z'))).to.deep.equal({ open: true }); // 02:30 CEST
      expect(halfPastTwo.state(at('2025-10-26T00:45:00Z'))).to.deep.equal({
        open: false,
        nextOpenAt: at('2025-10-26T01:30:00Z'), // 02:30 CET, the second pass
      });
      expect(halfPastTwo.state(at('2025-10-26T01:30:00Z'))).to.deep.equal({ open: true });
    });

    it('skips a wall time that does not exist when clocks go forward', () => {
      // 02:30 on 2025-03-30 never happens in Berlin; the next 02:30 is the day after.
      expect(halfPastTwo.state(at('2025-03-29T12:00:00Z'))).to.deep.equal({
        open: false,
        nextOpenAt: at('2025-03-31T00:30:00Z'),
      });
    });
  });

  describe('time zone', () => {
    it('defaults to UTC', () => {
      const utc = compile({ schedule: '* 9-16 * * 1-5' });
      expect(utc.timeZone).to.equal('UTC');
      expect(utc.state(at('2025-03-31T09:00:00Z'))).to.deep.equal({ open: true });
      expect(utc.state(at('2025-03-31T16:59:00Z'))).to.deep.equal({ open: true });
      expect(utc.state(at('2025-03-31T08:59:59Z'))).to.deep.equal({
        open: false,
        nextOpenAt: at('2025-03-31T09:00:00Z'),
      });
    });

    it('reports the canonical zone name', () => {
      expect(compile({ schedule: '* * * * *', timeZone: 'europe/berlin' }).timeZone).to.equal(
        'Europe/Berlin',
      );
    });
  });

  describe('next opening', () => {
    it('is the start of the next matching minute', () => {
      const noon = compile({ schedule: '0 12 * * *', timeZone: 'America/New_York' });
      expect(noon.state(at('2025-07-01T16:00:40Z'))).to.deep.equal({ open: true }); // 12:00 EDT
      expect(noon.state(at('2025-07-01T16:01:00Z'))).to.deep.equal({
        open: false,
        nextOpenAt: at('2025-07-02T16:00:00Z'),
      });
    });

    it('is found years ahead for a leap-day window', () => {
      const leapDay = compile({ schedule: '0 12 29 2 *' });
      expect(leapDay.state(at('2025-03-01T00:00:00Z'))).to.deep.equal({
        open: false,
        nextOpenAt: at('2028-02-29T12:00:00Z'),
      });
      expect(WINDOW_HORIZON_MS).to.be.greaterThan(at('2028-02-29T12:00:00Z') - at('2024-03-01T00:00:00Z'));
    });

    it('is absent when the window never opens within the horizon', () => {
      // Valid to node-cron, but February never has a day 30 days before its last.
      const never = compile({ schedule: '0 0 L-30 2 *' });
      expect(never.state(at('2025-03-01T00:00:00Z'))).to.deep.equal({ open: false });
    });

    // An independent oracle: node-cron's matcher, asked minute by minute.
    const cases: [string, string, string[]][] = [
      [
        '* 9-16 * * 1-5',
        'Europe/Berlin',
        ['2025-03-29T23:17:00Z', '2025-10-25T22:00:00Z', '2025-10-26T00:59:00Z'],
      ],
      ['*/20 22-2 * * *', 'America/New_York', ['2025-03-09T03:10:00Z', '2025-11-02T05:41:00Z']],
      ['15,45 */3 * * 0,6', 'Asia/Kathmandu', ['2025-06-04T10:02:00Z']],
      ['0 2 * * *', 'Australia/Lord_Howe', ['2025-04-05T14:00:00Z', '2025-10-04T14:00:00Z']],
      ['5 0 * * *', 'America/Santiago', ['2025-04-05T12:00:00Z', '2025-09-06T12:00:00Z']],
    ];
    for (const [schedule, timeZone, starts] of cases) {
      it(`agrees with a minute-by-minute scan for "${schedule}" in ${timeZone}`, () => {
        const window = compile({ schedule, timeZone });
        const task = createTask(schedule, () => undefined, { timezone: timeZone });
        void task.destroy();
        for (const start of starts) {
          let t = Math.floor(at(start) / MINUTE) * MINUTE;
          const state = window.state(t);
          expect(state.open, start).to.equal(task.match(new Date(t)));
          if (state.open) continue;
          do t += MINUTE;
          while (!task.match(new Date(t)));
          expect(new Date(state.nextOpenAt!).toISOString(), start).to.equal(new Date(t).toISOString());
        }
      });
    }
  });

  it('leaves nothing behind in node-cron’s task registry', () => {
    const before = getTasks().size;
    for (let i = 0; i < 50; i++) compile({ schedule: `${i % 60} 9-16 * * 1-5`, timeZone: 'Europe/Berlin' });
    expect(getTasks().size).to.equal(before);
  });

  describe('errors name the field and say how to fix it', () => {
    it('an hour out of range', () => {
      const error = expectInvalid({ schedule: '* 25 * * *' }, 'spec.window.schedule');
      expect(error.reason).to.equal('InvalidSchedule');
      expect(error.message).to.contain('"25"').and.contain('0-23');
    });

    it('too few fields', () => {
      const error = expectInvalid({ schedule: '* * * *' }, 'spec.window.schedule');
      expect(error.message).to.contain('five fields').and.contain('* 9-16 * * 1-5');
    });

    it('a seconds field', () => {
      expect(expectInvalid({ schedule: '*/10 * * * * *' }, 'spec.window.schedule').message).to.contain(
        'seconds',
      );
    });

    it('an empty schedule', () => {
      expectInvalid({ schedule: '' }, 'spec.window.schedule');
      expectInvalid({ schedule: '   ' }, 'spec.window.schedule');
    });

    it('a day that never comes', () => {
      expect(expectInvalid({ schedule: '0 9 30 2 *' }, 'spec.window.schedule').message).to.contain(
        'never open',
      );
    });

    it('a day of week out of range and a word node-cron does not know', () => {
      expect(expectInvalid({ schedule: '* * * * 8' }, 'spec.window.schedule').message).to.contain(
        'day-of-week',
      );
      expectInvalid({ schedule: '* 9-16 * * weekdays' }, 'spec.window.schedule');
    });

    it('an unknown time zone', () => {
      const error = expectInvalid(
        { schedule: '* 9-16 * * 1-5', timeZone: 'Mars/Olympus_Mons' },
        'spec.window.timeZone',
      );
      expect(error.reason).to.equal('InvalidTimeZone');
      expect(error.message).to.contain('"Mars/Olympus_Mons"').and.contain('Europe/Berlin').and.contain('UTC');
    });

    it('an empty time zone', () => {
      expectInvalid({ schedule: '* 9-16 * * 1-5', timeZone: '' }, 'spec.window.timeZone');
    });
  });
});
