//! Checkpoints that do not fit: broken files and mismatched keys are clear errors that name
//! the problem, a failed load leaves the model unchanged, and no input makes a load panic.

mod checkpoint_util;

use checkpoint_util::*;
use proptest::prelude::*;
use tapegrad_autograd::{rng, Error, Tensor};
use tapegrad_nn::checkpoint::{self, load_state_dict, state_dict, Checkpoint, ShapeMismatch};
use tapegrad_nn::layers::Linear;

/// A valid file of `net(1)` after training-mode passes.
fn valid() -> Vec<u8> {
    Checkpoint::new(&trained_net(1)).to_bytes().unwrap()
}

/// Loads `bytes` into a fresh network; returns the error message and checks that the
/// network is bit-for-bit what it was before.
fn failed_load(bytes: &[u8], strict: bool) -> String {
    let mut m = net(2);
    let before = snapshot(&mut m);
    let err = Checkpoint::from_bytes(bytes)
        .and_then(|c| c.restore_model(&mut m, strict))
        .expect_err("the load should fail");
    assert!(matches!(err, Error::Format { .. }), "{err:?}");
    assert!(
        same_bits(&before, &state_dict(&m)),
        "a failed load changed the model"
    );
    err.to_string()
}

#[test]
fn truncated_files_are_rejected() {
    let bytes = valid();
    // Cut inside the length field, inside the header, and inside the data.
    for cut in [0, 5, 20, bytes.len() / 2, bytes.len() - 1] {
        let msg = failed_load(&bytes[..cut], true);
        assert!(msg.contains("truncated"), "cut at {cut}: {msg}");
    }
}

#[test]
fn random_bytes_are_not_a_checkpoint() {
    let noise: Vec<u8> = Tensor::rand([4096], 0.0, 256.0, &mut rng(3))
        .data()
        .iter()
        .map(|v| *v as u8)
        .collect();
    let msg = failed_load(&noise, true);
    assert!(msg.contains("not a safetensors file"), "{msg}");
    // Text that starts with a small length but is not JSON.
    let msg = failed_load(&forged("{not json}", b""), true);
    assert!(msg.contains("not a valid safetensors header"), "{msg}");
}

#[test]
fn a_header_that_lies_about_offsets_or_dtypes_is_named() {
    let data = [0u8; 8];
    // Two F32 values take 8 bytes; the header claims 12.
    let msg = failed_load(
        &forged(
            r#"{"0.bias":{"dtype":"F32","shape":[2],"data_offsets":[0,12]}}"#,
            &data,
        ),
        true,
    );
    assert!(
        msg.contains("0.bias") && msg.contains("need 8 bytes") && msg.contains("span 12"),
        "{msg}"
    );
    // Data that does not start at 0 (a gap the offsets do not cover).
    let msg = failed_load(
        &forged(
            r#"{"0.bias":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
            &data,
        ),
        true,
    );
    assert!(
        msg.contains("0.bias") && msg.contains("data_offsets"),
        "{msg}"
    );
    // Offsets past the end of the file.
    let msg = failed_load(
        &forged(
            r#"{"0.bias":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#,
            &data,
        ),
        true,
    );
    assert!(
        msg.contains("16 bytes of tensor data") && msg.contains("has 8"),
        "{msg}"
    );
    // F64 for data that holds two F32.
    let msg = failed_load(
        &forged(
            r#"{"0.bias":{"dtype":"F64","shape":[2],"data_offsets":[0,8]}}"#,
            &data,
        ),
        true,
    );
    assert!(
        msg.contains("0.bias") && msg.contains("F64") && msg.contains("need 16 bytes"),
        "{msg}"
    );
    // A dtype that does not exist, and one that exists but is not a number tapegrad reads.
    let msg = failed_load(
        &forged(
            r#"{"0.bias":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}}"#,
            &data,
        ),
        true,
    );
    assert!(msg.contains("F33"), "{msg}");
    let msg = failed_load(
        &forged(
            r#"{"0.bias":{"dtype":"BOOL","shape":[8],"data_offsets":[0,8]}}"#,
            &data,
        ),
        true,
    );
    assert!(msg.contains("0.bias") && msg.contains("BOOL"), "{msg}");
    // A shape whose byte count overflows.
    let huge = format!(
        r#"{{"0.bias":{{"dtype":"F32","shape":[{},{}],"data_offsets":[0,8]}}}}"#,
        usize::MAX,
        3
    );
    let msg = failed_load(&forged(&huge, &data), true);
    assert!(msg.contains("0.bias") && msg.contains("overflows"), "{msg}");
}

/// The file of `net` with its entries changed by `edit`.
fn edited(edit: impl FnOnce(&mut Vec<(String, Tensor)>)) -> Vec<u8> {
    let mut ckpt = Checkpoint::new(&net(1));
    edit(&mut ckpt.model);
    ckpt.to_bytes().unwrap()
}

#[test]
fn a_wrong_shape_is_named_with_both_shapes() {
    let bytes = edited(|m| {
        let e = m.iter_mut().find(|(n, _)| n == "4.weight").unwrap();
        e.1 = Tensor::zeros([2, 47]);
    });
    let msg = failed_load(&bytes, true);
    assert!(
        msg.contains("4.weight (file [2, 47], model [2, 48])"),
        "{msg}"
    );
}

