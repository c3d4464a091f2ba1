//! `socket-knock`: tells whether a gRPC server on a unix socket serves the calling user.
//!
//! The privilege tests run it as another uid against the helper's and the frontend's
//! sockets. It connects, sends the HTTP/2 client preface and an empty SETTINGS frame, and
//! waits for the server's first bytes: a server that serves this user answers with its own
//! SETTINGS frame; one that refuses either cannot be connected to at all (the socket file's
//! mode) or closes the connection without a byte (its peer-uid check).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

/// Connects to a gRPC unix socket as the current user and reports whether it was served:
/// exit 0 "served", 2 "refused" (connect failed), 3 "closed" (the server hung up unheard).
#[derive(Debug, Parser)]
#[command(name = "socket-knock", version, about, long_about = None)]
struct Args {
    /// The unix socket to knock on.
    socket: PathBuf,
    /// How long to wait for the server's first bytes.
    #[arg(long, default_value = "3", value_parser = |s: &str| s.parse::<u64>().map(Duration::from_secs))]
    timeout: Duration,
}

/// The HTTP/2 connection preface and an empty SETTINGS frame (RFC 9113, 3.4 and 6.5).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

fn main() -> ExitCode {
    let args = Args::parse();
    let mut stream = match UnixStream::connect(&args.socket) {
        Ok(s) => s,
        Err(e) => {
            println!("refused: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = stream
        .set_read_timeout(Some(args.timeout))
        .and_then(|()| stream.write_all(PREFACE))
    {
        println!("closed: {e}");
        return ExitCode::from(3);
    }
    let mut first = [0u8; 9];
    match stream.read(&mut first) {
        Ok(n) if n > 0 => {
            println!(
                "served: {n} bytes, frame type {}",
                first.get(3).copied().unwrap_or(0)
            );
            ExitCode::SUCCESS
        }
        Ok(_) => {
            println!("closed: the server hung up without a byte");
            ExitCode::from(3)
        }
        Err(e) => {
            println!("closed: {e}");
            ExitCode::from(3)
        }
    }
}
