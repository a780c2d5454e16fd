// What `perch demo` shows of the weights the mesh routes by: the TrafficSplit's backends, or every rule of
// the HTTPRoute (the person's too, so one sees Perch leave them be); off a terminal, a line per change only.
import { expect } from 'chai';
import { RoutingLog, routingLine, type RoutingSeen } from '../../src/sandbox/demo/view.js';

const split: RoutingSeen = {
  kind: 'TrafficSplit',
  name: 'bookstore-split',
  rules: [
    {
      backends: [
        { service: 'bookstore-v1', weight: 90 },
        { service: 'bookstore-v2', weight: 10 },
      ],
    },
  ],
};

const route = (stable: number): RoutingSeen => ({
  kind: 'HTTPRoute',
  name: 'bookstore',
  rules: [
    { name: 'pinned', backends: [{ service: 'bookstore-v1', weight: 1 }] },
    {
      name: 'split',
      backends: [
        { service: 'bookstore-v1', weight: stable },
        { service: 'bookstore-v2', weight: 100 - stable },
      ],
    },
    { backends: [] },
  ],
});

describe('perch demo: the routing line', () => {
  it("shows the TrafficSplit's backends, or each HTTPRoute rule by name (index when it has none)", () => {
    expect(routingLine(split)).to.equal(
      'route: TrafficSplit bookstore-split bookstore-v1=90 bookstore-v2=10',
    );
    expect(routingLine(route(0))).to.equal(
      'route: HTTPRoute bookstore pinned: bookstore-v1=1 | split: bookstore-v1=0 bookstore-v2=100 | rule 2: no backend',
    );
    expect(routingLine(undefined)).to.equal('route: nothing routes the root Service yet');
  });

  it('off a terminal, prints a change once, timed from the start of the run that made it', () => {
    const log = new RoutingLog();
    const run = { run: 'v2', startedAt: 1_000 };
    expect(log.line(route(100), run, 1_100)).to.equal(
      '[  0.1s] v2 route: HTTPRoute bookstore pinned: bookstore-v1=1 | split: bookstore-v1=100 bookstore-v2=0 | rule 2: no backend',
    );
    // A status write by the mesh re-announces the same weights: nothing to print.
    expect(log.line(route(100), run, 2_000)).to.equal(undefined);
    expect(log.line(route(90), run, 13_400)).to.match(
      /^\[ 12\.4s\] v2 route: .* split: bookstore-v1=90 bookstore-v2=10 /,
    );
  });
});
