//! Throughput over a moving window: documents and pages per minute from the
//! counters of successive snapshots. A window (not the whole run) so that the
//! rate and the ETA follow what the run does now — after a burst of tiny
//! files, or once the workers reach the huge ones.

use std::collections::VecDeque;

/// The window the rates are taken over.
pub const WINDOW_MS: i64 = 30_000;
/// Below this span the rate is noise; none is reported.
const MIN_SPAN_MS: i64 = 1_000;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rates {
    pub docs_per_min: Option<f64>,
    pub pages_per_min: Option<f64>,
}

impl Rates {
    /// Seconds until `remaining` documents are done at the current rate.
    pub fn eta_s(&self, remaining: u64) -> Option<f64> {
        match self.docs_per_min {
            _ if remaining == 0 => Some(0.0),
            Some(r) if r > 0.0 => Some(remaining as f64 / r * 60.0),
            _ => None,
        }
    }
}

/// Counter readings (t_ms, docs, pages) spanning the last `WINDOW_MS`.
#[derive(Clone, Debug, Default)]
pub struct RateWindow {
    points: VecDeque<(i64, u64, u64)>,
}

impl RateWindow {
    pub fn push(&mut self, t_ms: i64, docs: u64, pages: u64) {
        if let Some(&(last, _, _)) = self.points.back() {
            if t_ms < last {
                // The clock stepped back: rates across the step are
                // meaningless, so start over.
                self.points.clear();
            } else if t_ms == last {
                self.points.pop_back();
            }
        }
        self.points.push_back((t_ms, docs, pages));
        // Keep one reading at or before the window's start so the span
        // covers the whole window, not a shrinking part of it.
        while self.points.len() > 2 && self.points[1].0 <= t_ms - WINDOW_MS {
            self.points.pop_front();
        }
    }

    pub fn rates(&self) -> Rates {
        let (Some(&(t0, d0, p0)), Some(&(t1, d1, p1))) = (self.points.front(), self.points.back())
        else {
            return Rates::default();
        };
        let span = t1 - t0;
        if span < MIN_SPAN_MS {
            return Rates::default();
        }
        let minutes = span as f64 / 60_000.0;
        Rates {
            docs_per_min: Some(d1.saturating_sub(d0) as f64 / minutes),
            pages_per_min: Some(p1.saturating_sub(p0) as f64 / minutes),
        }
    }
}

/// Pages per minute at each of a series of (t_ms, pages) readings, over the
/// same moving window: for charts drawn after the run.
pub fn pages_per_min_series(points: &[(i64, u64)]) -> Vec<(i64, f64)> {
    let mut w = RateWindow::default();
    let mut out = Vec::new();
    for &(t, pages) in points {
        w.push(t, 0, pages);
        if let Some(r) = w.rates().pages_per_min {
            out.push((t, r));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_rate_until_a_second_has_passed() {
        let mut w = RateWindow::default();
        assert_eq!(w.rates(), Rates::default());
        w.push(0, 0, 0);
        w.push(500, 1, 10);
        assert_eq!(w.rates().docs_per_min, None);
        w.push(1_000, 2, 20);
        assert_eq!(w.rates().docs_per_min, Some(120.0));
        assert_eq!(w.rates().pages_per_min, Some(1200.0));
    }

    #[test]
    fn follows_the_last_thirty_seconds() {
        let mut w = RateWindow::default();
        // A fast first minute: 60 docs/min ...
        for s in 0..=60 {
            w.push(s * 1000, s as u64, 0);
        }
        assert!((w.rates().docs_per_min.unwrap() - 60.0).abs() < 1e-9);
        // ... then 30 s with nothing done: the window forgets the burst.
        for s in 61..=90 {
            w.push(s * 1000, 60, 0);
        }
        assert_eq!(w.rates().docs_per_min, Some(0.0));
        // Only readings spanning about one window are kept.
        assert!(w.points.len() <= 32, "{}", w.points.len());
        assert!(w.points.front().unwrap().0 <= 90_000 - WINDOW_MS);
    }

    #[test]
    fn sparse_readings_still_span_the_window() {
        let mut w = RateWindow::default();
        w.push(0, 0, 0);
        w.push(45_000, 30, 300);
        // Only two readings, 45 s apart: the older is kept, not dropped.
        assert_eq!(w.rates().docs_per_min, Some(40.0));
        // The window reaches back to the last reading before its start.
        w.push(50_000, 35, 350);
        assert_eq!(w.rates().docs_per_min, Some(42.0));
        w.push(80_000, 65, 650);
        assert_eq!(w.rates().docs_per_min, Some(60.0)); // 30 docs in 30 s
    }

    #[test]
    fn a_clock_step_back_restarts_the_window() {
        let mut w = RateWindow::default();
        w.push(10_000, 5, 0);
        w.push(20_000, 10, 0);
        w.push(15_000, 11, 0);
        assert_eq!(w.rates(), Rates::default());
    }

    #[test]
    fn eta() {
        let r = Rates {
            docs_per_min: Some(30.0),
            pages_per_min: None,
        };
        assert_eq!(r.eta_s(60), Some(120.0));
        assert_eq!(r.eta_s(0), Some(0.0));
        assert_eq!(Rates::default().eta_s(5), None);
    }

    #[test]
    fn series_for_charts() {
        let s = pages_per_min_series(&[(0, 0), (3_000, 30), (6_000, 60)]);
        assert_eq!(s, vec![(3_000, 600.0), (6_000, 600.0)]);
        assert!(pages_per_min_series(&[]).is_empty());
        assert!(pages_per_min_series(&[(0, 5)]).is_empty());
    }
}
