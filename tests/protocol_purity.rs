//! Keeps `src/protocol/` sans-IO: it fails if any file there mentions a module that
//! reaches sockets, files, processes, threads or clocks. `conn` is where I/O belongs.

use std::path::Path;

const FORBIDDEN: &[&str] = &[
    "std::net",
    "std::fs",
    "std::process",
    "std::thread",
    "std::time",
    "std::io",
    "std::os",
    "std::env",
    "tokio",
    "mio",
    "libc",
    "TcpStream",
    "UdpSocket",
    "UnixStream",
    "File::open",
    "Instant::",
    "SystemTime",
];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn protocol_module_does_no_io() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/protocol");
    let mut files = Vec::new();
    rust_files(&dir, &mut files);
    assert!(
        files.len() >= 5,
        "expected the protocol sources in {}",
        dir.display()
    );
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            // `//!` and `///` prose may name what the module leaves to others.
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            for word in FORBIDDEN {
                if contains_word(code, word) {
                    found.push(format!("{}:{}: {word}: {line}", file.display(), n + 1));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "I/O in the protocol module:\n{}",
        found.join("\n")
    );
}

/// A match that is not part of a longer identifier (so `mio` does not hit `premio`).
fn contains_word(line: &str, word: &str) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    line.match_indices(word).any(|(at, _)| {
        let before = line[..at].chars().next_back();
        let after = line[at + word.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

#[test]
fn the_check_catches_io() {
    assert!(contains_word("use std::net::TcpStream;", "std::net"));
    assert!(contains_word(
        "let t = std::time::Instant::now();",
        "std::time"
    ));
    assert!(!contains_word("let premio = 1;", "mio"));
}
