// kubectl perch without a cluster: the table and status text (rollout-view.ts), and what each action
// writes for each state of a run (rollout-actions.ts), checked against the real machine: every
// annotation the plugin sets is acted on by decide(), and every refusal is a state where it would not be.
import type { CoreV1Event } from '@kubernetes/client-node';
import { expect } from 'chai';
import type { Rollout, RolloutSpec } from '../../src/api/v1alpha1.js';
import { planAction, type ActionName, type ActionPlan } from '../../src/cli/rollout-actions.js';
import {
  WatchTable,
  describeStep,
  formatRange,
  formatValue,
  humanDuration,
  latestMeasurements,
  recentEvents,
  rolloutTable,
  statusText,
} from '../../src/cli/rollout-view.js';
import type { Observation } from '../../src/machine/types.js';
import { spec, World } from '../support/machine-world.js';

const NOW = Date.parse('2026-01-01T01:00:00Z');
const ago = (ms: number) => new Date(NOW - ms).toISOString();

function rollout(name: string, status: Rollout['status'], extra: Partial<Rollout> = {}): Rollout {
  return {
    apiVersion: 'perch.dev/v1alpha1',
    kind: 'Rollout',
    metadata: { name, namespace: 'shop', generation: 1, creationTimestamp: ago(150_000) as never },
    spec: spec(),
    status,
    ...extra,
  };
}

/** The Rollout as the plugin would read it from a simulated world: its spec, status and annotations. */
function fromWorld(w: World): Rollout {
  const annotations = Object.fromEntries(
    Object.entries(w.annotations)
      .filter(([, on]) => on)
      .map(([k]) => [`perch.dev/${k}`, 'true']),
  );
  return {
    metadata: { name: 'web', namespace: 'shop', generation: w.generation, annotations },
    spec: w.spec,
    status: w.status,
  };
}

/** Sends a plan's merge patch to the world, as the API server would apply it to the annotations. */
function apply(w: World, plan: ActionPlan): void {
  expect(plan.kind, plan.message).to.equal('patch');
  if (plan.kind !== 'patch') return;
  for (const [key, value] of Object.entries(plan.annotations)) {
    w.annotations[key.replace('perch.dev/', '') as keyof Observation['annotations']] = value === 'true';
  }
}

const plan = (action: ActionName, w: World) => planAction(action, fromWorld(w));
const phaseIs = (phase: string, reason?: string) => (w: World) =>
  w.phase() === phase && (reason === undefined || w.status?.pauseReason === reason);

const GATE: Partial<RolloutSpec> = {
  steps: [{ setWeight: 20 }, { pause: {} }, { setWeight: 100 }],
  analysis: undefined,
};

