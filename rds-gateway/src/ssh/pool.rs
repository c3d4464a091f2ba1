//! The pool of SSH sessions every RouterOS command goes through.
//!
//! - Up to `max_sessions` sessions; the first is kept up at all times, more are opened when every
//!   open session already runs `channels_per_session` commands and commands are waiting.
//! - Commands wait in a bounded FIFO queue (`queue_depth`); when it is full a command fails at
//!   once with [`TransportError::Overloaded`] (back-pressure instead of unbounded memory and
//!   latency). Every command has a deadline: the caller's, capped by `max_timeout`, or
//!   `default_timeout`.
//! - When no session is up and the last attempt failed, commands fail at once with
//!   [`TransportError::NotConnected`] and the reason; while a first attempt (or the reconnect
//!   after a lost session) is under way they wait in the queue.
//! - A background supervisor connects and reconnects for ever, with exponential backoff and
//!   jitter; an unreachable RDS at start is not an error. Each session has a monitor that runs
//!   the liveness command every `health_interval` and tears the session down when it fails or the
//!   connection drops. (The liveness command may use one channel above `channels_per_session`.)
//! - The connection state is published in a `watch` channel; gauges are computed from the same
//!   bookkeeping at scrape time.
//!
//! A command whose channel could not even be opened (its connection was already dead) was never
//! sent, so it is retried on another session within its deadline; a command that was sent is
//! never retried here, because only the caller knows whether running it twice is safe.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime};

use tokio::sync::{Notify, oneshot, watch};
use tracing::Instrument;

use super::backoff::Backoff;
use super::config::{ConfigError, SshConfig};
use super::deadline::effective_deadline;
use super::error::{Stage, TransportError};
use super::health;
use super::metrics::{self, Snapshot, Teardown, TransportMetrics};
use super::session::{ExecOutput, SshSession, check_line};
use super::state::{ConnectionState, DownReason};

/// Why the pool could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A setting cannot work.
    #[error("invalid RDS SSH setting {0}")]
    Config(#[from] ConfigError),
    /// The metrics could not be registered (names already taken in this registry).
    #[error("cannot register the RDS SSH metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// Called outside a tokio runtime.
    #[error("the RDS SSH pool must be started inside a tokio runtime")]
    NoRuntime,
}

/// A session that is up.
struct Live {
    id: u64,
    session: Arc<SshSession>,
    in_flight: usize,
}

/// A command waiting for a channel.
struct Waiter {
    id: u64,
    tx: oneshot::Sender<Result<Grant, TransportError>>,
}

/// The pool's bookkeeping (guarded by one mutex, never held across an await).
#[derive(Default)]
struct PoolState {
    sessions: Vec<Live>,
    waiters: VecDeque<Waiter>,
    next_id: u64,
    /// Attempts since the last success (the current one while `connecting`).
    attempt: u32,
    connecting: bool,
    /// Set only while no session is up.
    last_failure: Option<DownReason>,
    down_since: Option<SystemTime>,
    up_since: Option<SystemTime>,
    routeros_version: Option<String>,
    stopped: bool,
}

impl PoolState {
    fn next_id(&mut self) -> u64 {
        self.next_id = self.next_id.wrapping_add(1);
        self.next_id
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            connected: !self.sessions.is_empty(),
            sessions_open: self.sessions.len(),
            channels_in_use: self.sessions.iter().map(|l| l.in_flight).sum(),
            queued: self.waiters.len(),
        }
    }

    fn connection_state(&self) -> ConnectionState {
        let now = SystemTime::now();
        if !self.sessions.is_empty() {
            ConnectionState::Connected {
                since: self.up_since.unwrap_or(now),
                routeros_version: self.routeros_version.clone(),
            }
        } else if self.connecting {
            ConnectionState::Connecting {
                attempt: self.attempt.max(1),
            }
        } else if let Some(reason) = &self.last_failure {
            ConnectionState::Down {
                reason: reason.clone(),
                since: self.down_since.unwrap_or(now),
            }
        } else {
            ConnectionState::Connecting {
                attempt: self.attempt.saturating_add(1),
            }
        }
    }

    /// The least busy session with a free channel.
    fn free_session(&self, per_session: usize) -> Option<usize> {
        self.sessions
            .iter()
            .enumerate()
            .filter(|(_, l)| l.in_flight < per_session && !l.session.is_closed())
            .min_by_key(|(_, l)| l.in_flight)
            .map(|(i, _)| i)
    }

    fn fail_waiters(&mut self, err: &TransportError) {
        for w in self.waiters.drain(..) {
            let _ = w.tx.send(Err(err.clone()));
        }
    }
}

