//! Change points in one series: rank-based binary segmentation.
//!
//! The series is rank-transformed once (one sort), with prefix sums of the ranks and their
//! squares, so the standardised two-sample rank statistic of any split of any interval costs
//! O(1). A segment is searched over its seeded intervals (the whole segment, halves, quarters, …
//! overlapping by half), which finds short-lived plateaus a whole-segment split misses; that is
//! O(n log n) per segment. A window scan (window lengths growing by ×1.4) looks for a brief
//! plateau above the rest of the segment; the interval from well before it to its end is one
//! more candidate, in which the plateau's start is a clean split. The best split is then refined within a few builds by minimising the
//! within-segment absolute deviation from each side's median (the L1 cost), which pins the change
//! to the exact first build more often than the rank statistic alone.
//!
//! Significance of the chosen split: the Mann-Whitney (Wilcoxon rank-sum) test's p-value within its
//! interval — exact (by counting partitions)
//! when the shorter side is small and nearly separated, where the normal approximation is far too
//! timid, and from statrs' standard normal otherwise — times the number of splits tried over all
//! intervals (Bonferroni). A split below `alpha` is kept and both sides are searched again.
//!
//! Everything here is rank- or median-based, so one spike moves a statistic by at most one rank.

use statrs::distribution::{ContinuousCDF, Normal};
use statrs::function::factorial::ln_binomial;

/// How hard to look.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// The fewest values on each side of a change point.
    pub min_segment: usize,
    /// Family-wise significance level for one split of one segment (after Bonferroni).
    pub alpha: f64,
    /// The most change points kept per series.
    pub max_changes: usize,
    /// How many positions either side of the rank statistic's best split the L1 refinement tries.
    pub refine: usize,
}

impl Default for Params {
    fn default() -> Params {
        Params {
            min_segment: 5,
            alpha: 0.001,
            max_changes: 8,
            refine: 3,
        }
    }
}

/// A change point: `index` is the first value after the change.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Change {
    pub index: usize,
    /// Standardised rank-sum statistic at the split (positive: values went up).
    pub z: f64,
    /// Bonferroni-adjusted p-value of the split within its segment.
    pub p_value: f64,
}

/// The change points of `x` (no NaNs), in increasing index order.
pub fn detect(x: &[f64], params: &Params) -> Vec<Change> {
    let scores = Scores::new(x);
    let mut found = Vec::new();
    let mut stack = vec![(0usize, x.len())];
    while let Some((lo, hi)) = stack.pop() {
        if found.len() >= params.max_changes {
            break;
        }
        let Some(split) = best_split_in(x, &scores, lo, hi, params) else {
            continue;
        };
        if split.p_value >= params.alpha {
            continue;
        }
        found.push(split);
        stack.push((lo, split.index));
        stack.push((split.index, hi));
    }
    found.sort_by_key(|c| c.index);
    found
}

/// The most significant split of the whole of `x`, if `x` is long enough and not constant.
pub fn best_split(x: &[f64], params: &Params) -> Option<Change> {
    best_split_in(x, &Scores::new(x), 0, x.len(), params)
}

/// The series' ranks as scores, with prefix sums of the scores and their squares, so that the
/// two-sample statistic of any split of any interval costs O(1).
struct Scores {
    sum: Vec<f64>,
    sum_sq: Vec<f64>,
}

impl Scores {
    fn new(x: &[f64]) -> Scores {
        let (r, _) = ranks(x);
        let mut sum = Vec::with_capacity(x.len() + 1);
        let mut sum_sq = Vec::with_capacity(x.len() + 1);
        let (mut s, mut q) = (0.0, 0.0);
        sum.push(0.0);
        sum_sq.push(0.0);
        for v in r {
            s += v;
            q += v * v;
            sum.push(s);
            sum_sq.push(q);
        }
        Scores { sum, sum_sq }
    }

    /// The best split of `[a, b)` (each side ≥ m) as (index, |z|), and how many splits were tried.
    fn best(&self, a: usize, b: usize, m: usize) -> (Option<(usize, f64)>, usize) {
        let len = (b - a) as f64;
        let total = self.sum[b] - self.sum[a];
        let ss = (self.sum_sq[b] - self.sum_sq[a]) - total * total / len;
        if ss <= 1e-9 || b - a < 2 * m {
            return (None, 0);
        }
        let mut best: Option<(usize, f64)> = None;
        for k in a + m..=b - m {
            let (n1, n2) = ((k - a) as f64, (b - k) as f64);
            let var = n1 * n2 / (len * (len - 1.0)) * ss;
            let z = ((self.sum[k] - self.sum[a]) - n1 * total / len).abs() / var.sqrt();
            if best.is_none_or(|(_, bz)| z > bz) {
                best = Some((k, z));
            }
        }
        (best, b - a - 2 * m + 1)
    }