describe('kubectl perch: view', () => {
  it('prints ages the way kubectl does', () => {
    const cases: [number, string][] = [
      [0, '0s'],
      [-500, '0s'],
      [-5000, '<invalid>'],
      [119_000, '119s'],
      [120_000, '2m'],
      [150_000, '2m30s'],
      [10 * 60_000, '10m'],
      [179 * 60_000, '179m'],
      [(5 * 60 + 3) * 60_000, '5h3m'],
      [47 * 3_600_000, '47h'],
      [52 * 3_600_000, '2d4h'],
      [400 * 86_400_000, '400d'],
      [800 * 86_400_000, '2y70d'],
    ];
    for (const [ms, text] of cases) expect(humanDuration(ms), `${ms} ms`).to.equal(text);
  });

  it('get: NAME PHASE WEIGHT STEP AGE MESSAGE, aligned, sorted, pause reason shown, "-" where nothing is known', () => {
    const lines = rolloutTable(
      [
        rollout('web', {
          phase: 'Paused',
          pauseReason: 'Manual',
          canaryWeight: 10,
          step: '2/5',
          message: 'paused by\nperch.dev/paused',
        }),
        rollout('api', { phase: 'Progressing', canaryWeight: 50, step: '4/5', message: 'canary 50%' }),
        rollout('new', undefined),
      ],
      NOW,
      false,
    );
    expect(lines).to.deep.equal([
      'NAME   PHASE            WEIGHT   STEP   AGE     MESSAGE',
      'api    Progressing      50       4/5    2m30s   canary 50%',
      'new    -                -        -      2m30s   -',
      'web    Paused(Manual)   10       2/5    2m30s   paused by perch.dev/paused',
    ]);
    expect(rolloutTable([], NOW, false)).to.deep.equal([]);
  });

  it('get -A: a NAMESPACE column first, rows by namespace then name', () => {
    const other = rollout('web', { phase: 'Succeeded', canaryWeight: 100, step: '5/5' });
    other.metadata!.namespace = 'a-team';
    const lines = rolloutTable([rollout('web', { phase: 'Progressing' }), other], NOW, true);
    expect(lines[0]).to.match(/^NAMESPACE\s+NAME\s+PHASE\s+WEIGHT\s+STEP\s+AGE\s+MESSAGE$/);
    expect(lines.slice(1).map((l) => l.split(/ {3,}/).slice(0, 3))).to.deep.equal([
      ['a-team', 'web', 'Succeeded'],
      ['shop', 'web', 'Progressing'],
    ]);
  });

  it('get -w: the table, then a row per change of a row (not of its age), lined up with the table', () => {
    const table = new WatchTable(false);
    const web = rollout('web', { phase: 'Progressing', canaryWeight: 10, step: '2/5', message: 'waiting' });
    expect(table.start([web], NOW)).to.have.length(2);
    expect(table.change(web, NOW + 60_000), 'only the age changed').to.deep.equal([]);
    const paused = rollout('web', { ...web.status, phase: 'Paused', pauseReason: 'Manual', message: 'held' });
    expect(table.change(paused, NOW)).to.deep.equal(['web    Paused(Manual)   10       2/5    2m30s   held']);
    expect(table.change(paused, NOW)).to.deep.equal([]);
    expect(table.change(paused, NOW, true)).to.deep.equal([
      'web    (deleted)     10       2/5    2m30s   held',
    ]);
  });

  it('get -w on an empty namespace: the header comes with the first row', () => {
    const table = new WatchTable(false);
    expect(table.start([], NOW)).to.deep.equal([]);
    expect(table.change(rollout('web', { phase: 'Pending' }), NOW)).to.deep.equal([
      'NAME   PHASE     WEIGHT   STEP   AGE     MESSAGE',
      'web    Pending   -        -      2m30s   -',
    ]);
  });

  it('describes the current step: weight, analysis progress, a pause and what ends it', () => {
    const at = (currentStepIndex: number, extra: Partial<NonNullable<Rollout['status']>> = {}) =>
      describeStep(rollout('web', { phase: 'Progressing', currentStepIndex, ...extra }), NOW);
    expect(at(0)).to.equal('1/5 setWeight 10');
    expect(
      at(1, {
        analysis: {
          passed: 3,
          failed: 0,
          inconclusive: 0,
          consecutiveErrors: 0,
          consecutivePassed: 1,
          measurements: [],
        },
      }),
    ).to.equal('2/5 analysis: 1 of 2 consecutive passing checks');
    expect(at(3)).to.equal('4/5 pause 2s');
    expect(at(3, { phase: 'Paused', pauseReason: 'PauseStep', stepStartedAt: ago(500) })).to.equal(
      '4/5 pause 2s, 2s left',
    );
    expect(at(5)).to.equal('5/5 done');
    const gate = rollout(
      'web',
      { phase: 'Paused', pauseReason: 'PauseStep', currentStepIndex: 1 },
      { spec: { ...spec(), ...GATE } },
    );
    expect(describeStep(gate, NOW)).to.equal(
      '2/3 pause, waits for perch.dev/resume (kubectl perch resume web)',
    );
    expect(describeStep(rollout('web', undefined), NOW)).to.equal('-');
  });

  it('formats values and ranges short', () => {
    expect([
      formatValue(99),
      formatValue(99.8333),
      formatValue(0.000123456),
      formatValue(undefined),
    ]).to.deep.equal(['99', '99.83', '0.000123', '-']);
    expect([
      formatRange({ min: 99 }),
      formatRange({ max: 500 }),
      formatRange({ min: 1, max: 2 }),
      formatRange(undefined),
    ]).to.deep.equal(['>= 99', '<= 500', '1..2', '-']);
  });

  it('status: phase, services and weights, step, counters, the latest measurement per metric, conditions, last Events', () => {
    const r = rollout('web', {
      observedGeneration: 1,
      phase: 'Paused',
      pauseReason: 'AnalysisInconclusive',
      message: 'analysis inconclusive: 3 inconclusive checks (limit 2)',
      currentStepIndex: 1,
      step: '2/5',
      canaryWeight: 10,
      stableWeight: 90,
      runStartedAt: ago(120_000),
      analysis: {
        passed: 4,
        failed: 0,
        inconclusive: 3,
        consecutiveErrors: 0,
        consecutivePassed: 0,
        lastCheckAt: ago(1000),
        nextCheckAt: new Date(NOW + 29_000).toISOString(),
        measurements: [
          { metric: 'success-rate', value: 99.5, verdict: 'Pass', at: ago(31_000) },
          { metric: 'success-rate', verdict: 'Inconclusive', at: ago(1000) },
          { metric: 'retired-metric', value: 3, verdict: 'Pass', at: ago(60_000) },
        ],
      },
      conditions: [
        {
          type: 'Valid',
          status: 'True',
          reason: 'Valid',
          message: 'spec is valid',
          lastTransitionTime: ago(120_000),
        },
        {
          type: 'Paused',
          status: 'True',
          reason: 'AnalysisInconclusive',
          message: 'held',
          lastTransitionTime: ago(1000),
        },
      ],
    });
    const events: CoreV1Event[] = [
      'RunStarted',
      'WeightChanged',
      'AnalysisPassed',
      'AnalysisPassed',
      'Paused',
      'Resumed',
      'Paused',
    ].map((reason, i) => ({
      metadata: { name: `web.${i}` },
      involvedObject: {},
      type: 'Normal',
      reason,
      message: `${reason} ${i}`,
      count: i === 6 ? 3 : 1,
      lastTimestamp: new Date(NOW - (7 - i) * 10_000),
    }));
    const text = statusText(r, [...events].reverse(), NOW);
    expect(text).to.include('Phase:        Paused(AnalysisInconclusive)\n');
    expect(text).to.include('Services:     root web, stable web-v1 90%, canary web-v2 10%\n');
    expect(text).to.include('Step:         2/5 analysis: 0 of 2 consecutive passing checks\n');
    expect(text).to.include(
      'Analysis:     every 1s: 4 passed, 0 failed (limit 0), 3 inconclusive (limit 2), 0 consecutive errors (limit 4)\n' +
        '              last check 1s ago, next in 29s\n',
    );
    expect(text).to.include(
      'Metrics:\n' +
        '  METRIC           VALUE   VERDICT        RANGE   AT\n' +
        `  success-rate     -       Inconclusive   >= 99   ${ago(1000)} (1s ago)\n` +
        `  retired-metric   3       Pass           -       ${ago(60_000)} (60s ago)\n`,
    );
    expect(text).to.include('  Paused   True     AnalysisInconclusive   1s    held');
    const eventLines = text.slice(text.indexOf('Events:')).split('\n');
    expect(eventLines.map((l) => l.split(/ {3,}/)[1])).to.deep.equal([
      undefined,
      'REASON',
      'AnalysisPassed',
      'AnalysisPassed',
      'Paused',
      'Resumed',
      'Paused',
    ]);
    expect(eventLines.at(-1)).to.equal('  Normal   Paused           10s (x3)   Paused 6');
    expect(latestMeasurements(r).map((m) => m.latest?.verdict)).to.deep.equal(['Inconclusive', 'Pass']);
  });

  it('status of a Rollout the controller has not seen, and of a new generation not yet running', () => {
    const fresh = statusText(rollout('web', undefined), [], NOW);
    expect(fresh).to.include('Phase:        no status yet (has the controller seen it?)');
    expect(fresh).to.include('Conditions: <none>');
    expect(fresh).to.include('Events: <none>');
    const changed = rollout('web', { observedGeneration: 1, phase: 'Succeeded' });
    changed.metadata!.generation = 2;
    expect(statusText(changed, [], NOW)).to.include(
      'Generation:   2 (the run shown is of generation 1; a new one starts)',
    );
  });

  it('keeps the newest Events, oldest first', () => {
    const e = (name: string, at: number): CoreV1Event => ({
      metadata: { name },
      involvedObject: {},
      lastTimestamp: new Date(at),
    });
    expect(recentEvents([e('c', 3), e('a', 1), e('b', 2)], 2).map((x) => x.metadata.name)).to.deep.equal([
      'b',
      'c',
    ]);
  });
});

