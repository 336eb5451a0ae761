//! `cargo xtask timeline-svg trace.json out.svg`: a Gantt chart of a unidist timeline trace
//! (`UNIDIST_TIMELINE`), one row per thread of every rank, for pictures without a browser.

use std::collections::BTreeMap;

use plotters::prelude::*;
use serde_json::Value as Json;

const WIDTH: u32 = 1400;
const ROW: u32 = 40;
const LABELS: u32 = 300;
const MARGIN: u32 = 90;

/// One colour per event category, in legend order; other categories are not drawn.
const CATEGORIES: [(&str, RGBColor); 5] = [
    ("task", RGBColor(31, 119, 180)),
    ("actor_call", RGBColor(44, 160, 44)),
    ("actor_create", RGBColor(148, 103, 189)),
    ("get", RGBColor(255, 127, 14)),
    ("wait", RGBColor(214, 39, 40)),
];

/// A complete event on one row, in milliseconds from the trace's first event.
struct Bar {
    row: usize,
    start: f64,
    end: f64,
    category: String,
}

/// The chart's contents: row names (rank and thread), bars and flow arrows.
struct Chart {
    rows: Vec<String>,
    bars: Vec<Bar>,
    /// (row, ms) of a submission to (row, ms) of its execution.
    flows: Vec<((usize, f64), (usize, f64))>,
    span_ms: f64,
}

/// Runs the command; arguments are the trace and the SVG to write.
pub(crate) fn timeline_svg(args: &[String]) -> i32 {
    let [trace, out] = args else {
        eprintln!("usage: cargo xtask timeline-svg TRACE.json OUT.svg");
        return 2;
    };
    match render(trace, out) {
        Ok(rows) => {
            println!("timeline-svg: wrote {out} ({rows} threads)");
            0
        }
        Err(e) => {
            eprintln!("xtask timeline-svg: {e}");
            1
        }
    }
}

/// Draws the trace at `trace` into the SVG `out`; returns how many rows (threads) it has.
pub(crate) fn render(trace: &str, out: &str) -> Result<usize, String> {
    let text = std::fs::read_to_string(trace).map_err(|e| format!("cannot read {trace}: {e}"))?;
    let json: Json =
        serde_json::from_str(&text).map_err(|e| format!("{trace} is not JSON: {e}"))?;
    let events = json["traceEvents"]
        .as_array()
        .ok_or_else(|| format!("{trace} has no traceEvents array"))?;
    let chart = chart(events);
    if chart.rows.is_empty() {
        return Err(format!("{trace} has no complete events to draw"));
    }
    let mut svg = String::new();
    draw(&chart, &mut svg).map_err(|e| format!("drawing the chart: {e}"))?;
    std::fs::write(out, svg).map_err(|e| format!("cannot write {out}: {e}"))?;
    Ok(chart.rows.len())
}

/// Rows for every (process, thread) with a complete event, sorted; bars and flows on them.
fn chart(events: &[Json]) -> Chart {
    let key = |e: &Json| {
        (
            e["pid"].as_u64().unwrap_or(0),
            e["tid"].as_u64().unwrap_or(0),
        )
    };
    let mut processes = BTreeMap::new();
    let mut threads = BTreeMap::new();
    for e in events.iter().filter(|e| e["ph"] == "M") {
        let name = e["args"]["name"].as_str().unwrap_or_default().to_string();
        match e["name"].as_str() {
            Some("process_name") => drop(processes.insert(key(e).0, name)),
            Some("thread_name") => drop(threads.insert(key(e), name)),
            _ => {}
        }
    }
    let ts = |e: &Json| e["ts"].as_f64().unwrap_or(0.0);
    let timed: Vec<&Json> = events.iter().filter(|e| e["ph"] != "M").collect();
    let origin = timed.iter().map(|e| ts(e)).fold(f64::INFINITY, f64::min);
    let mut keys: Vec<(u64, u64)> = timed
        .iter()
        .filter(|e| e["ph"] == "X")
        .map(|e| key(e))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let row_of = |k: (u64, u64)| keys.binary_search(&k).ok();
    let rows = keys
        .iter()
        .map(|k| {
            let process = processes
                .get(&k.0)
                .cloned()
                .unwrap_or(format!("pid {}", k.0));
            let thread = threads.get(k).cloned().unwrap_or(format!("tid {}", k.1));
            format!("{process}: {thread}")
        })
        .collect();
    let mut bars = Vec::new();
    let mut starts = BTreeMap::new();
    let mut ends = BTreeMap::new();
    for e in &timed {
        let at = (ts(e) - origin) / 1000.0;
        match e["ph"].as_str() {
            Some("X") => bars.push(Bar {
                row: row_of(key(e)).unwrap_or(0),
                start: at,
                end: at + e["dur"].as_f64().unwrap_or(0.0) / 1000.0,
                category: e["cat"].as_str().unwrap_or_default().to_string(),
            }),
            Some("s") => drop(starts.insert(e["id"].as_u64(), (key(e), at))),
            Some("f") => drop(ends.insert(e["id"].as_u64(), (key(e), at))),
            _ => {}
        }
    }
    let flows = starts
        .iter()
        .filter_map(|(id, (from, t0))| {
            let (to, t1) = ends.get(id)?;
            Some(((row_of(*from)?, *t0), (row_of(*to)?, *t1)))
        })
        .collect();
    let span_ms = bars.iter().map(|b| b.end).fold(0.0, f64::max).max(0.001);
    Chart {
        rows,
        bars,
        flows,
        span_ms,
    }
}

