//! Checkpoints: round trips, PyTorch's key names and layouts both ways, dtypes, atomic saves.

mod checkpoint_util;

use checkpoint_util::*;
use safetensors::{Dtype, SafeTensors};
use tapegrad_autograd::{rng, Error, Tensor};
use tapegrad_nn::checkpoint::{self, counters, state_dict, Checkpoint};
use tapegrad_nn::layers::Linear;
use tapegrad_nn::{Entry, Module};

#[test]
fn round_trip_gives_bit_identical_state_and_outputs() {
    let dir = scratch("round-trip");
    let path = dir.join("w.safetensors");
    let mut a = trained_net(1);
    checkpoint::save(&a, &path).unwrap();

    let mut b = net(2);
    let x = input();
    // Different seeds: the outputs differ before loading, so equality after it means something.
    assert_ne!(eval_out(&mut a, &x), eval_out(&mut b, &x));
    let report = checkpoint::load(&mut b, &path, true).unwrap();
    assert!(report.is_clean(), "{report}");
    assert!(same_bits(&state_dict(&a), &state_dict(&b)));
    let (ya, yb) = (eval_out(&mut a, &x), eval_out(&mut b, &x));
    assert!(ya
        .data()
        .iter()
        .zip(yb.data())
        .all(|(p, q)| p.to_bits() == q.to_bits()));
    // Two training-mode passes were counted, and the count came back.
    assert_eq!(counters(&b), [("1.num_batches_tracked".to_string(), 2)]);
}

#[test]
fn special_values_survive_bit_for_bit() {
    let mut a = Linear::new(2, 2, &mut rng(0)).unwrap();
    let special = [f32::NAN, -0.0, f32::INFINITY, f32::MIN_POSITIVE / 4.0];
    a.weight
        .set(Tensor::from_vec(special.to_vec(), [2, 2]).unwrap())
        .unwrap();
    let bytes = Checkpoint::new(&a).to_bytes().unwrap();
    let mut b = Linear::new(2, 2, &mut rng(1)).unwrap();
    Checkpoint::from_bytes(&bytes)
        .unwrap()
        .restore_model(&mut b, true)
        .unwrap();
    let got: Vec<u32> = b
        .weight
        .value()
        .data()
        .iter()
        .map(|v| v.to_bits())
        .collect();
    let want: Vec<u32> = special.iter().map(|v| v.to_bits()).collect();
    assert_eq!(got, want);
}

/// Deterministic values for the hand-written PyTorch file.
fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    Tensor::randn([n], &mut rng(seed))
        .data()
        .iter()
        .map(|v| v * scale)
        .collect()
}

struct TorchNet {
    conv_w: Vec<f32>,
    conv_b: Vec<f32>,
    bn_w: Vec<f32>,
    bn_b: Vec<f32>,
    mean: Vec<f32>,
    var: Vec<f32>,
    fc_w: Vec<f32>,
    fc_b: Vec<f32>,
}

impl TorchNet {
    fn new() -> TorchNet {
        TorchNet {
            conv_w: values(3 * 2 * 9, 1, 0.3),
            conv_b: values(3, 2, 0.1),
            bn_w: values(3, 3, 0.5).iter().map(|v| 1.0 + v).collect(),
            bn_b: values(3, 4, 0.2),
            mean: values(3, 5, 0.3),
            var: values(3, 6, 0.5).iter().map(|v| 0.5 + v.abs()).collect(),
            fc_w: values(2 * 48, 7, 0.2),
            fc_b: values(2, 8, 0.1),
        }
    }

