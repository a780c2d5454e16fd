// What the controller keeps in memory per Rollout, and that it goes with the Rollout: expectations of
// its own writes, refused weights, shared values (windows, clients), and metric series.
import { expect } from 'chai';
import type { KubernetesObject } from '@kubernetes/client-node';
import { Expectations } from '../../src/controller/expectations.js';
import { ControllerMetrics } from '../../src/controller/metrics.js';
import { Refusals } from '../../src/controller/refusals.js';
import { SharedByRollouts } from '../../src/controller/shared.js';

const at = (resourceVersion: string): KubernetesObject => ({ metadata: { resourceVersion } });

describe('controller: expectations of its own writes', () => {
  it('holds a decision until the cache shows a version past every one written over, with no time limit', () => {
    const ex = new Expectations();
    ex.rolloutPast('ns/web', '10'); // the status patch, decided on 10, wrote 11
    ex.rolloutPast('ns/web', '11'); // the annotation removal, on 11, wrote 12
    expect(ex.behind('ns/web', at('10'), undefined)).to.equal(true);
    expect(ex.behind('ns/web', at('11'), undefined)).to.equal(true);
    // Any version not written over is newer (a watch delivers in order): ours, or someone's after it.
    expect(ex.behind('ns/web', at('13'), undefined)).to.equal(false);
    expect(ex.size()).to.equal(0);
  });

  it('waits for a routing object Perch created to appear, and for a patched one to move', () => {
    const ex = new Expectations();
    ex.routePast('ns/web', undefined);
    expect(ex.behind('ns/web', at('5'), undefined)).to.equal(true);
    expect(ex.behind('ns/web', at('5'), at('6'))).to.equal(false);
    ex.routePast('ns/web', at('6'));
    expect(ex.behind('ns/web', at('5'), at('6'))).to.equal(true);
    expect(ex.behind('ns/web', at('5'), at('7'))).to.equal(false);
  });

  it('a version marked past holds decisions of that Rollout only, until forgotten', () => {
    const ex = new Expectations();
    ex.rolloutPast('ns/web', '20');
    expect(ex.behind('ns/web', at('20'), undefined)).to.equal(true);
    expect(ex.behind('ns/other', at('20'), undefined)).to.equal(false);
    ex.forget('ns/web');
    expect(ex.behind('ns/web', at('20'), undefined)).to.equal(false);
  });
});

describe('controller: refused weights', () => {
  it('holds a refusal while the routing object and the generation are as they were', () => {
    const r = new Refusals();
    r.record('ns/web', 50, 'denied', at('7'), 1);
    expect(r.current('ns/web', at('7'), 1)).to.deep.equal({ canaryWeight: 50, message: 'denied' });
    expect(r.current('ns/web', at('8'), 1)).to.equal(undefined);
    expect(r.current('ns/web', at('7'), 1), 'dropped once it lapsed').to.equal(undefined);
    r.record('ns/web', 50, 'denied', at('7'), 1);
    expect(r.current('ns/web', at('7'), 2)).to.equal(undefined);
  });
});

describe('controller: values shared by Rollouts', () => {
  it('makes a value once, and drops it when the last Rollout using it stops or goes', () => {
    const shared = new SharedByRollouts<{ id: string }>();
    let made = 0;
    const make = (id: string) => () => ({ id: `${id}#${++made}` });
    const a = shared.acquire('ns/a', 'cron-1', make('cron-1'));
    const b = shared.acquire('ns/b', 'cron-1', make('cron-1'));
    expect(b).to.equal(a);
    expect(made).to.equal(1);
    shared.acquire('ns/a', 'cron-2', make('cron-2'));
    shared.settle('ns/a', new Set(['cron-2']));
    expect(shared.size()).to.equal(2); // cron-1 still used by b
    shared.release('ns/b');
    expect(shared.size()).to.equal(1);
    shared.release('ns/a');
    expect(shared.size()).to.equal(0);
    expect(shared.acquire('ns/c', 'cron-1', make('cron-1')).id).to.equal('cron-1#3');
  });
});

describe('controller: metric series per Rollout', () => {
  it('forgetRollout removes its info, weight and check counters, and no other Rollout’s', async () => {
    const m = new ControllerMetrics();
    m.observeRollout('ns', 'a', 'Progressing', 10);
    m.observeRollout('ns', 'b', 'Progressing', 20);
    const check = (metric: string, verdict: 'Pass' | 'Fail') => ({ metric, verdict, reason: '', at: '' });
    m.countChecks('ns', 'a', [check('success', 'Pass'), check('latency', 'Fail')]);
    m.countChecks('ns', 'b', [check('success', 'Pass')]);
    m.forgetRollout('ns', 'a');
    const text = await m.registry.metrics();
    expect(text).to.not.match(/name="a"/);
    expect(text).to.match(
      /perch_analysis_checks_total\{namespace="ns",name="b",metric="success",verdict="Pass"\} 1/,
    );
    expect(m.rolloutsWithSeries()).to.equal(1);
  });

  it('sets a Rollout’s info and weight again after forgetRollout, and follows each change of either', async () => {
    const m = new ControllerMetrics();
    m.observeRollout('ns', 'a', 'Progressing', 10);
    m.forgetRollout('ns', 'a');
    m.observeRollout('ns', 'a', 'Progressing', 10);
    let text = await m.registry.metrics();
    expect(text).to.match(/perch_rollout_info\{namespace="ns",name="a",phase="Progressing"\} 1/);
    expect(text).to.match(/perch_rollout_canary_weight\{namespace="ns",name="a"\} 10/);
    m.observeRollout('ns', 'a', 'Progressing', 50);
    m.observeRollout('ns', 'a', 'Progressing', 50);
    m.observeRollout('ns', 'a', 'Succeeded', 50);
    text = await m.registry.metrics();
    expect(text).to.match(/perch_rollout_canary_weight\{namespace="ns",name="a"\} 50/);
    expect(text).to.match(/perch_rollout_info\{namespace="ns",name="a",phase="Succeeded"\} 1/);
    expect(text).to.match(/perch_rollout_info\{namespace="ns",name="a",phase="Progressing"\} 0/);
  });
});
