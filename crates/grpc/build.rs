//! Compiles `proto/paycore/v1/*.proto` without `protoc`: `protox` parses the
//! files (it ships the Google well-known types) into a descriptor set, which
//! `tonic-prost-build` turns into messages, servers and clients. The encoded
//! descriptor set is also written out for the reflection service.

use std::error::Error;
use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let package_dir = root.join("paycore/v1");
    println!("cargo:rerun-if-changed={}", root.display());

    let mut files: Vec<PathBuf> = std::fs::read_dir(&package_dir)?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "proto"))
        .collect();
    files.sort();
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let relative: Vec<&Path> = files
        .iter()
        .map(|file| file.strip_prefix(&root))
        .collect::<Result<_, _>>()?;

    // Full set, imports included: what reflection serves.
    let descriptors = protox::compile(&relative, [&root])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("paycore_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;

    // Well-known types map to prost-types (prost-build's default extern path),
    // so only `paycore.v1` gets generated code.
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .btree_map(".")
        .compile_fds(descriptors)?;
    Ok(())
}
