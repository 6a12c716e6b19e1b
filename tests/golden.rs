//! Golden tests: every case of every `*.json` case file in `$GOLDEN_DIR` (default
//! `tests/golden/data`) runs through tapegrad, and its output, the gradient of every input
//! (`backward_with(grad_output)`) and every extra output are compared with PyTorch's at the
//! case's tolerance. The case format is the golden folder's README.
//!
//! `golden_all` runs everything and prints per-family counts; each family also has its own test
//! so a failure names its family. An unknown op, an unread param or input, or a JSON file that is
//! neither a case list nor a known example file fails.

mod golden {
    pub mod case;
    pub mod compare;
    pub mod graph;
    pub mod registry;
    pub mod seed_examples;

    // One module per family, each registered in `registry::FAMILIES`.
    pub mod activations;
    pub mod avg_pool2d;
    pub mod batch_norm2d;
    pub mod conv2d;
    pub mod elementwise;
    pub mod linear;
    pub mod local_response_norm;
    pub mod losses;
    pub mod matmul;
    pub mod max_pool2d;
    pub mod optimizers;
    pub mod reductions;
    pub mod softmax;
}

use golden::registry::check;

#[test]
fn golden_all() {
    check(None);
}

#[test]
fn golden_seed_examples() {
    match golden::seed_examples::check() {
        Ok(n) => println!("{}: {n} examples checked", golden::seed_examples::FILE),
        Err(failures) => panic!(
            "{} failure(s):\n  {}",
            failures.len(),
            failures.join("\n  ")
        ),
    }
}

macro_rules! family_tests {
    ($($test:ident => $family:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                check(Some($family));
            }
        )*
        /// The families that have a test of their own.
        const TESTED: &[&str] = &[$($family),*];
    };
}

family_tests! {
    golden_activations => "activations",
    golden_softmax => "softmax",
    golden_losses => "losses",
    golden_linear => "linear",
    golden_matmul => "matmul",
    golden_elementwise => "elementwise",
    golden_reductions => "reductions",
    golden_conv2d => "conv2d",
    golden_max_pool2d => "max_pool2d",
    golden_avg_pool2d => "avg_pool2d",
    golden_local_response_norm => "local_response_norm",
    golden_batch_norm2d => "batch_norm2d",
    golden_optimizers => "optimizers",
}

/// Every registered family has its own test above (the macro list and the table agree).
#[test]
fn every_family_has_a_test() {
    let registered: Vec<&str> = golden::registry::FAMILIES.iter().map(|f| f.name).collect();
    assert_eq!(registered, TESTED);
}
