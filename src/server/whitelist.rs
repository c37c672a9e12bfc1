//! Which compile requests the server agrees to run: the compiler whitelist (distccd's
//! masquerade-directory rule), `DISTCC_CMDLIST`, the options that would run or load
//! foreign code or write outside the job, and where the real compiler is found.
//!
//! Every "no" is a [`Refusal`] with a one-line reason for the client; `serve` sends it.
//! Reading the environment and the command-list file happens once, at startup
//! (`daemon`); the checks here only look at the filesystem to see which whitelist
//! entries and compilers exist, so admins can add links without a restart.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::compiler::is_executable_file;
use crate::exit::ExitCode;

/// The directories whose entries make a compiler name acceptable, as distccd
/// (`/usr/lib/distcc`, Debian's `/usr/lib/distcc/bin`) plus our own.
pub const DEFAULT_WHITELIST_DIRS: &[&str] = &[
    "/usr/lib/distcc",
    "/usr/lib/distcc/bin",
    "/usr/lib/swarmcc/bin",
];

/// Why a request is not run. `reason` is one line, without the `swarmccd: ` prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: String,
    /// For the job log's `ret:` field.
    pub code: ExitCode,
}

impl Refusal {
    pub fn new(code: ExitCode, reason: impl Into<String>) -> Self {
        Refusal {
            reason: reason.into(),
            code,
        }
    }

    /// What the client gets in `SERR`.
    pub fn client_message(&self) -> String {
        format!("swarmccd: {}\n", self.reason)
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

/// A `DISTCC_CMDLIST` file: allowed compiler paths keyed by their last `numwords` path
/// components.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdList {
    /// Where it was loaded from, for messages.
    pub source: PathBuf,
    numwords: usize,
    map: HashMap<String, PathBuf>,
}

impl CmdList {
    /// Parses the file's text: one path per line; blank lines and `#` comments skipped.
    pub fn parse(source: PathBuf, text: &str, numwords: usize) -> Self {
        let numwords = numwords.max(1);
        let mut map = HashMap::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // The first line for a key wins, as a lookup in file order would.
            map.entry(last_words(line, numwords).to_owned())
                .or_insert_with(|| PathBuf::from(line));
        }
        CmdList {
            source,
            numwords,
            map,
        }
    }

    pub fn load(path: &Path, numwords: usize) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        Ok(CmdList::parse(path.to_owned(), &text, numwords))
    }

    /// The full path listed for `argv0`, matched on its last `numwords` components.
    pub fn lookup(&self, argv0: &str) -> Option<&Path> {
        self.map
            .get(last_words(argv0, self.numwords))
            .map(PathBuf::as_path)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// The last `n` `/`-separated components of `path` (all of it if it has fewer).
fn last_words(path: &str, n: usize) -> &str {
    let mut seen = 0;
    for (i, b) in path.bytes().enumerate().rev() {
        if b == b'/' {
            seen += 1;
            if seen == n {
                return &path[i + 1..];
            }
        }
    }
    path
}

/// The server's compiler policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// Masquerade directories: a name is allowed if an executable entry of that exact
    /// name exists in one of them.
    pub whitelist_dirs: Vec<PathBuf>,
    /// `--enable-tcp-insecure`: any compiler name, and absolute paths run as given.
    pub insecure: bool,
    /// `DISTCC_CMDLIST`: replaces the whitelist and names the program to run.
    pub cmdlist: Option<CmdList>,
    /// Where compilers are looked up (`DISTCCD_PATH`, or PATH minus masquerade dirs).
    pub search_path: Vec<PathBuf>,
}

impl Admission {
    /// The whitelist with the default directories plus `extra`, compilers searched on
    /// `search_path`.
    pub fn whitelist(extra: &[PathBuf], search_path: Vec<PathBuf>) -> Self {
        let mut dirs: Vec<PathBuf> = DEFAULT_WHITELIST_DIRS.iter().map(PathBuf::from).collect();
        for d in extra {
            if !dirs.contains(d) {
                dirs.push(d.clone());
            }
        }
        Admission {
            whitelist_dirs: dirs,
            insecure: false,
            cmdlist: None,
            search_path,
        }
    }

