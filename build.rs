//! Gives the shared library its SONAME, tied to the C ABI version: `libferry.so.N` where N is
//! `FERRY_ABI_VERSION` (src/ffi). A library with another ABI has another SONAME, so the dynamic
//! linker never hands a program built against ABI N a library of ABI M.
//!
//! The version is read from the source rather than written twice; `FERRY_SONAME_MAJOR` passes it to
//! the crate's own targets, and tests/header.rs checks it against `ffi::buffer::FERRY_ABI_VERSION`.
use std::fs;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/ffi");
    let abi = abi_version(Path::new("src/ffi"));
    println!("cargo:rustc-env=FERRY_SONAME_MAJOR={abi}");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libferry.so.{abi}");
    }
}

/// The N of the one `pub const FERRY_ABI_VERSION: u32 = N;` line in the files of `dir`.
fn abi_version(dir: &Path) -> u32 {
    const DECL: &str = "pub const FERRY_ABI_VERSION: u32 = ";
    let mut found = Vec::new();
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("read a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    entries.sort();
    for path in entries {
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        for line in text.lines() {
            if let Some(rest) = line.trim().strip_prefix(DECL) {
                let n = rest.trim_end_matches(';').trim();
                let n = n.parse().unwrap_or_else(|_| {
                    panic!("{}: FERRY_ABI_VERSION = {n:?} is not a number", path.display())
                });
                found.push(n);
            }
        }
    }
    match found.as_slice() {
        [n] => *n,
        _ => panic!("expected exactly one `{DECL}N;` line in {}/*.rs, found {}", dir.display(), found.len()),
    }
}
