//! The key of a rustc job's result, and the entry it is kept as: made by the server
//! from the request it received (`protocol::rustc`) and kept in the same store as C
//! jobs' results, under keys of their own domain and entries of their own kind, so
//! that neither can ever be read as the other.
//!
//! What goes in, and why that is all (rustc format 1):
//!
//! * the format number and the domain ("rustc"): a change of what goes in changes
//!   every key, and no C job's key is made from the same bytes;
//! * the toolchain's identity, its `rustc -vV` text, by which the server chose the
//!   rustc that runs (it matches it exactly): version, commit, host and LLVM; the
//!   sysroot's libraries belong to that toolchain;
//! * the working directory and every argument, in order, each with its length;
//! * the whole environment the client sent (cargo's `CARGO_*`, `OUT_DIR`, the
//!   variables of `rustc-env` and of `env!`), sorted by name: rustc and proc-macros see
//!   exactly these, on a fixed base of the server's (`PATH`, `TMPDIR`, `LC_ALL=C`);
//! * the input set, sorted by path: each file's path, its sha256 and whether it is
//!   executable. The job runs at the client's paths (or with them remapped so that
//!   rustc records them), and every path can reach the outputs (debug info, `file!()`,
//!   dep-info), so paths are in, not just contents. rustc reads no other file than
//!   these and its toolchain's: the job's root holds nothing else. One exception: the
//!   files of a `-L dependency=DIR` that no `--extern` names. The client sends what
//!   such a directory holds when the job starts, which under `cargo build -j` depends
//!   on which other crates happen to be done, so keying on them would make every
//!   rebuild a miss. They are not what decides the outputs: rustc loads from there
//!   only the crates the `--extern` crates' metadata names, each by its crate hash
//!   (SVH), and refuses a file whose hash differs, so given the `--extern` files
//!   (which are in) the transitive crates rustc uses are fixed; a missing one fails
//!   the job, and failures are not stored;
//! * the form of the reply: protocol rustc's status, stdout, stderr, root and outputs.
//!
//! Not in: the early metadata part (a copy of the reply's beginning), and the
//! server's base environment and jobserver, which do not change what rustc writes.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::args::rustc::{normalise, RustcJob};
use crate::protocol::rustc::{OutputFile, RustcReply, RustcRequest};

use super::entry::{put, take};
use super::Key;

/// The version of what a rustc key is made of.
pub const FORMAT: u32 = 1;

/// The key of `request` (classified as `job`) run by the toolchain whose `rustc -vV`
/// is `identity`.
pub fn job_key(identity: &str, request: &RustcRequest, job: &RustcJob) -> Key {
    let unkeyed = Unkeyed::of(request, job);
    let mut h = Sha256::new();
    let mut field = |name: &str, value: &[u8]| {
        // Each field with its name and length: no two run together into one.
        h.update(format!("{name} {}\n", value.len()));
        h.update(value);
        h.update("\n");
    };
    field(
        "domain",
        format!("swarmcc rustc cache key, format {FORMAT}").as_bytes(),
    );
    field("identity", identity.as_bytes());
    field("reply", b"rustc-1 status stdout stderr root outputs");
    field("cwd", request.cwd.as_bytes());
    field("argc", request.args.len().to_string().as_bytes());
    for arg in &request.args {
        field("arg", arg.as_bytes());
    }
    let mut env: Vec<&(String, String)> = request.env.iter().collect();
    env.sort();
    field("envc", env.len().to_string().as_bytes());
    for (name, value) in env {
        field("name", name.as_bytes());
        field("value", value.as_bytes());
    }
    let mut files: Vec<_> = request
        .files
        .iter()
        .filter(|f| !unkeyed.skips(&f.path))
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    field("filec", files.len().to_string().as_bytes());
    for f in files {
        field("path", f.path.as_bytes());
        let mode = if f.executable { "x" } else { "-" };
        field("file", format!("{} {mode}", f.hash).as_bytes());
    }
    Key::of_digest(&h.finalize())
}

/// The files of a request left out of its key: those in a `-L dependency=` directory
/// that no `--extern` names (see the module doc), from the job's classification.
struct Unkeyed {
    dirs: Vec<PathBuf>,
    externs: Vec<PathBuf>,
}

impl Unkeyed {
    fn of(request: &RustcRequest, job: &RustcJob) -> Unkeyed {
        // As the client names its files: absolute, `.` and `..` resolved by name.
        let cwd = Path::new(&request.cwd);
        let absolute = |p: &str| normalise(&cwd.join(p));
        Unkeyed {
            dirs: job.dependency_dirs.iter().map(|d| absolute(d)).collect(),
            externs: job
                .externs
                .iter()
                .filter_map(|(_, path)| path.as_deref().map(absolute))
                .collect(),
        }
    }

