//! Pictures drawn on the server as inline SVG: a datapoint's time series and a
//! trace's waterfall. No script and no outside asset draws them, and they carry no
//! `style` attribute (the Content-Security-Policy forbids inline style): positions
//! are SVG geometry, colours come from classes in `app.css`.

use std::collections::HashMap;
use std::fmt::Write as _;

use keygate_store::data::SpanInput;

use super::html::esc;

/// The drawing's size in SVG units (it scales to the page's width).
const W: f64 = 640.0;
const H: f64 = 200.0;
/// Room for the value labels (left) and the time labels (below).
const LEFT: f64 = 64.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;
/// Past this many values, points are not marked one by one.
const DOTS_UP_TO: usize = 60;

/// A number for an axis label: short, without a trailing `.0`.
fn number(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(0.001..1e9).contains(&a) {
        return format!("{v:.3e}");
    }
    let text = if a >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    };
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// A time for an axis label: `MM-DD HH:MM` UTC (the page says UTC).
fn clock(ms: i64) -> String {
    let full = keygate_core::date::utc(ms.div_euclid(1000));
    // "2023-11-14 22:13:20 UTC" → "11-14 22:13".
    full.get(5..16).unwrap_or(&full).to_owned()
}

/// Past this many values, the line is drawn through each pixel column's lowest and
/// highest value (spikes stay visible; the SVG stays small).
const DRAW_UP_TO: usize = 1200;

/// `points` thinned to at most about [`DRAW_UP_TO`]: for each run of them, its lowest
/// and highest value, in time order.
fn thin(points: &[(i64, f64)]) -> Vec<(i64, f64)> {
    if points.len() <= DRAW_UP_TO {
        return points.to_vec();
    }
    let per = points.len().div_ceil(DRAW_UP_TO / 2);
    let mut out = Vec::with_capacity(DRAW_UP_TO + 2);
    for run in points.chunks(per) {
        let lo = run.iter().min_by(|a, b| a.1.total_cmp(&b.1));
        let hi = run.iter().max_by(|a, b| a.1.total_cmp(&b.1));
        if let (Some(&lo), Some(&hi)) = (lo, hi) {
            if lo.0 <= hi.0 {
                out.extend([lo, hi]);
            } else {
                out.extend([hi, lo]);
            }
        }
    }
    out
}

/// A line chart of `points` (epoch ms, value; oldest first) over `from_ms..=to_ms`,
/// named `label` for screen readers. The range is the points' own where the window
/// is open-ended.
pub fn series(points: &[(i64, f64)], (from_ms, to_ms): (i64, i64), label: &str) -> String {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return "<p class=\"empty chart-empty\">No values in this range.</p>".to_owned();
    };
    let (t0, t1) = if from_ms == i64::MIN || to_ms == i64::MAX {
        (first.0, last.0)
    } else {
        (from_ms, to_ms)
    };
    let span_t = (t1 - t0).max(1) as f64;
    let finite = points.iter().map(|p| p.1).filter(|v| v.is_finite());
    let (mut lo, mut hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
        (l.min(v), h.max(v))
    });
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    if (hi - lo).abs() < f64::EPSILON {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        (lo, hi) = (lo - pad, hi + pad);
    }
    let x = |t: i64| LEFT + (t - t0) as f64 / span_t * (W - LEFT - RIGHT);
    let y = |v: f64| TOP + (hi - v) / (hi - lo) * (H - TOP - BOTTOM);
    let mut out = String::with_capacity(256 + points.len() * 16);
    let _ = write!(
        out,
        "<svg class=\"chart\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{name}: {n} values, from {lo_l} to {hi_l}\"><title>{name}</title>",
        name = esc(label),
        n = points.len(),
        lo_l = number(lo),
        hi_l = number(hi),
    );
    // Grid: the bottom, middle and top values.
    for v in [lo, (lo + hi) / 2.0, hi] {
        let yy = y(v);
        let _ = write!(
            out,
            "<line class=\"chart-grid\" x1=\"{LEFT}\" x2=\"{x2}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\"/><text class=\"chart-label\" x=\"{lx}\" y=\"{ty:.1}\" text-anchor=\"end\">{}</text>",
            number(v),
            x2 = W - RIGHT,
            lx = LEFT - 6.0,
            ty = yy + 4.0,
        );
    }
    let _ = write!(
        out,
        "<text class=\"chart-label\" x=\"{LEFT}\" y=\"{ty}\">{}</text><text class=\"chart-label\" x=\"{rx}\" y=\"{ty}\" text-anchor=\"end\">{} UTC</text>",
        clock(t0),
        clock(t1),
        ty = H - 8.0,
        rx = W - RIGHT,
    );
    out.push_str("<polyline class=\"chart-line\" points=\"");
    for &(t, v) in thin(points).iter().filter(|p| p.1.is_finite()) {
        let _ = write!(out, "{:.1},{:.1} ", x(t), y(v));
    }
    out.push_str("\"/>");
    if points.len() <= DOTS_UP_TO {
        for &(t, v) in points.iter().filter(|p| p.1.is_finite()) {
            let _ = write!(
                out,
                "<circle class=\"chart-dot\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\"><title>{} UTC: {}</title></circle>",
                x(t),
                y(v),
                keygate_core::date::utc(t.div_euclid(1000)).trim_end_matches(" UTC"),
                number(v)
            );
        }
    }
    out.push_str("</svg>");
    out
}

