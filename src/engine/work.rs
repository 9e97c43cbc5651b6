//! The service-time model (`--work KIND:DIST`): how long each request keeps
//! the thread that executes it, drawn per request.
//!
//! Requests to an in-memory store cost about a microsecond, too little for
//! the threading patterns to differ by anything but their overhead. Real
//! services do more per request, and how *unevenly* they do it is what
//! separates one shared queue from partitioned ones (the queueing theory
//! behind `kvbench sweep`). The model adds that cost:
//!
//! - [`WorkKind::Spin`] burns CPU on the executing thread (a computation);
//! - [`WorkKind::Block`] puts it to sleep (a synchronous call to a backend),
//!   so the service time does not compete for cores with the load generator.
//!
//! and draws each request's time from a [`ServiceDist`]: `fixed:T`,
//! `exp:MEAN` or `bimodal:SHORT:LONG:P_LONG`. The same types describe the
//! service in kvbench's queueing model, so the server and the model cannot
//! read a `--work` differently.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// The longest time one request may be given (a typo guard: `exp:100ms`
/// means something, `fixed:100s` hangs a thread).
pub const MAX_TIME: Duration = Duration::from_secs(10);

/// The accepted forms, for error messages.
pub const FORMS: &str = "KIND:DIST with KIND spin or block and DIST fixed:T, exp:MEAN or \
     bimodal:SHORT:LONG:P_LONG, times with a us or ms suffix (e.g. block:exp:100us, \
     spin:fixed:50us, block:bimodal:25us:750us:0.1)";

/// What the executing thread does for a request's service time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkKind {
    /// Burns CPU: the thread is busy, as with a computation.
    Spin,
    /// Sleeps: the thread is unavailable but its core is free, as with a
    /// synchronous call to a backend.
    Block,
}

/// A distribution of service times.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ServiceDist {
    /// Every request takes the same time.
    Fixed(Duration),
    /// Exponentially distributed with this mean (coefficient of variation 1).
    Exp { mean: Duration },
    /// `short` with probability `1 - p_long`, else `long`: mostly cheap
    /// requests with rare costly ones, the most dispersed case.
    Bimodal {
        short: Duration,
        long: Duration,
        p_long: f64,
    },
}

/// `--work`: what a request's service time is spent on, and its distribution.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WorkModel {
    pub kind: WorkKind,
    pub dist: ServiceDist,
}

impl ServiceDist {
    /// The mean service time.
    pub fn mean(&self) -> Duration {
        match *self {
            ServiceDist::Fixed(t) => t,
            ServiceDist::Exp { mean } => mean,
            ServiceDist::Bimodal {
                short,
                long,
                p_long,
            } => short.mul_f64(1.0 - p_long) + long.mul_f64(p_long),
        }
    }

    /// Draws one service time.
    pub fn sample(&self, rng: &mut Rng) -> Duration {
        match *self {
            ServiceDist::Fixed(t) => t,
            ServiceDist::Exp { mean } => {
                // Inverse transform; the uniform is in (0, 1], so ln is finite.
                mean.mul_f64(-rng.unit().ln()).min(MAX_TIME)
            }
            ServiceDist::Bimodal {
                short,
                long,
                p_long,
            } => {
                if rng.unit() <= p_long {
                    long
                } else {
                    short
                }
            }
        }
    }

    /// The same shape with every time multiplied by `factor` (kvbench's
    /// model uses it to match a measured mean).
    pub fn scaled(&self, factor: f64) -> ServiceDist {
        let s = |t: Duration| t.mul_f64(factor.max(0.0));
        match *self {
            ServiceDist::Fixed(t) => ServiceDist::Fixed(s(t)),
            ServiceDist::Exp { mean } => ServiceDist::Exp { mean: s(mean) },
            ServiceDist::Bimodal {
                short,
                long,
                p_long,
            } => ServiceDist::Bimodal {
                short: s(short),
                long: s(long),
                p_long,
            },
        }
    }
}

impl WorkModel {
    /// `--work-us N`: N µs of CPU on every request.
    pub fn spin_us(us: u64) -> WorkModel {
        WorkModel {
            kind: WorkKind::Spin,
            dist: ServiceDist::Fixed(Duration::from_micros(us)),
        }
    }

    /// Spends one drawn service time on the calling thread; returns the time
    /// drawn (asked for). A sleep can overrun what was asked (timer slack,
    /// wake-up latency): callers time the call to see by how much.
    pub fn perform(&self, rng: &mut Rng) -> Duration {
        let asked = self.dist.sample(rng);
        match self.kind {
            WorkKind::Spin => spin_for(asked),
            WorkKind::Block => std::thread::sleep(asked),
        }
        asked
    }
}