    /// The file `safetensors.torch.save_file(net.state_dict(), path)` writes for PyTorch's
    /// `Sequential(Conv2d(2, 3, 3, padding=1), BatchNorm2d(3), ReLU(), Flatten(), Linear(48, 2))`:
    /// keys by position in the Sequential, conv weight `[out, in, kh, kw]`, linear weight
    /// `[out, in]`, and `num_batches_tracked` a 0-d int64.
    fn file(&self) -> Vec<u8> {
        file(&[
            ("0.weight", f32s(&[3, 2, 3, 3], &self.conv_w)),
            ("0.bias", f32s(&[3], &self.conv_b)),
            ("1.weight", f32s(&[3], &self.bn_w)),
            ("1.bias", f32s(&[3], &self.bn_b)),
            ("1.running_mean", f32s(&[3], &self.mean)),
            ("1.running_var", f32s(&[3], &self.var)),
            ("1.num_batches_tracked", i64_scalar(7)),
            ("4.weight", f32s(&[2, 48], &self.fc_w)),
            ("4.bias", f32s(&[2], &self.fc_b)),
        ])
    }

    /// The network in evaluation mode, with plain loops in f64:
    /// conv  y[o,i,j] = b[o] + sum_{c,p,q} w[o,c,p,q] x[c, i+p-1, j+q-1] (zero outside 4x4),
    /// BN    z = (y - mean[o]) / sqrt(var[o] + 1e-5) * gamma[o] + beta[o], then ReLU,
    /// flatten (o, i, j) -> o*16 + i*4 + j, linear out[k] = b[k] + sum_f W[k,f] h[f].
    fn reference(&self, x: &Tensor) -> Vec<f64> {
        let xs = x.data();
        let mut out = Vec::new();
        for n in 0..2 {
            let mut h = vec![0.0f64; 48];
            for o in 0..3 {
                for i in 0..4 {
                    for j in 0..4 {
                        let mut y = self.conv_b[o] as f64;
                        for c in 0..2 {
                            for p in 0..3 {
                                for q in 0..3 {
                                    let (r, s) = (i + p, j + q); // padded coordinates
                                    if (1..=4).contains(&r) && (1..=4).contains(&s) {
                                        let xv = xs[((n * 2 + c) * 4 + r - 1) * 4 + s - 1];
                                        let wv = self.conv_w[((o * 2 + c) * 3 + p) * 3 + q];
                                        y += wv as f64 * xv as f64;
                                    }
                                }
                            }
                        }
                        let z = (y - self.mean[o] as f64) / (self.var[o] as f64 + 1e-5).sqrt()
                            * self.bn_w[o] as f64
                            + self.bn_b[o] as f64;
                        h[o * 16 + i * 4 + j] = z.max(0.0);
                    }
                }
            }
            for k in 0..2 {
                let dot: f64 = (0..48).map(|f| self.fc_w[k * 48 + f] as f64 * h[f]).sum();
                out.push(self.fc_b[k] as f64 + dot);
            }
        }
        out
    }
}

#[test]
fn pytorch_file_loads_and_matches_a_hand_computed_forward() {
    let dir = scratch("from-pytorch");
    let path = dir.join("torch.safetensors");
    let torch = TorchNet::new();
    std::fs::write(&path, torch.file()).unwrap();

    let mut m = net(3);
    let report = checkpoint::load(&mut m, &path, true).unwrap();
    assert!(report.is_clean(), "{report}");
    let x = input();
    let y = eval_out(&mut m, &x);
    assert_eq!(y.dims(), &[2, 2]);
    let want = torch.reference(&x);
    for (got, want) in y.data().iter().zip(&want) {
        assert!(
            (*got as f64 - want).abs() <= 1e-5 * (1.0 + want.abs()),
            "tapegrad {got} vs reference {want}"
        );
    }
    assert_eq!(counters(&m), [("1.num_batches_tracked".to_string(), 7)]);
}

