//! Running the local preprocessor without its driver.
//!
//! `gcc -E` starts one program, `cc1 -E` (or `cc1plus`), and waits for it: the driver
//! only works out that command line, and it costs about 1 ms of CPU per job on the
//! client, whose CPU is what a build with many remote slots runs out of. Commands of
//! one build differ only in a few names (the source, the output, our temporary files),
//! so the client learns the driver's answer once per *shape* of command and reuses it.
//!
//! * The key: the driver (its resolved path), its arguments with the per-job names
//!   replaced by placeholders, the source's extension, the directories of the
//!   temporaries, and the environment variables the driver reads.
//! * The first job of a key runs the driver with `-wrapper` set to swarmcc in record
//!   mode ([`RECORD_VAR`], see `crate::stages`): swarmcc writes down `cc1`'s exact
//!   argument vector and environment and becomes it, so that job is an ordinary driver
//!   run. Beside it runs the driver's dry run (`-###`) of the same command with other
//!   names; the template (the record with the names replaced) must give exactly that
//!   dry run's line when filled with those names, else the key is marked "use the
//!   driver". So a name the driver copies somewhere we do not know of makes the plan
//!   unusable rather than wrong.
//! * Plans are small files in `$DISTCC_DIR/cpp-plans`, written atomically, shared by
//!   every swarmcc of the user, and ignored once the driver or `cc1` changes on disk.
//! * A preprocessor run without the driver that fails is run again through the driver,
//!   so errors are reported exactly as before.
//!
//! Only gcc drivers (an ELF executable whose name says gcc or g++) are learnt: clang
//! preprocesses in its own process and has no `-wrapper`. `SWARMCC_DIRECT_CPP=0`
//! turns this off.
//!
//! This module holds the cache and a job's way through it (the shape key, lookup,
//! learning run, dry run); `names` the per-job names and templates, `plan` a learnt
//! command and how it is learnt, `plan_file` its on-disk form.

use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use sha2::{Digest, Sha256};

use crate::stages;

mod names;
mod plan;
mod plan_file;

pub use names::Names;
use names::{abstract_arg, fill, AltNames, MARK};
use plan::learn;
use plan_file::{decode, encode};

/// Set (to a directory) in the environment of a driver run that records its stage;
/// swarmcc started with it is the recorder, not the wrapper.
pub const RECORD_VAR: &str = "SWARMCC_RECORD_STAGE";

/// `SWARMCC_DIRECT_CPP=0` keeps every preprocessing run on the driver.
pub const SWITCH_VAR: &str = "SWARMCC_DIRECT_CPP";

const FORMAT: &str = "swarmcc-cpp-plan 1";