    fn dirs_text(&self) -> String {
        let v: Vec<String> = self
            .whitelist_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        v.join(", ")
    }

    /// Decides whether `argv0` (as the client sent it) may run, and returns the program
    /// to execute. Touches the filesystem (whitelist entries, the search path).
    pub fn admit_compiler(&self, argv0: &str) -> Result<PathBuf, Refusal> {
        if argv0.is_empty() {
            return Err(Refusal::new(
                ExitCode::CompilerMissing,
                "empty compiler name",
            ));
        }
        if let Some(list) = &self.cmdlist {
            return match list.lookup(argv0) {
                Some(path) => Ok(path.to_owned()),
                None => Err(Refusal::new(
                    ExitCode::CompilerMissing,
                    format!(
                        "compiler {argv0:?} is not in DISTCC_CMDLIST ({})",
                        list.source.display()
                    ),
                )),
            };
        }
        if self.insecure {
            if argv0.starts_with('/') {
                return Ok(PathBuf::from(argv0));
            }
            if argv0.contains('/') {
                return Err(Refusal::new(
                    ExitCode::CompilerMissing,
                    format!("compiler name {argv0:?} is a relative path"),
                ));
            }
            return self.find(argv0);
        }
        let name = strip_system_prefix(argv0);
        if name.contains('/') {
            return Err(Refusal::new(
                ExitCode::CompilerMissing,
                format!(
                    "compiler name {argv0:?} cannot be an absolute path (only /usr/bin/ and \
                     /bin/ are stripped; the server admin can set DISTCC_CMDLIST)"
                ),
            ));
        }
        if name.is_empty() || name == "." || name == ".." {
            return Err(Refusal::new(
                ExitCode::CompilerMissing,
                format!("bad compiler name {argv0:?}"),
            ));
        }
        let listed = self
            .whitelist_dirs
            .iter()
            .any(|d| is_executable_file(&d.join(name)));
        if !listed {
            return Err(Refusal::new(
                ExitCode::CompilerMissing,
                format!(
                    "compiler {name:?} is not in the whitelist ({})",
                    self.dirs_text()
                ),
            ));
        }
        self.find(name)
    }

    /// The first executable `name` on the search path.
    fn find(&self, name: &str) -> Result<PathBuf, Refusal> {
        self.search_path
            .iter()
            .map(|d| d.join(name))
            .find(|p| is_executable_file(p))
            .ok_or_else(|| {
                Refusal::new(
                    ExitCode::CompilerMissing,
                    format!("compiler {name:?} is allowed but not installed on this server"),
                )
            })
    }
}

/// Removes a leading `/usr/bin/` or `/bin/` (case-insensitively), the QtCreator
/// exception of distccd 3.4: those directories only hold the system's own compilers.
pub fn strip_system_prefix(argv0: &str) -> &str {
    for prefix in ["/usr/bin/", "/bin/"] {
        if argv0.len() >= prefix.len()
            && argv0.is_char_boundary(prefix.len())
            && argv0[..prefix.len()].eq_ignore_ascii_case(prefix)
        {
            return &argv0[prefix.len()..];
        }
    }
    argv0
}

/// The compiler search path: `DISTCCD_PATH` if set, else `PATH`, without relative
/// entries (the job's cwd holds client data) and without masquerade directories (a
/// whitelist directory, or anything naming distcc or swarmcc), so a request can never
/// run a wrapper that would send it on again.
pub fn compiler_search_path(
    distccd_path: Option<&OsStr>,
    path: Option<&OsStr>,
    whitelist_dirs: &[PathBuf],
) -> Vec<PathBuf> {
    let raw = distccd_path.or(path).unwrap_or(OsStr::new("/usr/bin:/bin"));
    let mut out: Vec<PathBuf> = Vec::new();
    for dir in std::env::split_paths(raw) {
        let text = dir.to_string_lossy().to_ascii_lowercase();
        let masquerade = whitelist_dirs.iter().any(|w| same_dir(w, &dir))
            || text.contains("distcc")
            || text.contains("swarmcc");
        if dir.is_absolute() && !masquerade && !out.contains(&dir) {
            out.push(dir);
        }
    }
    out
}

