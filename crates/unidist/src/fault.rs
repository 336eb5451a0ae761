//! Fault tolerance in the facade: checking retry, timeout and restart options at submission,
//! and [`cancel`].

use unidist_core::{AnyRef, Error, ObjectRef, Result, TaskOptions};

/// Checks the fault-tolerance options of a call; a bad one is an [`Error::InvalidArgument`]
/// naming the option and the value, held by the call's refs like every submission failure.
pub(crate) fn validate(options: &TaskOptions) -> Result<()> {
    if options.max_retries > TaskOptions::MAX_RETRIES {
        return Err(Error::invalid(
            "max_retries",
            options.max_retries,
            format!("0..={}", TaskOptions::MAX_RETRIES),
        ));
    }
    if options.max_restarts > TaskOptions::MAX_RESTARTS {
        return Err(Error::invalid(
            "max_restarts",
            options.max_restarts,
            format!("0..={}", TaskOptions::MAX_RESTARTS),
        ));
    }
    if let Some(limit) = options.timeout {
        if limit.is_zero() {
            return Err(Error::invalid(
                "timeout",
                format!("{limit:?}"),
                "a duration above zero",
            ));
        }
    }
    if options.retry_exceptions && options.max_retries == 0 {
        return Err(Error::invalid(
            "retry_exceptions",
            true,
            "false unless max_retries is above 0 (set max_retries(n) too)",
        ));
    }
    Ok(())
}

/// Cancels the call that produces `r`.
///
/// A pending call never runs; a running one's outputs fail with
/// [`ErrorKind::Cancelled`](crate::ErrorKind::Cancelled) and its result is discarded (its body
/// cannot be interrupted, but the runtime no longer waits for it); a finished object is
/// untouched and this returns `Ok(())`. Tasks that take a cancelled object as an argument fail
/// without running. A ref that holds an error is finished already; a ref of a runtime that was
/// shut down gives [`ErrorKind::StaleRef`](crate::ErrorKind::StaleRef).
///
/// On `pyseq` every call has finished when `remote` returns, so this finds only finished
/// objects. A backend that cannot stop pending work (see
/// [`Capabilities::cancel`](crate::Capabilities)) gives
/// [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) for a pending object.
pub fn cancel<T>(r: &ObjectRef<T>) -> Result<()> {
    cancel_any(r.as_any())
}

fn cancel_any(r: &AnyRef) -> Result<()> {
    if r.error().is_some() {
        return Ok(());
    }
    let (id, backend) = r.resolve()?;
    if let Some(current) = unidist_core::runtime::current() {
        if !std::sync::Arc::ptr_eq(&current, &backend) {
            return Err(Error::StaleRef {
                what: id.to_string(),
            });
        }
    } else {
        return Err(Error::StaleRef {
            what: id.to_string(),
        });
    }
    backend.cancel(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use unidist_core::ErrorKind;

    fn rejected(options: TaskOptions) -> String {
        let e = validate(&options).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        e.to_string()
    }

    #[test]
    fn bad_fault_options_name_the_option_and_the_value() {
        let text = rejected(TaskOptions::default().max_retries(101));
        assert!(
            text.contains("max_retries") && text.contains("101"),
            "{text}"
        );
        let text = rejected(TaskOptions::default().timeout(Duration::ZERO));
        assert!(text.contains("timeout") && text.contains("0ns"), "{text}");
        let text = rejected(TaskOptions::default().retry_exceptions(true));
        assert!(
            text.contains("retry_exceptions") && text.contains("true"),
            "{text}"
        );
        let text = rejected(TaskOptions::default().max_restarts(1000));
        assert!(
            text.contains("max_restarts") && text.contains("1000"),
            "{text}"
        );
        let fine = TaskOptions::default()
            .max_retries(TaskOptions::MAX_RETRIES)
            .retry_exceptions(true)
            .timeout(Duration::from_nanos(1));
        assert!(validate(&fine).is_ok());
    }
}
