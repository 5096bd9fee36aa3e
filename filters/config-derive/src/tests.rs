//! The expansion of the shapes the configs use, and the errors of the ones they don't.

use syn::{parse_quote, DeriveInput};

use super::expand;

/// The expansion without whitespace, so that a test can look for a piece of it.
fn expanded(input: DeriveInput) -> Result<String, String> {
    let tokens = expand(input).map_err(|e| e.to_string())?;
    Ok(tokens.to_string().split_whitespace().collect())
}

fn has(expanded: &str, piece: &str) -> bool {
    expanded.contains(&piece.split_whitespace().collect::<String>())
}

/// The error `expand` gives for `input`.
fn error(input: DeriveInput) -> String {
    expand(input).err().map(|e| e.to_string()).unwrap_or_default()
}

#[test]
fn a_struct_reads_its_fields_and_fills_in_the_missing() -> Result<(), String> {
    let out = expanded(parse_quote! {
        #[derive(Debug, Deserialize, FromConfig)]
        #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
        #[serde(deny_unknown_fields)]
        pub struct Config {
            /// The realm.
            #[serde(default)]
            pub realm: Realm,
            #[serde(default = "default_scope_claims")]
            scope_claims: Vec<String>,
            rules: Vec<RuleConfig>,
            #[serde(rename = "match", default)]
            matcher: Option<Match>,
            #[serde(default = "Vec::new")]
            r#type: Vec<u8>,
        }
    })?;
    assert!(has(
        &out,
        r#"const NAMES: &[&str] = &["realm", "scope_claims", "rules", "match", "type"];"#
    ));
    assert!(has(
        &out,
        r#"let mut fields = at.fields("struct Config", NAMES, true)?;"#
    ));
    assert!(has(
        &out,
        "let mut f0: ::core::option::Option<Realm> = ::core::option::Option::None;"
    ));
    assert!(has(
        &out,
        "4 => f4 = ::core::option::Option::Some(fields.value(member)?),"
    ));
    assert!(has(&out, "realm: match f0 { ::core::option::Option::Some(v) => v,"));
    assert!(has(
        &out,
        "::core::option::Option::None => ::core::default::Default::default(),"
    ));
    assert!(has(&out, "::core::option::Option::None => default_scope_claims(),"));
    assert!(has(
        &out,
        r#"None => <Vec<RuleConfig> as ::shared::config::FromConfig>::absent("rules")?,"#
    ));
    assert!(has(
        &out,
        "r#type: match f4 { ::core::option::Option::Some(v) => v, ::core::option::Option::None => Vec::new(), }"
    ));
    assert!(!out.contains("__default"));
    Ok(())
}

