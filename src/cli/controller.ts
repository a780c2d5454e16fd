// `perch controller`: flags (each also an env var PERCH_*), then the controller until SIGTERM/SIGINT.
import { KubeConfig } from '@kubernetes/client-node';
import { parseArgs } from 'node:util';
import { runController } from '../controller/controller.js';
import { createLogger, type LogFormat, type LogLevel } from '../controller/log.js';
import { parseBaseUrl } from '../controller/prometheus-allowlist.js';
import { configureClient, DEFAULT_REQUEST_TIMEOUT_MS, userAgent } from '../k8s/client-config.js';
import { DEFAULT_TIMINGS, newIdentity, timingsError } from '../k8s/leader-election.js';
import { DEFAULT_RATE_LIMIT, rateLimitError, type RateLimit } from '../k8s/rate-limiter.js';
import { defaultWorkers, MAX_WORKERS } from '../controller/workers.js';
import { parseDuration } from '../machine/duration.js';
import { UsageError } from './usage-error.js';

export const CONTROLLER_USAGE = `usage: perch controller [flags]   (each flag also an env var: --prometheus-url → PERCH_PROMETHEUS_URL)
  --kubeconfig FILE       kubeconfig to use (default: in-cluster config, then $KUBECONFIG, then ~/.kube/config)
  --namespace NS          watch one namespace (default: all)
  --prometheus-url URL    Prometheus for metrics that name no address of their own
  --allowed-prometheus-urls URL,...   URL prefixes a Rollout or MetricTemplate may name as its Prometheus
                          (default: only --prometheus-url, which is always allowed)
  --template-namespace NS a shared MetricTemplate catalogue any Rollout's templateRef may name
  --metrics-addr ADDR     serve /metrics, /healthz, /readyz here (default :8080; port 0 picks a free one)
  --request-timeout D     longest wait for the API server's answer to a request other than a watch (default 30s)
  --kube-api-qps N        client-side limit on API requests per second, watches and the Lease aside (default ${DEFAULT_RATE_LIMIT.qps})
  --kube-api-burst N      requests that may go at once after a quiet spell, before --kube-api-qps holds them (default ${DEFAULT_RATE_LIMIT.burst})
  --workers N             Rollouts reconciled at once (default 4 per core, 4 to 32: ${defaultWorkers()} here)
  --leader-elect          elect a leader through a coordination.k8s.io/v1 Lease before reconciling
  --leader-elect-namespace NS   the Lease's namespace (default: $POD_NAMESPACE, else default)
  --leader-elect-lease-duration D, --leader-elect-renew-deadline D, --leader-elect-retry-period D
                          client-go's timings (default 15s, 10s, 2s; lease > renew deadline > 1.2 × retry period)
  --log-level LEVEL       debug | info | warn | error (default info)
  --log-format FORMAT     json | text (default text)`;

const FLAGS = {
  kubeconfig: { type: 'string' },
  namespace: { type: 'string' },
  'prometheus-url': { type: 'string' },
  'allowed-prometheus-urls': { type: 'string' },
  'template-namespace': { type: 'string' },
  'metrics-addr': { type: 'string' },
  'request-timeout': { type: 'string' },
  'kube-api-qps': { type: 'string' },
  'kube-api-burst': { type: 'string' },
  workers: { type: 'string' },
  'leader-elect': { type: 'boolean' },
  'leader-elect-namespace': { type: 'string' },
  'leader-elect-lease-duration': { type: 'string' },
  'leader-elect-renew-deadline': { type: 'string' },
  'leader-elect-retry-period': { type: 'string' },
  'log-level': { type: 'string' },
  'log-format': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** A flag's value, else its PERCH_* environment variable. */
function fromEnv(name: string): string | undefined {
  return process.env[`PERCH_${name.toUpperCase().replace(/-/g, '_')}`];
}

/** An http(s) base URL, such as http://prometheus.monitoring:9090. */
function baseUrl(flag: string, text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const parsed = parseBaseUrl(text);
  if (parsed.ok) return text;
  throw new UsageError(`--${flag} ${text}: ${parsed.problem}`);
}

/** Comma-separated URL prefixes; blanks between commas are skipped, so an empty value allows none. */
function urlList(flag: string, text: string | undefined): string[] | undefined {
  if (text === undefined) return undefined;
  const urls = text
    .split(',')
    .map((u) => u.trim())
    .filter((u) => u !== '');
  for (const url of urls) {
    const parsed = parseBaseUrl(url);
    if (!parsed.ok)
      throw new UsageError(
        `--${flag}: ${url} ${parsed.problem} (each entry is a URL prefix such as http://prometheus.monitoring:9090)`,
      );
  }
  return urls;
}

/** A namespace's name (a DNS-1123 label). */
function namespaceName(flag: string, text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  if (text.length <= 63 && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(text)) return text;
  throw new UsageError(
    `--${flag} ${JSON.stringify(text)}: not a namespace name; use lower-case letters, digits and '-'`,
  );
}

/** A number as a person writes one: digits, maybe a fraction; nothing else (Number('') is 0, Number('1e3') 1000). */
function plainNumber(text: string): number | undefined {
  return /^\s*\d+(\.\d+)?\s*$/.test(text) ? Number(text) : undefined;
}

/** --kube-api-qps and --kube-api-burst, each defaulting on its own. */
function rateLimit(qpsText: string | undefined, burstText: string | undefined): RateLimit {
  const limit = {
    qps: qpsText === undefined ? DEFAULT_RATE_LIMIT.qps : (plainNumber(qpsText) ?? NaN),
    burst: burstText === undefined ? DEFAULT_RATE_LIMIT.burst : (plainNumber(burstText) ?? NaN),
  };
  const wrong = rateLimitError(limit, { qps: qpsText, burst: burstText });
  if (wrong) throw new UsageError(wrong);
  return limit;
}

/** --workers: a whole number from 1 to MAX_WORKERS. */
function workerCount(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = plainNumber(text);
  if (n !== undefined && Number.isInteger(n) && n >= 1 && n <= MAX_WORKERS) return n;
  throw new UsageError(
    `--workers ${text}: give a whole number of Rollouts to reconcile at once, from 1 to ${MAX_WORKERS} (default ${defaultWorkers()} on this machine)`,
  );
}

function oneOf<T extends string>(flag: string, value: string, allowed: readonly T[]): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new UsageError(`--${flag} ${value}: use one of ${allowed.join(', ')}`);
}

