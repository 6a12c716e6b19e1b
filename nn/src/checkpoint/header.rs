//! The data offsets of a safetensors header, checked with checked arithmetic before the
//! `safetensors` crate reads the file. The crate adds the data section's end (the last tensor's
//! end offset) to the header's length unchecked: offsets near 2^64 overflow, which panics in a
//! debug build (and wraps in a release one). Here an end offset whose sum with the header's
//! length overflows is refused, naming the tensor, so the crate's sum cannot overflow.
//!
//! Anything else that is wrong (a short file, a header that is not JSON, offsets past the data
//! or that do not tile it) is left to the crate, whose errors `format.rs` explains in more
//! detail.

use std::collections::BTreeMap;
use tapegrad_autograd::{Error, Result};

/// Checks that no data offset of the safetensors file `bytes` overflows when added to the
/// header's length (see the module documentation); `what` names the file in the error. A file
/// too malformed to read offsets from passes, for the `safetensors` crate to explain.
pub fn check_safetensors_offsets(bytes: &[u8], what: &str) -> Result<()> {
    let Some(len) = bytes.get(..8).and_then(|b| b.try_into().ok()) else {
        return Ok(());
    };
    let header_end = usize::try_from(u64::from_le_bytes(len))
        .ok()
        .and_then(|n| n.checked_add(8));
    let Some(header) = header_end.and_then(|end| bytes.get(8..end)) else {
        return Ok(());
    };
    let data_len = bytes.len() - 8 - header.len();
    // What the crate adds to the data section's end.
    let prefix = 8 + header.len() as u64;
    let Ok(entries) = serde_json::from_slice::<BTreeMap<String, serde_json::Value>>(header) else {
        return Ok(());
    };
    for (name, entry) in entries.iter().filter(|(k, _)| *k != "__metadata__") {
        let offsets = entry
            .get("data_offsets")
            .and_then(|v| v.as_array())
            .map(|a| a.iter().map(serde_json::Value::as_u64).collect::<Vec<_>>());
        let Some(&[Some(start), Some(end)]) = offsets.as_deref() else {
            continue;
        };
        if end
            .checked_add(prefix)
            .is_none_or(|t| t > usize::MAX as u64)
        {
            return Err(Error::Format {
                what: what.to_string(),
                msg: format!(
                    "tensor {name}: data_offsets [{start}, {end}] run past the end of any file \
                     (the data section has {data_len} bytes)"
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, data: usize) -> Vec<u8> {
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(header.as_bytes());
        out.extend(std::iter::repeat_n(0u8, data));
        out
    }

    #[test]
    fn only_offsets_that_overflow_are_refused_here() {
        let entry = |s: u64, e: u64| {
            format!(
                r#"{{"__metadata__":{{"a":"b"}},"w":{{"dtype":"F32","shape":[1],"data_offsets":[{s},{e}]}}}}"#
            )
        };
        // Offsets past the data, or reversed, are the crate's to explain.
        for (s, e) in [(0, 4), (0, 5), (4, 0), (0, u64::MAX - 200)] {
            assert!(check_safetensors_offsets(&file(&entry(s, e), 4), "f").is_ok());
        }
        // An end offset of 20 digits: the crate adds 8 and the header's length to it.
        let added = 8 + entry(0, u64::MAX).len() as u64;
        let fits = u64::MAX - added;
        assert!(check_safetensors_offsets(&file(&entry(0, fits), 4), "f").is_ok());
        for (s, e) in [(0, fits + 1), (u64::MAX - 3, u64::MAX), (0, u64::MAX)] {
            let msg = check_safetensors_offsets(&file(&entry(s, e), 4), "f")
                .unwrap_err()
                .to_string();
            assert!(
                msg.contains(&format!("tensor w: data_offsets [{s}, {e}]")),
                "{msg}"
            );
        }
        // Left to the crate: too short, a header length past the end, not JSON.
        for bytes in [vec![1, 2], file("{", 0), {
            let mut b = file("{}", 0);
            b[0] = 200;
            b
        }] {
            assert!(check_safetensors_offsets(&bytes, "f").is_ok());
        }
    }
}
