//! Compiles `proto/paycore/v1/*.proto` without `protoc`: `protox` parses the
//! files (it ships the Google well-known types) into a descriptor set, which
//! `tonic-prost-build` turns into messages, servers and clients. The encoded
//! descriptor set is also written out for the reflection service.

use std::error::Error;
use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    println!("cargo:rerun-if-changed={}", root.display());

    let public = proto_files(&root, &root.join("paycore/v1"))?;
    let admin = proto_files(&root, &root.join("paycore/admin/v1"))?;

    // What reflection serves on the public port: the public API and its
    // imports, not the admin service (which only listens on a Unix socket).
    let descriptors = protox::compile(&public, [&root])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("paycore_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;

    // Well-known types map to prost-types (prost-build's default extern path),
    // so only paycore's packages get generated code.
    //
    // Messages and servers first: the servers decode requests with
    // `crate::codec::RequestCodec`, for which an undecodable request is the
    // caller's mistake (INVALID_ARGUMENT), not tonic's INTERNAL.
    let everything = protox::compile(public.iter().chain(&admin), [&root])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(false)
        .codec_path("crate::codec::RequestCodec")
        .btree_map(".")
        .compile_fds(everything.clone())?;
    // Then the clients alone, with the stock codec (a response a client
    // cannot decode is not the client's fault), over the messages above.
    let clients = out_dir.join("clients");
    std::fs::create_dir_all(&clients)?;
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        .out_dir(&clients)
        .extern_path(".paycore.v1", "crate::pb")
        .extern_path(".paycore.admin.v1", "crate::admin::pb")
        .compile_fds(everything)?;
    Ok(())
}

/// The `.proto` files of `dir`, relative to `root`, sorted.
fn proto_files(root: &Path, dir: &Path) -> Result<Vec<PathBuf>, Box<dyn Error>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "proto"))
        .collect();
    files.sort();
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    Ok(files
        .iter()
        .map(|file| file.strip_prefix(root).map(Path::to_path_buf))
        .collect::<Result<_, _>>()?)
}