/// The right to run one command on one session; dropping it frees the channel slot.
struct Grant {
    pool: Option<Arc<Inner>>,
    id: u64,
    session: Arc<SshSession>,
}

impl Grant {
    /// Forgets the slot without releasing it (the caller undoes the accounting itself).
    fn disarm(mut self) {
        self.pool = None;
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.release(self.id);
        }
    }
}

/// Removes a waiter that gave up (deadline or a dropped caller) from the queue.
struct WaiterGuard<'a> {
    pool: &'a Arc<Inner>,
    id: u64,
}

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        let mut st = self.pool.lock();
        st.waiters.retain(|w| w.id != self.id);
    }
}

struct Inner {
    config: SshConfig,
    address: String,
    state: Mutex<PoolState>,
    wake: Notify,
    status: watch::Sender<ConnectionState>,
    stop: watch::Sender<bool>,
    metrics: TransportMetrics,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish(&self, st: &PoolState) {
        let next = st.connection_state();
        self.status.send_if_modified(|current| {
            if *current == next {
                false
            } else {
                *current = next;
                true
            }
        });
    }

    /// Hands free channel slots to waiters, oldest first.
    fn dispatch(self: &Arc<Self>, st: &mut PoolState) {
        let per_session = self.config.channels_per_session;
        loop {
            match st.waiters.front() {
                None => return,
                Some(w) if w.tx.is_closed() => {
                    st.waiters.pop_front();
                    continue;
                }
                Some(_) => {}
            }
            let Some(index) = st.free_session(per_session) else {
                return;
            };
            let Some(waiter) = st.waiters.pop_front() else {
                return;
            };
            let Some(live) = st.sessions.get_mut(index) else {
                return;
            };
            live.in_flight += 1;
            let grant = Grant {
                pool: Some(self.clone()),
                id: live.id,
                session: live.session.clone(),
            };
            if let Err(returned) = waiter.tx.send(Ok(grant)) {
                // The waiter left between the check and the send: take the slot back here,
                // without the grant's drop (which would lock the state again).
                if let Ok(grant) = returned {
                    grant.disarm();
                }
                live.in_flight = live.in_flight.saturating_sub(1);
            }
        }
    }

    fn release(self: &Arc<Self>, id: u64) {
        let mut st = self.lock();
        if let Some(live) = st.sessions.iter_mut().find(|l| l.id == id) {
            live.in_flight = live.in_flight.saturating_sub(1);
        }
        self.dispatch(&mut st);
    }

    /// Takes a slot at once when nobody is waiting, else joins the queue.
    async fn acquire(self: &Arc<Self>, deadline: Instant) -> Result<Grant, TransportError> {
        let (id, mut rx) = {
            let mut st = self.lock();
            if st.stopped {
                return Err(stopped());
            }
            if st.waiters.is_empty()
                && let Some(index) = st.free_session(self.config.channels_per_session)
                && let Some(live) = st.sessions.get_mut(index)
            {
                live.in_flight += 1;
                return Ok(Grant {
                    pool: Some(self.clone()),
                    id: live.id,
                    session: live.session.clone(),
                });
            }
            if st.sessions.is_empty()
                && let Some(reason) = &st.last_failure
            {
                return Err(TransportError::NotConnected {
                    reason: reason.clone(),
                });
            }
            if st.waiters.len() >= self.config.queue_depth {
                return Err(TransportError::Overloaded {
                    depth: self.config.queue_depth,
                });
            }
            let id = st.next_id();
            let (tx, rx) = oneshot::channel();
            st.waiters.push_back(Waiter { id, tx });
            // More demand: the supervisor may open another session. Under load every command
            // queues, so it is woken only when it would act (not when the pool is full).
            if self.wants_session(&st) {
                self.wake.notify_one();
            }
            (id, rx)
        };
        let _guard = WaiterGuard { pool: self, id };
        tokio::select! {
            granted = &mut rx => match granted {
                Ok(result) => result,
                Err(_) => Err(stopped()),
            },
            () = tokio::time::sleep_until(deadline.into()) => {
                rx.close();
                // A grant that arrived at the last moment is released by its drop.
                drop(rx.try_recv());
                Err(TransportError::Timeout { after: Default::default(), stage: Stage::Queue })
            }
        }
    }

