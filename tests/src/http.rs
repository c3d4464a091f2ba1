//! A minimal HTTP/1.1 GET, enough to scrape `/metrics` and probe `/readyz` in tests
//! without pulling an HTTP client crate into the testbed.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Status code and body of a response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

/// GETs `path` from `addr`, giving up after `timeout`.
pub async fn get(addr: SocketAddr, path: &str, timeout: Duration) -> std::io::Result<Reply> {
    tokio::time::timeout(timeout, async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_string()
        };
        Ok(Reply { status, body })
    })
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "HTTP GET timed out"))?
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// The value of the first sample of `name` whose labels include all of `labels`.
pub fn sample(metrics: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let (lbl, value) = if let Some(r) = rest.strip_prefix('{') {
            r.split_once("} ")?
        } else {
            ("", rest.strip_prefix(' ')?)
        };
        labels
            .iter()
            .all(|(k, v)| lbl.split(',').any(|p| p == format!("{k}=\"{v}\"")))
            .then(|| value.trim().parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_samples() {
        let m = "# HELP x y\nfoo_total{a=\"1\",b=\"2\"} 3\nfoo_total{a=\"1\",b=\"3\"} 4\nbar 7\n";
        assert_eq!(sample(m, "foo_total", &[("b", "3")]), Some(4.0));
        assert_eq!(sample(m, "foo_total", &[("b", "9")]), None);
        assert_eq!(sample(m, "bar", &[]), Some(7.0));
    }

    #[test]
    fn dechunks() {
        assert_eq!(dechunk("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), "abcde");
    }
}