#[test]
fn saved_file_has_pytorchs_keys_dtypes_and_bytes() {
    let dir = scratch("to-pytorch");
    let (src, out) = (dir.join("torch.safetensors"), dir.join("back.safetensors"));
    let original = TorchNet::new().file();
    std::fs::write(&src, &original).unwrap();
    let mut m = net(4);
    checkpoint::load(&mut m, &src, true).unwrap();
    checkpoint::save(&m, &out).unwrap();

    // What PyTorch's `load_state_dict(load_file(out))` sees: the same keys, shapes, dtypes and
    // bytes as the file PyTorch wrote, so the strict load succeeds and gives the same network.
    let written = std::fs::read(&out).unwrap();
    let (a, b) = (
        SafeTensors::deserialize(&original).unwrap(),
        SafeTensors::deserialize(&written).unwrap(),
    );
    let (mut ka, mut kb) = (a.names(), b.names());
    ka.sort();
    kb.sort();
    assert_eq!(ka, kb);
    for name in ka {
        let (ta, tb) = (a.tensor(name).unwrap(), b.tensor(name).unwrap());
        assert_eq!(ta.dtype(), tb.dtype(), "{name}");
        assert_eq!(ta.shape(), tb.shape(), "{name}");
        assert_eq!(ta.data(), tb.data(), "{name}");
    }
    let nbt = b.tensor("1.num_batches_tracked").unwrap();
    assert_eq!((nbt.dtype(), nbt.shape()), (Dtype::I64, &[] as &[usize]));
    assert_eq!(nbt.data(), 7i64.to_le_bytes());
    let (_, meta) = SafeTensors::read_metadata(&written).unwrap();
    assert_eq!(meta.metadata().as_ref().unwrap()["format"], "pt");
}

#[test]
fn half_bfloat_double_and_integer_tensors_are_read_as_f32() {
    // f16 bits: 0x3c00 = 1.0, 0xc000 = -2.0, 0x7bff = 65504 (the largest), 0x0001 = 2^-24
    // (the smallest subnormal). bf16 is the top half of an f32: 0x3f00 = 0.5, 0xc040 = -3.0.
    let half = |bits: &[u16]| {
        bits.iter()
            .flat_map(|b| b.to_le_bytes())
            .collect::<Vec<u8>>()
    };
    let bytes = file(&[
        (
            "weight",
            Raw {
                dtype: Dtype::F16,
                shape: vec![2, 2],
                data: half(&[0x3c00, 0xc000, 0x7bff, 0x0001]),
            },
        ),
        (
            "bias",
            Raw {
                dtype: Dtype::BF16,
                shape: vec![2],
                data: half(&[0x3f00, 0xc040]),
            },
        ),
    ]);
    let mut m = Linear::new(2, 2, &mut rng(0)).unwrap();
    Checkpoint::from_bytes(&bytes)
        .unwrap()
        .restore_model(&mut m, true)
        .unwrap();
    assert_eq!(
        m.weight.value().to_vec(),
        vec![1.0, -2.0, 65504.0, (-24f32).exp2()]
    );
    assert_eq!(m.bias.as_ref().unwrap().value().to_vec(), vec![0.5, -3.0]);

    // f64 is rounded to the nearest f32; i64 and i32 are converted.
    let doubles = [0.1f64, -1e-3, 3.0, 1e30];
    let bytes = file(&[
        (
            "weight",
            Raw {
                dtype: Dtype::F64,
                shape: vec![2, 2],
                data: doubles.iter().flat_map(|v| v.to_le_bytes()).collect(),
            },
        ),
        (
            "bias",
            Raw {
                dtype: Dtype::I32,
                shape: vec![2],
                data: [-4i32, 9].iter().flat_map(|v| v.to_le_bytes()).collect(),
            },
        ),
    ]);
    Checkpoint::from_bytes(&bytes)
        .unwrap()
        .restore_model(&mut m, true)
        .unwrap();
    let want: Vec<f32> = doubles.iter().map(|&v| v as f32).collect();
    assert_eq!(m.weight.value().to_vec(), want);
    assert_eq!(m.bias.as_ref().unwrap().value().to_vec(), vec![-4.0, 9.0]);
}

#[test]
fn save_leaves_no_temporary_file_and_overwrites() {
    let dir = scratch("atomic");
    let path = dir.join("w.safetensors");
    let first = trained_net(5);
    checkpoint::save(&first, &path).unwrap();
    assert_eq!(listing(&dir), ["w.safetensors"]);

    let second = net(6);
    checkpoint::save(&second, &path).unwrap();
    assert_eq!(listing(&dir), ["w.safetensors"]);
    let mut third = net(7);
    checkpoint::load(&mut third, &path, true).unwrap();
    assert!(same_bits(&state_dict(&second), &state_dict(&third)));
    assert!(!same_bits(&state_dict(&first), &state_dict(&third)));
}