    /// The window of `[lo, hi)` (at least `m` long, at least `m` values before it and one after)
    /// whose values stand highest above the rest, as (start, length), and how many were tried.
    /// Window lengths grow geometrically, so this is O(n log n).
    fn plateau(&self, lo: usize, hi: usize, m: usize) -> (Option<(usize, usize)>, usize) {
        let n = hi - lo;
        let total = self.sum[hi] - self.sum[lo];
        let nf = n as f64;
        let ss = (self.sum_sq[hi] - self.sum_sq[lo]) - total * total / nf;
        let (mut best, mut tried) = (None::<(usize, usize, f64)>, 0);
        if ss <= 1e-9 {
            return (None, 0);
        }
        let mut len = m as f64;
        while (len as usize) + m < n {
            let l = len as usize;
            for s in lo + m..hi - l {
                let inside = self.sum[s + l] - self.sum[s];
                let (n1, n2) = (l as f64, nf - l as f64);
                let var = n1 * n2 / (nf * (nf - 1.0)) * ss;
                let z = (inside - n1 * total / nf) / var.sqrt();
                tried += 1;
                if best.is_none_or(|(.., bz)| z > bz) {
                    best = Some((s, l, z));
                }
            }
            len = (len * 1.4).ceil();
        }
        (best.map(|(s, l, _)| (s, l)), tried)
    }
}

/// Seeded intervals of `[lo, hi)` (Kovács et al., "Seeded binary segmentation"): the whole
/// segment, then halves, quarters, ... each overlapping its neighbours by half, down to `2m`
/// values. A short-lived change (a plateau) stands out in an interval that fits it even when it
/// is invisible to a split of the whole segment. Their total length is O(n log n).
fn seeded_intervals(lo: usize, hi: usize, m: usize) -> Vec<(usize, usize)> {
    let n = hi - lo;
    let mut out = vec![(lo, hi)];
    let mut len = n as f64 / 2.0;
    while len >= (2 * m) as f64 {
        let l = len.ceil() as usize;
        let count = 2 * (n as f64 / len).ceil() as usize - 1;
        let step = (n - l) as f64 / (count - 1).max(1) as f64;
        for i in 0..count {
            let a = lo + (i as f64 * step).round() as usize;
            out.push((a, (a + l).min(hi)));
        }
        len /= 2.0;
    }
    out
}

/// The most significant split of `x[lo..hi]` over its seeded intervals.
fn best_split_in(
    x: &[f64],
    scores: &Scores,
    lo: usize,
    hi: usize,
    params: &Params,
) -> Option<Change> {
    let m = params.min_segment.max(1);
    if hi - lo < 2 * m {
        return None;
    }
    let mut tried = 0usize;
    let mut best: Option<(usize, usize, usize, f64)> = None;
    for (a, b) in seeded_intervals(lo, hi, m) {
        let (split, n) = scores.best(a, b, m);
        tried += n;
        if let Some((k, z)) = split {
            if best.is_none_or(|(.., bz)| z > bz) {
                best = Some((a, b, k, z));
            }
        }
    }
    // A brief plateau (up, then back) hides from splits of long intervals and is cut in two by
    // short ones; a window scan finds it, and the interval from well before it to its end then
    // has the up-change as a clean split.
    let plateau = scores.plateau(lo, hi, m);
    tried += plateau.1;
    let mut candidates: Vec<(usize, usize, usize)> =
        best.map(|(a, b, k, _)| (a, b, k)).into_iter().collect();
    if let Some((start, len)) = plateau.0 {
        let (a, b) = (start.saturating_sub(3 * len).max(lo), start + len);
        if let (Some((k, _)), _) = scores.best(a, b, m) {
            candidates.push((a, b, k));
        }
    }
    candidates
        .into_iter()
        .filter_map(|(a, b, k)| evaluate(x, a, b, k, m, params, tried))
        .min_by(|a, b| a.p_value.total_cmp(&b.p_value))
}

/// The split near `k` of `x[a..b]`, refined and tested with the interval's own ranks.
fn evaluate(
    x: &[f64],
    a: usize,
    b: usize,
    k: usize,
    m: usize,
    params: &Params,
    tried: usize,
) -> Option<Change> {
    let seg = &x[a..b];
    let k = refine(seg, k - a, m, params.refine);
    let (local, ties) = ranks(seg);
    let n = seg.len();
    let tie_term = ties / (n as f64 * (n as f64 - 1.0));
    let z = rank_sum_z(local[..k].iter().sum(), k, n, tie_term)?;
    let p = (split_p_value(&local, k, z) * tried as f64).min(1.0);
    Some(Change {
        index: a + k,
        z: -z, // high ranks before the split mean the values went down
        p_value: p,
    })
}

