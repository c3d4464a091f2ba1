//! Measurement helpers for the testbed's benchmarks (`tests/benches/`): latency samples and
//! their nearest-rank percentiles, a process's memory read from `/proc/<pid>/status` and its
//! CPU time from `/proc/<pid>/stat`, an
//! HTTP/1.1 GET that keeps its connection open (so that timing a `/metrics` scrape does not
//! time a TCP connect as well), and what a command the simulated appliance logged was — its
//! verb, and whether a background task of the gateway (the session liveness check, the
//! capacity refresh) sends commands of its kind.
//!
//! Nothing here decides whether a target is met: the benchmarks do.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::http::Reply;
use crate::sim::Verb;
use crate::sim::parser::{self, Dialect};

/// Latencies of one kind of call.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    values: Vec<Duration>,
    sorted: bool,
}

impl Samples {
    pub fn new() -> Samples {
        Samples::default()
    }

    pub fn push(&mut self, d: Duration) {
        self.values.push(d);
        self.sorted = false;
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The nearest-rank `p`th percentile (`p` in 0..=100); zero when there are no samples.
    pub fn percentile(&mut self, p: f64) -> Duration {
        if self.values.is_empty() {
            return Duration::ZERO;
        }
        if !self.sorted {
            self.values.sort_unstable();
            self.sorted = true;
        }
        let n = self.values.len();
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        self.values[rank.clamp(1, n) - 1]
    }

    pub fn max(&self) -> Duration {
        self.values.iter().copied().max().unwrap_or_default()
    }
}

/// CPU time (user + system, every thread) the process `pid` (a number, or `self`) has used so
/// far, from `/proc/<pid>/stat`; `None` when the process is gone. The kernel counts it in clock
/// ticks, which Linux exports to user space at 100 per second on every architecture, so it
/// moves in steps of 10 ms: compare it over many calls, not one.
pub fn cpu_time(pid: &str) -> Option<Duration> {
    parse_stat_cpu(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn parse_stat_cpu(stat: &str) -> Option<Duration> {
    const TICKS_PER_SECOND: u64 = 100;
    // The command name, in parentheses, may hold spaces and parentheses: fields are counted
    // after the last closing one. utime and stime are fields 14 and 15 of the line, the 12th
    // and 13th after the name.
    let (_, after) = stat.rsplit_once(')')?;
    let mut fields = after.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis(
        (utime + stime) * 1000 / TICKS_PER_SECOND,
    ))
}

/// The value, in KiB, of field `key` (`VmRSS`, `VmHWM`) of `/proc/<pid>/status`; `None` when
/// the process is gone or has no such field.
pub fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kib(&text, key)
}

fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let (name, rest) = line.split_once(':')?;
        if name != key {
            return None;
        }
        let mut words = rest.split_whitespace();
        let value = words.next()?.parse().ok()?;
        (words.next() == Some("kB")).then_some(value)
    })
}

/// KiB as MiB with one decimal.
pub fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// An HTTP/1.1 client for one server that reuses its connection between requests, as
/// Prometheus does between scrapes. A request on a connection the server has closed is
/// retried once on a new one.
pub struct KeepAlive {
    addr: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
    /// TCP connections opened so far.
    pub connects: u32,
}

impl KeepAlive {
    pub fn new(addr: SocketAddr) -> KeepAlive {
        KeepAlive {
            addr,
            conn: None,
            connects: 0,
        }
    }

    /// GETs `path`, giving up after `timeout`.
    pub async fn get(&mut self, path: &str, timeout: Duration) -> std::io::Result<Reply> {
        tokio::time::timeout(timeout, async {
            let reused = self.conn.is_some();
            match self.exchange(path).await {
                Ok(r) => Ok(r),
                // The server may have closed an idle connection: one more try on a fresh one.
                Err(_) if reused => {
                    self.conn = None;
                    self.exchange(path).await
                }
                Err(e) => Err(e),
            }
        })
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "HTTP GET timed out"))?
    }

    async fn exchange(&mut self, path: &str) -> std::io::Result<Reply> {
        let mut conn = match self.conn.take() {
            Some(c) => c,
            None => {
                let s = TcpStream::connect(self.addr).await?;
                s.set_nodelay(true)?;
                self.connects += 1;
                BufReader::new(s)
            }
        };
        let req = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.addr);
        conn.get_mut().write_all(req.as_bytes()).await?;
        let (reply, keep) = read_response(&mut conn).await?;
        if keep {
            self.conn = Some(conn);
        }
        Ok(reply)
    }
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

