//! The expansion of `#[unidist::remote]` on a free function.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::ext::IdentExt;
use syn::{Error, FnArg, Item, ItemFn, Result};

use crate::args::RemoteArgs;
use crate::sig::{self, combine};

/// Expands `#[remote(attr)] item`; on a misuse, the error plus the item unchanged (so the rest
/// of the crate still sees the function and reports nothing else).
pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let func = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Fn(f)) => f,
        Ok(other) => {
            let hint = match other {
                Item::Impl(_) | Item::Struct(_) | Item::Enum(_) => {
                    "; for a stateful type, put #[unidist::actor] on its `impl` block"
                }
                _ => "",
            };
            let e = Error::new(
                Span::call_site(),
                format!(
                    "#[unidist::remote] goes on a free function (`fn name(..) {{ .. }}`){hint}"
                ),
            );
            return with_error(e, item);
        }
        // Not valid Rust: the compiler reports it on the unchanged tokens.
        Err(_) => return item,
    };
    match expand_fn(attr, &func) {
        Ok(generated) => quote!(#func #generated),
        Err(e) => with_error(e, item),
    }
}

fn with_error(e: Error, item: TokenStream) -> TokenStream {
    let e = e.to_compile_error();
    quote!(#e #item)
}

/// Rejects what a remote call cannot carry: generics, `async`, receivers and the like.
fn check_signature(func: &ItemFn) -> Result<()> {
    let sig = &func.sig;
    let mut errors = None;
    if !sig.generics.params.is_empty() {
        combine(
            &mut errors,
            Error::new_spanned(
                &sig.generics.params,
                "a remote function cannot have generic parameters or lifetimes: a call is looked up by \
                 name in every process, so each parameter needs one concrete type",
            ),
        );
    } else if let Some(w) = &sig.generics.where_clause {
        combine(
            &mut errors,
            Error::new_spanned(w, "a remote function cannot have a `where` clause"),
        );
    }
    if let Some(a) = &sig.asyncness {
        combine(
            &mut errors,
            Error::new_spanned(
                a,
                "#[unidist::remote] does not take `async fn`; write a plain `fn` (async methods are \
                 supported on #[unidist::actor] types)",
            ),
        );
    }
    if let Some(u) = &sig.unsafety {
        combine(
            &mut errors,
            Error::new_spanned(
                u,
                "a remote function cannot be `unsafe fn`: its callers cannot uphold its contract",
            ),
        );
    }
    if let Some(v) = &sig.variadic {
        combine(
            &mut errors,
            Error::new_spanned(v, "a remote function cannot be variadic"),
        );
    }
    for input in &sig.inputs {
        if let FnArg::Receiver(r) = input {
            combine(
                &mut errors,
                Error::new_spanned(
                    r,
                    "#[unidist::remote] goes on a free function, which has no `self`; methods become \
                     remote through #[unidist::actor] on their `impl` block",
                ),
            );
        }
    }
    match errors {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn expand_fn(attr: TokenStream, func: &ItemFn) -> Result<TokenStream> {
    let args = RemoteArgs::parse_tokens(attr)?;
    check_signature(func)?;
    let sig = &func.sig;
    let params = sig::params(sig, "a remote function");
    let returns = sig::returns(sig, &args, "a remote function");
    let (params, returns) = match (params, returns) {
        (Ok(p), Ok(r)) => (p, r),
        (Err(mut a), Err(b)) => {
            a.combine(b);
            return Err(a);
        }
        (Err(e), _) | (_, Err(e)) => return Err(e),
    };

    let vis = &func.vis;
    let name = &sig.ident;
    let plain = name.unraw().to_string();
    // Generated items exist exactly when the function does.
    let cfgs = sig::cfg_attrs(&func.attrs);
    let options = format_ident!("__UnidistOptions_{}", plain);
    let registered_suffix = format!("::{plain}");
    let num = returns.num;

    let args_ident = quote!(__unidist_args);
    let (lets, pass) = sig::read_args(&params, &args_ident);
    let args_pat = if params.is_empty() {
        quote!(_)
    } else {
        args_ident
    };
    let body = sig::outputs(&returns, quote!(#name(#(#pass),*)));

    let stub_params = sig::stub_params(&params);
    let names: Vec<_> = params.iter().map(|p| &p.name).collect();
    let ret = sig::ret_type(&returns);
    let argv = sig::arg_vec(&params);
    let submit = if num == 0 {
        quote!(::unidist::__private::submit_none(#name::__UNIDIST_FN, #argv, self.opts))
    } else {
        sig::typed_refs(
            &returns,
            quote!(::unidist::__private::submit(#name::__UNIDIST_FN, #argv, self.opts)),
        )
    };

    let struct_doc = format!(
        "Runs [`{plain}`](fn@{name}) as a task: `{plain}::remote(..)` submits a call and returns refs to \
         its results, and `{plain}::options()` sets per-call options first."
    );
    let remote_doc = format!(
        "Submits a call of `{plain}` as a task and returns {}. Each argument may be a value, an \
         `ObjectRef` or a `&ObjectRef` of the parameter type; refs are resolved before the body runs.",
        match num {
            0 => "nothing (the function returns no objects)".to_string(),
            1 => "a ref to its result".to_string(),
            n => format!("one ref per element of its result ({n})"),
        }
    );
    let options_doc = format!("Options for one call of `{plain}`, ending with `.remote(..)`.");
    let const_doc = format!("The registry entry of the remote function `{plain}`.");

    Ok(quote! {
        #(#cfgs)*
        #[doc = #struct_doc]
        #[allow(non_camel_case_types)]
        #vis struct #name {
            _p: (),
        }

        #(#cfgs)*
        impl #name {
            #[doc = #const_doc]
            #[doc(hidden)]
            pub const __UNIDIST_FN: &'static ::unidist::__private::RemoteFunction = {
                // Running a deprecated function remotely is not a new use of it.
                #[allow(deprecated)]
                fn __unidist_invoke(
                    #args_pat: ::std::vec::Vec<::unidist::__private::Payload>,
                ) -> ::unidist::__private::Result<::unidist::__private::Outputs> {
                    #(#lets)*
                    #body
                }
                &::unidist::__private::RemoteFunction {
                    name: ::core::concat!(::core::module_path!(), #registered_suffix),
                    num_returns: #num,
                    invoke: __unidist_invoke,
                }
            };

            #[doc = #remote_doc]
            #[allow(clippy::too_many_arguments)]
            pub fn remote(#(#stub_params),*) -> #ret {
                Self::options().remote(#(#names),*)
            }

            #[doc = #options_doc]
            pub fn options() -> #options {
                #options {
                    opts: ::core::default::Default::default(),
                }
            }
        }

        #(#cfgs)*
        #[doc = #options_doc]
        #[doc(hidden)]
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone)]
        #vis struct #options {
            opts: ::unidist::__private::TaskOptions,
        }

        #(#cfgs)*
        impl #options {
            /// Sets the CPUs the call needs: at least 1 and at most the CPUs of the cluster.
            pub fn num_cpus(self, n: u32) -> Self {
                #options {
                    opts: self.opts.num_cpus(n),
                }
            }

            /// Re-runs the call up to `n` more times when its worker process is lost or it
            /// runs out of time (and when it panics, with `retry_exceptions(true)`); at most
            /// `TaskOptions::MAX_RETRIES`.
            pub fn max_retries(self, n: u32) -> Self {
                #options {
                    opts: self.opts.max_retries(n),
                }
            }

            /// Also re-runs the call when its body panics; needs `max_retries` above 0.
            pub fn retry_exceptions(self, yes: bool) -> Self {
                #options {
                    opts: self.opts.retry_exceptions(yes),
                }
            }

            /// Fails the outputs with `ErrorKind::Timeout` when the body has run longer than
            /// `limit` (above zero); the runtime does not wait for the body any more.
            pub fn timeout(self, limit: ::core::time::Duration) -> Self {
                #options {
                    opts: self.opts.timeout(limit),
                }
            }

            #[doc = #remote_doc]
            #[allow(clippy::too_many_arguments)]
            pub fn remote(self, #(#stub_params),*) -> #ret {
                #submit
            }
        }

        #(#cfgs)*
        ::unidist::__private::inventory::submit! {
            ::unidist::__private::Registration::Function(#name::__UNIDIST_FN)
        }
    })
}
