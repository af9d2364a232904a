//! Gives the shared library a SONAME so an installed libferry.so.0 is found by the dynamic linker.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "linux" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libferry.so.0");
    }
}
