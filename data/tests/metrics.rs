//! Top-k error, the confusion matrix and the accumulator, on hand-worked examples.

use tapegrad_autograd::Tensor;
use tapegrad_data::metrics::{rank_of, top_k_error, Accumulator, ConfusionMatrix};

fn scores(rows: &[&[f32]]) -> Tensor {
    let k = rows[0].len();
    Tensor::from_vec(rows.concat(), [rows.len(), k]).unwrap()
}

#[test]
fn the_lectures_top_k_example() {
    // Six classes; the true class 4 has the third highest score (0.7 > 0.6 > 0.5): not the top
    // guess, so a top-1 error, but among the top five, so no top-5 error.
    let s = scores(&[&[0.1, 0.7, 0.2, 0.0, 0.5, 0.6]]);
    assert_eq!(rank_of(s.data(), 4), 2);
    assert_eq!(top_k_error(&s, &[4], 1).unwrap(), 1.0);
    assert_eq!(top_k_error(&s, &[4], 2).unwrap(), 1.0);
    assert_eq!(top_k_error(&s, &[4], 3).unwrap(), 0.0);
    assert_eq!(top_k_error(&s, &[4], 5).unwrap(), 0.0);
    // A ranked-6th class is a top-5 error.
    assert_eq!(top_k_error(&s, &[3], 5).unwrap(), 1.0);
}

#[test]
fn top_k_error_is_a_fraction_over_rows() {
    // Row truths ranked 0, 1, 3 and 2 (0-based): top-1 misses 3 of 4, top-2 misses 2, top-3
    // misses 1, top-4 none.
    let s = scores(&[
        &[0.9, 0.1, 0.0, 0.0],
        &[0.9, 0.5, 0.0, 0.0],
        &[0.4, 0.3, 0.2, 0.1],
        &[3.0, 1.0, 2.0, 0.0],
    ]);
    let labels = [0, 1, 3, 1];
    let errs: Vec<f32> = (1..=4)
        .map(|k| top_k_error(&s, &labels, k).unwrap())
        .collect();
    assert_eq!(errs, vec![0.75, 0.5, 0.25, 0.0]);
    // Ties go to the lower index, as argmax: class 1 tied with class 0 ranks second.
    let tie = scores(&[&[0.5, 0.5, 0.0]]);
    assert_eq!(top_k_error(&tie, &[1], 1).unwrap(), 1.0);
    assert_eq!(top_k_error(&tie, &[0], 1).unwrap(), 0.0);
    // NaN outranks everything, so a diverged score never hides an error.
    let nan = scores(&[&[f32::NAN, 1.0, 0.0]]);
    assert_eq!(top_k_error(&nan, &[1], 1).unwrap(), 1.0);
    // Bad inputs.
    assert!(top_k_error(&s, &[0, 1], 1).is_err());
    assert!(top_k_error(&s, &[0, 1, 4, 1], 1).is_err());
    assert!(top_k_error(&s, &labels, 0).is_err());
    assert!(top_k_error(&Tensor::zeros([4]), &labels, 1).is_err());
}

/// Labels [0, 0, 1, 1, 2, 2, 2] predicted as [0, 1, 1, 1, 0, 2, 2] (one-hot scores).
fn example() -> (Tensor, Vec<usize>) {
    let preds = [0, 1, 1, 1, 0, 2, 2];
    let mut data = vec![0.0; 21];
    for (i, &p) in preds.iter().enumerate() {
        data[i * 3 + p] = 1.0;
    }
    (
        Tensor::from_vec(data, [7, 3]).unwrap(),
        vec![0, 0, 1, 1, 2, 2, 2],
    )
}

#[test]
fn a_hand_computed_confusion_matrix() {
    let (s, labels) = example();
    let mut m = ConfusionMatrix::new(&["cat", "dog", "bird"]);
    m.add_scores(&s, &labels).unwrap();
    // Row = truth, column = prediction:
    //   cat:  one right, one called dog        -> [1, 1, 0]
    //   dog:  both right                       -> [0, 2, 0]
    //   bird: one called cat, two right        -> [1, 0, 2]
    let want = [[1, 1, 0], [0, 2, 0], [1, 0, 2]];
    for (t, row) in want.iter().enumerate() {
        for (p, &n) in row.iter().enumerate() {
            assert_eq!(m.get(t, p), n, "({t}, {p})");
        }
    }
    assert_eq!(m.total(), 7);
    assert_eq!(m.support(), vec![2, 2, 3]);
    // 5 of 7 on the diagonal; per class 1/2, 2/2, 2/3.
    assert!((m.accuracy() - 5.0 / 7.0).abs() < 1e-6);
    let per = m.per_class_accuracy();
    assert_eq!(per[0], Some(0.5));
    assert_eq!(per[1], Some(1.0));
    assert!((per[2].unwrap() - 2.0 / 3.0).abs() < 1e-6);
    // A class with no samples has no accuracy.
    let mut empty = ConfusionMatrix::unnamed(2);
    empty.add(0, 1).unwrap();
    assert_eq!(empty.per_class_accuracy(), vec![Some(0.0), None]);
    assert!(empty.add(2, 0).is_err());
    assert!(m.add_scores(&Tensor::zeros([1, 4]), &[0]).is_err());
}

