//! Running short blocking system calls (mount, ioctl, sysfs and proc reads) from async code.
//!
//! Handing every such call to tokio's blocking pool costs two thread hand-offs per call, which
//! on a busy node (the helper shares it with kubelet and the workloads) adds milliseconds to
//! each operation, and each pool thread keeps its own allocator arena. On the multi-threaded
//! runtime the helper runs, the call instead runs in place on the current worker
//! (`block_in_place` lets the runtime move the worker's other tasks elsewhere); anywhere else
//! (a current-thread runtime in a test) it falls back to the blocking pool. The caller's span
//! stays current either way, so log lines and child spans keep their parent.

use crate::error::{HelperError, Result};

/// Runs `work`, which may block briefly, without stalling other tasks.
pub async fn run<T: Send + 'static>(
    operation: &'static str,
    target: impl std::fmt::Display,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_thread {
        return Ok(tokio::task::block_in_place(work));
    }
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(work))
        .await
        .map_err(|e| HelperError::Task {
            operation,
            target: target.to_string(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_in_place_on_the_multi_thread_runtime() {
        let here = std::thread::current().id();
        let there = run("testing", "x", move || std::thread::current().id())
            .await
            .unwrap();
        assert_eq!(here, there);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn falls_back_to_the_blocking_pool_elsewhere() {
        let here = std::thread::current().id();
        let there = run("testing", "x", move || std::thread::current().id())
            .await
            .unwrap();
        assert_ne!(here, there);
    }
}
