//! Signature analysis shared by both macros (parameters, declared returns, `Self` replacement)
//! and the code fragments both expansions emit for them.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::visit_mut::VisitMut;
use syn::{Error, FnArg, Ident, Pat, Path, Result, ReturnType, Signature, Type, TypeImplTrait};

use crate::args::RemoteArgs;

/// One parameter of a remote function, method or constructor.
pub(crate) struct Param {
    /// The name in the generated `remote` signatures.
    pub name: Ident,
    /// The value type the call carries (`T` for both `T` and `&T`).
    pub ty: Type,
    /// The body takes `&T` and gets a borrow of the argument.
    pub by_ref: bool,
}

/// What a call produces, after checking it against `num_returns`.
pub(crate) struct Returns {
    /// `num_returns`.
    pub num: usize,
    /// One type per returned object.
    pub tys: Vec<Type>,
    /// The body returns `()` (written or implied), so there is no value to bind.
    pub unit: bool,
}

/// Removes `Group` and `Paren` wrappers, which macro_rules input and `(T)` introduce.
pub(crate) fn peel(ty: &Type) -> &Type {
    match ty {
        Type::Group(g) => peel(&g.elem),
        Type::Paren(p) => peel(&p.elem),
        other => other,
    }
}

fn is_ident(ty: &Type, name: &str) -> bool {
    matches!(ty, Type::Path(p) if p.qself.is_none() && p.path.is_ident(name))
}

/// The first `impl Trait` anywhere inside a type.
fn find_impl_trait(ty: &Type) -> Option<&TypeImplTrait> {
    struct Finder<'a>(Option<&'a TypeImplTrait>);
    impl<'a> Visit<'a> for Finder<'a> {
        fn visit_type_impl_trait(&mut self, t: &'a TypeImplTrait) {
            self.0.get_or_insert(t);
        }
    }
    let mut f = Finder(None);
    f.visit_type(ty);
    f.0
}

