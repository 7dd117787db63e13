//! Memory: what is available (host and cgroup), sizes as users write them, and the model that
//! learns how much memory a job needs from its input's weight.
//!
//! The only user of sysinfo. It never kills processes or reaches into the pool: `exec/admit.rs`
//! turns these numbers into admissions. The cgroup limits come from the platform layer
//! (`os::MemoryCap`: cgroups v1 and v2 on Linux, none on macOS).

use sysinfo::{MemoryRefreshKind, RefreshKind, System};

use crate::os::MemoryCap;

const MIB: u64 = 1 << 20;

/// A memory amount given on the command line: bytes or a share of what is available.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Amount {
    Bytes(u64),
    Percent(f64),
}

/// Parses `600M`, `12G`, `1.5GiB`, `2048` (bytes) with K, M, G, T as powers of 1024, or
/// `60%` when `percent` is allowed.
pub(crate) fn parse_amount(s: &str, percent: bool) -> Result<Amount, String> {
    let s = s.trim();
    if let Some(p) = s.strip_suffix('%') {
        if !percent {
            return Err(format!("'{s}': a percentage is not allowed here"));
        }
        return match p.trim().parse::<f64>() {
            Ok(v) if v > 0.0 && v <= 100.0 => Ok(Amount::Percent(v)),
            _ => Err(format!("'{s}' is not a percentage between 0 and 100")),
        };
    }
    let cfg = parse_size::Config::new().with_binary();
    match cfg.parse_size(s) {
        Ok(0) => Err(format!("'{s}' must be more than zero")),
        Ok(b) => Ok(Amount::Bytes(b)),
        Err(e) => Err(format!("'{s}' is not a size ({e}); try 600M, 12G or 2GiB")),
    }
}

/// Memory as fanout sees it when it starts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Snapshot {
    /// min(MemAvailable, the cgroup's limit − its usage), bytes.
    pub available: u64,
    /// min(host total, the cgroup's limit), bytes.
    pub total: u64,
    /// The tightest memory limit of fanout's cgroup and its ancestors, if any.
    pub cgroup_limit: Option<u64>,
}

/// Reads host and cgroup memory now.
pub(crate) struct Meter {
    sys: System,
    cap: MemoryCap,
}

impl Meter {
    pub(crate) fn new() -> Meter {
        let sys = System::new_with_specifics(
            RefreshKind::nothing().with_memory(MemoryRefreshKind::nothing().with_ram()),
        );
        Meter {
            sys,
            cap: MemoryCap::discover(),
        }
    }

    pub(crate) fn snapshot(&mut self) -> Snapshot {
        self.sys
            .refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        let mut available = self.sys.available_memory();
        let mut total = self.sys.total_memory();
        let cap = self.cap.read();
        if let Some(cap) = cap {
            total = total.min(cap.limit);
            available = available.min(cap.headroom);
        }
        Snapshot {
            available,
            total,
            cgroup_limit: cap.map(|c| c.limit),
        }
    }
}

/// The budget and reserve of a run: `--mem-limit` (default: all the memory available when the
/// run starts) and `--mem-reserve` (default 5% of memory, at most 1 GiB), which admission and
/// the safety net keep free of the real limit.
pub(crate) fn plan(limit: Option<Amount>, reserve: Option<u64>, snap: &Snapshot) -> (u64, u64) {
    let budget = match limit {
        Some(Amount::Bytes(b)) => b,
        Some(Amount::Percent(p)) => (snap.available as f64 * p / 100.0) as u64,
        None => snap.available,
    };
    let reserve = reserve.unwrap_or((snap.total / 20).min(1 << 30));
    (budget.max(1), reserve)
}

/// Learns peak memory = base + k × weight from finished jobs, erring on the safe side, and
/// meanwhile from running jobs that have held their memory steady (provisional points, each
/// replaced by the job's whole peak when it ends).
#[derive(Debug, Clone, Default)]
pub(crate) struct Model {
    points: Vec<(f64, f64)>,
    /// (key, (weight, peak so far)) of running jobs whose memory has stopped growing.
    provisional: Vec<(usize, (f64, f64))>,
    /// measured peak ÷ prediction (without margin) of recent jobs that were predicted.
    errors: Vec<f64>,
    /// (key, peak so far ÷ prediction) of such running jobs that were predicted.
    provisional_errors: Vec<(usize, f64)>,
}

