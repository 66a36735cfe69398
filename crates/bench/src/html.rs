//! The report as one self-contained HTML page: inline SVG plots drawn with plotters' SVG
//! backend (which writes text as `<text>` elements, so without the `ttf` feature it needs no
//! font library, only plotters' rough estimate of text widths for the layout), the tables, and
//! no scripts or external resources, so the file can be mailed or opened offline.

use std::fmt::Write as _;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::types::RangedCoordf64;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::report::{self, Report, Row, pct, tokens};

type PlotResult = Result<(), Box<dyn std::error::Error>>;

const WIDTH: u32 = 1000;
const HEIGHT: u32 = 460;
/// Room at the right of each plot for its legend, which would otherwise cover the data.
const LEGEND_ROOM: u32 = 270;

/// The whole page.
pub fn html(report: &Report) -> String {
    let mut out = String::new();
    let title = format!("ponder bench: {} with {}", report.dataset, report.policy);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape(&title)
    );
    if let Some(banner) = &report.banner {
        let _ = writeln!(
            out,
            "<div id=\"simulated-banner\" class=\"banner\" role=\"alert\">{}</div>",
            escape(banner)
        );
    }
    let _ = writeln!(out, "<h1>{}</h1>", escape(&title));
    run_info(&mut out, report);

    out.push_str("<h2>Scaling</h2>\n");
    figure(
        &mut out,
        "scaling-plot",
        "Resolve rate against budget, one solid line per strategy with its Wilson 95% \
         interval; dashed: oracle best-of-k (some candidate at that budget resolves).",
        |area| scaling_plot(area, report),
    );
    out.push_str("<h2>Theory check</h2>\n");
    theory_text(&mut out, report);
    figure(
        &mut out,
        "theory-plot",
        "Oracle best-of-k measured against 1-(1-p)^k; shaded: the 95% band of the rate N \
         instances would show if candidates were independent. dev-search (hollow) is shown \
         for information: its candidates are not independent.",
        |area| theory_plot(area, report),
    );
    out.push_str("<h2>Tokens and difficulty</h2>\n");
    figure(
        &mut out,
        "tokens-plot",
        "Mean reasoning (solid) and answer (pale) tokens per instance, per difficulty bucket, \
         each strategy at its largest budget.",
        |area| tokens_plot(area, report),
    );

    out.push_str("<h2>Strategies and budgets</h2>\n");
    strategy_table(&mut out, report);
    out.push_str(
        "<h2>Selection efficiency</h2>\n<p>Resolved / oracle: how often a strategy picks a \
         resolving candidate when it has one.</p>\n",
    );
    efficiency_table(&mut out, report);
    if let Some(pk) = &report.pass_at_k {
        out.push_str("<h2>pass@k</h2>\n");
        pass_at_k_table(&mut out, report, pk);
    }
    out.push_str("<h2>Theory rows</h2>\n");
    theory_table(&mut out, report);
    out.push_str("<h2>By difficulty</h2>\n");
    group_table(&mut out, report, &report.by_difficulty, "difficulty-table");
    out.push_str("<h3>Mean reasoning / answer tokens per instance</h3>\n");
    tokens_table(&mut out, report);
    out.push_str("<h2>By repository</h2>\n");
    group_table(&mut out, report, &report.by_repo, "repo-table");
    missing_and_warnings(&mut out, report);
    out.push_str("</body>\n</html>\n");
    out
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    html_escape::encode_quoted_attribute(text).into_owned()
}