/// Standardised Mann-Whitney U of the first `k` of `n` values, from their rank sum.
fn rank_sum_z(rank_sum: f64, k: usize, n: usize, tie_term: f64) -> Option<f64> {
    let (n1, n2, nf) = (k as f64, (n - k) as f64, n as f64);
    let u = rank_sum - n1 * (n1 + 1.0) / 2.0;
    let var = n1 * n2 / 12.0 * ((nf + 1.0) - tie_term);
    (var > 0.0).then(|| (u - n1 * n2 / 2.0) / var.sqrt())
}

/// Two-sided p-value of the rank-sum test for the split at `k`.
fn split_p_value(ranks: &[f64], k: usize, z: f64) -> f64 {
    let n = ranks.len();
    // The shorter side and how far its U is from the most extreme value it could take.
    let (side, m): (&[f64], usize) = if k <= n - k {
        (&ranks[..k], k)
    } else {
        (&ranks[k..], n - k)
    };
    let rest = n - m;
    let u = side.iter().sum::<f64>() - (m * (m + 1)) as f64 / 2.0;
    let dist = u.min((m * rest) as f64 - u).max(0.0);
    if let Some(p) = exact_tail(dist, m, rest, n) {
        return (2.0 * p).min(1.0);
    }
    let normal = Normal::new(0.0, 1.0).expect("standard normal");
    (2.0 * normal.sf(z.abs())).min(1.0)
}

/// P(U ≤ u) exactly under the null for a group of `m` among `n` values, when that is cheap:
/// the number of partitions of at most `u` into at most `m` parts (each ≤ `rest`) over C(n, m).
fn exact_tail(u: f64, m: usize, rest: usize, n: usize) -> Option<f64> {
    const MAX_M: usize = 40;
    const MAX_U: usize = 600;
    let u = u.floor() as usize;
    if m > MAX_M || u > MAX_U || u > rest {
        return None;
    }
    // ways[s]: partitions of s into parts no larger than m (= into at most m parts, by conjugation).
    let mut ways = vec![0.0f64; u + 1];
    ways[0] = 1.0;
    for part in 1..=m {
        for s in part..=u {
            ways[s] += ways[s - part];
        }
    }
    let count: f64 = ways.iter().sum();
    Some(
        (count.ln() - ln_binomial(n as u64, m as u64))
            .exp()
            .min(1.0),
    )
}

/// Moves `k` within `±radius` to the split with the least total absolute deviation from each
/// side's median.
fn refine(x: &[f64], k: usize, m: usize, radius: usize) -> usize {
    let lo = k.saturating_sub(radius).max(m);
    let hi = (k + radius).min(x.len() - m);
    let mut best = (k, l1_cost(x, k));
    for j in lo..=hi {
        let c = l1_cost(x, j);
        if c < best.1 - 1e-12 * best.1.abs() {
            best = (j, c);
        }
    }
    best.0
}

fn l1_cost(x: &[f64], k: usize) -> f64 {
    let dev = |s: &[f64]| {
        let med = median(s);
        s.iter().map(|v| (v - med).abs()).sum::<f64>()
    };
    dev(&x[..k]) + dev(&x[k..])
}

/// Average ranks (1-based) and the tie correction Σ(t³ − t) over groups of equal values.
pub fn ranks(x: &[f64]) -> (Vec<f64>, f64) {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_unstable_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut ranks = vec![0.0; x.len()];
    let mut ties = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i + 1;
        while j < order.len() && x[order[j]] == x[order[i]] {
            j += 1;
        }
        let avg = (i + j + 1) as f64 / 2.0;
        for &o in &order[i..j] {
            ranks[o] = avg;
        }
        let t = (j - i) as f64;
        ties += t * t * t - t;
        i = j;
    }
    (ranks, ties)
}

/// The median (mean of the two middle values for an even count); NaN for an empty slice.
pub fn median(x: &[f64]) -> f64 {
    if x.is_empty() {
        return f64::NAN;
    }
    let mut v = x.to_vec();
    let mid = v.len() / 2;
    let (_, upper, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    let upper = *upper;
    if x.len() % 2 == 1 {
        upper
    } else {
        let lower = v[..mid].iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lower + upper) / 2.0
    }
}

