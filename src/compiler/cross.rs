//! Cross-compile names: the rewrite of argv[0] for the remote command, so that a server
//! of another architecture produces code for ours, and the native triple it needs.

use std::path::Path;

use super::basename;

/// `gcc`, `g++`, or either with a version suffix (`gcc-12`, `g++-13.2`).
fn is_gcc_name(n: &str) -> bool {
    ["gcc", "g++"].iter().any(|base| is_versioned(n, base))
}

/// `clang`, `clang++`, or either with a version suffix (`clang-17`).
fn is_clang_name(n: &str) -> bool {
    ["clang", "clang++"]
        .iter()
        .any(|base| is_versioned(n, base))
}

/// `n` is `base` or `base-<version>`, where a version is digits and dots. distcc
/// accepted any `gcc-*`, which also caught tools like `gcc-ar`.
fn is_versioned(n: &str, base: &str) -> bool {
    match n.strip_prefix(base) {
        Some("") => true,
        Some(rest) => rest.strip_prefix('-').is_some_and(|v| {
            v.starts_with(|c: char| c.is_ascii_digit())
                && v.chars().all(|c| c.is_ascii_digit() || c == '.')
        }),
        None => false,
    }
}

/// The triple gcc cross-compiler names use: vendor `pc` and `unknown` dropped
/// (`x86_64-pc-linux-gnu` → `x86_64-linux-gnu`).
fn gcc_prefix_triple(triple: &str) -> String {
    let mut parts: Vec<&str> = triple.split('-').collect();
    if parts.len() > 2 && matches!(parts[1], "pc" | "unknown") {
        parts.remove(1);
    }
    parts.join("-")
}

fn has_target_option(args: &[String]) -> bool {
    args.iter().any(|a| {
        a == "-target" || a == "--target" || a.starts_with("--target=") || a.starts_with("-target=")
    })
}

/// Cross-compile rewriting of argv[0] for the *remote* command, so that a server of
/// another architecture produces code for ours:
/// * `cc`/`c++` → what `resolve_generic` says they are, when that is gcc, g++, clang or
///   clang++ (optionally versioned); then the rules below apply to the new name;
/// * `gcc`, `gcc-12`, `g++`, `g++-12` → `<triple>-gcc…` (vendor `pc`/`unknown`
///   dropped) when `exists_on_path` finds that name, else unchanged;
/// * `clang`, `clang-17`, `clang++`… → `-target <triple>` inserted after argv[0]
///   unless `-target`, `--target` or `--target=…` is already there (distcc missed
///   `--target=`, and overrode cross builds: issues #416, #483);
/// * a compiler given as a path: a clang gets `-target` like a bare name (it is the
///   same binary on the server either way); `/usr/bin/gcc` and `/usr/bin/cc` are left
///   alone, because the user picked that exact file and a different name might not
///   exist or be allowed on the server;
/// * `enabled` false (`DISTCC_NO_REWRITE_CROSS` set) or an empty `triple`: unchanged.
pub fn rewrite_for_remote(
    argv: &[String],
    triple: &str,
    enabled: bool,
    exists_on_path: &dyn Fn(&str) -> bool,
    resolve_generic: &dyn Fn(&str) -> Option<String>,
) -> Vec<String> {
    let mut out = argv.to_vec();
    if !enabled || triple.is_empty() || out.is_empty() {
        return out;
    }
    let add_target = |out: &mut Vec<String>| {
        if !has_target_option(&out[1..]) {
            out.splice(1..1, ["-target".to_string(), triple.to_string()]);
        }
    };
    if out[0].contains('/') {
        if is_clang_name(basename(&out[0])) {
            add_target(&mut out);
        }
        return out;
    }
    if out[0] == "cc" || out[0] == "c++" {
        if let Some(real) = resolve_generic(&out[0]) {
            let real = basename(&real).to_string();
            if is_gcc_name(&real) || is_clang_name(&real) {
                out[0] = real;
            }
        }
    }
    if is_gcc_name(&out[0]) {
        let full = format!("{}-{}", gcc_prefix_triple(triple), out[0]);
        if exists_on_path(&full) {
            out[0] = full;
        }
    } else if is_clang_name(&out[0]) {
        add_target(&mut out);
    }
    out
}

