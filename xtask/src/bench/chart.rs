//! The SVG chart: one panel per workload with log-scale bars, one colour per system.

use plotters::prelude::*;

use super::report::Combined;
use super::rows::{higher_is_better, WORKLOADS};

/// One colour per system: this project's systems in blues and greens, the peers in warm
/// colours and greys, so the two groups are told apart at a glance.
const OURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(23, 190, 207),
    RGBColor(44, 160, 44),
    RGBColor(0, 90, 60),
    RGBColor(90, 70, 200),
    RGBColor(120, 170, 230),
];
const PEERS: [RGBColor; 9] = [
    RGBColor(255, 127, 14),
    RGBColor(214, 39, 40),
    RGBColor(188, 189, 34),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(148, 103, 189),
    RGBColor(250, 190, 80),
    RGBColor(60, 60, 60),
];

const WIDTH: u32 = 1500;
const HEIGHT: u32 = 1150;
const LEGEND: u32 = 110;

fn colours(c: &Combined) -> Vec<RGBColor> {
    let (mut o, mut p) = (0, 0);
    c.systems
        .iter()
        .map(|s| {
            if s.ours {
                o += 1;
                OURS[(o - 1) % OURS.len()]
            } else {
                p += 1;
                PEERS[(p - 1) % PEERS.len()]
            }
        })
        .collect()
}

/// The chart as SVG text.
pub(super) fn svg(c: &Combined) -> Result<String, String> {
    let mut text = String::new();
    draw(c, &mut text).map_err(|e| e.to_string())?;
    Ok(text)
}

fn draw(c: &Combined, text: &mut String) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::with_string(text, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, legend) = root.split_vertically(HEIGHT - LEGEND);
    let title = format!(
        "unidist for Rust and its peers, `{}` (log scale; an x marks a failed or missing run)",
        c.command
    );
    let top = top.titled(&title, ("sans-serif", 20))?;
    let colours = colours(c);
    let n = c.systems.len();
    let cols = 5;
    let grid = (WORKLOADS.len().div_ceil(cols), cols);
    for (panel, (workload, unit)) in top.split_evenly(grid).iter().zip(WORKLOADS) {
        let values: Vec<(usize, Option<f64>)> = c
            .lines
            .iter()
            .filter(|l| l.workload == workload)
            .map(|l| {
                let v = l.cell.median.filter(|m| l.cell.status == "ok" && *m > 0.0);
                (l.system, v)
            })
            .collect();
        let present: Vec<f64> = values.iter().filter_map(|(_, v)| *v).collect();
        let better = if higher_is_better(unit) {
            "higher is better"
        } else {
            "lower is better"
        };
        let caption = format!("{workload} ({unit}, {better})");
        if present.is_empty() {
            panel
                .titled(&caption, ("sans-serif", 15))?
                .draw(&Text::new("no data", (20, 40), ("sans-serif", 14)))?;
            continue;
        }
        let lo = present.iter().copied().fold(f64::INFINITY, f64::min) / 3.0;
        let hi = present.iter().copied().fold(0.0, f64::max) * 3.0;
        let mut chart = ChartBuilder::on(panel)
            .caption(&caption, ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(8)
            .y_label_area_size(55)
            .build_cartesian_2d(0f64..n.max(1) as f64, (lo..hi).log_scale())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_labels(6)
            .y_label_formatter(&|v| super::report::fmt_num(*v))
            .label_style(("sans-serif", 11))
            .draw()?;
        for (i, v) in &values {
            let x = *i as f64;
            match v {
                Some(v) => {
                    chart.draw_series(std::iter::once(Rectangle::new(
                        [(x + 0.12, lo), (x + 0.88, *v)],
                        colours[*i].filled(),
                    )))?;
                }
                None => {
                    chart.draw_series(std::iter::once(Text::new(
                        "x",
                        (x + 0.35, lo * 1.4),
                        ("sans-serif", 14).into_font().color(&colours[*i]),
                    )))?;
                }
            }
        }
    }
    // The legend: a swatch and a name per system, in rows.
    let per_row = 5usize;
    for (i, s) in c.systems.iter().enumerate() {
        let x = 20 + (i % per_row) as i32 * 290;
        let y = 12 + (i / per_row) as i32 * 24;
        legend.draw(&Rectangle::new(
            [(x, y), (x + 16, y + 16)],
            colours[i].filled(),
        ))?;
        let name = if s.ours {
            format!("{} (this project)", s.display)
        } else {
            s.display.clone()
        };
        legend.draw(&Text::new(name, (x + 24, y + 2), ("sans-serif", 14)))?;
    }
    root.present()?;
    Ok(())
}
