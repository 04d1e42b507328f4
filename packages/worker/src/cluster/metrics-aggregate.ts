import { AggregatorRegistry } from 'prom-client';
import type { WorkerMetrics } from '../observability/metrics.js';
import type { MetricFamilies } from './protocol.js';

/** One metric family as getMetricsAsJSON gives it. */
type MetricFamily = object;

/**
 * The whole worker's /metrics: the primary's registry (loading, verification, trust, what
 * serves: gauges included, once) plus every serving child's counters and histograms
 * (decisions...), summed by series. A child that exited leaves its last reported counts
 * behind (`retire`), so the sums never go backwards when a child is replaced; what it counted
 * after its last report is lost with it.
 */
export class ClusterMetrics {
  readonly #primary: WorkerMetrics;
  #retired: MetricFamily[] = [];
  readonly #last = new Map<number, MetricFamily[]>();

  constructor(primary: WorkerMetrics) {
    this.#primary = primary;
  }

  /** A child's latest report. */
  report(childId: number, families: MetricFamilies): void {
    this.#last.set(childId, families as MetricFamily[]);
  }

  /** A child exited: its last report is kept in the sums. */
  async retire(childId: number): Promise<void> {
    const last = this.#last.get(childId);
    this.#last.delete(childId);
    if (!last) return;
    this.#retired = await AggregatorRegistry.aggregate([this.#retired, last]).getMetricsAsJSON();
  }

  /** The exposition text and its content type. */
  async text(): Promise<{ text: string; contentType: string }> {
    const own = await this.#primary.registry.getMetricsAsJSON();
    const registry = AggregatorRegistry.aggregate([own, this.#retired, ...this.#last.values()]);
    return { text: await registry.metrics(), contentType: this.#primary.registry.contentType };
  }
}
