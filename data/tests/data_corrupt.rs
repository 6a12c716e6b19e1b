//! Loaders on small files written here: well-formed ones load exactly, corrupt ones fail with an
//! error naming the file (or, for an image folder in skip mode, are skipped with a warning).

use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::Write;
use std::path::{Path, PathBuf};
use tapegrad_autograd::Error;
use tapegrad_data::{
    load_idx_pair, read_idx_images, read_idx_labels, Cifar10, FashionMnist, ImageFolder,
    ImageFolderOptions, Mnist,
};

fn idx(magic: u32, dims: &[u32], body: &[u8]) -> Vec<u8> {
    let mut out = magic.to_be_bytes().to_vec();
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(body);
    out
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Three 2x2 images with bytes 0..12, and labels [2, 0, 1].
fn tiny_images() -> Vec<u8> {
    idx(2051, &[3, 2, 2], &(0..12).collect::<Vec<u8>>())
}

fn tiny_labels() -> Vec<u8> {
    idx(2049, &[3], &[2, 0, 1])
}

#[test]
fn well_formed_idx_files_load_raw_and_gzipped() {
    let dir = tempfile::tempdir().unwrap();
    let img = write(dir.path(), "img", &tiny_images());
    let lab = write(dir.path(), "lab.gz", &gz(&tiny_labels()));
    let ds = load_idx_pair(&img, &lab, &["a", "b", "c"]).unwrap();
    assert_eq!(ds.len(), 3);
    assert_eq!(ds.sample_shape(), [1, 2, 2]);
    assert_eq!(ds.labels(), &[2, 0, 1]);
    // Image 1 holds bytes 4..8, scaled by 1/255.
    assert_eq!(
        ds.sample(1).unwrap(),
        &[4.0 / 255.0, 5.0 / 255.0, 6.0 / 255.0, 7.0 / 255.0]
    );

    // A whole MNIST-format folder, mixing raw and .gz names.
    for (name, bytes) in [
        ("train-images-idx3-ubyte.gz", gz(&tiny_images())),
        ("train-labels-idx1-ubyte", tiny_labels()),
        ("t10k-images-idx3-ubyte", tiny_images()),
        ("t10k-labels-idx1-ubyte.gz", gz(&tiny_labels())),
    ] {
        write(dir.path(), name, &bytes);
    }
    let split = Mnist::load(dir.path()).unwrap();
    assert_eq!((split.train.len(), split.test.len()), (3, 3));
    assert_eq!(FashionMnist::find(Some(dir.path())).unwrap(), dir.path());
    assert_eq!(
        FashionMnist::load(dir.path()).unwrap().train.classes()[2],
        "Pullover"
    );
}

fn assert_names(err: &Error, path: &Path, words: &[&str]) {
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    for w in words {
        assert!(msg.contains(w), "expected {w:?} in: {msg}");
    }
}

#[test]
fn a_truncated_idx_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = tiny_images();
    bytes.truncate(bytes.len() - 2);
    // Header: 3 images of 2x2 = 12 bytes promised; 10 follow.
    for (name, data) in [("raw", bytes.clone()), ("t.gz", gz(&bytes))] {
        let p = write(dir.path(), name, &data);
        let err = read_idx_images(&p).unwrap_err();
        assert!(matches!(err, Error::Format { .. }), "{err:?}");
        assert_names(&err, &p, &["truncated", "12 bytes", "10 bytes"]);
    }
    // Shorter than the header itself.
    let p = write(dir.path(), "stub", &tiny_images()[..9]);
    assert_names(&read_idx_images(&p).unwrap_err(), &p, &["header"]);
    // A gzip stream cut in half fails while decompressing.
    let whole = gz(&tiny_images());
    let p = write(dir.path(), "cut.gz", &whole[..whole.len() / 2]);
    let err = read_idx_images(&p).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert_names(&err, &p, &["gzip"]);
    // Trailing bytes are as wrong as missing ones.
    let mut long = tiny_labels();
    long.push(0);
    let p = write(dir.path(), "long", &long);
    assert_names(&read_idx_labels(&p).unwrap_err(), &p, &["too long"]);
}

#[test]
fn a_label_file_of_the_wrong_length_names_the_label_file() {
    let dir = tempfile::tempdir().unwrap();
    let img = write(dir.path(), "images", &tiny_images());
    let lab = write(dir.path(), "labels", &idx(2049, &[2], &[0, 1]));
    let err = load_idx_pair(&img, &lab, &["a", "b"]).unwrap_err();
    match &err {
        Error::Format { what, .. } => assert_eq!(what, &lab.display().to_string()),
        other => panic!("{other:?}"),
    }
    assert_names(&err, &lab, &["2 labels", "3 images"]);
    // A label beyond the class list.
    let lab = write(dir.path(), "labels10", &idx(2049, &[3], &[0, 1, 10]));
    assert_names(
        &load_idx_pair(&img, &lab, &["a", "b"]).unwrap_err(),
        &lab,
        &["label 10"],
    );
}

#[test]
fn a_bad_magic_number_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    // A label file where an image file belongs.
    let p = write(dir.path(), "swapped", &tiny_labels());
    assert_names(
        &read_idx_images(&p).unwrap_err(),
        &p,
        &["magic number 2049", "2051", "label file"],
    );
    let p = write(dir.path(), "junk.gz", &gz(&idx(1234, &[3], &[0, 1, 2])));
    assert_names(
        &read_idx_labels(&p).unwrap_err(),
        &p,
        &["magic number 1234", "2049"],
    );
}

