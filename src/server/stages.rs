//! Running a gcc job's stages without its driver.
//!
//! For `gcc -c`, the driver (`gcc`) itself compiles nothing: it works out the command
//! lines of `cc1` (or `cc1plus`) and `as`, starts them with `-pipe` connected, waits and
//! exits. On a tiny job that driver is a tenth of the CPU (measured by perf on
//! swarmccd's compile tree: driver 11 %, cc1 68 %, as 16 %), and a farm serving many
//! small files spends it on every job, for the same answer each time.
//!
//! So the server learns the answer once per distinct command line: the first job runs
//! the real driver with `-wrapper` set to swarmccd itself in *record* mode
//! ([`RECORD_VAR`]), which writes down the compiler proper's exact argument vector
//! and environment and then executes it unchanged — that first job is an ordinary
//! driver run. gcc wraps only the first command of a pipeline, so the assembler's
//! command line is taken from the driver's dry run (`-###`), whose line for the
//! compiler proper must match the recorded one exactly (which also checks the
//! parsing of its quoting). The driver starts both with the same environment. Later
//! jobs with the same compiler and arguments start these stages directly
//! ([`Plan::commands`]).
//!
//! A plan is used only when it is exactly "compiler proper | assembler" and mentions
//! nothing specific to the job that taught it; a job whose stages do not all exit 0
//! is run again through the driver, so diagnostics of failures (and the driver's own
//! messages, such as an internal compiler error report) are the driver's. A plan is
//! dropped when the driver or one of its stage programs changes on disk.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use crate::stages::{
    apply_env_changes, base_name, contains, env_changes, parse_dry_run, read_records, stamp,
    Record, Stamp,
};
pub use crate::stages::{eligible, is_binary, recorded, wrapper_arg};

/// Set (to a directory) in the environment of a driver run that records its stages;
/// swarmccd started with it is the recorder, not the server.
pub const RECORD_VAR: &str = "SWARMCCD_RECORD_STAGE";

/// Plans kept at once; the map is emptied when full (the plans are relearnt cheaply).
const MAX_PLANS: usize = 512;

/// One recorded stage: what the driver executed, and how its environment differed
/// from the one the driver itself was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// As the driver named it (its `argv[0]`; `as` is found on `PATH`).
    pub program: OsString,
    /// Where it is: a name is looked up on the stage's `PATH` once, when the plan is
    /// learnt, because a spawn that searches a `PATH` other than the server's own
    /// cannot use `posix_spawn` and would fork the whole server.
    pub path: PathBuf,
    pub args: Vec<OsString>,
    /// Variables the driver set (or changed) for its stages.
    pub set_env: Vec<(OsString, OsString)>,
    /// Variables the driver removed.
    pub removed_env: Vec<OsString>,
}

/// The stages of one job, in pipeline order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub stages: Vec<Stage>,
}

impl Plan {
    /// The stage commands for a job in `dir` whose driver would have been given
    /// `env` (the plan's differences applied on top).
    pub fn commands(&self, dir: &Path, env: &[(OsString, OsString)]) -> Vec<Command> {
        self.stages
            .iter()
            .map(|stage| {
                let mut cmd = Command::new(&stage.path);
                cmd.arg0(&stage.program).args(&stage.args).current_dir(dir);
                let set = stage.set_env.iter().map(|(k, v)| (k, v));
                apply_env_changes(&mut cmd, env, &stage.removed_env, set);
                cmd
            })
            .collect()
    }
}

/// Builds a plan from the record a driver run left in `dir` and the same command
/// line's dry run, given the environment that run's driver was given. `None` unless
/// the stages are exactly a compiler proper piped into an assembler, the dry run's
/// compiler proper is the one recorded, and nothing in them names `dir`.
pub fn learn(dir: &Path, driver_env: &[(OsString, OsString)], dry_run: &[u8]) -> Option<Plan> {
    let [(recorded, env)] = <[Record; 1]>::try_from(read_records(dir)?).ok()?;
    let [(first, true), (second, false)] =
        <[(Vec<OsString>, bool); 2]>::try_from(parse_dry_run(dry_run)).ok()?
    else {
        return None;
    };
    if first != recorded || second.is_empty() {
        return None;
    }
    let compiler = stage_from(recorded, &env, driver_env)?;
    let assembler = stage_from(second, &env, driver_env)?;
    let is_compiler = matches!(
        base_name(&compiler.program),
        b"cc1" | b"cc1plus" | b"cc1obj" | b"cc1objplus"
    );
    if !is_compiler || base_name(&assembler.program) != b"as" {
        return None;
    }
    let stages = vec![compiler, assembler];
    // The compiler proper must write to the pipe and the assembler read from it.
    let piped = stages[0]
        .args
        .windows(2)
        .any(|w| w[0] == "-o" && w[1] == "-")
        && !stages[1].args.iter().any(|a| a == "-");
    let dir_bytes = dir.as_os_str().as_bytes();
    let names_dir = stages.iter().any(|s| {
        std::iter::once(&s.program)
            .chain(&s.args)
            .chain(s.set_env.iter().map(|(_, v)| v))
            .any(|a| contains(a.as_bytes(), dir_bytes))
    });
    (piped && !names_dir).then_some(Plan { stages })
}

