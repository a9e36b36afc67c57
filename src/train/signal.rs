//! Interruption: SIGINT/SIGTERM set a process-wide flag; the training loop polls it at
//! every step boundary, saves a checkpoint and returns `FitStatus::Interrupted`. A second
//! signal gets the default action (the process ends at once). Tests and embedding code
//! raise the same flag with `request_interrupt`.
use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPT: AtomicBool = AtomicBool::new(false);

/// Ask the running `fit` to stop at the next step boundary (what the signal handler does).
pub fn request_interrupt() {
    INTERRUPT.store(true, Ordering::SeqCst);
}

/// Whether an interrupt is pending.
pub fn interrupt_requested() -> bool {
    INTERRUPT.load(Ordering::SeqCst)
}

/// Forget a pending interrupt (`fit` does this when it starts).
pub fn clear_interrupt() {
    INTERRUPT.store(false, Ordering::SeqCst);
}

#[cfg(unix)]
mod sys {
    use std::ffi::c_int;
    pub const SIGINT: c_int = 2;
    pub const SIGTERM: c_int = 15;
    pub const SIG_DFL: usize = 0;
    unsafe extern "C" {
        /// libc `signal`; the handler is passed as an address.
        pub fn signal(signum: c_int, handler: usize) -> usize;
    }

    /// Only async-signal-safe work: an atomic store and `signal` itself.
    pub extern "C" fn on_signal(signum: c_int) {
        super::request_interrupt();
        // SAFETY: restoring the default disposition is async-signal-safe.
        unsafe {
            signal(signum, SIG_DFL);
        }
    }
}

/// Install (or re-arm, after a first signal restored the default) the SIGINT/SIGTERM
/// handlers; a no-op off unix.
pub fn install_signal_handlers() {
    #[cfg(unix)]
    // SAFETY: `on_signal` has the C signature `signal` expects and only stores an atomic.
    unsafe {
        let h = sys::on_signal as extern "C" fn(std::ffi::c_int) as usize;
        sys::signal(sys::SIGINT, h);
        sys::signal(sys::SIGTERM, h);
    }
}
