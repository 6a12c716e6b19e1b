/// The README's examples, compiled and run as doctests of this crate.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub use tapegrad_autograd as autograd;
