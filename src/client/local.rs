//! Runs the real compiler on this machine, with the user's stdio, and turns its wait
//! status into the exit code a direct call would have given.
//!
//! Used for jobs that cannot be distributed and for every fallback.

use std::ffi::OsString;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, ExitStatus};

use crate::compiler::SAFEGUARD_VAR;

/// Everything needed to start the real compiler.
#[derive(Debug, Clone)]
pub struct CompilerCommand<'a> {
    /// The real compiler's executable (never swarmcc itself).
    pub program: &'a Path,
    /// argv as the user wrote it (argv[0]: the compiler's name).
    pub argv: &'a [OsString],
    /// The PATH the compiler should see (trimmed of our masquerade directory).
    pub path: &'a OsString,
    /// The recursion level to pass on, so a nested swarmcc/distcc runs locally at once.
    pub safeguard_level: u32,
}

impl CompilerCommand<'_> {
    /// A `Command` ready to spawn, with `args` replacing argv[1..].
    ///
    /// argv[0] is the real compiler's path, not the name the user typed: gcc finds its
    /// own installation (cc1, collect2) from argv[0], and a bare `gcc` is looked up on
    /// PATH — where a masquerade folder ahead of it (`swarmcc --run` puts one there,
    /// also for an explicit `CC="swarmcc gcc"`) would make it look for cc1 beside
    /// swarmcc. The driver names itself by argv[0]'s basename, so diagnostics read the
    /// same.
    pub fn command_with(&self, args: &[OsString]) -> Command {
        let mut cmd = Command::new(self.program);
        cmd.arg0(self.program);
        cmd.args(args)
            .env("PATH", self.path)
            .env(SAFEGUARD_VAR, self.safeguard_level.to_string());
        cmd
    }

    /// The environment `command_with` gives the compiler: ours, with its PATH and
    /// recursion level.
    pub fn driver_env(&self) -> Vec<(OsString, OsString)> {
        let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
            .filter(|(k, _)| k != "PATH" && k != SAFEGUARD_VAR)
            .collect();
        env.push(("PATH".into(), self.path.clone()));
        env.push((
            SAFEGUARD_VAR.into(),
            self.safeguard_level.to_string().into(),
        ));
        env
    }

    pub fn command(&self) -> Command {
        self.command_with(self.argv.get(1..).unwrap_or(&[]))
    }
}

/// Runs the compiler with inherited stdio and returns its exit code.
pub fn run(cmd: &CompilerCommand<'_>) -> Result<i32, String> {
    let status = cmd
        .command()
        .status()
        .map_err(|e| format!("failed to exec {}: {e}", cmd.program.display()))?;
    Ok(exit_code(status))
}

/// The exit code a shell reports for `status`: the code, or 128 + signal.
pub fn exit_code(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        (None, None) => 1,
    }
}

/// The same mapping for a raw wait(2) status as sent in `STAT`.
pub fn exit_code_from_wait(raw: u32) -> i32 {
    exit_code(ExitStatus::from_raw(raw as i32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_status_mapping() {
        assert_eq!(exit_code_from_wait(0), 0);
        assert_eq!(exit_code_from_wait(0x100), 1);
        assert_eq!(exit_code_from_wait(0x6e00), 110);
        // Killed by SIGSEGV (11), as a shell would report it.
        assert_eq!(exit_code_from_wait(11), 139);
    }
}
