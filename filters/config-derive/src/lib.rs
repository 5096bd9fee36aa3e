//! `#[derive(FromConfig)]`: reads a config type from the parsed config tree, through the small
//! runtime in `shared::config` (`At`, `Fields`, `Tagged`), instead of serde's `Deserialize`.
//!
//! Why: code size. serde's derive gives every type a visitor, a field identifier with a visitor of
//! its own, and impls generic over the deserializer, all monomorphized into each .wasm module. This
//! derive gives every type one short, non-generic `from_config`: it asks the runtime for the
//! members one by one, reads each value as its field's type, and fills in the missing fields; the
//! work common to all types (keys, unknown and repeated fields, errors and their paths) is in the
//! runtime, once.
//!
//! The config types keep their `#[serde(...)]` attributes, and this derive reads them, so serde
//! (which the tests compare against) and this reader agree on names, defaults and unknown fields.
//! Only the subset the configs use is honoured; any other `serde` attribute is a compile error
//! rather than silently ignored:
//!
//! - container: `deny_unknown_fields`; `default` (structs); `rename_all = "snake_case"`;
//!   `rename = "..."`, where a name `tagged:Name` makes an enum internally tagged (its variant in a
//!   `type` member, its fields beside it), and any other name is only used in messages;
//! - field: `default`, `default = "path"`, `rename = "..."`.
//!
//! The shapes: a struct with named fields (an object), an enum of unit variants (a string), and a
//! tagged enum of struct variants (an object). Anything else, generics included, is an error.

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote, ToTokens};
use syn::ext::IdentExt;
use syn::meta::ParseNestedMeta;
use syn::{Attribute, Data, DeriveInput, Error, ExprPath, Fields, FieldsNamed, Ident, LitStr, Result, Token, Type};

#[proc_macro_derive(FromConfig, attributes(serde))]
pub fn derive_from_config(input: proc_macro::TokenStream) -> proc_macro::TokenStream {
    let input = syn::parse_macro_input!(input as DeriveInput);
    expand(input).unwrap_or_else(Error::into_compile_error).into()
}

