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

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use sha2::{Digest, Sha256};

use crate::stages::{self, Stamp};

/// Set (to a directory) in the environment of a driver run that records its stage;
/// swarmcc started with it is the recorder, not the wrapper.
pub const RECORD_VAR: &str = "SWARMCC_RECORD_STAGE";

/// `SWARMCC_DIRECT_CPP=0` keeps every preprocessing run on the driver.
pub const SWITCH_VAR: &str = "SWARMCC_DIRECT_CPP";

const FORMAT: &str = "swarmcc-cpp-plan 1";

/// Marks a placeholder; no argument we learn from may contain it.
const MARK: char = '\u{1}';

/// The names that differ between jobs of one shape.
#[derive(Debug, Clone, Copy)]
pub struct Names<'a> {
    /// The source file, as given on the command line.
    pub input: &'a str,
    /// The original compile's output (a `-MQ` value of ours).
    pub output: &'a str,
    /// Our temporary preprocessed file.
    pub i_file: &'a str,
    /// Our temporary dependency file, if any.
    pub deps: Option<&'a str>,
}

impl Names<'_> {
    /// (placeholder letter, text) pairs for whole arguments, then for parts of
    /// arguments. The temporaries' stems are random, so they never occur by accident;
    /// the input and output are replaced only where an argument is exactly them.
    fn whole(&self) -> Vec<(char, &str)> {
        let mut v = vec![('S', self.input), ('O', self.output), ('I', self.i_file)];
        if let Some(d) = self.deps {
            v.push(('D', d));
        }
        v
    }

    fn parts(&self) -> Vec<(char, &str)> {
        let mut v = vec![('i', file_stem(self.i_file))];
        if let Some(d) = self.deps {
            v.push(('d', file_stem(d)));
        }
        v
    }

    fn all(&self) -> impl Iterator<Item = (char, &str)> {
        self.whole().into_iter().chain(self.parts())
    }

    fn text(&self, letter: char) -> Option<&str> {
        self.all().find(|(l, _)| *l == letter).map(|(_, t)| t)
    }

    /// The names are usable only if none is empty, contains a placeholder or a quote
    /// (the driver quotes them in `COLLECT_GCC_OPTIONS`), or equals another.
    fn usable(&self) -> bool {
        let all: Vec<&str> = self.all().map(|(_, t)| t).collect();
        all.iter()
            .all(|t| !t.is_empty() && !t.contains(MARK) && !t.contains('\''))
            && (1..all.len()).all(|i| !all[..i].contains(&all[i]))
    }
}

/// The file name of `path` without its extension(s): the random part of a temporary.
fn file_stem(path: &str) -> &str {
    let name = path.rsplit('/').next().unwrap_or(path);
    let from = usize::from(name.starts_with('.'));
    match name[from..].find('.') {
        Some(i) => &name[..from + i],
        None => name,
    }
}

/// `arg` with the names replaced by placeholders.
fn abstract_arg(arg: &str, names: &Names) -> String {
    if let Some((l, _)) = names.whole().into_iter().find(|(_, t)| *t == arg) {
        return format!("{MARK}{l}");
    }
    replace_parts(arg.to_owned(), names)
}

/// `text` with the temporaries' stems, wherever they occur, replaced by placeholders.
fn replace_parts(mut text: String, names: &Names) -> String {
    for (l, t) in names.parts() {
        text = text.replace(t, &format!("{MARK}{l}"));
    }
    text
}

/// An environment value with the names replaced: the driver lists its options in
/// `COLLECT_GCC_OPTIONS` single-quoted, so whole names appear as `'name'`.
fn abstract_env(value: &str, names: &Names) -> String {
    let mut out = value.to_owned();
    for (l, t) in names.whole() {
        out = out.replace(&format!("'{t}'"), &format!("'{MARK}{l}'"));
    }
    replace_parts(out, names)
}

/// A template filled in with `names`; `None` if it has a placeholder they lack.
fn fill(template: &str, names: &Names) -> Option<String> {
    let mut out = String::with_capacity(template.len() + 64);
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c == MARK {
            out.push_str(names.text(chars.next()?)?);
        } else {
            out.push(c);
        }
    }
    Some(out)
}

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

/// One learnt command: `cc1 -E …` with placeholders, and how its environment
/// differs from the driver's.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Plan {
    /// Where the program is (absolute), and its stamp when learnt.
    path: PathBuf,
    stamp: Option<Stamp>,
    /// argv, `argv[0]` included, as templates.
    argv: Vec<String>,
    set_env: Vec<(OsString, String)>,
    removed_env: Vec<OsString>,
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

