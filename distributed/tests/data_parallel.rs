//! `DataParallel` over a pretend world of two ranks whose other rank is simulated, so that
//! bucketing, averaging and broadcasting are checked without MPI.

use std::cell::RefCell;
use std::rc::Rc;

use tapegrad_autograd::{rng, Conv2dOptions, Result, Tape, Tensor};
use tapegrad_distributed::{Communicator, DataParallel, Reduce, SingleProcess};
use tapegrad_nn::layers::{BatchNorm2d, Conv2dConfig, Flatten, Linear};
use tapegrad_nn::optim::GradMap;
use tapegrad_nn::{Entry, Module, Sequential};

/// Rank 1 of 2. The other rank's gradients are all zeros, and its state (what a broadcast
/// from rank 0 brings) is all `root_value`. Records the length of every all-reduce.
struct OtherRankZeros {
    root_value: f32,
    reduced: Rc<RefCell<Vec<usize>>>,
}

impl Communicator for OtherRankZeros {
    fn rank(&self) -> usize {
        1
    }
    fn size(&self) -> usize {
        2
    }
    fn all_reduce(&self, buf: &mut [f32], op: Reduce) -> Result<()> {
        self.reduced.borrow_mut().push(buf.len());
        // (x + 0) / 2 for the mean; x + 0 for the sum; max(x, 0).
        for v in buf.iter_mut() {
            *v = match op {
                Reduce::Mean => *v / 2.0,
                Reduce::Sum => *v,
                Reduce::Max => v.max(0.0),
            };
        }
        Ok(())
    }
    fn all_reduce_f64(&self, _buf: &mut [f64], _op: Reduce) -> Result<()> {
        // Same census on both ranks: max and min are this rank's own values.
        Ok(())
    }
    fn broadcast(&self, buf: &mut [f32], _root: usize) -> Result<()> {
        buf.iter_mut().for_each(|v| *v = self.root_value);
        Ok(())
    }
    fn broadcast_f64(&self, buf: &mut [f64], _root: usize) -> Result<()> {
        buf.iter_mut().for_each(|v| *v = 7.0);
        Ok(())
    }
    fn barrier(&self) -> Result<()> {
        Ok(())
    }
    fn abort(&self, _code: i32) -> ! {
        panic!("abort is not expected in these tests")
    }
}

fn net(seed: u64) -> Sequential {
    let mut r = rng(seed);
    Sequential::new()
        .add(
            Conv2dConfig::new(1, 4, 3)
                .options(Conv2dOptions {
                    padding: (1, 1),
                    ..Default::default()
                })
                .init(&mut r)
                .unwrap(),
        )
        .add(BatchNorm2d::new(4).unwrap())
        .add(Flatten::new(1))
        .add(Linear::new(4 * 5 * 5, 3, &mut r).unwrap())
}

fn grads_of(model: &mut Sequential) -> GradMap {
    let tape = Tape::new();
    let x = tape.input(Tensor::randn([2, 1, 5, 5], &mut rng(9)));
    let y = model.forward(x).unwrap();
    let g = y.square().sum(&[], false).unwrap().backward().unwrap();
    GradMap::from_grads(model, &g)
}

#[test]
fn gradients_are_averaged_in_buckets_in_reverse_order() {
    let mut model = net(0);
    let grads = grads_of(&mut model);
    let reduced = Rc::new(RefCell::new(Vec::new()));
    let comm = OtherRankZeros {
        root_value: 0.0,
        reduced: reduced.clone(),
    };
    // Parameters in registration order: conv weight 36, conv bias 4, bn weight 4, bn bias 4,
    // linear weight 300, linear bias 3. Buckets of 64 bytes = 16 floats, filled from the end:
    // [3, 300] (3 < 16, so the weight joins), [4, 4, 4, 36]... stopping once 16 is reached:
    // [3 + 300], [4 + 4 + 4 + 36]: 4 + 4 + 4 = 12 < 16 so conv weight joins.
    let mut ddp = DataParallel::new(Rc::new(comm))
        .with_bucket_bytes(64)
        .unwrap();
    let mut averaged = grads.clone();
    ddp.average_gradients(&mut model, &mut averaged).unwrap();
    assert_eq!(*reduced.borrow(), vec![303, 48]);
    // The other rank sent zeros: the mean is half of this rank's gradient.
    for (name, g) in grads.iter() {
        let a = averaged.get(name).unwrap();
        for (x, y) in g.data().iter().zip(a.data()) {
            assert_eq!(*y, x / 2.0, "{name}");
        }
    }
    let s = ddp.stats();
    assert_eq!((s.steps, s.buckets, s.bytes), (1, 2, 4 * 351));
}

