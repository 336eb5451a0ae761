//! Every `unsafe` block of the crate: raw MPI calls that rsmpi does not wrap in a form the
//! communication thread can use (non-blocking sends owning their buffers, spawn with an info
//! object, error handlers, abort from any thread) and the process hooks (signals, `atexit`).
#![allow(unsafe_code)]

use std::ffi::CString;
use std::os::raw::{c_char, c_int};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;

use mpi::ffi;
use mpi::raw::{AsRaw, FromRaw};
use mpi::topology::{InterCommunicator, SimpleCommunicator};

use crate::wire::Segment;

/// What a send request keeps alive until MPI is done with its bytes.
pub(crate) enum Keep {
    /// An owned buffer (a batch).
    Owned(Vec<u8>),
    /// Part of a segment that shares storage with a value.
    Segment(Segment, std::ops::Range<usize>),
}

impl Keep {
    fn bytes(&self) -> &[u8] {
        match self {
            Keep::Owned(v) => v,
            Keep::Segment(s, r) => &s.bytes()[r.clone()],
        }
    }
}

/// A non-blocking send that owns (or shares immutably) the bytes it sends.
///
/// The bytes live on the heap (a `Vec` or an `Arc`), so moving a `SendReq` does not move them;
/// they are released only after MPI reports the request complete.
pub(crate) struct SendReq {
    req: ffi::MPI_Request,
    keep: Option<Keep>,
    dest: i32,
    /// The bytes sent.
    len: usize,
}

impl SendReq {
    /// Starts sending `keep`'s bytes to `dest` with `tag` on `comm`.
    pub(crate) fn start(
        keep: Keep,
        dest: i32,
        tag: i32,
        comm: &SimpleCommunicator,
    ) -> Result<Self, i32> {
        let bytes = keep.bytes();
        let count = c_int::try_from(bytes.len()).map_err(|_| -1)?;
        // SAFETY: RSMPI_REQUEST_NULL is a constant initialized by the C shim.
        let mut req = unsafe { ffi::RSMPI_REQUEST_NULL };
        // SAFETY: `bytes` points to `count` readable bytes that stay alive and unmodified until
        // the request completes (they are owned by `keep`, stored in the returned value, which
        // is only dropped after `test` reported completion or at shutdown after MPI_Finalize is
        // no longer possible to reach them); the datatype and communicator are valid handles.
        let rc = unsafe {
            ffi::MPI_Isend(
                bytes.as_ptr().cast(),
                count,
                ffi::RSMPI_UINT8_T,
                dest,
                tag,
                comm.as_raw(),
                &mut req,
            )
        };
        if rc != ffi::MPI_SUCCESS as c_int {
            return Err(rc);
        }
        Ok(SendReq {
            req,
            len: bytes.len(),
            keep: Some(keep),
            dest,
        })
    }

    /// The rank the bytes go to.
    pub(crate) fn dest(&self) -> u32 {
        self.dest as u32
    }

    /// How many bytes the send carries.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// True once the send completed (the bytes are released then).
    pub(crate) fn test(&mut self) -> bool {
        if self.keep.is_none() {
            return true;
        }
        let mut flag: c_int = 0;
        // SAFETY: `self.req` is an active request created by MPI_Isend; status is ignored.
        let rc = unsafe { ffi::MPI_Test(&mut self.req, &mut flag, ffi::RSMPI_STATUS_IGNORE) };
        if rc != ffi::MPI_SUCCESS as c_int || flag != 0 {
            self.keep = None;
            true
        } else {
            false
        }
    }

    /// Gives up on a send that will never complete (its peer is gone): the bytes are leaked on
    /// purpose, since MPI may still read them.
    pub(crate) fn abandon(mut self) {
        if let Some(keep) = self.keep.take() {
            std::mem::forget(keep);
        }
    }
}

