//! Numbers the way RouterOS reads and writes them: size arguments with binary unit suffixes,
//! spaced thousands (`53 687 091 200`), rounded human sizes (`50.0GiB`), bit rates and
//! durations given on the simulator's command line (`20ms`).

use std::time::Duration;

const KIB: u64 = 1 << 10;

/// Parses a size argument: plain bytes, or a whole number with a binary unit suffix
/// (`K`/`M`/`G`/`T`/`P`, upper or lower case, optionally followed by `iB` or `B`).
/// Returns `None` for anything else (fractions, overflow, unknown units, empty text).
pub fn parse_size(text: &str) -> Option<u64> {
    let digits_end = text
        .char_indices()
        .find(|(_, c)| !c.is_ascii_digit())
        .map_or(text.len(), |(i, _)| i);
    let (digits, unit) = text.split_at(digits_end);
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    let value: u64 = digits.parse().ok()?;
    let shift = match unit {
        "" | "B" => 0,
        "k" | "K" | "KiB" | "kiB" | "KB" | "kB" => 10,
        "m" | "M" | "MiB" | "MB" => 20,
        "g" | "G" | "GiB" | "GB" => 30,
        "t" | "T" | "TiB" | "TB" => 40,
        "p" | "P" | "PiB" | "PB" => 50,
        _ => return None,
    };
    value.checked_mul(1u64 << shift)
}

/// Formats an integer with a space between every group of three digits, as RouterOS prints
/// byte counts (`7681574174720` → `7 681 574 174 720`).
pub fn spaced(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// Formats a byte count the way RouterOS prints `file-size=`: one decimal in the largest binary
/// unit that the size strictly exceeds, so exactly 1 GiB prints as `1024.0MiB` and 1 TiB as
/// `1024.0GiB`. Sizes up to 1 KiB print as plain bytes (`512B`).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut unit_index = None;
    let mut unit = KIB;
    for (i, _) in UNITS.iter().enumerate() {
        if bytes > unit {
            unit_index = Some(i);
        } else {
            break;
        }
        match unit.checked_mul(KIB) {
            Some(next) => unit = next,
            None => break,
        }
    }
    match unit_index {
        None => format!("{bytes}B"),
        Some(i) => {
            let divisor = KIB << (10 * i);
            // Tenths, rounded half up, computed in integers so that the output is exact.
            let tenths = (u128::from(bytes) * 10 + u128::from(divisor) / 2) / u128::from(divisor);
            format!("{}.{}{}", tenths / 10, tenths % 10, UNITS[i])
        }
    }
}

/// Formats a bit rate as RouterOS's monitor commands do (`0bps`, `950kbps`, `12.8Mbps`).
pub fn bit_rate(bits_per_second: u64) -> String {
    const STEPS: [(u64, &str); 3] = [
        (1_000_000_000, "Gbps"),
        (1_000_000, "Mbps"),
        (1_000, "kbps"),
    ];
    for (scale, unit) in STEPS {
        if bits_per_second >= scale {
            let tenths = (bits_per_second * 10 + scale / 2) / scale;
            return if tenths.is_multiple_of(10) {
                format!("{}{unit}", tenths / 10)
            } else {
                format!("{}.{}{unit}", tenths / 10, tenths % 10)
            };
        }
    }
    format!("{bits_per_second}bps")
}

/// Formats an uptime like RouterOS (`1w2d3h4m5s`, `45s`).
pub fn uptime(d: Duration) -> String {
    let mut secs = d.as_secs();
    let mut out = String::new();
    for (unit, size) in [("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    if secs > 0 || out.is_empty() {
        out.push_str(&format!("{secs}s"));
    }
    out
}

/// Parses a duration given on the command line: a whole number followed by `us`, `ms`, `s`,
/// `m` or `h` (`20ms`, `1s`). A bare number means milliseconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let digits_end = text
        .char_indices()
        .find(|(_, c)| !c.is_ascii_digit())
        .map_or(text.len(), |(i, _)| i);
    let (digits, unit) = text.split_at(digits_end);
    let value: u64 = digits.parse().ok()?;
    match unit {
        "us" => Some(Duration::from_micros(value)),
        "" | "ms" => Some(Duration::from_millis(value)),
        "s" => Some(Duration::from_secs(value)),
        "m" => value.checked_mul(60).map(Duration::from_secs),
        "h" => value.checked_mul(3600).map(Duration::from_secs),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_accept_plain_bytes_and_binary_units() {
        assert_eq!(parse_size("1048576"), Some(1 << 20));
        assert_eq!(parse_size("10G"), Some(10 << 30));
        assert_eq!(parse_size("10g"), Some(10 << 30));
        assert_eq!(parse_size("1T"), Some(1 << 40));
        assert_eq!(parse_size("512M"), Some(512 << 20));
        assert_eq!(parse_size("4KiB"), Some(4096));
        assert_eq!(parse_size("3MiB"), Some(3 << 20));
        assert_eq!(parse_size("2GiB"), Some(2 << 30));
        assert_eq!(parse_size("1TiB"), Some(1 << 40));
    }

    #[test]
    fn sizes_reject_what_routeros_rejects() {
        for bad in [
            "",
            "G",
            "1.5G",
            "-1",
            "10X",
            "1 G",
            "99999999999999999999T",
            "1GiBB",
        ] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn spaced_thousands_match_the_appliance() {
        assert_eq!(spaced(0), "0");
        assert_eq!(spaced(512), "512");
        assert_eq!(spaced(4420), "4 420");
        assert_eq!(spaced(53_687_091_200), "53 687 091 200");
        assert_eq!(spaced(7_681_574_174_720), "7 681 574 174 720");
        assert_eq!(spaced(1_562_806_656), "1 562 806 656");
    }

    #[test]
    fn human_sizes_round_like_file_size() {
        assert_eq!(human_size(50 << 30), "50.0GiB");
        assert_eq!(human_size(100 << 30), "100.0GiB");
        assert_eq!(human_size(1 << 30), "1024.0MiB");
        assert_eq!(human_size(1 << 40), "1024.0GiB");
        assert_eq!(human_size(3 << 29), "1.5GiB");
        assert_eq!(human_size((1 << 30) + 1), "1.0GiB");
        assert_eq!(human_size(1024), "1024B");
        assert_eq!(human_size(1025), "1.0KiB");
        assert_eq!(human_size(u64::MAX), "16384.0PiB");
    }

    #[test]
    fn rates_and_uptimes() {
        assert_eq!(bit_rate(0), "0bps");
        assert_eq!(bit_rate(950_000), "950kbps");
        assert_eq!(bit_rate(12_800_000), "12.8Mbps");
        assert_eq!(bit_rate(2_000_000_000), "2Gbps");
        assert_eq!(uptime(Duration::from_secs(0)), "0s");
        assert_eq!(uptime(Duration::from_secs(694_861)), "1w1d1h1m1s");
        assert_eq!(uptime(Duration::from_secs(3600)), "1h");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("5"), Some(Duration::from_millis(5)));
        assert_eq!(parse_duration("7us"), Some(Duration::from_micros(7)));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("fast"), None);
        assert_eq!(parse_duration("ms"), None);
    }
}
