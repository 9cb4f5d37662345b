/**
 * Small numeric helpers of the benchmark: a monotonic clock in milliseconds, nearest-rank percentiles
 * and a summary of a sample. Only the benchmark uses them; they never gate anything.
 */
import { performance } from 'node:perf_hooks';

/** Monotonic time in milliseconds (fractional). */
export function now(): number {
  return performance.now();
}

/** CLOCK_MONOTONIC in ms: one clock for every process of this host, so stamps compare across machines. */
export function hrNow(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** Nearest-rank percentile of an already sorted sample (q in [0, 1]). */
export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1]!;
}

/** What a latency sample is reduced to. */
export interface Summary {
  n: number;
  p50: number;
  p99: number;
  min: number;
  max: number;
  mean: number;
}

/** Summarizes a sample (any order). */
export function summarize(sample: readonly number[]): Summary {
  const sorted = [...sample].sort((a, b) => a - b);
  const sum = sorted.reduce((s, x) => s + x, 0);
  return {
    n: sorted.length,
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    min: sorted[0] ?? Number.NaN,
    max: sorted[sorted.length - 1] ?? Number.NaN,
    mean: sorted.length > 0 ? sum / sorted.length : Number.NaN,
  };
}

/** Median of a sample. */
export function median(sample: readonly number[]): number {
  return percentile([...sample].sort((a, b) => a - b), 0.5);
}

/** Milliseconds, with precision that suits their size. */
export function fmtMs(ms: number): string {
  if (!Number.isFinite(ms)) return '—';
  if (ms < 1) return `${ms.toFixed(3)} ms`;
  if (ms < 10) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${ms.toFixed(1)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

/** Bytes as B / KB / MB (binary units). */
export function fmtBytes(n: number): string {
  if (!Number.isFinite(n)) return '—';
  if (n < 1024) return `${Math.round(n)} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** A rate per second. */
export function fmtRate(perSecond: number, unit: string): string {
  if (!Number.isFinite(perSecond)) return '—';
  if (perSecond >= 10_000) return `${(perSecond / 1000).toFixed(1)}k ${unit}/s`;
  return `${perSecond.toFixed(perSecond < 100 ? 1 : 0)} ${unit}/s`;
}