/// Makes MPI errors on `comm` return codes instead of aborting, so that a failed spawn or a
/// lost peer can be reported.
pub(crate) fn errors_return(comm: &SimpleCommunicator) {
    // SAFETY: both handles are valid; the call changes only the error handler of `comm`.
    unsafe {
        ffi::MPI_Comm_set_errhandler(comm.as_raw(), ffi::RSMPI_ERRORS_RETURN);
    }
}

/// Aborts every process of the job (callable from any thread, also during a panic).
pub(crate) fn abort_job(code: i32) -> ! {
    // SAFETY: MPI_Abort on MPI_COMM_WORLD is valid whenever MPI is initialized; it does not
    // return on success.
    unsafe {
        if mpi::environment::is_initialized() && !mpi::environment::is_finalized() {
            ffi::MPI_Abort(ffi::RSMPI_COMM_WORLD, code);
        }
    }
    std::process::exit(code)
}

/// Spawns `n` copies of `program` with `args`, collectively over `comm` (root 0), passing the
/// info key/value pairs; returns the intercommunicator, or the MPI error and how many of the
/// processes failed to start.
pub(crate) fn spawn(
    comm: &SimpleCommunicator,
    program: &str,
    args: &[String],
    n: i32,
    info: &[(String, String)],
) -> Result<InterCommunicator, String> {
    let prog = CString::new(program).map_err(|e| e.to_string())?;
    let cargs: Vec<CString> = args
        .iter()
        .map(|a| CString::new(a.as_str()))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let mut argv: Vec<*mut c_char> = cargs
        .iter()
        .map(|s| s.as_ptr() as *mut c_char)
        .chain(std::iter::once(std::ptr::null_mut()))
        .collect();
    let pairs: Vec<(CString, CString)> = info
        .iter()
        .map(|(k, v)| Ok((CString::new(k.as_str())?, CString::new(v.as_str())?)))
        .collect::<Result<_, std::ffi::NulError>>()
        .map_err(|e| e.to_string())?;
    let mut errcodes: Vec<c_int> = vec![0; usize::try_from(n).unwrap_or(0)];
    // SAFETY: all strings are NUL-terminated and outlive the calls; `argv` ends with NULL as
    // MPI_Comm_spawn requires; the info object is created, used and freed here; `errcodes` has
    // room for `n` entries; `comm` is a valid intracommunicator.
    unsafe {
        let mut info_h = ffi::RSMPI_INFO_NULL;
        if !pairs.is_empty() {
            ffi::MPI_Info_create(&mut info_h);
            for (k, v) in &pairs {
                ffi::MPI_Info_set(info_h, k.as_ptr(), v.as_ptr());
            }
        }
        let mut inter = ffi::RSMPI_COMM_NULL;
        let rc = ffi::MPI_Comm_spawn(
            prog.as_ptr(),
            argv.as_mut_ptr(),
            n,
            info_h,
            0,
            comm.as_raw(),
            &mut inter,
            errcodes.as_mut_ptr(),
        );
        if !pairs.is_empty() {
            ffi::MPI_Info_free(&mut info_h);
        }
        let failed = errcodes
            .iter()
            .filter(|&&c| c != ffi::MPI_SUCCESS as c_int)
            .count();
        if rc != ffi::MPI_SUCCESS as c_int || failed > 0 || inter == ffi::RSMPI_COMM_NULL {
            return Err(format!(
                "MPI_Comm_spawn returned error {rc}, {failed} of {n} processes failed to start"
            ));
        }
        Ok(InterCommunicator::from_raw(inter))
    }
}

static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: c_int) {
    let fd = SIGNAL_PIPE.load(Ordering::Relaxed);
    if fd >= 0 {
        let b = sig as u8;
        // SAFETY: write(2) is async-signal-safe; `b` is a valid one-byte buffer.
        unsafe {
            libc::write(fd, (&b as *const u8).cast(), 1);
        }
    }
}

