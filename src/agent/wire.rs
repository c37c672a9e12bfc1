//! The agent's line protocol: parsing and formatting of every line exchanged between
//! swarmcc processes and the agent. Pure text in, values out; sockets live in
//! `socket.rs` (agent side) and `mod.rs` (client side).
//!
//! ```text
//! One request per connection. Lines are UTF-8, end with '\n' (a '\r' before it is
//! dropped), and are at most 64 KiB. Tokens contain no whitespace or control chars.
//!
//! client → agent, first line, one of:
//!   REMOTE build=<id|-> randomize=<0|1> hosts=<k>      then k lines: <lock_name> <limit>
//!   LOCAL build=<id|-> kind=<compile|cpp> limit=<n> load=<x|->
//!   STATS build=<id>
//!   FARM                      the whole farm, for monitors (see `format_farm`)
//!   CACHE build=<id> outcome=<local|farm|miss>   what the compile cache did for a job
//!   PING
//!   (the key=value fields may come in any order; each exactly once)
//!
//! agent → client:
//!   GRANT <index> <slot>      the slot is held until the client closes the connection;
//!                             <index> indexes the offered hosts (0 for LOCAL)
//!   PONG <pid>                answer to PING
//!   OK                        answer to CACHE
//!   <key> <value…>… END       answer to STATS (see `format_stats`) and to FARM
//!                             (see `format_farm`)
//!   ERR <reason>              malformed or misplaced line; the agent then closes
//!
//! client → agent, while holding a grant (any number, any order):
//!   REPORT remote <ms>                      compiled on the leased host in <ms>
//!   REPORT hostfail <reason…>               the leased host failed (remote leases only)
//!   REPORT local <0|1> <reason…>            compiled locally; 1 = after a remote failure
//!   (<reason…> is the rest of the line, possibly empty; a well-formed REPORT that does
//!   not fit the lease, e.g. `hostfail` on a LOCAL grant, is ignored and the slot kept)
//! ```
//!
//! A waiting client gives up by closing its connection; a line sent before GRANT is an
//! error. STATS, FARM, CACHE and PING connections are closed by the agent after the
//! answer.

use std::fmt::Write as _;
use std::time::Duration;

use super::{
    BuildStats, CacheOutcome, FarmHost, FarmInfo, FarmPool, HostOffer, JobReport, LocalKind,
};

/// Longest line either side accepts, newline excluded.
pub const MAX_LINE: usize = 64 * 1024;
/// Most hosts one REMOTE request may offer.
pub const MAX_HOSTS: usize = 4096;
/// Longest token (build id, lock name).
pub const MAX_TOKEN: usize = 512;
/// Longest reason kept; longer ones are cut (at a character boundary).
pub const MAX_REASON: usize = 1024;
/// Largest slot limit accepted (anything above is surely a mistake).
pub const MAX_LIMIT: u32 = 1_000_000;

/// The first line of a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Header {
    Remote {
        build: Option<String>,
        randomize: bool,
        hosts: usize,
    },
    Local {
        build: Option<String>,
        kind: LocalKind,
        limit: u32,
        load: Option<f64>,
    },
    Stats {
        build: String,
    },
    /// `CACHE build=<id> outcome=local|farm|miss`: what the compile cache did for a
    /// job, answered `OK`.
    Cache {
        build: String,
        outcome: CacheOutcome,
    },
    Farm,
    Ping,
}

/// Strips the line terminator and checks length and encoding.
pub fn line_text(raw: &[u8]) -> Result<&str, String> {
    let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    if raw.len() > MAX_LINE {
        return Err("line too long".into());
    }
    std::str::from_utf8(raw).map_err(|_| "line is not UTF-8".to_string())
}

fn valid_token(t: &str) -> bool {
    !t.is_empty() && t.len() <= MAX_TOKEN && !t.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn token(what: &str, t: &str) -> Result<String, String> {
    if valid_token(t) {
        Ok(t.to_string())
    } else {
        Err(format!("bad {what} {:?}", truncate(t, 64)))
    }
}

fn build_field(t: &str) -> Result<Option<String>, String> {
    if t == "-" {
        Ok(None)
    } else {
        token("build id", t).map(Some)
    }
}

fn limit_field(t: &str) -> Result<u32, String> {
    match t.parse::<u32>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) && t.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(format!("bad limit {:?}", truncate(t, 64))),
    }
}