#[test]
fn a_failed_save_keeps_the_old_file_and_cleans_up() {
    let dir = scratch("atomic-fail");
    let path = dir.join("w.safetensors");
    let good = net(8);
    checkpoint::save(&good, &path).unwrap();
    let before = std::fs::read(&path).unwrap();

    // A count beyond int64 cannot be written as PyTorch's torch.long: refused, named.
    let mut broken = net(9);
    broken.visit_mut("", &mut |name, e| {
        if let (Entry::Counter(c), true) = (e, name == "1.num_batches_tracked") {
            *c = u64::MAX;
        }
    });
    let err = checkpoint::save(&broken, &path).unwrap_err();
    assert!(err.to_string().contains("1.num_batches_tracked"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(listing(&dir), ["w.safetensors"]);

    // The rename fails when the target is a directory: the temporary file is removed.
    let blocked = dir.join("d.safetensors");
    std::fs::create_dir(&blocked).unwrap();
    let err = checkpoint::save(&good, &blocked).unwrap_err();
    assert!(
        matches!(err, Error::Io { ref path, .. } if path.contains("d.safetensors")),
        "{err}"
    );
    assert_eq!(listing(&dir), ["d.safetensors", "w.safetensors"]);

    // A directory that does not exist.
    let err = checkpoint::save(&good, dir.join("nope").join("w.safetensors")).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
}

#[test]
fn a_save_removes_temporary_files_of_dead_processes_only() {
    let dir = scratch("stale-temp");
    let path = dir.join("w.safetensors");
    let temp = |pid: u64, n: u64| format!(".w.safetensors.{pid}-{n}.tmp");
    // Linux hands out PIDs below /proc/sys/kernel/pid_max (at most 2^22), so one above it
    // belongs to no process: its temporary file is what a save killed mid-way leaves.
    let pid_max: u64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1 << 22);
    let dead = temp(pid_max + 1, 0);
    // Live: an in-flight save of this process, and one of the parent (the test runner).
    let ours = temp(std::process::id().into(), 999_999);
    let mut live = vec![ours];
    #[cfg(unix)]
    live.push(temp(std::os::unix::process::parent_id().into(), 0));
    // Another target's temporary file, even of a dead process, is not this save's business.
    let other = format!(".x.safetensors.{}-0.tmp", pid_max + 1);
    for name in live.iter().chain([&dead, &other]) {
        std::fs::write(dir.join(name), name.as_bytes()).unwrap();
    }

    checkpoint::save(&net(1), &path).unwrap();
    let mut want: Vec<String> = live.iter().chain([&other]).cloned().collect();
    want.push("w.safetensors".into());
    // Elsewhere than on Linux liveness cannot be told, so nothing is removed.
    if !cfg!(target_os = "linux") {
        want.push(dead);
    }
    want.sort();
    assert_eq!(listing(&dir), want);
    for name in live.iter().chain([&other]) {
        assert_eq!(std::fs::read(dir.join(name)).unwrap(), name.as_bytes());
    }
    let mut back = net(2);
    assert!(checkpoint::load(&mut back, &path, true).unwrap().is_clean());
}

#[test]
fn a_param_keeps_its_identity_across_a_load() {
    // Optimiser state and gradients are keyed by name and by id: a load replaces values only.
    let a = Linear::new(3, 2, &mut rng(0)).unwrap();
    let mut b = Linear::new(3, 2, &mut rng(1)).unwrap();
    let id = b.weight.id();
    let bytes = Checkpoint::new(&a).to_bytes().unwrap();
    Checkpoint::from_bytes(&bytes)
        .unwrap()
        .restore_model(&mut b, true)
        .unwrap();
    assert_eq!(b.weight.id(), id);
    assert_eq!(b.weight.value(), a.weight.value());
}
