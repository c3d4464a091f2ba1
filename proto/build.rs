//! Generates the CSI v1 and internal service code with tonic's prost builder, using the
//! `protoc` shipped in the `protoc-bin-vendored` crate: no system protoc, no network.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/csi.proto",
        "proto/gateway.proto",
        "proto/helper.proto",
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_with_config(config, &protos, &["proto"])?;
    Ok(())
}
