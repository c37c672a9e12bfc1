//! The log's level and target from the flags, set up before anything is reported.

use crate::logging::{self, LevelFilter, Target};
use crate::server::cli::Cli;

/// The log level and target from the flags, leniently as distccd: an unknown
/// `--log-level` is warned about and notice kept; a `--log-file` that cannot be opened
/// leaves the log on syslog, with the reason on stderr and in the log.
pub(super) fn init_logging(cli: &Cli, detach: bool) {
    let parsed = logging::parse_level(&cli.log_level);
    let level = match (cli.verbose, parsed) {
        (true, _) => LevelFilter::Debug,
        (false, Some(level)) => level,
        (false, None) => LevelFilter::Info,
    };
    let mut open_failure = None;
    let target = match (&cli.log_file, cli.log_stderr) {
        (Some(path), false) => Target::append_file(path).unwrap_or_else(|e| {
            open_failure = Some(format!(
                "failed to open logfile {}: {e}; logging to syslog instead",
                path.display()
            ));
            Target::Syslog
        }),
        // In inetd mode stderr is usually the client's socket, and a detached daemon
        // has no terminal: both log to syslog, as distccd does.
        (None, false) if cli.inetd || detach => Target::Syslog,
        _ => Target::Stderr,
    };
    logging::init("swarmccd", level, target);
    if let Some(why) = open_failure {
        log::error!("{why}");
        eprintln!("swarmccd: {why}");
    }
    if parsed.is_none() && !cli.verbose {
        log::warn!(
            "invalid --log-level argument \"{}\" (expected critical, error, warning, notice, \
             info or debug); logging at notice",
            cli.log_level
        );
    }
}
