//! The built-in synthetic image set: deterministic, balanced, in range, and learnable.

use tapegrad_data::synthetic;

#[test]
fn the_same_seed_gives_the_same_images() {
    let a = synthetic::shapes(5, 3).unwrap();
    let b = synthetic::shapes(5, 3).unwrap();
    let c = synthetic::shapes(5, 4).unwrap();
    assert_eq!(a.pixels(), b.pixels());
    assert_eq!(a.labels(), b.labels());
    assert_ne!(a.pixels(), c.pixels());
    assert_eq!(a.len(), 50);
    assert_eq!(a.sample_shape(), [1, 28, 28]);
    assert_eq!(a.class_counts(), vec![5; 10]);
    assert_eq!(a.classes().len(), 10);
    let (lo, hi) = a.value_range();
    assert!(lo >= 0.0 && hi <= 1.0 && hi > 0.6, "{lo} {hi}");
}

#[test]
fn images_of_one_class_vary() {
    // Random placement and noise: no two images are equal, even of the same class.
    let ds = synthetic::shapes(4, 0).unwrap();
    for i in 0..ds.len() {
        for j in i + 1..ds.len() {
            assert_ne!(ds.sample(i).unwrap(), ds.sample(j).unwrap());
        }
    }
}

#[test]
fn a_nearest_neighbour_classifier_learns_it() {
    // 1-nearest-neighbour in pixel space, the simplest learner there is, already does far better
    // than the 10% of chance on held-out images: the classes carry signal.
    let split = synthetic::split(60, 20, 9).unwrap();
    let (train, test) = (&split.train, &split.test);
    let n = train.sample_numel();
    let mut right = 0;
    for i in 0..test.len() {
        let x = test.sample(i).unwrap();
        let nearest = (0..train.len())
            .min_by(|&a, &b| {
                let d = |k: usize| -> f32 {
                    let t = &train.pixels()[k * n..(k + 1) * n];
                    t.iter().zip(x).map(|(p, q)| (p - q) * (p - q)).sum()
                };
                d(a).total_cmp(&d(b))
            })
            .unwrap();
        right += usize::from(train.labels()[nearest] == test.labels()[i]);
    }
    let acc = right as f32 / test.len() as f32;
    eprintln!("1-NN accuracy {acc}");
    assert!(acc > 0.7, "1-NN accuracy {acc}");
}