const STYLE: &str = "
body { font-family: sans-serif; margin: 1.5em auto; max-width: 1200px; padding: 0 1em; color: #222; }
.banner { background: #b00020; color: #fff; font-weight: bold; font-size: 1.2em;
  padding: 0.8em 1em; border-radius: 4px; margin-bottom: 1em; }
.note { background: #fff3cd; border: 1px solid #e0c36c; padding: 0.6em 1em; }
.bad { color: #b00020; font-weight: bold; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; white-space: nowrap; }
#run-info td { text-align: left; white-space: normal; }
th:first-child, td:first-child { text-align: left; }
th { background: #f0f0f0; }
.wide { overflow-x: auto; }
figure { margin: 0 0 1.5em; }
figcaption { font-size: 0.9em; color: #444; max-width: 1000px; }
pre { background: #f6f6f6; padding: 0.5em; overflow-x: auto; }
";

fn run_info(out: &mut String, report: &Report) {
    let c = &report.completeness;
    let _ = writeln!(
        out,
        "<table id=\"run-info\">\n\
         <tr><th>dataset</th><td>{}</td></tr>\n<tr><th>policy</th><td>{}</td></tr>\n\
         <tr><th>simulated</th><td>{}</td></tr>\n<tr><th>started</th><td>{}</td></tr>\n\
         <tr><th>ponder</th><td>{}</td></tr>\n<tr><th>strategies</th><td>{}</td></tr>\n\
         <tr><th>budgets</th><td>{}</td></tr>\n\
         <tr><th>instances</th><td>{} ({} complete, {} with cells)</td></tr>\n\
         <tr><th>cells</th><td>{} of {}</td></tr>\n</table>",
        escape(&report.dataset),
        escape(&report.policy),
        if report.simulated { "yes" } else { "no" },
        escape(&report.started),
        escape(&report.ponder_version),
        escape(&report.strategies.join(", ")),
        escape(
            &report
                .budgets
                .iter()
                .map(|b| b.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        c.instances,
        c.instances_complete,
        c.instances_with_cells,
        c.cells_found,
        c.cells_expected,
    );
    if let Some(note) = &c.note {
        let _ = writeln!(
            out,
            "<p id=\"partial-note\" class=\"note\">{}</p>",
            escape(note)
        );
    }
    if let Some(config) = &report.sim_config {
        let pretty = serde_json::to_string_pretty(config).unwrap_or_default();
        let _ = writeln!(
            out,
            "<details><summary>simulator settings</summary><pre>{}</pre></details>",
            escape(&pretty)
        );
    }
}

/// Draws one plot into an SVG string and wraps it in a `<figure>`; the id goes on the `<svg>`
/// itself (plotters does not set one, so it is added to the opening tag it writes).
fn figure(
    out: &mut String,
    id: &str,
    caption: &str,
    draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> PlotResult,
) {
    let mut svg = String::new();
    let result = {
        let backend = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT));
        let area = backend.into_drawing_area();
        area.fill(&WHITE)
            .map_err(|e| e.into())
            .and_then(|()| draw(&area))
            .and_then(|()| area.present().map_err(|e| e.into()))
    };
    let _ = writeln!(out, "<figure id=\"{id}-figure\">");
    match result {
        Ok(()) => {
            let svg = svg.replacen(
                "<svg ",
                &format!(
                    "<svg id=\"{id}\" role=\"img\" aria-label=\"{}\" ",
                    escape(caption)
                ),
                1,
            );
            out.push_str(&svg);
        }
        Err(e) => {
            let _ = writeln!(
                out,
                "<p class=\"bad\">this plot could not be drawn: {}</p>",
                escape(&e.to_string())
            );
        }
    }
    let _ = writeln!(
        out,
        "<figcaption>{}</figcaption>\n</figure>",
        escape(caption)
    );
}

/// A colour per strategy that stays the same across the plots.
fn color(strategy: &str, index: usize) -> RGBColor {
    match strategy {
        "dev-search" => RGBColor(31, 119, 180),
        "best-of-n" => RGBColor(255, 127, 14),
        "vote" => RGBColor(44, 160, 44),
        "endpoint-verify" => RGBColor(214, 39, 40),
        "single" => RGBColor(110, 110, 110),
        _ => [
            RGBColor(148, 103, 189),
            RGBColor(140, 86, 75),
            RGBColor(227, 119, 194),
            RGBColor(23, 190, 207),
        ][index % 4],
    }
}

/// The x coordinate of a budget: budgets are drawn on a log2 axis.
fn log2(budget: usize) -> f64 {
    (budget.max(1) as f64).log2()
}

/// An f64 axis whose ticks are exactly the given values: budgets at their log2, or the middles
/// of the difficulty groups. (plotters' own `with_key_points` gives up the default formatting
/// that `configure_mesh` needs.)
#[derive(Clone)]
struct Ticked {
    range: std::ops::Range<f64>,
    ticks: Vec<f64>,
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let span = self.range.end - self.range.start;
        let fraction = if span > 0.0 {
            (value - self.range.start) / span
        } else {
            0.5
        };
        limit.0 + (fraction * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, _hint: H) -> Vec<f64> {
        self.ticks.clone()
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.range.clone()
    }
}

/// The x axis for the report's budgets.
fn budget_axis(report: &Report) -> Ticked {
    let mut budgets: Vec<usize> = report.rows.iter().map(|r| r.budget).collect();
    budgets.extend(&report.budgets);
    budgets.sort_unstable();
    budgets.dedup();
    let max = budgets.iter().copied().map(log2).fold(1.0, f64::max);
    Ticked {
        range: -0.3..max + 0.3,
        ticks: budgets.into_iter().map(log2).collect(),
    }
}

fn budget_label(x: &f64) -> String {
    format!("{}", 2f64.powf(*x).round())
}

/// The rows of one strategy, by budget.
fn rows_of<'a>(report: &'a Report, strategy: &str) -> Vec<&'a Row> {
    let mut rows: Vec<&Row> = report
        .rows
        .iter()
        .filter(|r| r.strategy == strategy)
        .collect();
    rows.sort_by_key(|r| r.budget);
    rows
}

/// The strategies with rows, in the report's order.
fn strategies(report: &Report) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for r in &report.rows {
        if !names.contains(&r.strategy.as_str()) {
            names.push(&r.strategy);
        }
    }
    names
}

/// How a legend entry is marked.
enum Mark {
    Line,
    Dashed,
    Dot,
    Ring,
    Swatch,
}

/// A legend drawn by hand in the room kept at the right of a plot. (plotters' own legend is
/// clipped to the plotting area, so it would have to cover the data.)
#[derive(Default)]
struct Legend(Vec<(String, Mark, RGBAColor)>);

impl Legend {
    fn add(&mut self, label: impl Into<String>, mark: Mark, color: impl Color) {
        self.0.push((label.into(), mark, color.to_rgba()));
    }

    fn draw(&self, area: &DrawingArea<SVGBackend, Shift>) -> PlotResult {
        let x = (WIDTH - LEGEND_ROOM) as i32 + 12;
        let font =
            TextStyle::from(("sans-serif", 14).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
        let mut y = 60;
        for (label, mark, color) in &self.0 {
            let line = vec![(x, y), (x + 22, y)];
            match mark {
                Mark::Line => area.draw(&PathElement::new(line, color.stroke_width(2)))?,
                Mark::Dashed => {
                    area.draw(&DashedPathElement::new(line, 5, 3, color.stroke_width(2)))?
                }
                Mark::Dot => area.draw(&Circle::new((x + 11, y), 5, color.filled()))?,
                Mark::Ring => area.draw(&Circle::new((x + 11, y), 5, color.stroke_width(2)))?,
                Mark::Swatch => area.draw(&Rectangle::new(
                    [(x, y - 6), (x + 22, y + 6)],
                    color.filled(),
                ))?,
            }
            for line in wrap(label, 30) {
                area.draw(&Text::new(line, (x + 30, y), font.clone()))?;
                y += 18;
            }
            y += 4;
        }
        Ok(())
    }
}

/// Splits a legend label at spaces into lines of at most `width` characters (a longer word
/// stays whole): the legend's room is narrow.
fn wrap(label: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in label.split(' ') {
        match lines.last_mut() {
            Some(line) if line.chars().count() + 1 + word.chars().count() <= width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
}

/// A chart on `area` with the budgets' log2 axis and a rate from 0 to 1, the legend's room kept.
fn rate_chart<'a, 'b>(
    area: &'a DrawingArea<SVGBackend<'b>, Shift>,
    report: &Report,
    caption: &str,
    x_desc: &str,
    y_desc: &str,
) -> Result<
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<Ticked, RangedCoordf64>>,
    Box<dyn std::error::Error>,
> {
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 22))
        .margin(14)
        .margin_right(LEGEND_ROOM)
        .x_label_area_size(44)
        .y_label_area_size(60)
        .build_cartesian_2d(budget_axis(report), 0f64..1f64)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&budget_label)
        .y_label_formatter(&|y| format!("{:.0}%", y * 100.0))
        .light_line_style(WHITE.mix(0.0))
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 16))
        .draw()?;
    Ok(chart)
}

/// One oracle line of the scaling plot: (budget, rate) points, the strategies it stands for,
/// its colour.
type OracleLine<'a> = (Vec<(usize, f64)>, Vec<&'a str>, RGBColor);

