//! Watching a gcc driver start its stages, shared by the server (which runs a
//! compile's `cc1 | as` without the driver) and the client (which runs the
//! preprocessor, `cc1 -E`, without it).
//!
//! A driver given `-wrapper PROGRAM` starts its first stage as `PROGRAM stage args…`.
//! With PROGRAM one of our own binaries and a *record* variable naming a directory
//! in the environment, that binary writes the stage's argument vector and
//! environment there ([`record_and_exec`]) and then becomes the stage, so the run is
//! otherwise an ordinary driver run. A driver's dry run (`-###`) prints the same
//! command lines without running them ([`parse_dry_run`]).

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

/// Options (or option prefixes) that make the driver print or do something itself,
/// beyond starting its stages: a job using one is always run through the driver.
const DRIVER_PREFIXES: &[&str] = &[
    "--verbose",
    "-###",
    "-time",
    "-pass-exit-codes",
    "-fcompare-debug",
    "-freport-bug",
    "-wrapper",
    "--help",
    "--version",
    "-print-",
    "-dump",
    "-save-temps",
    "-B",
    "-specs",
    "--specs",
];

/// Whether a job with these arguments (`argv[0]` the compiler) may use a plan at all.
pub fn eligible(argv: &[String]) -> bool {
    !argv
        .iter()
        .skip(1)
        .any(|a| a == "-v" || DRIVER_PREFIXES.iter().any(|o| a.starts_with(o)))
}

/// The `-wrapper` argument that makes a driver run record its stages, or `None`
/// when this executable cannot be named in one (the option splits at commas).
pub fn wrapper_arg(recorder: &Path) -> Option<String> {
    let s = recorder.to_str()?;
    (!s.contains(',') && !s.is_empty()).then(|| s.to_owned())
}

/// The recorder's side: write down argv (`program args…`) and the environment into
/// `dir`, then become the program. Returns only if that fails, with the exit code.
pub fn record_and_exec(var: &str, dir: &OsStr, argv: Vec<OsString>) -> i32 {
    let Some((program, args)) = argv.split_first() else {
        eprintln!("swarmcc: {var} is set but no command was given");
        return 127;
    };
    let env: Vec<(OsString, OsString)> = std::env::vars_os().filter(|(k, _)| k != var).collect();
    let record = encode_record(&argv, &env);
    let path = Path::new(dir).join(format!("stage.{}", std::process::id()));
    // A record that cannot be written only costs the plan: the stage still runs.
    let _ = fs::write(path, record);
    let err = Command::new(program).args(args).env_remove(var).exec();
    eprintln!(
        "swarmcc: cannot execute {}: {err}",
        Path::new(program).display()
    );
    127
}

pub fn encode_record(argv: &[OsString], env: &[(OsString, OsString)]) -> Vec<u8> {
    let mut out = format!("{}\0", argv.len()).into_bytes();
    for a in argv {
        out.extend_from_slice(a.as_bytes());
        out.push(0);
    }
    for (k, v) in env {
        out.extend_from_slice(k.as_bytes());
        out.push(b'=');
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

pub type Record = (Vec<OsString>, Vec<(OsString, OsString)>);

pub fn decode_record(bytes: &[u8]) -> Option<Record> {
    let mut fields = bytes.split(|&b| b == 0);
    let argc: usize = std::str::from_utf8(fields.next()?).ok()?.parse().ok()?;
    let mut argv = Vec::with_capacity(argc.min(4096));
    for _ in 0..argc {
        argv.push(OsString::from_vec(fields.next()?.to_vec()));
    }
    let mut env = Vec::new();
    for field in fields {
        if field.is_empty() {
            continue; // the terminator after the last entry
        }
        let eq = field.iter().position(|&b| b == b'=')?;
        env.push((
            OsString::from_vec(field[..eq].to_vec()),
            OsString::from_vec(field[eq + 1..].to_vec()),
        ));
    }
    (argv.len() == argc).then_some((argv, env))
}

/// Whether `program` is an ELF executable (a compiler driver), not a script.
pub fn is_binary(program: &Path) -> bool {
    let mut magic = [0u8; 4];
    fs::File::open(program)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .is_ok_and(|()| magic == *b"\x7fELF")
}

/// Whether a driver run in `dir` went through the recorder at all.
pub fn recorded(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().as_bytes().starts_with(b"stage."))
    })
}