fn draw(c: &Chart, text: &mut String) -> Result<(), Box<dyn std::error::Error>> {
    let n = c.rows.len();
    let height = MARGIN + ROW * n as u32 + 60;
    let root = SVGBackend::with_string(text, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("unidist timeline (one row per thread)", ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(LABELS)
        .build_cartesian_2d(0.0..c.span_ms * 1.02, 0.0..n as f64)?;
    let rows = c.rows.clone();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n * 2 + 1)
        .y_label_formatter(&move |y| {
            // Labels sit at row centres (n - row - 0.5); other label positions stay empty.
            let slot = n as f64 - y - 0.5;
            let row = slot.round();
            if (slot - row).abs() < 0.01 && row >= 0.0 && (row as usize) < rows.len() {
                rows[row as usize].clone()
            } else {
                String::new()
            }
        })
        .x_desc("milliseconds")
        .draw()?;
    let y = |row: usize| n as f64 - row as f64 - 0.5;
    chart.draw_series(c.flows.iter().map(|((r0, t0), (r1, t1))| {
        PathElement::new(vec![(*t0, y(*r0)), (*t1, y(*r1))], RGBColor(170, 170, 170))
    }))?;
    for (category, fill) in CATEGORIES {
        chart
            .draw_series(c.bars.iter().filter(|b| b.category == category).map(|b| {
                Rectangle::new(
                    [(b.start, y(b.row) - 0.38), (b.end, y(b.row) + 0.38)],
                    fill.filled(),
                )
            }))?
            .label(category)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], fill.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_bars_and_flows_come_from_the_trace() {
        let trace = serde_json::json!([
            {"ph": "M", "name": "process_name", "pid": 0, "tid": 0, "args": {"name": "rank 0 (h)"}},
            {"ph": "M", "name": "thread_name", "pid": 0, "tid": 2, "args": {"name": "pool-1"}},
            {"ph": "s", "id": 7, "pid": 0, "tid": 1, "ts": 1000.0},
            {"ph": "f", "id": 7, "pid": 0, "tid": 2, "ts": 1500.0},
            {"ph": "X", "cat": "task", "name": "f", "pid": 0, "tid": 2, "ts": 1500.0, "dur": 2000.0},
            {"ph": "X", "cat": "get", "name": "get", "pid": 0, "tid": 1, "ts": 1000.0, "dur": 3000.0},
        ]);
        let c = chart(trace.as_array().unwrap());
        assert_eq!(c.rows, ["rank 0 (h): tid 1", "rank 0 (h): pool-1"]);
        assert_eq!(c.bars.len(), 2);
        assert_eq!(
            (c.bars[0].row, c.bars[0].start, c.bars[0].end),
            (1, 0.5, 2.5)
        );
        assert_eq!(c.flows, [((0, 0.0), (1, 0.5))]);
        assert_eq!(c.span_ms, 3.0);
        let mut svg = String::new();
        draw(&c, &mut svg).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("pool-1"), "{svg}");
    }
}
