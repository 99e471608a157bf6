//! The report page: summary tables and the inline SVG charts, with its style
//! in the page itself so that it needs nothing else to display.

use std::fmt::Write;

use super::{ReportData, Summary};

const STYLE: &str = "
body { font-family: sans-serif; margin: 2em auto; max-width: 960px; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; vertical-align: top; }
th:first-child, td:first-child { text-align: left; }
td.text { text-align: left; } td.path { text-align: left; word-break: break-all; }
thead th { background: #f3f3f3; text-align: left; }
figure { margin: 1.5em 0; } svg { max-width: 100%; height: auto; }
.lead { font-size: 1.05em; margin: 0.2em 0; } .muted { color: #777; }
.bad { color: #b00020; font-weight: bold; } .good { color: #1b7f3b; font-weight: bold; }
code { background: #f3f3f3; padding: 0 0.25em; }
";

/// The longest reason shown on one line of the failed-files table.
const REASON_CHARS: usize = 240;

pub(super) fn page(data: &ReportData, s: &Summary, charts: &[(String, String)]) -> String {
    let info = &data.info;
    let roots = data.roots();
    let mut h = String::with_capacity(64 << 10);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>docmill run {id} on {host}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>docmill run {id} on {host}</h1>\n",
        id = info.id,
        host = esc(data.host()),
    );
    let library = if roots.is_empty() {
        "-".to_string()
    } else {
        roots
            .iter()
            .map(|r| format!("<code>{}</code>", esc(r)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(h, "<p class=\"lead\">Library: {library}</p>");
    let _ = writeln!(
        h,
        "<p class=\"lead\">{}</p>\n<p class=\"muted\">started {} UTC{}</p>",
        verdict(
            info.exit_code,
            data.failed.len(),
            info.totals
                .as_ref()
                .and_then(|t| t["strict"].as_bool())
                .unwrap_or(false)
        ),
        utc(info.started_ms),
        match info.ended_ms {
            Some(e) => format!(", ended {} UTC", utc(e)),
            None => ", not ended (still running, or stopped without a summary)".to_string(),
        },
    );

    summary_table(&mut h, data, s);
    failed_table(&mut h, data, &roots);
    slowest_table(&mut h, data, &roots);
    error_tables(&mut h, data);
    tier_table(&mut h, data);

    h.push_str("<h2>Charts</h2>\n");
    for (title, svg) in charts {
        let _ = write!(
            h,
            "<figure aria-label=\"{}\">\n{svg}\n</figure>\n",
            esc(title)
        );
    }

    let decisions: Vec<_> = data
        .samples
        .iter()
        .filter_map(|s| s.decision.as_ref().map(|d| (s.t_ms, d)))
        .collect();
    if !decisions.is_empty() {
        h.push_str("<h2>Scaling decisions</h2>\n<table>\n<thead><tr><th>at</th><th>decision</th></tr></thead>\n");
        for (t, d) in decisions {
            let at = (t - info.started_ms).max(0) as f64 / 1000.0;
            let _ = writeln!(
                h,
                "<tr><td>{at:.1} s</td><td class=\"text\">{}</td></tr>",
                esc(d)
            );
        }
        h.push_str("</table>\n");
    }

    h.push_str("<h2>Options</h2>\n<table id=\"options\">\n");
    for (name, value) in super::options::human(&info.options) {
        let _ = writeln!(
            h,
            "<tr><th>{}</th><td class=\"text\">{}</td></tr>",
            esc(&name),
            esc(&value)
        );
    }
    h.push_str("</table>\n</body>\n</html>\n");
    h
}

/// One line under the title: how the run ended, in words.
fn verdict(exit_code: Option<i32>, failed: usize, strict: bool) -> String {
    use docmill_protocol::exit_codes;
    match exit_code {
        None => "The run has no end recorded.".to_string(),
        Some(exit_codes::OK) if failed == 0 => {
            "<span class=\"good\">Every document was indexed</span> (exit 0).".to_string()
        }
        Some(exit_codes::OK) => format!(
            "No new failures (exit 0); {failed} documents failed in earlier runs and still do."
        ),
        Some(exit_codes::SOME_FAILED) if strict => format!(
            "<span class=\"bad\">{failed} documents failed, partly failed or were \
             quarantined</span> (exit 1 under --strict)."
        ),
        Some(exit_codes::SOME_FAILED) => format!(
            "<span class=\"bad\">Some documents failed for the first time</span> (exit 1); \
             {failed} failed, partly failed or were quarantined in all."
        ),
        Some(exit_codes::INTERRUPTED) => "Stopped by Ctrl-C (exit 130).".to_string(),
        Some(exit_codes::TERMINATED) => "Stopped by SIGTERM (exit 143).".to_string(),
        Some(code) => format!("Exit {code}."),
    }
}

fn summary_table(h: &mut String, data: &ReportData, s: &Summary) {
    h.push_str("<h2>Summary</h2>\n<table id=\"summary\">\n");
    let outcomes = &data.stats.documents_by_outcome;
    if outcomes.is_empty() {
        row(h, "documents attempted", "0");
    }
    for (outcome, n) in outcomes {
        row(h, &format!("documents {outcome}"), &n.to_string());
    }
    row(
        h,
        "failed, partly failed or quarantined",
        &data.failed.len().to_string(),
    );
    let totals = data.info.totals.as_ref();
    if let Some(new) = totals.and_then(|t| t.pointer("/failures/new")?.as_u64()) {
        row(h, "new failures in this run", &new.to_string());
    }
    if let Some(n) = totals.and_then(|t| t.pointer("/totals/fallbacks")?.as_u64()) {
        row(h, "engine fallbacks", &n.to_string());
    }
    row(h, "pages", &s.pages.to_string());
    row(h, "wall time", &format!("{:.1} s", s.wall_s));
    row(
        h,
        "pages per minute",
        &s.pages_per_min.map_or("-".into(), |r| format!("{r:.0}")),
    );
    row(h, "peak workers", &opt(s.peak_workers));
    row(
        h,
        "peak memory",
        &s.peak_memory_bytes
            .filter(|b| *b > 0)
            .map_or("not measured".into(), crate::units::format_size),
    );
    row(h, "samples", &data.samples.len().to_string());
    h.push_str("</table>\n");
}

fn failed_table(h: &mut String, data: &ReportData, roots: &[String]) {
    let _ = writeln!(
        h,
        "<h2 id=\"failed\">Failed and quarantined files ({})</h2>",
        data.failed.len()
    );
    if data.failed.is_empty() {
        h.push_str("<p>None: every document the run looked at was indexed.</p>\n");
        return;
    }
    h.push_str(
        "<table id=\"failed-files\">\n<thead><tr><th>file</th><th>state</th><th>how</th>\
         <th>reason</th></tr></thead>\n",
    );
    for f in &data.failed {
        let reason = one_line(f.reason.as_deref().unwrap_or("-"));
        let _ = writeln!(
            h,
            "<tr><td class=\"path\" title=\"{}\">{}</td><td class=\"text\">{}</td>\
             <td class=\"text\">{}</td><td class=\"text\">{}</td></tr>",
            esc(&f.path),
            esc(&shorten(&f.path, roots)),
            esc(&f.status),
            esc(f.outcome.as_deref().unwrap_or("-")),
            esc(&reason),
        );
    }
    h.push_str(
        "</table>\n<p class=\"muted\"><code>docmill status</code> lists them too; \
         <code>docmill index --retry-failed</code> tries failed files again.</p>\n",
    );
}

fn slowest_table(h: &mut String, data: &ReportData, roots: &[String]) {
    let _ = writeln!(
        h,
        "<h2 id=\"slowest\">Slowest documents (top {})</h2>",
        super::SLOWEST
    );
    if data.slowest.is_empty() {
        h.push_str("<p>No document was attempted in this run.</p>\n");
        return;
    }
    h.push_str(
        "<table id=\"slowest-documents\">\n<thead><tr><th>file</th><th>engine</th>\
         <th>pages</th><th>time</th><th>attempts</th><th>state</th></tr></thead>\n",
    );
    for d in &data.slowest {
        let _ = writeln!(
            h,
            "<tr><td class=\"path\" title=\"{}\">{}</td><td class=\"text\">{}</td>\
             <td>{}</td><td>{:.2} s</td><td>{}</td><td class=\"text\">{}</td></tr>",
            esc(&d.path),
            esc(&shorten(&d.path, roots)),
            esc(d.engine.as_deref().unwrap_or("-")),
            opt(d.pages),
            d.seconds,
            d.attempts,
            esc(&d.status),
        );
    }
    h.push_str(
        "</table>\n<p class=\"muted\">Time is the worker time of every attempt in this run; \
         a split document's chunks add up.</p>\n",
    );
}

fn error_tables(h: &mut String, data: &ReportData) {
    h.push_str(
        "<h2>Errors</h2>\n<p class=\"muted\">Per document, by how its last attempt in the run \
         ended: a PDF one engine gave up on and the next read is not an error.</p>\n\
         <table id=\"errors-by-format\">\n<thead><tr><th>format</th><th>documents</th>\
         <th>failed</th><th>error rate</th></tr></thead>\n",
    );
    for (format, e) in &data.stats.errors_by_format {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1}%</td></tr>",
            esc(format),
            e.documents,
            e.failed,
            e.rate * 100.0
        );
    }
    h.push_str(
        "</table>\n<table id=\"outcomes\">\n<thead><tr><th>outcome</th><th>documents</th>\
         <th>share of documents</th><th>attempts</th></tr></thead>\n",
    );
    let mut outcomes: Vec<&String> = data.stats.attempts_by_outcome.keys().collect();
    outcomes.extend(data.stats.documents_by_outcome.keys());
    outcomes.sort();
    outcomes.dedup();
    for outcome in outcomes {
        let docs = data.stats.documents_by_outcome.get(outcome).copied();
        let share = data.stats.error_rate_by_class.get(outcome);
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(outcome),
            docs.unwrap_or(0),
            share.map_or("-".into(), |r| format!("{:.1}%", r * 100.0)),
            data.stats
                .attempts_by_outcome
                .get(outcome)
                .copied()
                .unwrap_or(0),
        );
    }
    h.push_str("</table>\n");
}

fn tier_table(h: &mut String, data: &ReportData) {
    h.push_str(
        "<h2>Time per size tier</h2>\n<table>\n<thead><tr><th>tier</th><th>attempts</th><th>done</th>\
         <th>avg s/doc</th><th>p95 s/doc</th><th>avg s/page</th><th>p95 s/page</th>\
         <th>docs per worker-minute</th></tr></thead>\n",
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
}

/// A path as the library knows it: below the root it was found under
/// (`papers/big.pdf`), a file given by itself by its name, else whole.
pub(super) fn shorten(path: &str, roots: &[String]) -> String {
    roots
        .iter()
        .filter_map(|r| {
            let r = r.trim_end_matches('/');
            if path == r {
                return path.rsplit('/').next().filter(|n| !n.is_empty());
            }
            path.strip_prefix(r)?
                .strip_prefix('/')
                .filter(|rest| !rest.is_empty())
        })
        .min_by_key(|r| r.len())
        .map_or_else(|| path.to_string(), str::to_string)
}

/// A reason on one line, cut to a readable length.
fn one_line(s: &str) -> String {
    let flat = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match crate::units::clip(&flat, REASON_CHARS) {
        (text, true) => format!("{text}…"),
        (_, false) => flat,
    }
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
    fn paths_below_their_root_and_reasons_on_one_line() {
        let roots = vec!["/lib".to_string(), "/lib/papers/".to_string()];
        assert_eq!(shorten("/lib/papers/big.pdf", &roots), "big.pdf");
        assert_eq!(shorten("/lib/a.pdf", &roots), "a.pdf");
        assert_eq!(shorten("/library/a.pdf", &roots), "/library/a.pdf");
        assert_eq!(shorten("/lib", &roots), "lib");
        assert_eq!(
            shorten("/x/one.pdf", &["/x/one.pdf".to_string()]),
            "one.pdf"
        );
        assert_eq!(one_line("bad\n  xref\ttable"), "bad xref table");
        let long = one_line(&"word ".repeat(100));
        assert!(
            long.ends_with('…') && long.len() <= REASON_CHARS + 3,
            "{long}"
        );
    }

    #[test]
    fn escaping() {
        assert_eq!(
            esc(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