/// Routes SIGINT and SIGTERM to `handler` (called on a dedicated thread with the signal
/// number) instead of killing the process.
pub(crate) fn on_termination_signals(handler: fn(i32)) -> std::io::Result<()> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    SIGNAL_PIPE.store(fds[1], Ordering::Relaxed);
    let read_fd = fds[0];
    std::thread::Builder::new()
        .name("unidist-signals".into())
        .spawn(move || loop {
            let mut b = 0u8;
            // SAFETY: reads one byte into `b` from the pipe created above, which stays open.
            let n = unsafe { libc::read(read_fd, (&mut b as *mut u8).cast(), 1) };
            if n == 1 {
                handler(i32::from(b));
            } else if n < 0
                && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
            {
                continue;
            } else {
                return;
            }
        })?;
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: installs an async-signal-safe handler (it only calls write(2)); the sigaction
        // struct is zero-initialized and fully set before use.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = libc::SA_RESTART;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
    Ok(())
}

static AT_EXIT: OnceLock<fn()> = OnceLock::new();

extern "C" fn run_at_exit() {
    if let Some(f) = AT_EXIT.get() {
        // A panic must not unwind into C.
        let _ = std::panic::catch_unwind(f);
    }
}

/// Runs `f` when the process exits normally (`main` returns or `std::process::exit`).
pub(crate) fn at_exit(f: fn()) {
    if AT_EXIT.set(f).is_ok() {
        // SAFETY: registers a plain `extern "C"` function without arguments, as atexit(3) wants.
        unsafe {
            libc::atexit(run_at_exit);
        }
    }
}

/// Ends the process at once with `code`, without running `atexit` handlers (used by workers
/// after MPI_Finalize, so that no user destructor or handler runs on a finalized MPI).
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit(2) ends the process; nothing runs after it.
    unsafe { libc::_exit(code) }
}

/// Frees an intercommunicator with `MPI_Comm_free` instead of rsmpi's `MPI_Comm_disconnect`
/// (Open MPI 4.1 crashes in the disconnect of spawned processes at finalize; freeing is local
/// and `MPI_Finalize` still waits for the connected processes).
pub(crate) fn free_intercomm(comm: InterCommunicator) {
    let mut raw = comm.as_raw();
    std::mem::forget(comm);
    // SAFETY: `raw` is a valid intercommunicator handle whose rsmpi owner was forgotten above,
    // so it is freed exactly once; no request on it is pending at shutdown.
    unsafe {
        ffi::MPI_Comm_free(&mut raw);
    }
}

/// Frees the job communicator at shutdown without rsmpi's drop, which asserts that
/// `MPI_Comm_free` set the handle to `MPI_COMM_NULL` and so panics when the free fails: once, a
/// spawned worker of MPICH 5 aborted there at the end of a run whose work had all succeeded.
/// A failed free is logged instead; `MPI_Finalize` follows either way. The world and self
/// communicators are not freed (rsmpi's drop leaves them alone too).
pub(crate) fn free_comm(comm: SimpleCommunicator) {
    let mut raw = comm.as_raw();
    // SAFETY: reading the addresses of rsmpi's predefined handles.
    let predefined = unsafe { raw == ffi::RSMPI_COMM_WORLD || raw == ffi::RSMPI_COMM_SELF };
    if predefined {
        return;
    }
    std::mem::forget(comm);
    // SAFETY: `raw` is a valid communicator handle whose rsmpi owner was forgotten above, so it
    // is freed exactly once; no request on it is pending at shutdown.
    let rc = unsafe { ffi::MPI_Comm_free(&mut raw) };
    if rc != ffi::MPI_SUCCESS as c_int {
        tracing::warn!(
            code = rc,
            "MPI_Comm_free of the job communicator failed at shutdown"
        );
    }
}

