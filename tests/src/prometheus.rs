//! Debian's real Prometheus and promtool, driven by the testbed.
//!
//! [`Prometheus::start`] runs a `prometheus` server with a scrape config for the given
//! targets and a private data directory; [`Prometheus::query`] asks its HTTP API.
//! [`check_metrics`] pipes an exposition through `promtool check metrics`. Each fails
//! with a message naming the package to install when the tool is missing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::http;
use crate::process::{Process, free_port};

/// Why Prometheus or promtool could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PromError {
    #[error("{tool} is not installed: apt-get install prometheus")]
    Missing { tool: &'static str },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("running {tool}: {detail}")]
    Run { tool: &'static str, detail: String },
    #[error("prometheus did not become ready within {0:?}")]
    NotReady(Duration),
    #[error("query {query:?} failed: {detail}")]
    Query { query: String, detail: String },
}

fn find(tool: &'static str) -> Result<PathBuf, PromError> {
    for dir in ["/usr/bin", "/usr/local/bin", "/bin"] {
        let p = Path::new(dir).join(tool);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(PromError::Missing { tool })
}

/// A running Prometheus server; killed when dropped.
pub struct Prometheus {
    pub addr: SocketAddr,
    _process: Process,
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` (job name, address) every `interval`.
    pub async fn start(
        dir: &Path,
        targets: &[(&str, SocketAddr)],
        interval: Duration,
    ) -> Result<Prometheus, PromError> {
        let bin = find("prometheus")?;
        let mut cfg = format!(
            "global:\n  scrape_interval: {}ms\n  evaluation_interval: {}ms\nscrape_configs:\n",
            interval.as_millis(),
            interval.as_millis()
        );
        for (job, addr) in targets {
            cfg.push_str(&format!(
                "  - job_name: {job:?}\n    static_configs:\n      - targets: [\"{addr}\"]\n"
            ));
        }
        let cfg_path = dir.join("prometheus.yml");
        std::fs::write(&cfg_path, cfg).map_err(|source| PromError::Write {
            path: cfg_path.clone(),
            source,
        })?;
        let port = free_port().map_err(|e| PromError::Run {
            tool: "prometheus",
            detail: e.to_string(),
        })?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut cmd = Command::new(bin);
        cmd.arg(format!("--config.file={}", cfg_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let process = Process::spawn("prometheus", cmd).map_err(|e| PromError::Run {
            tool: "prometheus",
            detail: e.to_string(),
        })?;
        let prom = Prometheus {
            addr,
            _process: process,
        };
        let limit = Duration::from_secs(30);
        let start = Instant::now();
        loop {
            if let Ok(r) = http::get(addr, "/-/ready", Duration::from_secs(2)).await
                && r.status == 200
            {
                return Ok(prom);
            }
            if start.elapsed() > limit {
                return Err(PromError::NotReady(limit));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Runs an instant query and returns `(labels, value)` for each result.
    pub async fn query(&self, promql: &str) -> Result<Vec<(serde_json::Value, f64)>, PromError> {
        let fail = |detail: String| PromError::Query {
            query: promql.to_string(),
            detail,
        };
        let path = format!("/api/v1/query?query={}", url_encode(promql));
        let reply = http::get(self.addr, &path, Duration::from_secs(10))
            .await
            .map_err(|e| fail(e.to_string()))?;
        let v: serde_json::Value =
            serde_json::from_str(&reply.body).map_err(|e| fail(format!("{e}: {}", reply.body)))?;
        if v["status"] != "success" {
            return Err(fail(reply.body));
        }
        let results = v["data"]["result"].as_array().cloned().unwrap_or_default();
        Ok(results
            .into_iter()
            .filter_map(|r| {
                let value = r["value"][1].as_str()?.parse().ok()?;
                Some((r["metric"].clone(), value))
            })
            .collect())
    }

    /// Waits until every target reports `up == 1`.
    pub async fn wait_all_up(&self, targets: usize, within: Duration) -> Result<(), PromError> {
        let start = Instant::now();
        loop {
            let up = self.query("up == 1").await?;
            if up.len() >= targets {
                return Ok(());
            }
            if start.elapsed() > within {
                return Err(PromError::Query {
                    query: "up == 1".into(),
                    detail: format!("only {} of {targets} targets up after {within:?}", up.len()),
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Runs `promtool check metrics` on an exposition; `Ok` holds what it printed (lint
/// findings make it fail).
pub async fn check_metrics(exposition: &str) -> Result<String, PromError> {
    let bin = find("promtool")?;
    let mut child = Command::new(bin)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| PromError::Run {
            tool: "promtool",
            detail: e.to_string(),
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(exposition.as_bytes())
            .await
            .map_err(|e| PromError::Run {
                tool: "promtool",
                detail: e.to_string(),
            })?;
    }
    let out = child.wait_with_output().await.map_err(|e| PromError::Run {
        tool: "promtool",
        detail: e.to_string(),
    })?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(PromError::Run {
            tool: "promtool",
            detail: text,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::url_encode;

    #[test]
    fn encodes_promql() {
        assert_eq!(url_encode("up == 1"), "up%20%3D%3D%201");
        assert_eq!(url_encode("a{b=\"c\"}"), "a%7Bb%3D%22c%22%7D");
    }
}
