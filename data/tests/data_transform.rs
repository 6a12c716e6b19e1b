//! Transforms: output shapes, bilinear values worked by hand, flips, crops that stay inside the
//! (padded) image, normalisation and ten-crop.

use tapegrad_autograd::{rng, Tensor};
use tapegrad_data::{
    mirror, CenterCrop, Compose, HorizontalFlip, Normalize, RandomCrop, RandomHorizontalFlip,
    ResizeShorter, SubtractMean, TenCrop, Transform,
};

fn image(c: usize, h: usize, w: usize, seed: u64) -> Tensor {
    Tensor::rand([c, h, w], 0.5, 1.0, &mut rng(seed))
}

#[test]
fn output_shapes() {
    let r = &mut rng(0);
    let wide = image(3, 20, 40, 1);
    let tall = image(3, 40, 20, 2);
    // Shorter side to 32 keeps the 1:2 aspect ratio.
    assert_eq!(
        ResizeShorter(32).apply(&wide, r).unwrap().dims(),
        &[3, 32, 64]
    );
    assert_eq!(
        ResizeShorter(32).apply(&tall, r).unwrap().dims(),
        &[3, 64, 32]
    );
    assert_eq!(
        CenterCrop::new(16).apply(&wide, r).unwrap().dims(),
        &[3, 16, 16]
    );
    assert_eq!(
        RandomCrop::new(20, 4, 0.0).apply(&tall, r).unwrap().dims(),
        &[3, 20, 20]
    );
    assert_eq!(HorizontalFlip.apply(&wide, r).unwrap().dims(), &[3, 20, 40]);
    // The AlexNet recipe in small: shorter side to 32, random 28 crop, random flip.
    let train = Compose::new()
        .then(ResizeShorter(32))
        .then(RandomCrop::new(28, 0, 0.0))
        .then(RandomHorizontalFlip::new(0.5));
    assert_eq!(train.len(), 3);
    assert_eq!(train.apply(&wide, r).unwrap().dims(), &[3, 28, 28]);
    let views = TenCrop::new(16).views(&wide).unwrap();
    assert_eq!(views.len(), 10);
    assert!(views.iter().all(|v| v.dims() == [3, 16, 16]));
    assert_eq!(
        TenCrop::new(16).batch(&wide).unwrap().dims(),
        &[10, 3, 16, 16]
    );
}

#[test]
fn bad_inputs_are_errors() {
    let r = &mut rng(0);
    let img = image(3, 8, 8, 0);
    assert!(HorizontalFlip.apply(&Tensor::zeros([8, 8]), r).is_err());
    assert!(HorizontalFlip.apply(&Tensor::zeros([3, 8, 0]), r).is_err());
    assert!(CenterCrop::new(9).apply(&img, r).is_err());
    assert!(RandomCrop::new(17, 4, 0.0).apply(&img, r).is_err());
    assert!(TenCrop::new(9).views(&img).is_err());
    assert!(ResizeShorter(0).apply(&img, r).is_err());
    assert!(Normalize::new(&[0.5], &[0.0]).is_err());
    assert!(Normalize::new(&[0.5, 0.5], &[1.0]).is_err());
    assert!(Normalize::new(&[0.5], &[1.0])
        .unwrap()
        .apply(&img, r)
        .is_err());
    assert!(SubtractMean::per_channel(&[0.1, 0.2])
        .unwrap()
        .apply(&img, r)
        .is_err());
}

