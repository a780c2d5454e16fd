// Identical queries within a moment share one request: the same text within the window gets the first
// answer (in flight or in), another text or a later moment sends its own, and old answers are let go.
import { expect } from 'chai';
import { SharedQueries } from '../../src/analysis/shared-queries.js';

describe('SharedQueries', () => {
  /** A sender that counts what it sends and answers each with its own number. */
  function sender() {
    const sent: string[] = [];
    return {
      sent,
      send: (query: string) => () => {
        sent.push(query);
        return Promise.resolve(`${query}#${sent.length}`);
      },
    };
  }

  it('gives the same query asked within the window the one answer, in flight or already in', async () => {
    const shared = new SharedQueries<string>(1000);
    const s = sender();
    const first = shared.ask('q', 10_000, s.send('q'));
    const inFlight = shared.ask('q', 10_200, s.send('q'));
    expect(await first).to.equal('q#1');
    expect(await inFlight).to.equal('q#1');
    expect(await shared.ask('q', 11_000, s.send('q')), 'answered, still within the window').to.equal('q#1');
    expect(await shared.ask('q', 9_500, s.send('q')), 'a moment before it').to.equal('q#1');
    expect(s.sent).to.deep.equal(['q']);
  });

  it('sends another text, or the same one a moment later than the window, on its own', async () => {
    const shared = new SharedQueries<string>(1000);
    const s = sender();
    expect(await shared.ask('q', 10_000, s.send('q'))).to.equal('q#1');
    expect(await shared.ask('other', 10_000, s.send('other'))).to.equal('other#2');
    expect(await shared.ask('q', 11_001, s.send('q'))).to.equal('q#3');
    // The new answer is the one shared from now on.
    expect(await shared.ask('q', 11_500, s.send('q'))).to.equal('q#3');
    expect(s.sent).to.deep.equal(['q', 'other', 'q']);
  });

  it('keeps only one window of queries', async () => {
    const shared = new SharedQueries<string>(1000);
    const s = sender();
    for (let i = 0; i < 100; i++) await shared.ask(`q${i}`, 10_000 + i * 100, s.send(`q${i}`));
    // Asked at 19.9 s: those sent from 18.9 s on are kept, 11 of them.
    expect(shared.size()).to.equal(11);
    await shared.ask('late', 60_000, s.send('late'));
    expect(shared.size()).to.equal(1);
  });
});
