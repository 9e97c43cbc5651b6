//! What every chart shares: the font, one colour per server, number and
//! time labels, and plotting errors as `anyhow` errors.

use anyhow::anyhow;
use plotters::style::RGBColor;

pub const FONT: &str = "sans-serif";
/// One colour per server, in the order servers first appear.
pub const PALETTE: [RGBColor; 6] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0x7f, 0x7f, 0x7f),
];
/// Marks a run that had errors.
pub const ERROR_RED: RGBColor = RGBColor(0xd6, 0x27, 0x28);

/// 1234 → 1.2k, 2500000 → 2.5M, 12.5 → 12.5.
pub fn human(v: f64) -> String {
    let (scaled, unit) = if v >= 1e6 {
        (v / 1e6, "M")
    } else if v >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    if scaled >= 100.0 || scaled == scaled.round() {
        format!("{scaled:.0}{unit}")
    } else {
        format!("{scaled:.1}{unit}")
    }
}

/// The one time unit of an axis, chosen from its largest value, so that
/// its labels read `0.5 ms, 1 ms`, never `500 µs, 1 ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeUnit {
    Micros,
    Millis,
    Seconds,
}

impl TimeUnit {
    /// µs below 2 ms, ms below 2 s, else s.
    pub fn for_max_us(max_us: f64) -> TimeUnit {
        if max_us >= 2e6 {
            TimeUnit::Seconds
        } else if max_us >= 2e3 {
            TimeUnit::Millis
        } else {
            TimeUnit::Micros
        }
    }

    /// `us` microseconds in this unit, with as many decimals as it needs
    /// (up to three).
    pub fn format(self, us: f64) -> String {
        let (scaled, name) = match self {
            TimeUnit::Micros => (us, "µs"),
            TimeUnit::Millis => (us / 1e3, "ms"),
            TimeUnit::Seconds => (us / 1e6, "s"),
        };
        let text = if scaled >= 10.0 || scaled == scaled.round() {
            format!("{scaled:.0}")
        } else if (scaled * 10.0).fract().abs() < 1e-9 || scaled >= 1.0 {
            format!("{scaled:.1}")
        } else {
            let t = format!("{scaled:.3}");
            t.trim_end_matches('0').to_string()
        };
        format!("{text} {name}")
    }
}

pub fn plot_error<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("plotting: {e:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_numbers() {
        assert_eq!(human(12.0), "12");
        assert_eq!(human(12.34), "12.3");
        assert_eq!(human(1234.0), "1.2k");
        assert_eq!(human(50_000.0), "50k");
        assert_eq!(human(123_456.0), "123k");
        assert_eq!(human(2_500_000.0), "2.5M");
    }

    #[test]
    fn an_axis_keeps_one_unit() {
        let ms = TimeUnit::for_max_us(12_400.0);
        assert_eq!(ms, TimeUnit::Millis);
        let labels: Vec<String> = [0.0, 500.0, 1_500.0, 12_400.0, 100.0]
            .iter()
            .map(|&us| ms.format(us))
            .collect();
        assert_eq!(labels, ["0 ms", "0.5 ms", "1.5 ms", "12 ms", "0.1 ms"]);
        let micros = TimeUnit::for_max_us(900.0);
        assert_eq!(micros.format(850.0), "850 µs");
        assert_eq!(micros.format(2.5), "2.5 µs");
        assert_eq!(TimeUnit::for_max_us(3e6).format(2e6), "2 s");
        assert_eq!(ms.format(25.0), "0.025 ms");
    }
}
