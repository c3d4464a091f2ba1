//! Capturing a panic's message, location and stack on the fuzzing thread, instead of letting the
//! default hook print it: the runner reports it once, next to the input that caused it.
//!
//! The hook is installed once per process and only captures on threads that asked for it with
//! [`Capturing`]; every other thread keeps the previous hook's behaviour.

use std::backtrace::Backtrace;
use std::cell::{Cell, RefCell};
use std::panic;
use std::sync::Once;

thread_local! {
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
    static LAST: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn install() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if ACTIVE.with(Cell::get) {
                let stack = own_frames(&Backtrace::force_capture().to_string());
                let text = format!("{info}\nstack (project frames):\n{stack}");
                LAST.with(|l| *l.borrow_mut() = Some(text));
            } else {
                previous(info);
            }
        }));
    });
}

/// Function-name prefixes of frames that belong to the runtime or the driver, not to the code
/// under test or the target.
const NOISE: &[&str] = &[
    "std::",
    "core::",
    "alloc::",
    "<std::",
    "<core::",
    "<alloc::",
    "__rust",
    "rust_begin_unwind",
    "rds_csi_fuzz::driver::",
    "start_thread",
    "clone",
];

/// Keeps the frames of a rendered backtrace that are neither runtime nor driver frames, each
/// with its `at file:line` line.
pub fn own_frames(rendered: &str) -> String {
    let mut out = String::new();
    let mut keep = false;
    for line in rendered.lines() {
        let trimmed = line.trim_start();
        if let Some((number, function)) = trimmed.split_once(": ")
            && !number.is_empty()
            && number.bytes().all(|b| b.is_ascii_digit())
        {
            keep = !NOISE.iter().any(|n| function.starts_with(n));
        }
        if keep {
            out.push_str(line);
            out.push('\n');
        }
    }
    if out.is_empty() {
        out.push_str("  (no project frames; run with RUST_BACKTRACE=1 for the full stack)\n");
    }
    out
}

/// While alive, panics on this thread are captured rather than printed.
#[derive(Debug)]
pub struct Capturing(());

impl Capturing {
    /// Starts capturing on the current thread.
    pub fn start() -> Capturing {
        install();
        ACTIVE.with(|a| a.set(true));
        LAST.with(|l| l.borrow_mut().take());
        Capturing(())
    }

    /// The last captured panic (message, location and stack), if any; clears it.
    pub fn take(&self) -> Option<String> {
        LAST.with(|l| l.borrow_mut().take())
    }
}

impl Drop for Capturing {
    fn drop(&mut self) {
        ACTIVE.with(|a| a.set(false));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_message_and_location() {
        let capture = Capturing::start();
        let result = panic::catch_unwind(|| panic!("boom {}", 42));
        assert!(result.is_err());
        let text = capture.take().unwrap_or_default();
        assert!(text.contains("boom 42"), "{text}");
        assert!(text.contains("capture.rs"), "{text}");
        assert!(capture.take().is_none());
    }

    #[test]
    fn keeps_only_project_frames() {
        let rendered = "   0: std::panicking::begin_panic\n             at /rustc/x/std.rs:1:1\n   1: nvme_helper::mountinfo::parse_line\n             at ./nvme-helper/src/mountinfo.rs:10:5\n   2: rds_csi_fuzz::driver::runner::Worker::exec\n             at ./src/driver/runner.rs:1:1\n";
        let kept = own_frames(rendered);
        assert!(
            kept.contains("nvme_helper::mountinfo::parse_line"),
            "{kept}"
        );
        assert!(kept.contains("mountinfo.rs:10:5"), "{kept}");
        assert!(
            !kept.contains("begin_panic") && !kept.contains("Worker"),
            "{kept}"
        );
    }
}
