//! Safetensors headers whose data offsets near 2^64 make the file's arithmetic overflow: refused
//! with an error naming the tensor and its offsets, the same in debug and release builds (the
//! `safetensors` crate's own sum overflows, which panics in a debug build).
//!
//! Run in the debug profile too: `cargo test -p tapegrad-nn --test checkpoint_hostile`.

use tapegrad_nn::checkpoint::{self, Checkpoint};
use tapegrad_nn::layers::Linear;

/// A safetensors file whose header declares F64 tensors tiling the data section up to
/// 2^64 - 16 bytes (fifteen of 2^60 bytes, then 2^59 .. 2^4: the crate refuses a tensor of 2^61
/// bytes or more, whose size in bits overflows), followed by `data` bytes; and the first tensor
/// (in offset order) whose end overflows once the crate adds the header's length to it.
fn offsets_near_2_pow_64(data: usize) -> (Vec<u8>, String) {
    let sizes = std::iter::repeat_n(60u32, 15).chain((4..=59).rev());
    let mut tensors = Vec::new();
    let mut start: u64 = 0;
    for (i, log2) in sizes.enumerate() {
        let end = start + (1u64 << log2);
        tensors.push((format!("t{i}"), 1u64 << (log2 - 3), start, end));
        start = end;
    }
    assert_eq!(start, u64::MAX - 15);
    let entries: Vec<String> = tensors
        .iter()
        .map(|(name, n, s, e)| {
            format!(r#""{name}":{{"dtype":"F64","shape":[{n}],"data_offsets":[{s},{e}]}}"#)
        })
        .collect();
    let header = format!("{{{}}}", entries.join(","));
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend(std::iter::repeat_n(0u8, data));
    let added = 8 + header.len() as u64;
    let (name, _, s, e) = tensors
        .iter()
        .find(|t| t.3.checked_add(added).is_none())
        .unwrap();
    (out, format!("tensor {name}: data_offsets [{s}, {e}]"))
}

fn check_message(msg: &str, first: &str) {
    for word in [first, "run past the end", "16 bytes"] {
        assert!(msg.contains(word), "expected {word:?} in: {msg}");
    }
}

#[test]
fn offsets_near_2_pow_64_are_an_error_not_an_overflow() {
    let (bytes, first) = offsets_near_2_pow_64(16);
    check_message(
        &Checkpoint::from_bytes(&bytes).unwrap_err().to_string(),
        &first,
    );
    // Through a file, into a model.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("near-2-64.safetensors");
    std::fs::write(&path, &bytes).unwrap();
    let mut model = Linear::new(2, 2, &mut tapegrad_autograd::rng(0)).unwrap();
    let msg = checkpoint::load(&mut model, &path, true)
        .unwrap_err()
        .to_string();
    check_message(&msg, &first);
    assert!(msg.contains("near-2-64.safetensors"), "{msg}");
}
