//! `--check-hosts=rustc`: a probe crate compiled on a host as a build's rustc job is
//! (same request, same checks of the reply), then here at the same paths, and the
//! outputs compared byte for byte.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::args::rustc as rustc_args;
use crate::config::ClientConfig;
use crate::hosts::{HostKind, HostSpec};

use super::super::lease::Scheduler;
use super::conversation::{self, Outcome};
use super::inputs::{self, Site};
use super::{identity, results, Run};

/// The probe crate: generics, traits, closures, floating point, a panic path.
const PROBE_RS: &str = r#"//! swarmcc --check-hosts probe
pub trait Shape { fn area(&self) -> f64; }
#[derive(Debug, Clone, PartialEq)]
pub struct Rect { pub w: f64, pub h: f64 }
impl Shape for Rect { fn area(&self) -> f64 { self.w * self.h } }
pub fn total<S: Shape>(shapes: &[S]) -> f64 { shapes.iter().map(Shape::area).sum() }
pub fn collatz(mut n: u64) -> u32 {
    let mut steps = 0;
    while n != 1 { n = if n % 2 == 0 { n / 2 } else { 3 * n + 1 }; steps += 1; }
    steps
}
pub fn parse(s: &str) -> Result<Vec<i32>, std::num::ParseIntError> {
    s.split(',').map(|p| p.trim().parse()).collect()
}
pub fn checked(a: u32, b: u32) -> u32 { a.checked_div(b).expect("no division by zero") }
"#;

/// What the check found: the outputs identical (their sizes), or why not.
pub fn check(
    cfg: &ClientConfig,
    program: &Path,
    host: &HostSpec,
    work: &Path,
) -> Result<String, String> {
    let HostKind::Tcp { host: name, port } = &host.kind else {
        return Err("rustc jobs go to TCP hosts only".into());
    };
    let pkg = work.join("pkg");
    let out = pkg.join("out");
    fs::create_dir_all(pkg.join("src")).map_err(|e| format!("{}: {e}", pkg.display()))?;
    fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    fs::write(pkg.join("src/lib.rs"), PROBE_RS).map_err(|e| e.to_string())?;
    let args: Vec<String> = [
        "--crate-name",
        "swarmcc_probe",
        "--edition=2021",
        "src/lib.rs",
        "--crate-type",
        "lib",
        "--emit=dep-info,metadata,link",
        "-C",
        "opt-level=2",
        "-C",
        "metadata=swarmcc",
        "-C",
        "extra-filename=-swarmcc",
        "--out-dir",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([out.to_string_lossy().into_owned()])
    .collect();
    let job = rustc_args::classify(&args).map_err(|e| format!("probe command: {e}"))?;
    let identity = identity::of(cfg, program).ok_or("rustc -vV did not say what it is here")?;
    let site = Site {
        cwd: pkg.clone(),
        manifest: pkg.clone(),
        out_dir: None,
        env: Vec::new(),
    };
    let inputs = inputs::collect(cfg, &job, site)?;
    let sched = Scheduler::lock_files(work.join("lock"));
    let run = Run {
        cfg,
        args: &args,
        job: &job,
        identity: &identity,
        inputs: &inputs,
        sched: &sched,
    };
    // The probe asks for no artifact notices: there is no early part to take.
    let mut early = |_| Err("an early part the probe did not ask for".to_string());
    let reply = match conversation::attempt(&run, name, *port, 0, &mut early) {
        Outcome::Done(reply, _) => reply,
        Outcome::Declined(why) => return Err(format!("declined: {why}")),
        Outcome::Failed(why) => return Err(format!("failed: {why}")),
    };
    results::apply(&job, &inputs, reply, false, &results::Printed::default())?;
    let remote = read_all(&out)?;
    fs::remove_dir_all(&out)
        .and_then(|()| fs::create_dir(&out))
        .map_err(|e| e.to_string())?;
    let local = Command::new(program)
        .args(&args)
        .current_dir(&pkg)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {}: {e}", program.display()))?;
    if !local.status.success() {
        return Err(format!(
            "the probe does not compile here: {}",
            String::from_utf8_lossy(&local.stderr)
        ));
    }
    compare(&remote, &read_all(&out)?)
}

fn read_all(dir: &Path) -> Result<Vec<(PathBuf, Vec<u8>)>, String> {
    let mut files: Vec<(PathBuf, Vec<u8>)> = fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| Some((e.path(), fs::read(e.path()).ok()?)))
        .collect();
    files.sort();
    Ok(files)
}

fn compare(remote: &[(PathBuf, Vec<u8>)], local: &[(PathBuf, Vec<u8>)]) -> Result<String, String> {
    let name = |p: &Path| {
        p.file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned()
    };
    let names = |v: &[(PathBuf, Vec<u8>)]| v.iter().map(|(p, _)| name(p)).collect::<Vec<_>>();
    if names(remote) != names(local) {
        return Err(format!(
            "different outputs: {} there, {} here",
            names(remote).join(" "),
            names(local).join(" ")
        ));
    }
    let mut sizes = Vec::new();
    for ((p, a), (_, b)) in remote.iter().zip(local) {
        if a != b {
            let at = a
                .iter()
                .zip(b)
                .position(|(x, y)| x != y)
                .unwrap_or(a.len().min(b.len()));
            return Err(format!(
                "{} differs from a local build (from byte {at}; {} and {} bytes)",
                name(p),
                a.len(),
                b.len()
            ));
        }
        sizes.push(format!("{} {} B", name(p), a.len()));
    }
    Ok(format!("identical outputs: {}", sizes.join(", ")))
}
