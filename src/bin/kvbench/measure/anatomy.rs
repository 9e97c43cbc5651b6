//! Where requests' time went inside a kvserve: its `stats latency` (the
//! stage times of `kvserve::engine::stages`), read back per stage with the
//! role of the threads that do it. memcached has no such stats: there
//! the anatomy is `None`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::time::Duration;

use anyhow::{ensure, Result};
use serde::Serialize;

use super::stats;
use crate::model::empirical::Empirical;
use crate::net::stream::Stream;
use crate::net::Endpoint;

/// One stage's distribution, as the server reports it.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct StageTimes {
    /// Who does the stage in this pattern (`loop`, `reader`, `dispatch`,
    /// `worker`; `all` for `server`).
    pub role: String,
    pub count: u64,
    pub mean_us: f64,
    /// (share, µs), ascending: the quantiles reported, up to the maximum
    /// (share 1).
    pub quantiles: Vec<(f64, f64)>,
}

impl StageTimes {
    /// The value below which a share `q` of the requests lie, interpolated
    /// between the reported quantiles (0 when nothing was counted).
    pub fn at(&self, q: f64) -> f64 {
        Empirical::from_quantiles_us(&self.quantiles).map_or(0.0, |e| e.at(q) / 1e3)
    }
}

/// Every stage's times over one measurement.
#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct Anatomy {
    /// By stage name ([`STAGES`]); stages nothing was counted in are absent.
    pub stages: HashMap<String, StageTimes>,
}

impl Anatomy {
    pub fn stage(&self, name: &str) -> Option<&StageTimes> {
        self.stages.get(name)
    }

    /// The stage's value at share `q`, 0 when it was not counted.
    pub fn at(&self, name: &str, q: f64) -> f64 {
        self.stage(name).map_or(0.0, |s| s.at(q))
    }

    /// Reads `stats latency`'s `role:stage:quantity value` lines.
    pub fn parse(stats: &HashMap<String, String>) -> Anatomy {
        let mut stages: HashMap<String, StageTimes> = HashMap::new();
        for (name, value) in stats {
            let mut parts = name.splitn(3, ':');
            let (Some(role), Some(stage), Some(quantity)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let times = stages.entry(stage.to_string()).or_insert(StageTimes {
                role: role.to_string(),
                count: 0,
                mean_us: 0.0,
                quantiles: Vec::new(),
            });
            match quantity {
                "count" => times.count = value as u64,
                "mean" => times.mean_us = value,
                "max" => times.quantiles.push((1.0, value)),
                p => {
                    if let Some(q) = share(p) {
                        times.quantiles.push((q, value));
                    }
                }
            }
        }
        stages.retain(|_, t| t.count > 0);
        for t in stages.values_mut() {
            t.quantiles.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        Anatomy { stages }
    }
}

/// `p50` -> 0.5, `p999` -> 0.999: whole percents, then decimals.
fn share(name: &str) -> Option<f64> {
    let digits = name.strip_prefix('p')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let padded = if digits.len() == 1 { "0" } else { "" };
    format!("0.{padded}{digits}").parse().ok()
}

/// Stage times as the server's histogram buckets (`stats latency
/// buckets`): two readings taken apart give the stage times between them,
/// which `kvbench top` shows live.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StageBuckets {
    /// By stage: (lowest ns, highest ns, count), ascending.
    stages: HashMap<String, Vec<(u64, u64, u64)>>,
}

impl StageBuckets {
    /// Reads `stage:low-high count` lines; others are ignored.
    pub fn parse(stats: &HashMap<String, String>) -> StageBuckets {
        let mut stages: HashMap<String, Vec<(u64, u64, u64)>> = HashMap::new();
        for (name, value) in stats {
            let Some((stage, range)) = name.split_once(':') else {
                continue;
            };
            let Some((low, high)) = range.split_once('-') else {
                continue;
            };
            if let (Ok(low), Ok(high), Ok(count)) = (low.parse(), high.parse(), value.parse()) {
                stages
                    .entry(stage.to_string())
                    .or_default()
                    .push((low, high, count));
            }
        }
        for buckets in stages.values_mut() {
            buckets.sort_unstable();
        }
        StageBuckets { stages }
    }

    /// What was counted after `earlier`, a reading of the same server run.
    pub fn since(&self, earlier: &StageBuckets) -> StageBuckets {
        let stages = self
            .stages
            .iter()
            .map(|(stage, buckets)| {
                let before = earlier.stages.get(stage);
                let counted = buckets
                    .iter()
                    .filter_map(|&(low, high, count)| {
                        let was = before
                            .and_then(|b| b.iter().find(|x| x.0 == low))
                            .map_or(0, |x| x.2);
                        let now = count.saturating_sub(was);
                        (now > 0).then_some((low, high, now))
                    })
                    .collect();
                (stage.clone(), counted)
            })
            .collect();
        StageBuckets { stages }
    }

