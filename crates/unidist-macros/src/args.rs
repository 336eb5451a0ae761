//! The arguments of `#[remote(..)]`: `num_returns = N`, on functions and on actor methods.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::{Attribute, Error, Expr, ExprLit, Lit, Meta, Result};

/// Parsed `#[remote(..)]` arguments.
pub(crate) struct RemoteArgs {
    /// How many objects a call produces; 1 unless given.
    pub num_returns: usize,
    given: bool,
}

impl Default for RemoteArgs {
    fn default() -> Self {
        RemoteArgs {
            num_returns: 1,
            given: false,
        }
    }
}

impl RemoteArgs {
    /// Parses the tokens inside the parentheses of `#[unidist::remote(..)]`.
    pub(crate) fn parse_tokens(tokens: TokenStream) -> Result<Self> {
        let mut args = RemoteArgs::default();
        syn::meta::parser(|meta| args.parse_meta(meta)).parse2(tokens)?;
        Ok(args)
    }

    /// Parses a `#[remote]` or `#[remote(..)]` attribute on an actor method.
    pub(crate) fn parse_attr(attr: &Attribute) -> Result<Self> {
        let mut args = RemoteArgs::default();
        match &attr.meta {
            Meta::Path(_) => {}
            Meta::List(_) => attr.parse_nested_meta(|meta| args.parse_meta(meta))?,
            Meta::NameValue(nv) => {
                return Err(Error::new_spanned(
                    nv,
                    "#[remote] takes its arguments in parentheses: `#[remote(num_returns = N)]`",
                ))
            }
        }
        Ok(args)
    }

    fn parse_meta(&mut self, meta: ParseNestedMeta<'_>) -> Result<()> {
        if !meta.path.is_ident("num_returns") {
            let key = meta.path.to_token_stream().to_string().replace(' ', "");
            return Err(meta.error(format!(
                "unknown argument `{key}` of #[remote]; the only accepted argument is `num_returns = N`"
            )));
        }
        if self.given {
            return Err(meta.error("`num_returns` is given more than once"));
        }
        let expr: Expr = meta.value()?.parse()?;
        match &expr {
            Expr::Lit(ExprLit {
                lit: Lit::Int(lit), ..
            }) => {
                self.num_returns = lit.base10_parse::<usize>()?;
                self.given = true;
                Ok(())
            }
            other => Err(Error::new_spanned(
                other,
                format!(
                    "`num_returns` takes an integer literal (0, 1, 2, ..), found `{}`",
                    crate::sig::pretty(other)
                ),
            )),
        }
    }
}

/// True for `#[remote]`, `#[remote(..)]` and the same with the `unidist::` prefix.
pub(crate) fn is_remote_attr(attr: &Attribute) -> bool {
    let path = attr.path();
    let names: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    match names.as_slice() {
        [one] => one == "remote",
        [krate, one] => krate == "unidist" && one == "remote",
        _ => false,
    }
}