/// Analyzes the typed parameters of `sig`; a receiver, if any, is skipped (the caller checks it).
/// `what` names the item with its article (`a remote function`, `an actor method`, ..) in messages.
pub(crate) fn params(sig: &Signature, what: &str) -> Result<Vec<Param>> {
    let typed: Vec<&syn::PatType> = sig
        .inputs
        .iter()
        .filter_map(|a| match a {
            FnArg::Typed(t) => Some(t),
            FnArg::Receiver(_) => None,
        })
        .collect();
    // Names the user gave, so a generated `argN` never collides with one of them.
    let user_names: Vec<String> = typed
        .iter()
        .filter_map(|t| match &*t.pat {
            Pat::Ident(p) => Some(p.ident.to_string()),
            _ => None,
        })
        .collect();
    let mut errors: Option<Error> = None;
    let mut out = Vec::new();
    for (i, t) in typed.iter().enumerate() {
        let name = match &*t.pat {
            Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => p.ident.clone(),
            _ => {
                let mut n = format_ident!("arg{}", i);
                while user_names.contains(&n.to_string()) {
                    n = format_ident!("_{}", n);
                }
                n
            }
        };
        match param_type(&t.ty, what) {
            Ok((ty, by_ref)) => out.push(Param { name, ty, by_ref }),
            Err(e) => combine(&mut errors, e),
        }
    }
    match errors {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// The value type a parameter type carries, and whether the body borrows it.
fn param_type(ty: &Type, what: &str) -> Result<(Type, bool)> {
    if let Some(it) = find_impl_trait(ty) {
        return Err(Error::new_spanned(
            it,
            format!(
                "{what} cannot take `impl Trait`: the argument is stored and may travel to another \
                 process, so it needs one concrete type"
            ),
        ));
    }
    let Type::Reference(r) = peel(ty) else {
        return Ok((ty.clone(), false));
    };
    if let Some(m) = &r.mutability {
        let and = &r.and_token;
        return Err(Error::new_spanned(
            quote!(#and #m),
            format!(
                "{what} cannot take `&mut` parameters: the call works on its own copy of each \
                 argument, so changes would be lost; take `T` or `&T` and return the new value"
            ),
        ));
    }
    if let Some(lt) = &r.lifetime {
        return Err(Error::new_spanned(
            lt,
            format!(
                "{what} cannot name a lifetime on a parameter: the argument lives only for the call; \
                 write `&T` without `{lt}`"
            ),
        ));
    }
    let elem = peel(&r.elem);
    // Unsized borrows are carried as their owned form and borrowed back by deref coercion.
    let carried: Type = if is_ident(elem, "str") {
        syn::parse_quote_spanned!(elem.span()=> ::std::string::String)
    } else if let Type::Slice(s) = elem {
        let inner = &s.elem;
        syn::parse_quote_spanned!(elem.span()=> ::std::vec::Vec<#inner>)
    } else {
        (*r.elem).clone()
    };
    Ok((carried, true))
}

/// Checks the declared return type against `num_returns`.
pub(crate) fn returns(sig: &Signature, args: &RemoteArgs, what: &str) -> Result<Returns> {
    let declared: Option<&Type> = match &sig.output {
        ReturnType::Default => None,
        ReturnType::Type(_, t) => Some(peel(t)),
    };
    if let Some(it) = declared.and_then(find_impl_trait) {
        return Err(Error::new_spanned(
            it,
            format!("{what} cannot return `impl Trait`: its result is stored, so it needs one concrete type"),
        ));
    }
    let unit = match declared {
        None => true,
        Some(Type::Tuple(t)) => t.elems.is_empty(),
        Some(_) => false,
    };
    let n = args.num_returns;
    let tys = match n {
        0 => {
            if let (false, Some(t)) = (unit, declared) {
                return Err(Error::new_spanned(
                    t,
                    format!(
                        "`num_returns = 0` needs {what} that returns nothing, found `-> {}`; drop \
                         `num_returns = 0` to get its result as an `ObjectRef`",
                        pretty(t)
                    ),
                ));
            }
            Vec::new()
        }
        1 => vec![declared.cloned().unwrap_or_else(|| syn::parse_quote!(()))],
        n => match declared {
            Some(Type::Tuple(t)) if t.elems.len() == n => t.elems.iter().cloned().collect(),
            Some(Type::Tuple(t)) => {
                return Err(Error::new_spanned(
                    t,
                    format!(
                        "`num_returns = {n}` needs a return type that is a tuple of {n} elements, found \
                         a tuple of {} element{}",
                        t.elems.len(),
                        if t.elems.len() == 1 { "" } else { "s" }
                    ),
                ))
            }
            Some(t) => {
                return Err(Error::new_spanned(
                    t,
                    format!(
                        "`num_returns = {n}` needs a return type that is a tuple of {n} elements, found `{}`",
                        pretty(t)
                    ),
                ))
            }
            None => {
                return Err(Error::new_spanned(
                    &sig.ident,
                    format!(
                        "`num_returns = {n}` needs a return type that is a tuple of {n} elements, found \
                         no return type"
                    ),
                ))
            }
        },
    };
    Ok(Returns { num: n, tys, unit })
}

/// Replaces `Self` with the actor type, for code in nested items where `Self` does not resolve.
pub(crate) struct ReplaceSelf<'a>(pub &'a Path);

impl VisitMut for ReplaceSelf<'_> {
    fn visit_path_mut(&mut self, p: &mut Path) {
        if p.leading_colon.is_none() && p.segments.first().is_some_and(|s| s.ident == "Self") {
            let mut replaced = self.0.clone();
            replaced.segments.extend(p.segments.iter().skip(1).cloned());
            *p = replaced;
        }
        syn::visit_mut::visit_path_mut(self, p);
    }
}

/// Tokens as a person writes them (`Option<Self>`, not `Option < Self >`), for messages.
pub(crate) fn pretty(tokens: &impl ToTokens) -> String {
    let mut s = tokens.to_token_stream().to_string();
    for (from, to) in [
        (" < ", "<"),
        ("< ", "<"),
        (" <", "<"),
        (" >", ">"),
        (" :: ", "::"),
        (":: ", "::"),
        (" ,", ","),
        ("& ", "&"),
        (" :", ":"),
        ("( ", "("),
        (" )", ")"),
        ("[ ", "["),
        (" ]", "]"),
        (" ;", ";"),
    ] {
        s = s.replace(from, to);
    }
    s
}

/// The `#[cfg(..)]` attributes among `attrs`, to put on every item generated for them.
pub(crate) fn cfg_attrs(attrs: &[syn::Attribute]) -> Vec<&syn::Attribute> {
    attrs.iter().filter(|a| a.path().is_ident("cfg")).collect()
}

/// Adds `e` to the accumulated errors.
pub(crate) fn combine(errors: &mut Option<Error>, e: Error) {
    match errors {
        Some(all) => all.combine(e),
        None => *errors = Some(e),
    }
}

/// The statements that read the arguments from `args` (an owned `Vec<Payload>`), and the
/// expressions that pass each one to the body.
///
/// The `Vec` is split into one payload per parameter (`args::<N>`); a `T` parameter consumes its
/// payload (`Payload::into_owned`, which moves the value out when the call holds it alone) and
/// a `&T` parameter borrows it in place (`Payload::read`, which recycles a value decoded for the
/// call once it is done).
pub(crate) fn read_args(
    params: &[Param],
    args: &TokenStream,
) -> (Vec<TokenStream>, Vec<TokenStream>) {
    if params.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let n = params.len();
    let payloads: Vec<Ident> = (0..n).map(|i| format_ident!("__unidist_p{}", i)).collect();
    let mut lets = vec![quote! {
        let [#(#payloads),*] = ::unidist::__private::args::<#n>(#args)?;
    }];
    let mut pass = Vec::new();
    for (i, (p, payload)) in params.iter().zip(&payloads).enumerate() {
        let a = format_ident!("__unidist_a{}", i);
        let ty = &p.ty;
        if p.by_ref {
            lets.push(quote_spanned! {ty.span()=>
                let #a = ::unidist::__private::Payload::read::<#ty>(&#payload)?;
            });
            pass.push(quote!(&*#a));
        } else {
            lets.push(quote_spanned! {ty.span()=>
                let #a = ::unidist::__private::Payload::into_owned::<#ty>(#payload)?;
            });
            pass.push(quote!(#a));
        }
    }
    (lets, pass)
}

/// Statements that run `call` and return its outputs as `Result<Outputs>`.
pub(crate) fn outputs(returns: &Returns, call: TokenStream) -> TokenStream {
    let ok = quote!(
        ::core::result::Result::<::unidist::__private::Outputs, ::unidist::__private::Error>::Ok
    );
    match returns.num {
        0 => quote! {
            #call;
            #ok(::std::vec::Vec::new())
        },
        1 if returns.unit => quote! {
            #call;
            #ok(::std::vec![::unidist::__private::output(())])
        },
        1 => quote! {
            let __unidist_ret = #call;
            #ok(::std::vec![::unidist::__private::output(__unidist_ret)])
        },
        n => {
            let rs: Vec<Ident> = (0..n).map(|i| format_ident!("__unidist_r{}", i)).collect();
            quote! {
                let (#(#rs),*) = #call;
                #ok(::std::vec![#(::unidist::__private::output(#rs)),*])
            }
        }
    }
}

/// `name: impl IntoArg<T>` per parameter.
pub(crate) fn stub_params(params: &[Param]) -> Vec<TokenStream> {
    params
        .iter()
        .map(|p| {
            let (name, ty) = (&p.name, &p.ty);
            quote_spanned!(ty.span()=> #name: impl ::unidist::__private::IntoArg<#ty>)
        })
        .collect()
}

/// `vec![IntoArg::<T>::into_arg(name), ..]`.
pub(crate) fn arg_vec(params: &[Param]) -> TokenStream {
    let items = params.iter().map(|p| {
        let (name, ty) = (&p.name, &p.ty);
        quote_spanned!(ty.span()=> ::unidist::__private::IntoArg::<#ty>::into_arg(#name))
    });
    quote!(::std::vec![#(#items),*])
}

/// What a `remote` call returns: `()`, `ObjectRef<T>` or a tuple of refs.
pub(crate) fn ret_type(returns: &Returns) -> TokenStream {
    let refs = returns
        .tys
        .iter()
        .map(|t| quote!(::unidist::__private::ObjectRef<#t>));
    match returns.num {
        0 => quote!(()),
        1 => quote!(#(#refs)*),
        _ => quote!((#(#refs),*)),
    }
}

/// Turns the refs a submission returned (`refs`, a `Vec<AnyRef>`) into the typed result.
pub(crate) fn typed_refs(returns: &Returns, refs: TokenStream) -> TokenStream {
    let nexts = returns
        .tys
        .iter()
        .map(|t| quote!(::unidist::__private::next_ref::<#t>(&mut __unidist_it)));
    let value = if returns.num == 1 {
        quote!(#(#nexts)*)
    } else {
        quote!((#(#nexts),*))
    };
    quote! {
        let mut __unidist_it = ::std::iter::IntoIterator::into_iter(#refs);
        #value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    fn returns_of(f: syn::ItemFn, n: usize) -> Result<Returns> {
        let args = RemoteArgs::parse_tokens(quote!(num_returns = #n)).expect("valid arguments");
        returns(&f.sig, &args, "a remote function")
    }

    #[test]
    fn borrowed_unsized_parameters_are_carried_owned() {
        let f: syn::ItemFn = parse_quote!(
            fn f(a: &str, b: &[u8], c: &Point, d: i64) {}
        );
        let p = params(&f.sig, "a remote function").expect("valid parameters");
        let tys: Vec<String> = p.iter().map(|p| pretty(&p.ty)).collect();
        assert_eq!(
            tys,
            [
                "::std::string::String",
                "::std::vec::Vec<u8>",
                "Point",
                "i64"
            ]
        );
        assert_eq!(
            p.iter().map(|p| p.by_ref).collect::<Vec<_>>(),
            [true, true, true, false]
        );
    }

    #[test]
    fn pattern_parameters_get_names_that_do_not_collide() {
        let f: syn::ItemFn = parse_quote!(
            fn f((a, b): (i64, i64), arg0: u8, _: u8) {}
        );
        let p = params(&f.sig, "a remote function").expect("valid parameters");
        let names: Vec<String> = p.iter().map(|p| p.name.to_string()).collect();
        assert_eq!(names, ["_arg0", "arg0", "arg2"]);
    }

    #[test]
    fn returns_follow_num_returns() {
        let r = returns_of(
            parse_quote!(
                fn f() -> (i64, String) {}
            ),
            2,
        )
        .expect("matching tuple");
        assert_eq!((r.num, r.tys.len(), r.unit), (2, 2, false));
        let r = returns_of(
            parse_quote!(
                fn f() {}
            ),
            1,
        )
        .expect("unit result");
        assert_eq!(
            (r.num, pretty(&r.tys[0]), r.unit),
            (1, "()".to_string(), true)
        );
        let r = returns_of(
            parse_quote!(
                fn f() -> () {}
            ),
            0,
        )
        .expect("no results");
        assert!(r.tys.is_empty());
        let e = returns_of(
            parse_quote!(
                fn f() -> (i64,) {}
            ),
            2,
        )
        .err()
        .expect("arity mismatch");
        assert!(e.to_string().contains("found a tuple of 1 element"), "{e}");
    }

    #[test]
    fn self_is_replaced_in_nested_positions() {
        let path: Path = parse_quote!(crate::m::Counter);
        let mut ty: Type = parse_quote!(Option<Vec<(Self, [u8; Self::N])>>);
        ReplaceSelf(&path).visit_type_mut(&mut ty);
        assert_eq!(
            pretty(&ty),
            "Option<Vec<(crate::m::Counter, [u8; crate::m::Counter::N])>>"
        );
    }
}
