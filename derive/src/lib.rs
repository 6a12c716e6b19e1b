//! `#[derive(Module)]`: a tapegrad module's traversal written from its fields.
//!
//! Each field is a child named after the field (`conv1` → `conv1.weight`): a module, a
//! [`Param`], a generator, or an `Option`, `Vec` or array of them (`Vec` and arrays are
//! numbered, `layers.0.`; `None` is absent). What the type cannot tell is said with an
//! attribute:
//!
//! - `#[module(skip)]`: a plain setting (a `bool`, a size, a config struct);
//! - `#[module(buffer)]`: a `Tensor` saved with the state but not trained;
//! - `#[module(counter)]`: a `u64` saved with the state (as batch norm's `num_batches_tracked`);
//! - `#[module(training)]`: a `bool` that `train`/`eval` set;
//! - `#[module(rename = "0")]`: another name in the state dict (combines with the others).
//!
//! The struct writes `forward` as an inherent method; the derived `Module::forward` calls it,
//! reporting the call to a summary that records the tape. Keep that method private: a caller
//! in another module then reaches it through `Module::forward`, and summaries show the module's
//! own row; a call from the struct's own module reaches the inherent method, and summaries show
//! the layers inside it (named as in the state dict) but no row for the module itself.
//! On the struct, `#[module(crate = "path")]` names the `tapegrad_nn` crate when it is neither
//! a dependency as `tapegrad-nn` nor re-exported as `tapegrad::nn`.
//!
//! [`Param`]: https://docs.rs/tapegrad-autograd

mod expand;
mod fields;

use proc_macro::TokenStream;

/// Derives `tapegrad_nn::Module` from the struct's fields; see the crate documentation.
#[proc_macro_derive(Module, attributes(module))]
pub fn derive_module(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    expand::expand(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