/// Asks the kernel for transparent huge pages on a large, not yet touched receive buffer: the
/// receive then takes a few hundred page faults instead of one per 4 KiB page, which otherwise
/// costs more than the copy itself for a fresh 64 MiB buffer.
pub(crate) fn prefer_huge_pages(buf: &mut [u8]) {
    const HUGE: usize = 2 << 20;
    if buf.len() < 2 * HUGE {
        return;
    }
    let start = buf.as_mut_ptr() as usize;
    let aligned = start.next_multiple_of(HUGE);
    let end = (start + buf.len()) / HUGE * HUGE;
    if end <= aligned {
        return;
    }
    // SAFETY: the range lies inside `buf`, which this function borrows mutably; MADV_HUGEPAGE
    // only changes how the kernel backs the pages, never their contents.
    unsafe {
        libc::madvise(
            aligned as *mut libc::c_void,
            end - aligned,
            libc::MADV_HUGEPAGE,
        );
    }
}

/// Whether process `pid` (in this pid namespace) still runs: it exists and is not a zombie
/// waiting to be reaped by its launcher.
pub(crate) fn process_alive(pid: u32) -> bool {
    let Ok(p) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) with signal 0 only checks that the process exists and may be signalled.
    let exists = unsafe { libc::kill(p, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    if !exists {
        return false;
    }
    // The state is the first field after the parenthesized command name.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !matches!(
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next()),
            Some('Z' | 'X')
        ),
        Err(_) => exists,
    }
}

/// Reads `dst.len()` bytes at address `addr` of process `pid` (same host) into `dst`, with
/// `process_vm_readv`: one copy, from the other process's memory straight into `dst`. The
/// kernel checks the range and the permission: a range that is not mapped there is `EFAULT`,
/// a process that is gone `ESRCH`, one this process may not read `EPERM`.
pub(crate) fn read_process(pid: u32, addr: u64, dst: &mut [u8]) -> std::io::Result<()> {
    let invalid = || std::io::Error::from(std::io::ErrorKind::InvalidInput);
    let pid = libc::pid_t::try_from(pid).map_err(|_| invalid())?;
    let mut done = 0usize;
    while done < dst.len() {
        let rest = &mut dst[done..];
        let from = addr
            .checked_add(done as u64)
            .and_then(|a| usize::try_from(a).ok())
            .ok_or_else(invalid)?;
        let local = libc::iovec {
            iov_base: rest.as_mut_ptr().cast(),
            iov_len: rest.len(),
        };
        let remote = libc::iovec {
            iov_base: from as *mut libc::c_void,
            iov_len: rest.len(),
        };
        // SAFETY: `local` covers `rest`, which this function borrows mutably, and the kernel
        // writes at most `rest.len()` bytes there; the remote range is only read, in another
        // process, and is checked by the kernel (an error return, not undefined behaviour).
        let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the other process's memory ended before the range did",
            ));
        }
        done += n as usize;
    }
    Ok(())
}

/// Lets process `pid` read this process's memory where the kernel's Yama module restricts
/// that to ancestors (`kernel.yama.ptrace_scope` 1): a worker lets rank 0 of its job read the
/// values it holds. Without Yama, or with a stricter scope, nothing changes (the call fails and
/// reads that need it fall back to shared memory).
pub(crate) fn allow_reads_by(pid: u32) {
    let pid = libc::c_ulong::from(pid);
    let unused: libc::c_ulong = 0;
    // SAFETY: PR_SET_PTRACER takes a process id and changes only who may trace this process.
    unsafe {
        libc::prctl(libc::PR_SET_PTRACER, pid, unused, unused, unused);
    }
}

/// A mapping of part or all of a POSIX shared-memory object, unmapped when dropped; what
/// [`ShmMapping`], [`ShmWriter`] and [`ShmWords`] are made of.
struct Mapped {
    ptr: *mut libc::c_void,
    len: usize,
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned; the owning wrapper hands out no
        // borrow that outlives it.
        unsafe {
            libc::munmap(self.ptr, self.len);
        }
    }
}