/// The environment variables the driver reads (or that change how its stages run);
/// part of the key. The rest of the environment reaches `cc1` either way.
fn key_var(name: &[u8]) -> bool {
    const EXACT: &[&[u8]] = &[
        b"PATH",
        b"TMPDIR",
        b"COMPILER_PATH",
        b"LIBRARY_PATH",
        b"LPATH",
        b"LANG",
        b"LANGUAGE",
        b"CPATH",
        b"C_INCLUDE_PATH",
        b"CPLUS_INCLUDE_PATH",
        b"OBJC_INCLUDE_PATH",
        b"DEPENDENCIES_OUTPUT",
        b"SUNPRO_DEPENDENCIES",
        b"SOURCE_DATE_EPOCH",
    ];
    const PREFIXES: &[&[u8]] = &[b"GCC_", b"LC_", b"COLLECT_", b"OFFLOAD_"];
    EXACT.contains(&name) || PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The cache of plans of one user (`$DISTCC_DIR/cpp-plans`).
#[derive(Debug, Clone)]
pub struct CppPlans {
    dir: PathBuf,
    /// The recorder: this executable.
    recorder: String,
}

impl CppPlans {
    /// The plans under `distcc_dir`, or `None` when direct preprocessing is off or
    /// cannot work (no usable path to this executable, no writable directory).
    pub fn open(distcc_dir: &Path) -> Option<CppPlans> {
        if std::env::var_os(SWITCH_VAR).is_some_and(|v| v == "0") {
            return None;
        }
        let exe = std::env::current_exe().ok()?;
        let recorder = stages::wrapper_arg(&exe)?;
        let dir = distcc_dir.join("cpp-plans");
        fs::create_dir_all(&dir).ok()?;
        Some(CppPlans { dir, recorder })
    }

    /// What to do for the preprocessing command `argv` (`argv[0]` ignored: `driver`
    /// is the resolved compiler) of a job with these names, whose driver would run
    /// with `env`.
    pub fn lookup(
        &self,
        driver: &Path,
        argv: &[String],
        names: &Names,
        env: &[(OsString, OsString)],
    ) -> Lookup {
        let Some(shape) = Shape::of(driver, argv, names, env) else {
            return Lookup::Driver;
        };
        let file = self.dir.join(&shape.key);
        match fs::read(&file).ok().and_then(|b| decode(&b)) {
            Some((stamp, plan)) if stamp == stages::stamp(&shape.driver) => match plan {
                None => Lookup::Driver,
                Some(plan) if stages::stamp(&plan.path) == plan.stamp => {
                    match plan.command(names, env) {
                        Some(cmd) => Lookup::Direct(cmd),
                        None => Lookup::Driver,
                    }
                }
                Some(_) => self.learn(shape, file),
            },
            _ => self.learn(shape, file),
        }
    }

    /// A plan is learnt only from a compiler binary: a script in front of gcc may do
    /// more than start it. (A stored plan's stamp already vouches for its driver.)
    fn learn(&self, shape: Shape, file: PathBuf) -> Lookup {
        if !stages::is_binary(&shape.driver) {
            return Lookup::Driver;
        }
        match tempfile::Builder::new()
            .prefix(".learn-")
            .tempdir_in(&self.dir)
        {
            Ok(record_dir) => Lookup::Learn(Learning {
                shape,
                file,
                record_dir,
                recorder: self.recorder.clone(),
            }),
            Err(_) => Lookup::Driver,
        }
    }
}

/// The answer of [`CppPlans::lookup`].
#[derive(Debug)]
pub enum Lookup {
    /// Run this command (the preprocessor itself) instead of the driver.
    Direct(Command),
    /// Run the driver as usual.
    Driver,
    /// Run the driver with [`Learning::prepare`] applied, then [`Learning::finish`].
    Learn(Learning),
}

/// What identifies a job's shape, computed from its command.
#[derive(Debug)]
struct Shape {
    driver: PathBuf,
    key: String,
}

impl Shape {
    fn of(
        driver: &Path,
        argv: &[String],
        names: &Names,
        env: &[(OsString, OsString)],
    ) -> Option<Shape> {
        if !names.usable()
            || !stages::eligible(argv)
            || argv.iter().any(|a| a.contains(MARK))
            || !argv.iter().skip(1).any(|a| a == "-E")
        {
            return None;
        }
        let driver = fs::canonicalize(driver).ok()?;
        let name = driver.file_name()?.to_str()?;
        if name.contains("clang") || !(name.contains("gcc") || name.contains("g++")) {
            return None;
        }
        let mut h = Sha256::new();
        let mut field = |b: &[u8]| {
            h.update((b.len() as u64).to_le_bytes());
            h.update(b);
        };
        field(FORMAT.as_bytes());
        field(driver.as_os_str().as_bytes());
        for a in argv.iter().skip(1) {
            field(abstract_arg(a, names).as_bytes());
        }
        // The language follows the source's extension; the temporaries' directories
        // show up in the driver's derived names (`-dumpdir`).
        field(
            names
                .input
                .rsplit_once('.')
                .map_or("", |(_, e)| e)
                .as_bytes(),
        );
        field(parent(names.i_file).as_bytes());
        field(names.deps.map_or("-", parent).as_bytes());
        let mut vars: Vec<&(OsString, OsString)> =
            env.iter().filter(|(k, _)| key_var(k.as_bytes())).collect();
        vars.sort();
        for (k, v) in vars {
            field(k.as_bytes());
            field(v.as_bytes());
        }
        let digest = h.finalize();
        let key = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        Some(Shape { driver, key })
    }
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or(".", |(d, _)| d)
}

/// A learning run in progress: the driver runs with the recorder as its wrapper and
/// its dry run with other names runs beside it.
#[derive(Debug)]
pub struct Learning {
    shape: Shape,
    file: PathBuf,
    record_dir: tempfile::TempDir,
    recorder: String,
}

impl Learning {
    /// Whether the driver run reached the recorder.
    pub fn recorded(&self) -> bool {
        stages::recorded(self.record_dir.path())
    }

    /// Makes `driver_cmd` (the ordinary preprocessing command) record its stage, and
    /// starts the dry run of `argv` with other names (`None` if it cannot start).
    pub fn prepare(
        &self,
        driver_cmd: &mut Command,
        dry_run: Command,
        argv: &[String],
        names: &Names,
    ) -> Option<DryRun> {
        driver_cmd
            .arg("-wrapper")
            .arg(&self.recorder)
            .env(RECORD_VAR, self.record_dir.path());
        let alt = AltNames::new(names);
        let alt_names = alt.names();
        let alt_argv: Vec<String> = argv
            .iter()
            .skip(1)
            .map(|a| {
                let t = abstract_arg(a, names);
                fill(&t, &alt_names).unwrap_or(t)
            })
            .collect();
        let mut dry_run = dry_run;
        dry_run
            .arg("-###")
            .args(&alt_argv)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let child = dry_run.spawn().ok()?;
        Some(DryRun { child, alt })
    }

    /// After the driver run: when it succeeded (`ok`), stores what it taught — a plan
    /// if the record, the template and the dry run agree, else "use the driver". A
    /// driver run that failed teaches nothing unless it never reached the recorder
    /// (the driver itself refused the command). Returns what was stored, for the log.
    pub fn finish(
        self,
        ok: bool,
        dry_run: Option<DryRun>,
        names: &Names,
        driver_env: &[(OsString, OsString)],
    ) -> Option<&'static str> {
        let records = stages::read_records(self.record_dir.path()).unwrap_or_default();
        if !ok && !records.is_empty() {
            return None;
        }
        // A dry run that could not run teaches nothing: the next job tries again.
        let plan = match (ok, dry_run) {
            (true, Some(d)) => {
                let (stderr, alt) = d.output()?;
                learn(&records, &stderr, names, &alt.names(), driver_env)
            }
            (true, None) => return None,
            (false, d) => {
                if let Some(d) = d {
                    d.kill();
                }
                None
            }
        };
        let stamp = stages::stamp(&self.shape.driver);
        let bytes = encode(stamp, plan.as_ref());
        let told = if plan.is_some() { "plan" } else { "driver" };
        let dir = self.file.parent()?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".plan-")
            .tempfile_in(dir)
            .ok()?;
        tmp.write_all(&bytes).ok()?;
        tmp.persist(&self.file).ok()?;
        Some(told)
    }
}

/// The dry run of a learning job.
#[derive(Debug)]
pub struct DryRun {
    child: Child,
    alt: AltNames,
}

impl DryRun {
    fn output(self) -> Option<(Vec<u8>, AltNames)> {
        let out = self.child.wait_with_output().ok()?;
        out.status.success().then_some((out.stderr, self.alt))
    }

    /// Stops a dry run whose learning job is abandoned.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
