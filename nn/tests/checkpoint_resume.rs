//! Training checkpoints: model, optimiser state, scheduler counters and metadata in one file,
//! so that a run stopped and resumed from it is bit-for-bit the uninterrupted run.

mod checkpoint_util;

use checkpoint_util::scratch;
use std::path::Path;
use tapegrad_autograd::{rng, Error, Tape, Tensor};
use tapegrad_nn::checkpoint::{self, load_checkpoint, save_checkpoint, Checkpoint};
use tapegrad_nn::layers::{Linear, ReLU};
use tapegrad_nn::optim::{Adam, AdamConfig, LrScheduler, Optimizer, Sgd, SgdConfig, StepLR};
use tapegrad_nn::{loss, Module, Sequential};

const STEPS: usize = 20;
const SAVE_AT: usize = 10;

fn mlp(seed: u64) -> Sequential {
    let g = &mut rng(seed);
    Sequential::new()
        .add(Linear::new(4, 8, true, g))
        .add(ReLU)
        .add(Linear::new(8, 3, true, g))
}

fn data() -> (Tensor, Vec<usize>) {
    let x = Tensor::randn([24, 4], &mut rng(11));
    let y = (0..24).map(|i| (i * 7 + i / 5) % 3).collect();
    (x, y)
}

/// One full-batch step; returns the loss before the update.
fn step(model: &mut Sequential, opt: &mut dyn Optimizer, x: &Tensor, y: &[usize]) -> f32 {
    let tape = Tape::new();
    let logits = model.forward(tape.input(x.clone())).unwrap();
    let l = loss::cross_entropy(logits, y).unwrap();
    let value = l.item().unwrap();
    let grads = l.backward().unwrap();
    opt.step(model, &grads).unwrap();
    value
}

fn optimiser(kind: &str) -> Box<dyn Optimizer> {
    match kind {
        "sgd" => Box::new(
            Sgd::new(SgdConfig {
                lr: 0.1,
                momentum: 0.9,
                weight_decay: 1e-3,
                ..Default::default()
            })
            .unwrap(),
        ),
        _ => Box::new(
            Adam::new(AdamConfig {
                lr: 0.02,
                ..Default::default()
            })
            .unwrap(),
        ),
    }
}

/// Each step is an "epoch" for the schedule: the rate halves every 4 steps.
fn schedule(opt: &dyn Optimizer) -> StepLR {
    StepLR::new(opt, 4, 0.5).unwrap()
}

fn uninterrupted(kind: &str) -> Vec<f32> {
    let (x, y) = data();
    let (mut model, mut opt) = (mlp(1), optimiser(kind));
    let mut sched = schedule(opt.as_ref());
    (0..STEPS)
        .map(|_| {
            let l = step(&mut model, opt.as_mut(), &x, &y);
            sched.step(opt.as_mut()).unwrap();
            l
        })
        .collect()
}

/// Steps 0..SAVE_AT, then a checkpoint with everything needed to go on.
fn first_half(kind: &str, path: &Path) -> Vec<f32> {
    let (x, y) = data();
    let (mut model, mut opt) = (mlp(1), optimiser(kind));
    let mut sched = schedule(opt.as_ref());
    let mut losses = Vec::new();
    for _ in 0..SAVE_AT {
        losses.push(step(&mut model, opt.as_mut(), &x, &y));
        sched.step(opt.as_mut()).unwrap();
    }
    let ckpt = Checkpoint::new(&mut model)
        .with_optimizer(opt.as_ref())
        .with_scheduler(&sched.state_dict())
        .with_metadata("step", SAVE_AT)
        .with_metadata("note", "résumé: ünïcode and spaces = fine");
    save_checkpoint(path, &ckpt).unwrap();
    losses
}