/// The commands of a driver's dry run (`-###` on standard error), each with whether
/// it pipes into the next. gcc prints a command per line, after a space; arguments
/// with characters beyond `[A-Za-z0-9_/.-]` are double-quoted with `"`, `\\` and `$`
/// escaped by a backslash, and a final bare `|` marks a pipe.
pub fn parse_dry_run(stderr: &[u8]) -> Vec<(Vec<OsString>, bool)> {
    let mut commands = Vec::new();
    for line in stderr.split(|&b| b == b'\n') {
        let Some(mut rest) = line.strip_prefix(b" ") else {
            continue;
        };
        let mut argv = Vec::new();
        let mut piped = false;
        loop {
            while let Some(r) = rest.strip_prefix(b" ") {
                rest = r;
            }
            if rest.is_empty() {
                break;
            }
            if rest == b"|" {
                piped = true;
                break;
            }
            let mut arg = Vec::new();
            if let Some(quoted) = rest.strip_prefix(b"\"") {
                let mut i = 0;
                while i < quoted.len() && quoted[i] != b'"' {
                    if quoted[i] == b'\\' && i + 1 < quoted.len() {
                        i += 1;
                    }
                    arg.push(quoted[i]);
                    i += 1;
                }
                rest = quoted.get(i + 1..).unwrap_or_default();
            } else {
                let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
                arg.extend_from_slice(&rest[..end]);
                rest = &rest[end..];
            }
            argv.push(OsString::from_vec(arg));
        }
        if !argv.is_empty() {
            commands.push((argv, piped));
        }
    }
    commands
}

/// Every record a driver run left in `dir` (`None` if one cannot be read).
pub fn read_records(dir: &Path) -> Option<Vec<Record>> {
    let mut records = Vec::new();
    for entry in fs::read_dir(dir).ok()? {
        let entry = entry.ok()?;
        if entry.file_name().as_bytes().starts_with(b"stage.") {
            records.push(decode_record(&fs::read(entry.path()).ok()?)?);
        }
    }
    Some(records)
}

pub fn base_name(p: &OsStr) -> &[u8] {
    let b = p.as_bytes();
    b.rsplit(|&c| c == b'/').next().unwrap_or(b)
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// How a stage's environment differs from its driver's: the variables the driver set
/// or changed, and those it removed.
pub type EnvChanges = (Vec<(OsString, OsString)>, Vec<OsString>);

pub fn env_changes(
    driver_env: &[(OsString, OsString)],
    stage_env: &[(OsString, OsString)],
) -> EnvChanges {
    let set = stage_env
        .iter()
        .filter(|kv| !driver_env.contains(kv))
        .cloned()
        .collect();
    let removed = driver_env
        .iter()
        .filter(|(k, _)| !stage_env.iter().any(|(k2, _)| k2 == k))
        .map(|(k, _)| k.clone())
        .collect();
    (set, removed)
}

/// Gives `cmd` exactly the environment the driver gave its stage: the driver's own
/// (`driver_env`) without the variables it `removed`, then the ones it `set`.
pub fn apply_env_changes<K, V>(
    cmd: &mut Command,
    driver_env: &[(OsString, OsString)],
    removed: &[OsString],
    set: impl IntoIterator<Item = (K, V)>,
) where
    K: AsRef<OsStr>,
    V: AsRef<OsStr>,
{
    cmd.env_clear();
    cmd.envs(
        driver_env
            .iter()
            .filter(|(k, _)| !removed.contains(k))
            .map(|(k, v)| (k, v)),
    );
    cmd.envs(set);
}

/// What identifies a file's content cheaply: a plan is stale once its driver or its
/// compiler proper is replaced (a compiler upgrade).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl std::fmt::Display for Stamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Stamp {
            dev,
            ino,
            size,
            mtime,
            mtime_nsec,
        } = self;
        write!(f, "{dev} {ino} {size} {mtime} {mtime_nsec}")
    }
}