    /// Removes a session from the pool (idempotent); returns it when it was still there.
    fn remove_session(&self, id: u64, cause: Teardown) -> Option<Arc<SshSession>> {
        let removed = {
            let mut st = self.lock();
            let index = st.sessions.iter().position(|l| l.id == id)?;
            let live = st.sessions.remove(index);
            if st.sessions.is_empty() {
                st.up_since = None;
            }
            self.publish(&st);
            live.session
        };
        self.metrics.teardown(cause);
        tracing::warn!(
            rds.address = %self.address,
            cause = cause.label(),
            reason = removed.close_reason().unwrap_or_default(),
            "SSH session to the RDS torn down"
        );
        self.wake.notify_one();
        Some(removed)
    }

    fn mark_broken(self: &Arc<Self>, id: u64) {
        if let Some(session) = self.remove_session(id, Teardown::Broken) {
            tokio::spawn(async move { session.disconnect().await });
        }
    }

    /// Whether the supervisor should open a session now.
    fn wants_session(&self, st: &PoolState) -> bool {
        let live = st.sessions.len();
        if st.stopped || live >= self.config.max_sessions {
            false
        } else if live == 0 {
            true
        } else {
            !st.waiters.is_empty()
                && st
                    .sessions
                    .iter()
                    .all(|l| l.in_flight >= self.config.channels_per_session)
        }
    }

    /// One connection attempt: connect, log in, run the liveness command once.
    async fn connect_one(&self) -> Result<(SshSession, Option<String>), TransportError> {
        let after = self.config.connect_timeout;
        let attempt = async {
            let session = SshSession::connect(&self.config).await?;
            let command = &self.config.health_command;
            let version = health::probe(&session, command, self.config.health_timeout)
                .await
                .map_err(|e| TransportError::Protocol {
                    address: self.address.clone(),
                    detail: format!("the health command {command:?} failed on a new session: {e}"),
                })?;
            Ok((session, version))
        };
        match tokio::time::timeout(after, attempt).await {
            Ok(result) => result,
            Err(_) => Err(TransportError::Timeout {
                after,
                stage: Stage::Connect,
            }),
        }
    }

