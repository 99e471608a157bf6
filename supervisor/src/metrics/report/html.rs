//! The report page: summary tables and the inline SVG charts, with its style
//! in the page itself so that it needs nothing else to display.

use std::fmt::Write;

use super::{ReportData, Summary};

const STYLE: &str = "
body { font-family: sans-serif; margin: 2em auto; max-width: 960px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
figure { margin: 1.5em 0; } svg { max-width: 100%; height: auto; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
.muted { color: #777; }
";

pub(super) fn page(data: &ReportData, s: &Summary, charts: &[(String, String)]) -> String {
    let info = &data.info;
    let mut h = String::with_capacity(64 << 10);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>docmill run {id}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>docmill run {id}</h1>\n<p class=\"muted\">started {start} UTC, {end}; by {owner}</p>\n",
        id = info.id,
        start = utc(info.started_ms),
        end = match info.ended_ms {
            Some(e) => format!("ended {} UTC, exit code {}", utc(e), opt(info.exit_code)),
            None => "not ended (still running, or stopped without a summary)".to_string(),
        },
        owner = esc(&info.owner),
    );

    h.push_str("<h2>Summary</h2>\n<table>\n");
    let outcomes = &data.stats.documents_by_outcome;
    if outcomes.is_empty() {
        row(&mut h, "documents attempted", "0");
    }
    for (outcome, n) in outcomes {
        row(&mut h, &format!("documents {outcome}"), &n.to_string());
    }
    row(&mut h, "pages", &s.pages.to_string());
    row(&mut h, "wall time", &format!("{:.1} s", s.wall_s));
    row(
        &mut h,
        "pages per minute",
        &s.pages_per_min.map_or("-".into(), |r| format!("{r:.0}")),
    );
    row(&mut h, "peak workers", &opt(s.peak_workers));
    row(
        &mut h,
        "peak memory",
        &s.peak_memory_bytes
            .map_or("not sampled".into(), crate::units::format_size),
    );
    row(&mut h, "samples", &data.samples.len().to_string());
    h.push_str("</table>\n");

    h.push_str("<h2>Charts</h2>\n");
    for (title, svg) in charts {
        let _ = write!(
            h,
            "<figure aria-label=\"{}\">\n{svg}\n</figure>\n",
            esc(title)
        );
    }

    h.push_str(
        "<h2>Time per size tier</h2>\n<table>\n<tr><th>tier</th><th>attempts</th><th>done</th>\
         <th>avg s/doc</th><th>p95 s/doc</th><th>avg s/page</th><th>p95 s/page</th>\
         <th>docs per worker-minute</th></tr>\n",
    );
    for t in &data.stats.tiers {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&t.tier),
            t.attempts,
            t.done,
            num(t.avg_s_per_doc, 2),
            num(t.p95_s_per_doc, 2),
            num(t.avg_s_per_page, 3),
            num(t.p95_s_per_page, 3),
            num(t.docs_per_worker_min, 1),
        );
    }
    h.push_str("</table>\n<p class=\"muted\">Tiers by file size: tiny &lt; 1 MiB, small &lt; 10 MiB, medium &lt; 50 MiB, large &lt; 200 MiB, huge above.</p>\n");

    h.push_str("<h2>Errors</h2>\n<table>\n<tr><th>format</th><th>attempts</th><th>failed</th><th>error rate</th></tr>\n");
    for (format, e) in &data.stats.errors_by_format {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1}%</td></tr>",
            esc(format),
            e.attempts,
            e.failed,
            e.rate * 100.0
        );
    }
    h.push_str(
        "</table>\n<table>\n<tr><th>outcome</th><th>attempts</th><th>share of attempts</th></tr>\n",
    );
    for (outcome, n) in &data.stats.attempts_by_outcome {
        let share = data.stats.error_rate_by_class.get(outcome);
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{n}</td><td>{}</td></tr>",
            esc(outcome),
            share.map_or("-".into(), |r| format!("{:.1}%", r * 100.0))
        );
    }
    h.push_str("</table>\n");

    let decisions: Vec<_> = data
        .samples
        .iter()
        .filter_map(|s| s.decision.as_ref().map(|d| (s.t_ms, d)))
        .collect();
    if !decisions.is_empty() {
        h.push_str("<h2>Scaling decisions</h2>\n<table>\n<tr><th>at</th><th>decision</th></tr>\n");
        for (t, d) in decisions {
            let at = (t - info.started_ms).max(0) as f64 / 1000.0;
            let _ = writeln!(
                h,
                "<tr><td>{at:.1} s</td><td style=\"text-align:left\">{}</td></tr>",
                esc(d)
            );
        }
        h.push_str("</table>\n");
    }

    let options = serde_json::to_string_pretty(&info.options).unwrap_or_default();
    let _ = write!(
        h,
        "<h2>Options</h2>\n<pre>{}</pre>\n</body>\n</html>\n",
        esc(&options)
    );
    h
}

fn row(h: &mut String, name: &str, value: &str) {
    let _ = writeln!(h, "<tr><th>{}</th><td>{}</td></tr>", esc(name), esc(value));
}

fn num(v: Option<f64>, places: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.places$}"))
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}

/// Text for HTML element content and quoted attribute values.
pub(super) fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of a Unix time in ms, without a date library:
/// the civil-from-days algorithm (Howard Hinnant's).
pub(super) fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(utc(1_795_787_512_345), "2026-11-27 13:51:52");
    }

    #[test]
    fn escaping() {
        assert_eq!(
            esc(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
