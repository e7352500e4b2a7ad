//! Latency recording for `pykv-bench`: a fixed-size log-linear histogram of nanoseconds and
//! its percentiles. Numbers only: no clock, no I/O.

/// Latencies in nanoseconds, log-linear like HdrHistogram: exact below 128 ns, then 64 buckets
/// per power of two (at most 1.6 % wide), so memory is fixed however long the run.
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

const SUB_BUCKETS: u64 = 64;

impl Histogram {
    pub fn new() -> Histogram {
        Histogram {
            counts: vec![0; Histogram::index(u64::MAX) + 1],
            total: 0,
            max: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < 2 * SUB_BUCKETS {
            return v as usize;
        }
        let shift = 63 - v.leading_zeros() - SUB_BUCKETS.trailing_zeros();
        (shift as u64 * SUB_BUCKETS + (v >> shift)) as usize
    }

    /// The highest value that falls in bucket `i`.
    fn upper(i: usize) -> u64 {
        let i = i as u64;
        if i < 2 * SUB_BUCKETS {
            return i;
        }
        let shift = i / SUB_BUCKETS - 1;
        let mantissa = i % SUB_BUCKETS + SUB_BUCKETS;
        ((mantissa + 1) << shift) - 1
    }

    pub fn record(&mut self, nanos: u64) {
        self.counts[Histogram::index(nanos)] += 1;
        self.total += 1;
        self.max = self.max.max(nanos);
    }

    /// The largest latency recorded.
    pub fn max(&self) -> u64 {
        self.max
    }

    pub fn percentile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Histogram::upper(i).min(self.max);
            }
        }
        self.max
    }
}
