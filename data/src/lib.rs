//! tapegrad-data: in-memory datasets, their loaders from files (IDX, CIFAR-10 batches, image folders), a
//! built-in synthetic set, per-sample transforms, and a batching loader with prefetching.
//!
//! Layers know nothing of datasets: a batch leaves this module as an NCHW [`Tensor`](tapegrad_autograd::Tensor) plus labels.
//!
//! ```
//! use std::sync::Arc;
//! use tapegrad_data::{synthetic, DataLoader, LoaderOptions};
//! let train = Arc::new(synthetic::shapes(20, 7).unwrap());
//! let loader = DataLoader::new(train, 32, LoaderOptions::default()).unwrap();
//! for batch in loader.epoch(0) {
//!     let batch = batch.unwrap();
//!     assert_eq!(&batch.images.dims()[1..], &[1, 28, 28]);
//! }
//! ```

mod cifar;
mod dataset;
mod folder;
mod idx;
mod loader;
pub mod metrics;
pub mod pca;
pub mod synthetic;
pub mod transform;

pub use cifar::Cifar10;
pub use dataset::{Dataset, Split};
pub use folder::{read_image, ImageFolder, ImageFolderOptions, Skipped, MAX_IMAGE_PIXELS};
pub use idx::{
    load_idx_pair, read_idx_images, read_idx_labels, FashionMnist, IdxImages, Mnist, IDX_MAX_BYTES,
};
pub use loader::{Batch, DataLoader, Epoch, LoaderOptions, Shard, ShardTail};
pub use pca::{rgb_covariance, symmetric_eigen3, PcaColor};
pub use transform::{
    mirror, CenterCrop, Compose, HorizontalFlip, Normalize, RandomCrop, RandomHorizontalFlip,
    ResizeShorter, SubtractMean, TenCrop, Transform,
};

use std::path::Path;
use tapegrad_autograd::Error;

/// A failure to read `path` that the operating system reported, as an [`Error::Io`] naming the
/// file and keeping `e` as its source.
pub(crate) fn io_error(path: &Path, e: std::io::Error) -> Error {
    Error::io(path, "", e)
}

/// A file that is unusable for another reason (undecodable, empty folder), as an [`Error::Io`]
/// naming it.
pub(crate) fn io_msg(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::io_msg(path, msg.to_string())
}

/// A malformed file, as an [`Error::Format`] naming the file.
pub(crate) fn format_error(path: &Path, msg: impl Into<String>) -> Error {
    Error::Format {
        what: path.display().to_string(),
        msg: msg.into(),
    }
}