/// One row of a waterfall: a span, how deep it sits in its trace.
pub struct Row<'a> {
    /// The span.
    pub span: &'a SpanInput,
    /// 0 for a root, 1 for its children, and so on.
    pub depth: usize,
}

/// A trace's spans in waterfall order: each parent before its children, siblings by
/// start. Spans whose parent is not among them (not sent, or pruned) are roots.
pub fn waterfall_order(spans: &[SpanInput]) -> Vec<Row<'_>> {
    let ids: HashMap<&str, usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.span_id.as_str(), i))
        .collect();
    let mut children: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut roots = Vec::new();
    for (i, s) in spans.iter().enumerate() {
        let parent = s.parent_span_id.as_str();
        if parent.is_empty() || !ids.contains_key(parent) || parent == s.span_id {
            roots.push(i);
        } else {
            children.entry(parent).or_default().push(i);
        }
    }
    let by_start = |v: &mut Vec<usize>| v.sort_by_key(|&i| (spans[i].start_ns, i));
    by_start(&mut roots);
    for v in children.values_mut() {
        by_start(v);
    }
    let mut out = Vec::with_capacity(spans.len());
    let mut seen = vec![false; spans.len()];
    // Depth-first without recursion (a trace may be deep); `seen` stops a cycle.
    let mut stack: Vec<(usize, usize)> = roots.iter().rev().map(|&i| (i, 0)).collect();
    while let Some((i, depth)) = stack.pop() {
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        out.push(Row {
            span: &spans[i],
            depth,
        });
        if let Some(kids) = children.get(spans[i].span_id.as_str()) {
            stack.extend(kids.iter().rev().map(|&k| (k, depth + 1)));
        }
    }
    // Spans only reachable through a cycle of parents: shown as roots at the end.
    for (i, s) in spans.iter().enumerate() {
        if !seen[i] {
            out.push(Row { span: s, depth: 0 });
        }
    }
    out
}

/// A duration in nanoseconds, for people: `850 µs`, `12.5 ms`, `3.2 s`.
pub fn duration(ns: i64) -> String {
    let ns = ns.max(0) as f64;
    if ns < 1e6 {
        format!("{} µs", number(ns / 1e3))
    } else if ns < 1e9 {
        format!("{} ms", number(ns / 1e6))
    } else {
        format!("{} s", number(ns / 1e9))
    }
}