/// A multiplier before anything can be fitted: the heaviest common whole-file transform
/// measured (pyarrow sort) needs about 2.9 × the decoded size.
const PRIOR_K: f64 = 3.0;
/// Head-room on every prediction until enough prediction errors have been seen.
const FIRST_MARGIN: f64 = 0.15;
/// The least head-room once errors are known, and the most.
const MIN_MARGIN: f64 = 0.03;
const MAX_MARGIN: f64 = 0.5;
/// Errors needed before the margin is learned from them.
const ERRORS_TO_LEARN: usize = 4;
/// The share of predictions the learned margin covers: rarer misses are the safety net's.
const MARGIN_QUANTILE: f64 = 0.9;
/// At most one observation in this many may lie above the fitted line, and only if it is a
/// gross outlier: above this factor × the line.
const OUTLIER_SHARE: usize = 20;
const OUTLIER_FACTOR: f64 = 1.5;
/// One such outlier is allowed from this many observations on (fewer cannot tell it apart).
const OUTLIER_MIN_OBSERVATIONS: usize = 8;
/// How many recent observations the fit uses.
const WINDOW: usize = 256;
/// How many recent prediction errors the margin uses.
const ERROR_WINDOW: usize = 64;

/// A fitted model, for the summary.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub(crate) struct Fit {
    pub base_bytes: u64,
    pub bytes_per_weight_byte: f64,
    pub observations: usize,
}

impl Model {
    pub(crate) fn observe(&mut self, weight: u64, peak: u64) {
        if peak == 0 {
            return;
        }
        if self.points.len() == WINDOW {
            self.points.remove(0);
        }
        self.points.push((weight as f64, peak as f64));
    }

    /// Running job `key` has held `peak` for a while: learn from it until it ends (`settle`).
    pub(crate) fn observe_running(&mut self, key: usize, weight: u64, peak: u64) {
        if peak == 0 {
            return;
        }
        let point = (key, (weight as f64, peak as f64));
        match self.provisional.iter_mut().find(|p| p.0 == key) {
            Some(p) => *p = point,
            None => self.provisional.push(point),
        }
    }

    /// Running job `key`, predicted to need `predicted`, has held `peak` for a while.
    pub(crate) fn observe_running_error(&mut self, key: usize, predicted: u64, peak: u64) {
        if predicted == 0 || peak == 0 {
            return;
        }
        let error = (key, peak as f64 / predicted as f64);
        match self.provisional_errors.iter_mut().find(|e| e.0 == key) {
            Some(e) => *e = error,
            None => self.provisional_errors.push(error),
        }
    }

    /// Running job `key` ended: its provisional point and error go (its whole peak is
    /// `observe`d).
    pub(crate) fn settle(&mut self, key: usize) {
        self.provisional.retain(|p| p.0 != key);
        self.provisional_errors.retain(|e| e.0 != key);
    }

