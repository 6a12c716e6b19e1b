//! Hostile data files, built on the fly: gzip bombs behind an IDX header, and image headers
//! that promise more pixels than a machine holds. Each is refused from its header, with an error
//! naming the file, without inflating or decoding what the header promises.

use flate2::{Compress, Compression, Crc, FlushCompress};
use std::path::{Path, PathBuf};
use tapegrad_autograd::{rng, Error, Tensor};
use tapegrad_data::{
    read_idx_images, read_idx_labels, read_image, synthetic, ImageFolder, ImageFolderOptions,
    RandomCrop, ResizeShorter, Transform,
};

fn idx_header(magic: u32, dims: &[u32]) -> Vec<u8> {
    let mut out = magic.to_be_bytes().to_vec();
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out
}

/// Raw deflate output of `input` followed by a full flush, which ends on a byte boundary and
/// resets the compressor's dictionary, so that the same input compresses to the same bytes
/// again and blocks can be repeated.
fn deflate_flushed(c: &mut Compress, input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() / 8 + 64);
    let mut done = 0;
    loop {
        let before_in = c.total_in();
        out.reserve(4096);
        c.compress_vec(&input[done..], &mut out, FlushCompress::Full)
            .unwrap();
        done += (c.total_in() - before_in) as usize;
        // A full flush is complete once all input is taken and the buffer was not filled.
        if done == input.len() && out.capacity() > out.len() {
            return out;
        }
    }
}

/// A gzip file whose contents are `head` followed by `zeros` zero bytes, built from one
/// compressed megabyte repeated: 10 GiB of zeros take about 10 MB, and no step holds more
/// than a megabyte of the zeros.
fn gzip_zero_bomb(head: &[u8], zeros: u64) -> Vec<u8> {
    const CHUNK: usize = 1 << 20;
    let mut c = Compress::new(Compression::best(), false);
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let mut crc = Crc::new();
    out.extend(deflate_flushed(&mut c, head));
    crc.update(head);
    let zero_chunk = vec![0u8; CHUNK];
    let block = deflate_flushed(&mut c, &zero_chunk);
    assert_eq!(
        block,
        deflate_flushed(&mut c, &zero_chunk),
        "not repeatable"
    );
    let mut chunk_crc = Crc::new();
    chunk_crc.update(&zero_chunk);
    // The first two chunks are the ones compressed above.
    out.extend_from_slice(&block);
    out.extend_from_slice(&block);
    crc.combine(&chunk_crc);
    crc.combine(&chunk_crc);
    let chunks = zeros / CHUNK as u64;
    assert!(chunks >= 2);
    for _ in 2..chunks {
        out.extend_from_slice(&block);
        crc.combine(&chunk_crc);
    }
    let rest = vec![0u8; (zeros % CHUNK as u64) as usize];
    out.extend(deflate_flushed(&mut c, &rest));
    crc.update(&rest);
    let mut tail = Vec::with_capacity(64);
    c.compress_vec(&[], &mut tail, FlushCompress::Finish)
        .unwrap();
    out.extend(tail);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&((head.len() as u64 + zeros) as u32).to_le_bytes());
    out
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn assert_names(err: &Error, path: &Path, words: &[&str]) {
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    for w in words {
        assert!(msg.contains(w), "expected {w:?} in: {msg}");
    }
}

const TEN_GIB: u64 = 10 << 30;

#[test]
fn the_bomb_builder_makes_valid_gzip() {
    // A small bomb, inflated whole: the header and 3 MiB + 5 zeros, with a valid trailer.
    use std::io::Read;
    let head = idx_header(2049, &[7]);
    let gz = gzip_zero_bomb(&head, (3 << 20) + 5);
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(gz.as_slice())
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out.len(), 8 + (3 << 20) + 5);
    assert_eq!(&out[..8], head.as_slice());
    assert!(out[8..].iter().all(|&b| b == 0));
}

#[test]
fn ten_gib_of_zeros_after_a_small_idx_header_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    // 3 images of 2x2: 12 bytes promised, 10 GiB follow (a file of about 10 MB).
    let gz = gzip_zero_bomb(&idx_header(2051, &[3, 2, 2]), TEN_GIB);
    assert!(gz.len() < 20 << 20, "{} bytes", gz.len());
    let p = write(dir.path(), "bomb-images.gz", &gz);
    let err = read_idx_images(&p).unwrap_err();
    assert!(matches!(err, Error::Format { .. }), "{err:?}");
    assert_names(&err, &p, &["too long", "12 bytes"]);
    // The same for labels: 4 promised.
    let gz = gzip_zero_bomb(&idx_header(2049, &[4]), TEN_GIB);
    let p = write(dir.path(), "bomb-labels.gz", &gz);
    assert_names(
        &read_idx_labels(&p).unwrap_err(),
        &p,
        &["too long", "4 bytes"],
    );
}

#[test]
fn a_header_promising_terabytes_is_refused_before_inflating() {
    let dir = tempfile::tempdir().unwrap();
    // 4e9 images of 28x28: 3.1e12 bytes promised; 10 GiB of zeros follow.
    let head = idx_header(2051, &[4_000_000_000, 28, 28]);
    let p = write(dir.path(), "huge.gz", &gzip_zero_bomb(&head, TEN_GIB));
    let err = read_idx_images(&p).unwrap_err();
    assert!(matches!(err, Error::Format { .. }), "{err:?}");
    assert_names(&err, &p, &["3136000000000 bytes", "limit"]);
    // Raw, the header is checked against the file's length without reading the rest.
    let p = write(dir.path(), "huge.raw", &head);
    assert_names(
        &read_idx_images(&p).unwrap_err(),
        &p,
        &["3136000000000 bytes"],
    );
    // Sizes whose product overflows 64 bits.
    let head = idx_header(2051, &[u32::MAX, u32::MAX, u32::MAX]);
    let p = write(dir.path(), "overflow.gz", &gzip_zero_bomb(&head, 2 << 20));
    assert_names(&read_idx_images(&p).unwrap_err(), &p, &["overflow"]);
}