fn scaling_plot(area: &DrawingArea<SVGBackend, Shift>, report: &Report) -> PlotResult {
    let mut chart = rate_chart(
        area,
        report,
        "Resolve rate vs budget",
        "budget (log2 scale)",
        "rate",
    )?;
    let mut legend = Legend::default();
    let names = strategies(report);
    // Spread the strategies a little along x so their error bars do not hide each other.
    let spread = |i: usize| (i as f64 - (names.len() as f64 - 1.0) / 2.0) * 0.035;
    // Strategies sharing their candidates have the same oracle line: draw it once.
    let mut oracles: Vec<OracleLine> = Vec::new();
    for (i, &name) in names.iter().enumerate() {
        let rows = rows_of(report, name);
        let c = color(name, i);
        let dx = spread(i);
        chart.draw_series(LineSeries::new(
            rows.iter().map(|r| (log2(r.budget) + dx, r.resolve_rate)),
            c.stroke_width(2),
        ))?;
        chart.draw_series(rows.iter().map(|r| {
            ErrorBar::new_vertical(
                log2(r.budget) + dx,
                r.resolve_ci.low,
                r.resolve_rate,
                r.resolve_ci.high,
                c.stroke_width(1),
                8,
            )
        }))?;
        chart.draw_series(
            rows.iter()
                .map(|r| Circle::new((log2(r.budget) + dx, r.resolve_rate), 4, c.filled())),
        )?;
        legend.add(name, Mark::Line, c);
        // One budget makes no line (single): its oracle is in the tables.
        let series: Vec<(usize, f64)> = rows.iter().map(|r| (r.budget, r.oracle_rate)).collect();
        if series.len() < 2 {
            continue;
        }
        match oracles.iter_mut().find(|(s, _, _)| *s == series) {
            Some((_, who, _)) => who.push(name),
            None => oracles.push((series, vec![name], c)),
        }
    }
    for (series, who, c) in oracles {
        let points: Vec<(f64, f64)> = series.iter().map(|&(b, r)| (log2(b), r)).collect();
        chart.draw_series(DashedLineSeries::new(
            points.clone(),
            7,
            5,
            c.stroke_width(2),
        ))?;
        chart.draw_series(
            points
                .iter()
                .map(|&p| Circle::new(p, 3, ShapeStyle::from(c).stroke_width(1))),
        )?;
        legend.add(format!("oracle: {}", who.join(" = ")), Mark::Dashed, c);
    }
    legend.draw(area)
}