/// Collects `key=value` fields, each of `keys` exactly once and nothing else.
fn fields<'a>(words: &[&'a str], keys: &[&str]) -> Result<Vec<&'a str>, String> {
    let mut values: Vec<Option<&'a str>> = vec![None; keys.len()];
    for w in words {
        let Some((k, v)) = w.split_once('=') else {
            return Err(format!("expected key=value, got {:?}", truncate(w, 64)));
        };
        let Some(i) = keys.iter().position(|key| *key == k) else {
            return Err(format!("unknown field {:?}", truncate(k, 64)));
        };
        if values[i].replace(v).is_some() {
            return Err(format!("field {k} given twice"));
        }
    }
    values
        .into_iter()
        .zip(keys)
        .map(|(v, k)| v.ok_or_else(|| format!("missing field {k}")))
        .collect()
}

/// Parses a request's first line.
pub fn parse_header(line: &str) -> Result<Header, String> {
    let words: Vec<&str> = line.split(' ').collect();
    match words.first().copied() {
        Some("REMOTE") => {
            let f = fields(&words[1..], &["build", "randomize", "hosts"])?;
            let randomize = match f[1] {
                "0" => false,
                "1" => true,
                other => return Err(format!("bad randomize {:?}", truncate(other, 64))),
            };
            let hosts = match f[2].parse::<usize>() {
                Ok(k)
                    if (1..=MAX_HOSTS).contains(&k) && f[2].bytes().all(|b| b.is_ascii_digit()) =>
                {
                    k
                }
                _ => return Err(format!("bad host count {:?}", truncate(f[2], 64))),
            };
            Ok(Header::Remote {
                build: build_field(f[0])?,
                randomize,
                hosts,
            })
        }
        Some("LOCAL") => {
            let f = fields(&words[1..], &["build", "kind", "limit", "load"])?;
            let kind = match f[1] {
                "compile" => LocalKind::Compile,
                "cpp" => LocalKind::Preprocess,
                other => return Err(format!("bad kind {:?}", truncate(other, 64))),
            };
            let load = match f[3] {
                "-" => None,
                x => match x.parse::<f64>() {
                    Ok(v) if v.is_finite() && v >= 0.0 => Some(v),
                    _ => return Err(format!("bad load {:?}", truncate(x, 64))),
                },
            };
            Ok(Header::Local {
                build: build_field(f[0])?,
                kind,
                limit: limit_field(f[2])?,
                load,
            })
        }
        Some("STATS") => {
            let f = fields(&words[1..], &["build"])?;
            match build_field(f[0])? {
                Some(build) => Ok(Header::Stats { build }),
                None => Err("STATS needs a build id".into()),
            }
        }
        Some("CACHE") => {
            let f = fields(&words[1..], &["build", "outcome"])?;
            let outcome = match f[1] {
                "local" => CacheOutcome::LocalHit,
                "farm" => CacheOutcome::FarmHit,
                "miss" => CacheOutcome::Miss,
                other => return Err(format!("bad outcome {:?}", truncate(other, 64))),
            };
            match build_field(f[0])? {
                Some(build) => Ok(Header::Cache { build, outcome }),
                None => Err("CACHE needs a build id".into()),
            }
        }
        Some("PING") if words.len() == 1 => Ok(Header::Ping),
        Some("FARM") if words.len() == 1 => Ok(Header::Farm),
        _ => Err(format!("unknown request {:?}", truncate(line, 64))),
    }
}

/// Parses one `<lock_name> <limit>` line of a REMOTE request.
pub fn parse_host(line: &str) -> Result<HostOffer, String> {
    let mut words = line.split(' ');
    match (words.next(), words.next(), words.next()) {
        (Some(name), Some(limit), None) => Ok(HostOffer {
            lock_name: token("lock name", name)?,
            limit: limit_field(limit)?,
        }),
        _ => Err(format!(
            "expected '<lock_name> <limit>', got {:?}",
            truncate(line, 64)
        )),
    }
}

