pub use tapegrad_autograd as autograd;

/// With the default `mimalloc` feature, every program using tapegrad allocates through mimalloc,
/// which reuses freed memory instead of returning it to the OS and faulting it back in.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
