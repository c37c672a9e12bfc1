//! The host-list grammar: text (a `DISTCC_HOSTS` value or a hosts file) → [`HostList`].
//!
//! This module only parses. It reads no environment and no files (`config` finds the
//! text), and it makes no placement decisions: shuffling for `--randomize`, picking a
//! slot, locking and backoff all belong to the host selector. It is the one place that
//! knows the syntax, so `--show-hosts` output ([`describe`]) and lock-file stems
//! ([`HostSpec::lock_name`]) come from here too.
//!
//! ```text
//! list     := { ws | comment | token }
//! ws       := ' ' | '\t' | '\n' | '\r' | '\f'
//! comment  := '#' … end of line          ('#' also ends a token)
//! token    := "--randomize"
//!           | "--localslots"     ('=' | '/') N
//!           | "--localslots_cpp" ('=' | '/') N
//!           | "+zeroconf"                          (servers found by zeroconf go here)
//!           | LOCAL | SSH | TCP
//! LOCAL    := "localhost" [LIMIT]                  (nothing else may follow)
//! SSH      := [USER] '@' HOSTID [LIMIT] [':' COMMAND] OPTIONS   (any token with '@')
//! TCP      := HOSTID [LIMIT] [':' PORT] [LIMIT] OPTIONS          (at most one LIMIT)
//! HOSTID   := '[' IPv6 ['%' zone] ']' | name-or-IPv4 (letters, digits, '.', '-', '_')
//! LIMIT    := ('/' | '=') N                        N: decimal, 1 or more
//! PORT     := decimal, 1..65535
//! COMMAND  := any characters up to ','             (path of distccd on the remote)
//! OPTIONS  := { ',' ("lzo" | "cpp" | "down" | "auth" ['=' NAME]) }
//! ```
//!
//! Where distcc is sloppy this parser is strict, because a typo in a host list
//! otherwise shows up much later as a mysterious connection failure:
//! * option names must match exactly (distcc prefix-matches, so `,l` meant `,lzo`), and
//!   each may be given once;
//! * a limit of 0 or a non-number is an error, and so is a bad `--localslots` value
//!   (distcc quietly turns `--localslots=0` into a host of that name);
//! * `--randomize` must be exact (distcc accepts any token starting with it), and any
//!   other token starting with `--` is an unknown list option, never a host name;
//! * trailing text after `localhost/N` is an error (distcc ignores it);
//! * IPv6 addresses without brackets get an error that says to add them.
//!
//! `,auth` means swarmcc's own authentication (a pre-shared key, see `auth`), which
//! only swarmccd speaks. distcc gave the option to GSS-API; its `,auth=NAME` form is
//! still accepted, so that shared host lists load, and means the same as `,auth`.

use std::fmt;
use std::net::Ipv6Addr;

/// Port a TCP host uses when the spec names none.
pub const DEFAULT_PORT: u16 = 3632;
/// Slot limit of a TCP or SSH host without `/N`.
pub const DEFAULT_LIMIT: u32 = 4;
/// Slot limit of a `localhost` entry without `/N`.
pub const LOCALHOST_LIMIT: u32 = 2;
/// Local compile slots when the list has no `--localslots`.
pub const DEFAULT_LOCAL_SLOTS: u32 = 4;
/// Local preprocessor slots when the list has no `--localslots_cpp`.
pub const DEFAULT_LOCAL_SLOTS_CPP: u32 = 8;

/// How a host is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKind {
    /// `localhost` (exactly, or `localhost/N`): compile here, not through a daemon.
    Localhost,
    /// A distccd listening on TCP. `host` is stored without IPv6 brackets.
    Tcp { host: String, port: u16 },
    /// A distccd started over ssh (`[user]@host[:command]`).
    Ssh {
        user: Option<String>,
        host: String,
        command: Option<String>,
    },
}

/// One entry of the host list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    /// The original token, as `--show-hosts` prints it.
    pub spec: String,
    pub kind: HostKind,
    /// Client-side concurrency limit (`/N`); default 4, or 2 for `localhost`.
    pub limit: u32,
    /// `,lzo`: compress (protocol 2, or 3 with `,cpp`).
    pub lzo: bool,
    /// `,cpp`: pump mode. Parsed so that lists written for distcc load; the client
    /// reports it as unsupported and speaks protocol 2.
    pub cpp: bool,
    /// `,down`: listed but never used.
    pub down: bool,
    /// `,auth` (`Some("")`) or `,auth=name` (`Some("name")`): authenticate with the
    /// pre-shared key before the request (swarmccd only; see [`HostSpec::wants_auth`]).
    /// The name is distcc's GSS-API principal, kept for `--show-hosts` only.
    pub auth: Option<String>,
}