/// The `impl FromConfig` for `input`.
fn expand(input: DeriveInput) -> Result<TokenStream> {
    if !input.generics.params.is_empty() || input.generics.where_clause.is_some() {
        return Err(Error::new_spanned(
            &input.generics,
            "FromConfig does not support generics",
        ));
    }
    let container = container(&input.attrs)?;
    let ident = &input.ident;
    let name = container
        .rename
        .as_ref()
        .map_or_else(|| ident.unraw().to_string(), LitStr::value);
    let deny = container.deny_unknown;
    let body = match &input.data {
        Data::Struct(data) => {
            let Fields::Named(named) = &data.fields else {
                return Err(Error::new_spanned(
                    ident,
                    "FromConfig reads only structs with named fields",
                ));
            };
            if name.starts_with("tagged:") {
                return Err(Error::new_spanned(ident, "`rename = \"tagged:...\"` is for enums"));
            }
            let expecting = format!("struct {name}");
            let open = quote!(at.fields(#expecting, NAMES, #deny)?);
            read_fields(named, open, quote!(Self), container.default)?
        }
        Data::Enum(data) => {
            if container.default {
                return Err(Error::new_spanned(ident, "serde's container `default` is for structs"));
            }
            let mut names = Vec::new();
            for variant in &data.variants {
                serde_items(&variant.attrs, |meta| Err(unsupported(&meta, "variant")))?;
                let variant = variant.ident.unraw().to_string();
                names.push(if container.snake_case {
                    snake_case(&variant)
                } else {
                    variant
                });
            }
            // The last variant's arm is `_`, so that every index has one.
            let last = data.variants.len().checked_sub(1);
            let last = last.ok_or_else(|| Error::new_spanned(ident, "FromConfig needs an enum with variants"))?;
            let indices = (0..data.variants.len()).map(|i| match i == last {
                true => quote!(_),
                false => Literal::usize_unsuffixed(i).into_token_stream(),
            });
            if let Some(tag_name) = name.strip_prefix("tagged:") {
                let mut arms = Vec::new();
                for variant in &data.variants {
                    let Fields::Named(named) = &variant.fields else {
                        let message = "a tagged enum's variants need named fields (`Variant {}` if none)";
                        return Err(Error::new_spanned(variant, message));
                    };
                    let variant = &variant.ident;
                    let open = quote!(tagged.fields(NAMES, #deny)?);
                    arms.push(read_fields(named, open, quote!(Self::#variant), false)?);
                }
                quote! {
                    const VARIANTS: &[&str] = &[#(#names),*];
                    let (variant, tagged) = at.tagged(#tag_name, VARIANTS)?;
                    match variant { #(#indices => { #arms })* }
                }
            } else {
                if let Some(variant) = data.variants.iter().find(|v| !matches!(v.fields, Fields::Unit)) {
                    let message = "config enums with data must be internally tagged: \
                                   #[serde(rename = \"tagged:Name\")]";
                    return Err(Error::new_spanned(variant, message));
                }
                let variants = data.variants.iter().map(|v| &v.ident);
                let expecting = format!("enum {name}");
                quote! {
                    const VARIANTS: &[&str] = &[#(#names),*];
                    match at.unit_variant(#expecting, VARIANTS)? {
                        #(#indices => ::core::result::Result::Ok(Self::#variants),)*
                    }
                }
            }
        }
        Data::Union(_) => return Err(Error::new_spanned(ident, "FromConfig does not read unions")),
    };
    Ok(quote! {
        #[automatically_derived]
        impl ::shared::config::FromConfig for #ident {
            fn from_config(at: ::shared::config::At<'_, '_>) -> ::core::result::Result<Self, ::shared::config::Error> {
                #body
            }
        }
    })
}

/// Reads the named fields from the `Fields` that `open` gives, and builds `build { ... }` of them.
fn read_fields(
    named: &FieldsNamed,
    open: TokenStream,
    build: TokenStream,
    container_default: bool,
) -> Result<TokenStream> {
    let fields = named.named.iter().map(field).collect::<Result<Vec<_>>>()?;
    let names = fields.iter().map(|f| &f.name);
    let types = fields.iter().map(|f| &f.ty);
    let slots: Vec<Ident> = (0..fields.len()).map(|i| format_ident!("f{i}")).collect();
    let indices = (0..fields.len()).map(Literal::usize_unsuffixed);
    let read = if fields.is_empty() {
        quote!(while fields.next()?.is_some() {})
    } else {
        quote! {
            while let ::core::option::Option::Some((index, member)) = fields.next()? {
                match index {
                    #(#indices => #slots = ::core::option::Option::Some(fields.value(member)?),)*
                    _ => {}
                }
            }
        }
    };
    // The container's default is made only if a field takes its value from it.
    let container_default = container_default && fields.iter().any(|f| matches!(f.missing, Missing::Absent));
    let default = container_default.then(|| quote!(let __default: Self = ::core::default::Default::default();));
    let values = fields.iter().zip(&slots).map(|(f, slot)| {
        let (ident, ty, name) = (&f.ident, &f.ty, &f.name);
        let missing = match &f.missing {
            Missing::Default => quote!(::core::default::Default::default()),
            Missing::Path(path) => quote!(#path()),
            Missing::Absent if container_default => quote!(__default.#ident),
            Missing::Absent => quote!(<#ty as ::shared::config::FromConfig>::absent(#name)?),
        };
        quote! {
            #ident: match #slot {
                ::core::option::Option::Some(v) => v,
                ::core::option::Option::None => #missing,
            }
        }
    });
    Ok(quote! {
        const NAMES: &[&str] = &[#(#names),*];
        let mut fields = #open;
        #(let mut #slots: ::core::option::Option<#types> = ::core::option::Option::None;)*
        #read
        #default
        ::core::result::Result::Ok(#build { #(#values),* })
    })
}

/// The container's `#[serde(...)]` attributes.
#[derive(Default)]
struct Container {
    deny_unknown: bool,
    default: bool,
    snake_case: bool,
    rename: Option<LitStr>,
}

fn container(attrs: &[Attribute]) -> Result<Container> {
    let mut container = Container::default();
    serde_items(attrs, |meta| {
        if meta.path.is_ident("deny_unknown_fields") {
            container.deny_unknown = no_value(&meta)?;
        } else if meta.path.is_ident("default") {
            container.default = no_value(&meta)?;
        } else if meta.path.is_ident("rename_all") {
            let rule: LitStr = meta.value()?.parse()?;
            if rule.value() != "snake_case" {
                return Err(Error::new(
                    rule.span(),
                    "FromConfig supports only `rename_all = \"snake_case\"`",
                ));
            }
            container.snake_case = true;
        } else if meta.path.is_ident("rename") {
            container.rename = Some(meta.value()?.parse()?);
        } else {
            return Err(unsupported(&meta, "container"));
        }
        Ok(())
    })?;
    Ok(container)
}

/// A field, with its serde name and what it is when missing.
struct Field<'a> {
    ident: &'a Ident,
    ty: &'a Type,
    name: String,
    missing: Missing,
}

/// What a field missing from the text becomes.
enum Missing {
    /// The container's default's field if it has `default`, else `FromConfig::absent`.
    Absent,
    /// `#[serde(default)]`.
    Default,
    /// `#[serde(default = "path")]`.
    Path(ExprPath),
}

fn field(field: &syn::Field) -> Result<Field<'_>> {
    let ident = field
        .ident
        .as_ref()
        .ok_or_else(|| Error::new_spanned(field, "expected a named field"))?;
    // `rename_all = "snake_case"` leaves a field's name as it is: Rust's are snake case already.
    let mut name = ident.unraw().to_string();
    let mut missing = Missing::Absent;
    serde_items(&field.attrs, |meta| {
        if meta.path.is_ident("default") {
            missing = match meta.input.peek(Token![=]) {
                true => Missing::Path(meta.value()?.parse::<LitStr>()?.parse()?),
                false => Missing::Default,
            };
        } else if meta.path.is_ident("rename") {
            name = meta.value()?.parse::<LitStr>()?.value();
        } else {
            return Err(unsupported(&meta, "field"));
        }
        Ok(())
    })?;
    Ok(Field {
        ident,
        ty: &field.ty,
        name,
        missing,
    })
}

/// Calls `each` on every item in the `#[serde(...)]` attributes among `attrs`.
fn serde_items(attrs: &[Attribute], mut each: impl FnMut(ParseNestedMeta) -> Result<()>) -> Result<()> {
    let mut serde = attrs.iter().filter(|attr| attr.path().is_ident("serde"));
    serde.try_for_each(|attr| attr.parse_nested_meta(&mut each))
}

/// `true`, or an error if the item has a value (`default = ...` where only `default` is read).
fn no_value(meta: &ParseNestedMeta) -> Result<bool> {
    match meta.input.is_empty() || meta.input.peek(Token![,]) {
        true => Ok(true),
        false => Err(meta.error("FromConfig supports this serde attribute only without a value here")),
    }
}

fn unsupported(meta: &ParseNestedMeta, on: &str) -> Error {
    let path = meta.path.to_token_stream();
    meta.error(format_args!(
        "FromConfig does not support the serde attribute `{path}` on a {on}"
    ))
}

/// serde's `snake_case` of a variant name: `AnyOf` is `any_of`.
fn snake_case(name: &str) -> String {
    let mut snake = String::new();
    for (i, c) in name.char_indices() {
        if i > 0 && c.is_uppercase() {
            snake.push('_');
        }
        snake.push(c.to_ascii_lowercase());
    }
    snake
}

#[cfg(test)]
mod tests;