#[test]
fn the_text_rendering_is_a_readable_table() {
    let (s, labels) = example();
    let mut m = ConfusionMatrix::new(&["cat", "dog", "bird"]);
    m.add_scores(&s, &labels).unwrap();
    let text = m.to_string();
    let lines: Vec<&str> = text.lines().collect();
    // Header, rule, one line per class, summary.
    assert_eq!(lines.len(), 6, "{text}");
    assert!(lines[0].contains("true \\ pred"), "{text}");
    let cells = |line: &str| -> Vec<String> {
        let mid = line.split('|').nth(1).unwrap();
        mid.split_whitespace().map(String::from).collect()
    };
    assert_eq!(cells(lines[0]), vec!["0", "1", "2"]);
    assert!(lines[2].contains("cat") && lines[4].contains("bird"));
    assert_eq!(cells(lines[2]), vec!["1", "1", "0"]);
    assert_eq!(cells(lines[3]), vec!["0", "2", "0"]);
    assert_eq!(cells(lines[4]), vec!["1", "0", "2"]);
    assert!(
        lines[2].ends_with("50.00%") && lines[4].ends_with("66.67%"),
        "{text}"
    );
    assert!(
        lines[5].contains("71.43%") && lines[5].contains("7 samples"),
        "{text}"
    );
    // Columns line up: every row has its separators at the same places.
    let bars = |l: &str| l.match_indices('|').map(|(i, _)| i).collect::<Vec<_>>();
    assert!(
        lines[2..5].iter().all(|l| bars(l) == bars(lines[0])),
        "{text}"
    );
}

#[test]
fn the_accumulator_matches_one_pass_over_all_rows() {
    let (s, labels) = example();
    let mut acc = Accumulator::new(&["cat", "dog", "bird"], &[1, 2]).unwrap();
    // Two batches: rows 0..4 and 4..7.
    acc.update(&s.narrow(0, 0, 4).unwrap(), &labels[..4])
        .unwrap();
    acc.update(&s.narrow(0, 4, 3).unwrap(), &labels[4..])
        .unwrap();
    assert_eq!(acc.count(), 7);
    assert_eq!(
        acc.top_k_error(1).unwrap(),
        top_k_error(&s, &labels, 1).unwrap()
    );
    // Top-1 misses 2 of 7. Top-2: one-hot scores tie the two zero classes, the lower index
    // ranking second: row 1 (truth 0, predicted 1) has truth 0 second -> hit; row 4 (truth 2,
    // predicted 0) has class 1 second -> miss. So 1 of 7.
    assert!((acc.top_k_error(1).unwrap() - 2.0 / 7.0).abs() < 1e-6);
    assert!((acc.top_k_error(2).unwrap() - 1.0 / 7.0).abs() < 1e-6);
    assert!(acc.top_k_error(5).is_err());
    assert_eq!(acc.confusion().get(2, 0), 1);
    assert_eq!(acc.per_class_accuracy()[1], Some(1.0));
    // Mean loss weighted by batch size: (1.0 * 4 + 8.0 * 3) / 7 = 4.
    assert_eq!(acc.mean_loss(), None);
    acc.add_loss(1.0, 4);
    acc.add_loss(8.0, 3);
    assert_eq!(acc.mean_loss(), Some(4.0));
    assert!(Accumulator::new(&["a", "b"], &[3]).is_err());
}

#[test]
fn shards_added_through_their_sums_give_the_whole() {
    // Three samples over 3 classes, evaluated whole and as two shards (rows 0-1 and row 2)
    // whose sums are added, as an all-reduce over two ranks would.
    let classes = ["a", "b", "c"];
    let s = scores(&[&[0.9, 0.1, 0.0], &[0.2, 0.3, 0.5], &[0.1, 0.8, 0.1]]);
    let labels = [0, 1, 1];
    let mut whole = Accumulator::new(&classes, &[1, 2]).unwrap();
    whole.update(&s, &labels).unwrap();
    whole.add_loss(0.5, 3);
    let mut a = Accumulator::new(&classes, &[1, 2]).unwrap();
    a.update(&scores(&[&[0.9, 0.1, 0.0], &[0.2, 0.3, 0.5]]), &labels[..2])
        .unwrap();
    a.add_loss(0.75, 2);
    let mut b = Accumulator::new(&classes, &[1, 2]).unwrap();
    b.update(&scores(&[&[0.1, 0.8, 0.1]]), &labels[2..])
        .unwrap();
    b.add_loss(0.0, 1);
    let sums: Vec<f64> = a.sums().iter().zip(b.sums()).map(|(x, y)| x + y).collect();
    a.set_sums(&sums).unwrap();
    assert_eq!(a.sums(), whole.sums());
    // Row 1 (label 1) ranks 2nd: one top-1 miss of 3, no top-2 miss.
    assert!((a.top_k_error(1).unwrap() - 1.0 / 3.0).abs() < 1e-6);
    assert_eq!(a.top_k_error(2).unwrap(), 0.0);
    assert_eq!(a.mean_loss(), Some(0.5));
    assert_eq!(a.confusion().get(1, 2), 1);
    assert!(a.set_sums(&sums[1..]).is_err());
    let mut bad = sums.clone();
    bad[0] = -1.0;
    assert!(a.set_sums(&bad).is_err());
}
