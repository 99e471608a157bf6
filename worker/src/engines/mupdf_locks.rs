//! MuPDF without locking, for a worker process that calls it from one
//! thread only.
//!
//! The `mupdf` crate creates its contexts with a pthread mutex for each of
//! MuPDF's locks, so that several threads may share its resource store.
//! MuPDF takes them on every allocation and every reference count change:
//! over the normal corpus PDFs, locking and unlocking were 16% of a whole
//! `docmill index` run's CPU time, more than the search index costs. A
//! worker uses MuPDF from its job loop's thread alone (the heartbeat thread
//! and the threads reading child engines' pipes never touch it) and MuPDF
//! starts no threads of its own, so the worker turns the locks of its
//! thread's context into no-ops, as a context made for one thread has
//! (`fz_new_context` with no locks).
//!
//! The crate does not expose its context pointer or MuPDF's context layout,
//! so this reads both as MuPDF 1.27 defines them (`struct fz_context` in
//! `fitz/context.h`: the user pointer, the master context, two counters,
//! then the allocator and the locks). The crate is pinned to the exact
//! release in the workspace so that a new MuPDF is a deliberate change, and
//! the layout is checked before anything is written: the allocator's and
//! the locks' functions must all be set, the locks' user pointer must not be
//! one of them, and the master pointer must be the context itself or a
//! context whose own master is itself. When the check fails nothing is
//! changed and the worker runs with the locks, only slower.
//!
//! Only the worker's job loop calls [`unlock_this_thread`]: tests and other
//! code run MuPDF from several threads and keep the locks.

use std::ffi::{c_int, c_void};

type AllocFn = unsafe extern "C" fn(*mut c_void, usize) -> *mut c_void;
type ReallocFn = unsafe extern "C" fn(*mut c_void, *mut c_void, usize) -> *mut c_void;
type FreeFn = unsafe extern "C" fn(*mut c_void, *mut c_void);
type LockFn = unsafe extern "C" fn(*mut c_void, c_int);

/// The head of MuPDF 1.27's `struct fz_context`, up to its locks.
#[repr(C)]
struct ContextHead {
    user: *mut c_void,
    master: *mut ContextHead,
    context_count: c_int,
    next_document_id: c_int,
    alloc_user: *mut c_void,
    malloc: Option<AllocFn>,
    realloc: Option<ReallocFn>,
    free: Option<FreeFn>,
    locks_user: *mut c_void,
    lock: Option<LockFn>,
    unlock: Option<LockFn>,
}

unsafe extern "C" fn no_lock(_user: *mut c_void, _lock: c_int) {}

/// Whether the context looks laid out as [`ContextHead`] says.
///
/// # Safety
/// `ctx` must point to a live MuPDF context.
unsafe fn looks_right(ctx: *const ContextHead) -> bool {
    // SAFETY: the caller gives a live context, at least as large as the
    // head (MuPDF's context is tens of kilobytes).
    let head = unsafe { &*ctx };
    let functions_set = head.malloc.is_some()
        && head.realloc.is_some()
        && head.free.is_some()
        && head.lock.is_some()
        && head.unlock.is_some();
    if !functions_set || head.context_count < 1 {
        return false;
    }
    let not_a_function = |p: *mut c_void| {
        [
            head.lock.map(|f| f as usize),
            head.unlock.map(|f| f as usize),
        ]
        .into_iter()
        .flatten()
        .all(|f| f != p as usize)
    };
    if !not_a_function(head.locks_user) {
        return false;
    }
    if std::ptr::eq(head.master, ctx) {
        return true;
    }
    // A cloned context's master is the base context, its own master.
    // SAFETY: a non-null master of a live context is live (the crate keeps
    // its base context for the life of the process).
    !head.master.is_null() && unsafe { std::ptr::eq((*head.master).master, head.master) }
}

/// This thread's MuPDF context (made on first use).
fn this_thread_context() -> *mut ContextHead {
    let ctx = mupdf::Context::get();
    // SAFETY: `mupdf::Context` holds exactly the thread's context pointer
    // (one field, no destructor: the thread-local owner drops it); the
    // sizes are checked by `transmute` at compile time.
    unsafe { std::mem::transmute::<mupdf::Context, *mut ContextHead>(ctx) }
}

/// Turns off MuPDF's locking for the calling thread's context, when its
/// layout is the one this file knows. Returns whether it did.
///
/// Call it only in a process whose every MuPDF call comes from this thread.
pub fn unlock_this_thread() -> bool {
    let raw = this_thread_context();
    // SAFETY: `raw` is this thread's live context; no lock is held between
    // calls into MuPDF, so none is left locked by the switch, and only this
    // thread uses this context.
    unsafe {
        if raw.is_null() || !looks_right(raw) {
            return false;
        }
        (*raw).lock = Some(no_lock);
        (*raw).unlock = Some(no_lock);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The switch itself runs in every worker process (and so in every
    /// test that indexes a PDF); here, where other tests may use MuPDF on
    /// other threads, only the layout check runs: a MuPDF whose context
    /// changed shape fails this test instead of quietly running locked.
    #[test]
    fn this_mupdf_has_the_context_layout_the_switch_knows() {
        let raw = this_thread_context();
        assert!(!raw.is_null());
        // SAFETY: the thread's live context.
        assert!(unsafe { looks_right(raw) });
    }
}
