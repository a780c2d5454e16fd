// `perch uninstall`: with the controller stopped, every Rollout's routing object left at the live version
// and released, and Perch's finalizer removed, so no Rollout or namespace is left Terminating for ever.
import { KubeConfig } from '@kubernetes/client-node';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { TRAFFIC_FINALIZER } from '../api/v1alpha1.js';
import { Uninstaller, type RolloutRelease } from '../controller/uninstall.js';
import { configureClient, userAgent } from '../k8s/client-config.js';
import {
  CONTROLLER_LEASE,
  findLeases,
  takeLease,
  type LeaseHold,
  type LeaseSeen,
} from '../k8s/controller-lease.js';
import { PERCH_CRDS, removeCrds } from '../k8s/crd-removal.js';
import { describeApiError } from '../k8s/api-error.js';
import { formatDuration, parseDuration } from '../machine/duration.js';
import { UsageError } from './usage-error.js';

export const UNINSTALL_USAGE = `usage: perch uninstall [flags]
  Lets every Rollout go as its deletion would, without deleting it: its TrafficSplit or HTTPRoute left
  routing 100% to the live version (stable mid-run or after a failure or abort, the canary after
  success), released (Perch's ownerReference removed, annotated perch.dev/released-from) and the
  ${TRAFFIC_FINALIZER} finalizer removed. Run it once the controller is stopped: it first takes the
  controller's leader Lease (${CONTROLLER_LEASE}) and refuses while a controller renews it.
  --kubeconfig FILE       kubeconfig to use (default: in-cluster config, then $KUBECONFIG, then ~/.kube/config)
  --namespace NS          only the Rollouts of this namespace (default: all)
  --dry-run               say what would be done, write nothing
  --wait D                how long a live controller may take to stop (release or stop renewing its Lease),
                          e.g. 2m in a Helm post-delete hook (default 0s: refuse at once)
  --leader-elect-namespace NS   where the controller's Lease is (default: the ${CONTROLLER_LEASE} Lease of every namespace)
  --force                 skip the Lease check (only when no controller runs: a live one puts its finalizer back)
  --crds                  then delete Perch's CRDs (${PERCH_CRDS.join(', ')}) and with them every Rollout
                          and MetricTemplate; only once no Rollout carries the finalizer (not with --namespace)`;

