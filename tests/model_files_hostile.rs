//! Crafted model files for the programs that build a network from a file (`infer`, `predict`,
//! `train --resume`): sizes that would ask for petabytes are refused before anything is built,
//! with an error naming the key and the shape; offsets near 2^64 are an error, not an overflow.
//!
//! Run in the debug profile too: `cargo test --test model_files_hostile`.

#[path = "../examples/infer.rs"]
#[allow(dead_code)]
mod infer;

use std::path::PathBuf;

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("hostile-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A safetensors file of F64 tensors tiling a data section up to 2^64 - 16 bytes (fifteen of
/// 2^60 bytes, then 2^59 .. 2^4), followed by 16 bytes: its offsets overflow once the header's
/// length is added to them.
fn offsets_near_2_pow_64() -> Vec<u8> {
    let sizes = std::iter::repeat_n(60u32, 15).chain((4..=59).rev());
    let mut entries = Vec::new();
    let mut start: u64 = 0;
    for (i, log2) in sizes.enumerate() {
        let (n, end) = (1u64 << (log2 - 3), start + (1u64 << log2));
        let name = if i == 0 {
            "input".to_string()
        } else {
            format!("t{i}")
        };
        entries.push(format!(
            r#""{name}":{{"dtype":"F64","shape":[{n}],"data_offsets":[{start},{end}]}}"#
        ));
        start = end;
    }
    let header = format!("{{{}}}", entries.join(","));
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend([0u8; 16]);
    out
}

#[test]
fn an_input_file_with_offsets_near_2_pow_64_is_an_error() {
    let dir = scratch("input-offsets");
    let path = dir.join("input.safetensors");
    std::fs::write(&path, offsets_near_2_pow_64()).unwrap();
    let msg = infer::read_input(&path).unwrap_err().to_string();
    assert!(msg.contains("input.safetensors"), "{msg}");
    assert!(msg.contains("run past the end"), "{msg}");
}
