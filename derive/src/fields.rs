//! What each field of a `#[derive(Module)]` struct is, from its attributes and (for plain
//! values the derive can recognise) its type.

use syn::spanned::Spanned;
use syn::{Attribute, Field, Ident, LitStr, Type};

/// How the derived traversal treats a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A module, a parameter, a generator, or an `Option`, `Vec` or array of them: whatever
    /// implements `ModuleField` (the type checker decides, with the field's span).
    Child,
    /// A plain setting: neither visited nor told the training mode (`#[module(skip)]`).
    Skip,
    /// A tensor saved with the state but not trained (`#[module(buffer)]`).
    Buffer,
    /// An integer saved with the state (`#[module(counter)]`).
    Counter,
    /// A `bool` set by `train`/`eval` (`#[module(training)]`); not saved.
    Training,
}

/// A field, its role, and its name in the state dict.
pub struct FieldSpec {
    pub ident: Ident,
    pub ty: Type,
    pub role: Role,
    /// The state-dict name: the field's name unless renamed.
    pub name: String,
}

/// Types that hold no parameters and are not modules: a field of one of these needs an
/// attribute saying what it is.
const PLAIN: &[&str] = &[
    "bool", "char", "str", "String", "f32", "f64", "i8", "i16", "i32", "i64", "i128", "isize",
    "u8", "u16", "u32", "u64", "u128", "usize",
];

/// The plain type's name, if `ty` is one the derive recognises as holding no parameters.
fn plain_type(ty: &Type) -> Option<String> {
    match ty {
        Type::Path(p) if p.qself.is_none() && p.path.segments.len() == 1 => {
            let seg = &p.path.segments[0];
            let name = seg.ident.to_string();
            (PLAIN.contains(&name.as_str()) && seg.arguments.is_empty()).then_some(name)
        }
        Type::Tuple(_) => Some("a tuple".into()),
        Type::Reference(_) => Some("a reference".into()),
        Type::BareFn(_) => Some("a function pointer".into()),
        _ => None,
    }
}

/// Reads the `#[module(...)]` attributes of a field.
pub fn field_spec(field: &Field) -> syn::Result<FieldSpec> {
    let ident = field.ident.clone().ok_or_else(|| {
        syn::Error::new(
            field.span(),
            "#[derive(Module)] names entries after fields: use a struct with named fields",
        )
    })?;
    let mut role: Option<(Role, proc_macro2::Span)> = None;
    let mut rename: Option<String> = None;
    for attr in module_attrs(&field.attrs) {
        attr.parse_nested_meta(|meta| {
            let key = meta
                .path
                .get_ident()
                .map(|i| i.to_string())
                .unwrap_or_default();
            let new_role = match key.as_str() {
                "skip" => Role::Skip,
                "buffer" => Role::Buffer,
                "counter" => Role::Counter,
                "training" => Role::Training,
                "rename" => {
                    let lit: LitStr = meta.value()?.parse()?;
                    rename = Some(lit.value());
                    return Ok(());
                }
                _ => {
                    return Err(meta.error(
                        "unknown #[module] field attribute; expected one of skip, buffer, \
                         counter, training, rename = \"...\"",
                    ))
                }
            };
            if let Some((old, _)) = role {
                return Err(meta.error(format!(
                    "a field has one role: this one is already marked {}",
                    role_name(old)
                )));
            }
            role = Some((new_role, meta.path.span()));
            Ok(())
        })?;
    }
    let role = role.map_or(Role::Child, |(r, _)| r);
    if role == Role::Child {
        if let Some(plain) = plain_type(&field.ty) {
            return Err(syn::Error::new(
                field.ty.span(),
                format!(
                    "field `{ident}` is {}, which holds no parameters and is not a module: \
                     mark it #[module(skip)] (a setting), #[module(counter)] (a saved u64) or \
                     #[module(training)] (a bool following train/eval)",
                    if plain.starts_with("a ") {
                        plain
                    } else {
                        format!("a `{plain}`")
                    }
                ),
            ));
        }
    }
    let name = rename.unwrap_or_else(|| {
        let s = ident.to_string();
        s.strip_prefix("r#").map(str::to_string).unwrap_or(s)
    });
    Ok(FieldSpec {
        ident,
        ty: field.ty.clone(),
        role,
        name,
    })
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Child => "a child",
        Role::Skip => "skip",
        Role::Buffer => "buffer",
        Role::Counter => "counter",
        Role::Training => "training",
    }
}

/// The `#[module(...)]` attributes among `attrs`.
pub fn module_attrs(attrs: &[Attribute]) -> impl Iterator<Item = &Attribute> {
    attrs.iter().filter(|a| a.path().is_ident("module"))
}
