/** Colour scale for head scores: viridis (sampled at 9 stops and interpolated) over a domain clipped
 * at percentiles, so one outlier cannot turn the rest of the grid one colour, and always holding 0. */
const STOPS: [number, number, number][] = [
  [68, 1, 84],
  [71, 44, 122],
  [59, 81, 139],
  [44, 113, 142],
  [33, 144, 141],
  [39, 173, 129],
  [92, 200, 99],
  [170, 220, 50],
  [253, 231, 37],
];

/** `t` in [0, 1] (clamped) to an `rgb(...)` string. */
export function viridis(t: number): string {
  const x = Number.isFinite(t) ? Math.min(1, Math.max(0, t)) : 0;
  const pos = x * (STOPS.length - 1);
  const i = Math.min(STOPS.length - 2, Math.floor(pos));
  const f = pos - i;
  const c = STOPS[i].map((v, k) => Math.round(v + f * (STOPS[i + 1][k] - v)));
  return `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
}

/** Finite min and max of `data` (NaN and infinities ignored); [0, 0] when none. */
export function finiteRange(data: ArrayLike<number>): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (Number.isFinite(v)) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  return lo <= hi ? [lo, hi] : [0, 0];
}

/** The `p`-quantile (0..1, linear between order statistics) of the finite values of `data`; NaN if none. */
export function quantile(data: ArrayLike<number>, p: number): number {
  const xs = Array.from(data)
    .filter(Number.isFinite)
    .sort((a, b) => a - b);
  if (!xs.length) return Number.NaN;
  const pos = Math.min(1, Math.max(0, p)) * (xs.length - 1);
  const i = Math.floor(pos);
  return i + 1 < xs.length ? xs[i] + (pos - i) * (xs[i + 1] - xs[i]) : xs[i];
}

/** Where the colour scale starts and ends, and whether values beyond it were clipped. */
export interface Scale {
  lo: number;
  hi: number;
  /** Some finite value is below lo / above hi (shown at the end colour). */
  clippedLo: boolean;
  clippedHi: boolean;
}

/** The scale of `data`: from its `clip` to its `1 - clip` quantile, widened to hold 0 (so 0 can be
 * marked); [0, 1] when there are no finite values, and a unit span around a constant. */
export function robustScale(data: ArrayLike<number>, clip = 0.02): Scale {
  const [min, max] = finiteRange(data);
  let lo = Math.min(0, quantile(data, clip));
  let hi = Math.max(0, quantile(data, 1 - clip));
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) [lo, hi] = [0, 1];
  if (hi === lo) hi = lo + 1;
  return { lo, hi, clippedLo: min < lo, clippedHi: max > hi };
}

/** Position of `v` on `scale`, clamped to [0, 1] (viridis input). */
export function scalePosition(scale: Scale, v: number): number {
  return Math.min(1, Math.max(0, (v - scale.lo) / (scale.hi - scale.lo)));
}

/** CSS gradient for the legend bar. */
export function legendGradient(): string {
  return `linear-gradient(to right, ${STOPS.map((_, i) => viridis(i / (STOPS.length - 1))).join(", ")})`;
}

/** Format a score for labels. */
export function fmt(v: number): string {
  if (!Number.isFinite(v)) return "n/a";
  return Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(3);
}
