//! Training checkpoints: model, optimiser state, scheduler counters and metadata in one file,
//! so that a run stopped and resumed from it is bit-for-bit the uninterrupted run.

mod checkpoint_util;

use checkpoint_util::scratch;
use std::path::Path;
use tapegrad_autograd::{rng, Error, Tape, Tensor};
use tapegrad_nn::checkpoint::{
    self, load_checkpoint, rng_states, save_checkpoint, state_dict, Checkpoint,
};
use tapegrad_nn::layers::{Dropout, Linear, ReLU};
use tapegrad_nn::optim::{Adam, AdamConfig, LrScheduler, Optimizer, Sgd, SgdConfig, StepLR};
use tapegrad_nn::{loss, Module, Sequential};

const STEPS: usize = 20;
const SAVE_AT: usize = 10;

fn mlp(seed: u64) -> Sequential {
    let g = &mut rng(seed);
    Sequential::new()
        .add(Linear::new(4, 8, g).unwrap())
        .add(ReLU)
        .add(Linear::new(8, 3, g).unwrap())
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
    let ckpt = Checkpoint::new(&model)
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
    let m = mlp(1);
    let ckpt = Checkpoint::new(&m).with_metadata("epoch", "three");
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

/// `Linear -> Dropout -> Linear`: the same parameter keys as `mlp` (`0.*`, `2.*`), and a
/// generator at `1.rng_state`. The dropout seed is `seed` too, so a fresh model built with
/// another seed draws other masks.
fn dropout_mlp(seed: u64) -> Sequential {
    let g = &mut rng(seed);
    Sequential::new()
        .add(Linear::new(4, 8, g).unwrap())
        .add(Dropout::new(0.5, seed).unwrap())
        .add(Linear::new(8, 3, g).unwrap())
}

/// Steps `from..STEPS` of `model`, with a checkpoint of model and optimiser after step
/// `SAVE_AT` when `save` is given; the losses.
fn dropout_run(
    model: &mut Sequential,
    opt: &mut dyn Optimizer,
    from: usize,
    save: Option<&Path>,
) -> Vec<f32> {
    let (x, y) = data();
    let mut losses = Vec::new();
    for i in from..STEPS {
        if let (Some(path), true) = (save, i == SAVE_AT) {
            save_checkpoint(path, &Checkpoint::new(model).with_optimizer(&*opt)).unwrap();
        }
        losses.push(step(model, opt, &x, &y));
    }
    losses
}

/// A fresh model (other weights, other dropout seed) and optimiser restored from `ckpt`, run
/// from step `SAVE_AT` to the end.
fn dropout_resumed(ckpt: &Checkpoint) -> (Vec<f32>, checkpoint::LoadReport) {
    let (mut model, mut opt) = (dropout_mlp(99), optimiser("sgd"));
    let report = ckpt.restore_model(&mut model, true).unwrap();
    ckpt.restore_optimizer(opt.as_mut()).unwrap();
    (dropout_run(&mut model, opt.as_mut(), SAVE_AT, None), report)
}

#[test]
fn dropout_masks_resume_exactly() {
    let dir = scratch("resume-dropout");
    let path = dir.join("ckpt.safetensors");
    // The uninterrupted run also writes the checkpoint at step SAVE_AT (saving only reads).
    let whole = dropout_run(
        &mut dropout_mlp(1),
        optimiser("sgd").as_mut(),
        0,
        Some(&path),
    );
    assert!(whole[STEPS - 1] < whole[0], "{whole:?}");

    let ckpt = load_checkpoint(&path).unwrap();
    // The generator is saved as metadata, not as a tensor: the tensor keys stay PyTorch's.
    let mut names: Vec<&str> = ckpt.model.iter().map(|(n, _)| n.as_str()).collect();
    names.sort();
    assert_eq!(names, ["0.bias", "0.weight", "2.bias", "2.weight"]);
    assert_eq!(ckpt.rng.len(), 1);
    assert_eq!(ckpt.rng[0].0, "1.rng_state");
    // 10 steps of 24 x 8 masks, one 32-bit word per element: 1920 words drawn.
    assert_eq!(ckpt.rng[0].1.word_pos, (SAVE_AT * 24 * 8) as u128);

    let (resumed, report) = dropout_resumed(&ckpt);
    assert!(report.is_clean() && report.restored_every_rng(), "{report}");
    assert_eq!(
        bits(&resumed),
        bits(&whole[SAVE_AT..]),
        "{resumed:?} vs {whole:?}"
    );

    // Control: without the generator's state the fresh model draws its own masks, so the
    // very first resumed loss differs (weights and optimiser are the saved ones).
    let mut without = ckpt.clone();
    without.rng.clear();
    let (drifted, report) = dropout_resumed(&without);
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.rng_missing, ["1.rng_state"]);
    assert!(
        report.to_string().contains("(not restored): 1.rng_state"),
        "{report}"
    );
    assert_ne!(drifted[0].to_bits(), whole[SAVE_AT].to_bits());
}

#[test]
fn generator_states_are_optional_on_load() {
    let dir = scratch("rng-optional");
    // A forward pass in training mode moves the generator on from its seed.
    let mut source = dropout_mlp(3);
    let tape = Tape::new();
    source.forward(tape.input(data().0)).unwrap();

    // A PyTorch file (tensors only) loads strictly; the generator keeps its state.
    let torch = dir.join("torch.safetensors");
    let plain = Checkpoint {
        model: state_dict(&source),
        ..Default::default()
    };
    plain.save(&torch).unwrap();
    let mut m = dropout_mlp(4);
    let before = rng_states(&m);
    let report = checkpoint::load(&mut m, &torch, true).unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.rng_missing, ["1.rng_state"]);
    assert_eq!(rng_states(&m), before);
    assert_eq!(state_dict(&m), state_dict(&source));

    // A file with the state restores it, through `load` as well.
    let full = dir.join("full.safetensors");
    checkpoint::save(&source, &full).unwrap();
    let report = checkpoint::load(&mut m, &full, true).unwrap();
    assert!(report.restored_every_rng(), "{report}");
    assert_eq!(rng_states(&m), rng_states(&source));
    assert_ne!(rng_states(&m), before);

    // Into a network without the generator (same tensor keys): loads strictly, the state is
    // reported as unused.
    let report = checkpoint::load(&mut mlp(5), &full, true).unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.rng_unexpected, ["1.rng_state"]);

    // A state of an unknown generator is refused, naming its key (same-length edit of the
    // header's text).
    let bytes = std::fs::read(&full).unwrap();
    let at = bytes.windows(8).position(|w| w == b"chacha12").unwrap();
    let mut edited = bytes.clone();
    edited[at..at + 8].copy_from_slice(b"chacha20");
    let err = Checkpoint::from_bytes(&edited).unwrap_err().to_string();
    assert!(
        err.contains("tapegrad.rng.1.rng_state") && err.contains("chacha20"),
        "{err}"
    );
}
