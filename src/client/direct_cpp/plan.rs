//! A learnt plan: the preprocessor's command as templates, learnt from a recorded
//! stage that the dry run with other names confirms, and filled in for a job.

use std::ffi::{OsStr, OsString};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::names::{abstract_arg, abstract_env, fill, Names};
use crate::stages::{self, Stamp};

/// One learnt command: `cc1 -E …` with placeholders, and how its environment
/// differs from the driver's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Plan {
    /// Where the program is (absolute), and its stamp when learnt.
    pub(super) path: PathBuf,
    pub(super) stamp: Option<Stamp>,
    /// argv, `argv[0]` included, as templates.
    pub(super) argv: Vec<String>,
    pub(super) set_env: Vec<(OsString, String)>,
    pub(super) removed_env: Vec<OsString>,
}

/// A plan from one record and the dry run with `alt` names, or `None` unless the
/// record is one `cc1 -E` that the template reproduces for both sets of names.
pub(super) fn learn(
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
    pub(super) fn command(&self, names: &Names, env: &[(OsString, OsString)]) -> Option<Command> {
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

#[cfg(test)]
mod tests {
    use super::super::names::tests::names;
    use super::super::names::{file_stem, AltNames};
    use super::*;

    const CC1: &str = "/usr/lib/gcc/x86_64-linux-gnu/12/cc1";

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
}
