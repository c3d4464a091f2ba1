//! Checks shared by several targets. Each one panics with a message naming what broke; a panic is
//! what both harnesses record as a finding.
//!
//! - [`assert_log_safe`]: an error message meant for logs carries no raw control character (no
//!   forged log lines, no terminal escapes) and, where the module promises it, only ASCII and a
//!   bounded length.
//! - [`assert_same_syntax`] and [`assert_command_line_clean`]: a RouterOS command line built from
//!   validated values has exactly the syntax its builder wrote, whatever the values were.

/// Bytes that have a meaning in the RouterOS command language or could end, continue or redirect
/// a command line: `;[]"$\{}=~^'(),#`|&!<>*?@%+`, space, every control byte and every byte of a
/// non-ASCII character. A value that reaches a line must add none of them; the builder's own use
/// of them is checked by comparing with the same command built from plain placeholders.
static SYNTAX: [bool; 256] = syntax_table();

const fn syntax_table() -> [bool; 256] {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = i < 0x20 || i >= 0x7f;
        i += 1;
    }
    let special = b";[]\"$\\{}= ~^'(),#`|&!<>*?@%+";
    let mut j = 0;
    while j < special.len() {
        table[special[j] as usize] = true;
        j += 1;
    }
    table
}

/// True for a byte of RouterOS syntax (see [`SYNTAX`]).
pub fn is_routeros_syntax(b: u8) -> bool {
    SYNTAX[usize::from(b)]
}

/// The syntax bytes of `line`, in order.
pub fn syntax_of(line: &str) -> Vec<u8> {
    line.bytes().filter(|&b| is_routeros_syntax(b)).collect()
}

/// Panics unless `line` (built from fuzzed, validated values) has the same syntax bytes, in the
/// same order, as `placeholder_line` (the same command built from plain values).
pub fn assert_same_syntax(what: &str, line: &str, placeholder_line: &str) {
    if same_syntax(line.as_bytes(), placeholder_line.as_bytes()) {
        return;
    }
    panic!(
        "{what}: a validated value added RouterOS syntax to the command line\n  line:        {line:?}\n  placeholder: {placeholder_line:?}\n  syntax {:?} != {:?}",
        String::from_utf8_lossy(&syntax_of(line)),
        String::from_utf8_lossy(&syntax_of(placeholder_line))
    );
}

/// `syntax_of(a) == syntax_of(b)` without allocating (this runs for every command of every input).
fn same_syntax(a: &[u8], b: &[u8]) -> bool {
    let (mut i, mut j) = (0, 0);
    loop {
        while i < a.len() && !SYNTAX[usize::from(a[i])] {
            i += 1;
        }
        while j < b.len() && !SYNTAX[usize::from(b[j])] {
            j += 1;
        }
        match (a.get(i), b.get(j)) {
            (None, None) => return true,
            (Some(x), Some(y)) if x == y => {
                i += 1;
                j += 1;
            }
            _ => return false,
        }
    }
}

/// Panics if `line` holds a byte no builder ever writes (`$`, `;`, `\`, `{`, `}`, a control
/// byte, non-ASCII), an odd number of quotes, unbalanced brackets, or a `.`/`..` path segment
/// (a segment being what lies between `/`, spaces, quotes, `=` and brackets).
pub fn assert_command_line_clean(what: &str, line: &str) {
    let bytes = line.as_bytes();
    let (mut quotes, mut open, mut close) = (0usize, 0usize, 0usize);
    let mut segment_start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if matches!(b, b'$' | b';' | b'\\' | b'{' | b'}') || !(0x20..0x7f).contains(&b) {
            panic!("{what}: command line carries byte {b:#04x} at {i}: {line:?}");
        }
        match b {
            b'"' => quotes += 1,
            b'[' => open += 1,
            b']' => close += 1,
            _ => {}
        }
        if matches!(b, b' ' | b'"' | b'=' | b'[' | b']' | b'/') {
            check_segment(what, line, &bytes[segment_start..i]);
            segment_start = i + 1;
        }
    }
    check_segment(what, line, &bytes[segment_start..]);
    assert!(quotes % 2 == 0, "{what}: unbalanced quotes in {line:?}");
    assert!(open == close, "{what}: unbalanced brackets in {line:?}");
}

fn check_segment(what: &str, line: &str, segment: &[u8]) {
    assert!(
        segment != b".." && segment != b".",
        "{what}: path segment {:?} in {line:?}",
        String::from_utf8_lossy(segment)
    );
}

/// How strictly [`assert_log_safe`] checks a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogRule {
    /// No control characters (the message may quote non-ASCII text as it is).
    NoControl,
    /// Printable ASCII only and at most this many bytes (modules that escape and shorten what
    /// they quote).
    EscapedAscii {
        /// Longest message allowed.
        max_len: usize,
    },
}

/// Panics if an error message meant for logs breaks `rule`.
pub fn assert_log_safe(what: &str, message: &str, rule: LogRule) {
    if let Some(bad) = message.chars().find(|c| c.is_control()) {
        panic!(
            "{what}: error message carries the raw control character {bad:?}: {}",
            message.escape_debug()
        );
    }
    if let LogRule::EscapedAscii { max_len } = rule {
        if let Some(bad) = message.chars().find(|c| !c.is_ascii()) {
            panic!(
                "{what}: error message carries raw non-ASCII {bad:?}: {}",
                message.escape_debug()
            );
        }
        assert!(
            message.len() <= max_len,
            "{what}: error message is {} bytes long (limit {max_len}): {}...",
            message.len(),
            message.chars().take(200).collect::<String>()
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::panic::catch_unwind;

    #[test]
    fn same_syntax_accepts_plain_values_and_refuses_injected_ones() {
        assert_same_syntax(
            "ok",
            "/disk remove [find slot=pvc-1.2]",
            "/disk remove [find slot=a]",
        );
        for injected in [
            "/disk remove [find slot=a]; /system reboot",
            "/disk remove [find slot=a b]",
            "/disk remove [find slot=a\"]",
            "/disk remove [find slot=\u{ff3b}]",
        ] {
            assert!(
                catch_unwind(|| assert_same_syntax("x", injected, "/disk remove [find slot=a]"))
                    .is_err(),
                "{injected}"
            );
        }
    }

    #[test]
    fn clean_line_refuses_dollar_newline_and_dot_dot() {
        assert_command_line_clean("ok", "/file remove [find name=\"pool/pvc-1.img\"]");
        assert_command_line_clean("ok", "/disk add type=file file-path=/a/b.img slot=b");
        for bad in [
            "/file remove [find name=\"pool/../x.img\"]",
            "/disk add file-path=/a/./b.img",
            "/disk print where slot=$x",
            "/disk print\n/system reboot",
            "/disk print [find slot=a",
            "/disk print where name=\"a",
        ] {
            assert!(
                catch_unwind(|| assert_command_line_clean("x", bad)).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn log_safety_rules() {
        assert_log_safe("ok", "invalid slot \"a\\nb\"", LogRule::NoControl);
        assert_log_safe("ok", "slot \u{e9}", LogRule::NoControl);
        assert!(catch_unwind(|| assert_log_safe("x", "a\nb", LogRule::NoControl)).is_err());
        assert!(
            catch_unwind(|| assert_log_safe(
                "x",
                "slot \u{e9}",
                LogRule::EscapedAscii { max_len: 100 }
            ))
            .is_err()
        );
        assert!(
            catch_unwind(|| assert_log_safe("x", "aaaa", LogRule::EscapedAscii { max_len: 3 }))
                .is_err()
        );
    }
}