/// Names for the dry run: same directories and extensions, other file names.
#[derive(Debug)]
struct AltNames {
    input: String,
    output: String,
    i_file: String,
    deps: Option<String>,
}

impl AltNames {
    fn new(n: &Names) -> AltNames {
        let swap = |path: &str, stem: &str| {
            let (dir, name) = match path.rsplit_once('/') {
                Some((d, f)) => (format!("{d}/"), f),
                None => (String::new(), path),
            };
            format!("{dir}{stem}{}", &name[file_stem(name).len()..])
        };
        AltNames {
            input: swap(n.input, "swarmcc-probe-src"),
            output: swap(n.output, "swarmcc-probe-out"),
            i_file: swap(n.i_file, "swarmcc_probe0"),
            deps: n.deps.map(|d| swap(d, ".swarmcc-probe1")),
        }
    }

    fn names(&self) -> Names<'_> {
        Names {
            input: &self.input,
            output: &self.output,
            i_file: &self.i_file,
            deps: self.deps.as_deref(),
        }
    }
}

/// A plan from one record and the dry run with `alt` names, or `None` unless the
/// record is one `cc1 -E` that the template reproduces for both sets of names.
fn learn(
    records: &[stages::Record],
    dry_run: &[u8],
    names: &Names,
    alt: &Names,
    driver_env: &[(OsString, OsString)],
) -> Option<Plan> {
    let [(recorded, env)] = records else {
        return None;
    };
    let [(dry, false)] = &stages::parse_dry_run(dry_run)[..] else {
        return None;
    };
    let strings: Option<Vec<&str>> = recorded.iter().map(|a| a.to_str()).collect();
    let strings = strings?;
    let program = Path::new(strings.first()?);
    let is_cpp = matches!(
        stages::base_name(program.as_os_str()),
        b"cc1" | b"cc1plus" | b"cc1obj" | b"cc1objplus"
    );
    if !is_cpp || !program.is_absolute() || !strings.contains(&"-E") {
        return None;
    }
    let argv: Vec<String> = strings.iter().map(|a| abstract_arg(a, names)).collect();
    let filled_alt: Option<Vec<String>> = argv.iter().map(|t| fill(t, alt)).collect();
    let filled: Option<Vec<String>> = argv.iter().map(|t| fill(t, names)).collect();
    let dry: Vec<&OsStr> = dry.iter().map(OsString::as_os_str).collect();
    let same = |v: &[String], w: &[&OsStr]| {
        v.len() == w.len() && v.iter().zip(w).all(|(a, b)| b.to_str() == Some(a.as_str()))
    };
    if !same(
        &filled?,
        &recorded.iter().map(OsString::as_os_str).collect::<Vec<_>>(),
    ) || !same(&filled_alt?, &dry)
    {
        return None;
    }
    let (set, removed_env) = stages::env_changes(driver_env, env);
    let set_env = set
        .into_iter()
        .map(|(k, v)| Some((k, abstract_env(v.to_str()?, names))))
        .collect::<Option<Vec<_>>>()?;
    Some(Plan {
        path: program.to_owned(),
        stamp: stages::stamp(program),
        argv,
        set_env,
        removed_env,
    })
}

impl Plan {
    /// The preprocessor's command for a job with `names` whose driver would get `env`.
    fn command(&self, names: &Names, env: &[(OsString, OsString)]) -> Option<Command> {
        let mut argv = self.argv.iter().map(|t| fill(t, names));
        let mut cmd = Command::new(&self.path);
        cmd.arg0(argv.next()??);
        for a in argv {
            cmd.arg(a?);
        }
        let set = self
            .set_env
            .iter()
            .map(|(k, t)| Some((k, fill(t, names)?)))
            .collect::<Option<Vec<_>>>()?;
        stages::apply_env_changes(&mut cmd, env, &self.removed_env, set);
        Some(cmd)
    }
}

/// The cache file: format line, the driver's stamp, then "driver" or the plan, as
/// NUL-terminated fields.
fn encode(driver: Option<Stamp>, plan: Option<&Plan>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut field = |b: &[u8]| {
        out.extend_from_slice(b);
        out.push(0);
    };
    field(FORMAT.as_bytes());
    field(stamp_text(driver).as_bytes());
    let Some(p) = plan else {
        field(b"driver");
        return out;
    };
    field(b"plan");
    field(p.path.as_os_str().as_bytes());
    field(stamp_text(p.stamp).as_bytes());
    field(p.argv.len().to_string().as_bytes());
    for a in &p.argv {
        field(a.as_bytes());
    }
    field(p.set_env.len().to_string().as_bytes());
    for (k, v) in &p.set_env {
        field(k.as_bytes());
        field(v.as_bytes());
    }
    field(p.removed_env.len().to_string().as_bytes());
    for k in &p.removed_env {
        field(k.as_bytes());
    }
    out
}

