//! The report's charts, drawn with plotters' SVG backend into strings that
//! are inlined into the page. Text is written as SVG `<text>` and laid out by
//! the browser, so no font is read at build or run time.
//!
//! Every chart copes with no data: it is drawn as an empty frame with a note
//! saying why, because a report of a run killed in its first second is still
//! a report.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::ReportError;

pub const WIDTH: u32 = 900;
pub const HEIGHT: u32 = 320;
const FONT: &str = "sans-serif";

/// One line of a line chart.
pub struct Series {
    pub name: String,
    pub color: RGBColor,
    pub points: Vec<(f64, f64)>,
}

/// A point marked on a line chart, with a short label.
pub struct Marker {
    pub x: f64,
    pub y: f64,
    pub label: String,
}

pub struct LineChart<'a> {
    pub title: &'a str,
    pub y_desc: &'a str,
    pub series: Vec<Series>,
    pub markers: Vec<Marker>,
    /// Said under the chart when there is too little to draw.
    pub empty_note: &'a str,
    /// A count (workers, documents): the axis ends one above the largest
    /// value and is labelled at whole numbers only.
    pub integer: bool,
}

/// The top of the y axis and the most labels on it: room above the data,
/// and for a count one whole number above its largest value, with no more
/// labels than there are whole numbers, so none falls between two.
fn y_axis(max: f64, integer: bool) -> (f64, usize) {
    if integer {
        let top = max.max(0.0).ceil() + 1.0;
        (top, (top as usize + 1).min(11))
    } else if max > 0.0 {
        (max * 1.15, 10)
    } else {
        (1.0, 10)
    }
}

/// A label at a whole number, and none between (for counts).
fn whole(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-6 {
        format!("{:.0}", v)
    } else {
        String::new()
    }
}

/// A label for a measure.
fn measure(v: &f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for ReportError {
    fn from(e: DrawingAreaErrorKind<E>) -> Self {
        ReportError::Chart(e.to_string())
    }
}

/// A chart over time (x in seconds since the run started).
pub fn line_chart(c: &LineChart) -> Result<String, ReportError> {
    let points = c.series.iter().map(|s| s.points.len()).sum::<usize>();
    if points == 0 {
        return empty_chart(c.title, c.empty_note);
    }
    let all = || c.series.iter().flat_map(|s| s.points.iter());
    let x_max = all().map(|p| p.0).fold(0.0, f64::max).max(1.0);
    let y_max = all()
        .map(|p| p.1)
        .chain(c.markers.iter().map(|m| m.y))
        .fold(0.0, f64::max);
    let (y_max, y_labels) = y_axis(y_max, c.integer);
    let y_format: &dyn Fn(&f64) -> String = if c.integer { &whole } else { &measure };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(c.title, (FONT, 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
        chart
            .configure_mesh()
            .x_desc("seconds since the run started")
            .y_desc(c.y_desc)
            .y_labels(y_labels)
            .y_label_formatter(y_format)
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 14))
            // Only the bold mesh at the labels: the fine one is noise here.
            .light_line_style(WHITE)
            .draw()?;
        for s in &c.series {
            let color = s.color;
            chart
                .draw_series(LineSeries::new(
                    s.points.iter().copied(),
                    color.stroke_width(2),
                ))?
                .label(s.name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
            // A lone reading draws no line; a dot shows it is there.
            if s.points.len() == 1 {
                chart.draw_series(s.points.iter().map(|p| Circle::new(*p, 4, color.filled())))?;
            }
        }
        if !c.markers.is_empty() {
            chart.draw_series(
                c.markers
                    .iter()
                    .map(|m| Circle::new((m.x, m.y), 5, RED.filled())),
            )?;
            chart.draw_series(c.markers.iter().map(|m| {
                Text::new(
                    m.label.clone(),
                    (m.x, m.y),
                    (FONT, 14).into_font().color(&RED),
                )
            }))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .label_font((FONT, 14))
            .draw()?;
        if points < 2 * c.series.len() {
            note(&root, "only one sample: too few to draw a trend")?;
        }
        root.present()?;
    }
    Ok(svg)
}

/// One bar group per category; each category has up to two values (drawn
/// side by side), e.g. the average and the 95th percentile.
pub struct BarChart<'a> {
    pub title: &'a str,
    pub y_desc: &'a str,
    pub categories: Vec<String>,
    /// (name, color, one value per category; None draws nothing there).
    pub values: Vec<(String, RGBColor, Vec<Option<f64>>)>,
    pub empty_note: &'a str,
    /// The values are counts (see `LineChart::integer`).
    pub integer: bool,
}

pub fn bar_chart(c: &BarChart) -> Result<String, ReportError> {
    let y_max = c
        .values
        .iter()
        .flat_map(|(_, _, v)| v.iter().flatten())
        .copied()
        .fold(0.0, f64::max);
    if c.categories.is_empty() || y_max <= 0.0 {
        return empty_chart(c.title, c.empty_note);
    }
    let n = c.categories.len();
    let (y_top, y_labels) = y_axis(y_max, c.integer);
    let y_format: &dyn Fn(&f64) -> String = if c.integer { &whole } else { &measure };
    let groups = c.values.len().max(1) as f64;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        // Categories sit at the integers, so the axis labels (at whole
        // numbers) land under the middle of each group.
        let mut chart = ChartBuilder::on(&root)
            .caption(c.title, (FONT, 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.5f64..n as f64 - 0.5, 0f64..y_top)?;
        let label = |x: &f64| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < n {
                c.categories[i as usize].clone()
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&label)
            .y_desc(c.y_desc)
            .y_labels(y_labels)
            .y_label_formatter(y_format)
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 14))
            // Only the bold mesh at the labels: the fine one is noise here.
            .light_line_style(WHITE)
            .draw()?;
        let width = 0.7 / groups;
        for (g, (name, color, values)) in c.values.iter().enumerate() {
            let color = *color;
            let left = -0.35 + g as f64 * width;
            chart
                .draw_series(values.iter().enumerate().filter_map(|(i, v)| {
                    let v = (*v)?;
                    let x0 = i as f64 + left;
                    Some(Rectangle::new(
                        [(x0, 0.0), (x0 + width * 0.9, v)],
                        color.filled(),
                    ))
                }))?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
                });
        }
        if c.values.len() > 1 {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(180, 180, 180))
                .label_font((FONT, 14))
                .draw()?;
        }
        root.present()?;
    }
    Ok(svg)
}

