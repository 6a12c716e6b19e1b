//! Image folders: `root/<class>/<image>.{jpg,jpeg,png}`, one subfolder per class, classes in
//! sorted name order (as torchvision's `ImageFolder`), files in sorted name order within each.

use super::dataset::Dataset;
use super::transform::{center_crop_raw, resize_raw, shorter_side_dims};
use super::{format_error, io_error, io_msg};
use image::{DynamicImage, ImageDecoder};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use tapegrad_autograd::{Error, Result};

/// The default limit on an image's pixels (width times height): PIL's `Image.MAX_IMAGE_PIXELS`.
/// A PNG of 23000 x 23000 pixels takes half a megabyte on disk and 6 GB as f32 RGB; such a file
/// is refused from its header, before anything is decoded.
pub const MAX_IMAGE_PIXELS: u64 = 178_956_970;

/// How to read an image folder.
#[derive(Clone, Debug)]
pub struct ImageFolderOptions {
    /// Resize each image so its shorter side is `size` (bilinear), then crop the central
    /// `size x size` square. With `None` every image must already have the first one's size.
    /// Must be positive, and the resized image (before the crop) must stay within `max_pixels`.
    pub size: Option<usize>,
    /// Read images as one grey channel instead of three RGB channels.
    pub grayscale: bool,
    /// Skip an image that cannot be decoded (with a warning on stderr, and listed in
    /// [`ImageFolder::skipped`]) instead of failing.
    pub skip_unreadable: bool,
    /// The most pixels (width times height) an image may have; a larger one is refused from
    /// its header, before it is decoded (an error, or skipped with `skip_unreadable`). Each
    /// decoding thread holds up to about 20 bytes per pixel (the decoded image, its 8-bit RGB
    /// copy and its f32 planes). Default [`MAX_IMAGE_PIXELS`].
    pub max_pixels: u64,
}

impl Default for ImageFolderOptions {
    fn default() -> Self {
        ImageFolderOptions {
            size: None,
            grayscale: false,
            skip_unreadable: false,
            max_pixels: MAX_IMAGE_PIXELS,
        }
    }
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

/// The image at `path`, decoded unless its header says it has more than `max_pixels` pixels.
fn decode_limited(path: &Path, max_pixels: u64) -> std::result::Result<DynamicImage, String> {
    let mut reader = image::ImageReader::open(path)
        .map_err(|e| e.to_string())?
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    // The decoder's own allocation limit, for what it allocates before handing out pixels: a
    // decoded pixel takes at most 8 bytes (16-bit RGBA).
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(max_pixels.saturating_mul(8));
    reader.limits(limits);
    let decoder = reader
        .into_decoder()
        .map_err(|e| format!("cannot decode image: {e}"))?;
    let (w, h) = decoder.dimensions();
    let pixels = u64::from(w) * u64::from(h);
    if pixels > max_pixels {
        return Err(format!(
            "the image is {w}x{h}, {pixels} pixels, over the limit of {max_pixels} pixels \
             (ImageFolderOptions::max_pixels); it was not decoded"
        ));
    }
    DynamicImage::from_decoder(decoder).map_err(|e| format!("cannot decode image: {e}"))
}

/// Decodes the JPEG or PNG at `path`, refusing it from its header, before decoding, when it has
/// more than `max_pixels` pixels (width times height; [`MAX_IMAGE_PIXELS`] is PIL's default).
/// Errors name the file.
pub fn read_image(path: &Path, max_pixels: u64) -> Result<DynamicImage> {
    decode_limited(path, max_pixels).map_err(|reason| io_msg(path, reason))
}

/// One decoded image as [C, H, W] f32 in [0, 1], with its height and width.
fn decode(
    path: &Path,
    grayscale: bool,
    max_pixels: u64,
) -> std::result::Result<(Vec<f32>, usize, usize), String> {
    let img = decode_limited(path, max_pixels)?;
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
        if let Some(s) = opts.size {
            let square = (s as u64).checked_mul(s as u64);
            if s == 0 || square.is_none_or(|p| p > opts.max_pixels) {
                return Err(Error::invalid(
                    "ImageFolder::load",
                    format!(
                        "ImageFolderOptions::size {s} must be positive, and its square within \
                         the limit of {} pixels (ImageFolderOptions::max_pixels)",
                        opts.max_pixels
                    ),
                ));
            }
        }
        let class_dirs: Vec<PathBuf> = sorted_entries(root)?
            .into_iter()
            .filter(|p| p.is_dir())
            .collect();
        if class_dirs.is_empty() {
            return Err(io_msg(root, "no class subfolders found"));
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
                let (data, h, w) = decode(path, opts.grayscale, opts.max_pixels)?;
                Ok(match opts.size {
                    Some(s) => {
                        let (rh, rw) = shorter_side_dims(h, w, s, opts.max_pixels)?;
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
                Err(reason) => return Err(io_msg(path, reason)),
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
        let (h, w) = size.ok_or_else(|| io_msg(root, "no readable .jpg/.jpeg/.png images"))?;
        Ok(ImageFolder {
            dataset: Dataset::new(pixels, [c, h, w], labels, classes)?,
            skipped,
        })
    }
}
