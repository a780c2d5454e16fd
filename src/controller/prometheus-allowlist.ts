// Which Prometheus servers a Rollout or MetricTemplate may send queries to (SPEC §2, §6): URL prefixes
// from --allowed-prometheus-urls, matched on URL boundaries so a prefix never admits a lookalike host.

/** An allowed prefix, parsed once: scheme, user, host and port must be equal; the path must lie within. */
interface Prefix {
  text: string;
  url: URL;
  path: string;
}

export type ParsedUrl = { ok: true; url: URL } | { ok: false; problem: string };

const trimSlashes = (path: string) => path.replace(/\/+$/, '');

/** An http(s) base URL without query or fragment (the client appends /api/v1/query to it). */
export function parseBaseUrl(text: string): ParsedUrl {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return { ok: false, problem: 'is not a URL; write e.g. http://prometheus.monitoring:9090' };
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    return { ok: false, problem: `has scheme ${url.protocol.slice(0, -1)}; use http:// or https://` };
  if (url.search || url.hash || text.includes('?') || text.includes('#'))
    return { ok: false, problem: 'has a ?query or #fragment; give the base URL only' };
  return { ok: true, url };
}

export class PrometheusAllowlist {
  private readonly prefixes: Prefix[];

  /** `prefixes` must be valid base URLs (the CLI checks them with parseBaseUrl); others are ignored. */
  constructor(prefixes: readonly string[]) {
    this.prefixes = prefixes.flatMap((text) => {
      const parsed = parseBaseUrl(text);
      return parsed.ok ? [{ text, url: parsed.url, path: trimSlashes(parsed.url.pathname) }] : [];
    });
  }

  /** The prefixes as given, for logs. */
  get entries(): string[] {
    return this.prefixes.map((p) => p.text);
  }

  /**
   * Whether queries may go to `address`. Both sides are parsed as URLs, so case, default ports, dot
   * segments and trailing slashes do not matter, and `http://prom:9090` admits `http://prom:9090/x`
   * but never `http://prom:90901` or `http://prom:9090.evil.example`.
   */
  allows(address: string): boolean {
    const parsed = parseBaseUrl(address);
    if (!parsed.ok) return false;
    const a = parsed.url;
    const path = trimSlashes(a.pathname);
    return this.prefixes.some(
      ({ url: p, path: within }) =>
        a.protocol === p.protocol &&
        a.host === p.host &&
        a.username === p.username &&
        a.password === p.password &&
        (path === within || path.startsWith(`${within}/`)),
    );
  }
}