#[test]
fn a_missing_file_in_an_mnist_folder_is_named() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "train-images-idx3-ubyte", &tiny_images());
    let err = Mnist::load(dir.path()).unwrap_err();
    assert_names(
        &err,
        &dir.path().join("train-labels-idx1-ubyte"),
        &["not found"],
    );
}

fn png(path: &Path, w: u32, h: u32, rgb: [u8; 3]) {
    image::RgbImage::from_pixel(w, h, image::Rgb(rgb))
        .save(path)
        .unwrap();
}

fn folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("cat")).unwrap();
    std::fs::create_dir_all(root.join("dog")).unwrap();
    png(&root.join("cat/a.png"), 4, 4, [255, 0, 0]);
    write(
        root,
        "cat/b.jpg",
        b"\xff\xd8\xff\xe0 this is not really a JPEG",
    );
    image::RgbImage::from_pixel(4, 4, image::Rgb([0, 0, 255]))
        .save(root.join("dog/c.jpg"))
        .unwrap();
    write(root, "dog/notes.txt", b"ignored: not an image");
    dir
}

#[test]
fn an_unreadable_jpeg_is_an_error_naming_it() {
    let dir = folder();
    let err = ImageFolder::load(dir.path(), &ImageFolderOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert_names(&err, &dir.path().join("cat/b.jpg"), &["decode"]);
}

#[test]
fn skip_mode_leaves_out_the_unreadable_jpeg_and_reports_it() {
    let dir = folder();
    let opts = ImageFolderOptions {
        skip_unreadable: true,
        ..Default::default()
    };
    let folder = ImageFolder::load(dir.path(), &opts).unwrap();
    let ds = &folder.dataset;
    assert_eq!(ds.classes(), &["cat", "dog"]);
    assert_eq!(ds.labels(), &[0, 1]);
    assert_eq!(ds.sample_shape(), [3, 4, 4]);
    assert_eq!(folder.skipped.len(), 1);
    assert_eq!(folder.skipped[0].path, dir.path().join("cat/b.jpg"));
    // The PNG is lossless: red plane all 1, green and blue all 0.
    let a = ds.sample(0).unwrap();
    assert!(a[..16].iter().all(|&v| v == 1.0) && a[16..].iter().all(|&v| v == 0.0));
    // The JPEG is lossy but a flat blue square stays close to (0, 0, 1).
    let c = ds.image(1).unwrap().mean(&[1, 2], false).unwrap().to_vec();
    assert!(c[0] < 0.05 && c[1] < 0.05 && c[2] > 0.95, "{c:?}");
}

#[test]
fn image_folders_resize_to_one_size_or_refuse_mixed_sizes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("x")).unwrap();
    png(&dir.path().join("x/small.png"), 4, 4, [10, 20, 30]);
    png(&dir.path().join("x/wide.png"), 12, 6, [10, 20, 30]);
    let err = ImageFolder::load(dir.path(), &ImageFolderOptions::default()).unwrap_err();
    assert_names(&err, &dir.path().join("x/wide.png"), &["6x12", "4x4"]);
    let opts = ImageFolderOptions {
        size: Some(4),
        grayscale: true,
        ..Default::default()
    };
    let ds = ImageFolder::load(dir.path(), &opts).unwrap().dataset;
    assert_eq!(ds.sample_shape(), [1, 4, 4]);
    // A flat colour stays flat through bilinear resizing; its grey level is Rec. 601 luma,
    // 0.299*10 + 0.587*20 + 0.114*30 = 18.15, stored as 18.
    assert!(
        ds.pixels().iter().all(|&v| (v * 255.0 - 18.0).abs() < 1.01),
        "{:?}",
        ds.pixels()
    );
}

#[test]
fn cifar_batches_are_label_then_planar_rgb() {
    let dir = tempfile::tempdir().unwrap();
    let record = |label: u8, rgb: [u8; 3]| {
        let mut r = vec![label];
        for v in rgb {
            r.extend(std::iter::repeat_n(v, 1024));
        }
        r
    };
    let mut bytes = record(3, [255, 0, 51]);
    bytes.extend(record(9, [0, 255, 0]));
    let p = write(dir.path(), "test_batch.bin", &bytes);
    let classes = Cifar10::class_names(dir.path());
    let ds = Cifar10::load_batches(&[&p], classes).unwrap();
    assert_eq!(ds.labels(), &[3, 9]);
    assert_eq!(ds.sample_shape(), [3, 32, 32]);
    assert_eq!(ds.classes()[3], "cat");
    // Sample 0: red plane 255/255 = 1, green 0, blue 51/255 = 0.2.
    let means = ds.image(0).unwrap().mean(&[1, 2], false).unwrap().to_vec();
    let want = [1.0, 0.0, 0.2];
    assert!(
        means.iter().zip(want).all(|(m, w)| (m - w).abs() < 1e-6),
        "{means:?}"
    );

    // One byte short of two records.
    let p = write(dir.path(), "short.bin", &bytes[..bytes.len() - 1]);
    let err = Cifar10::load_batches(&[&p], Cifar10::class_names(dir.path())).unwrap_err();
    assert_names(&err, &p, &["3073"]);
    let p = write(dir.path(), "badlabel.bin", &record(10, [0, 0, 0]));
    let err = Cifar10::load_batches(&[&p], Cifar10::class_names(dir.path())).unwrap_err();
    assert_names(&err, &p, &["label 10"]);
    // A missing training batch is named.
    let err = Cifar10::load(dir.path()).unwrap_err();
    assert_names(&err, &dir.path().join("data_batch_1.bin"), &[]);
}
