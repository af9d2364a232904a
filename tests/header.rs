//! The committed C header must match what cbindgen generates from the source right now.
//! `FERRY_UPDATE_HEADER=1 cargo test --test header` (or `make header`) rewrites it.

use std::path::Path;

#[test]
fn committed_header_is_current() {
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
    let path = root.join("ffi/ferry.h");
    if std::env::var_os("FERRY_UPDATE_HEADER").is_some() {
        std::fs::write(&path, &fresh).expect("write ffi/ferry.h");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "ffi/ferry.h is stale: run `make header` and commit the result.\n--- first difference at line {}",
        committed.lines().zip(fresh.lines()).position(|(a, b)| a != b).map_or(0, |i| i + 1)
    );
}
