//! Loss and accuracy curves as a PNG: two panels side by side, training and validation, one
//! point per epoch.
//!
//! The curves are drawn into an RGB buffer and encoded with `image`, and text is rendered from a
//! TrueType file read at run time (`$TAPEGRAD_FONT`, else DejaVu Sans or Liberation Sans where
//! Debian installs them: `apt-get install fonts-dejavu-core`), so no system font library is
//! linked. Without a font the curves are drawn without text.

use super::history::History;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};
use std::path::Path;
use std::sync::OnceLock;
use tapegrad_autograd::{Error, Result};
use tapegrad_nn::checkpoint::write_atomic;

/// The environment variable naming a TrueType font for the plots' text.
pub const FONT_ENV_VAR: &str = "TAPEGRAD_FONT";

const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
];

/// Whether the plot has its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlotText {
    /// Titles, axes and legends were drawn with this font file.
    Drawn(String),
    /// No usable font was found: the curves have no text.
    NoFont,
}

/// Registers the first usable font as "sans-serif", once per process.
fn font() -> &'static Option<String> {
    static FONT: OnceLock<Option<String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let from_env = std::env::var(FONT_ENV_VAR).ok();
        let candidates = from_env
            .iter()
            .map(String::as_str)
            .chain(FONT_PATHS.iter().copied());
        for path in candidates {
            let Ok(bytes) = std::fs::read(path) else {
                continue;
            };
            // plotters keeps fonts for the life of the process; this happens once.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                return Some(path.to_string());
            }
        }
        None
    })
}

fn draw_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::io_msg(path, format!("cannot draw the training curves: {e}"))
}

/// One panel's series: (label, colour, points).
type Series<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    legend_at: SeriesLabelPosition,
    caption: &str,
    y_desc: &str,
    series: &[Series<'_>],
    epochs: usize,
    text: bool,
) -> std::result::Result<(), String> {
    let ys = series.iter().flat_map(|s| s.2.iter().map(|p| p.1));
    let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| {
        if y.is_finite() {
            (lo.min(y), hi.max(y))
        } else {
            (lo, hi)
        }
    });
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let pad = ((hi - lo) * 0.08).max(1e-3);
    let x_max = epochs.max(2) as f64;
    let mut builder = ChartBuilder::on(area);
    builder.margin(12);
    if text {
        builder
            .caption(caption, ("sans-serif", 22))
            .x_label_area_size(38)
            .y_label_area_size(58);
    }
    let mut chart = builder
        .build_cartesian_2d(1.0..x_max, (lo - pad)..(hi + pad))
        .map_err(|e| e.to_string())?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc("epoch")
            .y_desc(y_desc)
            .x_labels(epochs.clamp(2, 10))
            .x_label_formatter(&|x| format!("{x:.0}"));
    }
    // Without a font the label areas have no room (none was reserved above), so no text is
    // drawn, only the grid.
    mesh.draw().map_err(|e| e.to_string())?;
    for (label, colour, points) in series {
        if points.is_empty() {
            continue;
        }
        let style = colour.stroke_width(2);
        let drawn = chart
            .draw_series(LineSeries::new(points.iter().copied(), style))
            .map_err(|e| e.to_string())?;
        if text {
            let c = *colour;
            drawn.label(*label).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
            });
        }
        // Markers, so that a run of one epoch still shows its point.
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled())))
            .map_err(|e| e.to_string())?;
    }
    if text {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(legend_at)
            .draw()
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Draws the loss and accuracy (%) curves of `history` to a PNG at `path` (replaced
/// atomically), `title` above them.
pub fn plot_history(history: &History, path: &Path, title: &str) -> Result<PlotText> {
    let font = font();
    let img = render(history, title, font.is_some()).map_err(|e| draw_error(path, e))?;
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png)
        .map_err(|e| draw_error(path, e))?;
    write_atomic(path, png.get_ref())?;
    Ok(match font {
        Some(f) => PlotText::Drawn(f.clone()),
        None => PlotText::NoFont,
    })
}

/// The picture, with or without text (which needs a registered font).
fn render(
    history: &History,
    title: &str,
    text: bool,
) -> std::result::Result<image::RgbImage, String> {
    let (w, h) = (1100u32, 460u32);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    let pts = |f: &dyn Fn(&super::EpochRecord) -> Option<f64>| -> Vec<(f64, f64)> {
        history
            .epochs
            .iter()
            .filter_map(|r| f(r).map(|y| (r.epoch as f64, y)))
            .collect()
    };
    let loss = [
        ("train", BLUE, pts(&|r| Some(r.train_loss as f64))),
        ("test", RED, pts(&|r| r.val_loss.map(f64::from))),
    ];
    let acc = [
        (
            "train",
            BLUE,
            pts(&|r| Some(100.0 * r.train_accuracy as f64)),
        ),
        (
            "test",
            RED,
            pts(&|r| r.val_accuracy.map(|a| 100.0 * a as f64)),
        ),
    ];
    let epochs = history.epochs.last().map_or(1, |r| r.epoch);
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let root = if text {
            root.titled(title, ("sans-serif", 24))
                .map_err(|e| e.to_string())?
        } else {
            root
        };
        let (left, right) = root.split_horizontally(w / 2);
        panel(
            &left,
            SeriesLabelPosition::UpperRight,
            "loss",
            "cross-entropy",
            &loss,
            epochs,
            text,
        )?;
        panel(
            &right,
            SeriesLabelPosition::LowerRight,
            "accuracy",
            "accuracy (%)",
            &acc,
            epochs,
            text,
        )?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(image::RgbImage::from_raw(w, h, buf).expect("the buffer is w * h * 3 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EpochRecord;

    fn history(n: usize) -> History {
        let epochs = (1..=n)
            .map(|e| EpochRecord {
                epoch: e,
                lr: 0.1,
                train_loss: 1.0 / e as f32,
                train_accuracy: 0.5 + 0.04 * e as f32,
                val_loss: Some(1.2 / e as f32),
                val_accuracy: Some(0.45 + 0.04 * e as f32),
                val_top5_error: None,
                seconds: 1.0,
                images_per_second: 10.0,
            })
            .collect();
        History { epochs }
    }

    /// Pixels of the pure red used for the test curves.
    fn red_pixels(img: &image::RgbImage) -> usize {
        img.pixels().filter(|p| p.0 == [255, 0, 0]).count()
    }

    #[test]
    fn curves_are_drawn_without_a_font() {
        let img = render(&history(5), "t", false).unwrap();
        assert_eq!(img.dimensions(), (1100, 460));
        // Two test curves of 4 segments each, plus 10 markers: well over a hundred red pixels.
        assert!(red_pixels(&img) > 100, "{}", red_pixels(&img));
    }

    #[test]
    fn one_epoch_still_shows_its_point() {
        let img = render(&history(1), "t", false).unwrap();
        // No segment, but a filled marker of radius 3 in each panel.
        assert!(red_pixels(&img) >= 2 * 9, "{}", red_pixels(&img));
    }

    #[test]
    fn with_a_font_the_png_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("curves.png");
        let text = plot_history(&history(3), &path, "title").unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (1100, 460));
        assert!(red_pixels(&img) > 50);
        // Where a font is installed, it is used.
        let installed = FONT_PATHS.iter().any(|p| Path::new(p).is_file());
        if installed {
            assert!(matches!(text, PlotText::Drawn(_)), "{text:?}");
        }
    }
}
