//! A small histogram of `u64` values in logarithmic buckets, standing in for crates.io's
//! `base2histogram` 0.2 inside openraft (through `[patch.crates-io]` in the workspace
//! manifest).
//!
//! Why our own: openraft keeps its runtime statistics (batch sizes, stage latencies) in
//! `base2histogram` histograms, and that crate builds, on first use, the lookup tables of
//! all sixteen bucket widths it supports in one process-wide static: 26.5 MB of resident
//! memory in every controller, of which openraft uses the 2 KB of width 3. A controller is
//! meant to stay under 40 MB. This crate provides the part of the API openraft uses, with
//! the same bucketing openraft gets by default (four buckets per power of two, so a value
//! is reported at most 25% below itself), and computes bucket indices with a few
//! instructions instead of tables.
//!
//! ```text
//! value ─► bucket: values 0..4 get one bucket each; from 4 on, each power of two
//!          [2^k, 2^(k+1)) is cut into 4 equal buckets ─► 252 buckets for all of u64
//! percentile(q) ─► walk counts to the rank ceil(q × samples) ─► that bucket's lowest value
//! ```

use std::fmt;
use std::fmt::Write as _;
use std::marker::PhantomData;

/// Buckets per power of two (the "width 3" of the original: 1 + 2 bits).
const SUB_BUCKETS: u64 = 4;
const SUB_BITS: u32 = 2;
/// 4 single-value buckets for 0..4, then 4 per power of two for 2^2 ..= 2^63.
const BUCKETS: usize = (SUB_BUCKETS + (64 - SUB_BITS as u64) * SUB_BUCKETS) as usize;

/// The bucket `value` falls in.
fn bucket_of(value: u64) -> usize {
    if value < SUB_BUCKETS {
        return value as usize;
    }
    let msb = 63 - value.leading_zeros();
    let shift = msb - SUB_BITS;
    let offset = (value >> shift) & (SUB_BUCKETS - 1);
    (SUB_BUCKETS + u64::from(shift) * SUB_BUCKETS + offset) as usize
}

/// The lowest value of bucket `index`.
fn bucket_floor(index: usize) -> u64 {
    let index = index as u64;
    if index < SUB_BUCKETS {
        return index;
    }
    let shift = (index - SUB_BUCKETS) / SUB_BUCKETS;
    let offset = (index - SUB_BUCKETS) % SUB_BUCKETS;
    (SUB_BUCKETS + offset) << shift
}

/// Counts of recorded values per logarithmic bucket. `T` is the label type of the
/// original's slots; this histogram has one slot and keeps it only for the signature.
pub struct Histogram<T = ()> {
    /// Allocated on the first record: most of openraft's histograms stay empty.
    counts: Vec<u64>,
    samples: u64,
    _label: PhantomData<fn() -> T>,
}

impl<T> Histogram<T> {
    /// An empty histogram.
    pub fn new() -> Self {
        Self {
            counts: Vec::new(),
            samples: 0,
            _label: PhantomData,
        }
    }

    /// Records one `value`.
    pub fn record(&mut self, value: u64) {
        self.record_n(value, 1);
    }

    /// Records `value` `n` times.
    pub fn record_n(&mut self, value: u64, n: u64) {
        if n == 0 {
            return;
        }
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS];
        }
        let bucket = &mut self.counts[bucket_of(value)];
        *bucket = bucket.saturating_add(n);
        self.samples = self.samples.saturating_add(n);
    }

    /// How many values were recorded.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// The value at quantile `q` (0.0 to 1.0): the lowest value of the bucket holding the
    /// sample of that rank; 0 when empty.
    pub fn percentile(&self, q: f64) -> u64 {
        if self.samples == 0 {
            return 0;
        }
        let q = if q.is_nan() { 0.0 } else { q.clamp(0.0, 1.0) };
        // The rank of the sample, 1-based; at least the first.
        let rank = ((q * self.samples as f64).ceil() as u64).clamp(1, self.samples);
        let mut seen = 0u64;
        for (index, count) in self.counts.iter().enumerate() {
            seen = seen.saturating_add(*count);
            if seen >= rank {
                return bucket_floor(index);
            }
        }
        // Unreachable while counts sum to `samples`; the top bucket otherwise.
        bucket_floor(BUCKETS - 1)
    }

    /// The percentiles openraft reports.
    pub fn percentile_stats(&self) -> PercentileStats {
        PercentileStats {
            samples: self.samples,
            p0_1: self.percentile(0.001),
            p1: self.percentile(0.01),
            p5: self.percentile(0.05),
            p10: self.percentile(0.10),
            p50: self.percentile(0.50),
            p90: self.percentile(0.90),
            p99: self.percentile(0.99),
            p99_9: self.percentile(0.999),
        }
    }

    /// Non-empty buckets as (lowest value, count), in value order.
    fn buckets(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, count)| **count > 0)
            .map(|(index, count)| (bucket_floor(index), *count))
    }
}

impl<T> Default for Histogram<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Clone for Histogram<T> {
    fn clone(&self) -> Self {
        Self {
            counts: self.counts.clone(),
            samples: self.samples,
            _label: PhantomData,
        }
    }
}

