//! The committed C header must match what cbindgen generates from the source right now, in both of
//! its places: `ffi/ferry.h` (installed for C users) and `golang/ferry.h`, the identical copy the Go
//! module compiles against (a module zip holds only `golang/`, so the Go package cannot reach
//! `ffi/`). `FERRY_UPDATE_HEADER=1 cargo test --test header` (or `make header`) rewrites both.

use std::path::Path;

/// Where the generated header is committed, relative to the repository root.
const COPIES: [&str; 2] = ["ffi/ferry.h", "golang/ferry.h"];

#[test]
fn committed_headers_are_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(root.join("ffi/cbindgen.toml")).expect("read ffi/cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(root)
        .with_config(config)
        .generate()
        .expect("cbindgen could not generate the header");
    let mut fresh = Vec::new();
    bindings.write(&mut fresh);
    let fresh = String::from_utf8(fresh).expect("header is UTF-8");
    if std::env::var_os("FERRY_UPDATE_HEADER").is_some() {
        for rel in COPIES {
            std::fs::write(root.join(rel), &fresh).unwrap_or_else(|e| panic!("write {rel}: {e}"));
        }
        return;
    }
    for rel in COPIES {
        let committed = std::fs::read_to_string(root.join(rel)).unwrap_or_default();
        assert!(
            committed == fresh,
            "{rel} is stale: run `make header` and commit ffi/ferry.h and golang/ferry.h.\n--- first difference at line {}",
            first_difference(&committed, &fresh)
        );
    }
}

/// The shared library's SONAME is `libferry.so.N` with N the ABI version (build.rs reads it from
/// src/ffi), and the header states the same version as a macro.
#[test]
fn soname_and_header_carry_the_abi_version() {
    let abi = ferry::ffi::buffer::FERRY_ABI_VERSION;
    assert_eq!(
        env!("FERRY_SONAME_MAJOR"),
        abi.to_string(),
        "build.rs read another ABI version than the crate's"
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let header = std::fs::read_to_string(root.join("ffi/ferry.h")).expect("read ffi/ferry.h");
    let line = format!("#define FERRY_ABI_VERSION {abi}");
    assert!(header.lines().any(|l| l.trim() == line), "ffi/ferry.h lacks `{line}`");
}

/// The 1-based number of the first line where `a` and `b` differ (one may end before the other).
fn first_difference(a: &str, b: &str) -> usize {
    let (mut la, mut lb) = (a.lines(), b.lines());
    let mut n = 1;
    loop {
        match (la.next(), lb.next()) {
            (Some(x), Some(y)) if x == y => n += 1,
            _ => return n,
        }
    }
}