impl std::str::FromStr for Stamp {
    type Err = ();

    /// The form [`Display`](std::fmt::Display) writes: five integers.
    fn from_str(s: &str) -> Result<Stamp, ()> {
        let mut it = s.split(' ');
        let mut next = || it.next().ok_or(());
        let dev = next()?.parse().map_err(drop)?;
        let ino = next()?.parse().map_err(drop)?;
        let size = next()?.parse().map_err(drop)?;
        let mtime = next()?.parse().map_err(drop)?;
        let mtime_nsec = next()?.parse().map_err(drop)?;
        if it.next().is_some() {
            return Err(());
        }
        Ok(Stamp {
            dev,
            ino,
            size,
            mtime,
            mtime_nsec,
        })
    }
}

pub fn stamp(path: &Path) -> Option<Stamp> {
    let m = fs::metadata(path).ok()?;
    Some(Stamp {
        dev: m.dev(),
        ino: m.ino(),
        size: m.size(),
        mtime: m.mtime(),
        mtime_nsec: m.mtime_nsec(),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn os(s: &str) -> OsString {
        OsString::from(s)
    }

    pub(crate) fn kv(k: &str, v: &str) -> (OsString, OsString) {
        (os(k), os(v))
    }

    #[test]
    fn records_round_trip_with_odd_bytes() {
        let argv = vec![os("/usr/lib/gcc/cc1"), os(""), os("a b=c"), os("é")];
        let env = vec![kv("A", "x=y"), kv("EMPTY", "")];
        let (a, e) = decode_record(&encode_record(&argv, &env)).unwrap();
        assert_eq!(a, argv);
        assert_eq!(e, env);
        assert!(decode_record(b"3\0only-one\0").is_none());
        assert!(decode_record(b"x\0").is_none());
        assert!(decode_record(b"").is_none());
    }

    #[test]
    fn parses_gccs_dry_run_quoting_and_pipes() {
        let out = concat!(
            "Target: x86_64-linux-gnu\n",
            r#" /x/cc1 -fpreprocessed - "-mtune=generic" "-DA=\"b c\"" "" "\\\$" "|" -o - |"#,
            "\n as --64 -o output.o\n"
        )
        .as_bytes();
        let cmds = parse_dry_run(out);
        assert_eq!(cmds.len(), 2);
        let first: Vec<&str> = cmds[0].0.iter().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(
            first,
            [
                "/x/cc1",
                "-fpreprocessed",
                "-",
                "-mtune=generic",
                "-DA=\"b c\"",
                "",
                "\\$",
                "|",
                "-o",
                "-"
            ]
        );
        assert!(cmds[0].1);
        assert_eq!(
            cmds[1],
            (vec![os("as"), os("--64"), os("-o"), os("output.o")], false)
        );
    }

    #[test]
    fn driver_options_keep_a_job_on_the_driver() {
        let argv = |extra: &[&str]| -> Vec<String> {
            ["gcc", "-c", "-O2", "-", "-o", "output.o"]
                .iter()
                .chain(extra)
                .map(|s| s.to_string())
                .collect()
        };
        assert!(eligible(&argv(&[])));
        assert!(eligible(&argv(&[
            "-Wall",
            "-g",
            "-fPIC",
            "-DV=1",
            "-Dverbose"
        ])));
        for o in [
            "-v",
            "-###",
            "-time",
            "-time=t.txt",
            "-fcompare-debug",
            "-save-temps=obj",
            "-print-search-dirs",
            "-dumpspecs",
            "-Bfoo",
            "-specs=x",
            "--verbose",
        ] {
            assert!(!eligible(&argv(&[o])), "{o}");
        }
    }
}
