//! `testbed up` driven by a CSI client that is not ours: a Python program on gRPC's C core
//! (Debian's python3-grpcio and python3-grpc-tools), with stubs generated from csi.proto at
//! run time, walks a volume through its whole life over the sockets `testbed up` prints —
//! what csi-sanity or csc would do with grpc-go. Then SIGTERM stops the testbed, which must
//! exit 0 and leave nothing behind.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rds_csi_testbed::leaks;

const PYTHON: &str = "/usr/bin/python3";

fn require_tools() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test starts the testbed (loop devices, mounts): run it as root"
    );
    let ok = Command::new(PYTHON)
        .args(["-c", "import grpc, grpc_tools.protoc"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{PYTHON} cannot import grpc and grpc_tools: apt-get install python3-grpcio python3-grpc-tools"
    );
}

fn manifest(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[test]
fn an_external_grpc_client_drives_testbed_up_through_its_sockets() {
    require_tools();
    let dir = tempfile::tempdir().unwrap();
    // The state directory itself (not a directory below the root-only temporary one): the
    // frontend and the gateway run as nobody and must reach their sockets.
    let state = dir.path().to_path_buf();
    let kubelet = dir.path().join("kubelet");
    let node_socket = state.join("csi/node.sock");
    let ctrl_socket = state.join("csi/controller.sock");
    let mut up = Command::new(env!("CARGO_BIN_EXE_testbed"))
        .arg("--state-dir")
        .arg(&state)
        .arg("--kubelet-dir")
        .arg(&kubelet)
        .arg("--csi-socket")
        .arg(&node_socket)
        .arg("--controller-socket")
        .arg(&ctrl_socket)
        .arg("up")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(up.stdout.take().unwrap());
    let mut printed = String::new();
    let started_by = Instant::now() + Duration::from_secs(60);
    loop {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            let _ = up.kill();
            panic!("testbed up ended before it started:\n{printed}");
        }
        printed.push_str(&line);
        if line.starts_with("started in") {
            break;
        }
        assert!(
            Instant::now() < started_by,
            "testbed up did not start:\n{printed}"
        );
    }
    for socket in [&node_socket, &ctrl_socket] {
        assert!(
            printed.contains(&format!("unix://{}", socket.display())),
            "testbed up prints {}:\n{printed}",
            socket.display()
        );
    }

    let stubs = dir.path().join("stubs");
    std::fs::create_dir_all(&stubs).unwrap();
    let client = Command::new(PYTHON)
        .arg(manifest("tests/external/csi_client.py"))
        .arg(manifest("../proto/proto"))
        .arg(&stubs)
        .arg(&node_socket)
        .arg(&ctrl_socket)
        .arg(&kubelet)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&client.stdout);
    println!("{said}");

    kill(Pid::from_raw(up.id() as i32), Signal::SIGTERM).unwrap();
    let status = up.wait().unwrap();
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut out, &mut rest);
    println!("{rest}");

    assert!(
        client.status.success(),
        "the external client failed:\n{said}\n{}",
        String::from_utf8_lossy(&client.stderr)
    );
    for step in [
        "GetPluginInfo",
        "Probe",
        "CreateVolume without a name: INVALID_ARGUMENT",
        "CreateVolume: pvc-",
        "NodeStageVolume",
        "NodePublishVolume",
        "NodeGetVolumeStats",
        "teardown",
    ] {
        assert!(
            said.contains(&format!("ok   {step}")),
            "no {step} in:\n{said}"
        );
    }
    assert!(status.success(), "testbed up exited with {status}:\n{rest}");
    assert!(rest.contains("left behind: nothing"), "{rest}");
    let left = leaks::all(&state.join("appliance"), &kubelet);
    assert!(left.is_empty(), "left behind: {left:?}");
}
