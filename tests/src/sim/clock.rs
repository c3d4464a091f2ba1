//! Wall-clock formatting without a date library: the two date shapes RouterOS prints
//! (`2025-11-12 00:36:13` on newer versions, `jan/02/2025 10:30:45` on older ones) and the
//! RFC 3339 stamps of the command log. Everything is UTC.

use std::time::{SystemTime, UNIX_EPOCH};

/// A broken-down UTC time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub millis: u32,
}

impl Civil {
    /// Breaks a time down; times before 1970 are clamped to the epoch.
    pub fn from_system(t: SystemTime) -> Civil {
        let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs();
        let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
        let rem = secs % 86_400;
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: (rem % 3600 / 60) as u32,
            second: (rem % 60) as u32,
            millis: since.subsec_millis(),
        }
    }

    /// `2025-11-12 00:36:13`
    pub fn routeros_new(&self) -> String {
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// `jan/02/2025 10:30:45`
    pub fn routeros_old(&self) -> String {
        const MONTHS: [&str; 12] = [
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ];
        let name = MONTHS
            .get(self.month.saturating_sub(1) as usize)
            .copied()
            .unwrap_or("jan");
        format!(
            "{name}/{:02}/{:04} {:02}:{:02}:{:02}",
            self.day, self.year, self.hour, self.minute, self.second
        )
    }

    /// `2025-11-12T00:36:13.042Z`
    pub fn rfc3339(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.millis
        )
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (the well-known era-based conversion).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let year = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if month <= 2 { year + 1 } else { year }, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> Civil {
        Civil::from_system(UNIX_EPOCH + Duration::from_secs(secs))
    }

    #[test]
    fn known_dates() {
        assert_eq!(at(0).routeros_new(), "1970-01-01 00:00:00");
        // 2025-11-11 16:47:07 UTC
        assert_eq!(at(1_762_879_627).routeros_new(), "2025-11-11 16:47:07");
        assert_eq!(at(1_735_813_845).routeros_old(), "jan/02/2025 10:30:45");
        // a leap day
        assert_eq!(at(1_709_164_800).routeros_new(), "2024-02-29 00:00:00");
        assert_eq!(
            Civil::from_system(UNIX_EPOCH + Duration::from_millis(1_500)).rfc3339(),
            "1970-01-01T00:00:01.500Z"
        );
    }
}
