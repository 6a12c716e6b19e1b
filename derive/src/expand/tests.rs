//! The expansion's errors and output, checked on token streams (what compiles is checked by
//! `tapegrad-nn`'s tests of derived modules).

use super::{depends_on, expand};
use syn::DeriveInput;

fn error_of(input: DeriveInput) -> String {
    match expand(&input) {
        Ok(tokens) => panic!("expected an error, got {tokens}"),
        Err(e) => e
            .into_iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

fn output_of(input: DeriveInput) -> String {
    expand(&input).expect("expands").to_string()
}

#[test]
fn plain_fields_need_an_attribute() {
    let e = error_of(syn::parse_quote! {
        struct Block { conv: Conv2d, shortcut: bool, width: usize }
    });
    // Both plain fields are reported, each by name.
    assert!(e.contains("field `shortcut` is a `bool`"), "{e}");
    assert!(e.contains("field `width` is a `usize`"), "{e}");
    assert!(e.contains("#[module(skip)]"), "{e}");
    let e = error_of(syn::parse_quote! { struct T { pair: (Conv2d, Conv2d) } });
    assert!(e.contains("field `pair` is a tuple"), "{e}");
}

#[test]
fn unknown_and_conflicting_attributes_are_refused() {
    let e = error_of(syn::parse_quote! { struct T { #[module(skipped)] a: Conv2d } });
    assert!(e.contains("unknown #[module] field attribute"), "{e}");
    let e = error_of(syn::parse_quote! { struct T { #[module(skip, buffer)] a: Tensor } });
    assert!(e.contains("already marked skip"), "{e}");
    let e = error_of(syn::parse_quote! { #[module(krate = "x")] struct T { a: Conv2d } });
    assert!(e.contains("expected crate = \"path\""), "{e}");
}

#[test]
fn enums_tuple_structs_and_clashing_names_are_refused() {
    let e = error_of(syn::parse_quote! { enum E { A(Conv2d) } });
    assert!(e.contains("supports structs"), "{e}");
    let e = error_of(syn::parse_quote! { struct T(Conv2d, Linear); });
    assert!(e.contains("named fields"), "{e}");
    let e = error_of(syn::parse_quote! {
        struct T { a: Conv2d, #[module(rename = "a")] b: Conv2d }
    });
    assert!(e.contains("two fields are named `a`"), "{e}");
}

#[test]
fn fields_are_visited_in_order_under_their_names() {
    let out = output_of(syn::parse_quote! {
        #[module(crate = "nn")]
        struct Block {
            conv1: Conv2d,
            #[module(rename = "0")] first: Linear,
            #[module(skip)] shortcut: bool,
            #[module(buffer)] mean: Tensor,
            #[module(counter)] seen: u64,
            #[module(training)] training: bool,
        }
    });
    let at = |s: &str| out.find(s).unwrap_or_else(|| panic!("{s} not in {out}"));
    assert!(at("\"conv1\"") < at("\"0\""));
    assert!(at("\"0\"") < at("Entry :: Buffer (& mut self . mean)"));
    assert!(at("Entry :: Buffer") < at("Entry :: Counter (& mut self . seen)"));
    assert!(out.contains("self . training = on"));
    assert!(
        !out.contains("shortcut"),
        "a skipped field is not touched: {out}"
    );
    assert!(out.contains("impl nn :: Module for Block"));
}

#[test]
fn manifests_name_the_crate_path() {
    assert!(depends_on(
        "[dependencies]\ntapegrad-nn.workspace = true\n",
        "tapegrad-nn"
    ));
    assert!(depends_on("tapegrad-nn = { path = \"nn\" }", "tapegrad-nn"));
    assert!(depends_on(
        "[dependencies.tapegrad]\nversion = \"1\"",
        "tapegrad"
    ));
    // `tapegrad-nn` is not the facade `tapegrad`.
    assert!(!depends_on(
        "tapegrad-nn = \"1\"\nname = \"tapegrad\"",
        "tapegrad"
    ));
}