impl HostSpec {
    /// The distcc protocol version the options ask for: 1 plain, 2 with `,lzo`,
    /// 3 with `,lzo,cpp`.
    pub fn protocol(&self) -> u32 {
        match (self.lzo, self.cpp) {
            (true, true) => 3,
            (true, false) => 2,
            // `,cpp` without `,lzo` never gets past `parse`; 1 is the safe answer.
            (false, _) => 1,
        }
    }

    /// The bare host name, as the monitor shows it: `127.0.0.1`, `localhost`, `::1`.
    pub fn hostname(&self) -> &str {
        match &self.kind {
            HostKind::Localhost => "localhost",
            HostKind::Tcp { host, .. } | HostKind::Ssh { host, .. } => host,
        }
    }

    /// The stem distcc builds lock and backoff file names from (`cpu_<stem>_<slot>`,
    /// `backoff_<stem>_0`): `localhost`, `tcp_<host>_<port>`, `ssh_<host>`.
    pub fn lock_name(&self) -> String {
        match &self.kind {
            HostKind::Localhost => "localhost".to_string(),
            HostKind::Tcp { host, port } => format!("tcp_{host}_{port}"),
            HostKind::Ssh { host, .. } => format!("ssh_{host}"),
        }
    }

    /// Whether the client must run the authentication handshake with this host.
    pub fn wants_auth(&self) -> bool {
        self.auth.is_some()
    }

    /// True for the `localhost` entry, which runs jobs here without a daemon.
    pub fn is_local(&self) -> bool {
        self.kind == HostKind::Localhost
    }

    /// The options in canonical order, comma-separated (`lzo,cpp,down,auth=x`);
    /// empty when there are none.
    pub fn options_string(&self) -> String {
        let mut opts: Vec<String> = Vec::new();
        if self.lzo {
            opts.push("lzo".into());
        }
        if self.cpp {
            opts.push("cpp".into());
        }
        if self.down {
            opts.push("down".into());
        }
        match self.auth.as_deref() {
            Some("") => opts.push("auth".into()),
            Some(name) => opts.push(format!("auth={name}")),
            None => {}
        }
        opts.join(",")
    }
}

/// A parsed host list: the hosts in list order plus the list-wide settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostList {
    pub hosts: Vec<HostSpec>,
    /// `--randomize` was given; the selector shuffles, the parser keeps list order.
    pub randomize: bool,
    /// `--localslots=N`; callers apply [`DEFAULT_LOCAL_SLOTS`] when `None`.
    pub local_slots: Option<u32>,
    /// `--localslots_cpp=N`; callers apply [`DEFAULT_LOCAL_SLOTS_CPP`] when `None`.
    pub local_slots_cpp: Option<u32>,
    /// `+zeroconf` was given: the index in `hosts` where the discovered servers belong
    /// (`config` puts them there). A second `+zeroconf` adds nothing.
    pub zeroconf: Option<usize>,
}

impl HostList {
    /// The sum of the hosts' limits, which `distcc -j` prints (`localhost a b` → 10).
    ///
    /// Unlike distcc, `,down` hosts are not counted: they never take a job, so counting
    /// them would make `make -j$(swarmcc -j)` oversubscribe the hosts that do.
    pub fn total_slots(&self) -> u32 {
        self.hosts
            .iter()
            .filter(|h| !h.down)
            .fold(0u32, |sum, h| sum.saturating_add(h.limit))
    }

    /// True when the list names no host (pseudo-tokens alone do not count).
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// `--localslots`, or its default.
    pub fn local_slots_or_default(&self) -> u32 {
        self.local_slots.unwrap_or(DEFAULT_LOCAL_SLOTS)
    }

    /// `--localslots_cpp`, or its default.
    pub fn local_slots_cpp_or_default(&self) -> u32 {
        self.local_slots_cpp.unwrap_or(DEFAULT_LOCAL_SLOTS_CPP)
    }
}

/// A token that cannot be parsed: the token, where it starts (1-based line and column,
/// counted in characters) and what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub token: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bad host spec \"{}\" (line {}, column {}): {}",
            self.token, self.line, self.column, self.message
        )
    }
}

impl std::error::Error for ParseError {}

/// Parses a host list (the `DISTCC_HOSTS` value or a hosts file's text).
///
/// An empty list (or one holding only comments and pseudo-tokens) is `Ok` with no
/// hosts: whether that is an error depends on the caller.
pub fn parse(text: &str) -> Result<HostList, ParseError> {
    let mut list = HostList::default();
    for tok in tokens(text) {
        let fail = |message: String| ParseError {
            token: tok.text.to_string(),
            line: tok.line,
            column: tok.column,
            message,
        };
        parse_token(tok.text, &mut list).map_err(fail)?;
    }
    Ok(list)
}