/// Keeps the calling thread busy for `time`: a spin, not a sleep, so the
/// thread is unavailable exactly as with real work.
fn spin_for(time: Duration) {
    let start = Instant::now();
    while start.elapsed() < time {
        std::hint::spin_loop();
    }
}

/// Asks the kernel to wake the calling thread's sleeps as close to their
/// deadline as it can (the default slack is 50 µs, half of a 100 µs
/// service time). Threads that run [`WorkKind::Block`] work call it once.
pub fn minimise_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument and no pointers.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
}

/// splitmix64: a small, fast generator, one per executing thread, seeded
/// apart so threads draw different sequences (kvbench draws its keys and
/// arrivals with it too).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5851_f42d_4c95_7f2d)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in (0, 1]: never 0, so its logarithm is finite.
    pub fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }
}

/// Reads a time: a decimal number with a `us` or `ms` suffix (`25us`, `0.75ms`).
pub fn parse_time(text: &str) -> Result<Duration, String> {
    let bad = || format!("not a time: {text:?} (a number with a us or ms suffix, e.g. 100us)");
    let (number, unit) = if let Some(n) = text.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else {
        return Err(bad());
    };
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(bad());
    }
    let value: f64 = number.parse().map_err(|_| bad())?;
    let secs = value * unit;
    if !(0.0..=MAX_TIME.as_secs_f64()).contains(&secs) {
        return Err(format!("{text} is longer than {MAX_TIME:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Writes a time the way [`parse_time`] reads it: whole µs when it is
/// whole, else with the fraction.
fn write_time(f: &mut fmt::Formatter<'_>, t: Duration) -> fmt::Result {
    let us = t.as_secs_f64() * 1e6;
    if us == us.round() {
        write!(f, "{us:.0}us")
    } else {
        write!(f, "{}us", (us * 1000.0).round() / 1000.0)
    }
}

impl FromStr for ServiceDist {
    type Err = String;

    fn from_str(text: &str) -> Result<ServiceDist, String> {
        let parts: Vec<&str> = text.split(':').collect();
        match parts.as_slice() {
            ["fixed", t] => Ok(ServiceDist::Fixed(parse_time(t)?)),
            ["exp", mean] => {
                let mean = parse_time(mean)?;
                if mean.is_zero() {
                    return Err("exp: the mean must be above 0".into());
                }
                Ok(ServiceDist::Exp { mean })
            }
            ["bimodal", short, long, p] => {
                let p_long: f64 = p
                    .parse()
                    .ok()
                    .filter(|p: &f64| (0.0..=1.0).contains(p))
                    .ok_or_else(|| format!("bimodal: P_LONG must be in [0, 1], not {p:?}"))?;
                Ok(ServiceDist::Bimodal {
                    short: parse_time(short)?,
                    long: parse_time(long)?,
                    p_long,
                })
            }
            _ => Err(format!(
                "not a distribution: {text:?} (fixed:T, exp:MEAN or bimodal:SHORT:LONG:P_LONG)"
            )),
        }
    }
}

impl fmt::Display for ServiceDist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ServiceDist::Fixed(t) => {
                f.write_str("fixed:")?;
                write_time(f, t)
            }
            ServiceDist::Exp { mean } => {
                f.write_str("exp:")?;
                write_time(f, mean)
            }
            ServiceDist::Bimodal {
                short,
                long,
                p_long,
            } => {
                f.write_str("bimodal:")?;
                write_time(f, short)?;
                f.write_str(":")?;
                write_time(f, long)?;
                write!(f, ":{p_long}")
            }
        }
    }
}

impl FromStr for WorkModel {
    type Err = String;

    fn from_str(text: &str) -> Result<WorkModel, String> {
        let (kind, dist) = text
            .split_once(':')
            .ok_or_else(|| format!("expected {FORMS}; got {text:?}"))?;
        let kind = match kind {
            "spin" => WorkKind::Spin,
            "block" => WorkKind::Block,
            other => return Err(format!("unknown KIND {other:?}: expected {FORMS}")),
        };
        let dist = dist.parse().map_err(|e| format!("{e}; expected {FORMS}"))?;
        Ok(WorkModel { kind, dist })
    }
}

