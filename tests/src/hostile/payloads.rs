//! Hostile strings: each one built to escape from the field it is put in — RouterOS syntax
//! (`;`, `[`, `]`, `"`, `$`, `{`, `}`, `\`, backtick), `[find ...]` and `:put` fragments, line
//! breaks, NUL, path traversal (plain and encoded), ids that look right but are not (unicode
//! look-alikes, a right-to-left override, a valid id with a command appended), and 100 KiB.
//!
//! Every payload carries the case's marker (a token that appears nowhere else) at its start and
//! end, or a fresh uuid when the payload must look like an id: the sweep looks for these
//! needles in the appliance's command log and the mount table afterwards.

/// This run's number (from the process id), so that two sweeps running at once on one machine
/// never take each other's markers for their own.
pub fn run_tag() -> String {
    format!("qz{:04}", std::process::id() % 10_000)
}

/// The marker of case `n`: `qz<run, 4 digits><case, 4 digits>jx`, letters and digits only so
/// that it survives any escaping a log or the mount table applies.
pub fn marker(n: usize) -> String {
    format!("{}{:04}jx", run_tag(), n % 10_000)
}

/// Whether `text` holds a marker of this run.
pub fn has_any_marker(text: &str) -> bool {
    let tag = run_tag();
    text.match_indices(tag.as_str()).any(|(i, _)| {
        text.as_bytes()
            .get(i + tag.len()..i + tag.len() + 6)
            .is_some_and(|w| w[..4].iter().all(u8::is_ascii_digit) && w.ends_with(b"jx"))
    })
}

/// One hostile string, instantiated for a case.
#[derive(Debug, Clone)]
pub struct Payload {
    /// Which template (for the counts).
    pub label: &'static str,
    pub text: String,
    /// Substrings that must never reach the appliance or the mount table.
    pub needles: Vec<String>,
}

/// A template: a label and how to build the text from the marker and a fresh uuid.
pub struct Template {
    pub label: &'static str,
    build: fn(&str, &str) -> String,
    /// Whether the uuid is a needle too (the payload looks like an id).
    uuid_needle: bool,
}

const KIB_100: usize = 100 * 1024;

fn long(m: &str) -> String {
    let unit = ";[find]$\"{`\\";
    let mut s = String::with_capacity(KIB_100 + 64);
    s.push_str(m);
    while s.len() < KIB_100 {
        s.push_str(unit);
        if s.len() % 4096 < unit.len() {
            s.push_str(m);
        }
    }
    s.push_str(m);
    s
}