async fn read_line<R: AsyncBufReadExt + Unpin>(r: &mut R) -> std::io::Result<String> {
    let mut line = String::new();
    if r.read_line(&mut line).await? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed mid-response",
        ));
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Reads one response; also says whether the connection may carry another request.
async fn read_response<R: AsyncBufReadExt + Unpin>(r: &mut R) -> std::io::Result<(Reply, bool)> {
    let status_line = read_line(r).await?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no HTTP status line"))?;
    let mut length = None;
    let mut chunked = false;
    let mut keep = !status_line.starts_with("HTTP/1.0");
    loop {
        let line = read_line(r).await?;
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        match name.as_str() {
            "content-length" => length = value.parse::<usize>().ok(),
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            "connection" => keep = !value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let size = read_line(r).await?;
            let size = size.split(';').next().unwrap_or_default().trim();
            let n = usize::from_str_radix(size, 16).map_err(|_| bad("bad chunk size"))?;
            if n == 0 {
                // Trailers, up to the empty line.
                while !read_line(r).await?.is_empty() {}
                break;
            }
            let start = body.len();
            body.resize(start + n, 0);
            r.read_exact(&mut body[start..]).await?;
            read_line(r).await?;
        }
    } else if let Some(n) = length {
        body.resize(n, 0);
        r.read_exact(&mut body).await?;
    } else {
        r.read_to_end(&mut body).await?;
        keep = false;
    }
    Ok((
        Reply {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        },
        keep,
    ))
}

/// Why a logged command was sent, as far as its text tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The gateway's per-session liveness check (`/system resource print`).
    Liveness,
    /// The gateway's background pool-capacity refresh (a print of the pool's disk by its
    /// mount point, or of the pool's directory entry).
    CapacityRefresh,
    /// Anything else: a call someone made.
    Other,
}

/// The verb of a logged command line as the simulator parses it (`disk-print`, `system`...),
/// `unparsed` when it does not parse, `none` when it has no verb.
pub fn verb_of(command: &str) -> String {
    match parser::parse(command, Dialect { serialize: true }) {
        Ok(script) => script
            .verb()
            .map_or_else(|| "none".to_string(), |v| v.as_str().to_string()),
        Err(_) => "unparsed".to_string(),
    }
}