/// Segment medians and lengths between change points of `x`.
pub(super) struct Segments {
    /// Start index of each segment (the first is 0).
    pub(super) starts: Vec<usize>,
    pub(super) medians: Vec<f64>,
}

impl Segments {
    pub(super) fn new(x: &[f64], changes: &[Change]) -> Segments {
        let starts: Vec<usize> = std::iter::once(0)
            .chain(changes.iter().map(|c| c.index))
            .collect();
        let medians = (0..starts.len())
            .map(|s| median(&x[starts[s]..Segments::end(&starts, s, x.len())]))
            .collect();
        Segments { starts, medians }
    }
    fn end(starts: &[usize], s: usize, n: usize) -> usize {
        starts.get(s + 1).copied().unwrap_or(n)
    }
    /// The indexes of segment `s` in a series of `n` values.
    pub(super) fn range(&self, s: usize, n: usize) -> std::ops::Range<usize> {
        self.starts[s]..Segments::end(&self.starts, s, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic noisy series: `base` with ±`noise` relative wiggle and optional steps.
    fn series(
        n: usize,
        base: f64,
        noise: f64,
        steps: &[(usize, f64)],
        spikes: &[usize],
    ) -> Vec<f64> {
        let mut state = 0x9e3779b97f4a7c15u64;
        (0..n)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let u = (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
                let level: f64 = steps
                    .iter()
                    .filter(|(at, _)| i >= *at)
                    .map(|(_, f)| *f)
                    .product();
                let spike = if spikes.contains(&i) { 20.0 } else { 1.0 };
                base * level * (1.0 + 2.0 * noise * u) * spike
            })
            .collect()
    }

    #[test]
    fn finds_steps_at_the_right_index_and_ignores_spikes_and_noise() {
        let p = Params::default();
        let cases: &[(&str, Vec<f64>, Vec<usize>)] = &[
            (
                "step up",
                series(100, 2.0, 0.1, &[(60, 1.4)], &[]),
                vec![60],
            ),
            (
                "step down",
                series(100, 2.0, 0.1, &[(30, 0.6)], &[]),
                vec![30],
            ),
            (
                "step near end",
                series(100, 2.0, 0.05, &[(94, 1.5)], &[]),
                vec![94],
            ),
            (
                "up then back",
                series(120, 1.0, 0.1, &[(40, 1.5), (70, 1.0 / 1.5)], &[]),
                vec![40, 70],
            ),
            (
                "brief plateau in a long series",
                series(200, 1.0, 0.2, &[(120, 1.8), (130, 1.0 / 1.8)], &[]),
                vec![120, 130],
            ),
            (
                "step with spikes",
                series(100, 2.0, 0.1, &[(50, 1.4)], &[10, 55, 80]),
                vec![50],
            ),
            ("single spike", series(100, 2.0, 0.1, &[], &[42]), vec![]),
            (
                "many spikes",
                series(100, 2.0, 0.1, &[], &[5, 30, 31, 70, 90]),
                vec![],
            ),
            ("noise", series(300, 2.0, 0.2, &[], &[]), vec![]),
            ("constant", vec![1.0; 50], vec![]),
            ("too short", vec![1.0, 9.0, 1.0], vec![]),
        ];
        for (name, x, want) in cases {
            let got: Vec<usize> = detect(x, &p).iter().map(|c| c.index).collect();
            assert_eq!(&got, want, "{name}");
        }
    }

    #[test]
    fn direction_and_significance() {
        let up = detect(&series(80, 1.0, 0.1, &[(40, 1.5)], &[]), &Params::default());
        assert!(up[0].z > 0.0 && up[0].p_value < 1e-6, "{up:?}");
        let down = detect(&series(80, 1.0, 0.1, &[(40, 0.5)], &[]), &Params::default());
        assert!(down[0].z < 0.0, "{down:?}");
    }

    #[test]
    fn exact_tail_matches_counting() {
        // m = 2 of n = 5: U takes 0..=6; P(U <= 1) = 2 / C(5,2) = 0.2.
        let p = exact_tail(1.0, 2, 3, 5).unwrap();
        assert!((p - 0.2).abs() < 1e-12, "{p}");
        assert_eq!(exact_tail(0.0, 5, 95, 100).map(|p| p > 0.0), Some(true));
    }

    #[test]
    fn ranks_and_medians() {
        let (r, ties) = ranks(&[3.0, 1.0, 3.0, 2.0]);
        assert_eq!(r, vec![3.5, 1.0, 3.5, 2.0]);
        assert_eq!(ties, 6.0);
        assert_eq!(median(&[5.0, 1.0, 3.0]), 3.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
