//! Freed memory given back to the system: the binary allocates with mimalloc, which keeps
//! the pages a thread frees for that thread.

/// Returns the memory this thread freed to the system. The `prism-graph` binary allocates
/// with mimalloc, which keeps a thread's freed pages for that thread: after an arrangement
/// merge that is whole batches, about a third of the resident memory of a loaded graph
/// (`prism-arrangebench`). Forced, so that it purges at once; it takes milliseconds, every
/// few seconds per worker. With another global allocator it does nothing.
pub fn release() {
    // SAFETY: mi_collect takes no pointer and only walks mimalloc's own heap of this thread.
    unsafe { libmimalloc_sys::mi_collect(true) };
}