    async fn supervise(self: Arc<Self>) {
        let mut stop = self.stop.subscribe();
        let mut backoff = Backoff::new(self.config.backoff);
        loop {
            if *stop.borrow() {
                break;
            }
            let attempt = {
                let mut st = self.lock();
                let wanted = self.wants_session(&st);
                if wanted {
                    st.connecting = true;
                    st.attempt = st.attempt.saturating_add(1);
                    self.publish(&st);
                }
                wanted.then_some(st.attempt)
            };
            let Some(attempt) = attempt else {
                tokio::select! {
                    () = self.wake.notified() => {}
                    _ = stop.changed() => {}
                }
                continue;
            };
            let result = tokio::select! {
                r = self.connect_one() => r,
                _ = stop.changed() => break,
            };
            match result {
                Ok((session, version)) => {
                    backoff.reset();
                    self.metrics.reconnect(true);
                    let session = Arc::new(session);
                    let (id, open) = {
                        let mut st = self.lock();
                        let id = st.next_id();
                        st.sessions.push(Live {
                            id,
                            session: session.clone(),
                            in_flight: 0,
                        });
                        st.connecting = false;
                        st.attempt = 0;
                        st.last_failure = None;
                        st.down_since = None;
                        if st.up_since.is_none() {
                            st.up_since = Some(SystemTime::now());
                        }
                        if version.is_some() {
                            st.routeros_version = version.clone();
                        }
                        self.dispatch(&mut st);
                        self.publish(&st);
                        (id, st.sessions.len())
                    };
                    tracing::info!(
                        rds.address = %self.address,
                        routeros.version = version.as_deref().unwrap_or("unknown"),
                        sessions = open,
                        attempt,
                        "SSH session to the RDS is up"
                    );
                    tokio::spawn(self.clone().monitor(id, session));
                }
                Err(err) => {
                    self.metrics.reconnect(false);
                    let reason = DownReason::from_error(&err, &self.address);
                    let delay = backoff.next_delay();
                    let open = {
                        let mut st = self.lock();
                        st.connecting = false;
                        if st.sessions.is_empty() {
                            st.last_failure = Some(reason.clone());
                            if st.down_since.is_none() {
                                st.down_since = Some(SystemTime::now());
                            }
                            st.fail_waiters(&TransportError::NotConnected {
                                reason: reason.clone(),
                            });
                        }
                        self.publish(&st);
                        st.sessions.len()
                    };
                    tracing::warn!(
                        rds.address = %self.address,
                        reason = reason.label(),
                        sessions = open,
                        attempt,
                        retry_in = ?delay,
                        "cannot open an SSH session to the RDS: {reason}"
                    );
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        _ = stop.changed() => break,
                    }
                }
            }
        }
        let mut st = self.lock();
        st.stopped = true;
        st.fail_waiters(&stopped());
    }

    /// Watches one session: liveness command every interval, teardown on failure or drop.
    async fn monitor(self: Arc<Self>, id: u64, session: Arc<SshSession>) {
        let mut stop = self.stop.subscribe();
        let interval = self.config.health_interval;
        let cause = loop {
            if *stop.borrow() {
                break None;
            }
            tokio::select! {
                () = session.closed() => break Some(Teardown::Disconnected),
                _ = stop.changed() => break None,
                () = tokio::time::sleep(interval) => {
                    let probe = health::probe(
                        &session,
                        &self.config.health_command,
                        self.config.health_timeout,
                    )
                    .await;
                    if let Err(e) = probe {
                        tracing::warn!(
                            rds.address = %self.address,
                            "the RDS liveness command failed: {e}"
                        );
                        break Some(Teardown::HealthCheck);
                    }
                }
            }
        };
        if let Some(cause) = cause {
            self.remove_session(id, cause);
        } else {
            let mut st = self.lock();
            st.sessions.retain(|l| l.id != id);
        }
        session.disconnect().await;
    }
}

fn stopped() -> TransportError {
    TransportError::NotConnected {
        reason: DownReason::Other("the gateway's RDS connection pool is shutting down".into()),
    }
}

/// The first two words of a command line (`/disk add`), for spans and logs; the rest may hold
/// values that do not belong in logs.
fn verb(line: &str) -> String {
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The pool of SSH sessions to the RDS. Dropping it stops the background tasks and closes the
/// sessions.
pub struct SshPool {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SshPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshPool")
            .field("address", &self.inner.address)
            .field("state", &*self.inner.status.borrow())
            .finish()
    }
}

