//! MNIST and Fashion-MNIST: IDX files, raw or gzip-compressed.
//!
//! An IDX file is a big-endian header (a magic number, then one u32 per dimension) followed by
//! the values. Labels are magic 2049 (0x801: unsigned bytes, one dimension), images 2051 (0x803:
//! unsigned bytes, three dimensions: count, rows, columns). Every size is checked against the
//! header, so a truncated download fails here, naming the file, rather than as a shape error deep
//! in training.

use super::dataset::{Dataset, Split};
use super::{format_error, io_error};
use flate2::read::MultiGzDecoder;
use std::io::Read;
use std::path::{Path, PathBuf};
use tapegrad_autograd::{Error, Result};

const LABEL_MAGIC: u32 = 2049;
const IMAGE_MAGIC: u32 = 2051;

/// The decoded contents of an IDX image file.
#[derive(Clone, Debug)]
pub struct IdxImages {
    pub count: usize,
    pub rows: usize,
    pub cols: usize,
    /// `count * rows * cols` bytes, image after image, row-major.
    pub pixels: Vec<u8>,
}

/// The whole file, gunzipped when it starts with the gzip magic bytes (whatever its name).
fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| io_error(path, e))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        MultiGzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| io_error(path, format!("cannot decompress gzip data: {e}")))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn be_u32(b: &[u8], at: usize) -> usize {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize
}

/// The header's magic number, checked, and the length of the data it promises.
fn check_header(
    path: &Path,
    bytes: &[u8],
    magic: u32,
    kind: &str,
    dims: usize,
) -> Result<Vec<usize>> {
    let header = 4 + 4 * dims;
    let short = |what: &str| {
        format_error(
            path,
            format!(
                "{} bytes is shorter than {what} of an IDX {kind} file",
                bytes.len()
            ),
        )
    };
    if bytes.len() < 4 {
        return Err(short("the 4-byte magic number"));
    }
    // The magic number first: a label file passed as images should say so, not "too short".
    let found = be_u32(bytes, 0) as u32;
    if found != magic {
        let hint = match found {
            LABEL_MAGIC => " (this is a label file)",
            IMAGE_MAGIC => " (this is an image file)",
            _ => "",
        };
        return Err(format_error(
            path,
            format!("magic number {found} is not {magic}, that of an IDX {kind} file{hint}"),
        ));
    }
    if bytes.len() < header {
        return Err(short(&format!("the {header}-byte header")));
    }
    let sizes: Vec<usize> = (0..dims).map(|d| be_u32(bytes, 4 + 4 * d)).collect();
    let want = sizes
        .iter()
        .try_fold(1usize, |acc, &s| acc.checked_mul(s))
        .ok_or_else(|| format_error(path, format!("header sizes {sizes:?} overflow")))?;
    let have = bytes.len() - header;
    if have != want {
        let what = if have < want { "truncated" } else { "too long" };
        return Err(format_error(
            path,
            format!(
                "{what}: the header promises {kind}s of sizes {sizes:?}, {want} bytes, \
                 but {have} bytes follow it"
            ),
        ));
    }
    Ok(sizes)
}

/// Reads an IDX image file (magic 2051), raw or gzipped.
pub fn read_idx_images(path: &Path) -> Result<IdxImages> {
    let mut bytes = read_maybe_gz(path)?;
    let sizes = check_header(path, &bytes, IMAGE_MAGIC, "image", 3)?;
    bytes.drain(..16);
    Ok(IdxImages {
        count: sizes[0],
        rows: sizes[1],
        cols: sizes[2],
        pixels: bytes,
    })
}

/// Reads an IDX label file (magic 2049), raw or gzipped.
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>> {
    let mut bytes = read_maybe_gz(path)?;
    check_header(path, &bytes, LABEL_MAGIC, "label", 1)?;
    bytes.drain(..8);
    Ok(bytes)
}

/// An image file and its label file as one dataset with pixels scaled to [0, 1].
pub fn load_idx_pair(images: &Path, labels: &Path, classes: &[&str]) -> Result<Dataset> {
    let (img, lab) = rayon::join(|| read_idx_images(images), || read_idx_labels(labels));
    let (img, lab) = (img?, lab?);
    if lab.len() != img.count {
        return Err(format_error(
            labels,
            format!(
                "holds {} labels, but the image file {} holds {} images",
                lab.len(),
                images.display(),
                img.count
            ),
        ));
    }
    if let Some((i, &l)) = lab
        .iter()
        .enumerate()
        .find(|(_, &l)| l as usize >= classes.len())
    {
        return Err(format_error(
            labels,
            format!("label {l} of sample {i} is outside 0..{}", classes.len()),
        ));
    }
    Dataset::from_u8(
        &img.pixels,
        [1, img.rows, img.cols],
        lab.into_iter().map(usize::from).collect(),
        classes.iter().map(|s| s.to_string()).collect(),
    )
}

