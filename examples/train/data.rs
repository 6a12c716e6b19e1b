//! The data set named on the command line; without the full Fashion-MNIST, the subset that
//! ships with the repository.

use super::args::{Args, DatasetKind, SUBSET, SYNTHETIC};
use std::path::Path;
use tapegrad::autograd::{Error, Result};
use tapegrad::data::{
    synthetic, Cifar10, Dataset, FashionMnist, ImageFolder, ImageFolderOptions, Mnist, Split,
};
use tapegrad::train::Console;

/// The 7,000 real Fashion-MNIST images in `assets/` (see the README there).
pub const SUBSET_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/fashion-mnist-subset");

/// The data, and its name; a run on the subset or on synthetic data tags every printed line.
pub fn load_data(args: &Args, console: &mut Console) -> Result<(Split, String)> {
    let subset = |console: &mut Console| -> Result<(Split, String)> {
        console.set_tag(Some(SUBSET));
        let split = FashionMnist::load(Path::new(SUBSET_DIR))?;
        let name = "the Fashion-MNIST subset in assets/".to_string();
        Ok((split, name))
    };
    let synthetic_set = |console: &mut Console| -> Result<(Split, String)> {
        console.set_tag(Some(SYNTHETIC));
        let n = args.synthetic_per_class.max(1);
        let split = synthetic::split(n, n.div_ceil(6), args.seed)?;
        Ok((split, "synthetic shapes".into()))
    };
    let need_dir = |what: &str| {
        args.data
            .clone()
            .ok_or_else(|| Error::invalid("train", format!("--dataset {what} needs --data DIR")))
    };
    match args.dataset {
        DatasetKind::Synthetic => synthetic_set(console),
        DatasetKind::FashionMnistSubset => subset(console),
        DatasetKind::FashionMnist => match FashionMnist::find(args.data.as_deref()) {
            Ok(dir) => Ok((
                FashionMnist::load(&dir)?,
                format!("Fashion-MNIST ({})", dir.display()),
            )),
            Err(e) if args.data.is_none() => {
                let looked = match &e {
                    Error::Io { path, .. } => path.clone(),
                    other => other.to_string(),
                };
                let (split, name) = subset(console)?;
                console.line(format!(
                    "The full Fashion-MNIST was not found (looked in {looked}).\n\
                     Install it with: apt-get install -y dataset-fashion-mnist \
                     (or set FASHION_MNIST_DIR, or pass --data DIR).\n\
                     Training on the {} training and {} test images of its subset in assets/ \
                     instead; every line is marked {SUBSET}.",
                    split.train.len(),
                    split.test.len()
                ));
                Ok((split, name))
            }
            Err(e) => Err(e),
        },
        DatasetKind::Mnist => {
            let dir = need_dir("mnist")?;
            Ok((Mnist::load(&dir)?, format!("MNIST ({})", dir.display())))
        }
        DatasetKind::Cifar10 => {
            let dir = need_dir("cifar10")?;
            Ok((
                Cifar10::load(&dir)?,
                format!("CIFAR-10 ({})", dir.display()),
            ))
        }
        DatasetKind::Folder => {
            let dir = need_dir("folder")?;
            let opts = ImageFolderOptions {
                size: args.image_size,
                grayscale: args.grayscale,
                skip_unreadable: true,
                ..Default::default()
            };
            let train = ImageFolder::load(&dir.join("train"), &opts)?.dataset;
            let test = ImageFolder::load(&dir.join("test"), &opts)?.dataset;
            Ok((
                Split { train, test },
                format!("image folder ({})", dir.display()),
            ))
        }
    }
}

/// The first `n` samples.
pub fn limit(ds: Dataset, n: Option<usize>) -> Result<Dataset> {
    match n {
        Some(n) if n < ds.len() => ds.subset(&(0..n).collect::<Vec<_>>()),
        _ => Ok(ds),
    }
}

/// The first `len - n` training samples to train on, the last `n` to validate on.
pub fn hold_out(train: Dataset, n: usize) -> Result<(Dataset, Dataset)> {
    let len = train.len();
    if n == 0 || n >= len {
        return Err(Error::invalid(
            "train",
            format!("--validation {n}: must hold out at least one and fewer than all {len} training images"),
        ));
    }
    let keep = train.subset(&(0..len - n).collect::<Vec<_>>())?;
    let held = train.subset(&(len - n..len).collect::<Vec<_>>())?;
    Ok((keep, held))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_is_the_last_training_images_and_never_the_test_set() {
        let train = synthetic::split(10, 2, 0).unwrap().train;
        let len = train.len();
        let (keep, held) = hold_out(train.clone(), 30).unwrap();
        assert_eq!((keep.len(), held.len()), (len - 30, 30));
        let last = train.subset(&(len - 30..len).collect::<Vec<_>>()).unwrap();
        assert_eq!(held.labels(), last.labels());
        for n in [0, len] {
            let msg = hold_out(train.clone(), n).unwrap_err().to_string();
            assert!(msg.contains("--validation"), "{msg}");
        }
    }
}