fn stage_from(
    mut argv: Vec<OsString>,
    env: &[(OsString, OsString)],
    driver_env: &[(OsString, OsString)],
) -> Option<Stage> {
    if argv.is_empty() {
        return None;
    }
    let program = argv.remove(0);
    let path = if Path::new(&program).components().count() > 1 {
        PathBuf::from(&program)
    } else {
        let search = env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.clone());
        which::which_in(&program, search, "/").ok()?
    };
    let (set_env, removed_env) = env_changes(driver_env, env);
    Some(Stage {
        program,
        path,
        args: argv,
        set_env,
        removed_env,
    })
}

#[derive(Debug)]
struct Entry {
    /// `None`: this command line is run through the driver (not a plain pipeline).
    plan: Option<Arc<Plan>>,
    stamps: Vec<(PathBuf, Option<Stamp>)>,
}

/// What the server knows of each command line: a plan, "use the driver", or nothing
/// yet ("learn it on this job").
#[derive(Debug, PartialEq, Eq)]
pub enum Known {
    Plan(Arc<Plan>),
    UseDriver,
    Unknown,
}

/// Plans by driver and argument vector, shared by the connection threads.
#[derive(Debug, Default)]
pub struct PlanCache {
    map: Mutex<HashMap<(PathBuf, Vec<String>), Entry>>,
}

impl PlanCache {
    pub fn get(&self, driver: &Path, argv: &[String]) -> Known {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let Some(entry) = map.get(&(driver.to_owned(), argv.to_vec())) else {
            return Known::Unknown;
        };
        if entry.stamps.iter().any(|(p, s)| stamp(p) != *s) {
            return Known::Unknown;
        }
        match &entry.plan {
            Some(plan) => Known::Plan(Arc::clone(plan)),
            None => Known::UseDriver,
        }
    }