#[test]
fn a_container_default_fills_in_the_fields_without_their_own() -> Result<(), String> {
    let out = expanded(parse_quote! {
        #[serde(default, deny_unknown_fields)]
        #[serde(rename = "Limits")]
        struct Config { a: u32, #[serde(default = "one")] b: u32 }
    })?;
    assert!(has(&out, r#"at.fields("struct Limits", NAMES, true)?"#));
    assert!(has(&out, "let __default: Self = ::core::default::Default::default();"));
    assert!(has(&out, "::core::option::Option::None => __default.a,"));
    assert!(has(&out, "::core::option::Option::None => one(),"));
    assert!(!out.contains("absent"));
    // Not made when every field has its own.
    let out = expanded(parse_quote! { #[serde(default)] struct Config { #[serde(default)] a: u32 } })?;
    assert!(!out.contains("__default"));
    assert!(has(&out, r#"at.fields("struct Config", NAMES, false)?"#));
    Ok(())
}

#[test]
fn a_unit_enum_is_read_from_its_variant_names() -> Result<(), String> {
    let out = expanded(parse_quote! {
        #[serde(rename_all = "snake_case")]
        enum Unmatched { Deny, AllowMissing, AnyOf, None }
    })?;
    assert!(has(
        &out,
        r#"const VARIANTS: &[&str] = &["deny", "allow_missing", "any_of", "none"];"#
    ));
    assert!(has(&out, r#"match at.unit_variant("enum Unmatched", VARIANTS)? {"#));
    assert!(has(&out, "0 => ::core::result::Result::Ok(Self::Deny),"));
    assert!(has(&out, "2 => ::core::result::Result::Ok(Self::AnyOf),"));
    assert!(has(&out, "_ => ::core::result::Result::Ok(Self::None),"));
    let out = expanded(parse_quote! { enum Mode { Strict } })?;
    assert!(has(&out, r#"&["Strict"]"#) && has(&out, "_ => ::core::result::Result::Ok(Self::Strict),"));
    Ok(())
}

#[test]
fn a_tagged_enum_reads_its_variants_fields() -> Result<(), String> {
    let out = expanded(parse_quote! {
        #[serde(rename = "tagged:RequiresConfig", rename_all = "snake_case", deny_unknown_fields)]
        #[cfg_attr(feature = "schema", schemars(rename = "RequiresConfig", tag = "type"))]
        pub enum RequiresConfig {
            AnyOf { scopes: Vec<String> },
            AllOf { #[serde(default)] scopes: Vec<String>, #[serde(rename = "match")] m: String },
            Public {},
        }
    })?;
    assert!(has(
        &out,
        r#"const VARIANTS: &[&str] = &["any_of", "all_of", "public"];"#
    ));
    assert!(has(
        &out,
        r#"let (variant, tagged) = at.tagged("RequiresConfig", VARIANTS)?;"#
    ));
    assert!(has(
        &out,
        r#"0 => { const NAMES: &[&str] = &["scopes"]; let mut fields = tagged.fields(NAMES, true)?;"#
    ));
    assert!(has(&out, r#"const NAMES: &[&str] = &["scopes", "match"];"#));
    assert!(has(
        &out,
        r#"<String as ::shared::config::FromConfig>::absent("match")?"#
    ));
    assert!(has(&out, "::core::result::Result::Ok(Self::AnyOf {"));
    let last = "_ => { const NAMES: &[&str] = &[]; let mut fields = tagged.fields(NAMES, true)?; \
                while fields.next()?.is_some() {} ::core::result::Result::Ok(Self::Public {}) }";
    assert!(has(&out, last));
    Ok(())
}

#[test]
fn anything_else_is_an_error() {
    let flatten = error(parse_quote! { struct C { #[serde(flatten)] a: A } });
    assert!(flatten.contains("`flatten` on a field"), "{flatten}");
    let skip = error(parse_quote! { #[serde(deny_unknown_fields, tag = "type")] enum E { A {} } });
    assert!(skip.contains("`tag` on a container"), "{skip}");
    let variant = error(parse_quote! { enum E { #[serde(rename = "b")] A } });
    assert!(variant.contains("`rename` on a variant"), "{variant}");
    let camel = error(parse_quote! { #[serde(rename_all = "camelCase")] enum E { A } });
    assert!(camel.contains("snake_case"), "{camel}");
    let default_path = error(parse_quote! { #[serde(default = "make")] struct C { a: u8 } });
    assert!(default_path.contains("without a value"), "{default_path}");
    let untagged = error(parse_quote! { enum E { A, B(u8) } });
    assert!(untagged.contains("must be internally tagged"), "{untagged}");
    let unit_in_tagged = error(parse_quote! { #[serde(rename = "tagged:E")] enum E { A {}, B } });
    assert!(unit_in_tagged.contains("named fields"), "{unit_in_tagged}");
    let enum_default = error(parse_quote! { #[serde(default)] enum E { A } });
    assert!(enum_default.contains("for structs"), "{enum_default}");
    let tagged_struct = error(parse_quote! { #[serde(rename = "tagged:C")] struct C {} });
    assert!(tagged_struct.contains("for enums"), "{tagged_struct}");
    for input in [
        parse_quote! { struct C(u8); },
        parse_quote! { struct C; },
        parse_quote! { struct C<T> { a: T } },
        parse_quote! { struct C<'a> { a: &'a str } },
        parse_quote! { enum E {} },
        parse_quote! { union U { a: u8 } },
    ] {
        assert!(!error(input).is_empty());
    }
}