/// A span's bar within its trace (`t0..t1` in ns), as a small SVG: a 1000-unit-wide
/// track the bar sits on where the span ran.
pub fn bar(span: &SpanInput, (t0, t1): (i64, i64)) -> String {
    let total = (t1 - t0).max(1) as f64;
    let x = (span.start_ns - t0) as f64 / total * 1000.0;
    let w = ((span.end_ns - span.start_ns) as f64 / total * 1000.0).max(2.0);
    let class = if span.status == "error" {
        "bar bar-error"
    } else {
        "bar"
    };
    format!(
        "<svg class=\"span-bar\" viewBox=\"0 0 1000 12\" preserveAspectRatio=\"none\" aria-hidden=\"true\"><rect class=\"track\" x=\"0\" y=\"0\" width=\"1000\" height=\"12\"/><rect class=\"{class}\" x=\"{x:.1}\" y=\"0\" width=\"{w:.1}\" height=\"12\"/></svg>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: &str, parent: &str, start: i64, end: i64) -> SpanInput {
        SpanInput {
            span_id: id.to_owned(),
            parent_span_id: parent.to_owned(),
            name: id.to_owned(),
            start_ns: start,
            end_ns: end,
            ..SpanInput::default()
        }
    }

    #[test]
    fn a_series_is_a_line_through_its_points_with_labels() {
        let svg = series(
            &[(1_700_000_000_000, 10.0), (1_700_000_060_000, 20.0)],
            (1_700_000_000_000, 1_700_000_060_000),
            "CPU <busy>",
        );
        assert!(svg.starts_with("<svg class=\"chart\""));
        assert!(svg.contains("aria-label=\"CPU &lt;busy&gt;: 2 values, from 10 to 20\""));
        // The first point at the left edge and bottom, the last at the right and top.
        assert!(svg.contains("points=\"64.0,172.0 628.0,12.0 \""), "{svg}");
        assert!(svg.contains(">11-14 22:13<"));
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(!svg.contains("style="));
        assert!(series(&[], (0, 1), "x").contains("No values"));
        // One value, or all equal: a flat line in the middle, not a division by zero.
        let flat = series(&[(5, 3.0), (6, 3.0)], (i64::MIN, i64::MAX), "flat");
        assert!(flat.contains("points=\"64.0,92.0 628.0,92.0 \""), "{flat}");
    }

    #[test]
    fn long_series_are_thinned_keeping_their_spikes() {
        let mut points: Vec<(i64, f64)> = (0..10_000).map(|i| (i, 1.0)).collect();
        points[5_001].1 = 99.0;
        let t = thin(&points);
        assert!(t.len() <= DRAW_UP_TO + 2, "{}", t.len());
        assert!(t.contains(&(5_001, 99.0)));
        assert!(t.windows(2).all(|w| w[0].0 <= w[1].0), "in time order");
        let svg = series(&points, (0, 9_999), "long");
        assert!(svg.contains("10000 values, from 1 to 99"));
        assert_eq!(svg.matches("<circle").count(), 0);
    }

    #[test]
    fn the_waterfall_puts_children_under_parents_in_start_order() {
        let spans = vec![
            span("c2", "root", 30, 40),
            span("root", "", 0, 100),
            span("c1", "root", 10, 20),
            span("g1", "c1", 12, 15),
            span("orphan", "missing", 50, 60),
            span("loop-a", "loop-b", 70, 71),
            span("loop-b", "loop-a", 72, 73),
        ];
        let order: Vec<(&str, usize)> = waterfall_order(&spans)
            .iter()
            .map(|r| (r.span.span_id.as_str(), r.depth))
            .collect();
        assert_eq!(
            order,
            [
                ("root", 0),
                ("c1", 1),
                ("g1", 2),
                ("c2", 1),
                ("orphan", 0),
                ("loop-a", 0),
                ("loop-b", 0)
            ]
        );
        let b = bar(&spans[0], (0, 100));
        assert!(
            b.contains("x=\"300.0\"") && b.contains("width=\"100.0\""),
            "{b}"
        );
        assert_eq!(duration(850_000), "850 µs");
        assert_eq!(duration(12_500_000), "12.5 ms");
        assert_eq!(duration(3_200_000_000), "3.2 s");
    }
}
