//! MNIST and Fashion-MNIST: IDX files, raw or gzip-compressed.
//!
//! An IDX file is a big-endian header (a magic number, then one u32 per dimension) followed by
//! the values. Labels are magic 2049 (0x801: unsigned bytes, one dimension), images 2051 (0x803:
//! unsigned bytes, three dimensions: count, rows, columns). Every size is checked against the
//! header, so a truncated download fails here, naming the file, rather than as a shape error deep
//! in training. The header is read first and bounds what follows: no more than the bytes it
//! promises (and one more, to tell a file that goes on) are ever read or inflated, and a header
//! promising more than [`IDX_MAX_BYTES`] is refused.

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

/// The most data bytes an IDX file may promise: twice the largest published IDX file (EMNIST
/// ByClass, 0.55 GB of pixels), and 8 GiB once converted to f32. A header promising more is
/// refused before anything is read.
pub const IDX_MAX_BYTES: u64 = 2 << 30;

/// Deflate never expands data more than 1032-fold: a gzip file of `n` bytes cannot hold more
/// than this, so a header promising more is short of data without inflating it to find out.
const DEFLATE_MAX_RATIO: u64 = 1032;

/// How many bytes a stream can yield.
#[derive(Clone, Copy)]
enum StreamBound {
    /// A raw file: its length.
    Exact(u64),
    /// A gzip file: deflate's most.
    AtMost(u64),
}

/// Reads up to `n` bytes, fewer only at the end of the stream.
fn read_up_to(r: &mut impl Read, n: u64, into: &mut Vec<u8>) -> std::io::Result<()> {
    r.take(n).read_to_end(into).map(|_| ())
}

/// The header and data of an IDX file of `dims` dimensions, from `r`: the header first, then
/// exactly the bytes it promises and one more (which must not exist). Nothing beyond that is
/// read, so a gzip bomb behind a small header is never inflated.
fn read_idx(
    path: &Path,
    r: &mut impl Read,
    bound: StreamBound,
    read_err: &dyn Fn(std::io::Error) -> Error,
    (magic, kind, dims): (u32, &str, usize),
) -> Result<(Vec<usize>, Vec<u8>)> {
    let header = 4 + 4 * dims;
    let mut head = Vec::with_capacity(header);
    read_up_to(r, 4, &mut head).map_err(read_err)?;
    let short = |have: usize, what: &str| {
        format_error(
            path,
            format!("{have} bytes is shorter than {what} of an IDX {kind} file"),
        )
    };
    if head.len() < 4 {
        return Err(short(head.len(), "the 4-byte magic number"));
    }
    // The magic number first: a label file passed as images should say so, not "too short".
    let found = be_u32(&head, 0) as u32;
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
    read_up_to(r, 4 * dims as u64, &mut head).map_err(read_err)?;
    if head.len() < header {
        return Err(short(head.len(), &format!("the {header}-byte header")));
    }
    let sizes: Vec<usize> = (0..dims).map(|d| be_u32(&head, 4 + 4 * d)).collect();
    let want = sizes
        .iter()
        .try_fold(1u64, |acc, &s| acc.checked_mul(s as u64))
        .ok_or_else(|| format_error(path, format!("header sizes {sizes:?} overflow")))?;
    let promises = format!("the header promises {kind}s of sizes {sizes:?}, {want} bytes");
    if want > IDX_MAX_BYTES {
        return Err(format_error(
            path,
            format!("{promises}, over the limit of {IDX_MAX_BYTES} bytes for an IDX file"),
        ));
    }
    let (bytes, exact) = match bound {
        StreamBound::Exact(n) => (n, true),
        StreamBound::AtMost(n) => (n, false),
    };
    let available = bytes.saturating_sub(header as u64);
    if want > available {
        let msg = if exact {
            format!("truncated: {promises}, but {available} bytes follow it")
        } else {
            format!("truncated: {promises}, but the file can hold at most {available}")
        };
        return Err(format_error(path, msg));
    }
    let mut data = Vec::new();
    data.try_reserve_exact(want as usize + 1)
        .map_err(|e| format_error(path, format!("{promises}, which cannot be allocated: {e}")))?;
    read_up_to(r, want + 1, &mut data).map_err(read_err)?;
    let have = data.len() as u64;
    if have != want {
        let msg = if have < want {
            format!("truncated: {promises}, but {have} bytes follow it")
        } else {
            format!("too long: {promises}, but more follow it")
        };
        return Err(format_error(path, msg));
    }
    Ok((sizes, data))
}

/// Opens `path`, gunzipping it when it starts with the gzip magic bytes (whatever its name),
/// and reads it with [`read_idx`].
fn read_idx_file(path: &Path, format: (u32, &str, usize)) -> Result<(Vec<usize>, Vec<u8>)> {
    let mut file = std::fs::File::open(path).map_err(|e| io_error(path, e))?;
    let len = file.metadata().map_err(|e| io_error(path, e))?.len();
    let mut magic = Vec::with_capacity(2);
    read_up_to(&mut file, 2, &mut magic).map_err(|e| io_error(path, e))?;
    let rewound = std::io::Cursor::new(magic.clone()).chain(file);
    if magic == [0x1f, 0x8b] {
        let mut gz = MultiGzDecoder::new(std::io::BufReader::new(rewound));
        let gz_err = |e| Error::io(path, "cannot decompress gzip data", e);
        let bound = StreamBound::AtMost(len.saturating_mul(DEFLATE_MAX_RATIO));
        read_idx(path, &mut gz, bound, &gz_err, format)
    } else {
        let mut raw = rewound;
        let bound = StreamBound::Exact(len);
        read_idx(path, &mut raw, bound, &|e| io_error(path, e), format)
    }
}

fn be_u32(b: &[u8], at: usize) -> usize {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize
}

/// Reads an IDX image file (magic 2051), raw or gzipped.
pub fn read_idx_images(path: &Path) -> Result<IdxImages> {
    let (sizes, pixels) = read_idx_file(path, (IMAGE_MAGIC, "image", 3))?;
    Ok(IdxImages {
        count: sizes[0],
        rows: sizes[1],
        cols: sizes[2],
        pixels,
    })
}

/// Reads an IDX label file (magic 2049), raw or gzipped.
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>> {
    Ok(read_idx_file(path, (LABEL_MAGIC, "label", 1))?.1)
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
    find_file(dir, stem)
        .ok_or_else(|| Error::io_msg(&dir.join(stem), "not found (neither raw nor .gz)"))
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
            source: None,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Zeros after `head`, forever, counting the bytes handed out.
    struct Endless {
        head: Vec<u8>,
        served: u64,
    }

    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            for (i, b) in buf.iter_mut().enumerate() {
                let at = self.served + i as u64;
                *b = self.head.get(at as usize).copied().unwrap_or(0);
            }
            self.served += buf.len() as u64;
            Ok(buf.len())
        }
    }

    #[test]
    fn reads_the_header_then_the_promised_bytes_and_one_more() {
        // Labels: magic 2049 and one size, 5: an 8-byte header and 5 bytes promised.
        let mut head = 2049u32.to_be_bytes().to_vec();
        head.extend_from_slice(&5u32.to_be_bytes());
        let mut r = Endless { head, served: 0 };
        let path = Path::new("endless");
        let bound = StreamBound::AtMost(u64::MAX);
        let err = read_idx(
            path,
            &mut r,
            bound,
            &|e| io_error(path, e),
            (2049, "label", 1),
        );
        assert!(err.unwrap_err().to_string().contains("too long"));
        // 8 + 5 + 1: nothing past the byte that shows the stream goes on.
        assert_eq!(r.served, 14);
    }
}
