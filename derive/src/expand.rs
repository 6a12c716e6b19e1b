//! The generated `impl Module`.

use crate::fields::{field_spec, module_attrs, FieldSpec, Role};
use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, LitStr, Path};

/// `impl Module for` the struct, or the errors that prevent it (every one, with its span).
pub fn expand(input: &DeriveInput) -> syn::Result<TokenStream> {
    let krate = crate_path(input)?;
    let fields = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(named) => &named.named,
            Fields::Unit => return Ok(impl_module(input, &krate, &[])),
            Fields::Unnamed(_) => {
                return Err(syn::Error::new(
                    s.fields.span(),
                    "#[derive(Module)] names entries after fields: use a struct with named \
                     fields (or a unit struct)",
                ))
            }
        },
        Data::Enum(e) => {
            return Err(syn::Error::new(
                e.enum_token.span,
                "#[derive(Module)] supports structs; write `impl Module` by hand for an enum",
            ))
        }
        Data::Union(u) => {
            return Err(syn::Error::new(
                u.union_token.span,
                "#[derive(Module)] supports structs, not unions",
            ))
        }
    };
    let mut specs = Vec::new();
    let mut errors: Option<syn::Error> = None;
    for f in fields {
        match field_spec(f) {
            Ok(s) => specs.push(s),
            Err(e) => match &mut errors {
                Some(all) => all.combine(e),
                None => errors = Some(e),
            },
        }
    }
    if let Some(e) = errors {
        return Err(e);
    }
    check_unique_names(&specs)?;
    Ok(impl_module(input, &krate, &specs))
}

/// Two fields may not share a state-dict name (a rename colliding with a field).
fn check_unique_names(specs: &[FieldSpec]) -> syn::Result<()> {
    let named = specs
        .iter()
        .filter(|s| !matches!(s.role, Role::Skip | Role::Training));
    let mut seen: Vec<&str> = Vec::new();
    for s in named {
        if seen.contains(&s.name.as_str()) {
            return Err(syn::Error::new(
                s.ident.span(),
                format!("two fields are named `{}` in the state dict", s.name),
            ));
        }
        seen.push(&s.name);
    }
    Ok(())
}

