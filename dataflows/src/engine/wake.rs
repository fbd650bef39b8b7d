//! Waking a parked timely worker from another thread.

use std::sync::{Arc, OnceLock};
use std::thread::Thread;

/// Unparks one worker thread. Workers park in `step_or_park` when idle; whoever puts work in
/// their inbox wakes them. The thread is registered once the worker starts.
#[derive(Clone, Default)]
pub struct Waker {
    thread: Arc<OnceLock<Thread>>,
}

impl Waker {
    pub(crate) fn register(&self, thread: Thread) {
        let _ = self.thread.set(thread);
    }

    pub fn wake(&self) {
        if let Some(thread) = self.thread.get() {
            thread.unpark();
        }
    }
}
