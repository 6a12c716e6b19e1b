//! The safetensors format, read and written through the `safetensors` crate: an 8-byte
//! little-endian header length, a JSON header (`name -> {dtype, shape, data_offsets}` plus an
//! optional `__metadata__` map of strings), then the tensors' bytes, little-endian, row-major,
//! tiling the data section in offset order.
//!
//! Everything is converted to f32 on the way in (tapegrad's one element type), and integer
//! scalars are also kept exactly (counters); files are written as F32, except the integer
//! scalars the caller marks [`Store::I64`] (PyTorch's integer buffers).
//! A malformed file is an `Error::Format` that says what is wrong and, where one is at fault,
//! names the tensor; nothing here panics on any input.

use safetensors::tensor::SafeTensorError;
use safetensors::{Dtype, SafeTensors, View};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use tapegrad_autograd::{Error, Result, Tensor};

/// How a tensor is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Store {
    F32,
    /// An integer scalar (a counter; the tensor beside it is ignored), written as I64 so
    /// PyTorch gets its `torch.long` back.
    I64(i64),
}

/// What a file holds: its tensors (as f32, in the file's offset order), the exact value of
/// each one-element I64 or I32 tensor, and its metadata.
pub(crate) struct Contents {
    pub tensors: Vec<(String, Tensor)>,
    pub integers: HashMap<String, i64>,
    pub metadata: BTreeMap<String, String>,
}

fn bad(what: &str, msg: impl Into<String>) -> Error {
    Error::Format {
        what: what.to_string(),
        msg: msg.into(),
    }
}

/// A tensor's bytes, ready for the writer.
struct Raw {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for &Raw {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn raw(t: &Tensor, store: Store) -> Raw {
    match store {
        Store::F32 => Raw {
            dtype: Dtype::F32,
            shape: t.dims().to_vec(),
            data: t.data().iter().flat_map(|v| v.to_le_bytes()).collect(),
        },
        Store::I64(v) => Raw {
            dtype: Dtype::I64,
            shape: Vec::new(),
            data: v.to_le_bytes().to_vec(),
        },
    }
}

/// The bytes of a safetensors file holding `tensors` and `metadata`.
pub(crate) fn encode(
    tensors: &[(String, Tensor, Store)],
    metadata: &BTreeMap<String, String>,
    what: &str,
) -> Result<Vec<u8>> {
    let mut seen = HashSet::new();
    let mut raws = Vec::with_capacity(tensors.len());
    for (name, t, store) in tensors {
        if name == "__metadata__" {
            return Err(bad(
                what,
                "a tensor may not be called __metadata__ (the format reserves it)",
            ));
        }
        if !seen.insert(name.as_str()) {
            return Err(bad(what, format!("two tensors are named {name}")));
        }
        raws.push((name.as_str(), raw(t, *store)));
    }
    let meta: HashMap<String, String> = metadata.clone().into_iter().collect();
    let views = raws.iter().map(|(n, r)| (*n, r));
    safetensors::serialize(views, Some(meta)).map_err(|e| bad(what, format!("cannot encode: {e}")))
}

/// Parses a whole file. Every tensor must have a dtype tapegrad reads (F32, F64, F16, BF16, I64,
/// I32); integers and wider floats are rounded to the nearest f32.
pub(crate) fn decode(bytes: &[u8], what: &str) -> Result<Contents> {
    super::header::check_safetensors_offsets(bytes, what)?;
    let (n, meta) = SafeTensors::read_metadata(bytes).map_err(|e| bad(what, explain(bytes, &e)))?;
    let data = bytes
        .get(n.saturating_add(8)..)
        .ok_or_else(|| bad(what, "the data section is missing"))?;
    let mut tensors = Vec::new();
    let mut integers = HashMap::new();
    for name in meta.offset_keys() {
        let info = meta
            .info(&name)
            .ok_or_else(|| bad(what, format!("tensor {name} is listed without its details")))?;
        let (s, e) = info.data_offsets;
        let slice = data.get(s..e).ok_or_else(|| {
            let msg = format!(
                "tensor {name}: data_offsets [{s}, {e}] fall outside the data section ({} bytes)",
                data.len()
            );
            bad(what, msg)
        })?;
        let exact = match (info.dtype, slice.len()) {
            (Dtype::I64, 8) => slice.try_into().ok().map(i64::from_le_bytes),
            (Dtype::I32, 4) => slice.try_into().ok().map(i32::from_le_bytes).map(i64::from),
            _ => None,
        };
        if let Some(v) = exact {
            integers.insert(name.clone(), v);
        }
        let values = to_f32(&name, info.dtype, slice, what)?;
        let t = Tensor::from_vec(values, info.shape.clone())
            .map_err(|err| bad(what, format!("tensor {name}: {err}")))?;
        tensors.push((name, t));
    }
    let metadata = meta
        .metadata()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    Ok(Contents {
        tensors,
        integers,
        metadata,
    })
}

const READ_DTYPES: &str = "tapegrad reads F32, F64, F16, BF16, I64 and I32";

fn to_f32(name: &str, dtype: Dtype, b: &[u8], what: &str) -> Result<Vec<f32>> {
    fn words<const N: usize>(b: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
        // `chunks_exact` yields exactly N bytes; the conversion cannot fail.
        b.chunks_exact(N).map(|c| c.try_into().unwrap_or([0; N]))
    }
    Ok(match dtype {
        Dtype::F32 => words::<4>(b).map(f32::from_le_bytes).collect(),
        Dtype::F64 => words::<8>(b)
            .map(|w| f64::from_le_bytes(w) as f32)
            .collect(),
        Dtype::F16 => words::<2>(b)
            .map(|w| f16_to_f32(u16::from_le_bytes(w)))
            .collect(),
        Dtype::BF16 => words::<2>(b)
            .map(|w| f32::from_bits((u16::from_le_bytes(w) as u32) << 16))
            .collect(),
        Dtype::I64 => words::<8>(b)
            .map(|w| i64::from_le_bytes(w) as f32)
            .collect(),
        Dtype::I32 => words::<4>(b)
            .map(|w| i32::from_le_bytes(w) as f32)
            .collect(),
        other => {
            let msg = format!("tensor {name} has dtype {other}; {READ_DTYPES}");
            return Err(bad(what, msg));
        }
    })
}

/// IEEE half precision to f32, exactly (every f16 value is an f32 value).
pub(crate) fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let mant = (h & 0x3ff) as u32;
    let bits = match (exp, mant) {
        (0, 0) => sign,
        // Subnormal: mant * 2^-24, exact in f32 (2^-24 has bits 0x3380_0000).
        (0, m) => sign | (m as f32 * f32::from_bits(0x3380_0000)).to_bits(),
        (0x1f, 0) => sign | 0x7f80_0000,
        (0x1f, m) => sign | 0x7fc0_0000 | (m << 13),
        // Rebias the exponent from 15 to 127 and widen the mantissa from 10 to 23 bits.
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

/// A message for a file the crate rejected: what is wrong, in terms a user can act on.
fn explain(bytes: &[u8], e: &SafeTensorError) -> String {
    let header_len = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes);
    let tail = "truncated, or not a safetensors file";
    match e {
        SafeTensorError::HeaderTooSmall => format!(
            "the file is {} bytes, too short for the 8-byte header length: {tail}",
            bytes.len()
        ),
        SafeTensorError::HeaderTooLarge | SafeTensorError::InvalidHeaderLength => format!(
            "the header length field says {} bytes, but {} bytes follow it: {tail}",
            header_len.unwrap_or(0),
            bytes.len().saturating_sub(8)
        ),
        SafeTensorError::InvalidHeader(err) => {
            format!("the header is not UTF-8 text ({err}): not a safetensors file")
        }
        SafeTensorError::InvalidHeaderDeserialization(err) | SafeTensorError::JsonError(err) => {
            format!("the header is not a valid safetensors header: {err}")
        }
        SafeTensorError::InvalidOffset(name) => format!(
            "tensor {name}: its data_offsets do not start where the previous tensor's data ends \
             (the offsets must tile the data section)"
        ),
        SafeTensorError::MetadataIncompleteBuffer => {
            let start = (header_len.unwrap_or(0) as usize).saturating_add(8);
            let data = bytes.len().saturating_sub(start);
            let described = header_entries(bytes).iter().map(|t| t.end).max();
            format!(
                "the header describes {} bytes of tensor data, but the file has {data}: {tail}",
                described.unwrap_or(0)
            )
        }
        SafeTensorError::TensorInvalidInfo | SafeTensorError::ValidationOverflow => {
            let entries = header_entries(bytes);
            match entries.iter().find(|t| t.needed != Some(t.span())) {
                Some(t) => t.explain(),
                None => format!("a tensor's dtype, shape and data_offsets disagree ({e})"),
            }
        }
        other => other.to_string(),
    }
}

/// One header entry, as declared.
struct Declared {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    start: usize,
    end: usize,
    /// The bytes dtype and shape need, `None` on overflow.
    needed: Option<usize>,
}

impl Declared {
    fn span(&self) -> usize {
        self.end.wrapping_sub(self.start)
    }

