//! The end-of-build summary, from the launch's report and the farm's host names.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::Report;
use crate::hosts::{HostKind, HostList};

/// The end-of-build summary: wall time; jobs remote, local, fallbacks with reasons;
/// per-host counts (named as in the host list); failed hosts.
pub(super) fn format_summary(r: &Report, farm: &HostList) -> String {
    let names: HashMap<String, String> = farm
        .hosts
        .iter()
        .map(|h| {
            let shown = match &h.kind {
                HostKind::Tcp { host, port } if host.contains(':') => format!("[{host}]:{port}"),
                HostKind::Tcp { host, port } => format!("{host}:{port}"),
                HostKind::Reapi(_) => h.spec.clone(),
                _ => h.hostname().to_string(),
            };
            (h.lock_name(), shown)
        })
        .collect();
    let name = |lock: &str| names.get(lock).cloned().unwrap_or_else(|| lock.to_string());
    let mut out = String::new();
    let wall = r.wall.as_secs_f64();
    match &r.stats {
        Some(s) => {
            let hits = match s.action_cache_hits {
                0 => String::new(),
                n => format!(" ({n} from REAPI action caches)"),
            };
            let _ = writeln!(
                out,
                "swarmcc: build finished in {wall:.1} s: {} remote{hits}, {} local, {} fallbacks (exit {})",
                s.remote_ok, s.local, s.fallbacks, r.exit_code
            );
            if s.cache_local + s.cache_farm + s.cache_miss > 0 {
                let _ = writeln!(
                    out,
                    "swarmcc:   cache: {} local hits, {} farm hits, {} misses",
                    s.cache_local, s.cache_farm, s.cache_miss
                );
            }
            if !s.per_host.is_empty() {
                let mut hosts = s.per_host.clone();
                hosts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                let parts: Vec<String> = hosts
                    .iter()
                    .map(|(h, n)| format!("{} {n}", name(h)))
                    .collect();
                let _ = writeln!(out, "swarmcc:   per host: {}", parts.join(", "));
            }
            // One line per reason: a reason can itself list several hosts.
            let mut reasons = s.reasons.clone();
            reasons.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            for (why, n) in &reasons {
                let _ = writeln!(out, "swarmcc:   local ({n}): {why}");
            }
            for (h, why) in &s.failed_hosts {
                let _ = writeln!(out, "swarmcc:   failed host {}: {why}", name(h));
            }
        }
        None => {
            let _ = writeln!(
                out,
                "swarmcc: build finished in {wall:.1} s (exit {}); no job counts: {}",
                r.exit_code,
                r.stats_error.as_deref().unwrap_or("no statistics")
            );
        }
    }
    if let Some(port) = r.embedded_port {
        let _ = writeln!(
            out,
            "swarmcc:   embedded swarmccd on 127.0.0.1:{port} stopped"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use super::super::JobsSetting;
    use crate::agent::BuildStats;
    use crate::hosts;

    #[test]
    fn summary_names_hosts_and_reasons() {
        let farm = hosts::parse("127.0.0.1:4000/3,lzo [::1]:5000/2").unwrap();
        let stats = BuildStats {
            remote_ok: 5,
            action_cache_hits: 0,
            local: 2,
            fallbacks: 1,
            reasons: vec![("linking".into(), 1), ("host failed: refused".into(), 1)],
            per_host: vec![("tcp_127.0.0.1_4000".into(), 5)],
            failed_hosts: vec![("tcp_::1_5000".into(), "connection refused".into())],
            running_remote: 0,
            running_local: 0,
            cache_local: 3,
            cache_farm: 2,
            cache_miss: 4,
        };
        let r = Report {
            exit_code: 0,
            stats: Some(stats),
            stats_error: None,
            wall: Duration::from_millis(1500),
            build_id: "b".into(),
            embedded_port: None,
            jobs: JobsSetting::Jobserver(9),
            summary: String::new(),
        };
        let s = format_summary(&r, &farm);
        assert!(
            s.contains("in 1.5 s: 5 remote, 2 local, 1 fallbacks"),
            "{s}"
        );
        assert!(s.contains("per host: 127.0.0.1:4000 5"), "{s}");
        assert!(
            s.contains("swarmcc:   cache: 3 local hits, 2 farm hits, 4 misses\n"),
            "{s}"
        );
        assert!(s.contains("swarmcc:   local (1): linking\n"), "{s}");
        assert!(
            s.contains("failed host [::1]:5000: connection refused"),
            "{s}"
        );
        let none = Report {
            stats: None,
            stats_error: Some("agent down".into()),
            embedded_port: Some(7),
            ..r
        };
        let s = format_summary(&none, &farm);
        assert!(s.contains("no job counts: agent down"), "{s}");
        assert!(s.contains("127.0.0.1:7 stopped"), "{s}");
    }
}