/// One line per host for `swarmcc --show-hosts`: the original spec, two spaces, then
/// what it means, e.g.
/// `127.0.0.1:3632/4,lzo  host=127.0.0.1 port=3632 limit=4 protocol=2 options=lzo`.
/// SSH hosts say `transport=ssh` (plus `user=`/`command=` when given); `localhost`
/// says `transport=local` and has no protocol, since no daemon is involved.
pub fn describe(spec: &HostSpec) -> String {
    let mut out = format!("{}  host={}", spec.spec, spec.hostname());
    match &spec.kind {
        HostKind::Localhost => {
            out.push_str(&format!(" limit={} transport=local", spec.limit));
            return out;
        }
        HostKind::Tcp { port, .. } => out.push_str(&format!(" port={port}")),
        HostKind::Ssh { user, command, .. } => {
            out.push_str(" transport=ssh");
            if let Some(user) = user {
                out.push_str(&format!(" user={user}"));
            }
            if let Some(command) = command {
                out.push_str(&format!(" command={command}"));
            }
        }
    }
    out.push_str(&format!(
        " limit={} protocol={}",
        spec.limit,
        spec.protocol()
    ));
    let options = spec.options_string();
    if !options.is_empty() {
        out.push_str(&format!(" options={options}"));
    }
    out
}

// ---------------------------------------------------------------------------------------
// Tokenizer

struct Token<'a> {
    text: &'a str,
    line: usize,
    column: usize,
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c')
}

/// Splits the text into tokens, dropping whitespace and comments and remembering where
/// each token starts. A line ends at `\n`, `\r\n` or a lone `\r`, so files written on
/// any platform report the line numbers an editor shows.
fn tokens(text: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut line = 1;
    let mut column = 1;
    let mut in_comment = false;
    let mut start: Option<(usize, usize, usize)> = None; // byte offset, line, column
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let ends_token = is_space(c) || c == '#';
        if ends_token {
            if let Some((s, l, col)) = start.take() {
                out.push(Token {
                    text: &text[s..i],
                    line: l,
                    column: col,
                });
            }
        }
        if c == '#' {
            in_comment = true;
        } else if !in_comment && !ends_token && start.is_none() {
            start = Some((i, line, column));
        }
        let newline = c == '\n' || (c == '\r' && chars.peek().map(|&(_, n)| n) != Some('\n'));
        if newline {
            line += 1;
            column = 1;
            in_comment = false;
        } else {
            column += 1;
        }
    }
    if let Some((s, l, col)) = start {
        out.push(Token {
            text: &text[s..],
            line: l,
            column: col,
        });
    }
    out
}

// ---------------------------------------------------------------------------------------
// Token parser. Each function returns the bare message; `parse` adds token and position.

type Res<T> = Result<T, String>;

fn parse_token(tok: &str, list: &mut HostList) -> Res<()> {
    if tok == "--randomize" {
        list.randomize = true;
        return Ok(());
    }
    // `--localslots_cpp` first: `--localslots` is its prefix.
    if let Some(rest) = tok.strip_prefix("--localslots_cpp") {
        list.local_slots_cpp = Some(list_setting("--localslots_cpp", rest)?);
        return Ok(());
    }
    if let Some(rest) = tok.strip_prefix("--localslots") {
        list.local_slots = Some(list_setting("--localslots", rest)?);
        return Ok(());
    }
    if tok.starts_with("--") {
        return Err(format!(
            "unknown list option \"{tok}\" (expected --randomize, --localslots=N or --localslots_cpp=N)"
        ));
    }
    if tok == "+zeroconf" {
        list.zeroconf.get_or_insert(list.hosts.len());
        return Ok(());
    }
    let host = if tok.contains('@') {
        parse_ssh(tok)?
    } else if is_localhost(tok) {
        parse_localhost(tok)?
    } else {
        parse_tcp(tok)?
    };
    list.hosts.push(host);
    Ok(())
}

/// The value of `--localslots` / `--localslots_cpp`: `=N` or `/N`.
fn list_setting(name: &str, rest: &str) -> Res<u32> {
    match rest.chars().next() {
        Some('=') | Some('/') => number(&rest[1..], &format!("{name} value")),
        _ => Err(format!("{name} needs a value, like {name}=4")),
    }
}

/// A positive decimal number; `what` names it in the error.
fn number(digits: &str, what: &str) -> Res<u32> {
    if digits.is_empty() {
        return Err(format!("missing {what}"));
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid {what} \"{digits}\": not a number"));
    }
    match digits.parse::<u32>() {
        Ok(0) => Err(format!("invalid {what} \"{digits}\": must be at least 1")),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("invalid {what} \"{digits}\": too large")),
    }
}

/// `localhost` is the local machine only when spelled exactly, optionally with a limit;
/// `localhost:3632` and `localhost,lzo` name a daemon on this machine.
fn is_localhost(tok: &str) -> bool {
    tok == "localhost" || tok.starts_with("localhost/") || tok.starts_with("localhost=")
}