const FLAGS = {
  kubeconfig: { type: 'string' },
  namespace: { type: 'string' },
  'dry-run': { type: 'boolean' },
  wait: { type: 'string' },
  'leader-elect-namespace': { type: 'string' },
  force: { type: 'boolean' },
  crds: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** How long CRD deletion (every Rollout and MetricTemplate with it) may take. */
const CRD_TIMEOUT_MS = 120_000;

function namespaceName(flag: string, text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  if (text.length <= 63 && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(text)) return text;
  throw new UsageError(
    `--${flag} ${JSON.stringify(text)}: not a namespace name; use lower-case letters, digits and '-'`,
  );
}

export interface UninstallFlags {
  kubeconfig?: string;
  namespace?: string;
  dryRun: boolean;
  waitMs: number;
  leaseNamespace?: string;
  force: boolean;
  crds: boolean;
}

/** The flags, or a UsageError naming the one that is wrong and how to write it. */
export function parseUninstallFlags(argv: string[]): UninstallFlags | 'help' {
  let values;
  try {
    values = parseArgs({ args: argv, options: FLAGS, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n${UNINSTALL_USAGE}`);
  }
  if (values.help) return 'help';
  const wait = values.wait ?? '0s';
  const waitMs = parseDuration(wait);
  if (waitMs === undefined)
    throw new UsageError(`--wait ${wait}: write a duration such as 2m or 30s (0s: do not wait)`);
  const namespace = namespaceName('namespace', values.namespace);
  if (values.crds && namespace !== undefined)
    throw new UsageError(
      `--crds with --namespace ${namespace}: CRDs are cluster-wide and deleting them deletes the Rollouts of ` +
        'every namespace; run without --namespace to remove them',
    );
  if (values.kubeconfig === '') throw new UsageError('--kubeconfig "": give the path of a kubeconfig file');
  return {
    ...(values.kubeconfig !== undefined ? { kubeconfig: values.kubeconfig } : {}),
    ...(namespace !== undefined ? { namespace } : {}),
    dryRun: values['dry-run'] ?? false,
    waitMs,
    ...(values['leader-elect-namespace'] !== undefined
      ? { leaseNamespace: namespaceName('leader-elect-namespace', values['leader-elect-namespace']) }
      : {}),
    force: values.force ?? false,
    crds: values.crds ?? false,
  };
}

const say = (line: string) => process.stdout.write(`${line}\n`);
const ago = (l: LeaseSeen) =>
  l.renewTime
    ? `, renewed ${formatDuration(Math.max(0, Date.now() - l.renewTime.getTime()))} ago by its clock`
    : '';
const leaseName = (l: { namespace: string; name: string }) => `Lease ${l.namespace}/${l.name}`;

export async function uninstallCommand(argv: string[]): Promise<number> {
  const flags = parseUninstallFlags(argv);
  if (flags === 'help') {
    say(UNINSTALL_USAGE);
    return 0;
  }
  const kc = new KubeConfig();
  try {
    if (flags.kubeconfig) kc.loadFromFile(flags.kubeconfig);
    else kc.loadFromDefault();
  } catch (err) {
    throw new UsageError(
      `--kubeconfig ${flags.kubeconfig ?? '(default)'}: ${(err as Error).message}; give a readable kubeconfig file`,
    );
  }
  if (!kc.getCurrentCluster())
    throw new UsageError(
      `--kubeconfig ${flags.kubeconfig ?? '(default)'}: no current cluster; give a kubeconfig whose current-context names one`,
    );
  const identity = `perch-uninstall_${hostname()}_${randomBytes(4).toString('hex')}`;
  configureClient(kc, { userAgent: userAgent(identity) });

  const holds = flags.force || flags.dryRun ? [] : await takeLeases(kc, flags, identity);
  if (flags.force) say('--force: no Lease checked; make sure no controller runs');
  if (flags.dryRun && !flags.force) await describeLeases(kc, flags);
  // Our writes go out only while we hold every Lease we took: a controller that took one over writes alone.
  configureClient(kc, {
    writeFence: () => holds.map((h) => h.refusal()).find((r) => r !== undefined),
  });
  try {
    const uninstaller = new Uninstaller(kc, { dryRun: flags.dryRun });
    const rollouts = await uninstaller.list(flags.namespace).catch((err: unknown) => {
      throw describeApiError(err, 'listing Rollouts');
    });
    const results: RolloutRelease[] = [];
    for (const rollout of rollouts) {
      const r = await uninstaller.release(rollout);
      results.push(r);
      say(line(r, flags.dryRun, !!rollout.metadata?.deletionTimestamp));
    }
    say(summary(results, flags));
    const failed = results.filter((r) => r.outcome === 'failed').length;
    if (failed > 0) return 1;
    if (flags.crds) return await crds(kc, uninstaller, flags.dryRun);
    return 0;
  } finally {
    for (const h of holds) await h.release();
  }
}

/** Takes every controller Lease, or throws saying which controller is live and how to stop it. */
async function takeLeases(kc: KubeConfig, flags: UninstallFlags, identity: string): Promise<LeaseHold[]> {
  const where = flags.leaseNamespace ? `namespace ${flags.leaseNamespace}` : 'any namespace';
  let leases: LeaseSeen[];
  try {
    leases = await findLeases(kc, CONTROLLER_LEASE, flags.leaseNamespace);
  } catch (err) {
    const e = describeApiError(err, `looking for the controller's Lease ${CONTROLLER_LEASE} in ${where}`);
    throw new Error(
      `${e.message}\n  give --leader-elect-namespace NS (the controller's namespace) when Leases cannot be ` +
        'listed in every namespace, or --force when no controller runs',
      { cause: err },
    );
  }
  if (leases.length === 0) {
    say(
      `no Lease ${CONTROLLER_LEASE} in ${where}: no controller with --leader-elect has run there ` +
        '(one without it holds no Lease: make sure none runs)',
    );
    return [];
  }
  const holds: LeaseHold[] = [];
  for (const lease of leases) {
    const taken = await takeLease(kc, lease, {
      identity,
      waitMs: flags.waitMs,
      userAgent: userAgent(identity),
      onWaiting: (l) =>
        say(
          `${leaseName(l)} is held by ${l.holder}${ago(l)}; ` +
            (flags.waitMs > 0
              ? `waiting up to ${formatDuration(flags.waitMs)} for its controller to stop`
              : 'watching whether its controller renews it'),
        ),
    });
    if (!taken.ok) {
      for (const h of holds) await h.release();
      const l = taken.lease;
      const fix =
        `stop the controller first (kubectl -n ${l.namespace} scale deployment perch-controller --replicas=0, ` +
        'or uninstall its release), or give --wait D to wait for it to stop; --force skips this check, ' +
        'but a live controller puts its finalizer back';
      throw new Error(
        taken.live
          ? `a controller is live: ${leaseName(l)} is held by ${l.holder} and was ${taken.reason}${
              flags.waitMs > 0 ? ` for ${formatDuration(flags.waitMs)}` : ''
            }. Nothing was changed.\n  ${fix}`
          : `could not take the controller's ${leaseName(l)} (${taken.reason}). Nothing was changed.\n  ${fix}`,
      );
    }
    say(
      `${leaseName(lease)} taken${lease.holder && lease.holder !== identity ? ` (its holder ${lease.holder} stopped)` : ''}: ` +
        'no controller can start leading until this ends',
    );
    holds.push(taken.hold);
  }
  return holds;
}

/** A dry run reads the Leases only: taking one is a write. */
async function describeLeases(kc: KubeConfig, flags: UninstallFlags): Promise<void> {
  const leases = await findLeases(kc, CONTROLLER_LEASE, flags.leaseNamespace).catch((err: unknown) => {
    throw describeApiError(err, `looking for the controller's Lease ${CONTROLLER_LEASE}`);
  });
  if (leases.length === 0) say(`dry run: no Lease ${CONTROLLER_LEASE} found; a run would not wait for one`);
  for (const l of leases)
    say(
      `dry run: ${leaseName(l)} ${l.holder ? `is held by ${l.holder}${ago(l)}` : 'is free'}; a run takes it first ` +
        'and refuses while a controller renews it',
    );
}

/** One line per Rollout: what was (or would be) done to its routing object and finalizer. */
export function line(r: RolloutRelease, dryRun: boolean, deleting: boolean): string {
  const who = `${r.namespace}/${r.name}`;
  if (r.outcome === 'nothing') return `${who}: nothing to do (no ${TRAFFIC_FINALIZER} finalizer)`;
  if (r.outcome === 'gone') return `${who}: deleted meanwhile, nothing to do`;
  const v = dryRun
    ? { release: 'would release', leave: 'would leave', removed: 'would remove the finalizer' }
    : { release: 'released', leave: 'left', removed: 'finalizer removed' };
  const at = `${r.live} 100 (${r.liveService})`;
  const f = r.found;
  let route: string;
  if (!f || f.state === 'missing') route = `no ${r.route} to release`;
  else if (f.state === 'notServed') route = `${r.route} not served by this cluster, nothing to release`;
  else if (f.owned === 'foreign') route = `${r.route} is not Perch's, ${v.leave} as it is`;
  else {
    const liveWeight = r.live === 'canary' ? 100 : 0;
    const was =
      r.wrote !== undefined && f.canaryWeight !== liveWeight ? `, was canary ${f.canaryWeight}` : '';
    const routed = r.wrote !== undefined || f.canaryWeight === liveWeight;
    const where = routed
      ? `at ${at}${was}`
      : `at canary ${f.canaryWeight}: the live Service ${r.liveService} does not exist`;
    route =
      f.owned === 'owner'
        ? `${v.release} ${r.route} ${where}`
        : `${v.leave} ${r.route} ${where} (handed over by annotation, no ownerReference to remove)`;
  }
  if (r.outcome === 'failed') return `${who}: FAILED: ${r.error ?? 'unknown error'}; the finalizer stays`;
  const gone = deleting && !dryRun ? ' (the Rollout was being deleted: it goes now)' : '';
  // Someone wrote between a look and a write (or the API server failed): it was decided again on fresh reads.
  const looks = (r.attempts ?? 1) > 1 ? ` (after ${r.attempts} looks)` : '';
  return `${who}: ${route}, ${v.removed}${gone}${looks}`;
}

function summary(results: RolloutRelease[], flags: UninstallFlags): string {
  const where = flags.namespace ? ` in namespace ${flags.namespace}` : '';
  const count = (o: RolloutRelease['outcome']) => results.filter((r) => r.outcome === o).length;
  const plural = (n: number) => `${n} Rollout${n === 1 ? '' : 's'}`;
  if (results.length === 0) return `no Rollouts${where}: nothing to do`;
  const released = count('released');
  const failed = count('failed');
  if (released === 0 && failed === 0)
    return `nothing to do: no Rollout${where} carries the ${TRAFFIC_FINALIZER} finalizer (${plural(results.length)} looked at)`;
  const parts = [
    `${released} ${flags.dryRun ? 'would be released' : 'released'}`,
    ...(count('nothing') + count('gone') > 0
      ? [`${count('nothing') + count('gone')} with nothing to do`]
      : []),
    ...(failed > 0 ? [`${failed} failed (their finalizer stays; run again once fixed)`] : []),
  ];
  return `${flags.dryRun ? 'dry run, nothing written: ' : ''}${plural(results.length)}${where}: ${parts.join(', ')}`;
}

/** --crds: only once no Rollout anywhere carries the finalizer (deleting the CRD would leave them Terminating). */
async function crds(kc: KubeConfig, uninstaller: Uninstaller, dryRun: boolean): Promise<number> {
  const holding = (await uninstaller.list()).filter((r) =>
    r.metadata?.finalizers?.includes(TRAFFIC_FINALIZER),
  );
  if (dryRun) {
    say(
      `dry run: would delete the CRDs ${PERCH_CRDS.join(', ')} and with them every Rollout and MetricTemplate`,
    );
    return 0;
  }
  if (holding.length > 0) {
    const names = holding.map((r) => `${r.metadata?.namespace}/${r.metadata?.name}`);
    throw new Error(
      `--crds: ${names.length} Rollouts still carry ${TRAFFIC_FINALIZER} (${names.slice(0, 5).join(', ')}` +
        `${names.length > 5 ? ', ...' : ''}): the CRDs stay; run perch uninstall again`,
    );
  }
  const { deleted } = await removeCrds(kc, PERCH_CRDS, { timeoutMs: CRD_TIMEOUT_MS });
  say(
    deleted.length > 0
      ? `deleted the CRDs ${deleted.join(', ')} (and every Rollout and MetricTemplate with them)`
      : `the CRDs ${PERCH_CRDS.join(', ')} were gone already`,
  );
  return 0;
}