/// How [`map_shm`] maps an object.
#[derive(Clone, Copy)]
enum Access {
    /// Read-only, whole, page table filled at once.
    Read,
    /// Read-write, whole, page table filled at once.
    Write,
    /// Read-write, the first `n` bytes only (the object must have them).
    Head(usize),
}

/// Opens shared-memory object `name` and maps it as `access` says.
fn map_shm(name: &str, access: Access) -> std::io::Result<Mapped> {
    let c = shm_name(name)?;
    let err = std::io::Error::last_os_error;
    let (flags, prot) = match access {
        Access::Read => (libc::O_RDONLY, libc::PROT_READ),
        Access::Write | Access::Head(_) => (libc::O_RDWR, libc::PROT_READ | libc::PROT_WRITE),
    };
    // SAFETY: `c` is a valid C string; open of an existing object.
    let fd = unsafe { libc::shm_open(c.as_ptr(), flags, 0) };
    if fd < 0 {
        return Err(err());
    }
    let result = (|| {
        // SAFETY: a zeroed stat buffer filled by fstat on the open descriptor.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `fd` is open and `st` is a valid out pointer.
        if unsafe { libc::fstat(fd, &mut st) } != 0 {
            return Err(err());
        }
        let size = usize::try_from(st.st_size)
            .ok()
            .filter(|l| *l > 0)
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::InvalidData))?;
        let (len, populate) = match access {
            Access::Read | Access::Write => (size, libc::MAP_POPULATE),
            Access::Head(n) if n <= size => (n, 0),
            Access::Head(_) => return Err(std::io::Error::from(std::io::ErrorKind::InvalidData)),
        };
        // SAFETY: a shared mapping of bytes the object has (its size, checked above).
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED | populate,
                fd,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(err());
        }
        Ok(Mapped { ptr, len })
    })();
    // SAFETY: `fd` is open and closed once; the mapping stays valid without it.
    unsafe { libc::close(fd) };
    result
}

/// A read-only mapping of a POSIX shared-memory object, unmapped when dropped.
pub(crate) struct ShmMapping(Mapped);

// SAFETY: the mapping is read-only and owned by this value alone. Its bytes change only while no
// view of them is handed out: the store reads them only through a reader registered in the
// segment's header, and the creator rewrites a segment only after closing it with no reader
// registered (see `shm.rs`), so sharing `&[u8]` views between threads is sound.
unsafe impl Send for ShmMapping {}
// SAFETY: as above: only shared reads of bytes that do not change while read.
unsafe impl Sync for ShmMapping {}

impl ShmMapping {
    /// The mapped bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` is a live mapping of `len` readable bytes until `drop`.
        unsafe { std::slice::from_raw_parts(self.0.ptr.cast::<u8>(), self.0.len) }
    }
}

fn shm_name(name: &str) -> std::io::Result<CString> {
    CString::new(name).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))
}

/// Maps shared-memory object `name` read-only, whole, with its page table filled at once
/// (`MAP_POPULATE`): the reader touches every page of an object anyway, and one call instead of
/// a fault per few pages made mapping and summing 64 MiB several ms faster on the development VM.
pub(crate) fn shm_map(name: &str) -> std::io::Result<ShmMapping> {
    map_shm(name, Access::Read).map(ShmMapping)
}

/// A writable mapping of a whole shared-memory object, owned by the process that creates and
/// rewrites it; written only through [`ShmWriter::write_at`], never read.
pub(crate) struct ShmWriter(Mapped);

// SAFETY: the mapping is only written through `write_at`, which takes `&mut self`: one writer at
// a time, and no reference into the mapping is ever handed out.
unsafe impl Send for ShmWriter {}
// SAFETY: as above; `&ShmWriter` gives no access to the bytes at all.
unsafe impl Sync for ShmWriter {}