    fn skips(&self, path: &str) -> bool {
        let path = Path::new(path);
        self.dirs.iter().any(|d| path.starts_with(d)) && !self.externs.iter().any(|e| e == path)
    }
}

/// The first bytes of a rustc entry, with its layout's version (a C entry's differ).
pub(super) const MAGIC: &[u8; 8] = b"SWCR0001";

/// A rustc job's reply as the cache keeps it (status 0 only).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entry {
    pub reply: RustcReply,
}

fn text(bytes: &[u8], what: &str) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| format!("its {what} is not UTF-8"))
}

impl Entry {
    pub fn encode(&self) -> Vec<u8> {
        let r = &self.reply;
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&r.status.to_be_bytes());
        put(&mut out, &r.stdout);
        put(&mut out, &r.stderr);
        put(&mut out, r.root.as_bytes());
        out.extend_from_slice(&(r.outputs.len() as u64).to_be_bytes());
        for o in &r.outputs {
            out.push(u8::from(o.executable));
            put(&mut out, o.path.as_bytes());
            put(&mut out, &o.data);
        }
        out
    }

    /// Decodes a whole entry; an error says what is wrong with it.
    pub fn decode(bytes: &[u8]) -> Result<Entry, String> {
        let mut rest = bytes
            .strip_prefix(MAGIC)
            .ok_or("not a rustc cache entry of this version")?;
        let (status, after) = rest
            .split_first_chunk::<4>()
            .ok_or("truncated before its status")?;
        rest = after;
        let stdout = take(&mut rest, "stdout")?.to_vec();
        let stderr = take(&mut rest, "stderr")?.to_vec();
        let root = text(take(&mut rest, "root")?, "root")?;
        let (count, after) = rest
            .split_first_chunk::<8>()
            .ok_or("truncated before its outputs")?;
        rest = after;
        let count = u64::from_be_bytes(*count);
        let mut outputs = Vec::new();
        for _ in 0..count {
            let (&mode, after) = rest.split_first().ok_or("truncated in its outputs")?;
            rest = after;
            if mode > 1 {
                return Err("an output's mode is neither 0 nor 1".into());
            }
            let path = text(take(&mut rest, "output path")?, "output path")?;
            let data = take(&mut rest, "output")?.to_vec();
            outputs.push(OutputFile {
                path,
                executable: mode == 1,
                data,
            });
        }
        if !rest.is_empty() {
            return Err(format!("{} bytes after its outputs", rest.len()));
        }
        let reply = RustcReply {
            status: u32::from_be_bytes(*status),
            stdout,
            stderr,
            root,
            outputs,
        };
        Ok(Entry { reply })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::rustc::JobFile;

    const RUSTC: &str = "rustc 1.95.0 (abc 2026-01-01)\nhost: x86_64-unknown-linux-gnu\n";

    fn file(path: &str, n: char, executable: bool) -> JobFile {
        JobFile {
            hash: n.to_string().repeat(64),
            executable,
            size: 1,
            path: path.into(),
        }
    }

    /// The key of `r` as the server makes it: with its arguments' classification
    /// (a default one where a test's arguments are not a job's).
    fn key(identity: &str, r: &RustcRequest) -> Key {
        let job = crate::args::rustc::classify(&r.args).unwrap_or_default();
        job_key(identity, r, &job)
    }

    fn request() -> RustcRequest {
        RustcRequest {
            cwd: "/p/app".into(),
            args: ["--crate-name", "app", "--edition=2021", "src/lib.rs"]
                .map(String::from)
                .into(),
            env: vec![
                ("CARGO_PKG_NAME".into(), "app".into()),
                ("OUT_DIR".into(), "/p/target/out".into()),
            ],
            files: vec![
                file("/p/app/src/lib.rs", 'a', false),
                file("/p/target/libdep.rlib", 'b', false),
            ],
        }
    }

    #[test]
    fn the_order_of_the_environment_and_of_the_files_is_not_the_job() {
        let k = key(RUSTC, &request());
        assert!(Key::parse(k.as_str()).is_some());
        let mut r = request();
        r.env.reverse();
        r.files.reverse();
        assert_eq!(k, key(RUSTC, &r));
    }

    #[test]
    fn a_dependency_directory_keys_only_the_crates_named_by_extern() {
        let mut r = request();
        r.args.extend(
            [
                "--crate-type",
                "lib",
                "--emit=dep-info,metadata,link",
                "-L",
                "dependency=/p/target/deps",
                "--extern",
                "dep=/p/target/deps/libdep-1.rmeta",
                "--extern=rel=../target/deps/librel-2.rmeta",
                "--extern",
                "proc_macro",
            ]
            .map(String::from),
        );
        let job = crate::args::rustc::classify(&r.args).unwrap();
        assert_eq!(job.dependency_dirs, ["/p/target/deps"]);
        assert_eq!(job.externs.len(), 3, "{:?}", job.externs);
        r.files
            .push(file("/p/target/deps/libdep-1.rmeta", 'd', false));
        r.files
            .push(file("/p/target/deps/librel-2.rmeta", 'e', false));
        let k = key(RUSTC, &r);
        // Another crate finished meanwhile: its files are there, the key is the same.
        let mut more = r.clone();
        more.files
            .push(file("/p/target/deps/libother-3.rmeta", 'f', false));
        more.files
            .push(file("/p/target/deps/libother-3.rlib", 'f', false));
        assert_eq!(k, key(RUSTC, &more));
        // The crates named by --extern (absolute, or relative to the cwd) are keyed.
        for i in [2, 3] {
            let mut changed = r.clone();
            changed.files[i].hash = "9".repeat(64);
            assert_ne!(k, key(RUSTC, &changed), "{}", changed.files[i].path);
        }
        // A file beside the dependency directory, not in it, is keyed.
        let mut beside = r.clone();
        beside
            .files
            .push(file("/p/target/deps-old/x.rmeta", 'f', false));
        assert_ne!(k, key(RUSTC, &beside));
    }

    #[test]
    fn everything_that_can_change_the_outputs_changes_the_key() {
        let k = key(RUSTC, &request());
        type Change = Box<dyn Fn(&mut RustcRequest)>;
        let changes: Vec<(&str, Change)> = vec![
            ("cwd", Box::new(|r| r.cwd = "/q/app".into())),
            (
                "an argument",
                Box::new(|r| r.args[2] = "--edition=2018".into()),
            ),
            ("argument order", Box::new(|r| r.args.swap(0, 1))),
            ("an extra argument", Box::new(|r| r.args.push("-O".into()))),
            ("a variable", Box::new(|r| r.env[0].1 = "other".into())),
            (
                "a new variable",
                Box::new(|r| r.env.push(("V".into(), "1".into()))),
            ),
            (
                "a file's content",
                Box::new(|r| r.files[0].hash = "c".repeat(64)),
            ),
            (
                "a file's path",
                Box::new(|r| r.files[0].path = "/q/lib.rs".into()),
            ),
            ("a file's mode", Box::new(|r| r.files[1].executable = true)),
            (
                "a new file",
                Box::new(|r| r.files.push(file("/p/x", 'd', false))),
            ),
            // Two arguments are not one with a space.
            (
                "argument split",
                Box::new(|r| {
                    r.args = vec!["--crate-name app".into(), "--edition=2021".into()];
                }),
            ),
        ];
        for (what, change) in changes {
            let mut r = request();
            change(&mut r);
            assert_ne!(k, key(RUSTC, &r), "{what}");
        }
        let other = "rustc 1.94.0 (def 2025-12-01)\nhost: x86_64-unknown-linux-gnu\n";
        assert_ne!(k, key(other, &request()));
    }

    #[test]
    fn a_rustc_key_is_never_a_c_key() {
        // The same bytes through the C key's function would start another domain.
        let argv: Vec<String> = ["gcc", "-c", "a.c", "-o", "a.o"].map(String::from).into();
        let c = super::super::job_key("gcc 12; target x86_64-linux-gnu", &argv, b"").unwrap();
        let empty = RustcRequest::default();
        assert_ne!(c, key("gcc 12; target x86_64-linux-gnu", &empty));
    }

    #[test]
    fn entries_round_trip_and_refuse_anything_not_whole() {
        let e = Entry {
            reply: RustcReply {
                status: 0,
                stdout: b"{\"artifact\":1}\n".to_vec(),
                stderr: b"warning: unused\n".to_vec(),
                root: "/".into(),
                outputs: vec![
                    OutputFile {
                        path: "/p/target/libapp.rlib".into(),
                        executable: false,
                        data: vec![7; 300],
                    },
                    OutputFile {
                        path: "/p/target/app".into(),
                        executable: true,
                        data: Vec::new(),
                    },
                ],
            },
        };
        let bytes = e.encode();
        assert_eq!(Entry::decode(&bytes).unwrap(), e);
        for cut in 0..bytes.len() {
            assert!(Entry::decode(&bytes[..cut]).is_err(), "cut {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Entry::decode(&longer).is_err());
        // A C entry is not a rustc entry, nor the other way round.
        let c = super::super::Entry::default().encode();
        assert!(Entry::decode(&c).is_err());
        assert!(super::super::Entry::decode(&bytes).is_err());
    }
}