impl SshPool {
    /// Validates `config`, registers the metrics in `registry` and starts connecting in the
    /// background. Returns at once: an unreachable RDS shows in [`SshPool::state`], not here.
    /// Must be called inside a tokio runtime.
    pub fn start(config: SshConfig, registry: &prometheus::Registry) -> Result<Self, StartError> {
        config.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| StartError::NoRuntime)?;
        let metrics = TransportMetrics::register(registry)?;
        let (status, _) = watch::channel(ConnectionState::Connecting { attempt: 1 });
        let (stop, _) = watch::channel(false);
        if let super::host_key::HostKeyCheck::Pinned(pin) = &config.host_key
            && !pin.names_host(&config.address, config.port)
        {
            tracing::warn!(
                rds.address = %config.display_address(),
                "--rds-host-key names other hosts than --rds-address; the key still decides"
            );
        }
        let inner = Arc::new(Inner {
            address: config.display_address(),
            config,
            state: Mutex::new(PoolState::default()),
            wake: Notify::new(),
            status,
            stop,
            metrics,
        });
        let weak = Arc::downgrade(&inner);
        metrics::register_gauges(registry, move || {
            weak.upgrade().map(|inner| inner.lock().snapshot())
        })?;
        runtime.spawn(inner.clone().supervise());
        Ok(SshPool { inner })
    }

    /// The connection state, updated as it changes.
    pub fn state(&self) -> watch::Receiver<ConnectionState> {
        self.inner.status.subscribe()
    }

    /// Sessions up, channels in use and commands waiting, right now.
    pub fn snapshot(&self) -> Snapshot {
        self.inner.lock().snapshot()
    }

    /// Runs one RouterOS command line. `deadline` is the caller's (its gRPC deadline); it is
    /// capped by `max_timeout`, and `default_timeout` applies when there is none.
    pub async fn exec(
        &self,
        line: &str,
        deadline: Option<Instant>,
    ) -> Result<ExecOutput, TransportError> {
        check_line(line)?;
        let started = Instant::now();
        let deadline = effective_deadline(
            deadline,
            started,
            self.inner.config.default_timeout,
            self.inner.config.max_timeout,
        );
        let span = tracing::debug_span!("rds.exec", command = %verb(line), session = tracing::field::Empty);
        let result = self.exec_inner(line, deadline).instrument(span).await;
        result.map_err(|e| match e {
            TransportError::Timeout { stage, .. } => TransportError::Timeout {
                after: deadline.saturating_duration_since(started),
                stage,
            },
            other => other,
        })
    }

    async fn exec_inner(
        &self,
        line: &str,
        deadline: Instant,
    ) -> Result<ExecOutput, TransportError> {
        loop {
            if Instant::now() >= deadline {
                return Err(TransportError::Timeout {
                    after: Default::default(),
                    stage: Stage::Queue,
                });
            }
            let grant = self.inner.acquire(deadline).await?;
            tracing::Span::current().record("session", grant.id);
            match grant.session.open_channel(deadline).await {
                Ok(channel) => {
                    let result = grant.session.run(channel, line, deadline).await;
                    if matches!(result, Err(TransportError::Disconnected { .. })) {
                        self.inner.mark_broken(grant.id);
                    }
                    return result;
                }
                Err(failure) if failure.session_broken => {
                    // Never sent: try another session within the deadline.
                    self.inner.mark_broken(grant.id);
                }
                Err(failure) => return Err(failure.error),
            }
        }
    }
}

impl Drop for SshPool {
    fn drop(&mut self) {
        self.inner.stop.send_replace(true);
        let mut st = self.inner.lock();
        st.stopped = true;
        st.fail_waiters(&stopped());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verb_keeps_only_the_command_path() {
        assert_eq!(
            verb("/disk add slot=pvc-1 nvme-tcp-server-password=x"),
            "/disk add"
        );
        assert_eq!(verb("  /system   resource print"), "/system resource");
        assert_eq!(verb(""), "");
    }

    #[test]
    fn state_is_computed_from_bookkeeping() {
        let mut st = PoolState::default();
        assert_eq!(
            st.connection_state(),
            ConnectionState::Connecting { attempt: 1 }
        );
        st.connecting = true;
        st.attempt = 3;
        assert_eq!(
            st.connection_state(),
            ConnectionState::Connecting { attempt: 3 }
        );
        st.connecting = false;
        st.last_failure = Some(DownReason::Other("x".into()));
        st.down_since = Some(SystemTime::UNIX_EPOCH);
        assert_eq!(
            st.connection_state(),
            ConnectionState::Down {
                reason: DownReason::Other("x".into()),
                since: SystemTime::UNIX_EPOCH
            }
        );
        assert_eq!(st.snapshot(), Snapshot::default());
    }
}