    /// Every point the fit uses: finished jobs', then running jobs' provisional ones.
    fn all(&self) -> impl Iterator<Item = (f64, f64)> + Clone + '_ {
        self.points
            .iter()
            .copied()
            .chain(self.provisional.iter().map(|p| p.1))
    }

    /// A job predicted to need `predicted` (without margin) peaked at `peak`.
    pub(crate) fn observe_error(&mut self, predicted: u64, peak: u64) {
        if predicted == 0 || peak == 0 {
            return;
        }
        if self.errors.len() == ERROR_WINDOW {
            self.errors.remove(0);
        }
        self.errors.push(peak as f64 / predicted as f64);
    }

    /// The head-room added to predictions: the 90th percentile of how far recent jobs went
    /// above their prediction (running jobs whose memory holds steady included), between 3%
    /// and 50%; 15% until four jobs have been predicted.
    pub(crate) fn margin(&self) -> f64 {
        if self.errors.len() + self.provisional_errors.len() < ERRORS_TO_LEARN {
            return FIRST_MARGIN;
        }
        let mut e = self.errors.clone();
        e.extend(self.provisional_errors.iter().map(|e| e.1));
        e.sort_by(f64::total_cmp);
        let i = ((e.len() - 1) as f64 * MARGIN_QUANTILE).round() as usize;
        (e[i] - 1.0).clamp(MIN_MARGIN, MAX_MARGIN)
    }

    /// Jobs learned from: finished, and running with their memory steady.
    pub(crate) fn observations(&self) -> usize {
        self.points.len() + self.provisional.len()
    }

    /// base and k such that every observation lies on or under the line.
    pub(crate) fn fit(&self) -> Option<Fit> {
        let n = self.observations();
        if n == 0 {
            return None;
        }
        let k = if self.spread() {
            // Least squares for the slope, never below zero...
            let mw = self.all().map(|p| p.0).sum::<f64>() / n as f64;
            let mp = self.all().map(|p| p.1).sum::<f64>() / n as f64;
            let cov: f64 = self.all().map(|(w, p)| (w - mw) * (p - mp)).sum();
            let var: f64 = self.all().map(|(w, _)| (w - mw) * (w - mw)).sum();
            (cov / var).max(0.0)
        } else {
            // ...or, with one size of input seen, the prior for larger inputs.
            PRIOR_K
        };
        let k = (k * 1000.0).round() / 1000.0;
        // ...and the base raised until no observation lies above the line, but for rare gross
        // outliers (a job far above what its input predicts is the safety net's to catch:
        // raising every prediction for it would waste memory on every other job).
        let mut residuals: Vec<f64> = self.all().map(|(w, p)| p - k * w).collect();
        residuals.sort_by(|a, b| b.total_cmp(a));
        let mut base = residuals[0];
        let rare = (n / OUTLIER_SHARE).max(usize::from(n >= OUTLIER_MIN_OBSERVATIONS));
        if rare > 0 {
            let robust = residuals[rare];
            let gross = self
                .all()
                .filter(|(w, p)| *p > OUTLIER_FACTOR * (robust.max(0.0) + k * w))
                .count();
            if gross <= rare {
                base = robust;
            }
        }
        let base = base.max(0.0);
        Some(Fit {
            base_bytes: base.ceil() as u64,
            bytes_per_weight_byte: k,
            observations: n,
        })
    }

    /// Whether the observed weights differ enough (by more than 2%) to fit a slope: the line is
    /// raised over every observation, and what a slope fitted on close weights gets wrong for
    /// other sizes is what the learned margin and the safety net are for.
    fn spread(&self) -> bool {
        let (lo, hi) = self
            .all()
            .fold((f64::MAX, 0f64), |(lo, hi), (w, _)| (lo.min(w), hi.max(w)));
        self.observations() >= 2 && hi > 1.02 * lo.max(1.0)
    }

    /// The predicted need of a job with this input weight, with head-room.
    pub(crate) fn predict(&self, weight: u64) -> Option<u64> {
        let raw = self.predict_raw(weight)?;
        Some(((raw as f64 * (1.0 + self.margin())) as u64).max(16 * MIB))
    }

    /// The predicted peak of a job with this input weight, without head-room.
    pub(crate) fn predict_raw(&self, weight: u64) -> Option<u64> {
        let fit = self.fit()?;
        let mut raw = fit.base_bytes as f64 + fit.bytes_per_weight_byte * weight as f64;
        if !self.spread() {
            // One size of input seen: nothing says how memory grows with the input, and the
            // prior slope may be far too low (a job whose memory is all data). Until a second
            // size is measured, also scale the observed peak in proportion to the weight.
            let ratio = self
                .all()
                .filter(|(w, _)| *w > 0.0)
                .map(|(w, p)| p / w)
                .fold(0f64, f64::max);
            raw = raw.max(ratio * weight as f64);
        }
        Some(raw as u64)
    }
}

/// The reservation before anything is learned: max(1 GiB, 200 MiB + 3 × weight).
pub(crate) fn prior(weight: u64) -> u64 {
    (1u64 << 30).max(200 * MIB + (PRIOR_K * weight as f64) as u64)
}

