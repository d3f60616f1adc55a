import type { Metric, Registry } from 'prom-client';

type Labels = Record<string, string>;

/** A sample as prom-client's Registry formats it (its own type is not exported). */
interface SampleValue {
  metricName?: string;
  labels: Labels;
  value: number;
}

/** One label combination: its count, sum, and (non-cumulative) bucket counts. */
class Series {
  count = 0;
  sum = 0;
  readonly buckets: number[];

  constructor(
    readonly labels: Labels,
    bucketCount: number,
  ) {
    this.buckets = new Array<number>(bucketCount + 1).fill(0);
  }
}

export interface RequestInstrumentsOptions {
  /** The counter, ending in `_total`. */
  counter: { name: string; help: string };
  /** The latency histogram, ending in `_seconds`. */
  histogram: { name: string; help: string };
  /** Upper bounds, ascending; `+Inf` is implied. */
  buckets: readonly number[];
}

/**
 * A request counter and a latency histogram over the same labels, recorded with one
 * lookup. prom-client hashes the label object on every `inc`/`observe` (≈1.6 µs for the
 * pair); requests are the hottest instrument, so this keeps plain numbers per label
 * combination, found through two map lookups, and formats them only when scraped.
 */
export class RequestInstruments {
  private readonly series = new Map<string, Map<string, Series>>();

  constructor(
    registry: Registry,
    private readonly options: RequestInstrumentsOptions,
  ) {
    registry.registerMetric(this.metric(options.counter.name, options.counter.help, 'counter'));
    registry.registerMetric(
      this.metric(options.histogram.name, options.histogram.help, 'histogram'),
    );
  }

  /**
   * Counts one request under (`outer`, `inner`) and observes its duration. `labels` is
   * called only the first time that combination is seen.
   */
  record(outer: string, inner: string, seconds: number, labels: () => Labels): void {
    let byInner = this.series.get(outer);
    if (byInner === undefined) {
      byInner = new Map();
      this.series.set(outer, byInner);
    }
    let series = byInner.get(inner);
    if (series === undefined) {
      series = new Series(labels(), this.options.buckets.length);
      byInner.set(inner, series);
    }
    series.count++;
    series.sum += seconds;
    const bounds = this.options.buckets;
    let i = 0;
    while (i < bounds.length && seconds > (bounds[i] as number)) i++;
    (series.buckets[i] as number)++;
  }

  private all(): Series[] {
    return [...this.series.values()].flatMap((byInner) => [...byInner.values()]);
  }

  private counterValues(): SampleValue[] {
    return this.all().map((s) => ({ labels: s.labels, value: s.count }));
  }

  private histogramValues(name: string): SampleValue[] {
    const values: SampleValue[] = [];
    const bounds = this.options.buckets;
    for (const s of this.all()) {
      let cumulative = 0;
      for (let i = 0; i <= bounds.length; i++) {
        cumulative += s.buckets[i] as number;
        const le = i < bounds.length ? String(bounds[i]) : '+Inf';
        values.push({
          metricName: `${name}_bucket`,
          labels: { ...s.labels, le },
          value: cumulative,
        });
      }
      values.push({ metricName: `${name}_sum`, labels: s.labels, value: s.sum });
      values.push({ metricName: `${name}_count`, labels: s.labels, value: s.count });
    }
    return values;
  }

  /** The shape prom-client's Registry reads when it formats or merges metrics. */
  private metric(name: string, help: string, type: 'counter' | 'histogram'): Metric {
    const get = async () => ({
      name,
      help,
      type,
      aggregator: 'sum',
      values: type === 'counter' ? this.counterValues() : this.histogramValues(name),
    });
    const reset = () => this.series.clear();
    return { name, help, type, get, reset } as unknown as Metric;
  }
}
