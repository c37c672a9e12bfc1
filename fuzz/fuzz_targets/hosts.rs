//! The host-list grammar on arbitrary text: `hosts::parse`, `describe`, and re-parsing.
//!
//! Checks: no panic; error positions inside the text; every parsed host obeys the
//! grammar's promises (limit ≥ 1, port ≥ 1, `,cpp` only with `,lzo`, the spec is a
//! whitespace-free token); its `spec` re-parses alone to the same host; the hosts'
//! specs joined by newlines re-parse to the same hosts; `describe` says what the
//! fields say; the canonical spelling (`HostSpec::canonical`) parses to the same host;
//! each warning points at its token, one per token at most, in list order.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarmcc::hosts::{self, HostKind, HostList, HostSpec};
use swarmcc_fuzz::set_max_alloc;

fn check_host(h: &HostSpec) {
    assert!(h.limit >= 1);
    assert!(!h.cpp || h.lzo, ",cpp without ,lzo accepted");
    assert!((1..=3).contains(&h.protocol()));
    assert!(!h.spec.is_empty());
    assert!(!h.spec.contains([' ', '\t', '\n', '\r', '\x0c', '#']));
    match &h.kind {
        HostKind::Localhost => assert!(!h.lzo && !h.cpp && !h.down && h.auth.is_none()),
        HostKind::Tcp { host, port } => {
            assert!(*port >= 1);
            assert!(!host.is_empty());
        }
        HostKind::Ssh { host, command, .. } => {
            assert!(!host.is_empty());
            assert!(command.as_deref() != Some(""));
        }
        HostKind::Reapi(r) => {
            assert!(r.port >= 1 && !r.host.is_empty());
            assert!(!h.lzo && !h.cpp && h.auth.is_none());
            assert!(r.tls || r.ca_file.is_none(), "ca= without TLS accepted");
        }
    }

    let alone = hosts::parse(&h.spec).expect("a parsed spec must parse alone");
    assert_eq!(alone.hosts.len(), 1);
    assert_eq!(&alone.hosts[0], h, "spec re-parses differently");

    let text = hosts::describe(h);
    let mut words = text.split("  ");
    assert_eq!(words.next(), Some(h.spec.as_str()));
    let fields: Vec<(&str, &str)> = words
        .next()
        .expect("describe has fields")
        .split(' ')
        .map(|w| w.split_once('=').expect("key=value"))
        .collect();
    let field = |k: &str| fields.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
    assert_eq!(field("host"), Some(h.hostname()));
    assert_eq!(field("limit"), Some(h.limit.to_string().as_str()));
    // A REAPI engine speaks no distcc protocol: describe says its transport instead.
    if let HostKind::Reapi(r) = &h.kind {
        assert_eq!(field("port"), Some(r.port.to_string().as_str()));
        assert!(field("transport").is_some_and(|t| t.starts_with("reapi")));
    } else if !h.is_local() {
        assert_eq!(field("protocol"), Some(h.protocol().to_string().as_str()));
        let opts = h.options_string();
        assert_eq!(
            field("options"),
            (!opts.is_empty()).then_some(opts.as_str())
        );
    }

    let canon = h.canonical();
    let parsed = match hosts::parse(&canon) {
        Ok(list) => list,
        Err(e) => panic!("canonical spelling {canon:?} of {:?} refused: {e}", h.spec),
    };
    assert_eq!(parsed.hosts.len(), 1, "{canon:?}");
    let mut want = h.clone();
    want.spec = canon;
    assert_eq!(parsed.hosts[0], want);
}

fn check_warnings(text: &str, list: &HostList) {
    let mut last = (0, 0);
    for w in &list.warnings {
        let _ = w.to_string();
        assert!((w.line, w.column) > last, "warnings out of order or two for a token");
        last = (w.line, w.column);
        assert!(!w.token.is_empty() && !w.message.is_empty());
        assert!(text.contains(&w.token), "warning token not in the text");
    }
}

fuzz_target!(|data: &[u8]| {
    set_max_alloc(64 * data.len() + 64 * 1024);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match hosts::parse(text) {
        Ok(list) => {
            let _ = list.total_slots();
            for h in &list.hosts {
                check_host(h);
            }
            check_warnings(text, &list);
            let joined: Vec<&str> = list.hosts.iter().map(|h| h.spec.as_str()).collect();
            let again = hosts::parse(&joined.join("\n")).expect("specs re-parse together");
            assert_eq!(again.hosts, list.hosts);
        }
        Err(e) => {
            let _ = e.to_string();
            assert!(e.line >= 1 && e.column >= 1);
            assert!(
                e.line <= text.split(['\n', '\r']).count(),
                "line out of range"
            );
            assert!(!e.token.is_empty());
            assert!(text.contains(&e.token), "error token not in the text");
        }
    }
});