/// A PNG chunk: length, type, data, CRC-32 of type and data.
fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = Crc::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_be_bytes());
    out
}

/// A PNG whose header says `w x h` 8-bit grey, followed by one empty compressed row: a few
/// dozen bytes that a decoder which trusts the header would allocate `w * h` bytes for (and a
/// folder loader 12 times as many as f32 RGB).
fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    // Bit depth 8, colour type 0 (grey), deflate, adaptive filtering, no interlace.
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    out.extend(png_chunk(b"IHDR", &ihdr));
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), Compression::default());
    std::io::Write::write_all(&mut z, &[0u8; 2]).unwrap();
    out.extend(png_chunk(b"IDAT", &z.finish().unwrap()));
    out.extend(png_chunk(b"IEND", &[]));
    out
}

fn image_folder(files: &[(&str, Vec<u8>)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    dir
}

fn small_png(w: u32, h: u32) -> Vec<u8> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    image::GrayImage::from_pixel(w, h, image::Luma([100]))
        .write_to(&mut bytes, image::ImageFormat::Png)
        .unwrap();
    bytes.into_inner()
}

#[test]
fn a_23000_pixel_square_png_is_refused_from_its_header() {
    // 23000 x 23000 = 529,000,000 pixels: 0.5 GB of grey bytes, 6.3 GB as f32 RGB.
    let dir = image_folder(&[
        ("a/big.png", png_header_only(23000, 23000)),
        ("a/small.png", small_png(4, 4)),
    ]);
    let opts = ImageFolderOptions::default();
    let err = ImageFolder::load(dir.path(), &opts).unwrap_err();
    assert_names(
        &err,
        &dir.path().join("a/big.png"),
        &["23000x23000", "529000000 pixels", "178956970"],
    );
}

#[test]
fn an_image_size_of_zero_is_an_error_up_front() {
    let dir = image_folder(&[("a/x.png", small_png(4, 4))]);
    let opts = ImageFolderOptions {
        size: Some(0),
        ..Default::default()
    };
    let msg = ImageFolder::load(dir.path(), &opts)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("size") && msg.contains("positive"), "{msg}");
}

#[test]
fn the_pixel_limit_is_configurable_and_skip_mode_skips_over_it() {
    let dir = image_folder(&[("a/x.png", small_png(4, 4)), ("a/y.png", small_png(2, 2))]);
    let strict = ImageFolderOptions {
        max_pixels: 15,
        ..Default::default()
    };
    // 4x4 = 16 pixels, one over.
    let err = ImageFolder::load(dir.path(), &strict).unwrap_err();
    assert_names(
        &err,
        &dir.path().join("a/x.png"),
        &["4x4", "16 pixels", "15"],
    );
    let skipping = ImageFolderOptions {
        skip_unreadable: true,
        ..strict.clone()
    };
    let folder = ImageFolder::load(dir.path(), &skipping).unwrap();
    assert_eq!(folder.dataset.len(), 1);
    assert_eq!(folder.skipped[0].path, dir.path().join("a/x.png"));
    let exact = ImageFolderOptions {
        max_pixels: 16,
        size: Some(2),
        ..Default::default()
    };
    assert_eq!(
        ImageFolder::load(dir.path(), &exact).unwrap().dataset.len(),
        2
    );
    // The decoding helper refuses the same way.
    let err = read_image(&dir.path().join("a/x.png"), 15).unwrap_err();
    assert_names(&err, &dir.path().join("a/x.png"), &["16 pixels"]);
    assert_eq!(
        read_image(&dir.path().join("a/y.png"), 4).unwrap().width(),
        2
    );
}

#[test]
fn a_resize_beyond_the_pixel_limit_is_refused() {
    // A 2000x1 strip resized to a shorter side of 10,000: 10,000 x 20,000,000 pixels.
    let dir = image_folder(&[("a/strip.png", small_png(2000, 1))]);
    let opts = ImageFolderOptions {
        size: Some(10_000),
        ..Default::default()
    };
    let err = ImageFolder::load(dir.path(), &opts).unwrap_err();
    assert_names(
        &err,
        &dir.path().join("a/strip.png"),
        &["200000000000 pixels"],
    );
    // A size whose square alone is over the limit, up front.
    let opts = ImageFolderOptions {
        size: Some(100_000),
        ..Default::default()
    };
    let msg = ImageFolder::load(dir.path(), &opts)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("100000") && msg.contains("178956970"), "{msg}");
    // The transforms likewise.
    let x = Tensor::zeros([1, 4, 4]);
    let mut r = rng(0);
    for size in [0, 1 << 40, usize::MAX] {
        let msg = ResizeShorter(size)
            .apply(&x, &mut r)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("ResizeShorter"), "{msg}");
    }
    for padding in [1 << 20, usize::MAX / 2, usize::MAX] {
        let crop = RandomCrop::new(4, padding, 0.0);
        let msg = crop.apply(&x, &mut r).unwrap_err().to_string();
        assert!(msg.contains("RandomCrop"), "{msg}");
    }
}

#[test]
fn a_synthetic_set_too_large_to_hold_is_an_error() {
    // 10 * 784 values per image of each class: the count overflows, or the buffer (34 PB at
    // 2^40 per class) cannot be allocated.
    for per_class in [usize::MAX / 7840 + 1, 1 << 40] {
        let msg = synthetic::shapes(per_class, 0).unwrap_err().to_string();
        assert!(msg.contains("too many"), "{msg}");
    }
}