describe('kubectl perch: actions, against the machine', () => {
  it('pause: sets perch.dev/paused, the run holds as Paused(Manual); a second pause sends nothing', () => {
    const w = new World(spec()).runUntil((x) => x.status?.canaryWeight === 10);
    const p = plan('pause', w);
    expect(p).to.deep.equal({
      kind: 'patch',
      annotations: { 'perch.dev/paused': 'true' },
      message: 'rollout shop/web: perch.dev/paused=true set',
    });
    apply(w, p);
    w.reconcile();
    expect(w.status?.pauseReason).to.equal('Manual');
    expect(plan('pause', w)).to.deep.equal({
      kind: 'noop',
      message: 'rollout shop/web: already paused (perch.dev/paused=true)',
    });
  });

  it('pause of a finished run is a level for the next run, and says so', () => {
    const w = new World({ ...spec(), ...GATE }).runUntil(phaseIs('Paused', 'PauseStep'));
    w.annotations.promote = true;
    w.runUntil(phaseIs('Succeeded'));
    expect(plan('pause', w).message).to.equal(
      'rollout shop/web: perch.dev/paused=true set (no run in progress: the next run holds)',
    );
  });

  it('resume of Paused(Manual): removes perch.dev/paused only, and the run goes on', () => {
    const w = new World(spec()).runUntil((x) => x.status?.canaryWeight === 10);
    w.annotations.paused = true;
    w.runUntil(phaseIs('Paused', 'Manual'));
    const p = plan('resume', w);
    expect(p).to.deep.equal({
      kind: 'patch',
      annotations: { 'perch.dev/paused': null },
      message: 'rollout shop/web: perch.dev/paused removed',
    });
    apply(w, p);
    w.reconcile();
    expect(w.phase()).to.equal('Progressing');
    expect(w.reasons()).to.include('Resumed');
  });

  it('resume of a pause: {} step: sets perch.dev/resume, and the run goes past the step', () => {
    const w = new World({ ...spec(), ...GATE }).runUntil(phaseIs('Paused', 'PauseStep'));
    const p = plan('resume', w);
    expect(p).to.deep.equal({
      kind: 'patch',
      annotations: { 'perch.dev/resume': 'true' },
      message: 'rollout shop/web: perch.dev/resume=true set (continues past the pause step 2/3)',
    });
    apply(w, p);
    w.runUntil(phaseIs('Succeeded'), 10);
    expect(w.phase()).to.equal('Succeeded');
    expect(w.reasons()).not.to.include('AnnotationIgnored');
  });

  for (const [reason, verdict] of [
    ['AnalysisInconclusive', 'Inconclusive'],
    ['MetricsUnavailable', 'Error'],
  ] as const) {
    it(`resume of Paused(${reason}): sets perch.dev/resume, and the run goes on`, () => {
      const w = new World(spec()).runUntil((x) => x.status?.canaryWeight === 10);
      w.verdict = verdict;
      w.runUntil(phaseIs('Paused', reason));
      const p = plan('resume', w);
      expect(p).to.deep.equal({
        kind: 'patch',
        annotations: { 'perch.dev/resume': 'true' },
        message: `rollout shop/web: perch.dev/resume=true set (ends the ${reason} pause)`,
      });
      apply(w, p);
      w.reconcile();
      expect(w.phase()).to.equal('Progressing');
      expect(w.reasons()).not.to.include('AnnotationIgnored');
    });
  }

  it("resume of a person's pause over a pause: {} step: one hold at a time, and it says a second resume is needed", () => {
    const w = new World({ ...spec(), ...GATE }).runUntil(phaseIs('Paused', 'PauseStep'));
    w.annotations.paused = true;
    w.reconcile();
    expect(w.status?.pauseReason).to.equal('Manual');
    const first = plan('resume', w);
    expect(first).to.deep.equal({
      kind: 'patch',
      annotations: { 'perch.dev/paused': null },
      message:
        'rollout shop/web: perch.dev/paused removed; the run then waits at its pause step 2/3: resume again to go past it',
    });
    apply(w, first);
    w.reconcile();
    w.reconcile();
    expect(w.status?.pauseReason).to.equal('PauseStep');
    apply(w, plan('resume', w));
    w.runUntil(phaseIs('Succeeded'), 10);
    expect(w.phase()).to.equal('Succeeded');
  });

  it('why resume never sends both: perch.dev/resume with the removal of perch.dev/paused would be used up for nothing', () => {
    const w = new World({ ...spec(), ...GATE }).runUntil(phaseIs('Paused', 'PauseStep'));
    w.annotations.paused = true;
    w.reconcile();
    w.annotations.paused = false;
    w.annotations.resume = true;
    w.reconcile();
    w.reconcile();
    expect(w.annotations.resume, 'consumed').to.equal(false);
    expect(w.status?.pauseReason, 'and the pause step still holds').to.equal('PauseStep');
  });

  it('resume refuses a run that is not paused, and sends nothing when it is already underway', () => {
    const w = new World(spec()).runUntil((x) => x.status?.canaryWeight === 10);
    expect(plan('resume', w)).to.deep.equal({
      kind: 'refuse',
      message: 'rollout shop/web is Progressing, not paused: nothing to resume',
    });
    w.annotations.paused = true;
    w.reconcile();
    w.annotations.paused = false; // removed by someone else; the status has not caught up yet
    expect(plan('resume', w).kind).to.equal('noop');
    const gate = new World({ ...spec(), ...GATE }).runUntil(phaseIs('Paused', 'PauseStep'));
    gate.annotations.resume = true;
    expect(plan('resume', gate).kind).to.equal('noop');
  });

  it('promote: sets perch.dev/promote, also while paused; the run promotes', () => {
    const w = new World(spec()).runUntil((x) => x.status?.canaryWeight === 10);
    w.annotations.paused = true;
    w.reconcile();
    const p = plan('promote', w);
    expect(p.message).to.equal('rollout shop/web: perch.dev/promote=true set');
    apply(w, p);
    w.reconcile();
    expect(w.phase()).to.equal('Promoting');
    w.runUntil(phaseIs('Succeeded'), 10);
    expect(plan('promote', w)).to.deep.equal({
      kind: 'noop',
      message: 'rollout shop/web is Succeeded already: nothing to promote',
    });
  });

  it("promote refuses while a metric's latest check failed (the controller would not promote), naming it", () => {
    const w = new World(spec({ analysis: { ...spec().analysis!, failureLimit: 3 } })).runUntil(
      (x) => x.status?.canaryWeight === 10,
    );
    w.verdict = 'Fail';
    w.value = 42.5;
    w.runUntil((x) => (x.status?.analysis?.failed ?? 0) === 1);
    const p = plan('promote', w);
    expect(p).to.deep.equal({
      kind: 'refuse',
      message:
        'rollout shop/web: the latest check of success-rate failed (value 42.5); the controller promotes nothing until it passes again',
    });
    // The machine agrees: the annotation would be ignored.
    w.annotations.promote = true;
    w.reconcile();
    expect(w.phase()).to.equal('Progressing');
    expect(w.reasons()).to.include('AnnotationIgnored');
  });

  it('abort: sets perch.dev/abort and the run is Aborted on stable; then nothing to abort, promote refused, retry set', () => {
    const w = new World(spec()).runUntil((x) => x.status?.canaryWeight === 10);
    apply(w, plan('abort', w));
    w.runUntil(phaseIs('Aborted'), 10);
    expect(w.phase()).to.equal('Aborted');
    expect(w.traffic?.canaryWeight).to.equal(0);
    expect(plan('abort', w)).to.deep.equal({
      kind: 'noop',
      message: 'rollout shop/web is Aborted: its traffic is back on stable; nothing to abort',
    });
    expect(plan('promote', w)).to.deep.equal({
      kind: 'refuse',
      message:
        'rollout shop/web is Aborted: promote acts only on a run in progress; kubectl perch retry web starts it again',
    });
    const retry = plan('retry', w);
    expect(retry.message).to.equal('rollout shop/web: perch.dev/retry=true set');
    apply(w, retry);
    w.reconcile();
    expect(w.phase()).to.equal('Progressing');
    expect(w.events.at(-1)?.message).to.match(/\(retry\)$/);
  });

  it('abort refuses a promoted run; retry refuses a run that is not Failed or Aborted', () => {
    const w = new World({ ...spec(), ...GATE }).runUntil(phaseIs('Paused', 'PauseStep'));
    expect(plan('retry', w)).to.deep.equal({
      kind: 'refuse',
      message: 'rollout shop/web is Paused(PauseStep): retry starts a run again only after Failed or Aborted',
    });
    w.annotations.promote = true;
    w.runUntil(phaseIs('Succeeded'));
    expect(plan('abort', w).kind).to.equal('refuse');
    expect(plan('abort', w).message).to.match(/^rollout shop\/web is Succeeded: the canary is promoted/);
  });

  it('one-shots are refused before the run starts and while a new target waits to start its run', () => {
    const none = fromWorld(new World(spec()));
    for (const action of ['promote', 'abort', 'resume'] as const)
      expect(planAction(action, none).kind, action).to.equal('refuse');
    expect(planAction('promote', none).message).to.equal(
      'rollout shop/web has not started its run yet (phase none): try again once it is Progressing',
    );
    const w = new World(spec()).runUntil((x) => x.status?.canaryWeight === 10);
    // Another threshold: the run goes on as it is, so a promote reaches it.
    w.generation = 2;
    w.spec = spec();
    w.spec.analysis!.metrics[0]!.thresholdRange = { min: 99.5 };
    expect(plan('promote', w).kind).to.equal('patch');
    // Another canary: a new run comes first.
    w.generation = 3;
    w.spec = spec({ canaryService: 'web-v3' });
    expect(plan('promote', w).message).to.equal(
      'rollout shop/web: its spec names another version to deliver (web-v3 against web-v1; the run shown is of web-v2), so the controller starts a new run first; promote that run',
    );
  });

  it('an annotation already set is not sent again', () => {
    const w = new World(spec()).runUntil((x) => x.status?.canaryWeight === 10);
    w.annotations.promote = true;
    expect(plan('promote', w)).to.deep.equal({
      kind: 'noop',
      message: 'rollout shop/web: perch.dev/promote=true is already set; the controller acts on it next',
    });
  });
});
