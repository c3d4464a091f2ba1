//! One-shot mode for an OpenSSH `ForceCommand`: runs a single command line against the same
//! on-disk appliance the SSH server uses (under the same lock), so a stock `sshd` can stand in
//! for the simulator's own server.

use super::appliance::{Appliance, Reply};
use super::config::SimConfig;
use super::error::SimError;

/// What a one-shot run produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OneShot {
    /// Print this and exit 0.
    Output(String),
    /// A `drop` or `fail-after-apply` fault: exit without output, as a lost connection.
    Dropped,
    /// A `hang` fault: never answer.
    Hung,
}

/// Logs and runs `command` (received from `user`) on the appliance at `cfg.root`, with the
/// terminal width from `cfg.wrap_width`. Latency settings are honoured by sleeping.
pub fn run_once(cfg: SimConfig, user: &str, command: &str) -> Result<OneShot, SimError> {
    let width = cfg.wrap_width;
    let appliance = Appliance::open(cfg)?;
    let received = appliance.receive(user, command.as_bytes());
    let delay = appliance.latency(&received);
    if !delay.is_zero() {
        std::thread::sleep(delay);
    }
    Ok(match appliance.execute(&received, width) {
        Reply::Text(text) => OneShot::Output(text),
        Reply::Drop => OneShot::Dropped,
        Reply::Hang => OneShot::Hung,
    })
}