type Decoded = (Option<Stamp>, Option<Plan>);

fn decode(bytes: &[u8]) -> Option<Decoded> {
    let mut fields = bytes.split(|&b| b == 0);
    let mut text = || -> Option<String> { String::from_utf8(fields.next()?.to_vec()).ok() };
    if text()? != FORMAT {
        return None;
    }
    let driver = parse_stamp(&text()?)?;
    match text()?.as_str() {
        "driver" => return Some((driver, None)),
        "plan" => {}
        _ => return None,
    }
    let path = PathBuf::from(text()?);
    let stamp = parse_stamp(&text()?)?;
    let count = |s: String| s.parse::<usize>().ok().filter(|&n| n < 100_000);
    let n = count(text()?)?;
    let argv = (0..n).map(|_| text()).collect::<Option<Vec<_>>>()?;
    let n = count(text()?)?;
    let set_env = (0..n)
        .map(|_| Some((OsString::from(text()?), text()?)))
        .collect::<Option<Vec<_>>>()?;
    let n = count(text()?)?;
    let removed_env = (0..n)
        .map(|_| text().map(OsString::from))
        .collect::<Option<Vec<_>>>()?;
    if argv.is_empty() || !path.is_absolute() {
        return None;
    }
    Some((
        driver,
        Some(Plan {
            path,
            stamp,
            argv,
            set_env,
            removed_env,
        }),
    ))
}

fn stamp_text(s: Option<Stamp>) -> String {
    s.map_or_else(|| "-".to_owned(), |s| s.to_string())
}