/// The native GNU triple without vendor (`x86_64-linux-gnu`), from the target swarmcc
/// was built for. Limitation: it knows the Debian-style names only (`<arch>-linux-gnu`,
/// `arm-linux-gnueabihf`, `<arch>-linux-musl`); distributions with a vendor in their
/// compiler names (`x86_64-redhat-linux-gcc`) simply get no gcc rewrite, because that
/// name is then not on PATH. [`native_triple_from_compiler`] asks the compiler instead.
pub fn native_triple() -> String {
    let arch = match std::env::consts::ARCH {
        "x86" => "i686",
        "powerpc64" if cfg!(target_endian = "little") => "powerpc64le",
        "mips64" if cfg!(target_endian = "little") => "mips64el",
        "mips" if cfg!(target_endian = "little") => "mipsel",
        other => other,
    };
    let os = std::env::consts::OS;
    if os != "linux" {
        return format!("{arch}-{os}");
    }
    let env = if cfg!(target_env = "musl") {
        "musl"
    } else {
        "gnu"
    };
    if arch == "arm" {
        let abi = if cfg!(target_abi = "eabihf") {
            "eabihf"
        } else {
            "eabi"
        };
        return format!("arm-linux-{env}{abi}");
    }
    if arch == "mips64" || arch == "mips64el" {
        return format!("{arch}-linux-{env}abi64");
    }
    format!("{arch}-linux-{env}")
}

