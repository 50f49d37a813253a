//! The summary plot of an offline analysis (PNG, 1600x1000): fused valence and arousal
//! over time, each modality's own arousal (and valence where it has one), each modality's
//! weight, and the markers as vertical lines in every panel.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;

use crate::fusion::{FusedEstimate, Modality};

/// A marker: (time, label), client clock, s.
pub type PlotMarker = (f64, String);

const WIDTH: u32 = 1600;
const HEIGHT: u32 = 1000;

fn colour(m: Modality) -> RGBColor {
    match m {
        Modality::Face => RGBColor(31, 119, 180),
        Modality::Eeg => RGBColor(255, 127, 14),
        Modality::Cardiac => RGBColor(214, 39, 40),
        Modality::Eda => RGBColor(44, 160, 44),
        Modality::Respiration => RGBColor(148, 103, 189),
    }
}

fn register_font() -> Result<(), String> {
    static FONT: Once = Once::new();
    let mut result = Ok(());
    FONT.call_once(|| {
        result = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        )
        .map_err(|_| "the bundled DejaVu Sans font could not be read".to_string());
    });
    result
}

/// Draws the plot into `path`.
pub fn write(
    path: &Path,
    title: &str,
    fused: &[FusedEstimate],
    markers: &[PlotMarker],
) -> Result<(), String> {
    register_font()?;
    if fused.is_empty() {
        return Err("there are no fused estimates to plot".into());
    }
    let mut buffer = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (WIDTH, HEIGHT)).into_drawing_area();
        draw(&root, title, fused, markers).map_err(|e| format!("drawing the plot: {e}"))?;
        root.present()
            .map_err(|e| format!("drawing the plot: {e}"))?;
    }
    let image = image::RgbImage::from_raw(WIDTH, HEIGHT, buffer)
        .ok_or("the plot buffer has the wrong size")?;
    image
        .save_with_format(path, image::ImageFormat::Png)
        .map_err(|e| format!("writing {}: {e}", path.display()))
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;
type Chart<'a, 'b> = ChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// One panel: time on x, `y` on y, with its caption and axis labels.
fn chart_in<'a, 'b>(
    area: &'a Area<'b>,
    caption: &str,
    (t0, t1): (f64, f64),
    y: std::ops::Range<f64>,
    y_label: &str,
) -> Result<Chart<'a, 'b>, Box<dyn std::error::Error>> {
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 20))
        .margin(8)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(t0..t1, y)?;
    chart
        .configure_mesh()
        .x_desc("time, client clock (s)")
        .y_desc(y_label)
        .label_style(("sans-serif", 14))
        .draw()?;
    Ok(chart)
}

fn draw(
    root: &Area<'_>,
    title: &str,
    fused: &[FusedEstimate],
    markers: &[PlotMarker],
) -> Result<(), Box<dyn std::error::Error>> {
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 26))?;
    let panels = root.split_evenly((3, 1));
    let t0 = fused.first().map_or(0.0, |f| f.start_time);
    let t1 = fused.last().map_or(1.0, |f| f.end_time).max(t0 + 1.0);
    let mid = |f: &FusedEstimate| 0.5 * (f.start_time + f.end_time);

    let panel = |area, caption, y, y_label| chart_in(area, caption, (t0, t1), y, y_label);
    let draw_markers = |chart: &mut Chart<'_, '_>,
                        y: (f64, f64),
                        labelled: bool|
     -> Result<(), Box<dyn std::error::Error>> {
        for (t, label) in markers.iter().filter(|(t, _)| (t0..=t1).contains(t)) {
            chart.draw_series(LineSeries::new(
                [(*t, y.0), (*t, y.1)],
                BLACK.mix(0.5).stroke_width(1),
            ))?;
            if labelled {
                chart.draw_series(std::iter::once(Text::new(
                    label.chars().take(24).collect::<String>(),
                    (*t, y.1),
                    ("sans-serif", 13).into_font().color(&BLACK),
                )))?;
            }
        }
        Ok(())
    };

    // 1. Fused valence and arousal.
    let mut chart = panel(&panels[0], "Fused estimate", -1.0..1.0, "value")?;
    let valence: Vec<(f64, f64)> = fused
        .iter()
        .filter_map(|f| f.valence.map(|v| (mid(f), v)))
        .collect();
    let arousal: Vec<(f64, f64)> = fused
        .iter()
        .filter_map(|f| f.arousal.map(|a| (mid(f), a)))
        .collect();
    chart
        .draw_series(LineSeries::new(
            valence,
            RGBColor(31, 119, 180).stroke_width(2),
        ))?
        .label("valence [-1,1]")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], RGBColor(31, 119, 180)));
    chart
        .draw_series(LineSeries::new(
            arousal,
            RGBColor(214, 39, 40).stroke_width(2),
        ))?
        .label("arousal [0,1]")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], RGBColor(214, 39, 40)));
    draw_markers(&mut chart, (-1.0, 1.0), true)?;
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()?;

    // 2. Each modality's own arousal.
    let mut chart = panel(&panels[1], "Each modality's arousal", 0.0..1.0, "arousal")?;
    for m in Modality::ALL {
        let points: Vec<(f64, f64)> = fused
            .iter()
            .filter_map(|f| {
                f.contributions
                    .iter()
                    .find(|c| c.modality == m)
                    .and_then(|c| c.arousal)
                    .map(|a| (mid(f), a))
            })
            .collect();
        if points.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(points, colour(m).stroke_width(2)))?
            .label(m.name())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], colour(m)));
    }
    draw_markers(&mut chart, (0.0, 1.0), false)?;
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()?;

    // 3. Each modality's weight.
    let mut chart = panel(&panels[2], "Each modality's weight", 0.0..1.0, "weight")?;
    for m in Modality::ALL {
        let points: Vec<(f64, f64)> = fused
            .iter()
            .map(|f| {
                (
                    mid(f),
                    f.contributions
                        .iter()
                        .find(|c| c.modality == m)
                        .map_or(0.0, |c| c.weight),
                )
            })
            .collect();
        if points.iter().all(|(_, w)| *w == 0.0) {
            continue;
        }
        chart
            .draw_series(LineSeries::new(points, colour(m).stroke_width(2)))?
            .label(m.name())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], colour(m)));
    }
    draw_markers(&mut chart, (0.0, 1.0), false)?;
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()?;
    Ok(())
}