/// Parses a `REPORT …` line.
pub fn parse_report(line: &str) -> Result<JobReport, String> {
    let Some(rest) = line.strip_prefix("REPORT ") else {
        return Err(format!("expected REPORT, got {:?}", truncate(line, 64)));
    };
    let (what, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    match what {
        "remote" => match rest.parse::<u64>() {
            Ok(ms) if rest.bytes().all(|b| b.is_ascii_digit()) => Ok(JobReport::Remote {
                elapsed: Duration::from_millis(ms),
            }),
            _ => Err(format!("bad elapsed ms {:?}", truncate(rest, 64))),
        },
        "achit" if rest.is_empty() => Ok(JobReport::ActionCacheHit),
        "hostfail" => Ok(JobReport::HostFailed {
            reason: sanitize_reason(rest),
        }),
        "local" => {
            let (flag, reason) = rest.split_once(' ').unwrap_or((rest, ""));
            let fallback = match flag {
                "0" => false,
                "1" => true,
                other => return Err(format!("bad fallback flag {:?}", truncate(other, 64))),
            };
            Ok(JobReport::Local {
                fallback,
                reason: sanitize_reason(reason),
            })
        }
        other => Err(format!("unknown report {:?}", truncate(other, 64))),
    }
}

/// Parses `GRANT <index> <slot>`.
pub fn parse_grant(line: &str) -> Result<(usize, u32), String> {
    let mut words = line.split(' ');
    match (words.next(), words.next(), words.next(), words.next()) {
        (Some("GRANT"), Some(i), Some(s), None) => match (i.parse(), s.parse()) {
            (Ok(i), Ok(s)) => Ok((i, s)),
            _ => Err(format!("bad grant {:?}", truncate(line, 64))),
        },
        _ => Err(match line.strip_prefix("ERR ") {
            Some(why) => format!("agent refused: {why}"),
            None => format!("unexpected answer {:?}", truncate(line, 64)),
        }),
    }
}

/// Parses `PONG <pid>`.
pub fn parse_pong(line: &str) -> Result<u32, String> {
    line.strip_prefix("PONG ")
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("unexpected answer {:?}", truncate(line, 64)))
}

/// A reason made safe for one line: control characters become spaces, and it is cut
/// to `MAX_REASON` bytes.
pub fn sanitize_reason(s: &str) -> String {
    let clean: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    truncate(&clean, MAX_REASON).to_string()
}