/// `Some(None)` for "-" (no such file when learnt), `None` if garbled.
fn parse_stamp(s: &str) -> Option<Option<Stamp>> {
    if s == "-" {
        return Some(None);
    }
    s.parse().ok().map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CC1: &str = "/usr/lib/gcc/x86_64-linux-gnu/12/cc1";

    fn names<'a>(input: &'a str, i_file: &'a str, deps: Option<&'a str>) -> Names<'a> {
        Names {
            input,
            output: "build/x.o",
            i_file,
            deps,
        }
    }

    fn os_vec(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    /// cc1's line for a job with these names, as gcc 12 derives it.
    fn cc1_line(n: &Names) -> Vec<String> {
        let stem = file_stem(n.i_file);
        let mut v: Vec<String> = [CC1, "-E", "-quiet", "-MD", &format!("/tmp/{stem}.d")]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if let Some(d) = n.deps {
            v.extend(["-MF".into(), d.into(), "-MQ".into(), n.output.into()]);
        }
        v.extend([
            n.input.into(),
            "-o".into(),
            n.i_file.into(),
            "-O2".into(),
            "-dumpbase".into(),
            format!("{stem}.c"),
        ]);
        v
    }

    fn dry_run_of(line: &[String]) -> Vec<u8> {
        format!(
            "Using built-in specs.\n {}\nCOLLECT_GCC_OPTIONS='-E'\n",
            line.join(" ")
        )
        .into_bytes()
    }

    #[test]
    fn stems_are_the_random_part_of_our_temporaries() {
        assert_eq!(file_stem("/dev/shm/swarmcc_AbC123.ii"), "swarmcc_AbC123");
        assert_eq!(file_stem("sub/.swarmcc-xyZ.d.tmp"), ".swarmcc-xyZ");
        assert_eq!(file_stem("plain"), "plain");
    }

    #[test]
    fn a_template_fills_in_other_names_and_only_whole_names_are_replaced() {
        let n = names(
            "src/a.c",
            "/tmp/swarmcc_AAAAAA.i",
            Some("b/.swarmcc-DDDDDD.d.tmp"),
        );
        assert_eq!(abstract_arg("src/a.c", &n), "\u{1}S");
        // The input inside another argument stays literal (it is part of the key).
        assert_eq!(abstract_arg("-DF=src/a.c", &n), "-DF=src/a.c");
        assert_eq!(abstract_arg("swarmcc_AAAAAA.c", &n), "\u{1}i.c");
        let env = "'-o' '/tmp/swarmcc_AAAAAA.i' '-MQ' 'build/x.o'";
        let t = abstract_env(env, &n);
        assert_eq!(t, "'-o' '\u{1}I' '-MQ' '\u{1}O'");
        let alt = AltNames::new(&n);
        assert_eq!(alt.input, "src/swarmcc-probe-src.c");
        assert_eq!(alt.i_file, "/tmp/swarmcc_probe0.i");
        assert_eq!(alt.deps.as_deref(), Some("b/.swarmcc-probe1.d.tmp"));
        assert_eq!(
            fill(&t, &alt.names()).unwrap(),
            "'-o' '/tmp/swarmcc_probe0.i' '-MQ' 'build/swarmcc-probe-out.o'"
        );
        // A placeholder the names lack (no deps file) cannot be filled.
        assert_eq!(fill("\u{1}D", &names("a.c", "/t/s_1.i", None)), None);
    }

    #[test]
    fn names_that_clash_or_need_quoting_are_not_used() {
        assert!(names("a.c", "/t/swarmcc_1.i", None).usable());
        assert!(!names("it's.c", "/t/swarmcc_1.i", None).usable());
        assert!(!names("build/x.o", "/t/swarmcc_1.i", None).usable());
        assert!(!names("", "/t/swarmcc_1.i", None).usable());
    }

    #[test]
    fn learns_only_what_the_dry_run_with_other_names_confirms() {
        let n = names(
            "src/a.c",
            "/tmp/swarmcc_AAAAAA.i",
            Some("b/.swarmcc-DDDDDD.d.tmp"),
        );
        let alt_owned = AltNames::new(&n);
        let alt = alt_owned.names();
        let line = cc1_line(&n);
        let env = vec![(OsString::from("PATH"), OsString::from("/bin"))];
        let mut stage_env = env.clone();
        stage_env.push((
            "COLLECT_GCC_OPTIONS".into(),
            "'-o' '/tmp/swarmcc_AAAAAA.i'".into(),
        ));
        let record = |line: &[String]| -> Vec<stages::Record> {
            vec![(
                os_vec(&line.iter().map(String::as_str).collect::<Vec<_>>()),
                stage_env.clone(),
            )]
        };
        let plan = learn(&record(&line), &dry_run_of(&cc1_line(&alt)), &n, &alt, &env).unwrap();
        assert_eq!(plan.path, Path::new(CC1));
        assert_eq!(plan.set_env.len(), 1);
        assert!(plan.removed_env.is_empty());
        // Filled for a third job, the command is what gcc would run for it.
        let third = names(
            "lib/z.c",
            "/tmp/swarmcc_ZZZZZZ.i",
            Some("l/.swarmcc-QQQQQQ.d.tmp"),
        );
        let cmd = plan.command(&third, &env).unwrap();
        let args: Vec<_> = cmd.get_args().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(args, cc1_line(&third)[1..]);
        let envs: Vec<_> = cmd.get_envs().collect();
        assert!(envs.contains(&(
            OsStr::new("COLLECT_GCC_OPTIONS"),
            Some(OsStr::new("'-o' '/tmp/swarmcc_ZZZZZZ.i'"))
        )));

        // The driver used the source's name somewhere we do not replace: the dry run
        // with other names disagrees, and nothing is learnt.
        let mut leaky = line.clone();
        leaky.push("-dumpsrc=src/a.c".into());
        let mut leaky_alt = cc1_line(&alt);
        leaky_alt.push(format!("-dumpsrc={}", alt.input));
        assert!(learn(&record(&leaky), &dry_run_of(&leaky_alt), &n, &alt, &env).is_none());
        // Not one `cc1 -E`: a pipeline, a relative program, two records.
        let piped = format!(" {} |\n as -o x.o\n", line.join(" ")).into_bytes();
        assert!(learn(&record(&line), &piped, &n, &alt, &env).is_none());
        let mut relative = line.clone();
        relative[0] = "cc1".into();
        assert!(learn(&record(&relative), &dry_run_of(&relative), &n, &alt, &env).is_none());
        let two: Vec<_> = record(&line).into_iter().chain(record(&line)).collect();
        assert!(learn(&two, &dry_run_of(&cc1_line(&alt)), &n, &alt, &env).is_none());
    }

    #[test]
    fn the_cache_file_round_trips_and_rejects_garbage() {
        let stamp: Stamp = "1 2 3 4 5".parse().unwrap();
        let plan = Plan {
            path: PathBuf::from(CC1),
            stamp: None,
            argv: vec![CC1.into(), "-E".into(), "\u{1}S".into(), String::new()],
            set_env: vec![("COLLECT_GCC".into(), "gcc".into())],
            removed_env: vec!["GONE".into()],
        };
        let bytes = encode(Some(stamp), Some(&plan));
        assert_eq!(decode(&bytes), Some((Some(stamp), Some(plan))));
        assert_eq!(decode(&encode(None, None)), Some((None, None)));
        assert_eq!(decode(b"swarmcc-cpp-plan 0\0"), None);
        assert_eq!(decode(&bytes[..bytes.len() - 9]), None);
        assert_eq!(decode(b""), None);
        assert!("1 2 3".parse::<Stamp>().is_err());
    }
}
