//! The process's resident memory, read from `/proc/self/status`, to catch inputs that make a
//! parser allocate without bound.

use std::fs;

/// Resident set size in KiB (`None` where `/proc` is not available).
pub fn vm_rss_kib() -> Option<u64> {
    parse_vm_rss(&fs::read_to_string("/proc/self/status").ok()?)
}

/// Reads the `VmRSS:` line of a `/proc/<pid>/status` text.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let value = line.strip_prefix("VmRSS:")?.trim();
    let number = value.strip_suffix("kB").unwrap_or(value).trim();
    number.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_vmrss_line() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmRSS:\t    1234 kB\nThreads: 2\n";
        assert_eq!(parse_vm_rss(status), Some(1234));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
    }

    #[test]
    fn grows_when_memory_is_touched() {
        let Some(before) = vm_rss_kib() else {
            return;
        };
        let block = vec![1u8; 64 << 20];
        let after = vm_rss_kib().unwrap_or(0);
        assert!(block.iter().all(|&b| b == 1));
        assert!(after >= before + 32 * 1024, "{before} -> {after}");
    }
}
