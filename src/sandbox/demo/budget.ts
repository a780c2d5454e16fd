// The demo's time limit, which stops while a person holds the rollout: pausing it with kubectl to look
// around is part of the demo, not a hang.

/**
 * Calls giveUp once `limitMs` of running has passed, not counting time while `held()` is true.
 * Time is counted in ticks of `tickMs`. Returns a function that stops the count.
 */
export function giveUpAfter(
  limitMs: number,
  held: () => boolean,
  giveUp: () => void,
  tickMs = 250,
): () => void {
  let used = 0;
  let last = Date.now();
  const timer = setInterval(() => {
    const now = Date.now();
    if (!held()) used += now - last;
    last = now;
    if (used >= limitMs) {
      clearInterval(timer);
      giveUp();
    }
  }, tickMs);
  return () => clearInterval(timer);
}
