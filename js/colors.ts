/** Colour scales for head scores: viridis (sampled at 9 stops and interpolated) over a domain clipped
 * at percentiles, so one outlier cannot turn the rest of the grid one colour, and always holding 0;
 * for a difference of two concepts' scores, a diverging purple-white-orange scale centred on 0. */
type Stops = [number, number, number][];

const VIRIDIS: Stops = [
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

/** ColorBrewer PuOr (9 classes, colour-blind safe), from purple (negative) through white (0) to orange. */
const PUOR: Stops = [
  [84, 39, 136],
  [128, 115, 172],
  [178, 171, 210],
  [216, 218, 235],
  [247, 247, 247],
  [254, 224, 182],
  [253, 184, 99],
  [224, 130, 20],
  [179, 88, 6],
];

/** `t` in [0, 1] (clamped) to an `rgb(...)` string, interpolating `stops`. */
function interpolate(stops: Stops, t: number): string {
  const x = Number.isFinite(t) ? Math.min(1, Math.max(0, t)) : 0;
  const pos = x * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(pos));
  const f = pos - i;
  const c = stops[i].map((v, k) => Math.round(v + f * (stops[i + 1][k] - v)));
  return `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
}

/** Viridis at `t` in [0, 1]: a concept's own scores. */
export function viridis(t: number): string {
  return interpolate(VIRIDIS, t);
}

/** PuOr at `t` in [0, 1] (0.5 is white): a difference of two concepts' scores. */
export function diverging(t: number): string {
  return interpolate(PUOR, t);
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

/** A scale symmetric about 0 for differences: from -m to m, m the larger magnitude of the `clip` and
 * `1 - clip` quantiles (so 0 sits mid-bar, white), [-1, 1] when every value is 0 or none is finite. */
export function symmetricScale(data: ArrayLike<number>, clip = 0.02): Scale {
  const [min, max] = finiteRange(data);
  const m = Math.max(Math.abs(quantile(data, clip)), Math.abs(quantile(data, 1 - clip)));
  const half = Number.isFinite(m) && m > 0 ? m : 1;
  return { lo: -half, hi: half, clippedLo: min < -half, clippedHi: max > half };
}

/** Position of `v` on `scale`, clamped to [0, 1] (viridis input). */
export function scalePosition(scale: Scale, v: number): number {
  return Math.min(1, Math.max(0, (v - scale.lo) / (scale.hi - scale.lo)));
}

/** CSS gradient for the legend bar: viridis, or the diverging scale when `diverge`. */
export function legendGradient(diverge = false): string {
  const stops = diverge ? PUOR : VIRIDIS;
  return `linear-gradient(to right, ${stops.map((_, i) => interpolate(stops, i / (stops.length - 1))).join(", ")})`;
}

/** Format a score for labels. */
export function fmt(v: number): string {
  if (!Number.isFinite(v)) return "n/a";
  return Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(3);
}