/// `dir/stem`, `dir/stem.gz` or the dotted spelling `train-images.idx3-ubyte` some mirrors use.
fn find_file(dir: &Path, stem: &str) -> Option<PathBuf> {
    let dotted = stem.replacen("-idx", ".idx", 1);
    [
        format!("{stem}.gz"),
        stem.to_string(),
        format!("{dotted}.gz"),
        dotted,
    ]
    .iter()
    .map(|name| dir.join(name))
    .find(|p| p.is_file())
}

fn require_file(dir: &Path, stem: &str) -> Result<PathBuf> {
    find_file(dir, stem).ok_or_else(|| Error::Io {
        path: dir.join(stem).display().to_string(),
        msg: "not found (neither raw nor .gz)".into(),
    })
}

/// The train and test splits of an MNIST-format folder.
fn load_mnist_format(dir: &Path, classes: &[&str]) -> Result<Split> {
    let file = |stem: &str| require_file(dir, stem);
    let (train_x, train_y) = (
        file("train-images-idx3-ubyte")?,
        file("train-labels-idx1-ubyte")?,
    );
    let (test_x, test_y) = (
        file("t10k-images-idx3-ubyte")?,
        file("t10k-labels-idx1-ubyte")?,
    );
    let (train, test) = rayon::join(
        || load_idx_pair(&train_x, &train_y, classes),
        || load_idx_pair(&test_x, &test_y, classes),
    );
    Ok(Split {
        train: train?,
        test: test?,
    })
}

/// The MNIST digits: 60,000 training and 10,000 test images, 28x28 grey.
pub struct Mnist;

impl Mnist {
    pub const CLASSES: [&'static str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

    /// Loads `train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]`, `t10k-...` from `dir`.
    pub fn load(dir: &Path) -> Result<Split> {
        load_mnist_format(dir, &Self::CLASSES)
    }
}

/// Zalando's Fashion-MNIST: MNIST's format and sizes, ten kinds of clothing.
pub struct FashionMnist;

impl FashionMnist {
    pub const CLASSES: [&'static str; 10] = [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ];
    /// Where Debian's `dataset-fashion-mnist` package installs it.
    pub const SYSTEM_DIR: &'static str = "/usr/share/datasets/fashion-mnist";
    /// The environment variable naming another folder.
    pub const ENV_VAR: &'static str = "FASHION_MNIST_DIR";

    /// The folder holding Fashion-MNIST: `explicit` if given (and then only it), else
    /// `$FASHION_MNIST_DIR`, else [`Self::SYSTEM_DIR`]. The error lists where it looked and how
    /// to install the data.
    pub fn find(explicit: Option<&Path>) -> Result<PathBuf> {
        let candidates: Vec<PathBuf> = match explicit {
            Some(p) => vec![p.to_path_buf()],
            None => std::env::var_os(Self::ENV_VAR)
                .map(PathBuf::from)
                .into_iter()
                .chain([PathBuf::from(Self::SYSTEM_DIR)])
                .collect(),
        };
        if let Some(dir) = candidates
            .iter()
            .find(|d| find_file(d, "train-images-idx3-ubyte").is_some())
        {
            return Ok(dir.clone());
        }
        let looked = candidates
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        Err(Error::Io {
            path: looked,
            msg: format!(
                "Fashion-MNIST not found (no train-images-idx3-ubyte[.gz] there); install it \
                 with `apt-get install dataset-fashion-mnist` (files go to {}), or set {} to a \
                 folder holding the four IDX files",
                Self::SYSTEM_DIR,
                Self::ENV_VAR
            ),
        })
    }

    /// Loads both splits from `dir`: 60,000 training and 10,000 test images, 28x28 grey, pixels
    /// in [0, 1].
    pub fn load(dir: &Path) -> Result<Split> {
        load_mnist_format(dir, &Self::CLASSES)
    }

    /// [`Self::find`] then [`Self::load`].
    pub fn open(explicit: Option<&Path>) -> Result<Split> {
        Self::load(&Self::find(explicit)?)
    }
}
