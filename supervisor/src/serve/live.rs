//! The run page (`/run`): the newest index run on the database, read from
//! what the run itself writes there — its row in `runs`, the snapshots it
//! stores every few seconds in `samples` (counts, workers, queue by tier,
//! the jobs running now), and its failed `attempts` as they commit. While
//! the run goes on, the page's figures are pushed to it as server-sent
//! events, once a second; the charts are the report's own
//! (`metrics::report::draw_charts`), fetched again every few seconds. A
//! reload, or a page opened later, reads the same state from the database,
//! and with no run going on the page shows the last one.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use maud::{html, Markup, PreEscaped};

use super::error::ServeError;
use super::html::{duration, page, time};
use super::App;
use crate::metrics::{report, RateWindow, Rates, Snapshot, SAMPLE_EVERY_MS};
use crate::store::{now_ms, RunFailure, RunInfo, SqliteStore};
use crate::units::format_size;

/// Where the run lock cannot be seen, a run without an end whose newest
/// sample is older than this is taken for dead (killed, or its machine
/// went down): several sample periods.
const SILENT_MS: i64 = 5 * SAMPLE_EVERY_MS;
/// Samples read for the rates: enough to span their 30 s window.
const RATE_SAMPLES: usize = 40;
/// Failures listed.
const FAILURES: usize = 20;
/// How often the figures are pushed, and the charts fetched again.
const PUSH_EVERY: Duration = Duration::from_secs(1);
const CHARTS_EVERY_MS: u32 = 10_000;

/// The run page's figures at one moment.
pub struct Live {
    run: Option<RunView>,
}

struct RunView {
    info: RunInfo,
    going: bool,
    last: Option<Snapshot>,
    /// The paths of the jobs running in `last`, in its order.
    running_paths: Vec<String>,
    rates: Rates,
    failures: Vec<RunFailure>,
    now_ms: i64,
}

/// Whether the run `info` (the newest) goes on: it has no end, and the
/// lock an index run holds is held (which also covers a run still finding
/// its files, before its first sample), or, where locks cannot be seen
/// from outside, it stored a sample lately.
fn going(info: &RunInfo, lock_held: Option<bool>, heard_ms: i64, now_ms: i64) -> bool {
    info.ended_ms.is_none()
        && match lock_held {
            Some(held) => held,
            None => now_ms - heard_ms < SILENT_MS,
        }
}

fn read(store: &SqliteStore, db: &std::path::Path) -> Result<Live, ServeError> {
    let Some(id) = store.newest_run()? else {
        return Ok(Live { run: None });
    };
    let Some(info) = store.run_info(id)? else {
        return Ok(Live { run: None });
    };
    let samples = store.last_samples(id, RATE_SAMPLES)?;
    let mut window = RateWindow::default();
    for s in &samples {
        window.push(s.t_ms, s.docs.docs_done, s.docs.pages_done);
    }
    let now = now_ms();
    let heard = samples.last().map_or(info.started_ms, |s| s.t_ms);
    let running_paths = samples
        .last()
        .map(|s| {
            s.running
                .iter()
                .map(|j| Ok(store.display_path(j.doc)?.unwrap_or_default()))
                .collect::<Result<Vec<_>, ServeError>>()
        })
        .transpose()?
        .unwrap_or_default();
    Ok(Live {
        run: Some(RunView {
            going: going(&info, crate::run::lock_held(db), heard, now),
            last: samples.last().cloned(),
            running_paths,
            rates: window.rates(),
            failures: store.failures_in_run(id, FAILURES)?,
            now_ms: now,
            info,
        }),
    })
}