fn theory_plot(area: &DrawingArea<SVGBackend, Shift>, report: &Report) -> PlotResult {
    let mut chart = rate_chart(
        area,
        report,
        "Oracle best-of-k vs 1-(1-p)^k",
        "k (log2 scale)",
        "oracle rate",
    )?;
    let Some(theory) = &report.theory else {
        return Ok(());
    };
    let mut legend = Legend::default();
    let p = theory.p;
    let max_k = report
        .rows
        .iter()
        .map(|r| r.budget)
        .chain(report.budgets.iter().copied())
        .max()
        .unwrap_or(1);

    // The band at every whole k up to the largest budget, for the number of instances of the
    // nearest measured budget at or above k (they differ only in a partial run).
    let n_at = |k: usize| {
        theory
            .rows
            .iter()
            .find(|r| r.k >= k)
            .or(theory.rows.last())
            .map(|r| r.instances)
    };
    let band: Vec<(f64, f64, f64)> = (1..=max_k)
        .filter_map(|k| {
            let expected = 1.0 - (1.0 - p).powi(k as i32);
            let (low, high) = report::binomial_band(n_at(k)?, expected);
            Some((log2(k), low, high))
        })
        .collect();
    if !band.is_empty() {
        let outline: Vec<(f64, f64)> = band
            .iter()
            .map(|&(x, low, _)| (x, low))
            .chain(band.iter().rev().map(|&(x, _, high)| (x, high)))
            .collect();
        let shade = RGBColor(70, 130, 180).mix(0.22);
        chart.draw_series(std::iter::once(Polygon::new(outline, shade.filled())))?;
        let n = n_at(max_k).unwrap_or(0);
        legend.add(format!("95% band, {n} instances"), Mark::Swatch, shade);
    }
    // The curve over continuous k from 1 to the largest budget.
    let steps = 100;
    let top = log2(max_k);
    chart.draw_series(LineSeries::new(
        (0..=steps).map(|i| {
            let x = top * i as f64 / steps as f64;
            (x, 1.0 - (1.0 - p).powf(2f64.powf(x)))
        }),
        BLACK.stroke_width(2),
    ))?;
    legend.add(format!("1-(1-p)^k, p = {p:.3}"), Mark::Line, BLACK);

    if let Some(strategy) = &theory.strategy {
        let c = color(strategy, 0);
        chart.draw_series(LineSeries::new(
            theory.rows.iter().map(|r| (log2(r.k), r.measured)),
            c.stroke_width(2),
        ))?;
        chart.draw_series(
            theory
                .rows
                .iter()
                .map(|r| Circle::new((log2(r.k), r.measured), 5, c.filled())),
        )?;
        legend.add(format!("measured: {strategy}"), Mark::Dot, c);
    }
    if !theory.dev_search.is_empty() {
        let c = color(report::DEV_SEARCH, 0);
        chart.draw_series(DashedLineSeries::new(
            theory.dev_search.iter().map(|r| (log2(r.k), r.measured)),
            5,
            4,
            c.stroke_width(1),
        ))?;
        chart.draw_series(
            theory
                .dev_search
                .iter()
                .map(|r| Circle::new((log2(r.k), r.measured), 5, c.stroke_width(2))),
        )?;
        legend.add("dev-search (informational)", Mark::Ring, c);
    }
    legend.draw(area)
}

