//! compare's workloads: the named workloads, each run as its connections
//! are secured by `--tls`, and `tls`, which runs two of them in plaintext
//! and over TLS side by side; `churn` always runs all three ways.

use clap::ValueEnum;
use serde::Serialize;

use super::WorkloadName;

/// How a run's connections are secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Security {
    Plain,
    /// TLS, a full handshake on every connection.
    Tls,
    /// TLS, connections resuming the sessions earlier ones got.
    TlsResume,
}

impl Security {
    /// What a row's workload name gets: `uniform+tls`, `churn+tls+resume`.
    pub fn suffix(self) -> &'static str {
        match self {
            Security::Plain => "",
            Security::Tls => "+tls",
            Security::TlsResume => "+tls+resume",
        }
    }

    /// Whether the server must be started with TLS.
    pub fn is_tls(self) -> bool {
        self != Security::Plain
    }
}

/// The workloads of `kvbench compare --workload`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CompareWorkload {
    Uniform,
    Pipelined,
    Large,
    ManyConns,
    Skewed,
    /// A new connection per request, in plaintext, over TLS and over TLS
    /// resuming sessions.
    Churn,
    /// uniform and pipelined, each in plaintext and over TLS.
    Tls,
}

impl CompareWorkload {
    /// Without --workload: the saturation workloads, none that needs TLS.
    pub const DEFAULT: [CompareWorkload; 5] = [
        CompareWorkload::Uniform,
        CompareWorkload::Pipelined,
        CompareWorkload::Large,
        CompareWorkload::ManyConns,
        CompareWorkload::Skewed,
    ];

    /// The runs it stands for; `tls` (the `--tls` flag) secures those of
    /// the plain named workloads.
    fn runs(self, tls: bool) -> Vec<(WorkloadName, Security)> {
        let own = if tls { Security::Tls } else { Security::Plain };
        let both = |w| [(w, Security::Plain), (w, Security::Tls)];
        match self {
            CompareWorkload::Uniform => vec![(WorkloadName::Uniform, own)],
            CompareWorkload::Pipelined => vec![(WorkloadName::Pipelined, own)],
            CompareWorkload::Large => vec![(WorkloadName::Large, own)],
            CompareWorkload::ManyConns => vec![(WorkloadName::ManyConns, own)],
            CompareWorkload::Skewed => vec![(WorkloadName::Skewed, own)],
            CompareWorkload::Churn => vec![
                (WorkloadName::Churn, Security::Plain),
                (WorkloadName::Churn, Security::Tls),
                (WorkloadName::Churn, Security::TlsResume),
            ],
            CompareWorkload::Tls => {
                [both(WorkloadName::Uniform), both(WorkloadName::Pipelined)].concat()
            }
        }
    }
}

/// Every run the workloads stand for, each once, in the order first named
/// (`-w uniform,tls` measures plaintext uniform once).
pub fn compare_runs(workloads: &[CompareWorkload], tls: bool) -> Vec<(WorkloadName, Security)> {
    let mut out = Vec::new();
    for w in workloads {
        for run in w.runs(tls) {
            if !out.contains(&run) {
                out.push(run);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_expand_to_runs_each_once() {
        use CompareWorkload as C;
        use Security::{Plain, Tls, TlsResume};
        use WorkloadName as W;
        assert_eq!(
            compare_runs(&[C::Uniform, C::Tls], false),
            [
                (W::Uniform, Plain),
                (W::Uniform, Tls),
                (W::Pipelined, Plain),
                (W::Pipelined, Tls)
            ]
        );
        // --tls secures the named workloads, not churn's plain run.
        assert_eq!(
            compare_runs(&[C::Large, C::Churn, C::Tls], true),
            [
                (W::Large, Tls),
                (W::Churn, Plain),
                (W::Churn, Tls),
                (W::Churn, TlsResume),
                (W::Uniform, Plain),
                (W::Uniform, Tls),
                (W::Pipelined, Plain),
                (W::Pipelined, Tls)
            ]
        );
        let labels: Vec<String> = [Plain, Tls, TlsResume]
            .iter()
            .map(|s| format!("churn{}", s.suffix()))
            .collect();
        assert_eq!(labels, ["churn", "churn+tls", "churn+tls+resume"]);
    }
}