/// A job's reservation before anything is learned: `--mem-per-job` when it is fixed, else the
/// prior for its weight. The gate, the dry run and the Slurm plan all start from this.
pub(crate) fn first_reservation(per_job: Option<u64>, weight: u64) -> u64 {
    per_job.unwrap_or_else(|| prior(weight))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_binary() {
        assert_eq!(parse_amount("600M", false), Ok(Amount::Bytes(600 * MIB)));
        assert_eq!(parse_amount("600MiB", false), Ok(Amount::Bytes(600 * MIB)));
        assert_eq!(parse_amount("2G", true), Ok(Amount::Bytes(2 << 30)));
        assert_eq!(parse_amount("1K", false), Ok(Amount::Bytes(1024)));
        assert_eq!(parse_amount("1T", false), Ok(Amount::Bytes(1 << 40)));
        assert_eq!(parse_amount("60%", true), Ok(Amount::Percent(60.0)));
        assert!(parse_amount("60%", false).is_err());
        assert!(parse_amount("0", false).is_err());
        assert!(parse_amount("lots", false).is_err());
        assert!(parse_amount("150%", true).is_err());
    }

    #[test]
    fn model_stays_above_every_observation() {
        let mut m = Model::default();
        assert!(m.predict(1000).is_none());
        // pyarrow-like: 170 MB + 2.9 × weight, with noise.
        let obs = [
            (50e6, 320e6),
            (100e6, 470e6),
            (400e6, 1330e6),
            (663e6, 2100e6),
            (200e6, 760e6),
        ];
        for (w, p) in obs {
            m.observe(w as u64, p as u64);
        }
        for (w, p) in obs {
            assert!(
                m.predict(w as u64).unwrap() as f64 >= p,
                "under-predicted {w}"
            );
        }
        let fit = m.fit().unwrap();
        assert!((2.5..3.3).contains(&fit.bytes_per_weight_byte), "{fit:?}");
        // Extrapolation to a bigger file stays in proportion.
        let big = m.predict(1_000_000_000).unwrap() as f64;
        assert!((3.0e9..4.5e9).contains(&big), "{big}");
    }

    #[test]
    fn one_input_size_scales_in_proportion_until_a_second_size_is_seen() {
        let mut m = Model::default();
        m.observe(1000, 50 * MIB);
        m.observe(1000, 60 * MIB);
        assert!(m.predict(1000).unwrap() >= 60 * MIB);
        assert!(
            m.predict(10).unwrap() >= 60 * MIB,
            "smaller inputs keep the observed base"
        );
        // All of the memory may be data: 100 000 × the weight is 6 GB for the same ratio.
        assert!(m.predict(100_000).unwrap() >= 6000 * MIB);
        // A job whose memory follows its input: 246 KiB needed 258 MiB; 2 MiB needs ~2.1 GiB.
        let mut m = Model::default();
        m.observe(246 << 10, 258 * MIB);
        assert!(m.predict(2 << 20).unwrap() >= 2 * 1024 * MIB);
        // A second, different size gives a fitted slope instead.
        m.observe(1 << 20, 1048 * MIB);
        let fit = m.fit().unwrap();
        assert!(
            (1000.0..1100.0).contains(&fit.bytes_per_weight_byte),
            "{fit:?}"
        );
    }

    #[test]
    fn a_rare_gross_outlier_does_not_raise_every_prediction() {
        let mut m = Model::default();
        for i in 1..=30u64 {
            m.observe(i * 100_000, 10 * MIB + i * 100_000 * 1024);
        }
        // One job needed 3 × what its input predicts.
        m.observe(1_500_000, 3 * 1024 * 1_500_000);
        let fit = m.fit().unwrap();
        assert!(fit.base_bytes < 50 * MIB, "{fit:?}");
        assert!(m.predict_raw(2_000_000).unwrap() < 2000 * MIB);
        // Also among the first few observations, once there are enough to tell...
        let mut few = Model::default();
        for i in 1..=7u64 {
            few.observe(i * 200_000, 10 * MIB + i * 200_000 * 1024);
        }
        few.observe(700_000, 3 * 1024 * 700_000);
        assert!(few.predict_raw(2_000_000).unwrap() < 2100 * MIB);
        // ...but not sooner.
        let mut fewer = Model::default();
        for i in 1..=6u64 {
            fewer.observe(i * 200_000, 10 * MIB + i * 200_000 * 1024);
        }
        fewer.observe(700_000, 3 * 1024 * 700_000);
        assert!(fewer.predict_raw(700_000).unwrap() >= 3 * 1024 * 700_000);
        // Several such jobs are no outliers: the line covers them again.
        for _ in 0..3 {
            m.observe(1_500_000, 3 * 1024 * 1_500_000);
        }
        let fit = m.fit().unwrap();
        let line = fit.base_bytes as f64 + fit.bytes_per_weight_byte * 1_500_000.0;
        assert!(line >= 3.0 * 1024.0 * 1_500_000.0, "{fit:?}");
    }

    #[test]
    fn the_margin_is_learned_from_prediction_errors() {
        let mut m = Model::default();
        assert_eq!(m.margin(), FIRST_MARGIN);
        // Predictions that held: the least margin.
        for _ in 0..10 {
            m.observe_error(1000, 990);
        }
        assert_eq!(m.margin(), MIN_MARGIN);
        // One job three times its prediction does not raise the margin of every job...
        m.observe_error(1000, 3000);
        assert_eq!(m.margin(), MIN_MARGIN);
        // ...predictions that are often 20% low do.
        for _ in 0..10 {
            m.observe_error(1000, 1200);
        }
        assert!((0.19..0.21).contains(&m.margin()), "{}", m.margin());
        for _ in 0..ERROR_WINDOW {
            m.observe_error(1000, 5000);
        }
        assert_eq!(m.margin(), MAX_MARGIN);
    }

    #[test]
    fn running_jobs_teach_the_model_until_they_end() {
        let mut m = Model::default();
        // Two jobs still running, their memory steady: 1 MiB per KiB of input.
        m.observe_running(1, 200 << 10, 213 * MIB);
        m.observe_running(2, 300 << 10, 313 * MIB);
        assert_eq!(m.observations(), 2);
        let fit = m.fit().unwrap();
        assert!(
            (1000.0..1030.0).contains(&fit.bytes_per_weight_byte),
            "{fit:?}"
        );
        assert!(m.predict_raw(2000 << 10).unwrap() >= 2000 * MIB);
        // A job grew further: its point moves, it is not counted twice.
        m.observe_running(2, 300 << 10, 400 * MIB);
        assert_eq!(m.observations(), 2);
        assert!(m.predict_raw(300 << 10).unwrap() >= 400 * MIB);
        // Ended: its whole peak replaces its provisional point.
        m.settle(2);
        m.observe(300 << 10, 420 * MIB);
        assert_eq!(m.observations(), 2);
        assert!(m.predict_raw(300 << 10).unwrap() >= 420 * MIB);
        m.settle(1);
        assert_eq!(m.observations(), 1);
        // Their errors count towards the margin until they end, once each.
        for key in 1..=3 {
            m.observe_running_error(key, 1000, 990);
        }
        m.observe_running_error(3, 1000, 1000);
        assert_eq!(m.margin(), FIRST_MARGIN, "three jobs so far");
        m.observe_error(1000, 1010);
        assert_eq!(m.margin(), MIN_MARGIN);
        m.settle(3);
        assert_eq!(m.margin(), FIRST_MARGIN);
    }

    #[test]
    fn the_reported_line_covers_every_observation() {
        let mut m = Model::default();
        for (w, p) in [(1000u64, 5000u64), (3333, 17000), (7777, 31000)] {
            m.observe(w, p);
        }
        let fit = m.fit().unwrap();
        for (w, p) in [(1000u64, 5000u64), (3333, 17000), (7777, 31000)] {
            assert!(fit.base_bytes as f64 + fit.bytes_per_weight_byte * w as f64 >= p as f64);
        }
    }

    #[test]
    fn cgroup_lines_are_found() {
        // Only checks that reading our own cgroups does not fail on this machine.
        let mut meter = Meter::new();
        let snap = meter.snapshot();
        assert!(snap.available > 0 && snap.total >= snap.available / 2);
    }
}