/// Every template.
pub const TEMPLATES: &[Template] = &[
    Template {
        label: "command separator",
        build: |m, _| format!("{m};/system reboot;{m}"),
        uuid_needle: false,
    },
    Template {
        label: "quote break",
        build: |m, _| format!("{m}\"; /system reboot; :put \"{m}"),
        uuid_needle: false,
    },
    Template {
        label: "bracket substitution",
        build: |m, _| format!("{m}[/system reboot]{m}"),
        uuid_needle: false,
    },
    Template {
        label: "find fragment",
        build: |m, _| format!("{m}\" [find where slot~\".*\"] \"{m}"),
        uuid_needle: false,
    },
    Template {
        label: ":put fragment",
        build: |m, _| format!("{m}[:put [/disk print]]{m}"),
        uuid_needle: false,
    },
    Template {
        label: "remove all",
        build: |m, _| format!("{m}\";/disk remove [find];/file remove [find]\"{m}"),
        uuid_needle: false,
    },
    Template {
        label: "dollar variable",
        build: |m, _| format!("{m}$pool${{rm}}$(reboot){m}"),
        uuid_needle: false,
    },
    Template {
        label: "braces script",
        build: |m, _| format!("{m}{{/system reboot}}{m}"),
        uuid_needle: false,
    },
    Template {
        label: "backslash escape",
        build: |m, _| format!("{m}\\\";/system reboot;\\\"\\{m}"),
        uuid_needle: false,
    },
    Template {
        label: "backtick",
        build: |m, _| format!("{m}`reboot`{m}"),
        uuid_needle: false,
    },
    Template {
        label: "newline",
        build: |m, _| format!("{m}\n/system reboot\n{m}"),
        uuid_needle: false,
    },
    Template {
        label: "carriage return",
        build: |m, _| format!("{m}\r/system reboot\r{m}"),
        uuid_needle: false,
    },
    Template {
        label: "NUL",
        build: |m, _| format!("{m}\0/system reboot{m}"),
        uuid_needle: false,
    },
    Template {
        label: "escape sequence",
        build: |m, _| format!("{m}\u{1b}[2J\u{7}{m}"),
        uuid_needle: false,
    },
    Template {
        label: "traversal",
        build: |m, _| format!("../../../../etc/{m}/../{m}"),
        uuid_needle: false,
    },
    Template {
        label: "absolute traversal",
        build: |m, _| format!("/../../etc/{m}/.."),
        uuid_needle: false,
    },
    Template {
        label: "encoded traversal",
        build: |m, _| format!("%2e%2e%2f%2e%2e%2f{m}%00{m}"),
        uuid_needle: false,
    },
    Template {
        label: "look-alike hyphen",
        build: |_, u| format!("pvc\u{2010}{u}"),
        uuid_needle: true,
    },
    Template {
        label: "fullwidth",
        build: |_, u| format!("\u{ff50}\u{ff56}\u{ff43}-{u}"),
        uuid_needle: true,
    },
    Template {
        label: "cyrillic look-alike",
        build: |_, u| format!("\u{440}v\u{441}-{u}"),
        uuid_needle: true,
    },
    Template {
        label: "right-to-left override",
        build: |m, u| format!("pvc-{u}\u{202e}{m}"),
        uuid_needle: true,
    },
    Template {
        label: "zero-width space",
        build: |_, u| format!("pvc-\u{200b}{u}"),
        uuid_needle: true,
    },
    Template {
        label: "upper-case id",
        build: |_, u| format!("PVC-{}", u.to_uppercase()),
        uuid_needle: true,
    },
    Template {
        label: "id with command",
        build: |_, u| format!("pvc-{u};/system reboot"),
        uuid_needle: true,
    },
    Template {
        label: "id with newline",
        build: |_, u| format!("pvc-{u}\n/disk remove [find]"),
        uuid_needle: true,
    },
    Template {
        label: "id with space",
        build: |_, u| format!("pvc-{u} "),
        uuid_needle: true,
    },
    Template {
        label: "glob",
        build: |m, _| format!("{m}*?{m}"),
        uuid_needle: false,
    },
    Template {
        label: "emoji",
        build: |m, _| format!("{m}\u{1f4a5}{m}"),
        uuid_needle: false,
    },
    Template {
        label: "100 KiB",
        build: |m, _| long(m),
        uuid_needle: false,
    },
];

impl Template {
    /// The payload for case `n`.
    pub fn instantiate(&self, n: usize) -> Payload {
        let m = marker(n);
        let u = uuid::Uuid::new_v4().hyphenated().to_string();
        let text = (self.build)(&m, &u);
        let mut needles = Vec::new();
        if text.contains(&m) {
            needles.push(m);
        }
        if self.uuid_needle {
            needles.push(u.clone());
            needles.push(u.to_uppercase());
        }
        Payload {
            label: self.label,
            text,
            needles,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_payload_has_a_needle_and_markers_are_found() {
        for (n, t) in TEMPLATES.iter().enumerate() {
            let p = t.instantiate(n);
            assert!(!p.needles.is_empty(), "{}", t.label);
            // The marker or the uuid is in the text as built; the other case of the uuid is
            // looked for too, in case something on the way changes the case.
            assert!(
                p.needles.iter().any(|n| p.text.contains(n.as_str())),
                "{}: {:?}",
                t.label,
                p.needles
            );
        }
        assert!(has_any_marker(&format!(
            "/disk print where slot={}",
            marker(42)
        )));
        assert!(!has_any_marker("/disk print where slot=pvc-1"));
        assert!(!has_any_marker(&run_tag()));
        assert_eq!(marker(7), format!("{}0007jx", run_tag()));
        assert_eq!(marker(7).len(), 12);
    }

    #[test]
    fn the_long_payload_is_100_kib_and_marked_throughout() {
        let p = TEMPLATES
            .iter()
            .find(|t| t.label == "100 KiB")
            .map(|t| t.instantiate(3))
            .unwrap_or_else(|| panic!("no 100 KiB template"));
        assert!(p.text.len() >= KIB_100, "{}", p.text.len());
        assert!(p.text.matches(marker(3).as_str()).count() > 10);
    }
}
