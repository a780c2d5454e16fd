// A real Prometheus for tests and the demo: finds the binary, writes its config, runs it on loopback.
// One call starts it (`startPrometheus`); `stop` ends the process and removes its folder.
import { accessSync, constants, rmSync, statSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { startChild, untilReady, type Child } from '../child-process.js';
import { makeDataDir } from '../data-dir.js';
import { freePort, LOOPBACK } from '../free-port.js';
import { waitFor } from '../wait.js';

export interface ScrapeJob {
  /** The `job` label of the scraped series. */
  name: string;
  /** host:port on loopback, e.g. "127.0.0.1:41234". */
  targets: string[];
  /** Default /metrics. */
  metricsPath?: string;
}

export interface PrometheusOptions {
  jobs: ScrapeJob[];
  /** Scrape and rule-evaluation interval, a Prometheus duration; default 1s. */
  scrapeInterval?: string;
  /** Default: $PERCH_PROMETHEUS, else `prometheus` on PATH. */
  binary?: string;
  /** How long to wait for /-/ready; default 30 s. */
  readyTimeoutMs?: number;
  /** Log every query answered, with its evaluation time and when it was done, to `queryLogFile`. */
  queryLog?: boolean;
}

export interface PrometheusServer {
  /** http://127.0.0.1:PORT */
  url: string;
  port: number;
  /** Config, log and TSDB live here; `stop` removes it. */
  dataDir: string;
  logFile: string;
  /** Prometheus's query log (JSON lines), when `queryLog` was asked for. */
  queryLogFile?: string;
  /** PID of the running process (it changes on restart). */
  pid(): number;
  /**
   * Stops Prometheus and starts it again on the same port and data; `whileStopped` runs in between
   * (tests use it to see an unreachable Prometheus).
   */
  restart(whileStopped?: () => Promise<void>): Promise<void>;
  stop(): Promise<void>;
}

const DIR_PREFIX = 'perch-prometheus-';

export const PROMETHEUS_INSTALL_HINT =
  'install it with `apt-get install prometheus` (Debian/Ubuntu) or download it from ' +
  'https://prometheus.io/download/, then put it on PATH or set PERCH_PROMETHEUS to its path';

/** The Prometheus binary: $PERCH_PROMETHEUS, else the first `prometheus` on PATH; throws saying how to get one. */
export function findPrometheus(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env.PERCH_PROMETHEUS;
  if (explicit) {
    if (executable(explicit)) return explicit;
    throw new Error(`PERCH_PROMETHEUS=${explicit} is not an executable file; ${PROMETHEUS_INSTALL_HINT}`);
  }
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir && executable(join(dir, 'prometheus'))) return join(dir, 'prometheus');
  }
  throw new Error(`prometheus was not found on PATH; ${PROMETHEUS_INSTALL_HINT}`);
}

/** prometheus.yml as JSON, which is YAML too, so no YAML library is needed. */
export function prometheusConfig(jobs: ScrapeJob[], scrapeInterval: string, queryLogFile?: string): string {
  for (const job of jobs) {
    for (const target of job.targets) {
      // The sandbox scrapes only what it runs itself; anything else is a mistake in a test.
      if (!/^(?:127\.0\.0\.1|localhost|\[::1\]):\d{1,5}$/.test(target)) {
        throw new Error(`scrape target "${target}" of job "${job.name}" is not host:port on loopback`);
      }
    }
  }
  const config = {
    global: {
      scrape_interval: scrapeInterval,
      evaluation_interval: scrapeInterval,
      ...(queryLogFile ? { query_log_file: queryLogFile } : {}),
    },
    scrape_configs: jobs.map((job) => ({
      job_name: job.name,
      scrape_interval: scrapeInterval,
      scrape_timeout: scrapeInterval,
      metrics_path: job.metricsPath ?? '/metrics',
      static_configs: [{ targets: job.targets }],
    })),
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}

export async function startPrometheus(opts: PrometheusOptions): Promise<PrometheusServer> {
  const binary = opts.binary ?? findPrometheus();
  const scrapeInterval = opts.scrapeInterval ?? '1s';
  prometheusConfig(opts.jobs, scrapeInterval); // a bad target throws before anything is made
  const dataDir = makeDataDir(DIR_PREFIX);
  const queryLogFile = opts.queryLog ? join(dataDir, 'queries.log') : undefined;
  const config = prometheusConfig(opts.jobs, scrapeInterval, queryLogFile);
  const configFile = join(dataDir, 'prometheus.yml');
  writeFileSync(configFile, config);
  const logFile = join(dataDir, 'prometheus.log');
  const port = await freePort();
  const url = `http://${LOOPBACK}:${port}`;
  const args = [
    `--config.file=${configFile}`,
    `--storage.tsdb.path=${join(dataDir, 'tsdb')}`,
    `--web.listen-address=${LOOPBACK}:${port}`,
  ];
  const launch = async (): Promise<Child> => {
    const child = startChild({ name: 'prometheus', command: binary, args, logFile });
    try {
      await untilReady(
        child,
        waitFor(
          async () => {
            const res = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(2000) });
            await res.arrayBuffer();
            return res.status === 200 ? true : undefined;
          },
          { what: `prometheus ready at ${url}/-/ready`, timeoutMs: opts.readyTimeoutMs ?? 30_000 },
        ),
      );
    } catch (err) {
      await child.stop();
      throw err;
    }
    return child;
  };

  let child: Child;
  try {
    child = await launch();
  } catch (err) {
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  return {
    url,
    port,
    dataDir,
    logFile,
    queryLogFile,
    pid: () => child.pid,
    async restart(whileStopped) {
      await child.stop();
      await whileStopped?.();
      child = await launch();
    },
    async stop() {
      await child.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}