fn parse_localhost(tok: &str) -> Res<HostSpec> {
    let rest = &tok["localhost".len()..];
    let mut limit = None;
    let rest = take_limit(rest, &mut limit)?;
    if !rest.is_empty() {
        return Err(format!(
            "unexpected \"{rest}\" after the limit: `localhost` takes only /N \
             (to use a daemon on this machine, write e.g. 127.0.0.1{tail})",
            tail = &tok["localhost".len()..]
        ));
    }
    Ok(HostSpec {
        spec: tok.to_string(),
        kind: HostKind::Localhost,
        limit: limit.unwrap_or(LOCALHOST_LIMIT),
        lzo: false,
        cpp: false,
        down: false,
        auth: None,
    })
}

fn parse_tcp(tok: &str) -> Res<HostSpec> {
    let (host, rest) = take_hostid(tok)?;
    let mut limit = None;
    let mut rest = take_limit(rest, &mut limit)?;
    let mut port = DEFAULT_PORT;
    if let Some(after) = rest.strip_prefix(':') {
        let end = after.find(['/', '=', ',']).unwrap_or(after.len());
        port = parse_port(&after[..end])?;
        rest = &after[end..];
    }
    // The limit may also follow the port; a second one anywhere is an error.
    let rest = take_limit(rest, &mut limit)?;
    let mut spec = HostSpec {
        spec: tok.to_string(),
        kind: HostKind::Tcp { host, port },
        limit: limit.unwrap_or(DEFAULT_LIMIT),
        lzo: false,
        cpp: false,
        down: false,
        auth: None,
    };
    take_options(rest, &mut spec)?;
    Ok(spec)
}

fn parse_ssh(tok: &str) -> Res<HostSpec> {
    let at = tok.find('@').unwrap_or(0);
    let user = &tok[..at];
    let user = if user.is_empty() {
        None
    } else {
        Some(user.to_string())
    };
    let (host, rest) = take_hostid(&tok[at + 1..])?;
    let mut limit = None;
    let mut rest = take_limit(rest, &mut limit)?;
    let mut command = None;
    if let Some(after) = rest.strip_prefix(':') {
        let end = after.find(',').unwrap_or(after.len());
        if end == 0 {
            return Err("missing command after ':' (the path of distccd on the remote)".into());
        }
        command = Some(after[..end].to_string());
        rest = &after[end..];
    }
    let mut spec = HostSpec {
        spec: tok.to_string(),
        kind: HostKind::Ssh {
            user,
            host,
            command,
        },
        limit: limit.unwrap_or(DEFAULT_LIMIT),
        lzo: false,
        cpp: false,
        down: false,
        auth: None,
    };
    take_options(rest, &mut spec)?;
    Ok(spec)
}

/// Takes the host name (or bracketed IPv6 address) off the front; returns it without
/// brackets, and the rest of the token.
fn take_hostid(s: &str) -> Res<(String, &str)> {
    if let Some(inner) = s.strip_prefix('[') {
        let close = inner
            .find(']')
            .ok_or_else(|| "missing ']' after the IPv6 address".to_string())?;
        let addr = &inner[..close];
        check_ipv6(addr)?;
        return Ok((addr.to_string(), &inner[close + 1..]));
    }
    let end = s.find(['/', '=', ':', ',']).unwrap_or(s.len());
    let name = &s[..end];
    // A second ':' can only mean an unbracketed IPv6 address; say so rather than
    // complaining about a strange port.
    if s.matches(':').count() > 1 && !s[end..].starts_with(['/', '=']) {
        let addr_end = s.find(['/', '=', ',']).unwrap_or(s.len());
        if s[..addr_end].parse::<Ipv6Addr>().is_ok() || name.is_empty() {
            return Err(format!(
                "IPv6 address must be written in brackets, like [{}]",
                &s[..addr_end]
            ));
        }
    }
    if name.is_empty() {
        return Err("missing host name".into());
    }
    if let Some(bad) = name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(format!("invalid character '{bad}' in host name \"{name}\""));
    }
    if name.starts_with(['-', '.']) {
        return Err(format!(
            "invalid host name \"{name}\": must start with a letter or digit"
        ));
    }
    Ok((name.to_string(), &s[end..]))
}

fn check_ipv6(addr: &str) -> Res<()> {
    // A link-local address may carry a zone (`fe80::1%eth0`), which Ipv6Addr rejects.
    let (ip, zone) = match addr.split_once('%') {
        Some((ip, zone)) => (ip, Some(zone)),
        None => (addr, None),
    };
    if ip.parse::<Ipv6Addr>().is_err() {
        return Err(format!("invalid IPv6 address \"{addr}\""));
    }
    if let Some(zone) = zone {
        let ok = !zone.is_empty()
            && zone
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        if !ok {
            return Err(format!(
                "invalid zone \"{zone}\" in IPv6 address \"{addr}\""
            ));
        }
    }
    Ok(())
}

