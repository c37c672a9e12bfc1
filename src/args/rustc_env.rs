//! Which environment variables travel with a rustc job, and which a server accepts:
//! what `env!` and rustc read, never credentials, never what changes how programs
//! start. No I/O.

/// Whether the client sends this environment variable with a job: what cargo sets
/// for `env!` and build scripts' results, and what changes rustc's output.
pub fn forwarded_env(name: &str) -> bool {
    (name.starts_with("CARGO_") && name != "CARGO_MAKEFLAGS" && !secret(name))
        || matches!(name, "OUT_DIR" | "RUSTC_BOOTSTRAP" | "SOURCE_DATE_EPOCH")
}

/// A variable that may hold a credential (a registry token): it never leaves the
/// machine; a crate that reads it (which the dep-info would say) compiles here.
fn secret(name: &str) -> bool {
    const WORDS: [&str; 5] = ["TOKEN", "SECRET", "PASSWORD", "CREDENTIAL", "PRIVATE_KEY"];
    name.starts_with("CARGO_REGISTRY_")
        || name.starts_with("CARGO_REGISTRIES_")
        || WORDS.iter().any(|w| name.contains(w))
}

/// Whether a server runs a job with this variable of the client's: anything but what
/// changes how programs start or where they look (`PATH`, `LD_*`, …), a jobserver, a
/// wrapper, swarmcc's and distcc's own settings, and the locale and terminal.
pub fn allowed_on_server(name: &str) -> bool {
    const EXACT: [&str; 16] = [
        "PATH",
        "HOME",
        "TMPDIR",
        "TMP",
        "TEMP",
        "SHELL",
        "IFS",
        "MAKEFLAGS",
        "MFLAGS",
        "CARGO_MAKEFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "_DISTCC_SAFEGUARD",
        "LANG",
        "TERM",
        "PWD",
    ];
    const PREFIXES: [&str; 8] = [
        "LD_", "DYLD_", "LC_", "DISTCC_", "SWARMCC_", "RUSTUP_", "GCONV", "MALLOC",
    ];
    !name.is_empty() && !EXACT.contains(&name) && !PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The variables a build script asked cargo to set for rustc (`cargo:rustc-env=K=V`
/// or `cargo::rustc-env=K=V` lines of its output, the file beside its `OUT_DIR`).
pub fn build_script_env(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|l| {
            l.strip_prefix("cargo::rustc-env=")
                .or_else(|| l.strip_prefix("cargo:rustc-env="))
        })
        .filter_map(|kv| kv.split_once('=').map(|(k, _)| k.to_owned()))
        .filter(|k| allowed_on_server(k) && !secret(k))
        .collect()
}

/// Whether a forwarded variable's value is a client path the server maps below its
/// job root (when the value is absolute; the caller checks that).
pub fn mapped_env(name: &str) -> bool {
    matches!(
        name,
        "OUT_DIR"
            | "CARGO_MANIFEST_DIR"
            | "CARGO_MANIFEST_PATH"
            | "CARGO_TARGET_TMPDIR"
            | "CARGO_RUSTC_CURRENT_DIR"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_scripts_rustc_env_is_read_and_dangerous_names_refused() {
        let out = "cargo:rustc-cfg=x\ncargo:rustc-env=STAMP=a=b\ncargo::rustc-env=V=1\n\
                   cargo:rustc-env=LD_PRELOAD=/evil.so\ncargo:warning=rustc-env=NO=1\n";
        assert_eq!(build_script_env(out), ["STAMP", "V"]);
        for no in [
            "PATH",
            "LD_LIBRARY_PATH",
            "CARGO_MAKEFLAGS",
            "DISTCC_HOSTS",
            "",
            "LC_ALL",
        ] {
            assert!(!allowed_on_server(no), "{no}");
        }
        for yes in ["CARGO_PKG_NAME", "OUT_DIR", "STAMP", "GIT_HASH"] {
            assert!(allowed_on_server(yes), "{yes}");
        }
    }

    #[test]
    fn environment() {
        for yes in [
            "CARGO_PKG_NAME",
            "CARGO_MANIFEST_DIR",
            "CARGO_CFG_UNIX",
            "OUT_DIR",
        ] {
            assert!(forwarded_env(yes), "{yes}");
        }
        for yes in ["RUSTC_BOOTSTRAP", "SOURCE_DATE_EPOCH"] {
            assert!(forwarded_env(yes), "{yes}");
        }
        for no in [
            "CARGO_MAKEFLAGS",
            "CARGO",
            "PATH",
            "HOME",
            "RUSTFLAGS",
            "cargo_pkg",
        ] {
            assert!(!forwarded_env(no), "{no}");
        }
        for yes in [
            "OUT_DIR",
            "CARGO_MANIFEST_DIR",
            "CARGO_MANIFEST_PATH",
            "CARGO_TARGET_TMPDIR",
            "CARGO_RUSTC_CURRENT_DIR",
        ] {
            assert!(mapped_env(yes) && forwarded_env(yes), "{yes}");
        }
        assert!(!mapped_env("CARGO_PKG_NAME"));
    }
}