    /// Remembers what a driver run taught for `argv` (`None`: use the driver).
    pub fn insert(&self, driver: &Path, argv: &[String], plan: Option<Plan>) {
        let mut stamps = vec![(driver.to_owned(), stamp(driver))];
        for stage in plan.iter().flat_map(|p| &p.stages) {
            stamps.push((stage.path.clone(), stamp(&stage.path)));
        }
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_PLANS {
            map.clear();
        }
        map.insert(
            (driver.to_owned(), argv.to_vec()),
            Entry {
                plan: plan.map(Arc::new),
                stamps,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::encode_record;
    use crate::stages::tests::{kv, os};
    use std::ffi::OsStr;
    use std::fs;

    fn write_record(dir: &Path, pid: u32, argv: &[&str], env: &[(OsString, OsString)]) {
        let argv: Vec<OsString> = argv.iter().map(|a| os(a)).collect();
        fs::write(dir.join(format!("stage.{pid}")), encode_record(&argv, env)).unwrap();
    }

    const CC1: &str = "/usr/lib/gcc/x86_64-linux-gnu/12/cc1";

    fn dry_run(cc1: &[&str], asm: &[&str]) -> Vec<u8> {
        format!(
            "Using built-in specs.\nCOLLECT_GCC=gcc\n {} |\n {}\nCOMPILER_PATH=/x\n",
            cc1.join(" "),
            asm.join(" ")
        )
        .into_bytes()
    }

    #[test]
    fn learns_a_compiler_piped_into_an_assembler_with_the_drivers_env_changes() {
        let dir = tempfile::tempdir().unwrap();
        let driver_env = vec![kv("PATH", "/usr/bin"), kv("GONE", "1"), kv("KEEP", "k")];
        let stage_env = vec![
            kv("PATH", "/usr/bin"),
            kv("KEEP", "k"),
            kv("COLLECT_GCC", "gcc"),
        ];
        let cc1 = [CC1, "-fpreprocessed", "-", "-quiet", "-o", "-"];
        let asm = ["as", "--64", "-o", "output.o"];
        write_record(dir.path(), 7, &cc1, &stage_env);
        fs::write(dir.path().join("output.o"), "not a record").unwrap();
        let plan = learn(dir.path(), &driver_env, &dry_run(&cc1, &asm)).unwrap();
        assert_eq!(plan.stages.len(), 2);
        assert_eq!(plan.stages[1].program, os("as"));
        assert_eq!(
            plan.stages[1].args,
            vec![os("--64"), os("-o"), os("output.o")]
        );
        for stage in &plan.stages {
            assert_eq!(stage.set_env, vec![kv("COLLECT_GCC", "gcc")]);
            assert_eq!(stage.removed_env, vec![os("GONE")]);
        }
        let cmds = plan.commands(Path::new("/job"), &driver_env);
        let envs: Vec<_> = cmds[0].get_envs().collect();
        assert!(envs.contains(&(OsStr::new("COLLECT_GCC"), Some(OsStr::new("gcc")))));
        assert!(envs.contains(&(OsStr::new("KEEP"), Some(OsStr::new("k")))));
        assert!(!envs.iter().any(|(k, _)| *k == "GONE"));
        // `as` is found on the stage's PATH once, and still called `as`.
        assert_eq!(plan.stages[1].path, Path::new("/usr/bin/as"));
        assert_eq!(cmds[1].get_program(), "/usr/bin/as");
        assert_eq!(cmds[0].get_current_dir(), Some(Path::new("/job")));
    }

    #[test]
    fn anything_but_a_plain_pipeline_is_not_learnt() {
        let env = vec![kv("PATH", "/usr/bin")];
        let cc1 = [CC1, "-", "-o", "-"];
        let asm = ["as", "-o", "o.o"];
        // (recorded stages, dry run)
        let cases: Vec<(Vec<Vec<&str>>, Vec<u8>)> = vec![
            (vec![], dry_run(&cc1, &asm)), // nothing recorded
            (vec![cc1.to_vec(), asm.to_vec()], dry_run(&cc1, &asm)), // two records
            (vec![cc1.to_vec()], dry_run(&[CC1, "-", "-o", "x"], &asm)), // mismatch
            (
                vec![cc1.to_vec()],
                format!(" {} |\n {}\n {}\n", cc1.join(" "), asm.join(" "), "as").into_bytes(),
            ),
            (
                vec![cc1.to_vec()],
                format!(" {}\n", cc1.join(" ")).into_bytes(),
            ), // no assembler
            (
                vec![cc1.to_vec()],
                dry_run(&cc1, &["/usr/bin/objcopy", "x"]),
            ),
            (
                vec![vec!["/x/lto1", "-", "-o", "-"]],
                dry_run(&["/x/lto1", "-", "-o", "-"], &asm),
            ),
            (
                vec![cc1.to_vec()],
                dry_run(&cc1, &["as", "-o", "JOBDIR/output.o"]),
            ), // names the job
        ];
        for (records, dry) in cases {
            let dir = tempfile::tempdir().unwrap();
            let d = dir.path().to_str().unwrap().to_owned();
            for (i, argv) in records.iter().enumerate() {
                write_record(dir.path(), i as u32, argv, &env);
            }
            let dry = String::from_utf8(dry).unwrap().replace("JOBDIR", &d);
            assert_eq!(
                learn(dir.path(), &env, dry.as_bytes()),
                None,
                "{records:?} {dry}"
            );
        }
    }

    #[test]
    fn the_cache_forgets_a_plan_when_its_driver_changes() {
        let dir = tempfile::tempdir().unwrap();
        let driver = dir.path().join("gcc");
        fs::write(&driver, "v1").unwrap();
        let cache = PlanCache::default();
        let argv = vec!["gcc".to_owned(), "-c".to_owned()];
        assert_eq!(cache.get(&driver, &argv), Known::Unknown);
        cache.insert(&driver, &argv, None);
        assert_eq!(cache.get(&driver, &argv), Known::UseDriver);
        let plan = Plan { stages: vec![] };
        cache.insert(&driver, &argv, Some(plan.clone()));
        assert_eq!(cache.get(&driver, &argv), Known::Plan(Arc::new(plan)));
        fs::write(&driver, "version 2").unwrap();
        assert_eq!(cache.get(&driver, &argv), Known::Unknown);
    }
}