fn same_dir(a: &Path, b: &Path) -> bool {
    let norm = |p: &Path| p.components().collect::<PathBuf>();
    norm(a) == norm(b)
}

/// Options that make a whitelisted compiler run or load other code, or read or write
/// files chosen by the client outside the job's directory, with why.
const FORBIDDEN: &[(&str, &str)] = &[
    ("-fplugin", "loads a compiler plugin"),
    ("-iplugindir", "loads compiler plugins"),
    ("-fpass-plugin", "loads a compiler plugin"),
    ("-load", "loads a compiler plugin"),
    ("-plugin", "loads a compiler plugin"),
    ("-add-plugin", "loads a compiler plugin"),
    ("-specs", "reads a spec file that can run programs"),
    ("--specs", "reads a spec file that can run programs"),
    ("-wrapper", "runs another program"),
    ("--wrapper", "runs another program"),
    ("-B", "runs compiler programs from another directory"),
    ("--prefix", "runs compiler programs from another directory"),
    ("-fcoverage-data-file", "writes a file"),
    ("-foptimization-record-file", "writes a file"),
    ("-fproc-stat-report", "writes a file"),
    ("-fmodules-cache-path", "writes a module cache elsewhere"),
    ("-fmodule-output", "writes a file"),
    ("-fsanitize-blacklist", "reads a file on the server"),
    ("-fsanitize-ignorelist", "reads a file on the server"),
    (
        "-fsanitize-coverage-allowlist",
        "reads a file on the server",
    ),
    (
        "-fsanitize-coverage-ignorelist",
        "reads a file on the server",
    ),
    ("-fprofile-list", "reads a file on the server"),
    ("-fxray-attr-list", "reads a file on the server"),
    ("-fxray-always-instrument", "reads a file on the server"),
    ("-fxray-never-instrument", "reads a file on the server"),
    ("-fmodule-mapper", "can run another program"),
    ("-foffload", "runs offload compilers"),
    ("-fdump-", "writes dump files"),
    ("-save-temps", "writes intermediate files"),
    ("-dumpdir", "writes auxiliary files elsewhere"),
    ("-dumpbase", "writes auxiliary files elsewhere"),
    ("-aux-info", "writes a file"),
    ("-fopt-info", "writes a report file"),
    ("-fprofile-note", "writes a file"),
    ("-fdeps-", "writes a dependency file"),
    ("-fdiagnostics-add-output", "writes a diagnostics file"),
    ("-fdiagnostics-set-output", "writes a diagnostics file"),
    ("-fcrash-diagnostics-dir", "writes files elsewhere"),
    ("-ftime-trace=", "writes a file"),
    ("-MF", "writes a dependency file"),
    ("-MJ", "writes a compilation database entry"),
];

