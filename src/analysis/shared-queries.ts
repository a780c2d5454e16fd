// Identical queries asked within a short moment of one another share one request: Rollouts whose rendered
// query and Prometheus are the same (a shared template, a global error rate) ask once, and all get that answer.

/**
 * How far apart two evaluation times may be and still share one answer: well under any check interval
 * worth having and under a scrape interval, so a shared answer is the one either would have got.
 */
export const SHARE_WINDOW_MS = 1000;

export class SharedQueries<T> {
  /** Query → the last one sent; the Map's order is the order they were sent, so the oldest come first. */
  private readonly recent = new Map<string, { at: number; answer: Promise<T> }>();

  constructor(private readonly windowMs = SHARE_WINDOW_MS) {}

  /**
   * The answer of the same query evaluated within windowMs of `at` (still in flight or already in), or
   * else `send()`'s, which later askers share.
   */
  ask(query: string, at: number, send: () => Promise<T>): Promise<T> {
    this.sweep(at);
    const sent = this.recent.get(query);
    if (sent && Math.abs(at - sent.at) <= this.windowMs) return sent.answer;
    const answer = send();
    this.recent.delete(query); // set() again at the end keeps the Map in the order sent
    this.recent.set(query, { at, answer });
    return answer;
  }

  /** Queries kept for sharing now. */
  size(): number {
    return this.recent.size;
  }

  /** Answers too old to share go, so memory holds only one window's worth of queries. */
  private sweep(at: number): void {
    for (const [query, sent] of this.recent) {
      if (at - sent.at <= this.windowMs) return;
      this.recent.delete(query);
    }
  }
}