#[test]
fn a_missing_gradient_is_averaged_as_zeros() {
    let mut model = net(0);
    let mut grads = grads_of(&mut model);
    grads.remove("3.bias");
    let comm = OtherRankZeros {
        root_value: 0.0,
        reduced: Rc::new(RefCell::new(Vec::new())),
    };
    let mut ddp = DataParallel::new(Rc::new(comm));
    ddp.average_gradients(&mut model, &mut grads).unwrap();
    assert_eq!(grads.get("3.bias").unwrap().data(), &[0.0; 3]);
    assert_eq!(grads.len(), 6);
}

#[test]
fn a_gradient_of_the_wrong_shape_is_an_error_naming_it() {
    let mut model = net(0);
    let mut grads = grads_of(&mut model);
    grads.insert("3.bias", Tensor::zeros([4]));
    let mut ddp = DataParallel::new(Rc::new(SingleProcess));
    let e = ddp
        .average_gradients(&mut model, &mut grads)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("3.bias") && e.contains("[3]") && e.contains("[4]"),
        "{e}"
    );
}

#[test]
fn broadcast_brings_rank_zeros_state() {
    let mut model = net(1);
    let comm = OtherRankZeros {
        root_value: 0.25,
        reduced: Rc::new(RefCell::new(Vec::new())),
    };
    let mut ddp = DataParallel::new(Rc::new(comm));
    ddp.broadcast_model(&mut model).unwrap();
    let mut seen = 0;
    model.visit_mut("", &mut |name, e| match e {
        Entry::Param(p) => {
            assert!(p.value().data().iter().all(|&v| v == 0.25), "{name}");
            seen += 1;
        }
        Entry::Buffer(b) => assert!(b.data().iter().all(|&v| v == 0.25), "{name}"),
        Entry::Counter(c) => assert_eq!(*c, 7, "{name}"),
        Entry::Rng(_) => {}
    });
    assert_eq!(seen, 6);
}

#[test]
fn sync_buffers_leaves_the_parameters() {
    let mut model = net(1);
    let before: Vec<f32> = {
        let mut v = Vec::new();
        model.visit_mut("", &mut |_, e| {
            if let Entry::Param(p) = e {
                v.extend_from_slice(p.value().data());
            }
        });
        v
    };
    let comm = OtherRankZeros {
        root_value: -1.0,
        reduced: Rc::new(RefCell::new(Vec::new())),
    };
    let mut ddp = DataParallel::new(Rc::new(comm));
    ddp.sync_buffers(&mut model).unwrap();
    let mut after = Vec::new();
    model.visit_mut("", &mut |name, e| match e {
        Entry::Param(p) => after.extend_from_slice(p.value().data()),
        Entry::Buffer(b) => assert!(b.data().iter().all(|&v| v == -1.0), "{name}"),
        _ => {}
    });
    assert_eq!(before, after);
}

#[test]
fn one_process_changes_nothing() {
    let mut model = net(2);
    let grads = grads_of(&mut model);
    let mut ddp = DataParallel::new(Rc::new(SingleProcess));
    ddp.broadcast_model(&mut model).unwrap();
    let mut same = grads.clone();
    ddp.average_gradients(&mut model, &mut same).unwrap();
    assert_eq!(same, grads);
    assert!(DataParallel::new(Rc::new(SingleProcess))
        .with_bucket_bytes(0)
        .is_err());
}

#[test]
fn attached_to_the_tape_buckets_start_during_backward_with_the_same_result() {
    let reduced = Rc::new(RefCell::new(Vec::new()));
    let comm = || OtherRankZeros {
        root_value: 0.0,
        reduced: reduced.clone(),
    };
    let mut model = net(3);
    let x = Tensor::randn([2, 1, 5, 5], &mut rng(9));
    // After backward: the reference.
    let mut after = DataParallel::new(Rc::new(comm()))
        .with_bucket_bytes(64)
        .unwrap();
    let mut expected = grads_of(&mut model);
    after.average_gradients(&mut model, &mut expected).unwrap();
    assert_eq!(after.stats().started_during_backward, 0);
    // Overlapped: the hook fills the buckets while backward runs.
    let mut ddp = DataParallel::new(Rc::new(comm()))
        .with_bucket_bytes(64)
        .unwrap();
    let mut grads = {
        let tape = Tape::new();
        ddp.attach(&tape, &mut model);
        let y = model.forward(tape.input(x)).unwrap();
        let g = y.square().sum(&[], false).unwrap().backward().unwrap();
        // Both buckets (the linear layer's, then the rest) started before backward returned.
        assert_eq!(*reduced.borrow(), vec![303, 48, 303, 48]);
        GradMap::from_grads(&model, &g)
    };
    ddp.average_gradients(&mut model, &mut grads).unwrap();
    assert_eq!(grads, expected);
    let s = ddp.stats();
    assert_eq!((s.buckets, s.started_during_backward), (2, 2));
    // A step without attach still works after one with it.
    let mut again = grads_of(&mut model);
    ddp.average_gradients(&mut model, &mut again).unwrap();
    assert_eq!(again, expected);
}