/// A build id usable as a token (`-` is reserved for "none"); bad characters become `_`.
pub fn sanitize_build(s: &str) -> Option<String> {
    let clean: String = s
        .chars()
        .map(|c| {
            if c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    let clean = truncate(&clean, MAX_TOKEN);
    (!clean.is_empty() && clean != "-").then(|| clean.to_string())
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn build_word(build: Option<&str>) -> &str {
    build.unwrap_or("-")
}

/// The REMOTE request: header and host lines.
pub fn format_remote(build: Option<&str>, randomize: bool, hosts: &[HostOffer]) -> String {
    let mut s = format!(
        "REMOTE build={} randomize={} hosts={}\n",
        build_word(build),
        u8::from(randomize),
        hosts.len()
    );
    for h in hosts {
        let _ = writeln!(s, "{} {}", h.lock_name, h.limit);
    }
    s
}

/// The LOCAL request line.
pub fn format_local(build: Option<&str>, kind: LocalKind, limit: u32, load: Option<f64>) -> String {
    let kind = match kind {
        LocalKind::Compile => "compile",
        LocalKind::Preprocess => "cpp",
    };
    let load = load.map_or_else(|| "-".to_string(), |x| x.to_string());
    format!(
        "LOCAL build={} kind={kind} limit={limit} load={load}\n",
        build_word(build)
    )
}

/// A CACHE request.
pub fn format_cache(build: &str, outcome: CacheOutcome) -> String {
    let outcome = match outcome {
        CacheOutcome::LocalHit => "local",
        CacheOutcome::FarmHit => "farm",
        CacheOutcome::Miss => "miss",
    };
    format!("CACHE build={build} outcome={outcome}\n")
}

/// A REPORT line.
pub fn format_report(r: &JobReport) -> String {
    match r {
        JobReport::Remote { elapsed } => format!("REPORT remote {}\n", elapsed.as_millis()),
        JobReport::ActionCacheHit => "REPORT achit\n".to_string(),
        JobReport::HostFailed { reason } => {
            format!("REPORT hostfail {}\n", sanitize_reason(reason))
        }
        JobReport::Local { fallback, reason } => format!(
            "REPORT local {} {}\n",
            u8::from(*fallback),
            sanitize_reason(reason)
        ),
    }
}

/// The STATS answer. Free text (reasons, lock names) always comes last on its line, so
/// it needs no quoting:
///
/// ```text
/// remote_ok N | action_cache_hits N | local N | fallbacks N | running_remote N | running_local N
/// reason <count> <reason…>
/// host <count> <lock_name>
/// failed <lock_name> <reason…>
/// END
/// ```
pub fn format_stats(st: &BuildStats) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "remote_ok {}", st.remote_ok);
    let _ = writeln!(s, "action_cache_hits {}", st.action_cache_hits);
    let _ = writeln!(s, "local {}", st.local);
    let _ = writeln!(s, "fallbacks {}", st.fallbacks);
    let _ = writeln!(s, "running_remote {}", st.running_remote);
    let _ = writeln!(s, "running_local {}", st.running_local);
    let _ = writeln!(s, "cache_local {}", st.cache_local);
    let _ = writeln!(s, "cache_farm {}", st.cache_farm);
    let _ = writeln!(s, "cache_miss {}", st.cache_miss);
    for (reason, n) in &st.reasons {
        let _ = writeln!(s, "reason {n} {}", sanitize_reason(reason));
    }
    for (host, n) in &st.per_host {
        let _ = writeln!(s, "host {n} {host}");
    }
    for (host, reason) in &st.failed_hosts {
        let _ = writeln!(s, "failed {host} {}", sanitize_reason(reason));
    }
    s.push_str("END\n");
    s
}

/// Folds one STATS answer line into `st`; `Ok(true)` at `END`.
pub fn parse_stats_line(line: &str, st: &mut BuildStats) -> Result<bool, String> {
    if line == "END" {
        return Ok(true);
    }
    if let Some(why) = line.strip_prefix("ERR ") {
        return Err(format!("agent refused: {why}"));
    }
    let bad = || format!("bad stats line {:?}", truncate(line, 64));
    let (key, rest) = line.split_once(' ').ok_or_else(bad)?;
    let number = |t: &str| t.parse::<u64>().map_err(|_| bad());
    match key {
        "remote_ok" => st.remote_ok = number(rest)?,
        "action_cache_hits" => st.action_cache_hits = number(rest)?,
        "local" => st.local = number(rest)?,
        "fallbacks" => st.fallbacks = number(rest)?,
        "running_remote" => st.running_remote = number(rest)?,
        "running_local" => st.running_local = number(rest)?,
        "cache_local" => st.cache_local = number(rest)?,
        "cache_farm" => st.cache_farm = number(rest)?,
        "cache_miss" => st.cache_miss = number(rest)?,
        "reason" | "host" => {
            let (n, text) = rest.split_once(' ').unwrap_or((rest, ""));
            let entry = (text.to_string(), number(n)?);
            if key == "reason" {
                st.reasons.push(entry);
            } else {
                st.per_host.push(entry);
            }
        }
        "failed" => {
            let (host, reason) = rest.split_once(' ').unwrap_or((rest, ""));
            st.failed_hosts.push((host.to_string(), reason.to_string()));
        }
        // Unknown keys are skipped so a newer agent can add fields.
        _ => {}
    }
    Ok(false)
}

fn opt_ms(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".to_string(), |d| d.as_millis().to_string())
}

/// The FARM answer. As in STATS, free text comes last on its line:
///
/// ```text
/// host <lock_name> <limit> <busy> <waiting> <mean_ms|-> <recent_failures> <failed_ms_ago|-> <reason…>
/// local <compile|cpp> <limit> <busy> <waiting>
/// queued_remote N | done_remote N | done_local N | fallbacks N
/// reason <count> <reason…>
/// END
/// ```
///
/// `limit` is the cap the current requests set (0 when none names the host);
/// `waiting` counts the queued requests that could use the host.
pub fn format_farm(f: &FarmInfo) -> String {
    let mut s = String::new();
    for h in &f.hosts {
        let (ago, why) = match &h.last_failure {
            Some((ago, why)) => (opt_ms(Some(*ago)), sanitize_reason(why)),
            None => ("-".to_string(), String::new()),
        };
        let _ = writeln!(
            s,
            "host {} {} {} {} {} {} {ago} {why}",
            h.lock_name,
            h.limit,
            h.busy,
            h.waiting,
            opt_ms(h.mean),
            h.recent_failures
        );
    }
    for (kind, p) in [("compile", &f.local_compile), ("cpp", &f.local_cpp)] {
        let _ = writeln!(s, "local {kind} {} {} {}", p.limit, p.busy, p.waiting);
    }
    let _ = writeln!(s, "queued_remote {}", f.queued_remote);
    let _ = writeln!(s, "done_remote {}", f.done_remote);
    let _ = writeln!(s, "done_local {}", f.done_local);
    let _ = writeln!(s, "fallbacks {}", f.fallbacks);
    for (reason, n) in &f.reasons {
        let _ = writeln!(s, "reason {n} {}", sanitize_reason(reason));
    }
    s.push_str("END\n");
    s
}

/// Folds one FARM answer line into `f`; `Ok(true)` at `END`.
pub fn parse_farm_line(line: &str, f: &mut FarmInfo) -> Result<bool, String> {
    if line == "END" {
        return Ok(true);
    }
    if let Some(why) = line.strip_prefix("ERR ") {
        return Err(format!("agent refused: {why}"));
    }
    let bad = || format!("bad farm line {:?}", truncate(line, 64));
    let (key, rest) = line.split_once(' ').ok_or_else(bad)?;
    let number = |t: &str| t.parse::<u64>().map_err(|_| bad());
    let small = |t: &str| t.parse::<u32>().map_err(|_| bad());
    let ms = |t: &str| -> Result<Option<Duration>, String> {
        if t == "-" {
            Ok(None)
        } else {
            number(t).map(|v| Some(Duration::from_millis(v)))
        }
    };
    match key {
        "host" => {
            let mut w = rest.splitn(8, ' ');
            let mut next = || w.next().ok_or_else(bad);
            let lock_name = token("lock name", next()?)?;
            let limit = small(next()?)?;
            let busy = small(next()?)?;
            let waiting = number(next()?)?;
            let mean = ms(next()?)?;
            let recent_failures = number(next()?)?;
            let ago = ms(next()?)?;
            let why = w.next().unwrap_or("");
            f.hosts.push(FarmHost {
                lock_name,
                limit,
                busy,
                waiting,
                mean,
                recent_failures,
                last_failure: ago.map(|a| (a, why.to_string())),
            });
        }
        "local" => {
            let w: Vec<&str> = rest.split(' ').collect();
            let [kind, limit, busy, waiting] = w[..] else {
                return Err(bad());
            };
            let pool = FarmPool {
                limit: small(limit)?,
                busy: small(busy)?,
                waiting: number(waiting)?,
            };
            match kind {
                "compile" => f.local_compile = pool,
                "cpp" => f.local_cpp = pool,
                _ => {}
            }
        }
        "queued_remote" => f.queued_remote = number(rest)?,
        "done_remote" => f.done_remote = number(rest)?,
        "done_local" => f.done_local = number(rest)?,
        "fallbacks" => f.fallbacks = number(rest)?,
        "reason" => {
            let (n, text) = rest.split_once(' ').unwrap_or((rest, ""));
            f.reasons.push((text.to_string(), number(n)?));
        }
        // Unknown keys are skipped so a newer agent can add fields.
        _ => {}
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_in_any_field_order() {
        assert_eq!(
            parse_header("REMOTE hosts=2 build=b1 randomize=1"),
            Ok(Header::Remote {
                build: Some("b1".into()),
                randomize: true,
                hosts: 2
            })
        );
        assert_eq!(
            parse_header("LOCAL build=- kind=cpp limit=3 load=-"),
            Ok(Header::Local {
                build: None,
                kind: LocalKind::Preprocess,
                limit: 3,
                load: None
            })
        );
        assert_eq!(
            parse_header("LOCAL build=x kind=compile limit=1 load=2.5"),
            Ok(Header::Local {
                build: Some("x".into()),
                kind: LocalKind::Compile,
                limit: 1,
                load: Some(2.5)
            })
        );
        assert_eq!(parse_header("PING"), Ok(Header::Ping));
        assert_eq!(
            parse_header("STATS build=q"),
            Ok(Header::Stats { build: "q".into() })
        );
    }

    #[test]
    fn malformed_headers_are_rejected() {
        for bad in [
            "",
            "HELLO",
            "PING extra",
            "REMOTE build=x randomize=2 hosts=1",
            "REMOTE build=x randomize=0 hosts=0",
            "REMOTE build=x randomize=0 hosts=+1",
            "REMOTE build=x randomize=0 hosts=99999999999999999999",
            "REMOTE build=x randomize=0",
            "REMOTE build=x build=y randomize=0 hosts=1",
            "REMOTE build=x randomize=0 hosts=1 extra=1",
            "REMOTE build=x  randomize=0 hosts=1",
            "LOCAL build=x kind=link limit=1 load=-",
            "LOCAL build=x kind=cpp limit=0 load=-",
            "LOCAL build=x kind=cpp limit=1 load=NaN",
            "LOCAL build=x kind=cpp limit=1 load=-1",
            "LOCAL build=x kind=cpp limit=1 load=inf",
            "STATS build=-",
            "STATS build=",
        ] {
            assert!(parse_header(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn host_lines() {
        assert_eq!(
            parse_host("tcp_10.0.0.2_3632 4"),
            Ok(HostOffer {
                lock_name: "tcp_10.0.0.2_3632".into(),
                limit: 4
            })
        );
        for bad in ["a", "a b", "a 0", "a 1 2", " a 1", "a\t 1", "a -1"] {
            assert!(parse_host(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn reports_round_trip() {
        for r in [
            JobReport::Remote {
                elapsed: Duration::from_millis(1234),
            },
            JobReport::ActionCacheHit,
            JobReport::HostFailed {
                reason: "connect: refused".into(),
            },
            JobReport::Local {
                fallback: true,
                reason: "host failed".into(),
            },
            JobReport::Local {
                fallback: false,
                reason: String::new(),
            },
        ] {
            let line = format_report(&r);
            assert_eq!(parse_report(line_text(line.as_bytes()).unwrap()), Ok(r));
        }
        // A newline inside a reason cannot split the line.
        let line = format_report(&JobReport::HostFailed {
            reason: "a\nb".into(),
        });
        assert_eq!(line, "REPORT hostfail a b\n");
        for bad in [
            "REPORT",
            "REPORT remote x",
            "REPORT local 2 x",
            "REPORT other",
            "GRANT 0 0",
        ] {
            assert!(parse_report(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn stats_round_trip() {
        let st = BuildStats {
            remote_ok: 5,
            action_cache_hits: 2,
            local: 2,
            fallbacks: 1,
            reasons: vec![
                ("host failed: connect refused".into(), 1),
                ("-march=native".into(), 1),
            ],
            per_host: vec![("tcp_a_3632".into(), 3), ("tcp_b_3632".into(), 2)],
            failed_hosts: vec![("tcp_c_3632".into(), "timeout after 4 s".into())],
            running_remote: 1,
            running_local: 0,
            cache_local: 7,
            cache_farm: 8,
            cache_miss: 9,
        };
        let text = format_stats(&st);
        let mut back = BuildStats::default();
        let mut ended = false;
        for line in text.lines() {
            ended = parse_stats_line(line, &mut back).unwrap();
        }
        assert!(ended);
        assert_eq!(back, st);
    }

    #[test]
    fn farm_round_trip() {
        let f = FarmInfo {
            hosts: vec![
                FarmHost {
                    lock_name: "tcp_10.0.0.2_3632".into(),
                    limit: 4,
                    busy: 3,
                    waiting: 7,
                    mean: Some(Duration::from_millis(1250)),
                    recent_failures: 0,
                    last_failure: None,
                },
                FarmHost {
                    lock_name: "tcp_10.0.0.3_3632".into(),
                    limit: 0,
                    busy: 0,
                    waiting: 0,
                    mean: None,
                    recent_failures: 2,
                    last_failure: Some((
                        Duration::from_millis(4200),
                        "cannot connect: 10.0.0.3:3632: Connection refused".into(),
                    )),
                },
            ],
            local_compile: FarmPool {
                limit: 4,
                busy: 1,
                waiting: 0,
            },
            local_cpp: FarmPool {
                limit: 8,
                busy: 2,
                waiting: 1,
            },
            queued_remote: 7,
            done_remote: 120,
            done_local: 9,
            fallbacks: 2,
            reasons: vec![("not a compile (no -c or -S)".into(), 7)],
        };
        let text = format_farm(&f);
        let mut back = FarmInfo::default();
        let mut ended = false;
        for line in text.lines() {
            ended = parse_farm_line(line, &mut back).unwrap();
        }
        assert!(ended);
        assert_eq!(back, f);
        assert_eq!(parse_header("FARM"), Ok(Header::Farm));
        for (outcome, word) in [
            (CacheOutcome::LocalHit, "local"),
            (CacheOutcome::FarmHit, "farm"),
            (CacheOutcome::Miss, "miss"),
        ] {
            let line = format_cache("b1", outcome);
            assert_eq!(line, format!("CACHE build=b1 outcome={word}\n"));
            assert_eq!(
                parse_header(line.trim_end()),
                Ok(Header::Cache {
                    build: "b1".into(),
                    outcome
                })
            );
        }
        assert!(parse_header("CACHE build=- outcome=local").is_err());
        assert!(parse_header("CACHE build=b outcome=maybe").is_err());
        assert!(parse_header("FARM x").is_err());
        assert!(parse_farm_line("host a 1", &mut back).is_err());
        assert!(parse_farm_line("ERR busy", &mut back).is_err());
    }

    #[test]
    fn requests_format_as_they_parse() {
        let hosts = vec![
            HostOffer {
                lock_name: "tcp_a_1".into(),
                limit: 2,
            },
            HostOffer {
                lock_name: "ssh_b".into(),
                limit: 1,
            },
        ];
        let text = format_remote(Some("b"), true, &hosts);
        let mut lines = text.lines();
        assert_eq!(
            parse_header(lines.next().unwrap()),
            Ok(Header::Remote {
                build: Some("b".into()),
                randomize: true,
                hosts: 2
            })
        );
        let back: Vec<HostOffer> = lines.map(|l| parse_host(l).unwrap()).collect();
        assert_eq!(back, hosts);
        let local = format_local(None, LocalKind::Compile, 4, Some(1.5));
        assert_eq!(
            parse_header(local.trim_end()),
            Ok(Header::Local {
                build: None,
                kind: LocalKind::Compile,
                limit: 4,
                load: Some(1.5)
            })
        );
    }

    #[test]
    fn line_checks() {
        assert_eq!(line_text(b"PING\r\n"), Ok("PING"));
        assert!(line_text(b"\xff\xfe\n").is_err());
        assert!(line_text(&vec![b'a'; MAX_LINE + 1]).is_err());
        assert_eq!(sanitize_build("my build"), Some("my_build".into()));
        assert_eq!(sanitize_build("-"), None);
        assert_eq!(sanitize_build(""), None);
        assert_eq!(sanitize_reason(&"é".repeat(MAX_REASON)).len(), MAX_REASON);
    }
}
