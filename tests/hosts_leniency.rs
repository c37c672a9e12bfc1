//! Host-list leniency against the real distcc 3.4: for a table of sloppy tokens, real
//! `distcc -j`/`--show-hosts` and `swarmcc -j`/`--show-hosts` on the same list agree on
//! accepting or refusing it, on the limit (except where the table says why swarmcc
//! differs), and swarmcc says one warning per sloppy token; a list with sloppy tokens
//! still distributes a real build to a real swarmccd, saying each warning once.

mod common;

use common::*;
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

/// What swarmcc does with a token.
#[derive(Debug, Clone, Copy, PartialEq)]
enum How {
    /// Canonical for swarmcc: no warning.
    Plain,
    /// Taken (or, for a list option, applied or ignored) with one warning.
    Warned,
    /// Left out with one warning.
    Skipped,
    /// The whole list refused, as distcc refuses it.
    Refused,
}
use How::*;

/// A token, what `distcc -j` adds for it, what `swarmcc -j` adds, and why the two
/// differ where they do.
struct Case {
    tok: &'static str,
    distcc: i64,
    swarmcc: i64,
    how: How,
    why: &'static str,
}

const fn case(tok: &'static str, distcc: i64, swarmcc: i64, how: How, why: &'static str) -> Case {
    Case {
        tok,
        distcc,
        swarmcc,
        how,
        why,
    }
}

const SAME: &str = "";

const CASES: &[Case] = &[
    // Taken as distcc takes them, junk ignored.
    case("h,lzoxyz", 4, 4, Warned, SAME),
    case("h,lzo,lzo", 4, 4, Warned, SAME),
    case("h/4/8", 8, 8, Warned, SAME),
    case("h/4/8/9", 8, 8, Warned, SAME),
    case("h/4xyz", 4, 4, Warned, SAME),
    case("h/4=5", 5, 5, Warned, SAME),
    case("h/+3", 3, 3, Warned, SAME),
    case("h:+5", 4, 4, Warned, SAME),
    case("h!x", 4, 4, Warned, SAME),
    case("[zz]", 4, 4, Warned, SAME),
    case("[::1]x", 4, 4, Warned, SAME),
    case("localhost/3xyz", 3, 3, Warned, SAME),
    case("localhost/3,lzo", 3, 3, Warned, SAME),
    case("@h:", 4, 4, Warned, SAME),
    case("a@b@c", 4, 4, Warned, SAME),
    case("@h/3xyz", 3, 3, Warned, SAME),
    case("--randomizeX", 0, 0, Warned, SAME),
    case("--localslots", 0, 0, Warned, SAME),
    case("--localslots_cpp=0", 0, 0, Warned, SAME),
    case(
        "h,downtown/3",
        4,
        0,
        Warned,
        "a down host takes no job, so swarmcc -j does not count it",
    ),
    case("h,auth=foo", 4, 4, Plain, SAME),
    case("h,auth=foo,lzo", 4, 4, Plain, SAME),
    case("h,auth=,lzo", 4, 4, Warned, SAME),
    case("h,auth=host/x.example,lzo/2", 4, 4, Warned, SAME),
    case("@h:/usr/bin/distccd,lzo", 4, 4, Plain, SAME),
    case("u@h/3:cmd", 3, 3, Plain, SAME),
    // Taken with what was evidently meant.
    case("h:", 4, 4, Warned, SAME), // port 3632, where distcc uses 0
    case("h:3632,lzo/4", 4, 4, Warned, SAME),
    case("h,lzo:4000", 4, 4, Warned, SAME), // port 4000, where distcc drops it
    case(
        "h,lzo/7",
        4,
        7,
        Warned,
        "a limit after an option: distcc drops it",
    ),
    case(
        "@h,lzo/3",
        4,
        3,
        Warned,
        "a limit after an option: distcc drops it",
    ),
    case(
        "u@fe80::1/3",
        4,
        3,
        Warned,
        "the IPv6 address, where distcc reads host fe80 and command :1/3",
    ),
    // Taken by distcc, but its reading cannot work: left out.
    case(
        "--localslots=0",
        4,
        0,
        Skipped,
        "distcc: a host named --localslots=0",
    ),
    case("--foo", 4, 0, Skipped, "distcc: a host named --foo"),
    case("-j", 4, 0, Skipped, "distcc: a host named -j"),
    case("h:99999", 4, 0, Skipped, "no port above 65535"),
    case("h:-5", 4, 0, Skipped, "no negative port"),
    case("h:0", 4, 0, Skipped, "no port 0"),
    case("h/-3", -3, 0, Skipped, "a negative limit leaves no slot"),
    case("h=0", 4, 0, Skipped, "distcc 3.4: a host named h=0"),
    // `=N` is a limit to swarmcc (as to later distcc), a part of the name to 3.4.
    case("h=3", 4, 3, Plain, "=N is a limit"),
    case("localhost=3", 4, 3, Plain, "=N is a limit"),
    // Refused by both.
    case("h:12ab", 0, 0, Refused, SAME),
    case("h:3632:4000", 0, 0, Refused, SAME),
    case("h,l", 0, 0, Refused, SAME),
    case("h,LZO", 0, 0, Refused, SAME),
    case("h,zstd", 0, 0, Refused, SAME),
    case("h,,lzo", 0, 0, Refused, SAME),
    case("h,", 0, 0, Refused, SAME),
    case("h/0", 0, 0, Refused, SAME),
    case("h/abc", 0, 0, Refused, SAME),
    case("h/", 0, 0, Refused, SAME),
    case("h,cpp", 0, 0, Refused, SAME),
    case("fe80::1", 0, 0, Refused, SAME),
    case(":3632", 0, 0, Refused, SAME),
    case("/4", 0, 0, Refused, SAME),
    case("[::1", 0, 0, Refused, SAME),
    case("user@", 0, 0, Refused, SAME),
    case("--localslots/0", 0, 0, Refused, SAME),
    case("h,auth=x,l", 0, 0, Refused, SAME),
    case("h,auth=x,cpp", 0, 0, Refused, SAME),
];