fn tokens_plot(area: &DrawingArea<SVGBackend, Shift>, report: &Report) -> PlotResult {
    let mut buckets: Vec<&str> = Vec::new();
    for t in &report.tokens_by_difficulty {
        if !buckets.contains(&t.bucket.as_str()) {
            buckets.push(&t.bucket);
        }
    }
    // Each strategy at its largest budget.
    let names = strategies(report);
    let chosen: Vec<(&str, usize)> = names
        .iter()
        .filter_map(|&s| rows_of(report, s).last().map(|r| (s, r.budget)))
        .collect();
    let mean = |s: &str, b: usize, bucket: &str| {
        report
            .tokens_by_difficulty
            .iter()
            .find(|t| t.strategy == s && t.budget == b && t.bucket == bucket)
    };
    let y_max = report
        .tokens_by_difficulty
        .iter()
        .filter(|t| chosen.contains(&(t.strategy.as_str(), t.budget)))
        .map(|t| t.mean_reasoning.max(t.mean_answer))
        .fold(0.0, f64::max)
        .max(1.0)
        * 1.1;
    let groups = buckets.len().max(1);
    let mut chart = ChartBuilder::on(area)
        .caption(
            "Reasoning vs answer tokens per difficulty bucket",
            ("sans-serif", 22),
        )
        .margin(14)
        .margin_right(LEGEND_ROOM)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(
            Ticked {
                range: 0.0..groups as f64,
                ticks: (0..groups).map(|i| i as f64 + 0.5).collect(),
            },
            0f64..y_max,
        )?;
    let bucket_names = buckets.clone();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_desc("difficulty bucket")
        .y_desc("mean tokens per instance")
        .x_label_formatter(&|x| {
            bucket_names
                .get(x.floor() as usize)
                .map(|s| s.to_string())
                .unwrap_or_default()
        })
        .y_label_formatter(&|y| tokens(*y))
        .light_line_style(WHITE.mix(0.0))
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 16))
        .draw()?;

    // Within a bucket's unit of x: a pair of bars (reasoning, answer) per strategy.
    let mut legend = Legend::default();
    let bar = 0.8 / (2 * chosen.len().max(1)) as f64;
    for (i, &(strategy, budget)) in chosen.iter().enumerate() {
        let c = color(strategy, i);
        let mut bars = Vec::new();
        for (g, bucket) in buckets.iter().enumerate() {
            let Some(t) = mean(strategy, budget, bucket) else {
                continue;
            };
            let x0 = g as f64 + 0.1 + 2.0 * i as f64 * bar;
            bars.push(Rectangle::new(
                [(x0, 0.0), (x0 + bar, t.mean_reasoning)],
                c.filled(),
            ));
            bars.push(Rectangle::new(
                [(x0 + bar, 0.0), (x0 + 2.0 * bar, t.mean_answer)],
                c.mix(0.35).filled(),
            ));
        }
        chart.draw_series(bars)?;
        legend.add(format!("{strategy} (b{budget})"), Mark::Swatch, c);
    }
    legend.add("left bar: reasoning", Mark::Swatch, RGBColor(90, 90, 90));
    legend.add(
        "right bar (pale): answer",
        Mark::Swatch,
        RGBColor(90, 90, 90).mix(0.35),
    );
    legend.draw(area)
}

