//! Hostile staging, target and volume paths: relative, `.`/`..`/`//` components, line breaks,
//! NUL, encoded and look-alike traversal, paths outside the kubelet directory, too long a path
//! or component, and paths that escape through symbolic links planted inside the kubelet
//! directory (a directory link pointing outside, a final-component link, a link to `/tmp`, a
//! chain of links). The links are made right before their case is sent.

use std::path::{Path, PathBuf};

use super::payloads::marker;

/// Something to create before a case is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Setup {
    Dir(PathBuf),
    Link { at: PathBuf, to: PathBuf },
}

impl Setup {
    /// Creates it (parents included); an existing one is left as is.
    pub fn apply(&self) -> Result<(), String> {
        match self {
            Setup::Dir(d) => {
                std::fs::create_dir_all(d).map_err(|e| format!("mkdir {}: {e}", d.display()))
            }
            Setup::Link { at, to } => {
                if let Some(parent) = at.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| format!("mkdir {}: {e}", parent.display()))?;
                }
                if std::fs::symlink_metadata(at).is_ok() {
                    return Ok(());
                }
                std::os::unix::fs::symlink(to, at)
                    .map_err(|e| format!("ln -s {} {}: {e}", to.display(), at.display()))
            }
        }
    }
}

/// One hostile path, instantiated for a case.
#[derive(Debug, Clone)]
pub struct PathPayload {
    pub label: &'static str,
    pub path: String,
    pub needles: Vec<String>,
    pub setup: Vec<Setup>,
}

/// Where the paths are built: the kubelet directory and a directory outside it.
#[derive(Debug, Clone)]
pub struct Roots {
    pub kubelet: PathBuf,
    /// A directory outside the kubelet directory (inside the sweep's own state directory).
    pub outside: PathBuf,
}

impl Roots {
    fn plugins(&self) -> PathBuf {
        self.kubelet
            .join("plugins/kubernetes.io/csi/rds.csi.srvlab.io")
    }

    fn pods(&self) -> PathBuf {
        self.kubelet.join("pods")
    }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// The labels of every path template, in order.
pub const LABELS: [&str; 22] = [
    "relative",
    "dot-dot",
    "dot",
    "double slash",
    "newline",
    "carriage return",
    "NUL",
    "tab",
    "outside the kubelet directory",
    "under /tmp",
    "encoded traversal",
    "look-alike slash",
    "command characters",
    "too long",
    "component too long",
    "root",
    "the kubelet directory itself",
    "symlinked directory escaping",
    "symlinked final component",
    "symlink to /tmp",
    "symlink chain escaping",
    "trailing dot-dot",
];

/// The path payload `label` for case `n`.
pub fn instantiate(label: &'static str, roots: &Roots, n: usize) -> PathPayload {
    let m = marker(n);
    let k = s(&roots.kubelet);
    let plugins = roots.plugins();
    let pods = roots.pods();
    let outside = roots.outside.join(format!("outside-{m}"));
    let mut setup = Vec::new();
    let path = match label {
        "relative" => format!("plugins/{m}/globalmount"),
        "dot-dot" => format!("{k}/plugins/../../../../tmp/{m}"),
        "dot" => format!("{k}/plugins/./{m}/globalmount"),
        "double slash" => format!("{k}//plugins/{m}/globalmount"),
        "newline" => format!("{k}/plugins/{m}\n/etc/{m}"),
        "carriage return" => format!("{k}/plugins/{m}\r/globalmount"),
        "NUL" => format!("{k}/plugins/{m}\0/etc"),
        "tab" => format!("{k}/plugins/{m}\t/globalmount"),
        "outside the kubelet directory" => {
            setup.push(Setup::Dir(outside.clone()));
            format!("{}/globalmount", s(&outside))
        }
        "under /tmp" => format!("/tmp/{m}-nowhere/globalmount"),
        "encoded traversal" => format!("{k}/plugins/%2e%2e/%2e%2e/{m}/globalmount"),
        "look-alike slash" => format!("{k}/plugins/{m}/..\u{2215}..\u{2215}etc"),
        "command characters" => format!("{k}/plugins/{m};$(reboot)`id`\"[find]/globalmount"),
        "too long" => format!("{k}/{m}/{}", "a/".repeat(2100)),
        "component too long" => format!("{}/{m}{}", s(&plugins), "b".repeat(300)),
        "root" => "/".to_string(),
        "the kubelet directory itself" => k.clone(),
        "symlinked directory escaping" => {
            let link = plugins.join(format!("evil-{m}"));
            setup.push(Setup::Dir(outside.clone()));
            setup.push(Setup::Link {
                at: link.clone(),
                to: outside.clone(),
            });
            format!("{}/globalmount", s(&link))
        }
        "symlinked final component" => {
            let dir = plugins.join(format!("final-{m}"));
            setup.push(Setup::Dir(outside.clone()));
            setup.push(Setup::Link {
                at: dir.join("globalmount"),
                to: outside.clone(),
            });
            format!("{}/globalmount", s(&dir))
        }
        "symlink to /tmp" => {
            let link = pods.join(format!("tmp-{m}"));
            setup.push(Setup::Link {
                at: link.clone(),
                to: PathBuf::from("/tmp"),
            });
            format!("{}/{m}-target", s(&link))
        }
        "symlink chain escaping" => {
            let first = pods.join(format!("chain-{m}"));
            let second = pods.join(format!("chain2-{m}"));
            setup.push(Setup::Dir(outside.join("volumes")));
            setup.push(Setup::Link {
                at: second.clone(),
                to: outside.clone(),
            });
            setup.push(Setup::Link {
                at: first.clone(),
                to: second,
            });
            format!("{}/volumes/mount", s(&first))
        }
        _ => format!("{k}/plugins/{m}/.."),
    };
    let needles = if path.contains(&m) {
        vec![m]
    } else {
        Vec::new()
    };
    PathPayload {
        label,
        path,
        needles,
        setup,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_label_builds_a_distinct_path_and_links_stay_in_their_roots() {
        let roots = Roots {
            kubelet: PathBuf::from("/k"),
            outside: PathBuf::from("/o"),
        };
        let mut seen = std::collections::BTreeSet::new();
        for (n, label) in LABELS.iter().enumerate() {
            let p = instantiate(label, &roots, n);
            assert!(seen.insert(p.path.clone()), "{label}: {}", p.path);
            for st in &p.setup {
                if let Setup::Link { at, .. } = st {
                    assert!(at.starts_with("/k"), "{label}: {at:?}");
                }
                if let Setup::Dir(d) = st {
                    assert!(d.starts_with("/o"), "{label}: {d:?}");
                }
            }
        }
        assert!(instantiate("too long", &roots, 1).path.len() > 4096);
        assert_eq!(
            instantiate("trailing dot-dot", &roots, 1).path,
            format!("/k/plugins/{}/..", marker(1))
        );
    }
}
