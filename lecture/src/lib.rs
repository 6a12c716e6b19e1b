//! The lecture's examples as small functions: each computes the numbers that one example
//! program (`examples/<name>.rs`) prints, so that the tests (`tests/lecture_examples.rs`)
//! assert exactly those numbers. Models from the zoo are passed in by the caller, so this
//! module needs nothing above `nn`.

pub mod activations;
pub mod backprop;
pub mod degradation;
pub mod design;
pub mod dropout;
pub mod graph;
pub mod linear_collapse;
pub mod topk;
pub mod vanishing;
