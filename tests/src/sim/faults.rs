//! Fault injection controlled at run time through `<root>/.rds-sim/faults.json`, re-read before
//! every command: a list of rules, each naming a command verb (or `any`), what goes wrong, and
//! how many more times (absent or 0: every time). Tests write the file with [`Faults::write`].

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::ast::Verb;
use super::error::SimError;
use super::state::{Paths, write_atomically};

/// What goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultAction {
    /// Close the connection before answering; the command is not applied.
    Drop,
    /// Answer `failure: not enough space`; the command is not applied.
    NoSpace,
    /// Never answer (until the client goes away); the command is not applied.
    Hang,
    /// Answer `bad command name ...`; the command is not applied.
    UnknownCommand,
    /// Answer `not enough permissions (9)`, as RouterOS does to a user whose group lacks a
    /// policy the command needs; the command is not applied.
    NotEnoughPermissions,
    /// Apply the command, then close the connection without answering.
    FailAfterApply,
}

/// One rule of `faults.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRule {
    /// A verb (`disk-add`, `disk-copy`, `disk-print`, `disk-set`, `disk-remove`, `file-remove`,
    /// `file-print`, `monitor`, `system`) or `any`.
    pub verb: String,
    pub action: FaultAction,
    /// How many more commands it applies to; absent or 0 means every one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
}

impl FaultRule {
    /// A rule that fires on every command with `verb`.
    pub fn always(verb: Verb, action: FaultAction) -> FaultRule {
        FaultRule {
            verb: verb.as_str().to_string(),
            action,
            times: None,
        }
    }

    /// A rule that fires on the next `times` commands with `verb`.
    pub fn times(verb: Verb, action: FaultAction, times: u32) -> FaultRule {
        FaultRule {
            verb: verb.as_str().to_string(),
            action,
            times: Some(times),
        }
    }

    fn applies_to(&self, verb: Option<Verb>) -> bool {
        self.verb == "any" || verb.is_some_and(|v| v.as_str() == self.verb)
    }
}

/// Reading and writing the faults file.
pub struct Faults;

impl Faults {
    /// Replaces the fault rules of the simulator rooted at `root`.
    pub fn write(root: &Path, rules: &[FaultRule]) -> Result<(), SimError> {
        let paths = Paths::new(root);
        let bytes = serde_json::to_vec_pretty(rules).map_err(|e| SimError::Faults {
            path: paths.faults(),
            detail: e.to_string(),
        })?;
        write_atomically(&paths.faults(), &bytes)
    }

    /// Removes every fault rule.
    pub fn clear(root: &Path) -> Result<(), SimError> {
        let path = Paths::new(root).faults();
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(SimError::Io { path, source }),
        }
    }

    /// The current rules (none when the file is absent).
    pub fn read(root: &Path) -> Result<Vec<FaultRule>, SimError> {
        let path = Paths::new(root).faults();
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| SimError::Faults {
                path,
                detail: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(source) => Err(SimError::Io { path, source }),
        }
    }

    /// The action of the first rule for `verb`, counting it down (and removing it when it is
    /// used up). Call with the state lock held.
    pub fn take(root: &Path, verb: Option<Verb>) -> Result<Option<FaultAction>, SimError> {
        let mut rules = Faults::read(root)?;
        let Some(pos) = rules.iter().position(|r| r.applies_to(verb)) else {
            return Ok(None);
        };
        let action = rules[pos].action;
        match rules[pos].times {
            None | Some(0) => {}
            Some(1) => {
                rules.remove(pos);
                Faults::write(root, &rules)?;
            }
            Some(n) => {
                rules[pos].times = Some(n - 1);
                Faults::write(root, &rules)?;
            }
        }
        Ok(Some(action))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rules_count_down_and_match_verbs() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(Paths::new(dir.path()).meta()).unwrap();
        let root = dir.path();
        assert_eq!(Faults::take(root, Some(Verb::DiskAdd)).unwrap(), None);
        Faults::write(
            root,
            &[
                FaultRule::times(Verb::DiskAdd, FaultAction::Drop, 2),
                FaultRule::always(Verb::DiskPrint, FaultAction::Hang),
            ],
        )
        .unwrap();
        assert_eq!(Faults::take(root, Some(Verb::DiskSet)).unwrap(), None);
        assert_eq!(Faults::take(root, None).unwrap(), None);
        for _ in 0..2 {
            assert_eq!(
                Faults::take(root, Some(Verb::DiskAdd)).unwrap(),
                Some(FaultAction::Drop)
            );
        }
        assert_eq!(Faults::take(root, Some(Verb::DiskAdd)).unwrap(), None);
        for _ in 0..3 {
            assert_eq!(
                Faults::take(root, Some(Verb::DiskPrint)).unwrap(),
                Some(FaultAction::Hang)
            );
        }
        Faults::clear(root).unwrap();
        assert_eq!(Faults::take(root, Some(Verb::DiskPrint)).unwrap(), None);
    }

    #[test]
    fn the_documented_json_shape_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        fs::create_dir_all(paths.meta()).unwrap();
        fs::write(
            paths.faults(),
            r#"[{"verb":"disk-add","action":"fail-after-apply","times":1},
                {"verb":"any","action":"unknown-command"},
                {"verb":"disk-copy","action":"no-space","times":0}]"#,
        )
        .unwrap();
        let rules = Faults::read(dir.path()).unwrap();
        assert_eq!(rules.len(), 3);
        assert_eq!(rules[0].action, FaultAction::FailAfterApply);
        assert_eq!(
            Faults::take(dir.path(), Some(Verb::DiskAdd)).unwrap(),
            Some(FaultAction::FailAfterApply)
        );
        // the "any" rule now comes first for every verb, even unparseable commands
        assert_eq!(
            Faults::take(dir.path(), None).unwrap(),
            Some(FaultAction::UnknownCommand)
        );
        fs::write(paths.faults(), "[{\"verb\":").unwrap();
        assert!(Faults::take(dir.path(), Some(Verb::DiskAdd)).is_err());
    }
}
