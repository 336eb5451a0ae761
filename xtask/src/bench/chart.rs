//! The SVG charts: one panel per workload (or per Ray microbenchmark name) with log-scale
//! bars, one colour per system.

use plotters::prelude::*;

use super::ray_names::{RayNames, NAMES};
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

/// One colour per system, given whether each is this project's, in order.
fn colours(ours: impl Iterator<Item = bool>) -> Vec<RGBColor> {
    let (mut o, mut p) = (0, 0);
    ours.map(|ours| {
        if ours {
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
    let title = format!(
        "unidist for Rust and its peers, `{}` (log scale; an x marks a failed or missing run)",
        c.command
    );
    let systems: Vec<(String, bool)> = c
        .systems
        .iter()
        .map(|s| (s.display.clone(), s.ours))
        .collect();
    let panels: Vec<Panel> = WORKLOADS
        .iter()
        .map(|(workload, unit)| {
            let better = if higher_is_better(unit) {
                "higher is better"
            } else {
                "lower is better"
            };
            let values = c
                .lines
                .iter()
                .filter(|l| l.workload == *workload)
                .map(|l| {
                    let v = l.cell.median.filter(|m| l.cell.status == "ok" && *m > 0.0);
                    (l.system, v, None)
                })
                .collect();
            Panel {
                caption: format!("{workload} ({unit}, {better})"),
                values,
            }
        })
        .collect();
    render(&title, &panels, &systems, (5, HEIGHT))
}

/// The chart of the Ray-names group: one panel per name, a bar per system (Ray and this
/// project's), in Ray's units (all rates: higher is better).
pub(super) fn ray_names_svg(group: &RayNames) -> Result<String, String> {
    let title = format!(
        "Ray's microbenchmark names beside `ray microbenchmark`, `{}` (log scale; over a bar: its rate over Ray's)",
        group.command
    );
    let systems: Vec<(String, bool)> = group
        .columns
        .iter()
        .map(|c| (c.label.clone(), c.ours))
        .collect();
    let panels: Vec<Panel> = NAMES
        .iter()
        .map(|(name, _, unit)| Panel {
            caption: format!("{name} ({unit})"),
            values: group
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let rate = c.rows.get(*name).and_then(|r| r.as_ref().ok());
                    let over_ray = rate
                        .filter(|_| c.ours)
                        .and_then(|r| group.ratio(name, r))
                        .map(|x| format!("{}x", super::report::fmt_num(x)));
                    (i, rate.map(|r| r.mean).filter(|m| *m > 0.0), over_ray)
                })
                .collect(),
        })
        .collect();
    render(&title, &panels, &systems, (4, 1000))
}

/// One panel: its caption and each system's value (by index), `None` for a missing one, with
/// a label to write over the bar.
struct Panel {
    caption: String,
    values: Vec<(usize, Option<f64>, Option<String>)>,
}

/// Draws `panels` in a grid of `cols` columns over a legend of `systems` (name, ours).
fn render(
    title: &str,
    panels: &[Panel],
    systems: &[(String, bool)],
    (cols, height): (usize, u32),
) -> Result<String, String> {
    let mut text = String::new();
    draw(title, panels, systems, (cols, height), &mut text).map_err(|e| e.to_string())?;
    Ok(text)
}

fn draw(
    title: &str,
    panels: &[Panel],
    systems: &[(String, bool)],
    (cols, height): (usize, u32),
    text: &mut String,
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::with_string(text, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, legend) = root.split_vertically(height - LEGEND);
    let top = top.titled(title, ("sans-serif", 20))?;
    let colours = colours(systems.iter().map(|(_, ours)| *ours));
    let n = systems.len();
    let grid = (panels.len().div_ceil(cols), cols);
    for (area, panel) in top.split_evenly(grid).iter().zip(panels) {
        let present: Vec<f64> = panel.values.iter().filter_map(|(_, v, _)| *v).collect();
        if present.is_empty() {
            area.titled(&panel.caption, ("sans-serif", 15))?
                .draw(&Text::new("no data", (20, 40), ("sans-serif", 14)))?;
            continue;
        }
        let lo = present.iter().copied().fold(f64::INFINITY, f64::min) / 3.0;
        let hi = present.iter().copied().fold(0.0, f64::max) * 3.0;
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.caption, ("sans-serif", 15))
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
        for (i, v, label) in &panel.values {
            let x = *i as f64;
            match v {
                Some(v) => {
                    chart.draw_series(std::iter::once(Rectangle::new(
                        [(x + 0.12, lo), (x + 0.88, *v)],
                        colours[*i].filled(),
                    )))?;
                    if let Some(label) = label {
                        chart.draw_series(std::iter::once(Text::new(
                            label.clone(),
                            (x + 0.1, v * 1.6),
                            ("sans-serif", 11),
                        )))?;
                    }
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
    for (i, (display, ours)) in systems.iter().enumerate() {
        let x = 20 + (i % per_row) as i32 * 290;
        let y = 12 + (i / per_row) as i32 * 24;
        legend.draw(&Rectangle::new(
            [(x, y), (x + 16, y + 16)],
            colours[i].filled(),
        ))?;
        let name = if *ours {
            format!("{display} (this project)")
        } else {
            display.clone()
        };
        legend.draw(&Text::new(name, (x + 24, y + 2), ("sans-serif", 14)))?;
    }
    root.present()?;
    Ok(())
}