pub async fn handler(State(app): State<App>) -> Response {
    let db = app.catalog.db().to_path_buf();
    let state = app
        .catalog
        .read(move |store| {
            let live = read(store, &db)?;
            let charts = match &live.run {
                Some(r) => charts(store, r.info.id)?,
                None => html! {},
            };
            Ok((live, charts))
        })
        .await;
    match state {
        Ok((live, charts)) => render(&live, charts).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `/run/charts`: the charts of the newest run, as a fragment of the page.
pub async fn charts_handler(State(app): State<App>) -> Response {
    let svg = app
        .catalog
        .read(|store| match store.newest_run()? {
            Some(id) => charts(store, id),
            None => Ok(html! {}),
        })
        .await;
    match svg {
        Ok(m) => m.into_response(),
        Err(e) => e.into_response(),
    }
}

fn charts(store: &SqliteStore, run: i64) -> Result<Markup, ServeError> {
    let data = report::load(store, Some(run))?;
    let charts = report::draw_charts(&data)?;
    Ok(html! {
        @for (title, svg) in charts {
            figure.chart title=(title) {
                // The report's own SVG, drawn by plotters from numbers:
                // every text in it is docmill's.
                (PreEscaped(svg))
            }
        }
    })
}

/// `/run/events`: the live section of the page, pushed once a second as a
/// JSON string of escaped HTML (an event's data cannot hold every
/// character a reason may), for as long as the page is open.
pub async fn events(State(app): State<App>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = stream::unfold((app, None::<String>), |(app, previous)| async move {
        loop {
            if previous.is_some() {
                tokio::time::sleep(PUSH_EVERY).await;
            }
            let db = app.catalog.db().to_path_buf();
            let fragment = app
                .catalog
                .read(move |store| Ok(section(&read(store, &db)?).into_string()))
                .await;
            let fragment = match fragment {
                Ok(f) => f,
                Err(e) => html! { p.error { (crate::cli::chain(&e)) } }.into_string(),
            };
            // Nothing new is not sent: a finished run's page stays still,
            // and a new run is seen within a second.
            if previous.as_ref() == Some(&fragment) {
                continue;
            }
            let going = fragment.contains("data-going=\"true\"");
            let event = Event::default()
                .event(if going { "live" } else { "idle" })
                .data(serde_json::to_string(&fragment).unwrap_or_default());
            return Some((Ok(event), (app, Some(fragment))));
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

fn render(live: &Live, charts: Markup) -> Markup {
    let script = format!(
        "(function() {{
  var updates = 0, live = document.getElementById('live'), charts = document.getElementById('charts');
  var lastCharts = Date.now();
  function refreshCharts() {{
    lastCharts = Date.now();
    fetch('/run/charts').then(function(r) {{ return r.text(); }}).then(function(t) {{ charts.innerHTML = t; }});
  }}
  function take(e) {{
    var wasGoing = live.querySelector('[data-going=\"true\"]') !== null;
    live.innerHTML = JSON.parse(e.data);
    updates += 1;
    document.body.setAttribute('data-updates', updates);
    var going = e.type === 'live';
    if ((going && Date.now() - lastCharts > {CHARTS_EVERY_MS}) || (wasGoing && !going)) refreshCharts();
  }}
  var source = new EventSource('/run/events');
  source.addEventListener('live', take);
  source.addEventListener('idle', take);
}})();"
    );
    page(
        "Run",
        html! {
            div #live { (section(live)) }
            h2 { "Charts" }
            div #charts { (charts) }
            script { (PreEscaped(script)) }
        },
    )
}

/// The part of the page that is pushed: the run's state, its figures, the
/// jobs running now and the failures so far.
fn section(live: &Live) -> Markup {
    let Some(r) = &live.run else {
        return html! { p.state #state data-going="false" { "No index run yet: run docmill index on this database." } };
    };
    let info = &r.info;
    let snap = r.last.clone().unwrap_or_default();
    let docs = snap.docs;
    let end = info.ended_ms.unwrap_or(if r.going {
        r.now_ms
    } else {
        snap.t_ms.max(info.started_ms)
    });
    let wall = (end - info.started_ms).max(0) as f64 / 1000.0;
    let state = if r.going && r.last.is_none() {
        format!("Run {} is going on: finding files", info.id)
    } else if r.going {
        format!("Run {} is going on", info.id)
    } else if info.ended_ms.is_some() {
        format!(
            "Run {} finished (exit {})",
            info.id,
            info.exit_code.map_or("-".to_string(), |c| c.to_string())
        )
    } else {
        format!(
            "Run {} stopped without finishing (killed, or its machine went down)",
            info.id
        )
    };
    let rate = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
    // While it goes, the rates over the last half minute; after, over the
    // whole run.
    let rates = if r.going {
        r.rates
    } else {
        let minutes = wall / 60.0;
        Rates {
            docs_per_min: (minutes > 0.0).then(|| docs.docs_done as f64 / minutes),
            pages_per_min: (minutes > 0.0).then(|| docs.pages_done as f64 / minutes),
        }
    };
    let eta = if r.going {
        r.rates
            .eta_s(docs.remaining())
            .map_or("-".to_string(), duration)
    } else {
        "-".to_string()
    };
    let tiers: Vec<String> = snap
        .queue_by_tier
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(t, n)| format!("{t} {n}"))
        .collect();
    html! {
        p.state #state data-going=(r.going) { (state) }
        table.figures #figures {
            tr { td { "started" } td { (time(info.started_ms)) } }
            tr { td { "wall time" } td #wall { (duration(wall)) } }
            tr { td { "documents" } td {
                span #docs-done { (docs.docs_done) } " done of " span #docs-total { (docs.docs_total) }
                ", " span #docs-failed { (docs.docs_failed) } " failed, " (docs.remaining()) " to go"
            } }
            tr { td { "pages" } td #pages-done { (docs.pages_done) } }
            tr {
                td { @if r.going { "rate (last 30 s)" } @else { "rate (whole run)" } }
                td #rate { (rate(rates.docs_per_min)) " docs/min, " (rate(rates.pages_per_min)) " pages/min" }
            }
            @if r.going {
                tr { td { "ETA" } td #eta { (eta) } }
                tr { td { "workers" } td #workers { (snap.busy) " busy of " (snap.workers) " (bounds " (snap.min_workers) ".." (snap.max_workers) ")" } }
                tr { td { "queue" } td #queue {
                    (snap.queue_depth)
                    @if !tiers.is_empty() { " (" (tiers.join(", ")) ")" }
                } }
                tr { td { "CPU" } td { (format!("{:.0}", snap.cpu_percent)) "% (this run " (format!("{:.0}", snap.cpu_own_percent)) "%)" } }
                tr { td { "memory" } td {
                    (format_size(snap.memory_used_bytes))
                    @if let Some(b) = snap.memory_budget_bytes { " of " (format_size(b)) }
                } }
            }
            @if let Some(d) = &snap.decision { tr { td { "last decision" } td { (d) } } }
        }
        @if r.going {
            h2 { "Running now" }
            table #running {
                tr { th { "document" } th { "pages" } th { "attempt" } th { "for" } th { "worker" } }
                @for (j, path) in snap.running.iter().zip(&r.running_paths) {
                    tr {
                        td { a href=(format!("/doc/{}", j.doc)) { (path) } }
                        td {
                            (j.pages_done)
                            @if j.pages_expected > 0 { " of " (j.pages_expected) }
                            @if let Some((f, l)) = j.pages { " (chunk " (f) "–" (l) ")" }
                        }
                        td { (j.attempt) }
                        td { (duration((r.now_ms - j.started_ms) as f64 / 1000.0)) }
                        td { (j.pid) }
                    }
                }
            }
        }
        h2 { "Failures" }
        @if r.failures.is_empty() {
            p #no-failures { "None so far." }
        } @else {
            table #failures {
                tr { th { "when" } th { "document" } th { "outcome" } th { "reason" } }
                @for f in &r.failures {
                    tr {
                        td { (time(f.ended_ms)) }
                        td { a href=(format!("/doc/{}", f.doc)) { (f.path) } }
                        td { (f.outcome) }
                        td { (f.reason.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{DocCounts, RunningJob};

    fn view(going: bool, ended: Option<i64>) -> Live {
        let snap = Snapshot {
            t_ms: 60_000,
            workers: 2,
            busy: 1,
            docs: DocCounts {
                docs_total: 10,
                docs_done: 4,
                docs_failed: 1,
                pages_done: 40,
                ..DocCounts::default()
            },
            running: vec![RunningJob {
                doc: 7,
                started_ms: 50_000,
                pages_done: 3,
                pages_expected: 9,
                attempt: 1,
                ..RunningJob::default()
            }],
            ..Snapshot::default()
        };
        Live {
            run: Some(RunView {
                info: RunInfo {
                    id: 3,
                    started_ms: 0,
                    ended_ms: ended,
                    owner: "h:1".into(),
                    options: serde_json::json!({}),
                    totals: None,
                    exit_code: ended.map(|_| 0),
                },
                going,
                last: Some(snap),
                running_paths: vec!["/lib/<b>x</b>.pdf".into()],
                rates: Rates {
                    docs_per_min: Some(6.0),
                    pages_per_min: Some(60.0),
                },
                failures: vec![RunFailure {
                    doc: 8,
                    path: "/lib/<i>bad</i>.pdf".into(),
                    outcome: "crashed".into(),
                    reason: Some("signal 11".into()),
                    ended_ms: 55_000,
                }],
                now_ms: 62_000,
            }),
        }
    }

    #[test]
    fn a_going_run_shows_its_jobs_rate_and_eta() {
        let html = section(&view(true, None)).into_string();
        assert!(html.contains("data-going=\"true\""), "{html}");
        assert!(html.contains("is going on"));
        // 5 documents to go at 6 a minute.
        assert!(html.contains("<td id=\"eta\">50.0s</td>"), "{html}");
        assert!(
            html.contains("href=\"/doc/7\">/lib/&lt;b&gt;x&lt;/b&gt;.pdf"),
            "{html}"
        );
        assert!(html.contains("3 of 9"));
        assert!(
            html.contains("12.0s"),
            "elapsed from the job's start: {html}"
        );
        assert!(html.contains("/lib/&lt;i&gt;bad&lt;/i&gt;.pdf"));
        assert!(!html.contains("<b>") && !html.contains("<i>"));
    }

    #[test]
    fn a_run_goes_on_while_its_lock_is_held() {
        let Some(RunView { info, .. }) = view(true, None).run else {
            unreachable!()
        };
        // Held: going, even with no sample for a long while (a long walk).
        assert!(going(&info, Some(true), 0, 1_000_000));
        assert!(!going(&info, Some(false), 60_000, 61_000), "killed");
        // No lock to see: the samples' age decides.
        assert!(going(&info, None, 60_000, 61_000));
        assert!(!going(&info, None, 0, 1_000_000));
        let ended = RunInfo {
            ended_ms: Some(5),
            ..info
        };
        assert!(!going(&ended, Some(true), 0, 1));
    }

    #[test]
    fn a_finished_or_dead_run_is_said_so() {
        let html = section(&view(false, Some(120_000))).into_string();
        assert!(html.contains("data-going=\"false\""));
        assert!(html.contains("Run 3 finished (exit 0)"), "{html}");
        // The whole run's rate: 4 documents in 2 minutes.
        assert!(html.contains("2 docs/min"), "{html}");
        assert!(!html.contains("Running now"));
        let html = section(&view(false, None)).into_string();
        assert!(html.contains("stopped without finishing"), "{html}");
        let html = section(&Live { run: None }).into_string();
        assert!(html.contains("No index run yet"));
    }
}