impl ShmWriter {
    /// Copies `bytes` to offset `at` of the mapping; an error when they would pass its end.
    pub(crate) fn write_at(&mut self, at: usize, bytes: &[u8]) -> std::io::Result<()> {
        if at
            .checked_add(bytes.len())
            .is_none_or(|end| end > self.0.len)
        {
            return Err(std::io::Error::from(std::io::ErrorKind::InvalidInput));
        }
        // SAFETY: `at..at + bytes.len()` lies inside the live mapping (checked above), the
        // source is a different allocation, and no other reference into the mapping exists in
        // this process (`&mut self`; the slice lives only for this call); other processes read
        // these bytes only after the store's header says so.
        let dst =
            unsafe { std::slice::from_raw_parts_mut(self.0.ptr.cast::<u8>().add(at), bytes.len()) };
        // Large values are copied on several threads (64 MiB: about 10 ms on one).
        unidist_serialize::copy_large(dst, bytes);
        Ok(())
    }
}

/// Maps shared-memory object `name` whole, read-write, with its page table filled at once: for
/// rewriting a segment, where a copy into mapped pages runs at memory speed (10 ms for 64 MiB on
/// the development VM, against 16-20 ms for `pwrite` into the same, already allocated pages).
pub(crate) fn shm_map_writer(name: &str) -> std::io::Result<ShmWriter> {
    map_shm(name, Access::Write).map(ShmWriter)
}

/// A writable mapping of the first [`SHM_WORDS`] 64-bit words of a shared-memory object, used
/// only as atomic counters that every process mapping the object shares; unmapped when dropped.
pub(crate) struct ShmWords(Mapped);

/// How many words a [`ShmWords`] maps.
pub(crate) const SHM_WORDS: usize = 8;

// SAFETY: the mapped words are only ever accessed as atomics (`word`), which are safe to share
// between threads (and, on Linux, between processes mapping the same object).
unsafe impl Send for ShmWords {}
// SAFETY: as above.
unsafe impl Sync for ShmWords {}

impl ShmWords {
    /// Word `i` (below [`SHM_WORDS`]) as an atomic.
    pub(crate) fn word(&self, i: usize) -> &std::sync::atomic::AtomicU64 {
        assert!(i < SHM_WORDS, "word {i} of {SHM_WORDS}");
        // SAFETY: the mapping is page-aligned and SHM_WORDS * 8 bytes long, so word i is in
        // bounds and 8-byte aligned; AtomicU64 has u64's layout, and the words are only
        // touched through atomics while this value lives.
        unsafe { &*self.0.ptr.cast::<std::sync::atomic::AtomicU64>().add(i) }
    }
}

/// Maps the first [`SHM_WORDS`] words of shared-memory object `name` read-write (the object
/// must be at least that long).
pub(crate) fn shm_map_words(name: &str) -> std::io::Result<ShmWords> {
    map_shm(name, Access::Head(SHM_WORDS * 8)).map(ShmWords)
}

/// Removes shared-memory object `name` (mappings of it stay valid until unmapped).
pub(crate) fn shm_unlink(name: &str) -> std::io::Result<()> {
    let c = shm_name(name)?;
    // SAFETY: `c` is a valid C string.
    if unsafe { libc::shm_unlink(c.as_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Asks the kernel for transparent huge pages in the `len` bytes at `addr` (an allocation a
/// decode is about to fill; see `unidist_serialize::set_fresh_memory_advice`). Only the whole
/// pages inside the range are advised; the contents are untouched, and a kernel without the
/// feature or a failure leaves the memory as it was.
pub(crate) fn advise_huge_pages(addr: usize, len: usize) {
    const PAGE: usize = 4096;
    let start = addr.next_multiple_of(PAGE);
    let end = addr.saturating_add(len) / PAGE * PAGE;
    if end <= start {
        return;
    }
    // SAFETY: MADV_HUGEPAGE changes how the range's pages are backed, never their contents,
    // and an unmapped range is an error return (ignored), not undefined behaviour.
    unsafe {
        libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
    }
}