#[test]
fn bilinear_resize_matches_hand_computed_values() {
    // 2x2 -> 4x4 with half-pixel centres: output o samples input (o + 0.5) * 2/4 - 0.5, i.e.
    // -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to the last pixel). Along a row from 0 to 1
    // that gives [0, 0.25, 0.75, 1]; the image [[0, 1], [2, 3]] is x + 2y, so out = a(x) + 2a(y).
    let x = Tensor::from_vec(vec![0.0, 1.0, 2.0, 3.0], [1, 2, 2]).unwrap();
    let y = ResizeShorter(4).apply(&x, &mut rng(0)).unwrap();
    let a = [0.0, 0.25, 0.75, 1.0];
    let want: Vec<f32> = (0..16).map(|i| a[i % 4] + 2.0 * a[i / 4]).collect();
    assert_eq!(y.dims(), &[1, 4, 4]);
    assert!(
        y.allclose(&Tensor::from_vec(want, [1, 4, 4]).unwrap(), 0.0, 1e-6),
        "{y:?}"
    );
    // Resizing to the same size samples every pixel at its own centre: the identity.
    let img = image(2, 5, 7, 3);
    assert!(ResizeShorter(5)
        .apply(&img, &mut rng(0))
        .unwrap()
        .allclose(&img, 0.0, 1e-6));
    // 4 -> 2 averages neighbours: output 0 samples (0.5) * 2 - 0.5 = 0.5, halfway between 0 and 1.
    let ramp = Tensor::from_vec((0..16).map(|v| v as f32).collect(), [1, 4, 4]).unwrap();
    let small = ResizeShorter(2).apply(&ramp, &mut rng(0)).unwrap();
    // Pixel (0, 0) averages rows 0-1 and columns 0-1: (0 + 1 + 4 + 5) / 4 = 2.5.
    assert_eq!(small.to_vec(), vec![2.5, 4.5, 10.5, 12.5]);
}

#[test]
fn flipping_twice_is_the_identity() {
    let r = &mut rng(0);
    let x = Tensor::from_vec((0..6).map(|v| v as f32).collect(), [1, 2, 3]).unwrap();
    let once = HorizontalFlip.apply(&x, r).unwrap();
    // Each row reversed: [0 1 2 / 3 4 5] -> [2 1 0 / 5 4 3].
    assert_eq!(once.to_vec(), vec![2.0, 1.0, 0.0, 5.0, 4.0, 3.0]);
    for seed in 0..8 {
        let img = image(3, 7, 9, seed);
        let twice = HorizontalFlip
            .apply(&HorizontalFlip.apply(&img, r).unwrap(), r)
            .unwrap();
        assert_eq!(twice, img);
    }
    // p = 1 always flips, p = 0 never; p = 0.5 flips about half of 400 draws (sd 10).
    let img = image(1, 3, 4, 9);
    let flipped = HorizontalFlip.apply(&img, r).unwrap();
    assert_eq!(
        RandomHorizontalFlip::new(1.0).apply(&img, r).unwrap(),
        flipped
    );
    assert_eq!(RandomHorizontalFlip::new(0.0).apply(&img, r).unwrap(), img);
    let n = (0..400)
        .filter(|_| RandomHorizontalFlip::new(0.5).apply(&img, r).unwrap() == flipped)
        .count();
    assert!((150..=250).contains(&n), "{n} of 400 flipped");
}

#[test]
fn random_crops_stay_inside_the_padded_image() {
    // Pixels in [0.5, 1) and padding of exactly 0: a crop may hold only those values, and must be
    // one of the (8 + 1)^2 windows of the 24x24 padded image.
    let img = image(2, 16, 16, 4);
    let padded = img.pad(&[(4, 4), (4, 4)], 0.0).unwrap();
    let crop = RandomCrop::new(16, 4, 0.0);
    let mut seen = std::collections::HashSet::new();
    let r = &mut rng(5);
    for _ in 0..300 {
        let out = crop.apply(&img, r).unwrap();
        assert!(out
            .data()
            .iter()
            .all(|&v| v == 0.0 || (0.5..1.0).contains(&v)));
        let at = (0..=8)
            .flat_map(|t| (0..=8).map(move |l| (t, l)))
            .find(|&(t, l)| {
                let win = padded.narrow(1, t, 16).unwrap().narrow(2, l, 16).unwrap();
                win == out
            })
            .expect("the crop is a window of the padded image");
        seen.insert(at);
    }
    // 300 uniform draws over 81 offsets miss a given one with probability (80/81)^300 < 3%; most
    // offsets, corners included, turn up.
    assert!(seen.len() > 70, "{} offsets", seen.len());
    assert!(seen.contains(&(0, 0)) || seen.contains(&(8, 8)));
}

