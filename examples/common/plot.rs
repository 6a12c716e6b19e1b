//! PNG line charts: plotters' bitmap backend draws into a buffer, `image` writes the PNG.
//!
//! Text is drawn by ab_glyph from a TrueType file read at run time (`$TAPEGRAD_FONT`, else
//! DejaVu Sans or Liberation Sans where Debian installs them: `apt-get install
//! fonts-dejavu-core`). Without a font the charts are still drawn, without any text.

use plotters::coord::Shift;
use plotters::prelude::*;
use std::error::Error;
use std::path::Path;
use std::sync::OnceLock;

/// One line of a chart.
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

impl Series {
    pub fn new(label: impl Into<String>, points: Vec<(f64, f64)>) -> Series {
        Series {
            label: label.into(),
            points,
        }
    }
}

/// One chart: its title, axis names and lines. With `log_y`, values are drawn on a log10 axis
/// (non-positive values are left out).
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    pub log_y: bool,
}

const FONT_FILES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
];

/// Line colours, in order: distinct on white (plotters' palette starts with a pale yellow).
const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// Registers a font for "sans-serif" once; false if none could be read.
fn has_font() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        let chosen = std::env::var("TAPEGRAD_FONT").ok();
        for path in chosen
            .iter()
            .map(String::as_str)
            .chain(FONT_FILES.iter().copied())
        {
            if let Ok(bytes) = std::fs::read(path) {
                // plotters keeps fonts for the whole program: leaking the one file is intended.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        eprintln!(
            "note: no TrueType font found (apt-get install fonts-dejavu-core, or set \
             TAPEGRAD_FONT to a .ttf file); charts are drawn without text"
        );
        false
    })
}

/// Draws `panels` in a grid of `cols` columns, each `cell` pixels, into a PNG at `path`.
pub fn save_grid(
    path: &Path,
    panels: &[Panel],
    cols: usize,
    cell: (u32, u32),
) -> Result<(), Box<dyn Error>> {
    let cols = cols.clamp(1, panels.len().max(1));
    let rows = panels.len().div_ceil(cols).max(1);
    let (w, h) = (cell.0 * cols as u32, cell.1 * rows as u32);
    // plotters draws into an RGB buffer; `image` encodes it (plotters' own encoder is off).
    let mut buf = vec![0u8; w as usize * h as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE)?;
        for (area, panel) in root.split_evenly((rows, cols)).iter().zip(panels) {
            draw(area, panel)?;
        }
        root.present()?;
    }
    let img = image::RgbImage::from_raw(w, h, buf).ok_or("plot buffer of the wrong size")?;
    img.save(path)?;
    Ok(())
}

/// One chart in a PNG of `size` pixels.
pub fn save(path: &Path, panel: &Panel, size: (u32, u32)) -> Result<(), Box<dyn Error>> {
    save_grid(path, std::slice::from_ref(panel), 1, size)
}

/// Smallest and largest finite value, widened a little so lines do not touch the frame.
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-3);
    (lo - pad, hi + pad)
}

fn draw(area: &DrawingArea<BitMapBackend<'_>, Shift>, p: &Panel) -> Result<(), Box<dyn Error>> {
    let text = has_font();
    let ys = |s: &Series| -> Vec<(f64, f64)> {
        s.points
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite() && (!p.log_y || *y > 0.0))
            .map(|&(x, y)| (x, if p.log_y { y.log10() } else { y }))
            .collect()
    };
    let lines: Vec<Vec<(f64, f64)>> = p.series.iter().map(ys).collect();
    let (x0, x1) = bounds(lines.iter().flatten().map(|p| p.0));
    let (y0, y1) = bounds(lines.iter().flatten().map(|p| p.1));

    let mut builder = ChartBuilder::on(area);
    builder.margin(12);
    if text {
        builder
            .caption(&p.title, ("sans-serif", 20))
            .x_label_area_size(40)
            .y_label_area_size(60);
    }
    let mut chart = builder.build_cartesian_2d(x0..x1, y0..y1)?;
    let mut mesh = chart.configure_mesh();
    let log_label = |v: &f64| {
        if (v - v.round()).abs() < 1e-6 {
            format!("1e{}", v.round())
        } else {
            format!("{:.1e}", 10f64.powf(*v))
        }
    };
    if text {
        mesh.x_desc(p.x_label.as_str()).y_desc(p.y_label.as_str());
        if p.log_y {
            mesh.y_label_formatter(&log_label);
        }
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw()?;
    for (i, (s, pts)) in p.series.iter().zip(lines).enumerate() {
        let color = COLORS[i % COLORS.len()].to_rgba();
        let drawn = chart.draw_series(LineSeries::new(pts, color.stroke_width(2)))?;
        if text {
            drawn
                .label(s.label.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
    }
    if text && !p.series.is_empty() {
        chart
            .configure_series_labels()
            .label_font(("sans-serif", 14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
    }
    Ok(())
}
