//! The process-wide slot holding the running backend.
//!
//! The facade installs a backend at `init` and takes it out at `shutdown`; MPI worker processes
//! install theirs before serving, so that API calls made inside tasks reach it.

use std::sync::{Arc, OnceLock, RwLock};

use crate::backend::Backend;
use crate::error::{Error, Result};

static SLOT: RwLock<Option<Arc<dyn Backend>>> = RwLock::new(None);

/// Installs `backend` as the running one; fails if one is installed already.
pub fn install(backend: Arc<dyn Backend>) -> Result<()> {
    let mut slot = SLOT.write().unwrap_or_else(|p| p.into_inner());
    if let Some(current) = &*slot {
        return Err(Error::invalid(
            "backend installation",
            backend.name(),
            format!("no running backend, but {} is running", current.name()),
        ));
    }
    *slot = Some(backend);
    Ok(())
}

/// The running backend, if any.
pub fn current() -> Option<Arc<dyn Backend>> {
    SLOT.read().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Removes the running backend from the slot and returns it.
pub fn take() -> Option<Arc<dyn Backend>> {
    SLOT.write().unwrap_or_else(|p| p.into_inner()).take()
}

/// The IP address of this host, as upstream resolves it: the first IPv4 address of the host
/// name, else `127.0.0.1`.
pub fn local_ip() -> String {
    static IP: OnceLock<String> = OnceLock::new();
    IP.get_or_init(|| {
        use std::net::ToSocketAddrs;
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        if host.is_empty() {
            return "127.0.0.1".to_string();
        }
        (host.as_str(), 0)
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.find(|a| a.is_ipv4()))
            .map(|a| a.ip().to_string())
            .unwrap_or_else(|| "127.0.0.1".to_string())
    })
    .clone()
}