#[test]
fn missing_and_unexpected_keys_are_named() {
    let missing = edited(|m| m.retain(|(n, _)| n != "1.running_var"));
    let msg = failed_load(&missing, true);
    assert!(
        msg.contains("missing keys: 1.running_var") && !msg.contains("unexpected"),
        "{msg}"
    );

    let unexpected = edited(|m| m.push(("5.weight".into(), Tensor::zeros([3]))));
    let msg = failed_load(&unexpected, true);
    assert!(
        msg.contains("unexpected keys: 5.weight") && !msg.contains("missing"),
        "{msg}"
    );

    // All three kinds at once, in one message.
    let all = edited(|m| {
        m.retain(|(n, _)| n != "0.bias");
        m.push(("classifier.weight".into(), Tensor::zeros([1])));
        m.iter_mut().find(|(n, _)| n == "1.weight").unwrap().1 = Tensor::zeros([4]);
    });
    let msg = failed_load(&all, true);
    for part in [
        "missing keys: 0.bias",
        "unexpected keys: classifier.weight",
        "1.weight (file [4], model [3])",
    ] {
        assert!(msg.contains(part), "{part} not in: {msg}");
    }
}

#[test]
fn non_strict_loads_what_matches_and_reports_the_rest() {
    let source = trained_net(1);
    let mut tensors = state_dict(&source);
    tensors.retain(|(n, _)| n != "0.bias");
    tensors.push(("classifier.weight".into(), Tensor::zeros([1])));
    tensors.iter_mut().find(|(n, _)| n == "1.weight").unwrap().1 = Tensor::zeros([4]);

    let mut m = net(2);
    let before = snapshot(&mut m);
    let report = load_state_dict(&mut m, &tensors, false).unwrap();
    assert_eq!(report.missing, ["0.bias"]);
    assert_eq!(report.unexpected, ["classifier.weight"]);
    assert_eq!(
        report.mismatched,
        [ShapeMismatch {
            name: "1.weight".into(),
            model: [3].into(),
            file: [4].into()
        }]
    );
    // Loaded: everything else; kept: the missing and the mis-shaped keys.
    let (src, after) = (state_dict(&source), state_dict(&m));
    for ((name, got), ((_, old), (_, new))) in after.iter().zip(before.iter().zip(&src)) {
        let want = if name == "0.bias" || name == "1.weight" {
            old
        } else {
            new
        };
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn a_missing_file_is_an_io_error_naming_the_path() {
    let dir = scratch("missing-file");
    let path = dir.join("absent.safetensors");
    let err = checkpoint::load(&mut net(1), &path, true).unwrap_err();
    assert!(
        matches!(err, Error::Io { ref path, .. } if path.ends_with("absent.safetensors")),
        "{err}"
    );
    // The operating system's error is kept as the source, for callers that look at its kind.
    let source = std::error::Error::source(&err).expect("an I/O error keeps its source");
    let io = source
        .downcast_ref::<tapegrad_autograd::IoSource>()
        .expect("the source is the io::Error");
    assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
}

#[test]
fn strict_load_failure_from_a_file_names_the_file() {
    let dir = scratch("named-file");
    let path = dir.join("small.safetensors");
    checkpoint::save(&Linear::new(3, 2, &mut rng(0)).unwrap(), &path).unwrap();
    let err = checkpoint::load(&mut net(1), &path, true).unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with(&path.display().to_string()), "{msg}");
    assert!(
        msg.contains("missing keys: 0.weight") && msg.contains("unexpected keys: bias, weight"),
        "{msg}"
    );
}

/// Parses and loads (strict and not); must return, never panic.
fn load_anything(bytes: &[u8]) {
    if let Ok(ckpt) = Checkpoint::from_bytes(bytes) {
        let mut m = net(2);
        let _ = ckpt.restore_model(&mut m, true);
        let _ = ckpt.restore_model(&mut m, false);
        let _ = ckpt.scheduler_state();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        load_anything(&bytes);
        // With a plausible length field in front, the parser gets as far as the header.
        let mut framed = (bytes.len() as u64 / 2).to_le_bytes().to_vec();
        framed.extend_from_slice(&bytes);
        load_anything(&framed);
    }

    #[test]
    fn corrupted_valid_files_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = valid();
        for (at, b) in &edits {
            let i = at.index(bytes.len());
            bytes[i] = *b;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        load_anything(&bytes);
    }

    #[test]
    fn corrupted_headers_never_panic(
        at in any::<prop::sample::Index>(),
        digit in 0u8..10,
    ) {
        // Rewrite one digit of the JSON header (a shape, an offset): the header stays JSON but
        // lies about the data.
        let mut bytes = valid();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let digits: Vec<usize> = (8..8 + n).filter(|&i| bytes[i].is_ascii_digit()).collect();
        bytes[digits[at.index(digits.len())]] = b'0' + digit;
        load_anything(&bytes);
    }
}
