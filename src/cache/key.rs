//! The key of a C-family job's result: one function, used by the client (to ask) and
//! by the server (to store, from what it received and ran, never from what a client
//! claims), so that both make the same key from the same job.
//!
//! What goes in, and why that is all (format 1):
//!
//! * the format number: a change of what goes in changes every key;
//! * the compiler's identity, as swarmcc's extension checks it (`toolchain`: its
//!   version line and target), and the target on its own line;
//! * the command as the server runs it ([`args::RemoteJob::server_argv`]): every
//!   argument the client sends, in order, the driver's name included, with the input
//!   and output named as the server names them in its job directory
//!   ([`filename::job_input_name`]: the client's base name and the preprocessed
//!   extension, which can reach the object when the source has no line markers;
//!   [`filename::job_output_name`]: `output` and the extension). Only the client's
//!   directories of the input and output are left out: the server never passes them
//!   to the compiler, so they cannot change what it produces;
//! * the sha256 of the preprocessed source, as the compiler reads it (after zstd);
//! * the form of the reply: protocol 1's status, stdout, stderr and object. zstd is
//!   not in: an entry holds the object unpacked and is packed again for each reply.
//!
//! The server's environment is not in: one server's compilers run in one environment,
//! and its identity says which compiler; diagnostics in another server's language
//! are the one thing a client cache may replay from another server of the same
//! compiler, as distcc shows whichever server compiled.

use sha2::{Digest, Sha256};

use crate::args::{self, filename, Decision, RemoteJob};
use crate::blobs;

/// The version of what a key is made of.
pub const FORMAT: u32 = 1;

/// A job's key: a sha256 in lowercase hex, also the entry's file name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key(String);

impl Key {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key whose sha256 is `digest`.
    pub(super) fn of_digest(digest: &[u8]) -> Key {
        Key(digest.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// A key as a client sent it: only its form is checked (64 lowercase hex digits).
    pub fn parse(text: &str) -> Option<Key> {
        blobs::is_hash(text).then(|| Key(text.to_owned()))
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The key of the job `remote_argv` (as the client sends it, as the server receives
/// it) on the compiler `identity`, for the preprocessed `source`. An error says why
/// the job has no key (and is then neither looked up nor stored).
pub fn job_key(identity: &str, remote_argv: &[String], source: &[u8]) -> Result<Key, String> {
    match args::classify(remote_argv) {
        Decision::Remote(job) => key_of_job(identity, &job, &blobs::sha256_hex(source)),
        Decision::Local(reason) => Err(format!("not a remote job: {reason}")),
    }
}

/// [`job_key`] of a job classified already (`args::classify` of the argv the client
/// sends), for a source whose sha256 is known.
pub fn key_of_job(identity: &str, job: &RemoteJob, source_sha256: &str) -> Result<Key, String> {
    let target = identity
        .rsplit_once("; target ")
        .map(|(_, t)| t.trim())
        .filter(|t| !t.is_empty())
        .ok_or("the compiler's identity (version and target) is unknown")?;
    let input = filename::job_input_name(&job.input, job.preprocessed_ext);
    let output = filename::job_output_name(&job.output);
    let argv = job.server_argv(&input, &output);
    let mut h = Sha256::new();
    h.update(format!("swarmcc farm cache key, format {FORMAT}\n"));
    h.update(format!("identity {}\n{identity}\n", identity.len()));
    h.update(format!("target {}\n{target}\n", target.len()));
    h.update("reply distcc-1 status stdout stderr object\n");
    h.update(format!("argc {}\n", argv.len()));
    for arg in &argv {
        // Each argument with its length: no two lists run together into one.
        h.update(format!("{}\n", arg.len()));
        h.update(arg.as_bytes());
        h.update("\n");
    }
    h.update(format!("source sha256 {source_sha256}\n"));
    Ok(Key::of_digest(&h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GCC: &str = "gcc version 12.2.0 (Debian 12.2.0-14); target x86_64-linux-gnu";

    fn argv(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    fn key(id: &str, a: &str, src: &[u8]) -> Key {
        job_key(id, &argv(a), src).unwrap()
    }

    #[test]
    fn the_same_job_has_the_same_key_wherever_its_files_are() {
        let k = key(GCC, "gcc -O2 -c src/a.c -o obj/a.o", b"int a;");
        assert_eq!(k.as_str().len(), 64);
        assert!(Key::parse(k.as_str()).is_some());
        // Other directories for the input and output: the server never sees them.
        assert_eq!(k, key(GCC, "gcc -O2 -c /tmp/x/a.c -o /b/a.o", b"int a;"));
        // `-o` written another way is the same command.
        assert_eq!(k, key(GCC, "gcc -O2 -c src/a.c -oobj/a.o", b"int a;"));
    }

    #[test]
    fn everything_that_can_change_the_result_changes_the_key() {
        let k = key(GCC, "gcc -O2 -c a.c -o a.o", b"int a;");
        let other_id = "gcc version 12.3.0 (Debian 12.3.0-1); target x86_64-linux-gnu";
        let other_target = "gcc version 12.2.0 (Debian 12.2.0-14); target aarch64-linux-gnu";
        for (id, a, src) in [
            (other_id, "gcc -O2 -c a.c -o a.o", &b"int a;"[..]),
            (other_target, "gcc -O2 -c a.c -o a.o", b"int a;"),
            (GCC, "gcc -O1 -c a.c -o a.o", b"int a;"),
            (GCC, "gcc -c -O2 a.c -o a.o", b"int a;"),
            (GCC, "g++ -O2 -c a.c -o a.o", b"int a;"),
            (GCC, "gcc -O2 -c b.c -o a.o", b"int a;"),
            (GCC, "gcc -O2 -c a.cc -o a.o", b"int a;"),
            (GCC, "gcc -O2 -S a.c -o a.s", b"int a;"),
            (GCC, "gcc -O2 -c a.c -o a.o", b"int b;"),
        ] {
            assert_ne!(k, key(id, a, src), "{id} / {a} / {src:?}");
        }
        // Arguments cannot run together: "-DA B" is not "-DAB".
        assert_ne!(
            job_key(
                GCC,
                &["gcc".into(), "-DA B".into(), "-c".into(), "a.c".into()],
                b""
            ),
            job_key(
                GCC,
                &["gcc".into(), "-DAB".into(), "-c".into(), "a.c".into()],
                b""
            )
        );
    }

    #[test]
    fn jobs_without_an_identity_or_not_remote_have_no_key() {
        assert!(job_key("", &argv("gcc -c a.c"), b"").is_err());
        assert!(job_key("gcc version 12", &argv("gcc -c a.c"), b"").is_err());
        assert!(job_key(GCC, &argv("gcc a.c -o prog"), b"").is_err());
        assert!(Key::parse("../etc/passwd").is_none());
        assert!(Key::parse(&"A".repeat(64)).is_none());
    }
}
