// Smooth weighted round-robin (nginx's upstream algorithm): picks backends in proportion to their weights.
// Deterministic, so over any run of `total weight` picks every backend gets exactly its share, well spread.
export interface WeightedChoice<T> {
  value: T;
  /** Any non-negative number (v1alpha1 quantities such as 0.9 work as well as 90); 0 is never picked. */
  weight: number;
}

export class WeightedPicker<T> {
  private readonly choices: WeightedChoice<T>[];
  private readonly current: number[];
  private readonly total: number;

  constructor(choices: readonly WeightedChoice<T>[]) {
    this.choices = choices.filter((c) => Number.isFinite(c.weight) && c.weight > 0);
    this.current = this.choices.map(() => 0);
    this.total = this.choices.reduce((sum, c) => sum + c.weight, 0);
  }

  /** Undefined when no choice has a positive weight. */
  pick(): T | undefined {
    let best = -1;
    for (let i = 0; i < this.choices.length; i++) {
      this.current[i]! += this.choices[i]!.weight;
      if (best < 0 || this.current[i]! > this.current[best]!) best = i;
    }
    if (best < 0) return undefined;
    this.current[best]! -= this.total;
    return this.choices[best]!.value;
  }
}
