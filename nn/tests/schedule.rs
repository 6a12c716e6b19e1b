//! Learning-rate schedules against values computed by hand from PyTorch's definitions.

use tapegrad_nn::optim::{
    CosineAnnealingLR, LrScheduler, MultiStepLR, Optimizer, ParamGroup, PlateauConfig, PlateauMode,
    ReduceLROnPlateau, Sgd, SgdConfig, StepLR, ThresholdMode,
};

fn sgd(lr: f32) -> Sgd {
    Sgd::new(SgdConfig {
        lr,
        ..Default::default()
    })
    .unwrap()
}

/// The default group's rate at epochs 0..n (read before each `step`).
fn run(sched: &mut dyn LrScheduler, opt: &mut Sgd, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let lr = opt.lr();
            sched.step(opt).unwrap();
            lr
        })
        .collect()
}

fn assert_lrs(got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len());
    for (e, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g as f64 - w).abs() <= 1e-6 * w.abs().max(1e-3),
            "epoch {e}: got {g}, expected {w}"
        );
    }
}

#[test]
fn step_lr_halves_every_three_epochs() {
    // 0.2 * 0.5^floor(e / 3)
    let mut opt = sgd(0.2);
    let mut s = StepLR::new(&opt, 3, 0.5).unwrap();
    let lrs = run(&mut s, &mut opt, 8);
    assert_lrs(&lrs, &[0.2, 0.2, 0.2, 0.1, 0.1, 0.1, 0.05, 0.05]);
    assert_eq!(s.last_epoch(), 8);
    assert!(StepLR::new(&opt, 0, 0.5).is_err());
}

#[test]
fn multistep_counts_a_repeated_milestone_twice() {
    // Milestones 2, 5, 5 with gamma 0.1: x0.1 from epoch 2, x0.01 more from epoch 5.
    let mut opt = sgd(1.0);
    let mut s = MultiStepLR::new(&opt, &[5, 2, 5], 0.1).unwrap();
    let lrs = run(&mut s, &mut opt, 7);
    assert_lrs(&lrs, &[1.0, 1.0, 0.1, 0.1, 0.1, 0.001, 0.001]);
}

#[test]
fn cosine_annealing_follows_half_a_cosine() {
    // eta_min + (base - eta_min)(1 + cos(pi e / 4)) / 2 with base 1.1, eta_min 0.1:
    // e=1: 0.1 + (1 + 0.70711)/2 = 0.953553; e=2: 0.6; e=3: 0.1 + (1 - 0.70711)/2 = 0.246447;
    // e=4: 0.1; past t_max it climbs back (e=5 equals e=3), as PyTorch's recursion does.
    let mut opt = sgd(1.1);
    let mut s = CosineAnnealingLR::new(&opt, 4, 0.1).unwrap();
    let lrs = run(&mut s, &mut opt, 6);
    let h = std::f64::consts::FRAC_1_SQRT_2;
    assert_lrs(
        &lrs,
        &[
            1.1,
            0.1 + (1.0 + h) / 2.0,
            0.6,
            0.1 + (1.0 - h) / 2.0,
            0.1,
            0.1 + (1.0 - h) / 2.0,
        ],
    );
}

#[test]
fn schedules_scale_every_group_from_its_own_base() {
    let mut opt = sgd(0.1);
    opt.add_group(ParamGroup::prefix("head.").lr(0.02)).unwrap();
    let mut s = StepLR::new(&opt, 1, 0.5).unwrap();
    s.step(&mut opt).unwrap();
    assert_lrs(&opt.group_lrs(), &[0.05, 0.01]);
    assert_eq!(s.lrs_at(2), vec![0.025, 0.005]);
    // A group added after the scheduler was made is an error, not a silent mismatch.
    opt.add_group(ParamGroup::prefix("x.")).unwrap();
    assert!(s.step(&mut opt).is_err());
}