impl fmt::Display for WorkModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            WorkKind::Spin => "spin",
            WorkKind::Block => "block",
        };
        write!(f, "{kind}:{}", self.dist)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn forms_parse_and_print_back() {
        for text in [
            "spin:fixed:50us",
            "block:exp:100us",
            "block:bimodal:25us:750us:0.1",
            "spin:fixed:0us",
            "block:exp:2.5us",
        ] {
            let model: WorkModel = text.parse().unwrap();
            assert_eq!(model.to_string(), text);
        }
        let model: WorkModel = "block:bimodal:25us:0.75ms:0.1".parse().unwrap();
        assert_eq!(model.kind, WorkKind::Block);
        assert_eq!(
            model.dist,
            ServiceDist::Bimodal {
                short: us(25),
                long: us(750),
                p_long: 0.1
            }
        );
        assert_eq!(WorkModel::spin_us(7).to_string(), "spin:fixed:7us");
    }

    #[test]
    fn malformed_forms_are_refused_with_the_accepted_ones() {
        for text in [
            "",
            "spin",
            "walk:fixed:5us",
            "spin:fixed",
            "spin:fixed:5",
            "spin:fixed:5s",
            "spin:fixed:-5us",
            "spin:fixed:us",
            "block:exp:0us",
            "block:gauss:5us",
            "block:bimodal:25us:750us",
            "block:bimodal:25us:750us:1.5",
            "block:bimodal:25us:750us:x",
            "spin:fixed:20000ms",
            "spin:fixed:5us:9",
        ] {
            let err = text.parse::<WorkModel>().unwrap_err();
            assert!(!err.is_empty(), "{text}");
        }
        let err = "walk:fixed:5us".parse::<WorkModel>().unwrap_err();
        assert!(err.contains("spin or block"), "{err}");
    }

    #[test]
    fn samples_have_the_asked_mean() {
        let mut rng = Rng::new(42);
        let n = 200_000;
        for dist in [
            ServiceDist::Fixed(us(30)),
            ServiceDist::Exp { mean: us(100) },
            ServiceDist::Bimodal {
                short: us(25),
                long: us(750),
                p_long: 0.1,
            },
        ] {
            let total: f64 = (0..n).map(|_| dist.sample(&mut rng).as_secs_f64()).sum();
            let mean = total / n as f64;
            let asked = dist.mean().as_secs_f64();
            assert!(
                (mean / asked - 1.0).abs() < 0.02,
                "{dist}: {mean} vs {asked}"
            );
        }
        assert_eq!(
            ServiceDist::Bimodal {
                short: us(25),
                long: us(750),
                p_long: 0.1
            }
            .mean(),
            Duration::from_nanos(97_500)
        );
    }

    #[test]
    fn exponential_samples_are_dispersed_like_one() {
        // Coefficient of variation 1: variance equals the squared mean.
        let mut rng = Rng::new(7);
        let dist = ServiceDist::Exp { mean: us(100) };
        let xs: Vec<f64> = (0..200_000)
            .map(|_| dist.sample(&mut rng).as_secs_f64() * 1e6)
            .collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(
            (var.sqrt() / mean - 1.0).abs() < 0.02,
            "cv {}",
            var.sqrt() / mean
        );
    }

    #[test]
    fn scaling_keeps_the_shape() {
        let d: ServiceDist = "bimodal:20us:200us:0.5".parse().unwrap();
        assert_eq!(d.scaled(1.5).to_string(), "bimodal:30us:300us:0.5");
        assert_eq!(d.scaled(1.5).mean(), d.mean().mul_f64(1.5));
    }

    #[test]
    fn below_stays_in_range() {
        let mut rng = Rng::new(3);
        assert!((0..10_000).all(|_| rng.below(7) < 7));
        assert_eq!(rng.below(1), 0);
    }

    #[test]
    fn unit_uniforms_stay_in_range() {
        let mut rng = Rng::new(1);
        assert!((0..100_000).all(|_| {
            let u = rng.unit();
            u > 0.0 && u <= 1.0
        }));
    }

    #[test]
    fn work_takes_at_least_what_was_asked() {
        let mut rng = Rng::new(3);
        for kind in [WorkKind::Spin, WorkKind::Block] {
            let model = WorkModel {
                kind,
                dist: ServiceDist::Fixed(us(300)),
            };
            let start = Instant::now();
            let asked = model.perform(&mut rng);
            assert_eq!(asked, us(300));
            assert!(start.elapsed() >= asked, "{kind:?}");
        }
    }
}
