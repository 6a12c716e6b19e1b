pub use tapegrad_autograd as autograd;