fn theory_text(out: &mut String, report: &Report) {
    match &report.theory {
        Some(t) => {
            let _ = writeln!(
                out,
                "<p>{}. p = {:.3}: {}.</p>",
                escape(&capitalize(&t.statement)),
                t.p,
                escape(&t.p_source)
            );
            if !t.rows.is_empty() {
                let verdict = if t.all_inside {
                    "<p id=\"theory-verdict\">Every measured oracle rate is inside its band.</p>"
                } else {
                    "<p id=\"theory-verdict\" class=\"bad\">Some measured oracle rates fall \
                     outside their band.</p>"
                };
                let _ = writeln!(out, "{verdict}");
            }
        }
        None => out.push_str(
            "<p>No theory check: p is unknown (not simulated) and the run has no whole-rollout \
             strategy to estimate it from.</p>\n",
        ),
    }
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn ci(i: report::Interval) -> String {
    format!("{:.1}&ndash;{:.1}%", 100.0 * i.low, 100.0 * i.high)
}

fn strategy_table(out: &mut String, report: &Report) {
    out.push_str(
        "<div class=\"wide\"><table id=\"strategy-table\">\n<tr><th>strategy</th><th>budget</th>\
         <th>n</th><th>resolved</th><th>95% CI</th><th>oracle</th><th>95% CI</th>\
         <th>efficiency</th><th>prompt/inst</th><th>completion/inst</th><th>reasoning/inst</th>\
         <th>answer/inst</th><th>tokens/resolved</th><th>s/inst</th><th>s total</th>\
         <th>errors</th></tr>\n",
    );
    for r in &report.rows {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} ({})</td><td>{}</td><td>{} ({})</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{:.1}</td><td>{:.0}</td><td>{}</td></tr>",
            escape(&r.strategy),
            r.budget,
            r.instances,
            r.resolved,
            pct(r.resolve_rate),
            ci(r.resolve_ci),
            r.oracle,
            pct(r.oracle_rate),
            ci(r.oracle_ci),
            r.selection_efficiency
                .map(|e| format!("{e:.2}"))
                .unwrap_or_else(|| "&ndash;".into()),
            tokens(r.tokens_mean.prompt),
            tokens(r.tokens_mean.completion),
            tokens(r.tokens_mean.reasoning),
            tokens(r.tokens_mean.answer),
            r.tokens_per_resolved
                .map(tokens)
                .unwrap_or_else(|| "&ndash;".into()),
            r.seconds_mean,
            r.seconds_total,
            r.errors,
        );
    }
    out.push_str("</table></div>\n");
}

/// The budgets that have rows, ascending.
fn row_budgets(report: &Report) -> Vec<usize> {
    let mut budgets: Vec<usize> = report.rows.iter().map(|r| r.budget).collect();
    budgets.sort_unstable();
    budgets.dedup();
    budgets
}

