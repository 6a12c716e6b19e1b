//! Image folders: `root/<class>/<image>.{jpg,jpeg,png}`, one subfolder per class, classes in
//! sorted name order (as torchvision's `ImageFolder`), files in sorted name order within each.

use super::dataset::Dataset;
use super::transform::{center_crop_raw, resize_raw, shorter_side_dims};
use super::{format_error, io_error};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use tapegrad_autograd::Result;

/// How to read an image folder.
#[derive(Clone, Debug, Default)]
pub struct ImageFolderOptions {
    /// Resize each image so its shorter side is `size` (bilinear), then crop the central
    /// `size x size` square. With `None` every image must already have the first one's size.
    pub size: Option<usize>,
    /// Read images as one grey channel instead of three RGB channels.
    pub grayscale: bool,
    /// Skip an image that cannot be decoded (with a warning on stderr, and listed in
    /// [`ImageFolder::skipped`]) instead of failing.
    pub skip_unreadable: bool,
}

/// A file that was left out, and why.
#[derive(Clone, Debug)]
pub struct Skipped {
    pub path: PathBuf,
    pub reason: String,
}

/// A loaded image folder.
#[derive(Clone, Debug)]
pub struct ImageFolder {
    pub dataset: Dataset,
    pub skipped: Vec<Skipped>,
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
        out.push(entry.map_err(|e| io_error(dir, e))?.path());
    }
    out.sort();
    Ok(out)
}

/// One decoded image as [C, H, W] f32 in [0, 1], with its height and width.
fn decode(path: &Path, grayscale: bool) -> std::result::Result<(Vec<f32>, usize, usize), String> {
    let img = image::ImageReader::open(path)
        .map_err(|e| e.to_string())?
        .with_guessed_format()
        .map_err(|e| e.to_string())?
        .decode()
        .map_err(|e| format!("cannot decode image: {e}"))?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w == 0 || h == 0 {
        return Err(format!("the image is empty ({w}x{h})"));
    }
    let (c, interleaved) = if grayscale {
        (1, img.to_luma8().into_raw())
    } else {
        (3, img.to_rgb8().into_raw())
    };
    // HWC bytes -> CHW floats.
    let mut out = vec![0f32; c * h * w];
    for (p, px) in interleaved.chunks_exact(c).enumerate() {
        for (ch, &v) in px.iter().enumerate() {
            out[ch * h * w + p] = v as f32 / 255.0;
        }
    }
    Ok((out, h, w))
}

impl ImageFolder {
    /// Reads every JPEG and PNG under `root/<class>/`. Other files are ignored. An image that
    /// cannot be decoded is an error naming it, unless `skip_unreadable` is set.
    pub fn load(root: &Path, opts: &ImageFolderOptions) -> Result<ImageFolder> {
        let class_dirs: Vec<PathBuf> = sorted_entries(root)?
            .into_iter()
            .filter(|p| p.is_dir())
            .collect();
        if class_dirs.is_empty() {
            return Err(io_error(root, "no class subfolders found"));
        }
        let mut files = Vec::new();
        let mut classes = Vec::new();
        for (label, dir) in class_dirs.iter().enumerate() {
            classes.push(
                dir.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            );
            for f in sorted_entries(dir)? {
                if f.is_file() && is_image(&f) {
                    files.push((f, label));
                }
            }
        }
        let c = if opts.grayscale { 1 } else { 3 };
        let decoded: Vec<_> = files
            .par_iter()
            .map(|(path, _)| {
                let (data, h, w) = decode(path, opts.grayscale)?;
                Ok(match opts.size {
                    Some(s) => {
                        let (rh, rw) = shorter_side_dims(h, w, s);
                        let resized = resize_raw(&data, c, h, w, rh, rw);
                        (center_crop_raw(&resized, c, rh, rw, s, s), s, s)
                    }
                    None => (data, h, w),
                })
            })
            .collect();

        let mut pixels = Vec::new();
        let mut labels = Vec::new();
        let mut skipped = Vec::new();
        let mut size: Option<(usize, usize)> = None;
        for ((path, label), result) in files.iter().zip(decoded) {
            let (data, h, w) = match result {
                Ok(v) => v,
                Err(reason) if opts.skip_unreadable => {
                    eprintln!("warning: skipping {}: {reason}", path.display());
                    skipped.push(Skipped {
                        path: path.clone(),
                        reason,
                    });
                    continue;
                }
                Err(reason) => return Err(io_error(path, reason)),
            };
            match size {
                None => size = Some((h, w)),
                Some((sh, sw)) if (sh, sw) != (h, w) => {
                    return Err(format_error(
                        path,
                        format!(
                            "is {h}x{w}, but earlier images are {sh}x{sw}; set \
                             ImageFolderOptions::size to resize them all"
                        ),
                    ))
                }
                Some(_) => {}
            }
            pixels.extend_from_slice(&data);
            labels.push(*label);
        }
        let (h, w) = size.ok_or_else(|| io_error(root, "no readable .jpg/.jpeg/.png images"))?;
        Ok(ImageFolder {
            dataset: Dataset::new(pixels, [c, h, w], labels, classes)?,
            skipped,
        })
    }
}