impl<T> PartialEq for Histogram<T> {
    fn eq(&self, other: &Self) -> bool {
        self.samples == other.samples && self.buckets().eq(other.buckets())
    }
}

impl<T> Eq for Histogram<T> {}

impl<T> fmt::Debug for Histogram<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Histogram")
            .field("samples", &self.samples)
            .field("buckets", &self.buckets().collect::<Vec<_>>())
            .finish()
    }
}

/// Percentiles of a histogram, as openraft prints them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PercentileStats {
    pub samples: u64,
    pub p0_1: u64,
    pub p1: u64,
    pub p5: u64,
    pub p10: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p99_9: u64,
}

impl fmt::Display for PercentileStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[samples: {}, P0.1: {}, P1: {}, P5: {}, P10: {}, P50: {}, P90: {}, P99: {}, P99.9: {}]",
            self.samples,
            self.p0_1,
            self.p1,
            self.p5,
            self.p10,
            self.p50,
            self.p90,
            self.p99,
            self.p99_9
        )
    }
}

/// Named histograms drawn one after the other as rows of bars.
#[derive(Debug, Clone, Default)]
pub struct AsciiChart {
    series: Vec<(String, Histogram)>,
}

/// The widest bar, in characters.
const BAR: u64 = 40;

impl AsciiChart {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a histogram under `name`.
    pub fn add(mut self, name: &str, histogram: Histogram) -> Self {
        self.series.push((name.to_owned(), histogram));
        self
    }

    /// One block per histogram: each non-empty bucket's lowest value, count and a bar
    /// scaled to the largest count of that histogram.
    pub fn detailed(&self) -> String {
        let mut out = String::new();
        for (name, histogram) in &self.series {
            let _ = writeln!(out, "{name} ({} samples)", histogram.samples());
            let largest = histogram.buckets().map(|(_, c)| c).max().unwrap_or(0);
            for (floor, count) in histogram.buckets() {
                let width = (count.saturating_mul(BAR) / largest.max(1)).max(1) as usize;
                let _ = writeln!(out, "  {floor:>12} {count:>10} {}", "#".repeat(width));
            }
        }
        out
    }
}

impl fmt::Display for AsciiChart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detailed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_u64_in_order_and_floors_invert_them() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(3), 3);
        assert_eq!(bucket_of(4), 4);
        assert_eq!(bucket_of(7), 7);
        assert_eq!(bucket_of(8), 8);
        assert_eq!(bucket_of(9), 8);
        assert_eq!(bucket_of(10), 9);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        for index in 0..BUCKETS {
            assert_eq!(bucket_of(bucket_floor(index)), index, "bucket {index}");
            if index + 1 < BUCKETS {
                let next = bucket_floor(index + 1);
                assert!(next > bucket_floor(index));
                assert_eq!(bucket_of(next - 1), index, "top of bucket {index}");
            }
        }
    }

    #[test]
    fn a_value_is_reported_at_most_a_quarter_below_itself() {
        for value in [1u64, 5, 17, 100, 999, 12_345, 1 << 40, u64::MAX] {
            let floor = bucket_floor(bucket_of(value));
            assert!(floor <= value);
            assert!(value - floor <= value / 4, "{value} -> {floor}");
        }
    }

    #[test]
    fn percentiles_follow_the_recorded_values() {
        let mut h = Histogram::<()>::new();
        assert_eq!(h.percentile_stats(), PercentileStats::default());
        for value in 1..=1000u64 {
            h.record(value);
        }
        let stats = h.percentile_stats();
        assert_eq!(stats.samples, 1000);
        assert_eq!(stats.p0_1, 1);
        assert!((384..=500).contains(&stats.p50), "{stats}");
        assert!((768..=990).contains(&stats.p99), "{stats}");
        assert!(stats.p10 <= stats.p50 && stats.p50 <= stats.p90 && stats.p90 <= stats.p99_9);
        assert_eq!(h.percentile(f64::NAN), 1);
        assert_eq!(h.percentile(7.0), h.percentile(1.0));
    }

    #[test]
    fn record_n_saturates_and_counts_equal_histograms_equal() {
        let mut a = Histogram::<()>::new();
        let mut b = Histogram::<()>::default();
        a.record_n(10, 3);
        a.record_n(10, 0);
        for _ in 0..3 {
            b.record(10);
        }
        assert_eq!(a, b);
        a.record_n(u64::MAX, u64::MAX);
        assert_eq!(a.samples(), u64::MAX);
        assert_eq!(a.percentile(1.0), bucket_floor(BUCKETS - 1));
        assert_ne!(a, b);
    }

    #[test]
    fn the_chart_draws_every_series() {
        let mut h = Histogram::new();
        h.record_n(3, 5);
        h.record(100);
        let text = AsciiChart::new()
            .add("one", h.clone())
            .add("empty", Histogram::new())
            .detailed();
        assert!(text.contains("one (6 samples)"), "{text}");
        assert!(text.contains("empty (0 samples)"), "{text}");
        assert_eq!(text.lines().count(), 4, "{text}");
    }
}
