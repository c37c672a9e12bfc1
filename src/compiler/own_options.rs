//! swarmcc's own command-line words: the names that mean "this is swarmcc itself" and
//! the options that make `swarmcc ARG…` a command of ours rather than a compile.

/// True when a program basename means "this is swarmcc itself" rather than a
/// masquerade link: it contains "swarmcc", or is exactly "distcc" (swarmcc installed
/// under distcc's name so existing `CC="distcc gcc"` setups keep working).
pub fn is_self_name(basename: &str) -> bool {
    basename.contains("swarmcc") || basename == "distcc"
}

/// swarmcc's own options (`client::cli`, where a test keeps this list complete) and
/// distcc's (`--scan-includes`, `--show-principal`). As distcc, `swarmcc ARG…` is a
/// command of swarmcc's only when ARG is exactly one of them (or `--NAME=VALUE` of one
/// of them): anything else starting with `-` is an implicit compile with `cc`, so a
/// compiler option swarmcc has never heard of is passed to the compiler, never taken
/// for a swarmcc mistake.
pub const OWN_OPTIONS: &[&str] = &[
    "--help",
    "-h",
    "--version",
    "-V",
    "--show-hosts",
    "-j",
    "--check-hosts",
    "--run",
    "--monitor",
    "--agent-serve",
    "--zeroconf-serve",
    "--install",
    "--uninstall",
    "--install-docs",
    "--install-shims",
    "--uninstall-shims",
    "--distcc-names",
    "--scan-includes",
    "--show-principal",
];

pub(super) fn is_own_option(arg: &str) -> bool {
    let name = arg.split_once('=').map_or(arg, |(n, _)| n);
    OWN_OPTIONS.contains(&name) && (name.starts_with("--") || name == arg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_options_are_exactly_the_clis() {
        use clap::CommandFactory;
        let cmd = crate::client::cli::Cli::command();
        let mut from_cli: Vec<String> = cmd
            .get_arguments()
            .flat_map(|a| {
                let long = a.get_long().map(|l| format!("--{l}"));
                let short = a.get_short().map(|c| format!("-{c}"));
                long.into_iter().chain(short)
            })
            .chain(["--help".to_string(), "-h".to_string()])
            .chain([
                "--scan-includes".to_string(),
                "--show-principal".to_string(),
            ])
            .collect();
        from_cli.sort();
        from_cli.dedup();
        let mut ours: Vec<String> = OWN_OPTIONS.iter().map(|s| s.to_string()).collect();
        ours.sort();
        assert_eq!(ours, from_cli);
    }

    #[test]
    fn self_names() {
        assert!(is_self_name("swarmcc"));
        assert!(is_self_name("swarmcc-0.1"));
        assert!(is_self_name("distcc"));
        assert!(!is_self_name("distccd"));
        assert!(!is_self_name("gcc"));
    }

    #[test]
    fn own_option_values() {
        assert!(is_own_option("--check-hosts=gcc,clang"));
        assert!(is_own_option("-j"));
        assert!(!is_own_option("-j=4") && !is_own_option("--show-hostsx"));
    }
}
