//! What is generated from the source must be committed as generated, and the header must say what
//! each function returns.
//!
//! - `ffi/ferry.h` must match what cbindgen generates from `src/ffi` now. cbindgen does not expand
//!   macros, and `FerryStatus` is generated from the one status list (`status_table!` in
//!   `src/error.rs`), so it is handed the enum rendered from `FerryStatus::ALL` as an extra source.
//! - `golang/status_gen.go` (the Go `Status*` constants, names, messages and `Err*` sentinels) must
//!   match what the same list gives now.
//! - Every function in the header that returns a `FerryStatus` names in its `Errors:` line exactly
//!   the statuses `ferry::ffi::status::function_errors` lists for it.
//!
//! - `golang/ferry.h` is an identical copy of the header: the Go module compiles against it (a module
//!   zip holds only `golang/`, so the Go package cannot reach `ffi/`).
//! - The shared library's SONAME carries the ABI version the header states.
//!
//! `FERRY_UPDATE_HEADER=1 cargo test --test header` (or `make header`) rewrites the generated files.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ferry::ffi::status::{errors_of, function_errors};
use ferry::ffi::FerryStatus;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The comment lines of `text` as `prefix` + words, each line at most 100 columns (a longer word
/// gets a line of its own); a blank line in `text` stays a bare `prefix`.
fn comment(prefix: &str, text: &str) -> String {
    let mut out = String::new();
    for para in text.split('\n') {
        let mut line = prefix.trim_end().to_string();
        for w in para.split_whitespace() {
            let bare = line.len() <= prefix.trim_end().len();
            if !bare && line.len() + 1 + w.len() > 100 {
                out.push_str(&line);
                out.push('\n');
                line = prefix.trim_end().to_string();
            }
            line.push(' ');
            line.push_str(w);
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// `FerryStatus` as Rust source, for cbindgen: the enum's doc, then each status's doc line, variant
/// and value. Doc lines are wrapped to fit the header's 100 columns.
fn status_enum_source() -> String {
    let mut s =
        String::from("// Rendered by tests/header.rs from FerryStatus::ALL; read only by cbindgen.\n");
    s.push_str(&comment("/// ", FerryStatus::DOC));
    s.push_str("#[repr(u32)]\npub enum FerryStatus {\n");
    for &st in FerryStatus::ALL {
        // Indented as the header indents variants, so the wrapped lines fit there too.
        s.push_str(&comment("  /// ", st.doc()));
        writeln!(s, "    {:?} = {},", st, st as u32).unwrap();
    }
    s.push_str("}\n");
    s
}

/// The header as cbindgen generates it now (once per test process).
fn fresh_header() -> &'static str {
    static HEADER: OnceLock<String> = OnceLock::new();
    HEADER.get_or_init(|| {
        let shim = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ferry_status_enum.rs");
        std::fs::write(&shim, status_enum_source()).expect("write the rendered FerryStatus");
        let config =
            cbindgen::Config::from_file(root().join("ffi/cbindgen.toml")).expect("read ffi/cbindgen.toml");
        let bindings = cbindgen::Builder::new()
            .with_crate(root())
            .with_src(&shim)
            .with_config(config)
            .generate()
            .expect("cbindgen could not generate the header");
        let mut out = Vec::new();
        bindings.write(&mut out);
        String::from_utf8(out).expect("header is UTF-8")
    })
}

/// Go's spelling of a status name: `INVALID_HANDLE` is `InvalidHandle`, and initialisms stay in
/// capitals (`OK`, `ABI_MISMATCH` is `ABIMismatch`), as Go's naming rules ask.
fn go_name(name: &str) -> String {
    const INITIALISMS: &[&str] = &["ABI", "API", "CPU", "EOF", "ID", "IO", "OK"];
    name.split('_')
        .map(|w| {
            if INITIALISMS.contains(&w) {
                w.to_string()
            } else {
                let mut c = w.chars();
                c.next().map_or_else(String::new, |f| f.to_string() + &c.as_str().to_ascii_lowercase())
            }
        })
        .collect()
}

/// A doc line as the continuation of a Go sentence ("The id is ..." becomes "the id is ...").
fn go_clause(doc: &str) -> String {
    let mut c = doc.chars();
    match (c.next(), c.next()) {
        (Some(f), Some(s)) if f.is_ascii_uppercase() && !s.is_ascii_uppercase() && s != '_' => {
            f.to_ascii_lowercase().to_string() + &doc[1..]
        }
        _ => doc.to_string(),
    }
}

/// A Go string literal. Status names and messages are printable ASCII, whose Rust escaping (`\"`,
/// `\\`) is Go's too.
fn go_string(s: &str) -> String {
    assert!(s.bytes().all(|b| (0x20..0x7f).contains(&b)), "{s:?}: keep status texts printable ASCII");
    format!("{s:?}")
}

/// `golang/status_gen.go` as the status list gives it now. Laid out so that gofmt leaves it as it is:
/// a blank line between documented specs and no keyed composite literals, so nothing is aligned.
fn go_status_source() -> String {
    let all = FerryStatus::ALL;
    let mut s = String::new();
    s.push_str(
        "// Code generated by tests/header.rs (make header) from the status list in src/error.rs. \
         DO NOT EDIT.\n\npackage ferry\n\n/*\n#include \"ferry.h\"\n*/\nimport \"C\"\n\n",
    );
    s.push_str(
        "// The status codes of ferry.h, in order. Values are stable: they are never renumbered, and\n\
         // new ones are only appended.\nconst (\n",
    );
    for (i, &st) in all.iter().enumerate() {
        if i > 0 {
            s.push('\n');
        }
        let go = format!("Status{}", go_name(st.name()));
        let doc = format!("{go} is FERRY_STATUS_{}: {}", st.name(), go_clause(st.doc()));
        s.push_str(&comment("\t// ", &doc));
        writeln!(s, "\t{go} Status = C.FERRY_STATUS_{}", st.name()).unwrap();
    }
    s.push_str(")\n\n");
    writeln!(
        s,
        "// numStatuses is the number of statuses: every Status below it has a name and a message.\n\
         const numStatuses = {}\n",
        all.len()
    )
    .unwrap();
    s.push_str(
        "// statusInfo holds each status's name (as in ferry.h, without the FERRY_STATUS_ prefix) and the\n\
         // message ferry_status_message returns for it, indexed by Status, so the Go side never needs a\n\
         // crossing to describe an error.\n\
         var statusInfo = [numStatuses]struct{ name, msg string }{\n",
    );
    for &st in all {
        writeln!(s, "\t{{{}, {}}},", go_string(st.name()), go_string(st.message())).unwrap();
    }
    s.push_str("}\n\n");
    s.push_str(
        "// The sentinel errors, one per failure status. Compare with errors.Is; they match any *Error\n\
         // with the same Status whatever its message.\nvar (\n",
    );
    for (i, &st) in all.iter().skip(1).enumerate() {
        if i > 0 {
            s.push('\n');
        }
        let go = go_name(st.name());
        writeln!(s, "\t// Err{go} matches every *Error whose Status is Status{go}.").unwrap();
        writeln!(s, "\tErr{go} error = &Error{{Status: Status{go}}}").unwrap();
    }
    s.push_str(")\n\n");
    s.push_str(
        "// statusSentinels holds the sentinel error of each status, indexed by Status (nil for StatusOK).\n\
         var statusSentinels = [numStatuses]error{\n\tnil,\n",
    );
    for &st in &all[1..] {
        writeln!(s, "\tErr{},", go_name(st.name())).unwrap();
    }
    s.push_str("}\n");
    s
}

/// Compares `fresh` with the committed file at `rel`, or rewrites it under FERRY_UPDATE_HEADER.
fn check_committed(rel: &str, fresh: &str) {
    let path = root().join(rel);
    if std::env::var_os("FERRY_UPDATE_HEADER").is_some() {
        std::fs::write(&path, fresh).unwrap_or_else(|e| panic!("write {rel}: {e}"));
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "{rel} is stale: run `make header` and commit the result.\n--- first difference at line {}",
        committed.lines().zip(fresh.lines()).position(|(a, b)| a != b).map_or(0, |i| i + 1)
    );
}

#[test]
fn committed_header_is_current() {
    check_committed("ffi/ferry.h", fresh_header());
    check_committed("golang/ferry.h", fresh_header());
}

#[test]
fn committed_go_statuses_are_current() {
    check_committed("golang/status_gen.go", &go_status_source());
}

#[test]
fn header_statuses_are_the_table() {
    // Each status appears in the header as `// <doc line>` then `FERRY_STATUS_<NAME> = <value>,`, in
    // order, and nothing else is in the enum: cbindgen's naming agrees with the NAME column.
    let h = fresh_header();
    let lines: Vec<&str> = h.lines().map(str::trim).collect();
    let mut got = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if let Some(rest) = l.strip_prefix("FERRY_STATUS_") {
            let (name, value) = rest.trim_end_matches(',').split_once(" = ").expect("NAME = value");
            let mut doc: Vec<&str> = Vec::new();
            for above in lines[..i].iter().rev() {
                match above.strip_prefix("// ") {
                    Some(text) => doc.insert(0, text),
                    None => break,
                }
            }
            got.push((name.to_string(), value.parse::<u32>().unwrap(), doc.join(" ")));
        }
    }
    let want: Vec<_> =
        FerryStatus::ALL.iter().map(|&s| (s.name().to_string(), s as u32, s.doc().to_string())).collect();
    assert_eq!(got, want);
}

/// A function declared in the header: its name, its return type and the comment just above it.
struct Decl {
    name: String,
    returns: String,
    comment: String,
}

fn declarations(h: &str) -> Vec<Decl> {
    let mut out = Vec::new();
    let mut comment: Vec<&str> = Vec::new();
    for line in h.lines() {
        if let Some(text) = line.strip_prefix("//") {
            comment.push(text.trim());
            continue;
        }
        let at_top = !line.starts_with([' ', '#', '}', '\t']) && !line.starts_with("typedef");
        if let (true, Some(open)) = (at_top, line.find('(')) {
            let head: Vec<&str> = line[..open].split_whitespace().collect();
            if let Some((name, ret)) = head.split_last() {
                let name = name.trim_start_matches('*');
                if name.starts_with("ferry_") {
                    out.push(Decl {
                        name: name.to_string(),
                        returns: ret.join(" "),
                        comment: comment.join(" "),
                    });
                }
            }
        }
        comment.clear();
    }
    out
}

/// The statuses an `Errors:` clause names, or why it cannot be read. The clause runs from
/// `Errors:` to the first full stop outside parentheses and backticks; the status names it gives
/// are the capitalised words outside them (parentheses explain, and may mention anything). "none"
/// says the function returns nothing but OK and PANIC.
fn errors_clause(comment: &str) -> Result<BTreeSet<String>, String> {
    let mut parts = comment.split("Errors:");
    parts.next();
    let clause = parts.next().ok_or("no `Errors:` line")?;
    if parts.next().is_some() {
        return Err("more than one `Errors:` line".into());
    }
    let (mut depth, mut tick) = (0i32, false);
    let mut words = Vec::new();
    let mut word = String::new();
    let mut ended = false;
    let chars: Vec<char> = clause.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let free = depth == 0 && !tick;
        if free && (c.is_ascii_alphanumeric() || c == '_') {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
        match c {
            '`' => tick = !tick,
            '(' if !tick => depth += 1,
            ')' if !tick => depth -= 1,
            '.' if free && chars.get(i + 1).map_or(true, |n| n.is_whitespace()) => {
                ended = true;
                break;
            }
            _ => {}
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    if !ended {
        return Err("the `Errors:` sentence does not end with a full stop".into());
    }
    let mut names = BTreeSet::new();
    let mut none = false;
    for w in words {
        if w == "none" {
            none = true;
        } else if w.len() > 1 && w.bytes().all(|b| b.is_ascii_uppercase() || b == b'_' || b.is_ascii_digit())
        {
            let known = FerryStatus::ALL.iter().any(|s| s.name() == w);
            if !known {
                return Err(format!("{w} is not a status name (write names without FERRY_STATUS_)"));
            }
            if w == "OK" || w == "PANIC" {
                return Err(format!("{w} is implied for every function; do not list it"));
            }
            if !names.insert(w.clone()) {
                return Err(format!("{w} named twice"));
            }
        }
    }
    match (none, names.is_empty()) {
        (true, false) => Err("`none` together with status names".into()),
        (false, true) => Err("names no status (write `Errors: none.`)".into()),
        _ => Ok(names),
    }
}

/// Functions whose comment need not carry an `Errors:` line, with the reason. They still have an
/// entry in `function_errors`.
const NO_ERRORS_LINE: &[(&str, &str)] = &[(
    "ferry_fault_panic_next",
    "test-only: declared only under FERRY_FAULT_INJECTION, never in a release library; returns OK",
)];

/// Checks every function of `header` against the per-function lists; returns the problems found.
fn function_problems(header: &str) -> Vec<String> {
    let decls = declarations(header);
    let mut problems = Vec::new();
    for d in &decls {
        let listed = errors_of(&d.name);
        if d.returns != "FerryStatus" {
            if listed.is_some() {
                problems.push(format!("{}: returns {}, yet has a status list", d.name, d.returns));
            }
            continue;
        }
        let Some(listed) = listed else {
            problems.push(format!("{}: no entry in ferry::ffi::status::function_errors", d.name));
            continue;
        };
        let want: BTreeSet<String> = listed.iter().map(|s| s.name().to_string()).collect();
        if NO_ERRORS_LINE.iter().any(|(n, _)| *n == d.name) && !d.comment.contains("Errors:") {
            continue;
        }
        match errors_clause(&d.comment) {
            Err(why) => problems.push(format!("{}: {why}", d.name)),
            Ok(got) if got != want => problems.push(format!(
                "{}: the header's Errors: line names {got:?}, function_errors lists {want:?}",
                d.name
            )),
            Ok(_) => {}
        }
    }
    let declared: BTreeSet<&str> = decls.iter().map(|d| d.name.as_str()).collect();
    for (name, _) in function_errors() {
        if !declared.contains(name) {
            problems.push(format!("{name}: listed in function_errors but not declared in the header"));
        }
    }
    problems
}

#[test]
fn every_function_names_exactly_the_statuses_it_can_return() {
    let decls = declarations(fresh_header());
    let with_status = decls.iter().filter(|d| d.returns == "FerryStatus").count();
    assert!(with_status >= 28, "only {with_status} functions returning FerryStatus found in the header");
    let problems = function_problems(fresh_header());
    assert!(problems.is_empty(), "header and function_errors disagree:\n  {}", problems.join("\n  "));
}

#[test]
fn the_errors_check_catches_a_missing_status() {
    // The check itself: drop a name from one function's line and it must complain.
    let h = fresh_header();
    let broken = h.replacen(
        "Errors: INVALID_HANDLE, NULL_POINTER, TABLE_FULL.",
        "Errors: INVALID_HANDLE, NULL_POINTER.",
        1,
    );
    assert_ne!(broken, h, "ferry_buffer_share's line changed: update this test");
    let problems = function_problems(&broken);
    assert!(problems.len() == 1 && problems[0].starts_with("ferry_buffer_share:"), "{problems:?}");
    let clause = |c: &str| errors_clause(c);
    assert!(clause("Errors: NULL_POINTR.").is_err(), "a misspelt name is refused");
    assert!(clause("Errors: NULL_POINTER").is_err(), "an unfinished sentence is refused");
    assert!(clause("Errors: OK, NULL_POINTER.").is_err(), "OK is implied");
    assert!(clause("No line at all.").is_err());
    assert_eq!(
        clause("Errors: CLOSED (not PANIC, `a.b` or TOO_LARGE), NULL_POINTER; then `x`. TABLE_FULL.")
            .unwrap(),
        BTreeSet::from(["CLOSED".to_string(), "NULL_POINTER".to_string()])
    );
    assert_eq!(clause("Errors: none.").unwrap(), BTreeSet::new());
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
    let header = std::fs::read_to_string(root().join("ffi/ferry.h")).expect("read ffi/ferry.h");
    let line = format!("#define FERRY_ABI_VERSION {abi}");
    assert!(header.lines().any(|l| l.trim() == line), "ffi/ferry.h lacks `{line}`");
}