/// Which kind of sender a logged command line looks like (see [`Origin`]); `pool` is the
/// pool's name (`storage-pool`).
pub fn origin_of(command: &str, pool: &str) -> Origin {
    let verb = parser::parse(command, Dialect { serialize: true })
        .ok()
        .and_then(|s| s.verb());
    match verb {
        Some(Verb::System) => Origin::Liveness,
        Some(Verb::DiskPrint) if command.contains("mount-point=") => Origin::CapacityRefresh,
        Some(Verb::FilePrint) if command.contains(&format!("name=\"{pool}\"")) => {
            Origin::CapacityRefresh
        }
        _ => Origin::Other,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn cpu_time_adds_user_and_system_ticks_after_an_odd_command_name() {
        // The fields of a real line, with a name holding a space and a parenthesis.
        let line = "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194560 2466 0 0 0 \
                    37 12 0 0 20 0 3 0 14383 12345 678 18446744073709551615";
        assert_eq!(parse_stat_cpu(line), Some(Duration::from_millis(490)));
        assert_eq!(parse_stat_cpu("4242 (cut short) S 1"), None);
        assert!(cpu_time("self").is_some());
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut s = Samples::new();
        assert_eq!(s.percentile(50.0), Duration::ZERO);
        for ms in (1..=100).rev() {
            s.push(Duration::from_millis(ms));
        }
        assert_eq!(s.percentile(50.0), Duration::from_millis(50));
        assert_eq!(s.percentile(99.0), Duration::from_millis(99));
        assert_eq!(s.percentile(100.0), Duration::from_millis(100));
        assert_eq!(s.percentile(0.0), Duration::from_millis(1));
        s.push(Duration::from_millis(500));
        assert_eq!(s.max(), Duration::from_millis(500));
        assert_eq!(s.percentile(100.0), Duration::from_millis(500));
    }

    #[test]
    fn reads_kib_fields_of_proc_status() {
        let status = "Name:\tx\nVmHWM:\t   2048 kB\nVmRSS:\t    1234 kB\nThreads:\t3\n";
        assert_eq!(parse_status_kib(status, "VmRSS"), Some(1234));
        assert_eq!(parse_status_kib(status, "VmHWM"), Some(2048));
        assert_eq!(parse_status_kib(status, "Threads"), None);
        assert_eq!(parse_status_kib(status, "VmSwap"), None);
        let own = status_kib(std::process::id(), "VmRSS").unwrap();
        assert!(own > 0);
    }

    /// Reads header lines up to the empty one.
    async fn skip_headers(r: &mut BufReader<TcpStream>) {
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).await.unwrap() <= 2 {
                return;
            }
        }
    }

    /// A server that answers every request on one connection, alternating a
    /// content-length body and a chunked one, and counts the connections it accepted.
    async fn server() -> (SocketAddr, tokio::task::JoinHandle<u32>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            let mut r = BufReader::new(s);
            let mut served = 0u32;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).await.unwrap() == 0 {
                    break;
                }
                skip_headers(&mut r).await;
                served += 1;
                let reply = if served % 2 == 1 {
                    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_string()
                } else {
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n".to_string()
                };
                r.get_mut().write_all(reply.as_bytes()).await.unwrap();
            }
            served
        });
        (addr, task)
    }

    #[tokio::test]
    async fn keep_alive_reuses_one_connection_for_both_body_framings() {
        let (addr, task) = server().await;
        let mut c = KeepAlive::new(addr);
        for _ in 0..3 {
            let a = c.get("/metrics", Duration::from_secs(5)).await.unwrap();
            assert_eq!((a.status, a.body.as_str()), (200, "hello"));
            let b = c.get("/metrics", Duration::from_secs(5)).await.unwrap();
            assert_eq!((b.status, b.body.as_str()), (200, "abcde"));
        }
        assert_eq!(c.connects, 1);
        drop(c);
        assert_eq!(task.await.unwrap(), 6);
    }

    #[tokio::test]
    async fn a_closing_server_costs_a_new_connection() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            for _ in 0..2 {
                let (s, _) = listener.accept().await.unwrap();
                let mut r = BufReader::new(s);
                let mut line = String::new();
                r.read_line(&mut line).await.unwrap();
                skip_headers(&mut r).await;
                r.get_mut()
                    .write_all(
                        b"HTTP/1.1 503 Busy\r\nConnection: close\r\nContent-Length: 2\r\n\r\nno",
                    )
                    .await
                    .unwrap();
            }
        });
        let mut c = KeepAlive::new(addr);
        for _ in 0..2 {
            let r = c.get("/", Duration::from_secs(5)).await.unwrap();
            assert_eq!((r.status, r.body.as_str()), (503, "no"));
        }
        assert_eq!(c.connects, 2);
    }

    #[test]
    fn commands_are_told_apart_by_verb_and_origin() {
        let pool = "storage-pool";
        assert_eq!(verb_of("/system resource print"), "system");
        assert_eq!(origin_of("/system resource print", pool), Origin::Liveness);
        let list = ":put [:serialize to=json [/disk print detail as-value where slot~\"^pvc-\"]]";
        assert_eq!(verb_of(list), "disk-print");
        assert_eq!(origin_of(list, pool), Origin::Other);
        let cap = "/disk print detail where mount-point=\"storage-pool\"";
        assert_eq!(verb_of(cap), "disk-print");
        assert_eq!(origin_of(cap, pool), Origin::CapacityRefresh);
        let dir = "/file print detail where name=\"storage-pool\"";
        assert_eq!(origin_of(dir, pool), Origin::CapacityRefresh);
        assert_eq!(
            origin_of("/file print detail where name=\"other\"", pool),
            Origin::Other
        );
        assert_eq!(
            origin_of("/disk remove [find slot=pvc-a]", pool),
            Origin::Other
        );
        assert_eq!(verb_of("/no such menu"), "unparsed");
    }
}