/// A frame with the title and a note instead of data.
pub fn empty_chart(title: &str, why: &str) -> Result<String, ReportError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        root.draw(&Rectangle::new(
            [(1, 1), (WIDTH as i32 - 2, HEIGHT as i32 - 2)],
            RGBColor(200, 200, 200).stroke_width(1),
        ))?;
        root.draw(&Text::new(
            title.to_string(),
            (16, 16),
            (FONT, 18).into_font(),
        ))?;
        note(&root, why)?;
        root.present()?;
    }
    Ok(svg)
}

fn note(root: &DrawingArea<SVGBackend, Shift>, text: &str) -> Result<(), ReportError> {
    root.draw(&Text::new(
        text.to_string(),
        (WIDTH as i32 / 2 - 3 * text.len() as i32, HEIGHT as i32 / 2),
        (FONT, 14).into_font().color(&RGBColor(120, 120, 120)),
    ))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(points: Vec<(f64, f64)>) -> String {
        line_chart(&LineChart {
            title: "workers",
            y_desc: "workers",
            series: vec![Series {
                name: "live".into(),
                color: BLUE,
                points,
            }],
            markers: vec![],
            empty_note: "no samples",
            integer: true,
        })
        .unwrap()
    }

    #[test]
    fn empty_and_single_sample_charts_draw() {
        let none = chart(vec![]);
        assert!(
            none.starts_with("<svg") && none.contains("no samples"),
            "{none}"
        );
        let one = chart(vec![(0.0, 2.0)]);
        assert!(
            one.contains("<circle") && one.contains("only one sample"),
            "{one}"
        );
        let many = chart(vec![(0.0, 1.0), (3.0, 2.0), (6.0, 2.0)]);
        assert!(many.contains("<polyline"), "{many}");
    }

    #[test]
    fn bars_and_empty_bars() {
        let c = BarChart {
            title: "t",
            y_desc: "s",
            categories: vec!["tiny".into(), "small".into()],
            values: vec![
                ("avg".into(), BLUE, vec![Some(1.0), None]),
                ("p95".into(), RED, vec![Some(2.0), None]),
            ],
            empty_note: "nothing",
            integer: false,
        };
        let svg = bar_chart(&c).unwrap();
        assert!(svg.matches("<rect").count() >= 3, "{svg}");
        assert!(svg.contains("tiny") && svg.contains("small"), "{svg}");
        let empty = bar_chart(&BarChart {
            values: vec![("avg".into(), BLUE, vec![None, None])],
            ..c
        })
        .unwrap();
        assert!(empty.contains("nothing"));
    }

    /// The y labels of a chart: the text of every `<text>` left of the plot.
    fn y_labels(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| {
                let x: f64 = t.split("x=\"").nth(1)?.split('"').next()?.parse().ok()?;
                let text = t.split('>').nth(1)?.split('<').next()?.trim().to_string();
                (x < 70.0 && !text.is_empty()).then_some(text)
            })
            .collect()
    }

    #[test]
    fn count_axes_have_whole_labels_and_end_above_the_data() {
        // Two workers at most: the axis runs 0..3, labelled 0, 1, 2, 3.
        let svg = chart(vec![(0.0, 1.0), (3.0, 2.0), (6.0, 2.0)]);
        // Every text left of the plot but the axis's name.
        let labels: Vec<String> = y_labels(&svg)
            .into_iter()
            .filter(|l| l != "workers")
            .collect();
        assert!(!labels.is_empty(), "{svg}");
        for l in &labels {
            assert!(l.parse::<u32>().is_ok(), "label {l:?} of {labels:?}");
        }
        assert!(labels.iter().any(|l| l == "3"), "{labels:?}");
        assert!(
            labels.iter().all(|l| l.parse::<u32>().unwrap() <= 3),
            "{labels:?}"
        );
        assert_eq!(y_axis(2.0, true), (3.0, 4));
        assert_eq!(y_axis(40.0, true), (41.0, 11));
        assert_eq!(y_axis(0.0, true), (1.0, 2));
        assert_eq!((whole(&2.0), whole(&2.5)), ("2".to_string(), String::new()));
        assert_eq!(measure(&0.25), "0.25");
    }

    #[test]
    fn labels_are_escaped() {
        let svg = empty_chart("a <b> & c", "x < y").unwrap();
        assert!(svg.contains("a &lt;b") && svg.contains("&amp; c"), "{svg}");
    }
}
