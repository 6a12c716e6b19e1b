//! The one error type of tapegrad. Every message names the op, the shapes involved and what was
//! expected, so that a user reading it can fix the call without a debugger.

use crate::shape::Shape;
use std::path::Path;
use std::sync::Arc;

/// Everything that can go wrong in tapegrad, from a bad shape to a malformed checkpoint.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// Operand shapes that do not fit together (broadcasting, matmul, concat, reshape...).
    #[error("{op}: incompatible shapes {shapes}: {expected}")]
    Shape {
        op: &'static str,
        shapes: String,
        expected: String,
    },
    /// An axis outside `-rank..rank`, or named twice.
    #[error("{op}: axis {axis} is out of range for a tensor of shape {shape} (rank {rank})")]
    Axis {
        op: &'static str,
        axis: isize,
        shape: Shape,
        rank: usize,
    },
    /// An argument that is invalid whatever the shapes (a zero stride, a negative probability...).
    #[error("{op}: {msg}")]
    Invalid { op: &'static str, msg: String },
    /// `backward()` needs a one-element output to seed with 1.
    #[error("backward: the output has shape {0}, expected a single element; use backward_with(grad) for a non-scalar output")]
    NotScalar(Shape),
    /// Two vars recorded on different tapes were combined.
    #[error("{op}: the operands were recorded on different tapes")]
    ForeignTape { op: &'static str },
    /// A second backward pass through a graph whose chain-rule closures were already released.
    #[error("backward: the graph through node {node} ({op}) was already released by an earlier backward; pass retain_graph (or create_graph) to the first one")]
    GraphReleased { node: usize, op: &'static str },
    /// Anomaly mode: an op produced NaN or infinity.
    #[error("anomaly: {op} produced a non-finite value in the {pass} pass; inputs: {inputs}")]
    NonFinite {
        op: &'static str,
        pass: &'static str,
        inputs: String,
    },
    /// The allocator refused the storage of a tensor (or its size exceeds what one allocation
    /// may hold).
    #[error("{op}: could not allocate {bytes} bytes for the result")]
    OutOfMemory { op: &'static str, bytes: usize },
    /// A file that could not be read or written. `source` is the operating system's error,
    /// when there is one (see [`Error::io`]), for callers that inspect its kind.
    #[error("{path}: {msg}")]
    Io {
        path: String,
        msg: String,
        #[source]
        source: Option<IoSource>,
    },
    /// A file or buffer that was read but is malformed.
    #[error("{what}: {msg}")]
    Format { what: String, msg: String },
}

/// The `std::io::Error` behind an [`Error::Io`], shared so that [`Error`] stays `Clone`; two
/// are equal when their kinds and messages are.
#[derive(Debug, Clone)]
pub struct IoSource(pub Arc<std::io::Error>);

impl IoSource {
    /// The kind of the operating system's error (`NotFound`, `PermissionDenied`, ...).
    pub fn kind(&self) -> std::io::ErrorKind {
        self.0.kind()
    }
}

impl PartialEq for IoSource {
    fn eq(&self, other: &Self) -> bool {
        self.0.kind() == other.0.kind() && self.0.to_string() == other.0.to_string()
    }
}

impl std::fmt::Display for IoSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for IoSource {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// tapegrad's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for [`Error::Shape`], formatting the shapes as `[2, 3] and [4]`.
    pub fn shape(op: &'static str, shapes: &[&Shape], expected: impl Into<String>) -> Self {
        let shapes = shapes
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(" and ");
        Error::Shape {
            op,
            shapes,
            expected: expected.into(),
        }
    }

    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Invalid {
            op,
            msg: msg.into(),
        }
    }

    /// An [`Error::Io`] on `path` caused by `e`, kept as its source: the message reads
    /// `{path}: {doing}: {e}` (`doing` says what failed, e.g. "cannot read the checkpoint").
    pub fn io(path: &Path, doing: &str, e: std::io::Error) -> Self {
        let msg = if doing.is_empty() {
            e.to_string()
        } else {
            format!("{doing}: {e}")
        };
        Error::Io {
            path: path.display().to_string(),
            msg,
            source: Some(IoSource(Arc::new(e))),
        }
    }

    /// An [`Error::Io`] on `path` with no operating-system error behind it (a file that is
    /// missing from a search, a folder with no images...).
    pub fn io_msg(path: &Path, msg: impl Into<String>) -> Self {
        Error::Io {
            path: path.display().to_string(),
            msg: msg.into(),
            source: None,
        }
    }
}