/// A fresh model (other seed), optimiser and schedule, restored from the checkpoint; with
/// `restore_optimizer` false the optimiser starts from nothing (the control).
fn second_half(kind: &str, path: &Path, restore_optimizer: bool) -> Vec<f32> {
    let (x, y) = data();
    let (mut model, mut opt) = (mlp(99), optimiser(kind));
    let mut sched = schedule(opt.as_ref());
    let ckpt = load_checkpoint(path).unwrap();
    assert!(ckpt.restore_model(&mut model, true).unwrap().is_clean());
    if restore_optimizer {
        ckpt.restore_optimizer(opt.as_mut()).unwrap();
        sched
            .load_state_dict(&ckpt.scheduler_state().unwrap())
            .unwrap();
    }
    let start: usize = ckpt.metadata_value("step").unwrap();
    assert_eq!(ckpt.metadata["note"], "résumé: ünïcode and spaces = fine");
    (start..STEPS)
        .map(|_| {
            let l = step(&mut model, opt.as_mut(), &x, &y);
            sched.step(opt.as_mut()).unwrap();
            l
        })
        .collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn resumed_training_matches_the_uninterrupted_run_exactly() {
    for kind in ["sgd", "adam"] {
        let dir = scratch(&format!("resume-{kind}"));
        let path = dir.join("ckpt.safetensors");
        let whole = uninterrupted(kind);
        let mut resumed = first_half(kind, &path);
        resumed.extend(second_half(kind, &path, true));
        assert_eq!(
            bits(&resumed),
            bits(&whole),
            "{kind}: {resumed:?} vs {whole:?}"
        );
        // The run learns, so the comparison is over changing numbers.
        assert!(whole[STEPS - 1] < whole[0], "{kind}: {whole:?}");

        // Control: the same model without the optimiser's state (momentum or moments, step
        // counts, scheduled rate) takes the same first step's loss but then drifts.
        let control = second_half(kind, &path, false);
        assert_eq!(control[0].to_bits(), whole[SAVE_AT].to_bits());
        assert_ne!(bits(&control[1..]), bits(&whole[SAVE_AT + 1..]), "{kind}");
    }
}

#[test]
fn a_training_checkpoint_still_loads_as_a_plain_model_file() {
    // The optimiser's tensors live under `optimizer.` and are flagged in the metadata, so
    // `load` (and PyTorch with strict=False) sees the model's keys.
    let dir = scratch("plain-from-training");
    let path = dir.join("ckpt.safetensors");
    first_half("adam", &path);
    let ckpt = load_checkpoint(&path).unwrap();
    let opt = ckpt.optimizer.as_ref().unwrap();
    assert!(opt.buffers.iter().any(|(k, _)| k == "0.weight.exp_avg"));
    assert!(opt.steps.iter().all(|(_, s)| *s == SAVE_AT as u64));
    let mut m = mlp(5);
    assert!(checkpoint::load(&mut m, &path, true).unwrap().is_clean());
    // Format bookkeeping is not part of the user's metadata.
    let keys: Vec<&str> = ckpt.metadata.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "note",
            "scheduler.base_lr.0",
            "scheduler.last_epoch",
            "step"
        ]
    );
}

#[test]
fn a_model_with_an_optimizer_submodule_loads_from_a_plain_file() {
    // Without the flag, `optimizer.` keys are model keys (a PyTorch module may be called so).
    let mut ckpt = Checkpoint::default();
    ckpt.model
        .push(("optimizer.weight".into(), Tensor::ones([2, 3])));
    ckpt.model
        .push(("optimizer.bias".into(), Tensor::zeros([2])));
    let back = Checkpoint::from_bytes(&ckpt.to_bytes().unwrap()).unwrap();
    assert!(back.optimizer.is_none());
    assert_eq!(back.model.len(), 2);
    // With an optimiser in the same checkpoint the names would be ambiguous: refused.
    ckpt.optimizer = Some(optimiser("sgd").state_dict());
    let err = ckpt.to_bytes().unwrap_err();
    assert!(err.to_string().contains("optimizer.weight"), "{err}");
}

#[test]
fn metadata_errors_name_the_key() {
    let mut m = mlp(1);
    let ckpt = Checkpoint::new(&mut m).with_metadata("epoch", "three");
    let err = ckpt.metadata_value::<usize>("epoch").unwrap_err();
    assert!(
        matches!(err, Error::Format { .. }) && err.to_string().contains("epoch = \"three\""),
        "{err}"
    );
    let err = ckpt.metadata_value::<usize>("step").unwrap_err();
    assert!(err.to_string().contains("step is missing"), "{err}");
    let err = ckpt
        .restore_optimizer(optimiser("adam").as_mut())
        .unwrap_err();
    assert!(err.to_string().contains("no optimizer state"), "{err}");
    assert!(ckpt.scheduler_state().is_err());
    for reserved in ["format", "tapegrad.optimizer"] {
        let err = ckpt
            .clone()
            .with_metadata(reserved, "x")
            .to_bytes()
            .unwrap_err();
        assert!(err.to_string().contains(reserved), "{err}");
    }
    let bad = ckpt.with_metadata("scheduler.last_epoch", "NaN?");
    assert!(bad
        .scheduler_state()
        .unwrap_err()
        .to_string()
        .contains("scheduler.last_epoch"));
}

#[test]
fn optimizer_state_of_the_wrong_optimiser_is_refused() {
    // Adam's moments loaded into SGD: the error names the buffer, SGD is unchanged.
    let dir = scratch("wrong-optimiser");
    let path = dir.join("ckpt.safetensors");
    first_half("adam", &path);
    let ckpt = load_checkpoint(&path).unwrap();
    let mut sgd = optimiser("sgd");
    let err = ckpt.restore_optimizer(sgd.as_mut()).unwrap_err();
    assert!(err.to_string().contains("exp_avg"), "{err}");
    assert!(sgd.state_dict().steps.is_empty());
}