#[test]
fn a_schedule_resumes_from_its_state() {
    let mut a = sgd(0.1);
    let mut sa = StepLR::new(&a, 2, 0.1).unwrap();
    let uninterrupted = run(&mut sa, &mut a, 6);

    let mut b = sgd(0.1);
    let mut sb = StepLR::new(&b, 2, 0.1).unwrap();
    let mut got = run(&mut sb, &mut b, 3);
    let (opt_state, sched_state) = (b.state_dict(), sb.state_dict());
    // A fresh optimiser and schedule, as after a restart: the optimiser's saved rate is the
    // decayed one, the schedule's saved base rate the original.
    let mut c = sgd(0.1);
    c.load_state_dict(&opt_state).unwrap();
    let mut sc = StepLR::new(&c, 2, 0.1).unwrap();
    sc.load_state_dict(&sched_state).unwrap();
    assert_eq!(sc.last_epoch(), 3);
    got.extend(run(&mut sc, &mut c, 3));
    assert_eq!(got, uninterrupted);
}

#[test]
fn plateau_cuts_after_patience_with_cooldown_and_floor() {
    // patience 2, cooldown 1, factor 0.5, min_lr 0.03, relative threshold 10%.
    let cfg = PlateauConfig {
        factor: 0.5,
        patience: 2,
        threshold: 0.1,
        cooldown: 1,
        min_lr: 0.03,
        ..Default::default()
    };
    let mut opt = sgd(0.1);
    let mut s = ReduceLROnPlateau::new(cfg).unwrap();
    let metrics = [
        1.0, 0.95, 0.92, 0.91, 0.99, 0.99, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5,
    ];
    let mut lrs = vec![];
    let mut cuts = vec![];
    for (e, &m) in metrics.iter().enumerate() {
        if s.step(&mut opt, m).unwrap() {
            cuts.push(e + 1);
        }
        lrs.push(opt.lr());
    }
    // e1 best 1.0; e2-e4 are not below 0.9 (bad 1, 2, 3 > 2): cut to 0.05 at e4, cooldown 1.
    // e5 bad, but the cooldown resets the count; e6 bad 1; e7 0.5 is the new best;
    // e8-e10 bad 1, 2, 3: cut to max(0.025, 0.03) = 0.03 at e10. e11 is cooled down; e12-e14
    // bad 1, 2, 3 would cut to max(0.015, 0.03) = 0.03: no change, so no cut reported.
    assert_eq!(cuts, vec![4, 10]);
    let want = [
        0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.03, 0.03, 0.03, 0.03, 0.03,
    ];
    let want: Vec<f64> = want.to_vec();
    assert_lrs(&lrs, &want);
    assert_eq!(s.best(), 0.5);
}

#[test]
fn plateau_in_max_mode_with_an_absolute_threshold() {
    // Accuracy must rise by more than 0.5 to count; patience 0 cuts on the first bad epoch.
    let cfg = PlateauConfig {
        mode: PlateauMode::Max,
        threshold_mode: ThresholdMode::Abs,
        threshold: 0.5,
        patience: 0,
        ..Default::default()
    };
    let mut opt = sgd(1.0);
    let mut s = ReduceLROnPlateau::new(cfg).unwrap();
    assert!(!s.step(&mut opt, 1.0).unwrap()); // best -inf -> 1.0
    assert!(!s.step(&mut opt, 1.6).unwrap()); // 1.6 > 1.5: better
    assert!(s.step(&mut opt, 2.0).unwrap()); // 2.0 is not > 2.1: cut to 0.1
    assert!((opt.lr() - 0.1).abs() < 1e-7);
    // A NaN metric is never an improvement.
    assert!(s.step(&mut opt, f32::NAN).unwrap());
    assert!((opt.lr() - 0.01).abs() < 1e-8);
}

#[test]
fn plateau_state_round_trips_and_bad_settings_are_refused() {
    let mut opt = sgd(0.1);
    let mut s = ReduceLROnPlateau::new(PlateauConfig::default()).unwrap();
    s.step(&mut opt, 3.0).unwrap();
    s.step(&mut opt, 4.0).unwrap();
    let mut t = ReduceLROnPlateau::new(PlateauConfig::default()).unwrap();
    t.load_state_dict(&s.state_dict()).unwrap();
    assert_eq!((t.best(), t.num_bad_epochs(), t.last_epoch()), (3.0, 1, 2));
    for factor in [1.0, -0.1, f32::NAN] {
        let cfg = PlateauConfig {
            factor,
            ..Default::default()
        };
        assert!(ReduceLROnPlateau::new(cfg).is_err(), "factor {factor}");
    }
    assert!(t.load_state_dict(&[("best".into(), 1.0)]).is_err());
}