fn impl_module(input: &DeriveInput, krate: &Path, specs: &[FieldSpec]) -> TokenStream {
    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let support = quote!(#krate::__derive);
    let mut visits = Vec::new();
    let mut visits_mut = Vec::new();
    let mut training = Vec::new();
    let mut modules = Vec::new();
    let mut modes = Vec::new();
    let mut own_mode = None;
    for s in specs {
        let field = &s.ident;
        let name = &s.name;
        let path = quote!(&::std::format!("{}{}", prefix, #name));
        // Spanned at the type: a field whose type does not fit its role reports there.
        let ty_span = s.ty.span();
        match s.role {
            Role::Skip => {}
            Role::Child => {
                visits.push(quote_spanned! {ty_span=>
                    #support::ModuleField::visit_field(&self.#field, #path, f);
                });
                visits_mut.push(quote_spanned! {ty_span=>
                    #support::ModuleField::visit_field_mut(&mut self.#field, #path, f);
                });
                training.push(quote_spanned! {ty_span=>
                    #support::ModuleField::set_training_field(&mut self.#field, on);
                });
                modules.push(quote_spanned! {ty_span=>
                    #support::ModuleField::visit_modules_field(&self.#field, #path, f);
                });
                modes.push(quote_spanned! {ty_span=>
                    #support::ModuleField::is_training_field(&self.#field)
                });
            }
            Role::Buffer => {
                visits.push(quote_spanned! {ty_span=>
                    f(#path, #krate::EntryRef::Buffer(&self.#field));
                });
                visits_mut.push(quote_spanned! {ty_span=>
                    f(#path, #krate::Entry::Buffer(&mut self.#field));
                });
            }
            Role::Counter => {
                visits.push(quote_spanned! {ty_span=>
                    f(#path, #krate::EntryRef::Counter(self.#field));
                });
                visits_mut.push(quote_spanned! {ty_span=>
                    f(#path, #krate::Entry::Counter(&mut self.#field));
                });
            }
            Role::Training => {
                training.push(quote_spanned! {ty_span=> self.#field = on; });
                own_mode.get_or_insert(quote_spanned! {ty_span=> Some(self.#field) });
            }
        }
    }
    let is_training = own_mode.unwrap_or_else(|| quote!(None #(.or_else(|| #modes))*));
    quote! {
        impl #impl_generics #krate::Module for #ident #ty_generics #where_clause {
            fn forward<'t>(
                &mut self,
                x: #support::Var<'t>,
            ) -> #support::Result<#support::Var<'t>> {
                // The struct's inherent `forward` (inherent methods come first). Without one,
                // the call is ambiguous or mistyped, and the error names the missing method.
                #[allow(unused_imports)]
                use #support::WriteAnInherentForwardForDerivedModule as _;
                // Reported to a summary recording x's tape, whoever calls it.
                #support::scoped(self, x, |m, x| <Self>::forward(m, x))
            }

            fn is_training(&self) -> ::core::option::Option<bool> {
                #is_training
            }

            #[allow(unused_variables)]
            fn visit_modules(
                &self,
                prefix: &str,
                f: &mut dyn ::core::ops::FnMut(&str, #krate::ModuleId),
            ) {
                #(#modules)*
            }

            #[allow(unused_variables)]
            fn visit(
                &self,
                prefix: &str,
                f: &mut dyn ::core::ops::FnMut(&str, #krate::EntryRef<'_>),
            ) {
                #(#visits)*
            }

            #[allow(unused_variables)]
            fn visit_mut(
                &mut self,
                prefix: &str,
                f: &mut dyn ::core::ops::FnMut(&str, #krate::Entry<'_>),
            ) {
                #(#visits_mut)*
            }

            #[allow(unused_variables)]
            fn set_training(&mut self, on: bool) {
                #(#training)*
            }
        }
    }
}

/// `tapegrad_nn`'s path: from `#[module(crate = "...")]`, else from the compiled package's
/// manifest (a direct `tapegrad-nn` dependency, else the `tapegrad` facade's `nn`).
fn crate_path(input: &DeriveInput) -> syn::Result<Path> {
    let mut path = None;
    for attr in module_attrs(&input.attrs) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("crate") {
                let lit: LitStr = meta.value()?.parse()?;
                path = Some(lit.parse::<Path>()?);
                Ok(())
            } else {
                Err(meta.error("unknown #[module] struct attribute; expected crate = \"path\""))
            }
        })?;
    }
    if let Some(p) = path {
        return Ok(p);
    }
    let manifest = std::env::var("CARGO_MANIFEST_DIR")
        .ok()
        .and_then(|d| std::fs::read_to_string(std::path::Path::new(&d).join("Cargo.toml")).ok())
        .unwrap_or_default();
    let via_facade = !depends_on(&manifest, "tapegrad-nn") && depends_on(&manifest, "tapegrad");
    Ok(if via_facade {
        syn::parse_quote!(::tapegrad::nn)
    } else {
        syn::parse_quote!(::tapegrad_nn)
    })
}

/// Whether a manifest has a line declaring `name` (as `name = ...`, `name.workspace = ...` or
/// a `[dependencies.name]` table).
fn depends_on(manifest: &str, name: &str) -> bool {
    manifest.lines().any(|line| {
        let line = line.trim();
        let rest = line
            .strip_prefix(name)
            .or_else(|| line.strip_prefix("[dependencies.")?.strip_prefix(name));
        rest.is_some_and(|r| {
            let r = r.trim_start();
            r.starts_with('=') || r.starts_with('.') || r.starts_with(']')
        })
    })
}

#[cfg(test)]
mod tests;