    /// Why this entry's size does not add up.
    fn explain(&self) -> String {
        let (name, shape) = (&self.name, &self.shape);
        match self.needed {
            Some(n) => format!(
                "tensor {name}: dtype {} and shape {shape:?} need {n} bytes, \
                 but its data_offsets [{}, {}] span {}",
                self.dtype,
                self.start,
                self.end,
                self.span()
            ),
            None => format!("tensor {name}: the byte size of shape {shape:?} overflows"),
        }
    }
}

/// The header's tensor entries, read again (only to explain an error), in offset order.
fn header_entries(bytes: &[u8]) -> Vec<Declared> {
    use serde_json::Value;
    let Some(n) = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
    else {
        return Vec::new();
    };
    let end = usize::try_from(n).ok().and_then(|n| n.checked_add(8));
    let Some(header) = end.and_then(|end| bytes.get(8..end)) else {
        return Vec::new();
    };
    let Ok(map) = serde_json::from_slice::<BTreeMap<String, Value>>(header) else {
        return Vec::new();
    };
    let mut out: Vec<Declared> = map
        .into_iter()
        .filter(|(k, _)| k != "__metadata__")
        .filter_map(|(name, v)| {
            let dtype: Dtype = serde_json::from_value(v.get("dtype")?.clone()).ok()?;
            let shape: Vec<usize> = serde_json::from_value(v.get("shape")?.clone()).ok()?;
            let (start, end): (usize, usize) =
                serde_json::from_value(v.get("data_offsets")?.clone()).ok()?;
            let needed = shape
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .and_then(|n| n.checked_mul(dtype.bitsize()))
                .map(|bits| bits / 8);
            Some(Declared {
                name,
                dtype,
                shape,
                start,
                end,
                needed,
            })
        })
        .collect();
    out.sort_by_key(|t| (t.start, t.end));
    out
}