    /// Requests counted in `stage`.
    pub fn count(&self, stage: &str) -> u64 {
        self.stages
            .get(stage)
            .map_or(0, |b| b.iter().map(|x| x.2).sum())
    }

    /// The value below which a share `q` of `stage`'s counts lie, µs,
    /// interpolated within its bucket; `None` when nothing was counted.
    pub fn quantile_us(&self, stage: &str, q: f64) -> Option<f64> {
        let buckets = self.stages.get(stage)?;
        let n = self.count(stage);
        if n == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * n as f64;
        let mut below = 0.0;
        for &(low, high, count) in buckets {
            let count = count as f64;
            if below + count >= rank {
                let within = ((rank - below) / count).clamp(0.0, 1.0);
                return Some((low as f64 + within * (high - low) as f64) / 1e3);
            }
            below += count;
        }
        buckets.last().map(|&(_, high, _)| high as f64 / 1e3)
    }
}

/// Reads the server's stage buckets on an open connection; `None` from
/// a server without them.
pub fn read_buckets_on(stream: &mut Stream, timeout: Duration) -> Result<Option<StageBuckets>> {
    let reply = stats::ask_on(stream, "latency buckets", timeout)?;
    if reply.starts_with("ERROR") {
        return Ok(None);
    }
    Ok(Some(StageBuckets::parse(&stats::parse(&reply)?)))
}

/// Reads the server's stage times; `None` when it has none (memcached
/// answers `ERROR`).
pub fn read(server: &Endpoint, timeout: Duration) -> Result<Option<Anatomy>> {
    let reply = stats::ask(server, "latency", timeout)?;
    if reply.starts_with("ERROR") {
        return Ok(None);
    }
    Ok(Some(Anatomy::parse(&stats::parse(&reply)?)))
}

/// `stats reset`, so that the next [`read`] covers only what follows.
pub fn reset(server: &Endpoint, timeout: Duration) -> Result<()> {
    let mut stream = stats::connect(server, timeout)?;
    stream.write_all(b"stats reset\r\n")?;
    stream.flush()?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    ensure!(line == "RESET\r\n", "`stats reset` answered {line:?}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_taken_apart_give_the_stage_times_between_readings() {
        let earlier = StageBuckets::parse(
            &stats::parse("STAT socket:1000-1100 5\r\nSTAT socket:2000-2200 5\r\nEND\r\n").unwrap(),
        );
        let later = StageBuckets::parse(
            &stats::parse(
                "STAT socket:1000-1100 5\r\nSTAT socket:2000-2200 7\r\n\
                 STAT socket:8000-9000 2\r\nSTAT pid 7\r\nEND\r\n",
            )
            .unwrap(),
        );
        let between = later.since(&earlier);
        assert_eq!(between.count("socket"), 4);
        // Two at 2.0-2.2 µs, two at 8-9 µs.
        assert_eq!(between.quantile_us("socket", 0.25), Some(2.1));
        assert_eq!(between.quantile_us("socket", 1.0), Some(9.0));
        assert_eq!(between.quantile_us("parse", 0.5), None);
        assert_eq!(earlier.quantile_us("socket", 0.5), Some(1.1));
    }

    #[test]
    fn quantile_names_read_as_shares() {
        assert_eq!(share("p1"), Some(0.01));
        assert_eq!(share("p50"), Some(0.5));
        assert_eq!(share("p99"), Some(0.99));
        assert_eq!(share("p999"), Some(0.999));
        assert_eq!(share("mean"), None);
        assert_eq!(share("p"), None);
    }

    #[test]
    fn stats_latency_reads_back_per_stage_and_interpolates() {
        let text = "STAT dispatch:socket:count 10\r\nSTAT dispatch:socket:mean 30.5\r\n\
                    STAT dispatch:socket:p50 20.000\r\nSTAT dispatch:socket:p99 90.000\r\n\
                    STAT dispatch:socket:max 120.000\r\nSTAT worker:service:count 0\r\n\
                    STAT worker:service:p50 0.000\r\nSTAT pid 3\r\nEND\r\n";
        let a = Anatomy::parse(&stats::parse(text).unwrap());
        let socket = a.stage("socket").unwrap();
        assert_eq!(socket.role, "dispatch");
        assert_eq!(socket.count, 10);
        assert_eq!(
            socket.quantiles,
            vec![(0.5, 20.0), (0.99, 90.0), (1.0, 120.0)]
        );
        assert_eq!(a.at("socket", 0.5), 20.0);
        assert!((a.at("socket", 0.745) - 55.0).abs() < 1e-9);
        assert_eq!(a.at("socket", 0.1), 20.0);
        assert!(a.stage("service").is_none(), "nothing counted: absent");
        assert_eq!(a.at("service", 0.5), 0.0);
    }
}
