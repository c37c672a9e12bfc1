//! A rustc reply, checked before anything is written: the outputs lie in the job's
//! output directories; rustc's dep-info, with the server's root taken out, names only
//! files that were sent and environment variables whose values are ours; no other
//! output names the server's root. Then the outputs are written (each by rename, so
//! cargo never sees half a file) before rustc's messages, which cargo reads for the
//! artifacts it waits on.

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::args::rustc::{self as rustc_args, normalise, RustcJob};
use crate::protocol::rustc::{OutputFile, RustcReply};

use super::inputs::Inputs;

/// What of rustc's stderr an early part already printed.
#[derive(Debug, Default)]
pub(super) struct Printed {
    /// The server's bytes, as sent (the reply's stderr starts with them).
    raw: Vec<u8>,
    /// The lines as printed, for a local rerun not to print them again.
    lines: HashSet<Vec<u8>>,
}

impl Printed {
    /// Whether anything was printed (cargo has heard of the metadata).
    pub(super) fn any(&self) -> bool {
        !self.raw.is_empty()
    }

    /// Whether `line` (without its newline) was printed already.
    pub(super) fn already(&self, line: &[u8]) -> bool {
        self.lines.contains(line)
    }
}

/// Writes the reply's results and returns rustc's status; `Err` says why rustc must
/// run here instead (nothing has been written then, but what `printed` says).
pub(super) fn apply(
    job: &RustcJob,
    inputs: &Inputs,
    reply: RustcReply,
    echo: bool,
    printed: &Printed,
) -> Result<i32, String> {
    if reply.status != 0 {
        return Err(format!(
            "rustc exited with status {} there (run here for its own diagnostics)",
            reply.status
        ));
    }
    let root = reply.root.trim_end_matches('/').to_string();
    let outputs = checked_outputs(job, inputs, reply.outputs, &root)?;
    check_dep_info(job, inputs, &outputs)?;
    for o in &outputs {
        write_output(o)?;
    }
    if !echo {
        return Ok(0);
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(&unroot(&reply.stdout, &root));
    let _ = out.flush();
    let rest = reply
        .stderr
        .strip_prefix(printed.raw.as_slice())
        .unwrap_or(&reply.stderr);
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(&unroot(rest, &root));
    let _ = err.flush();
    Ok(0)
}

/// Writes the early part (the metadata and dep-info, checked as a reply's outputs
/// are) and prints rustc's stderr so far: cargo then starts the crates that wait on
/// this one's metadata.
pub(super) fn apply_early(
    job: &RustcJob,
    inputs: &Inputs,
    part: RustcReply,
    printed: &mut Printed,
) -> Result<(), String> {
    if printed.any() {
        return Err("the server sent the metadata twice".into());
    }
    let root = part.root.trim_end_matches('/').to_string();
    let outputs = checked_outputs(job, inputs, part.outputs, &root)?;
    let metadata = outputs.iter().any(|o| o.path.ends_with(".rmeta"));
    if outputs.len() != 2 || !metadata {
        return Err("the early part is not the metadata and the dep-info".into());
    }
    check_dep_info(job, inputs, &outputs)?;
    for o in &outputs {
        write_output(o)?;
    }
    let text = unroot(&part.stderr, &root);
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(&text);
    let _ = err.flush();
    printed.lines = text.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    printed.raw = part.stderr;
    Ok(())
}

/// The outputs of a reply, each in an output directory of the job, its dep-info
/// with the server's root taken out, none naming that root.
fn checked_outputs(
    job: &RustcJob,
    inputs: &Inputs,
    outputs: Vec<OutputFile>,
    root: &str,
) -> Result<Vec<OutputFile>, String> {
    let dirs = rustc_args::output_dirs(job, &inputs.cwd);
    let mut checked = Vec::with_capacity(outputs.len());
    for mut o in outputs {
        let (dir, name) = o.path.rsplit_once('/').unwrap_or(("", ""));
        let dir = if dir.is_empty() { "/" } else { dir };
        if name.is_empty() || !dirs.iter().any(|d| d == dir) {
            return Err(format!(
                "the server sent {}, not an output of this job",
                o.path
            ));
        }
        if name.ends_with(".d") {
            o.data = unroot(&o.data, root);
        }
        if !root.is_empty() && find(&o.data, root.as_bytes()).is_some() {
            return Err(format!("{} names the server's job directory", o.path));
        }
        checked.push(o);
    }
    Ok(checked)
}

/// rustc's account of what it read must be covered by what was sent.
fn check_dep_info(job: &RustcJob, inputs: &Inputs, outputs: &[OutputFile]) -> Result<(), String> {
    let cwd = Path::new(&inputs.cwd);
    let path = normalise(Path::new(&rustc_args::dep_info_path(job, &inputs.cwd)));
    let Some(d) = outputs.iter().find(|o| Path::new(&o.path) == path) else {
        return Err(format!("no dep-info ({}) came back", path.display()));
    };
    let info = rustc_args::parse_dep_info(&String::from_utf8_lossy(&d.data));
    for f in &info.files {
        let read = normalise(&cwd.join(f));
        if !inputs.has(&read.to_string_lossy()) {
            return Err(format!("rustc read {f}, which was not sent"));
        }
    }
    for (name, value) in &info.env {
        let here = std::env::var(name).ok();
        if here.as_deref() != value.as_deref() {
            return Err(format!("rustc read ${name}, which is not the same here"));
        }
    }
    Ok(())
}

fn write_output(o: &OutputFile) -> Result<(), String> {
    let path = Path::new(&o.path);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(
        ".{}.swarmcc-{}",
        name.unwrap_or_default(),
        std::process::id()
    ));
    let written = (|| {
        fs::write(&tmp, &o.data)?;
        let mode = if o.executable { 0o755 } else { 0o644 };
        fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
        fs::rename(&tmp, path)
    })();
    written.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        format!("writing {}: {e}", o.path)
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Text from the server with its job root (`root`, without its trailing `/`) taken out
/// of the paths in it; as it is when rustc ran at the client's paths (root `/`).
fn unroot(data: &[u8], root: &str) -> Vec<u8> {
    if root.is_empty() {
        return data.to_vec();
    }
    replace(data, format!("{root}/").as_bytes(), b"/")
}

/// `data` with every `from` replaced by `to`.
fn replace(data: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut rest = data;
    while let Some(i) = find(rest, from) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(to);
        rest = &rest[i + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_is_taken_out_of_text() {
        let d = b"/r/job/p/a.d: /r/job/p/src/lib.rs\n\n/r/job/p/src/lib.rs:\n";
        assert_eq!(
            replace(d, b"/r/job/", b"/"),
            b"/p/a.d: /p/src/lib.rs\n\n/p/src/lib.rs:\n"
        );
        assert_eq!(replace(b"abc", b"x", b"y"), b"abc");
        assert_eq!(find(b"ab", b"abc"), None);
    }
}
