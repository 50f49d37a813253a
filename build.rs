//! Generates the affect.v1 gRPC code. protoc comes from the `protoc-bin-vendored` crate so
//! that no system protoc is needed.
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; prost-build reads PROTOC from the environment.
    unsafe { std::env::set_var("PROTOC", protoc) };

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let protos = [
        "proto/affect/v1/affect.proto",
        "proto/affect/v1/recordings.proto",
    ];
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("affect_v1_descriptor.bin"))
        .compile_protos(&protos, &["proto"])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