/// The triple a compiler reports with `-dumpmachine`, vendor `pc`/`unknown` dropped;
/// `None` if it cannot be run or says nothing. Runs the compiler (a few milliseconds),
/// so callers should do it at most once per process.
pub fn native_triple_from_compiler(compiler: &Path) -> Option<String> {
    let out = std::process::Command::new(compiler)
        .arg("-dumpmachine")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let t = String::from_utf8(out.stdout).ok()?;
    let t = t.trim();
    (!t.is_empty()).then(|| gcc_prefix_triple(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    const T: &str = "x86_64-linux-gnu";

    fn rw(args: &[&str], on_path: &[&str], generic: Option<&str>) -> Vec<String> {
        let exists = |n: &str| on_path.contains(&n);
        let resolve = |_: &str| generic.map(str::to_string);
        rewrite_for_remote(&v(args), T, true, &exists, &resolve)
    }

    #[test]
    fn gcc_gets_triple_prefix_when_present() {
        let on = ["x86_64-linux-gnu-gcc", "x86_64-linux-gnu-g++-12"];
        assert_eq!(
            rw(&["gcc", "-c", "a.c"], &on, None),
            v(&["x86_64-linux-gnu-gcc", "-c", "a.c"])
        );
        assert_eq!(
            rw(&["g++-12", "-c", "a.cc"], &on, None)[0],
            "x86_64-linux-gnu-g++-12"
        );
    }

    #[test]
    fn gcc_unchanged_when_prefixed_name_missing() {
        assert_eq!(
            rw(&["gcc", "-c", "a.c"], &[], None),
            v(&["gcc", "-c", "a.c"])
        );
        assert_eq!(rw(&["g++-13", "-c"], &[], None)[0], "g++-13");
    }

    #[test]
    fn gcc_like_tools_are_not_compilers() {
        let on = ["x86_64-linux-gnu-gcc-ar"];
        assert_eq!(rw(&["gcc-ar", "x"], &on, None)[0], "gcc-ar");
        assert_eq!(
            rw(&["gccx", "x"], &["x86_64-linux-gnu-gccx"], None)[0],
            "gccx"
        );
    }

    #[test]
    fn cc_resolves_to_gcc_then_prefixed() {
        let on = ["x86_64-linux-gnu-gcc"];
        assert_eq!(
            rw(&["cc", "-c", "a.c"], &on, Some("gcc"))[0],
            "x86_64-linux-gnu-gcc"
        );
        assert_eq!(
            rw(&["cc", "-c", "a.c"], &[], Some("/usr/bin/gcc"))[0],
            "gcc"
        );
        assert_eq!(rw(&["c++", "-c", "a.cc"], &[], Some("g++-12"))[0], "g++-12");
    }

    #[test]
    fn cc_unknown_target_stays_cc() {
        assert_eq!(rw(&["cc", "-c", "a.c"], &[], Some("tcc"))[0], "cc");
        assert_eq!(rw(&["cc", "-c", "a.c"], &[], None)[0], "cc");
    }

    #[test]
    fn cc_resolving_to_clang_gets_target() {
        assert_eq!(
            rw(&["cc", "-c", "a.c"], &[], Some("clang")),
            v(&["clang", "-target", T, "-c", "a.c"])
        );
    }

    #[test]
    fn clang_gets_target() {
        assert_eq!(
            rw(&["clang", "-c", "a.c"], &[], None),
            v(&["clang", "-target", T, "-c", "a.c"])
        );
        assert_eq!(
            rw(&["clang++-17", "-c", "a.cc"], &[], None)[1..3],
            v(&["-target", T])
        );
    }

    #[test]
    fn clang_existing_target_is_respected() {
        for t in [
            &["-target", "aarch64-linux-gnu"][..],
            &["--target=aarch64-linux-gnu"],
            &["--target", "arm"],
        ] {
            let mut args = vec!["clang", "-c", "a.c"];
            args.extend_from_slice(t);
            assert_eq!(rw(&args, &[], None), v(&args), "{t:?}");
        }
    }

    #[test]
    fn clang_full_path_gets_target_gcc_full_path_alone() {
        assert_eq!(
            rw(&["/usr/bin/clang-16", "-c", "a.c"], &[], None),
            v(&["/usr/bin/clang-16", "-target", T, "-c", "a.c"])
        );
        let on = ["x86_64-linux-gnu-gcc", "/usr/bin/x86_64-linux-gnu-gcc"];
        assert_eq!(
            rw(&["/usr/bin/gcc", "-c", "a.c"], &on, None)[0],
            "/usr/bin/gcc"
        );
        assert_eq!(
            rw(&["/usr/bin/cc", "-c", "a.c"], &on, Some("gcc"))[0],
            "/usr/bin/cc"
        );
    }

    #[test]
    fn rewrite_disabled_or_no_triple() {
        let exists = |_: &str| true;
        let resolve = |_: &str| Some("gcc".to_string());
        let a = v(&["cc", "-c", "a.c"]);
        assert_eq!(rewrite_for_remote(&a, T, false, &exists, &resolve), a);
        assert_eq!(rewrite_for_remote(&a, "", true, &exists, &resolve), a);
        assert!(rewrite_for_remote(&[], T, true, &exists, &resolve).is_empty());
    }

    #[test]
    fn vendor_is_dropped_for_gcc_prefix() {
        let exists = |n: &str| n == "x86_64-linux-gnu-gcc";
        let resolve = |_: &str| None;
        let a = v(&["gcc", "-c", "a.c"]);
        assert_eq!(
            rewrite_for_remote(&a, "x86_64-pc-linux-gnu", true, &exists, &resolve)[0],
            "x86_64-linux-gnu-gcc"
        );
        assert_eq!(
            gcc_prefix_triple("x86_64-unknown-linux-gnu"),
            "x86_64-linux-gnu"
        );
        assert_eq!(
            gcc_prefix_triple("x86_64-redhat-linux"),
            "x86_64-redhat-linux"
        );
        assert_eq!(gcc_prefix_triple("aarch64-linux-gnu"), "aarch64-linux-gnu");
    }

    #[test]
    fn versioned_names() {
        assert!(is_gcc_name("gcc-12") && is_gcc_name("g++-4.9") && is_gcc_name("g++"));
        assert!(!is_gcc_name("gcc-") && !is_gcc_name("gcc-ranlib") && !is_gcc_name("xgcc"));
        assert!(
            is_clang_name("clang++-17") && !is_clang_name("clang-cl") && !is_clang_name("clangd")
        );
    }

    #[test]
    fn native_triple_shape() {
        let t = native_triple();
        assert!(
            t.starts_with(std::env::consts::ARCH)
                || t.starts_with("i686")
                || t.starts_with("powerpc64le"),
            "{t}"
        );
        assert!(!t.contains("-pc-") && !t.contains("unknown"), "{t}");
        #[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
        assert_eq!(t, "x86_64-linux-gnu");
    }

    #[test]
    fn native_triple_from_missing_compiler_is_none() {
        assert_eq!(
            native_triple_from_compiler(Path::new("/nonexistent/cc")),
            None
        );
    }
}
