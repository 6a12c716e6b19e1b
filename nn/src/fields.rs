//! What a field of a `#[derive(Module)]` struct can hold, and how the derived traversal treats
//! it: a module is a child (`path.` + its own names), a parameter or a generator is an entry
//! named `path`, `Option` is present or absent, `Vec` and arrays are numbered (`path.0.`).
//!
//! A field that is none of these is refused where it is declared, with what to write instead:
//!
//! ```compile_fail,E0277
//! use tapegrad_autograd::{Result, Var};
//! use tapegrad_nn::{layers::Conv2d, Module};
//!
//! #[derive(Module)]
//! struct Block {
//!     conv: Conv2d,
//!     name: std::path::PathBuf, // not a module: needs #[module(skip)]
//! }
//! impl Block {
//!     fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> { self.conv.forward(x) }
//! }
//! ```
//!
//! A plain value the derive recognises (a `bool`, a number, a `String`, a tuple) is refused
//! by the derive itself, naming the attributes that fit:
//!
//! ```compile_fail
//! use tapegrad_autograd::{Result, Var};
//! use tapegrad_nn::{layers::Conv2d, Module};
//!
//! #[derive(Module)]
//! struct Block {
//!     conv: Conv2d,
//!     shortcut: bool, // error: mark it #[module(skip)], or #[module(training)]
//! }
//! impl Block {
//!     fn forward<'t>(&mut self, x: Var<'t>) -> Result<Var<'t>> { self.conv.forward(x) }
//! }
//! ```
//!
//! The derived `Module::forward` calls the struct's inherent `forward`; without one, the
//! compiler's error names `WriteAnInherentForwardForDerivedModule`:
//!
//! ```compile_fail,E0034
//! use tapegrad_nn::{layers::Conv2d, Module};
//!
//! #[derive(Module)]
//! struct Block {
//!     conv: Conv2d,
//! }
//! ```

use crate::module::{Entry, EntryRef, Module, ModuleId};
use tapegrad_autograd::{Param, Rng};

/// A field the derived traversal can walk. `path` is the field's dotted name (`prefix` + the
/// field's name), without a trailing dot.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a module, a parameter, or an `Option`, `Vec` or array of them",
    label = "a field of a `#[derive(Module)]` struct",
    note = "mark a setting #[module(skip)], a Tensor buffer #[module(buffer)], a saved u64 \
            #[module(counter)], a bool following train/eval #[module(training)]"
)]
pub trait ModuleField {
    /// Calls `f` for every parameter, buffer, counter and generator the field holds.
    fn visit_field(&self, path: &str, f: &mut dyn FnMut(&str, EntryRef<'_>));

    /// The same entries, to be changed.
    fn visit_field_mut(&mut self, path: &str, f: &mut dyn FnMut(&str, Entry<'_>));

    /// Passes the training mode on to the modules the field holds.
    fn set_training_field(&mut self, on: bool);

    /// The mode of the first module the field holds that keeps one.
    fn is_training_field(&self) -> Option<bool> {
        None
    }

    /// Calls `f` for every module the field holds, and theirs (see `Module::visit_modules`).
    fn visit_modules_field(&self, _path: &str, _f: &mut dyn FnMut(&str, ModuleId)) {}
}

impl<M: Module + ?Sized> ModuleField for M {
    fn visit_field(&self, path: &str, f: &mut dyn FnMut(&str, EntryRef<'_>)) {
        self.visit(&format!("{path}."), f);
    }
    fn visit_field_mut(&mut self, path: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        self.visit_mut(&format!("{path}."), f);
    }
    fn set_training_field(&mut self, on: bool) {
        self.set_training(on);
    }
    fn is_training_field(&self) -> Option<bool> {
        self.is_training()
    }
    fn visit_modules_field(&self, path: &str, f: &mut dyn FnMut(&str, ModuleId)) {
        f(path, self.module_id());
        self.visit_modules(&format!("{path}."), f);
    }
}

impl ModuleField for Param {
    fn visit_field(&self, path: &str, f: &mut dyn FnMut(&str, EntryRef<'_>)) {
        f(path, EntryRef::Param(self));
    }
    fn visit_field_mut(&mut self, path: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        f(path, Entry::Param(self));
    }
    fn set_training_field(&mut self, _on: bool) {}
}

impl ModuleField for Rng {
    fn visit_field(&self, path: &str, f: &mut dyn FnMut(&str, EntryRef<'_>)) {
        f(path, EntryRef::Rng(self));
    }
    fn visit_field_mut(&mut self, path: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        f(path, Entry::Rng(self));
    }
    fn set_training_field(&mut self, _on: bool) {}
}

impl<T: ModuleField> ModuleField for Option<T> {
    fn visit_field(&self, path: &str, f: &mut dyn FnMut(&str, EntryRef<'_>)) {
        if let Some(t) = self {
            t.visit_field(path, f);
        }
    }
    fn visit_field_mut(&mut self, path: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        if let Some(t) = self {
            t.visit_field_mut(path, f);
        }
    }
    fn set_training_field(&mut self, on: bool) {
        if let Some(t) = self {
            t.set_training_field(on);
        }
    }
    fn is_training_field(&self) -> Option<bool> {
        self.as_ref().and_then(T::is_training_field)
    }
    fn visit_modules_field(&self, path: &str, f: &mut dyn FnMut(&str, ModuleId)) {
        if let Some(t) = self {
            t.visit_modules_field(path, f);
        }
    }
}

impl<T: ModuleField> ModuleField for [T] {
    fn visit_field(&self, path: &str, f: &mut dyn FnMut(&str, EntryRef<'_>)) {
        for (i, t) in self.iter().enumerate() {
            t.visit_field(&format!("{path}.{i}"), f);
        }
    }
    fn visit_field_mut(&mut self, path: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        for (i, t) in self.iter_mut().enumerate() {
            t.visit_field_mut(&format!("{path}.{i}"), f);
        }
    }
    fn set_training_field(&mut self, on: bool) {
        self.iter_mut().for_each(|t| t.set_training_field(on));
    }
    fn is_training_field(&self) -> Option<bool> {
        self.iter().find_map(T::is_training_field)
    }
    fn visit_modules_field(&self, path: &str, f: &mut dyn FnMut(&str, ModuleId)) {
        for (i, t) in self.iter().enumerate() {
            t.visit_modules_field(&format!("{path}.{i}"), f);
        }
    }
}

/// Forwards to the slice impl: `Vec`s and arrays are numbered.
macro_rules! as_slice {
    ($($t:tt)*) => {
        $($t)* {
            fn visit_field(&self, path: &str, f: &mut dyn FnMut(&str, EntryRef<'_>)) {
                self.as_slice().visit_field(path, f);
            }
            fn visit_field_mut(&mut self, path: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
                self.as_mut_slice().visit_field_mut(path, f);
            }
            fn set_training_field(&mut self, on: bool) {
                self.as_mut_slice().set_training_field(on);
            }
            fn is_training_field(&self) -> Option<bool> {
                self.as_slice().is_training_field()
            }
            fn visit_modules_field(&self, path: &str, f: &mut dyn FnMut(&str, ModuleId)) {
                self.as_slice().visit_modules_field(path, f);
            }
        }
    };
}

as_slice!(impl<T: ModuleField> ModuleField for Vec<T>);
as_slice!(impl<T: ModuleField, const N: usize> ModuleField for [T; N]);
