//! swarmcc's own options: --version, --help, --show-hosts, -j, and usage errors.

mod common;

use common::*;
use std::process::Command;

fn swarmcc_own(args: &[&str], hosts: Option<&str>) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(SWARMCC);
    cmd.args(args)
        .env("DISTCC_DIR", dir.path())
        .env("HOME", dir.path());
    match hosts {
        Some(h) => cmd.env("DISTCC_HOSTS", h),
        None => cmd.env_remove("DISTCC_HOSTS"),
    };
    run(&mut cmd)
}

#[test]
fn show_hosts_prints_one_line_per_host_and_j_sums_limits() {
    let out = swarmcc_own(
        &["--show-hosts"],
        Some("10.1.1.1/16 b.example:4000,lzo localhost"),
    );
    assert_success(&out, "--show-hosts");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].starts_with("10.1.1.1/16") && lines[0].contains("limit=16"),
        "{text}"
    );
    assert!(lines[0].contains("port=3632"), "{text}");
    assert!(
        lines[1].contains("port=4000") && lines[1].contains("lzo"),
        "{text}"
    );
    assert!(
        lines[2].starts_with("localhost") && lines[2].contains("limit=2"),
        "{text}"
    );

    let out = swarmcc_own(&["-j"], Some("10.1.1.1/16 b.example:4000,lzo localhost"));
    assert_success(&out, "-j");
    // 16 + 4 (default) + 2 (localhost), as distcc -j prints.
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "22");
}

#[test]
fn hosts_come_from_distcc_dir_when_the_variable_is_unset() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hosts"), "# farm\n192.0.2.7/3\n").unwrap();
    let out = run(Command::new(SWARMCC)
        .arg("-j")
        .env("DISTCC_DIR", dir.path())
        .env_remove("DISTCC_HOSTS"));
    assert_success(&out, "-j from $DISTCC_DIR/hosts");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "3");
}

#[test]
fn bad_host_spec_names_the_token() {
    // distcc 3.4 refuses this token too: the whole list is unusable.
    let out = swarmcc_own(&["--show-hosts"], Some("good/2\n  bad:12ab"));
    assert_eq!(out.status.code(), Some(106));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad host spec \"bad:12ab\" (line 2, column 3): invalid port \"12ab\""),
        "{err}"
    );
}

#[test]
fn a_token_distcc_takes_but_cannot_use_is_skipped_with_a_warning() {
    let out = swarmcc_own(&["-j"], Some("good/2 bad:99999"));
    assert_success(&out, "-j");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "2");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(
            "swarmcc: Warning: $DISTCC_HOSTS: host spec \"bad:99999\" (line 1, column 8): \
             skipped: port 99999 is outside 1..65535"
        ),
        "{err}"
    );
    // A list whose only token is left out names no host, and says why.
    let out = swarmcc_own(&["--show-hosts"], Some("--foo"));
    assert_eq!(out.status.code(), Some(106));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("host spec \"--foo\"") && err.contains("contains no hosts"),
        "{err}"
    );
}

#[test]
fn version_help_and_usage_errors() {
    let out = swarmcc_own(&["--version"], None);
    assert_success(&out, "--version");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("swarmcc "));

    let out = swarmcc_own(&["--help"], None);
    assert_success(&out, "--help");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("--show-hosts") && help.contains("DISTCC_HOSTS"),
        "{help}"
    );

    let out = swarmcc_own(&[], None);
    assert_eq!(out.status.code(), Some(101));
    // As distcc: an unknown dash option is implicit mode, passed to `cc`, which rejects it.
    let out = swarmcc_own(&["--no-such-option"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-such-option"));
}
