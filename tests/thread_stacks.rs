//! Every thread ferry starts gets an explicit stack size.
//!
//! ferry's threads run C and Go callbacks, so their stack size must be a decision, not whatever the
//! process default happens to be (8 MiB on glibc, often less elsewhere). This scans the non-test code
//! in src/ for thread creation: every `thread::Builder` must set `.stack_size(..)` before `.spawn`,
//! and plain `thread::spawn` / `thread::scope` (default stack) must not appear. The C test
//! c_tests/rel_signals.c checks the same at run time, from inside a worker and a sink thread.

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read src/") {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The file without its test module (`#[cfg(test)]` or `#[cfg(all(test, ...))]`, by convention the
/// last item in a file) and without comment lines.
fn production_code(text: &str) -> String {
    let end = ["#[cfg(test)]\nmod ", "#[cfg(all(test"]
        .iter()
        .filter_map(|m| text.find(m))
        .min()
        .unwrap_or(text.len());
    text[..end].lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

#[test]
fn every_thread_ferry_starts_has_an_explicit_stack_size() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files.sort();
    let (mut builders, mut bad) = (0, Vec::new());
    for f in &files {
        let code = production_code(&std::fs::read_to_string(f).expect("read source"));
        let name = f.strip_prefix(&root).unwrap().display().to_string();
        for plain in ["thread::spawn(", "thread::scope("] {
            if code.contains(plain) {
                bad.push(format!("{name}: {plain}..) uses the default stack size"));
            }
        }
        let mut rest = code.as_str();
        while let Some(i) = rest.find("Builder::new()") {
            builders += 1;
            let after = &rest[i..];
            let stmt_end = after.find(".spawn").unwrap_or(after.len());
            if !after[..stmt_end].contains(".stack_size(") {
                bad.push(format!("{name}: a thread::Builder without .stack_size(..) before .spawn"));
            }
            rest = &after["Builder::new()".len()..];
        }
    }
    assert!(bad.is_empty(), "threads without an explicit stack size:\n{}", bad.join("\n"));
    println!("thread_stacks: {builders} thread builders in src/, all with an explicit stack size");
}