/// Takes an optional `/N` or `=N` off the front. A second limit in one token is an
/// error rather than a silent override.
fn take_limit<'a>(s: &'a str, limit: &mut Option<u32>) -> Res<&'a str> {
    if !s.starts_with(['/', '=']) {
        return Ok(s);
    }
    let body = &s[1..];
    let end = body.find([':', ',', '/', '=']).unwrap_or(body.len());
    let n = number(&body[..end], "limit")?;
    if let Some(first) = limit {
        return Err(format!("limit given twice ({first} and {n})"));
    }
    *limit = Some(n);
    Ok(&body[end..])
}

fn parse_port(digits: &str) -> Res<u16> {
    if digits.is_empty() {
        return Err("missing port after ':'".into());
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid port \"{digits}\""));
    }
    match digits.parse::<u32>() {
        Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
        _ => Err(format!("invalid port \"{digits}\" (must be 1 to 65535)")),
    }
}

/// Parses `{',' option}` into `spec`; anything else left over is an error.
fn take_options(s: &str, spec: &mut HostSpec) -> Res<()> {
    if s.is_empty() {
        return Ok(());
    }
    let Some(list) = s.strip_prefix(',') else {
        return Err(format!("unexpected \"{s}\" after the host"));
    };
    let mut seen: Vec<&str> = Vec::new();
    for opt in list.split(',') {
        let name = opt.split_once('=').map_or(opt, |(n, _)| n);
        if opt.is_empty() {
            return Err("empty option (two commas, or a trailing comma)".into());
        }
        if seen.contains(&name) {
            return Err(format!("option \"{name}\" given twice"));
        }
        seen.push(name);
        match opt {
            "lzo" => spec.lzo = true,
            "cpp" => spec.cpp = true,
            "down" => spec.down = true,
            "auth" => spec.auth = Some(String::new()),
            _ => match opt.strip_prefix("auth=") {
                Some("") => return Err("missing name after \"auth=\"".into()),
                Some(principal) => spec.auth = Some(principal.to_string()),
                None => {
                    return Err(format!(
                        "unknown option \"{opt}\" (expected lzo, cpp, down or auth[=name])"
                    ))
                }
            },
        }
    }
    if spec.cpp && !spec.lzo {
        return Err("pump mode (',cpp') requires compression (',lzo')".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> HostSpec {
        let list = parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(list.hosts.len(), 1, "{text:?}");
        list.hosts.into_iter().next().unwrap()
    }

    fn tcp(host: &str, port: u16) -> HostKind {
        HostKind::Tcp {
            host: host.into(),
            port,
        }
    }

    fn err(text: &str) -> ParseError {
        match parse(text) {
            Ok(list) => panic!("{text:?} parsed: {list:?}"),
            Err(e) => e,
        }
    }

    fn err_msg(text: &str) -> String {
        err(text).message
    }

    // --- TCP -----------------------------------------------------------------------

    #[test]
    fn bare_host_gets_defaults() {
        let h = one("buildbox");
        assert_eq!(h.kind, tcp("buildbox", 3632));
        assert_eq!(h.limit, 4);
        assert_eq!(h.protocol(), 1);
        assert_eq!(h.spec, "buildbox");
        assert!(!h.lzo && !h.cpp && !h.down && h.auth.is_none());
    }

    #[test]
    fn ipv4_with_port() {
        assert_eq!(one("127.0.0.1:3633").kind, tcp("127.0.0.1", 3633));
    }

    #[test]
    fn limit_after_port() {
        let h = one("127.0.0.1:3633/6");
        assert_eq!(h.kind, tcp("127.0.0.1", 3633));
        assert_eq!(h.limit, 6);
    }

    #[test]
    fn limit_before_port_old_style() {
        let h = one("b.example/5:4001");
        assert_eq!(h.kind, tcp("b.example", 4001));
        assert_eq!(h.limit, 5);
    }

    #[test]
    fn limit_with_equals() {
        assert_eq!(one("box=3").limit, 3);
        assert_eq!(one("box:99=7").limit, 7);
        assert_eq!(one("box=7:99").kind, tcp("box", 99));
    }

    #[test]
    fn limit_without_port() {
        let h = one("box/12");
        assert_eq!(h.kind, tcp("box", 3632));
        assert_eq!(h.limit, 12);
    }

    #[test]
    fn lzo_gives_protocol_2() {
        let h = one("127.0.0.1:3632/4,lzo");
        assert!(h.lzo);
        assert_eq!(h.protocol(), 2);
    }

    #[test]
    fn lzo_cpp_either_order_gives_protocol_3() {
        assert_eq!(one("h,lzo,cpp").protocol(), 3);
        assert_eq!(one("h,cpp,lzo").protocol(), 3);
        assert_eq!(
            one("b.example/5:4001,lzo,cpp").spec,
            "b.example/5:4001,lzo,cpp"
        );
    }

    #[test]
    fn down_option() {
        let h = one("h:1234,down");
        assert!(h.down);
        assert_eq!(h.protocol(), 1);
    }

    #[test]
    fn auth_with_and_without_name() {
        assert_eq!(one("h,auth").auth.as_deref(), Some(""));
        assert_eq!(
            one("h/2,lzo,auth=host/h.example").auth.as_deref(),
            Some("host/h.example")
        );
    }

    #[test]
    fn auth_option_for_swarmccd() {
        let h = one("build1/8,lzo,auth");
        assert!(h.wants_auth() && h.lzo);
        assert_eq!(h.protocol(), 2);
        assert_eq!(
            describe(&h),
            "build1/8,lzo,auth  host=build1 port=3632 limit=8 protocol=2 options=lzo,auth"
        );
        assert!(one("h,auth=x").wants_auth());
        assert!(!one("build1/8,lzo").wants_auth());
    }

    #[test]
    fn options_without_limit_or_port() {
        let h = one("h,lzo,down");
        assert_eq!(h.kind, tcp("h", 3632));
        assert!(h.lzo && h.down);
    }

    #[test]
    fn hostname_with_dash_and_underscore() {
        assert_eq!(one("build-01_x.lan").kind, tcp("build-01_x.lan", 3632));
    }

    #[test]
    fn port_bounds() {
        assert_eq!(one("h:1").kind, tcp("h", 1));
        assert_eq!(one("h:65535").kind, tcp("h", 65535));
    }

    // --- IPv6 ------------------------------------------------------------------------

    #[test]
    fn ipv6_bare_brackets() {
        let h = one("[::1]");
        assert_eq!(h.kind, tcp("::1", 3632));
        assert_eq!(h.hostname(), "::1");
        assert_eq!(h.lock_name(), "tcp_::1_3632");
    }

    #[test]
    fn ipv6_full_form() {
        let h = one("[fe80::1]:3632/6,lzo");
        assert_eq!(h.kind, tcp("fe80::1", 3632));
        assert_eq!(h.limit, 6);
        assert!(h.lzo);
    }

    #[test]
    fn ipv6_limit_before_port_and_zone() {
        let h = one("[fe80::1%eth0]/2:4000");
        assert_eq!(h.kind, tcp("fe80::1%eth0", 4000));
        assert_eq!(h.limit, 2);
    }

    // --- localhost ---------------------------------------------------------------------

    #[test]
    fn localhost_defaults_to_two_slots() {
        let h = one("localhost");
        assert_eq!(h.kind, HostKind::Localhost);
        assert_eq!(h.limit, 2);
        assert!(h.is_local());
        assert_eq!(h.lock_name(), "localhost");
        assert_eq!(h.hostname(), "localhost");
    }

    #[test]
    fn localhost_with_limit() {
        assert_eq!(one("localhost/6").limit, 6);
        assert_eq!(one("localhost=3").kind, HostKind::Localhost);
    }

    #[test]
    fn localhost_with_port_or_options_is_tcp() {
        assert_eq!(one("localhost:3632").kind, tcp("localhost", 3632));
        let h = one("localhost,lzo");
        assert_eq!(h.kind, tcp("localhost", 3632));
        assert!(h.lzo);
        assert_eq!(h.limit, 4);
        assert_eq!(h.lock_name(), "tcp_localhost_3632");
    }

    #[test]
    fn localhost_prefix_is_just_a_name() {
        assert_eq!(one("localhost2").kind, tcp("localhost2", 3632));
    }

    #[test]
    fn localhost_trailing_text_is_error() {
        let m = err_msg("localhost/4:3632");
        assert!(m.contains("\":3632\""), "{m}");
        assert!(err_msg("localhost/4,lzo").contains("127.0.0.1/4,lzo"));
        assert!(err_msg("localhost/0").contains("at least 1"));
    }

    // --- SSH -----------------------------------------------------------------------------

    #[test]
    fn ssh_user_host() {
        let h = one("alice@box");
        assert_eq!(
            h.kind,
            HostKind::Ssh {
                user: Some("alice".into()),
                host: "box".into(),
                command: None
            }
        );
        assert_eq!(h.limit, 4);
        assert_eq!(h.lock_name(), "ssh_box");
    }

    #[test]
    fn ssh_without_user() {
        let h = one("@box/2");
        assert_eq!(
            h.kind,
            HostKind::Ssh {
                user: None,
                host: "box".into(),
                command: None
            }
        );
        assert_eq!(h.limit, 2);
    }

    #[test]
    fn ssh_full_form() {
        let h = one("user@host/4:/opt/bin/distccd,lzo");
        assert_eq!(
            h.kind,
            HostKind::Ssh {
                user: Some("user".into()),
                host: "host".into(),
                command: Some("/opt/bin/distccd".into())
            }
        );
        assert_eq!(h.limit, 4);
        assert_eq!(h.protocol(), 2);
    }

    #[test]
    fn ssh_command_without_limit_keeps_slashes() {
        let h = one("@h:/usr/local/bin/distccd");
        match h.kind {
            HostKind::Ssh { command, .. } => {
                assert_eq!(command.as_deref(), Some("/usr/local/bin/distccd"))
            }
            k => panic!("{k:?}"),
        }
        assert_eq!(h.limit, 4);
    }

    #[test]
    fn ssh_ipv6_in_brackets() {
        let h = one("bob@[::1]/3");
        assert_eq!(h.hostname(), "::1");
        assert_eq!(h.limit, 3);
    }

    #[test]
    fn ssh_errors() {
        assert_eq!(err_msg("user@"), "missing host name");
        assert!(err_msg("@h:").contains("missing command"));
        assert!(err_msg("@h:/x,zip").contains("unknown option \"zip\""));
        assert!(err_msg("a@b@c").contains("invalid character '@'"));
    }

    // --- list-level tokens ---------------------------------------------------------------------

    #[test]
    fn randomize_and_localslots() {
        let l = parse("--randomize --localslots=3 --localslots_cpp/9 a").unwrap();
        assert!(l.randomize);
        assert_eq!(l.local_slots, Some(3));
        assert_eq!(l.local_slots_cpp, Some(9));
        assert_eq!(l.hosts.len(), 1);
        assert_eq!(l.local_slots_or_default(), 3);
    }

    #[test]
    fn localslots_slash_form_and_defaults() {
        let l = parse("--localslots/2").unwrap();
        assert_eq!(l.local_slots, Some(2));
        assert_eq!(l.local_slots_cpp, None);
        assert_eq!(l.local_slots_cpp_or_default(), 8);
        assert!(l.is_empty());
    }

    #[test]
    fn bad_localslots_is_error_not_host() {
        assert!(err_msg("--localslots=0").contains("at least 1"));
        assert!(err_msg("--localslots=x").contains("not a number"));
        assert!(err_msg("--localslots").contains("needs a value"));
        assert!(err_msg("--localslots_cpp:4").contains("needs a value"));
        assert!(err_msg("--localslots=").contains("missing --localslots value"));
    }

    #[test]
    fn randomize_must_be_exact() {
        assert!(err_msg("--randomizer").contains("unknown list option"));
        assert!(err_msg("--foo").contains("\"--foo\""));
    }

    #[test]
    fn zeroconf_marks_its_place() {
        let list = parse("a +zeroconf b +zeroconf").unwrap();
        assert_eq!(list.hosts.len(), 2);
        assert_eq!(list.zeroconf, Some(1));
        assert_eq!(parse("+zeroconf").unwrap().zeroconf, Some(0));
        assert_eq!(parse("a b").unwrap().zeroconf, None);
        // Exact, as distcc: anything longer is a (bad) host name.
        assert!(parse("+zeroconf,lzo").is_err());
    }

    // --- whitespace, comments, empty ----------------------------------------------------------

    #[test]
    fn empty_and_blank_lists() {
        assert_eq!(parse("").unwrap(), HostList::default());
        assert!(parse(" \t\n\r\x0c ").unwrap().is_empty());
        assert!(parse("# nothing here\n   # still nothing")
            .unwrap()
            .is_empty());
    }

    #[test]
    fn all_separators_split_tokens() {
        let l = parse("a\tb\nc\rd\x0ce f\r\ng").unwrap();
        let names: Vec<_> = l.hosts.iter().map(|h| h.hostname().to_string()).collect();
        assert_eq!(names, ["a", "b", "c", "d", "e", "f", "g"]);
    }

    #[test]
    fn comments_end_tokens_and_lines() {
        let l = parse("a#comment b\nc # d e\r\n#f\ng").unwrap();
        let names: Vec<_> = l.hosts.iter().map(|h| h.hostname().to_string()).collect();
        assert_eq!(names, ["a", "c", "g"]);
    }

    #[test]
    fn list_order_is_kept() {
        let l = parse("localhost a/2 b:4000,lzo").unwrap();
        assert_eq!(l.hosts[0].kind, HostKind::Localhost);
        assert_eq!(l.hosts[1].limit, 2);
        assert_eq!(l.hosts[2].protocol(), 2);
    }

    #[test]
    fn total_slots_like_distcc_j() {
        assert_eq!(parse("localhost a b").unwrap().total_slots(), 10);
        assert_eq!(parse("a/3 b/5,down").unwrap().total_slots(), 3);
        assert_eq!(parse("").unwrap().total_slots(), 0);
        let huge = parse("a/4294967295 b/4294967295").unwrap();
        assert_eq!(huge.total_slots(), u32::MAX);
    }

    // --- errors -------------------------------------------------------------------------------

    #[test]
    fn bad_port_message_matches_contract() {
        let e = err("127.0.0.1:abc");
        assert_eq!(
            e.to_string(),
            "bad host spec \"127.0.0.1:abc\" (line 1, column 1): invalid port \"abc\""
        );
    }

    #[test]
    fn port_out_of_range() {
        assert!(err_msg("h:0").contains("must be 1 to 65535"));
        assert!(err_msg("h:65536").contains("must be 1 to 65535"));
        assert!(err_msg("h:99999999999").contains("must be 1 to 65535"));
        assert_eq!(err_msg("h:"), "missing port after ':'");
        assert!(err_msg("h:+5").contains("invalid port \"+5\""));
    }

    #[test]
    fn bad_limits() {
        assert!(err_msg("h/0").contains("invalid limit \"0\""));
        assert!(err_msg("h/x").contains("not a number"));
        assert!(err_msg("h/").contains("missing limit"));
        assert!(err_msg("h:3632/-1").contains("not a number"));
        assert!(err_msg("h/99999999999").contains("too large"));
        assert!(err_msg("h/2:3632/4").contains("limit given twice"));
        assert!(err_msg("h/2/4").contains("limit given twice"));
    }

    #[test]
    fn unknown_and_repeated_options() {
        assert!(err_msg("h,lz").contains("unknown option \"lz\""));
        assert!(err_msg("h,LZO").contains("unknown option"));
        assert!(err_msg("h,lzo,lzo").contains("given twice"));
        assert!(err_msg("h,auth,auth=x").contains("given twice"));
        assert!(err_msg("h,").contains("empty option"));
        assert!(err_msg("h,,lzo").contains("empty option"));
        assert!(err_msg("h,auth=").contains("missing name"));
    }

    #[test]
    fn cpp_requires_lzo() {
        assert_eq!(
            err_msg("h,cpp"),
            "pump mode (',cpp') requires compression (',lzo')"
        );
    }

    #[test]
    fn bad_host_names() {
        assert_eq!(err_msg(":3632"), "missing host name");
        assert_eq!(err_msg("/4"), "missing host name");
        assert!(err_msg("ho$t").contains("invalid character '$'"));
        assert!(err_msg("-j").contains("must start with a letter or digit"));
        assert!(err_msg("h:3632x").contains("invalid port \"3632x\""));
    }

    #[test]
    fn ipv6_errors() {
        assert!(err_msg("::1").contains("brackets"));
        assert!(err_msg("fe80::1:3632").contains("brackets, like [fe80::1:3632]"));
        assert!(err_msg("[::1").contains("missing ']'"));
        assert!(err_msg("[zz]").contains("invalid IPv6 address \"zz\""));
        assert!(err_msg("[]").contains("invalid IPv6 address"));
        assert!(err_msg("[::1]x").contains("unexpected \"x\""));
        assert!(err_msg("[fe80::1%]").contains("invalid zone"));
    }

    #[test]
    fn error_positions_in_multi_line_file() {
        let text = "# build farm\na/4 b:3633,lzo\n\n   c/0\n";
        let e = err(text);
        assert_eq!((e.token.as_str(), e.line, e.column), ("c/0", 4, 4));

        let e = err("a\tb\tc:x");
        assert_eq!((e.line, e.column), (1, 5));

        let e = err("a\r\nb\r\n  bad,opt");
        assert_eq!((e.token.as_str(), e.line, e.column), ("bad,opt", 3, 3));

        // A lone CR is a line break too; comments do not hide later lines.
        let e = err("a\rb # x,y\r  c/0");
        assert_eq!((e.token.as_str(), e.line, e.column), ("c/0", 3, 3));
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let e = err("# café\nok  höst");
        assert_eq!((e.line, e.column), (2, 5));
    }

    #[test]
    fn first_error_wins() {
        let e = err("a/0 b/0");
        assert_eq!(e.token, "a/0");
    }

    // --- describe ------------------------------------------------------------------------------

    #[test]
    fn describe_tcp_matches_contract() {
        assert_eq!(
            describe(&one("127.0.0.1:3632/4,lzo")),
            "127.0.0.1:3632/4,lzo  host=127.0.0.1 port=3632 limit=4 protocol=2 options=lzo"
        );
        assert_eq!(
            describe(&one("[::1]")),
            "[::1]  host=::1 port=3632 limit=4 protocol=1"
        );
    }

    #[test]
    fn describe_localhost_and_ssh() {
        assert_eq!(
            describe(&one("localhost/3")),
            "localhost/3  host=localhost limit=3 transport=local"
        );
        assert_eq!(
            describe(&one("u@h/2:/opt/distccd,lzo,cpp,auth=x")),
            "u@h/2:/opt/distccd,lzo,cpp,auth=x  host=h transport=ssh user=u \
             command=/opt/distccd limit=2 protocol=3 options=lzo,cpp,auth=x"
        );
        assert_eq!(
            describe(&one("@h,down")),
            "@h,down  host=h transport=ssh limit=4 protocol=1 options=down"
        );
    }
}
