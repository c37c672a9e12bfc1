//! What `--check-hosts` found: the verdict on one host, the host's report (its lines and
//! reasons) and the summary line. Finding it is left to [`super::host`].

use std::fmt;
use std::time::Duration;

/// The verdict on one host, worst first in [`Verdict::rank`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Ok,
    /// `,down`: listed but never used; not a problem.
    Skipped,
    Refused,
    Failed,
    Unreachable,
    /// The object differs from a local compile: jobs sent there would silently give a
    /// different build.
    Different,
}

impl Verdict {
    /// Whether this verdict makes `--check-hosts` fail.
    pub fn is_problem(self) -> bool {
        !matches!(self, Verdict::Ok | Verdict::Skipped)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Ok => "OK",
            Verdict::Skipped => "SKIPPED",
            Verdict::Refused => "REFUSED",
            Verdict::Failed => "FAILED",
            Verdict::Unreachable => "UNREACHABLE",
            Verdict::Different => "DIFFERENT COMPILER",
        })
    }
}

/// What the check found for one host.
#[derive(Debug, Clone)]
pub struct HostReport {
    /// The host as listed.
    pub spec: String,
    /// (label, text) lines, in order.
    pub lines: Vec<(String, String)>,
    pub verdict: Verdict,
    /// Why, when not OK (empty for OK).
    pub reason: String,
}

impl HostReport {
    pub(super) fn new(spec: &str) -> HostReport {
        HostReport {
            spec: spec.to_owned(),
            lines: Vec::new(),
            verdict: Verdict::Ok,
            reason: String::new(),
        }
    }

    pub(super) fn line(&mut self, label: &str, text: impl Into<String>) {
        self.lines.push((label.to_owned(), text.into()));
    }

    /// Records a problem: the verdict becomes the worst seen, the reasons accumulate.
    pub(super) fn problem(&mut self, verdict: Verdict, reason: impl Into<String>) {
        self.verdict = self.verdict.max(verdict);
        let reason = reason.into();
        if !self.reason.is_empty() {
            self.reason.push_str("; ");
        }
        self.reason.push_str(&reason);
    }
}

impl fmt::Display for HostReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.spec)?;
        for (label, text) in &self.lines {
            writeln!(f, "  {label:<9} {text}")?;
        }
        if self.reason.is_empty() {
            writeln!(f, "  {:<9} {}", "verdict", self.verdict)
        } else {
            writeln!(f, "  {:<9} {}: {}", "verdict", self.verdict, self.reason)
        }
    }
}

/// The summary line: `3 hosts: 1 OK, 1 DIFFERENT COMPILER, 1 UNREACHABLE`.
pub fn summary(reports: &[HostReport]) -> String {
    let mut counts: Vec<(Verdict, usize)> = Vec::new();
    for r in reports {
        match counts.iter_mut().find(|(v, _)| *v == r.verdict) {
            Some((_, n)) => *n += 1,
            None => counts.push((r.verdict, 1)),
        }
    }
    counts.sort_by_key(|(v, _)| *v);
    let parts: Vec<String> = counts.iter().map(|(v, n)| format!("{n} {v}")).collect();
    let n = reports.len();
    format!(
        "{n} host{}: {}",
        if n == 1 { "" } else { "s" },
        parts.join(", ")
    )
}

pub(super) fn format_duration(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// The first non-empty line of a server's message, trimmed.
pub(super) fn first_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .to_owned()
}

pub(super) fn strip_server(text: &str) -> &str {
    text.strip_prefix("swarmccd: ").unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_rank_the_worst_first_and_summarise() {
        let mut r = HostReport::new("h");
        r.problem(Verdict::Refused, "g++: not whitelisted");
        r.problem(Verdict::Different, "gcc: differs");
        r.problem(Verdict::Failed, "x");
        assert_eq!(r.verdict, Verdict::Different);
        assert_eq!(r.reason, "g++: not whitelisted; gcc: differs; x");
        let ok = HostReport::new("a");
        let mut down = HostReport::new("b");
        down.verdict = Verdict::Skipped;
        assert!(!ok.verdict.is_problem() && !down.verdict.is_problem());
        assert_eq!(
            summary(&[ok.clone(), r, ok, down]),
            "4 hosts: 2 OK, 1 SKIPPED, 1 DIFFERENT COMPILER"
        );
        assert!(format!("{}", HostReport::new("x")).contains("verdict   OK"));
    }
}