#[test]
fn center_crop_takes_the_middle() {
    let img = image(3, 10, 13, 6);
    let out = CenterCrop { h: 4, w: 5 }.apply(&img, &mut rng(0)).unwrap();
    // Margins 6 and 8 split evenly: top 3, left 4.
    let want = img.narrow(1, 3, 4).unwrap().narrow(2, 4, 5).unwrap();
    assert_eq!(out, want);
}

#[test]
fn normalise_and_subtract_mean() {
    let r = &mut rng(0);
    // Channel 0 holds 1..=4, channel 1 holds 10; mean [2.5, 10], std [2, 4].
    let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 10.0, 10.0, 10.0, 10.0], [2, 2, 2]).unwrap();
    let y = Normalize::new(&[2.5, 10.0], &[2.0, 4.0])
        .unwrap()
        .apply(&x, r)
        .unwrap();
    assert_eq!(
        y.to_vec(),
        vec![-0.75, -0.25, 0.25, 0.75, 0.0, 0.0, 0.0, 0.0]
    );
    let y = SubtractMean::per_channel(&[1.0, 10.0])
        .unwrap()
        .apply(&x, r)
        .unwrap();
    assert_eq!(y.to_vec(), vec![0.0, 1.0, 2.0, 3.0, 0.0, 0.0, 0.0, 0.0]);
    // Subtracting an image from itself leaves zeros.
    let y = SubtractMean::new(x.clone()).unwrap().apply(&x, r).unwrap();
    assert!(y.data().iter().all(|&v| v == 0.0));
}

#[test]
fn ten_crop_gives_corners_centre_and_their_mirrors() {
    let img = image(3, 9, 11, 7);
    let (h, w) = (5, 6);
    let views = TenCrop { h, w }.views(&img).unwrap();
    let window = |t, l| img.narrow(1, t, h).unwrap().narrow(2, l, w).unwrap();
    // Corners top-left, top-right, bottom-left, bottom-right, then the centre (offsets 2, 2).
    let want = [
        window(0, 0),
        window(0, 5),
        window(4, 0),
        window(4, 5),
        window(2, 2),
    ];
    for (i, wv) in want.iter().enumerate() {
        assert_eq!(&views[i], wv, "view {i}");
        let mirror = HorizontalFlip.apply(wv, &mut rng(0)).unwrap();
        assert_eq!(views[i + 5], mirror, "view {}", i + 5);
    }
    // The views differ from each other on a random image.
    assert_ne!(views[0], views[5]);
    assert_ne!(views[0], views[3]);
}

#[test]
fn mirror_reverses_each_row_of_an_image_or_a_batch() {
    let x = Tensor::from_vec((0..12).map(|v| v as f32).collect(), [1, 2, 2, 3]).unwrap();
    let m = mirror(&x).unwrap();
    assert_eq!(
        m.to_vec(),
        [2.0, 1.0, 0.0, 5.0, 4.0, 3.0, 8.0, 7.0, 6.0, 11.0, 10.0, 9.0]
    );
    assert_eq!(m.dims(), x.dims());
    assert_eq!(mirror(&m).unwrap().to_vec(), x.to_vec());
    // One image alone, as HorizontalFlip flips it.
    let one = Tensor::from_vec((0..6).map(|v| v as f32).collect(), [1, 2, 3]).unwrap();
    assert_eq!(
        mirror(&one).unwrap().to_vec(),
        [2.0, 1.0, 0.0, 5.0, 4.0, 3.0]
    );
    let e = mirror(&Tensor::zeros([2, 3])).unwrap_err().to_string();
    assert!(e.contains("mirror") && e.contains("[N, C, H, W]"), "{e}");
}