export async function controllerCommand(argv: string[]): Promise<number> {
  let values;
  try {
    values = parseArgs({ args: argv, options: FLAGS, strict: true }).values;
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n${CONTROLLER_USAGE}`);
  }
  if (values.help) {
    process.stdout.write(`${CONTROLLER_USAGE}\n`);
    return 0;
  }
  const get = (k: Exclude<keyof typeof FLAGS, 'leader-elect' | 'help'>) => values[k] ?? fromEnv(k);
  const level = oneOf('log-level', get('log-level') ?? 'info', [
    'debug',
    'info',
    'warn',
    'error',
  ] as LogLevel[]);
  const format = oneOf('log-format', get('log-format') ?? 'text', ['json', 'text'] as LogFormat[]);
  const prometheusUrl = baseUrl('prometheus-url', get('prometheus-url'));
  const allowedPrometheusUrls = urlList('allowed-prometheus-urls', get('allowed-prometheus-urls'));
  const templateNamespace = namespaceName('template-namespace', get('template-namespace'));
  const duration = (
    flag:
      | 'request-timeout'
      | 'leader-elect-lease-duration'
      | 'leader-elect-renew-deadline'
      | 'leader-elect-retry-period',
  ) => {
    const text = get(flag);
    if (text === undefined) return undefined;
    const ms = parseDuration(text);
    if (!ms) throw new UsageError(`--${flag} ${text}: write a duration such as 15s or 500ms`);
    return ms;
  };
  const timings = {
    leaseDurationMs: duration('leader-elect-lease-duration') ?? DEFAULT_TIMINGS.leaseDurationMs,
    renewDeadlineMs: duration('leader-elect-renew-deadline') ?? DEFAULT_TIMINGS.renewDeadlineMs,
    retryPeriodMs: duration('leader-elect-retry-period') ?? DEFAULT_TIMINGS.retryPeriodMs,
  };
  const wrongTimings = timingsError(timings);
  if (wrongTimings) throw new UsageError(wrongTimings);
  const requestTimeoutMs = duration('request-timeout') ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const limit = rateLimit(get('kube-api-qps'), get('kube-api-burst'));
  const workers = workerCount(get('workers'));
  const log = createLogger(level, format);
  // The Lease's holder and the user agent's suffix, so the audit log tells replicas apart.
  const identity = newIdentity();
  const kc = new KubeConfig();
  const kubeconfig = get('kubeconfig');
  if (kubeconfig) kc.loadFromFile(kubeconfig);
  else kc.loadFromDefault();
  configureClient(kc, { userAgent: userAgent(identity), requestTimeoutMs, rateLimit: limit });
  const controller = await runController({
    kubeConfig: kc,
    namespace: get('namespace'),
    prometheusUrl,
    allowedPrometheusUrls,
    templateNamespace,
    metricsAddr: get('metrics-addr') ?? ':8080',
    workers,
    leaderElect: values['leader-elect'] ?? fromEnv('leader-elect') === 'true',
    leaderElection: {
      namespace: get('leader-elect-namespace') ?? process.env.POD_NAMESPACE ?? 'default',
      name: 'perch-controller',
      identity,
      ...timings,
    },
    onLeadershipLost: () => process.exit(1),
    log,
  });
  await new Promise<void>((done) => {
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
  });
  log.info('stopping');
  await controller.stop();
  return 0;
}