fn efficiency_table(out: &mut String, report: &Report) {
    let budgets = row_budgets(report);
    out.push_str("<table id=\"efficiency-table\">\n<tr><th>strategy</th>");
    for b in &budgets {
        let _ = write!(out, "<th>b{b}</th>");
    }
    out.push_str("</tr>\n");
    for name in strategies(report) {
        let _ = write!(out, "<tr><td>{}</td>", escape(name));
        for &b in &budgets {
            let cell = report
                .rows
                .iter()
                .find(|r| r.strategy == name && r.budget == b)
                .map(|r| match r.selection_efficiency {
                    Some(e) => format!("{e:.2} ({}/{})", r.resolved, r.oracle),
                    None => format!("&ndash; ({}/0)", r.resolved),
                })
                .unwrap_or_default();
            let _ = write!(out, "<td>{cell}</td>");
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
}

fn pass_at_k_table(out: &mut String, report: &Report, pk: &report::PassAtK) {
    let _ = writeln!(
        out,
        "<p>Unbiased estimator (Chen et al. 2021), averaged over instances, from the candidates \
         of {} at budget {}; the measured oracle rate at budget k is shown beside it.</p>",
        escape(&pk.strategy),
        pk.budget
    );
    out.push_str(
        "<table id=\"pass-at-k-table\">\n<tr><th>k</th><th>instances</th><th>pass@k</th>\
         <th>oracle at budget k</th></tr>\n",
    );
    for v in &pk.values {
        let oracle = report
            .rows
            .iter()
            .find(|r| r.strategy == pk.strategy && r.budget == v.k)
            .map(|r| pct(r.oracle_rate))
            .unwrap_or_else(|| "&ndash;".into());
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{oracle}</td></tr>",
            v.k,
            v.instances,
            pct(v.value)
        );
    }
    out.push_str("</table>\n");
}

fn theory_table(out: &mut String, report: &Report) {
    let Some(t) = &report.theory else {
        out.push_str("<p>None.</p>\n");
        return;
    };
    out.push_str(
        "<table id=\"theory-table\">\n<tr><th>oracle of</th><th>k</th><th>n</th>\
         <th>measured</th><th>expected</th><th>95% band</th><th></th></tr>\n",
    );
    let mut line = |who: &str, r: &report::TheoryRow, verdict: &str| {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}&ndash;{}</td>\
             <td>{verdict}</td></tr>",
            escape(who),
            r.k,
            r.instances,
            pct(r.measured),
            pct(r.expected),
            pct(r.band_low),
            pct(r.band_high),
        );
    };
    for r in &t.rows {
        let verdict = if r.inside {
            "inside"
        } else {
            "<span class=\"bad\">outside</span>"
        };
        line(t.strategy.as_deref().unwrap_or(""), r, verdict);
    }
    for r in &t.dev_search {
        let verdict = if r.inside {
            "inside (informational)"
        } else {
            "outside (informational)"
        };
        line(report::DEV_SEARCH, r, verdict);
    }
    out.push_str("</table>\n");
}

/// A row per (strategy, budget), a column per group (repository or bucket): there are fewer
/// groups than (strategy, budget) pairs in a usual run, so this stays narrow.
fn group_table(out: &mut String, report: &Report, groups: &[report::GroupRates], id: &str) {
    let _ = write!(
        out,
        "<div class=\"wide\"><table id=\"{id}\">\n<tr><th>strategy</th><th>budget</th>"
    );
    for g in groups {
        let _ = write!(
            out,
            "<th>{}<br>({} instances)</th>",
            escape(&g.group),
            g.instances
        );
    }
    out.push_str("</tr>\n");
    for r in &report.rows {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td>",
            escape(&r.strategy),
            r.budget
        );
        for g in groups {
            let cell = g
                .rates
                .iter()
                .find(|x| x.strategy == r.strategy && x.budget == r.budget)
                .map(|x| format!("{} ({}/{})", pct(x.rate), x.resolved, x.instances))
                .unwrap_or_default();
            let _ = write!(out, "<td>{cell}</td>");
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table></div>\n");
}

fn tokens_table(out: &mut String, report: &Report) {
    let mut buckets: Vec<&str> = Vec::new();
    for t in &report.tokens_by_difficulty {
        if !buckets.contains(&t.bucket.as_str()) {
            buckets.push(&t.bucket);
        }
    }
    out.push_str(
        "<div class=\"wide\"><table id=\"tokens-table\">\n<tr><th>strategy</th><th>budget</th>",
    );
    for b in &buckets {
        let _ = write!(out, "<th>{}</th>", escape(b));
    }
    out.push_str("</tr>\n");
    for r in &report.rows {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td>",
            escape(&r.strategy),
            r.budget
        );
        for b in &buckets {
            let cell = report
                .tokens_by_difficulty
                .iter()
                .find(|t| t.strategy == r.strategy && t.budget == r.budget && t.bucket == *b)
                .map(|t| format!("{} / {}", tokens(t.mean_reasoning), tokens(t.mean_answer)))
                .unwrap_or_default();
            let _ = write!(out, "<td>{cell}</td>");
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table></div>\n");
}

fn missing_and_warnings(out: &mut String, report: &Report) {
    let missing = &report.completeness.missing;
    if !missing.is_empty() {
        out.push_str("<h2>Missing cells</h2>\n<ul id=\"missing-cells\">\n");
        for m in missing {
            let _ = writeln!(
                out,
                "<li>{}: {}</li>",
                escape(&m.instance_id),
                escape(&m.cells.join(", "))
            );
        }
        out.push_str("</ul>\n");
    }
    if !report.warnings.is_empty() {
        out.push_str("<h2>Warnings</h2>\n<ul id=\"warnings\">\n");
        for w in &report.warnings {
            let _ = writeln!(out, "<li>{}</li>", escape(w));
        }
        out.push_str("</ul>\n");
    }
}
