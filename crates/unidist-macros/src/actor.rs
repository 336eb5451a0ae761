//! The expansion of `#[unidist::actor]` on an inherent `impl` block.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, ToTokens};
use syn::ext::IdentExt;
use syn::visit_mut::VisitMut;
use syn::{
    Error, Ident, ImplItem, ImplItemFn, ItemImpl, Path, Receiver, Result, ReturnType, Type,
    Visibility,
};

use crate::args::{is_remote_attr, RemoteArgs};
use crate::sig::{self, combine, Param, ReplaceSelf, Returns};

/// Names an `ActorHandle` has itself: a method of the same name would be unreachable through
/// the handle, because the handle's own method wins over the one it dereferences to.
const HANDLE_METHODS: &[&str] = &["kill", "id", "raw", "from_raw"];

struct Constructor {
    vis: Visibility,
    params: Vec<Param>,
}

struct Method {
    ident: Ident,
    vis: Visibility,
    params: Vec<Param>,
    returns: Returns,
    mutable: bool,
    is_async: bool,
    cfgs: Vec<syn::Attribute>,
}

/// Expands `#[actor] impl T { .. }`. The impl block is always emitted with the `#[remote]`
/// method attributes removed, so a misuse reports only the macro's own errors.
pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut imp = match syn::parse2::<ItemImpl>(item.clone()) {
        Ok(imp) => imp,
        Err(_) => {
            let e = Error::new(
                Span::call_site(),
                "#[unidist::actor] goes on an inherent `impl` block: `#[unidist::actor] impl Counter { .. }`",
            )
            .to_compile_error();
            return quote!(#e #item);
        }
    };
    let remote_attrs = strip_remote_attrs(&mut imp);
    let result = if attr.is_empty() {
        expand_impl(&imp, remote_attrs)
    } else {
        Err(Error::new_spanned(
            attr,
            "#[unidist::actor] takes no arguments",
        ))
    };
    match result {
        Ok(generated) => quote!(#imp #generated),
        Err(e) => {
            let e = e.to_compile_error();
            quote!(#imp #e)
        }
    }
}

/// Removes the `#[remote(..)]` attributes from the methods, returning them per item index.
fn strip_remote_attrs(imp: &mut ItemImpl) -> Vec<Vec<syn::Attribute>> {
    imp.items
        .iter_mut()
        .map(|item| match item {
            ImplItem::Fn(f) => {
                let (remote, keep) = std::mem::take(&mut f.attrs)
                    .into_iter()
                    .partition(is_remote_attr);
                f.attrs = keep;
                remote
            }
            _ => Vec::new(),
        })
        .collect()
}

/// The actor type as a plain path (`Counter`, `crate::m::Counter`), or why it is not one.
fn type_path(imp: &ItemImpl) -> Result<Path> {
    if let Some((_, path, _)) = &imp.trait_ {
        return Err(Error::new_spanned(
            path,
            "#[unidist::actor] goes on an inherent `impl` block (`impl Counter { .. }`), not on a trait impl",
        ));
    }
    if !imp.generics.params.is_empty() || imp.generics.where_clause.is_some() {
        return Err(Error::new_spanned(
            &imp.generics,
            "an actor type cannot be generic: the actor is created by name in the process that runs \
             it, so #[unidist::actor] needs an impl block without generic parameters or lifetimes",
        ));
    }
    if let Some(u) = &imp.unsafety {
        return Err(Error::new_spanned(
            u,
            "#[unidist::actor] does not take an `unsafe impl`",
        ));
    }
    match sig::peel(&imp.self_ty) {
        Type::Path(p)
            if p.qself.is_none() && p.path.segments.iter().all(|s| s.arguments.is_none()) =>
        {
            Ok(p.path.clone())
        }
        Type::Path(p) if p.qself.is_none() => Err(Error::new_spanned(
            &imp.self_ty,
            "an actor type cannot be generic: #[unidist::actor] needs a type without generic \
             arguments, like `impl Counter`",
        )),
        other => Err(Error::new_spanned(
            other,
            format!(
                "#[unidist::actor] needs a named struct or enum type, like `impl Counter`, found `{}`",
                sig::pretty(other)
            ),
        )),
    }
}

fn expand_impl(imp: &ItemImpl, remote_attrs: Vec<Vec<syn::Attribute>>) -> Result<TokenStream> {
    let self_path = type_path(imp)?;
    let self_ident = &self_path
        .segments
        .last()
        .expect("a type path has a segment")
        .ident;
    let type_name = self_ident.unraw().to_string();

    let mut errors: Option<Error> = None;
    let mut ctor: Option<Constructor> = None;
    let mut methods: Vec<Method> = Vec::new();
    for (item, attrs) in imp.items.iter().zip(remote_attrs) {
        let ImplItem::Fn(f) = item else { continue };
        let result = match f.sig.receiver() {
            None if f.sig.ident == "new" => {
                constructor(f, &attrs, &self_path).map(|c| ctor = Some(c))
            }
            None => plain_fn(f, &attrs, &type_name),
            Some(r) => method(f, r, &attrs, &self_path).map(|m| methods.push(m)),
        };
        if let Err(e) = result {
            combine(&mut errors, e);
        }
    }
    if ctor.is_none() && errors.is_none() {
        combine(
            &mut errors,
            Error::new_spanned(
                &imp.self_ty,
                format!(
                    "#[unidist::actor] needs a constructor `fn new(..) -> Self` in this impl block; \
                     `{type_name}::remote(..)` takes its arguments and runs it where the actor lives"
                ),
            ),
        );
    }
    if let Some(e) = errors {
        return Err(e);
    }
    let ctor = ctor.expect("checked above");
    let impl_cfgs: Vec<&syn::Attribute> = sig::cfg_attrs(&imp.attrs);
    Ok(generate(
        &impl_cfgs,
        &imp.self_ty,
        &type_name,
        self_ident.span(),
        &ctor,
        &methods,
    ))
}

/// `new`: the constructor `T::remote(..)` runs.
fn constructor(f: &ImplItemFn, attrs: &[syn::Attribute], self_path: &Path) -> Result<Constructor> {
    if let Some(a) = attrs.first() {
        return Err(Error::new_spanned(
            a,
            "#[remote] does not go on the constructor `new`: `Type::remote(..)` already runs it remotely",
        ));
    }
    let mut sig = f.sig.clone();
    no_generics(&sig, "the actor constructor `new`")?;
    if let Some(a) = &sig.asyncness {
        return Err(Error::new_spanned(
            a,
            "the actor constructor `new` cannot be `async`",
        ));
    }
    if let Some(u) = &sig.unsafety {
        return Err(Error::new_spanned(
            u,
            "the actor constructor `new` cannot be `unsafe`",
        ));
    }
    let returns_self = match &sig.output {
        ReturnType::Type(_, t) => match sig::peel(t) {
            Type::Path(p) if p.qself.is_none() => {
                p.path.is_ident("Self")
                    || p.path.to_token_stream().to_string()
                        == self_path.to_token_stream().to_string()
            }
            _ => false,
        },
        ReturnType::Default => false,
    };
    if !returns_self {
        let found = match &sig.output {
            ReturnType::Type(_, t) => format!("`-> {}`", sig::pretty(t)),
            ReturnType::Default => "no return type".to_string(),
        };
        let span_of = match &sig.output {
            ReturnType::Type(_, t) => t.to_token_stream(),
            ReturnType::Default => sig.ident.to_token_stream(),
        };
        return Err(Error::new_spanned(
            span_of,
            format!("#[unidist::actor] needs a constructor `fn new(..) -> Self`, found {found}"),
        ));
    }
    ReplaceSelf(self_path).visit_signature_mut(&mut sig);
    Ok(Constructor {
        vis: f.vis.clone(),
        params: sig::params(&sig, "the actor constructor `new`")?,
    })
}

/// An associated function without a receiver: left alone, unless it claims to be remote.
fn plain_fn(f: &ImplItemFn, attrs: &[syn::Attribute], type_name: &str) -> Result<()> {
    if let Some(a) = attrs.first() {
        return Err(Error::new_spanned(
            a,
            format!(
                "#[remote] goes on methods taking `&self` or `&mut self`; `{}` has no receiver, so it \
                 stays a local associated function",
                f.sig.ident
            ),
        ));
    }
    if f.sig.ident == "remote" {
        return Err(Error::new_spanned(
            &f.sig.ident,
            format!("#[unidist::actor] generates `{type_name}::remote(..)` to create actors; rename this function"),
        ));
    }
    Ok(())
}

fn no_generics(sig: &syn::Signature, what: &str) -> Result<()> {
    if !sig.generics.params.is_empty() {
        return Err(Error::new_spanned(
            &sig.generics.params,
            format!("{what} cannot have generic parameters or lifetimes: each parameter needs one concrete type"),
        ));
    }
    if let Some(w) = &sig.generics.where_clause {
        return Err(Error::new_spanned(
            w,
            format!("{what} cannot have a `where` clause"),
        ));
    }
    Ok(())
}

/// A method with a receiver: a remote method.
fn method(
    f: &ImplItemFn,
    r: &Receiver,
    attrs: &[syn::Attribute],
    self_path: &Path,
) -> Result<Method> {
    let name = f.sig.ident.unraw().to_string();
    let mutable = receiver_kind(r, &name, self_path)?;
    if attrs.len() > 1 {
        return Err(Error::new_spanned(
            &attrs[1],
            "#[remote] is given more than once on this method",
        ));
    }
    let args = match attrs.first() {
        Some(a) => RemoteArgs::parse_attr(a)?,
        None => RemoteArgs::default(),
    };
    if HANDLE_METHODS.contains(&name.as_str()) {
        return Err(Error::new_spanned(
            &f.sig.ident,
            format!(
                "an actor method cannot be called `{name}`: `ActorHandle::{name}` would hide it on the \
                 handle; rename it"
            ),
        ));
    }
    let mut sig = f.sig.clone();
    no_generics(&sig, "an actor method")?;
    if let Some(u) = &sig.unsafety {
        return Err(Error::new_spanned(
            u,
            "an actor method cannot be `unsafe fn`",
        ));
    }
    ReplaceSelf(self_path).visit_signature_mut(&mut sig);
    let params = sig::params(&sig, "an actor method");
    let returns = sig::returns(&sig, &args, "an actor method");
    let (params, returns) = match (params, returns) {
        (Ok(p), Ok(r)) => (p, r),
        (Err(mut a), Err(b)) => {
            a.combine(b);
            return Err(a);
        }
        (Err(e), _) | (_, Err(e)) => return Err(e),
    };
    Ok(Method {
        ident: f.sig.ident.clone(),
        vis: f.vis.clone(),
        params,
        returns,
        mutable,
        is_async: sig.asyncness.is_some(),
        cfgs: sig::cfg_attrs(&f.attrs).into_iter().cloned().collect(),
    })
}

/// Whether the receiver is `&mut self` (true) or `&self` (false); anything else is an error.
fn receiver_kind(r: &Receiver, name: &str, self_path: &Path) -> Result<bool> {
    if r.reference.is_some() {
        return Ok(r.mutability.is_some());
    }
    if r.colon_token.is_some() {
        if let Type::Reference(tr) = sig::peel(&r.ty) {
            let is_self = match sig::peel(&tr.elem) {
                Type::Path(p) if p.qself.is_none() => {
                    p.path.is_ident("Self")
                        || p.path.to_token_stream().to_string()
                            == self_path.to_token_stream().to_string()
                }
                _ => false,
            };
            if is_self {
                return Ok(tr.mutability.is_some());
            }
        }
    }
    Err(Error::new_spanned(
        r,
        format!(
            "actor method `{name}` takes `{}`; a remote method takes `&self` or `&mut self`, because the \
             actor lives on across calls and cannot be moved into one",
            sig::pretty(r)
        ),
    ))
}

/// The widest of the visibilities, for the methods type.
///
/// `impl ActorClass for T { type Methods = TMethods; }` requires `TMethods` to be as visible as
/// `T`, whose own visibility the impl block does not show; the widest visibility among `new`
/// and the methods is what a user who can reach the actor can reach.
fn widest<'a>(all: impl Iterator<Item = &'a Visibility>) -> Visibility {
    fn rank(v: &Visibility) -> u8 {
        match v {
            Visibility::Public(_) => 3,
            Visibility::Restricted(r) if r.in_token.is_none() && r.path.is_ident("crate") => 2,
            Visibility::Restricted(_) => 1,
            Visibility::Inherited => 0,
        }
    }
    all.max_by_key(|v| rank(v))
        .cloned()
        .unwrap_or(Visibility::Inherited)
}

fn generate(
    impl_cfgs: &[&syn::Attribute],
    self_ty: &Type,
    type_name: &str,
    type_span: Span,
    ctor: &Constructor,
    methods: &[Method],
) -> TokenStream {
    let class_suffix = format!("::{type_name}");
    let methods_ident = Ident::new(&format!("{type_name}Methods"), type_span);

    // The class entry and `T::remote`.
    let args_ident = quote!(__unidist_args);
    let (lets, pass) = sig::read_args(&ctor.params, &args_ident);
    let args_pat = if ctor.params.is_empty() {
        quote!(_)
    } else {
        args_ident.clone()
    };
    let ctor_vis = &ctor.vis;
    let methods_vis = widest(std::iter::once(&ctor.vis).chain(methods.iter().map(|m| &m.vis)));
    let ctor_params = sig::stub_params(&ctor.params);
    let ctor_argv = sig::arg_vec(&ctor.params);
    let class_doc = format!("The registry entry of the actor type `{type_name}`.");
    let options_ident = format_ident!("__UnidistActorOptions_{}", type_name);
    let options_doc = format!(
        "Options for creating one `{type_name}` actor, ending with `.remote(..)` (the arguments \
         of `new`)."
    );
    let remote_doc = format!(
        "Creates a `{type_name}` actor: runs `{type_name}::new` with these arguments where the backend \
         places the actor, and returns its handle. Each argument may be a value, an `ObjectRef` or a \
         `&ObjectRef` of the parameter type."
    );

    let mut consts = Vec::new();
    let mut stubs = Vec::new();
    let mut registrations = Vec::new();
    for m in methods {
        let ident = &m.ident;
        let plain = ident.unraw().to_string();
        let const_ident = format_ident!("__UNIDIST_M_{}", plain);
        let method_suffix = format!("::{type_name}::{plain}");
        let num = m.returns.num;
        // Every trampoline owns its arguments (a `Vec`), so by-value parameters can take them.
        let (lets, pass) = sig::read_args(&m.params, &args_ident);
        let empty = m.params.is_empty();
        let call = quote!(<#self_ty>::#ident(__unidist_this, #(#pass),*));
        let (trampoline, kind) = match (m.is_async, m.mutable) {
            (false, mutable) => {
                let (state_ty, access) = if mutable {
                    (quote!(&mut dyn ::core::any::Any), quote!(actor_mut))
                } else {
                    (quote!(&dyn ::core::any::Any), quote!(actor_ref))
                };
                let body = sig::outputs(&m.returns, call);
                let args_pat = if empty { quote!(_) } else { args_ident.clone() };
                let kind = if mutable { quote!(Mut) } else { quote!(Ref) };
                (
                    quote! {
                        #[allow(deprecated)]
                        fn __unidist_call(
                            __unidist_state: #state_ty,
                            #args_pat: ::std::vec::Vec<::unidist::__private::Payload>,
                        ) -> ::unidist::__private::Result<::unidist::__private::Outputs> {
                            let __unidist_this = ::unidist::__private::#access::<#self_ty>(__unidist_state)?;
                            #(#lets)*
                            #body
                        }
                    },
                    kind,
                )
            }
            (true, mutable) => {
                let (guard, access, state, kind) = if mutable {
                    (
                        quote!(mut __unidist_guard: ::unidist::__private::ActorWriteGuard),
                        quote!(actor_mut),
                        quote!(&mut **__unidist_guard),
                        quote!(AsyncMut),
                    )
                } else {
                    (
                        quote!(__unidist_guard: ::unidist::__private::ActorReadGuard),
                        quote!(actor_ref),
                        quote!(&**__unidist_guard),
                        quote!(Async),
                    )
                };
                let body = sig::outputs(&m.returns, quote!(#call.await));
                let args_pat = if empty { quote!(_) } else { args_ident.clone() };
                (
                    quote! {
                        #[allow(deprecated)]
                        fn __unidist_call(
                            #guard,
                            #args_pat: ::std::vec::Vec<::unidist::__private::Payload>,
                        ) -> ::unidist::__private::LocalBoxFuture<
                            ::unidist::__private::Result<::unidist::__private::Outputs>,
                        > {
                            ::std::boxed::Box::pin(async move {
                                let __unidist_this = ::unidist::__private::#access::<#self_ty>(#state)?;
                                #(#lets)*
                                #body
                            })
                        }
                    },
                    kind,
                )
            }
        };
        let const_doc = format!("The registry entry of the actor method `{type_name}::{plain}`.");
        let cfgs = &m.cfgs;
        consts.push(quote! {
            #(#cfgs)*
            #[doc = #const_doc]
            #[doc(hidden)]
            #[allow(non_upper_case_globals)]
            pub const #const_ident: &'static ::unidist::__private::ActorMethodEntry = {
                #trampoline
                &::unidist::__private::ActorMethodEntry {
                    name: ::core::concat!(::core::module_path!(), #method_suffix),
                    class: ::core::concat!(::core::module_path!(), #class_suffix),
                    num_returns: #num,
                    kind: ::unidist::__private::MethodKind::#kind(__unidist_call),
                }
            };
        });

        let vis = &m.vis;
        let params = sig::stub_params(&m.params);
        let argv = sig::arg_vec(&m.params);
        let ret = sig::ret_type(&m.returns);
        let body = if num == 0 {
            quote!(::unidist::__private::call_actor_none(&self.raw, <#self_ty>::#const_ident, #argv))
        } else {
            sig::typed_refs(
                &m.returns,
                quote!(::unidist::__private::call_actor(&self.raw, <#self_ty>::#const_ident, #argv)),
            )
        };
        let doc = format!(
            "Calls `{type_name}::{plain}` on the actor and returns {}; calls on one actor run in call \
             order. Each argument may be a value, an `ObjectRef` or a `&ObjectRef` of the parameter type.",
            match num {
                0 => "nothing (the method returns no objects)".to_string(),
                1 => "a ref to its result".to_string(),
                n => format!("one ref per element of its result ({n})"),
            }
        );
        stubs.push(quote! {
            #(#cfgs)*
            #[doc = #doc]
            #[allow(clippy::too_many_arguments)]
            #vis fn #ident(&self, #(#params),*) -> #ret {
                #body
            }
        });
        registrations.push(quote! {
            #(#impl_cfgs)*
            #(#cfgs)*
            ::unidist::__private::inventory::submit! {
                ::unidist::__private::Registration::Method(<#self_ty>::#const_ident)
            }
        });
    }

    let methods_doc = format!(
        "Remote methods of [`{type_name}`]; an `ActorHandle<{type_name}>` dereferences to this, so \
         `handle.method(..)` calls the actor."
    );
    quote! {
        #(#impl_cfgs)*
        impl #self_ty {
            #[doc = #class_doc]
            #[doc(hidden)]
            pub const __UNIDIST_CLASS: &'static ::unidist::__private::ActorClassEntry = {
                #[allow(deprecated)]
                fn __unidist_construct(
                    #args_pat: ::std::vec::Vec<::unidist::__private::Payload>,
                ) -> ::unidist::__private::Result<::unidist::__private::ActorState> {
                    #(#lets)*
                    let __unidist_state: ::unidist::__private::ActorState =
                        ::std::boxed::Box::new(<#self_ty>::new(#(#pass),*));
                    ::core::result::Result::Ok(__unidist_state)
                }
                &::unidist::__private::ActorClassEntry {
                    name: ::core::concat!(::core::module_path!(), #class_suffix),
                    construct: __unidist_construct,
                }
            };

            #(#consts)*

            #[doc = #remote_doc]
            #[allow(clippy::too_many_arguments)]
            #ctor_vis fn remote(#(#ctor_params),*) -> ::unidist::__private::ActorHandle<#self_ty> {
                ::unidist::__private::create_actor::<#self_ty>(#ctor_argv, ::core::default::Default::default())
            }

            #[doc = #options_doc]
            #ctor_vis fn options() -> #options_ident {
                #options_ident {
                    opts: ::core::default::Default::default(),
                }
            }
        }

        #(#impl_cfgs)*
        #[doc = #options_doc]
        #[doc(hidden)]
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone)]
        #ctor_vis struct #options_ident {
            opts: ::unidist::__private::TaskOptions,
        }

        #(#impl_cfgs)*
        impl #options_ident {
            /// Re-creates the actor (its constructor runs again with the same arguments) up to
            /// `n` times when the process holding it is lost; at most
            /// `TaskOptions::MAX_RESTARTS`.
            pub fn max_restarts(self, n: u32) -> Self {
                #options_ident {
                    opts: self.opts.max_restarts(n),
                }
            }

            #[doc = #remote_doc]
            #[allow(clippy::too_many_arguments)]
            pub fn remote(self, #(#ctor_params),*) -> ::unidist::__private::ActorHandle<#self_ty> {
                ::unidist::__private::create_actor::<#self_ty>(#ctor_argv, self.opts)
            }
        }

        #(#impl_cfgs)*
        impl ::unidist::__private::ActorClass for #self_ty {
            type Methods = #methods_ident;

            fn class() -> &'static ::unidist::__private::ActorClassEntry {
                <#self_ty>::__UNIDIST_CLASS
            }
        }

        #(#impl_cfgs)*
        #[doc = #methods_doc]
        #[derive(Clone, Debug)]
        #methods_vis struct #methods_ident {
            raw: ::unidist::__private::RawActorHandle,
        }

        #(#impl_cfgs)*
        impl ::unidist::__private::ActorMethods for #methods_ident {
            fn from_raw(raw: ::unidist::__private::RawActorHandle) -> Self {
                #methods_ident { raw }
            }

            fn raw(&self) -> &::unidist::__private::RawActorHandle {
                &self.raw
            }
        }

        #(#impl_cfgs)*
        // The methods type may be more visible than a parameter type of a method, if the user
        // made the method more visible than the actor type: the lints would point at code the
        // user did not write.
        #[allow(clippy::should_implement_trait, private_interfaces, private_bounds)]
        impl #methods_ident {
            #(#stubs)*
        }

        #(#impl_cfgs)*
        ::unidist::__private::inventory::submit! {
            ::unidist::__private::Registration::Class(<#self_ty>::__UNIDIST_CLASS)
        }
        #(#registrations)*
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    #[test]
    fn methods_type_takes_the_widest_visibility() {
        let all: Vec<Visibility> = vec![
            parse_quote!(),
            parse_quote!(pub(super)),
            parse_quote!(pub(crate)),
            parse_quote!(),
        ];
        assert_eq!(
            widest(all.iter()).to_token_stream().to_string(),
            "pub (crate)"
        );
        let public: Visibility = parse_quote!(pub);
        assert_eq!(
            widest(all.iter().chain([&public]))
                .to_token_stream()
                .to_string(),
            "pub"
        );
        assert_eq!(widest([].iter()).to_token_stream().to_string(), "");
    }

    #[test]
    fn misuse_keeps_the_impl_without_remote_attributes() {
        let out = expand(
            TokenStream::new(),
            quote! {
                impl Counter {
                    #[remote(num_returns = 2)]
                    fn get(&self) -> i64 { 1 }
                }
            },
        )
        .to_string();
        assert!(out.contains("compile_error"), "{out}");
        assert!(out.contains("fn get"), "{out}");
        assert!(!out.contains("# [remote"), "{out}");
    }
}