/// A host that both take as it is, so that the list is never empty.
const REF: &str = "ref.invalid/1";

fn run_with(bin: &str, arg: &str, ddir: &Path, hosts: Option<&str>) -> Output {
    let mut cmd = Command::new(bin);
    cmd.arg(arg)
        .env("DISTCC_DIR", ddir)
        .env("HOME", ddir)
        .env_remove("DISTCC_VERBOSE")
        .env_remove("DISTCC_LOG");
    match hosts {
        Some(h) => cmd.env("DISTCC_HOSTS", h),
        None => cmd.env_remove("DISTCC_HOSTS"),
    };
    run(&mut cmd)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `-j`'s number, None when the list is refused (distcc then prints nothing).
fn jobs(out: &Output) -> Option<i64> {
    text(&out.stdout).trim().parse().ok()
}

/// The spec column of `--show-hosts` (distcc prints only the spec).
fn specs(out: &Output) -> Vec<String> {
    text(&out.stdout)
        .lines()
        .map(|l| l.split("  ").next().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn sloppy_tokens_against_real_distcc() {
    let tmp = tempfile::tempdir().unwrap();
    let ddir = tmp.path().join("ddir");
    fs::create_dir_all(ddir.join("state")).unwrap();
    let mut failures = Vec::new();
    for c in CASES {
        assert!(
            c.distcc == c.swarmcc || !c.why.is_empty(),
            "{}: a difference needs its reason in the table",
            c.tok
        );
        let hosts = format!("{} {REF}", c.tok);
        let theirs_j = run_with("distcc", "-j", &ddir, Some(&hosts));
        let ours_j = run_with(SWARMCC, "-j", &ddir, Some(&hosts));
        let theirs_show = run_with("distcc", "--show-hosts", &ddir, Some(&hosts));
        let ours_show = run_with(SWARMCC, "--show-hosts", &ddir, Some(&hosts));
        let err = text(&ours_j.stderr);
        let mut check = |ok: bool, what: String| {
            if !ok {
                failures.push(format!("{:?}: {what}\n  swarmcc stderr: {err}", c.tok));
            }
        };
        if c.how == Refused {
            check(jobs(&theirs_j).is_none(), "distcc accepted it".into());
            check(
                ours_j.status.code() == Some(106),
                "swarmcc -j did not exit 106".into(),
            );
            let named = format!("bad host spec \"{}\" (line 1, column 1): ", c.tok);
            check(
                err.contains(&named),
                format!("error does not name it: {named}"),
            );
            check(
                specs(&ours_show).is_empty(),
                "swarmcc --show-hosts printed hosts".into(),
            );
            continue;
        }
        // The table's figures are checked against the real program first.
        check(
            jobs(&theirs_j) == Some(c.distcc + 1),
            format!("distcc -j {:?}, table {}", jobs(&theirs_j), c.distcc + 1),
        );
        check(
            jobs(&ours_j) == Some(c.swarmcc + 1),
            format!("swarmcc -j {:?}, table {}", jobs(&ours_j), c.swarmcc + 1),
        );
        // The same hosts, but those swarmcc leaves out.
        let mut want = specs(&theirs_show);
        if c.how == Skipped {
            want.retain(|s| s != c.tok);
        }
        check(
            specs(&ours_show) == want,
            format!("--show-hosts {:?}, distcc {want:?}", specs(&ours_show)),
        );
        // One warning for the token (every line of stderr), none for a plain one.
        let prefix = format!(
            "swarmcc: Warning: $DISTCC_HOSTS: host spec \"{}\" (line 1, column 1): ",
            c.tok
        );
        let lines: Vec<&str> = err.lines().collect();
        match c.how {
            Plain => check(lines.is_empty(), "a warning for a plain token".into()),
            _ => {
                let one = lines.len() == 1 && lines[0].starts_with(&prefix);
                check(one, format!("not exactly one warning starting {prefix:?}"));
                let skipped = lines.first().is_some_and(|l| l.contains("): skipped: "));
                check(skipped == (c.how == Skipped), "skipped or not".into());
            }
        }
        // --show-hosts says the same warnings.
        check(
            text(&ours_show.stderr) == err,
            "--show-hosts warns otherwise".into(),
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn hosts_file_warnings_name_file_line_and_column() {
    let tmp = tempfile::tempdir().unwrap();
    let ddir = tmp.path().join("ddir");
    fs::create_dir_all(ddir.join("state")).unwrap();
    let file = ddir.join("hosts");
    fs::write(
        &file,
        "# the farm\nbuild1/4 build2,lzo/6\n\n  --localslots=0 build3:99999\nbuild4,lzo,lzo # old\n",
    )
    .unwrap();
    let theirs = run_with("distcc", "-j", &ddir, None);
    let ours = run_with(SWARMCC, "-j", &ddir, None);
    // distcc: 4 + 4 (the /6 dropped) + 4 ("--localslots=0" as a host) + 4 + 4.
    assert_eq!(jobs(&theirs), Some(20), "{}", text(&theirs.stderr));
    // swarmcc: 4 + 6, the two unusable tokens left out, + 4.
    assert_eq!(jobs(&ours), Some(14), "{}", text(&ours.stderr));
    let err = text(&ours.stderr);
    let at = |tok: &str, line: usize, col: usize| {
        format!(
            "swarmcc: Warning: {}: host spec \"{tok}\" (line {line}, column {col}): ",
            file.display()
        )
    };
    let want = [
        at("build2,lzo/6", 2, 10),
        at("--localslots=0", 4, 3),
        at("build3:99999", 4, 18),
        at("build4,lzo,lzo", 5, 1),
    ];
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), want.len(), "{err}");
    for (line, want) in lines.iter().zip(&want) {
        assert!(line.starts_with(want.as_str()), "{line}\nwanted {want}");
    }
}

#[test]
fn sloppy_list_still_distributes_and_each_warning_is_said_once() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start_swarmccd(tmp.path(), &["--allow", "127.0.0.1"]);
    let ddir = tmp.path().join("ddir");
    let _reaper = AgentReaper(ddir.clone());
    let src = tmp.path().join("src");
    fs::create_dir_all(&src).unwrap();
    let names = ["a", "b", "c", "d", "e", "f"];
    for n in names {
        fs::write(
            src.join(format!("{n}.c")),
            format!("int {n}(int x) {{ return x * 3 + 1; }}\n"),
        )
        .unwrap();
    }
    let objs: Vec<String> = names.iter().map(|n| format!("{n}.o")).collect();
    fs::write(
        src.join("Makefile"),
        format!(
            "all: {}\n%.o: %.c\n\t$(CC) -O2 -c $< -o $@\n",
            objs.join(" ")
        ),
    )
    .unwrap();
    // An unusable token, and the real host written with its limit after an option.
    let hosts = format!("build9:99999 127.0.0.1:{},lzo/3", server.port);
    let out = run(Command::new("make")
        .args(["-j6", "-s"])
        .current_dir(&src)
        .env("CC", format!("{SWARMCC} gcc"))
        .env("DISTCC_HOSTS", &hosts)
        .env("DISTCC_DIR", &ddir)
        .env("DISTCC_FALLBACK", "0")
        .env_remove("DISTCC_VERBOSE")
        .env_remove("DISTCC_LOG")
        .env_remove("DISTCC_BACKOFF_PERIOD"));
    assert_success(&out, "make through swarmcc with a sloppy list");
    let log = server.log_when(|l| l.matches("COMPILE_OK").count() >= names.len());
    assert_eq!(log.matches("COMPILE_OK").count(), names.len(), "{log}");
    // Each object is what a local compile makes.
    for n in names {
        let local = tmp.path().join(format!("{n}.local.o"));
        let c = src.join(format!("{n}.c"));
        assert_success(
            &run(Command::new("gcc")
                .args(["-O2", "-c"])
                .arg(&c)
                .arg("-o")
                .arg(&local)),
            "local gcc",
        );
        let remote = fs::read(src.join(format!("{n}.o"))).unwrap();
        assert!(
            fs::read(&local).unwrap() == remote,
            "{n}.o differs from local"
        );
    }
    // Six jobs, two sloppy tokens: two warning lines in all.
    let err = text(&out.stderr);
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("host spec")).collect();
    assert_eq!(warnings.len(), 2, "{err}");
    assert!(warnings
        .iter()
        .any(|l| l.contains("\"build9:99999\"") && l.contains("skipped")));
    assert!(warnings.iter().any(|l| l.contains(&format!(
        "read as 127.0.0.1:{}/3,lzo; distcc 3.4 would ignore the /3 after an option",
        server.port
    ))));
    assert!(
        warnings.iter().all(|l| l.contains("said once per 60s")),
        "{err}"
    );
    // A later job in the same period says nothing; --show-hosts always does.
    let again = run(swarmcc(&ddir, &hosts)
        .args(["gcc", "-c", "a.c", "-o", "a2.o"])
        .current_dir(&src));
    assert_success(&again, "second compile");
    assert_eq!(text(&again.stderr), "", "warned again within the period");
    let show = run(swarmcc(&ddir, &hosts).arg("--show-hosts"));
    assert_eq!(
        text(&show.stderr).lines().count(),
        2,
        "{}",
        text(&show.stderr)
    );
    server.log_when(|l| l.matches("COMPILE_OK").count() > names.len());
}