/// Refuses arguments (after argv[0]) that run or load foreign code, or read or write
/// files outside the job: see [`FORBIDDEN`], plus `@file` response files (a path on the
/// server) and assembler options that write files.
pub fn check_arguments(argv: &[String]) -> Result<(), Refusal> {
    let refuse = |arg: &str, why: &str| {
        Err(Refusal::new(
            ExitCode::BadArguments,
            format!("option {arg:?} is not allowed on this server ({why})"),
        ))
    };
    for (i, arg) in argv.iter().enumerate().skip(1) {
        if arg.starts_with('@') {
            return refuse(arg, "response files are read on the client");
        }
        if let Some((_, why)) = FORBIDDEN.iter().find(|(p, _)| arg.starts_with(p)) {
            return refuse(arg, why);
        }
        // -Wa,LIST / -Xassembler X and -Wp,LIST / -Xpreprocessor X hand items to
        // another program; those that write files (or read @files) are refused.
        let prev = i
            .checked_sub(1)
            .and_then(|p| argv.get(p))
            .map(String::as_str);
        let items: Vec<&str> = if let Some(list) = arg
            .strip_prefix("-Wa,")
            .or_else(|| arg.strip_prefix("-Wp,"))
        {
            list.split(',').collect()
        } else if matches!(prev, Some("-Xassembler" | "-Xpreprocessor")) {
            vec![arg.as_str()]
        } else {
            continue;
        };
        for item in items {
            let writes = item.starts_with("-o")
                || item.starts_with("-a")
                || item.starts_with("--MD")
                || item.starts_with("-M")
                || item.starts_with('@');
            if writes {
                return refuse(arg, "passes an option that writes or reads files");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    fn setup() -> (tempfile::TempDir, Admission) {
        let dir = tempfile::tempdir().unwrap();
        let wl = dir.path().join("wl");
        std::fs::create_dir(&wl).unwrap();
        symlink("/usr/bin/gcc", wl.join("gcc")).unwrap();
        symlink("/nonexistent/cc", wl.join("dangling")).unwrap();
        let adm = Admission {
            whitelist_dirs: vec![wl],
            insecure: false,
            cmdlist: None,
            search_path: vec![PathBuf::from("/usr/bin"), PathBuf::from("/bin")],
        };
        (dir, adm)
    }

    #[test]
    fn whitelisted_names_resolve_on_the_search_path() {
        let (_d, adm) = setup();
        assert_eq!(
            adm.admit_compiler("gcc").unwrap(),
            Path::new("/usr/bin/gcc")
        );
        assert_eq!(
            adm.admit_compiler("/usr/bin/gcc").unwrap(),
            Path::new("/usr/bin/gcc")
        );
        assert_eq!(
            adm.admit_compiler("/USR/BIN/gcc").unwrap(),
            Path::new("/usr/bin/gcc")
        );
        assert_eq!(
            adm.admit_compiler("/bin/gcc").unwrap(),
            Path::new("/usr/bin/gcc")
        );
    }

    #[test]
    fn refusals_name_the_compiler() {
        let (_d, adm) = setup();
        let r = adm.admit_compiler("tcc").unwrap_err();
        assert!(r.reason.contains("\"tcc\" is not in the whitelist"), "{r}");
        assert_eq!(r.code, ExitCode::CompilerMissing);
        let r = adm.admit_compiler("/opt/x/gcc").unwrap_err();
        assert!(r.reason.contains("cannot be an absolute path"), "{r}");
        assert!(adm.admit_compiler("/usr/bin/../gcc").is_err());
        assert!(adm.admit_compiler("..").is_err());
        assert!(adm.admit_compiler("").is_err());
        // A link whose target is missing is not executable.
        assert!(adm.admit_compiler("dangling").is_err());
    }

    #[test]
    fn whitelisted_but_missing_compiler() {
        let (d, mut adm) = setup();
        adm.search_path = vec![d.path().join("empty")];
        let r = adm.admit_compiler("gcc").unwrap_err();
        assert!(r.reason.contains("not installed"), "{r}");
    }

    #[test]
    fn insecure_accepts_anything_executable() {
        let (_d, mut adm) = setup();
        adm.insecure = true;
        assert_eq!(adm.admit_compiler("sh").unwrap(), Path::new("/usr/bin/sh"));
        assert_eq!(adm.admit_compiler("/bin/sh").unwrap(), Path::new("/bin/sh"));
        assert!(adm.admit_compiler("./x").is_err());
    }

    #[test]
    fn cmdlist_replaces_the_whitelist() {
        let (_d, mut adm) = setup();
        let list = CmdList::parse(
            "list".into(),
            "# comment\n/opt/gcc-13/bin/gcc\n\n/usr/bin/clang\n",
            1,
        );
        assert_eq!(list.len(), 2);
        adm.cmdlist = Some(list);
        assert_eq!(
            adm.admit_compiler("gcc").unwrap(),
            Path::new("/opt/gcc-13/bin/gcc")
        );
        assert_eq!(
            adm.admit_compiler("/somewhere/clang").unwrap(),
            Path::new("/usr/bin/clang")
        );
        let r = adm.admit_compiler("tcc").unwrap_err();
        assert!(r.reason.contains("DISTCC_CMDLIST"), "{r}");
    }

    #[test]
    fn cmdlist_numwords() {
        let list = CmdList::parse("l".into(), "/opt/a/bin/gcc\n/opt/b/gcc\n", 2);
        assert_eq!(list.lookup("/x/bin/gcc"), Some(Path::new("/opt/a/bin/gcc")));
        assert_eq!(list.lookup("b/gcc"), Some(Path::new("/opt/b/gcc")));
        assert_eq!(list.lookup("gcc"), None);
        assert_eq!(last_words("/a/b/c", 1), "c");
        assert_eq!(last_words("/a/b/c", 2), "b/c");
        assert_eq!(last_words("c", 3), "c");
    }

    #[test]
    fn search_path_drops_masquerade_and_relative_dirs() {
        let wl = vec![PathBuf::from("/usr/lib/distcc"), PathBuf::from("/opt/wl")];
        let p = compiler_search_path(
            None,
            Some(OsStr::new(
                "/usr/lib/distcc:/opt/wl/:/usr/lib/ccache:/home/u/swarmcc/shims:.::/usr/bin:/usr/bin",
            )),
            &wl,
        );
        assert_eq!(
            p,
            vec![PathBuf::from("/usr/lib/ccache"), PathBuf::from("/usr/bin")]
        );
        let p = compiler_search_path(
            Some(OsStr::new("/opt/cc")),
            Some(OsStr::new("/usr/bin")),
            &wl,
        );
        assert_eq!(p, vec![PathBuf::from("/opt/cc")]);
    }

    #[test]
    fn forbidden_arguments() {
        for bad in [
            "gcc -fplugin=/tmp/x.so -c a.c",
            "gcc -specs=/tmp/s -c a.c",
            "gcc --specs=/tmp/s -c a.c",
            "gcc -wrapper /usr/bin/env,sh -c a.c",
            "gcc -B/tmp/evil -c a.c",
            "gcc -B /tmp/evil -c a.c",
            "gcc @/etc/passwd -c a.c",
            "gcc -fdump-tree-all -c a.c",
            "gcc -save-temps -c a.c",
            "gcc -MF /etc/x -c a.c",
            "gcc -Wa,-a=/tmp/listing -c a.c",
            "gcc -Wa,--64,-o,/tmp/x -c a.c",
            "gcc -Xassembler -o/tmp/x -c a.c",
            "gcc -Wp,-MD,/tmp/x.d -c a.c",
            "gcc -fmodule-mapper=|sh -c a.c",
            "gcc -Xclang -load -Xclang x.so -c a.c",
            "gcc --prefix=/tmp/evil -c a.c",
            "clang -fmodules-cache-path=/tmp/m -c a.c",
            "clang -foptimization-record-file=/etc/x -c a.c",
            "clang -fsanitize-ignorelist=/dev/zero -c a.c",
        ] {
            let r = check_arguments(&args(bad)).expect_err(bad);
            assert!(r.reason.starts_with("option "), "{r}");
            assert_eq!(r.code, ExitCode::BadArguments);
        }
        for good in [
            "gcc -O2 -g -Wall -c a.c -o a.o",
            "gcc -fPIC -fstack-protector-strong -Wa,--noexecstack -c a.c",
            "gcc -x cpp-output -std=c11 -c a.i",
            "x86_64-linux-gnu-gcc -c hello.c -o hello.o",
        ] {
            check_arguments(&args(good)).expect(good);
        }
    }

    #[test]
    fn system_prefix() {
        assert_eq!(strip_system_prefix("/usr/bin/gcc"), "gcc");
        assert_eq!(strip_system_prefix("/Bin/gcc"), "gcc");
        assert_eq!(
            strip_system_prefix("/usr/local/bin/gcc"),
            "/usr/local/bin/gcc"
        );
        assert_eq!(strip_system_prefix("gcc"), "gcc");
        assert_eq!(strip_system_prefix("/usr/bin/é"), "é");
    }

    #[test]
    fn refusal_message_format() {
        let r = Refusal::new(ExitCode::CompilerMissing, "x");
        assert_eq!(r.client_message(), "swarmccd: x\n");
    }
}
