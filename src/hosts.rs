//! The host-list grammar: text (a `DISTCC_HOSTS` value or a hosts file) → [`HostList`].
//!
//! This module only parses. It reads no environment and no files (`config` finds the
//! text), and it makes no placement decisions: shuffling for `--randomize`, picking a
//! slot, locking and backoff all belong to the host selector. It is the one place that
//! knows the syntax, so `--show-hosts` output ([`describe`]) and lock-file stems
//! ([`HostSpec::lock_name`]) come from here too.
//!
//! The canonical grammar (what parses without a warning):
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
//! LOCAL    := "localhost" [LIMIT]
//! SSH      := [USER] '@' HOSTID [LIMIT] [':' COMMAND] OPTIONS   (any token with '@')
//! TCP      := HOSTID [LIMIT] [':' PORT] [LIMIT] OPTIONS          (at most one LIMIT)
//! HOSTID   := '[' IPv6 ['%' zone] ']' | name-or-IPv4 (letters, digits, '.', '-', '_')
//! LIMIT    := ('/' | '=') N                        N: decimal, 1 or more
//! PORT     := decimal, 1..65535
//! COMMAND  := any characters up to ','             (path of distccd on the remote)
//! OPTIONS  := { ',' ("lzo" | "cpp" | "down" | "auth" ['=' NAME]) }   (each once;
//!             `,cpp` only with `,lzo`; NAME ends at ',', '/' or ':')
//! ```
//!
//! Beyond it the parser follows distcc 3.4 (`src/hosts.c`), because host lists written
//! for distcc must not turn a farm off: a token distcc refuses is an error (and the
//! whole list with it, as in distcc: [`ParseError`] names the token, line and column),
//! and a token it takes is taken with one [`ParseWarning`] that says what swarmcc read
//! (`read as h:3632/7,lzo; …`, the canonical form) and where distcc 3.4 differs.
//!
//! Refused, as by distcc: a limit of 0 or without digits (`h/0`, `h/abc`, `h/`); text
//! after a port other than `/`, `,` or `=` (`h:12ab`, `h:1:2`); an option that is not
//! a prefix-match (`h,l`, `h,,lzo`, `h,`, `h,zstd`); `,cpp` without `,lzo`; no host
//! name (`:3632`, `user@`); IPv6 without brackets (`fe80::1`; the error says to add
//! them); `[::1` without `]`; `--localslots/0` (to distcc a host "--localslots" with a
//! bad limit).
//!
//! Taken with a warning, as distcc takes them:
//! * options are prefix-matched and repeatable (`,lzoxyz` is `,lzo`, `,downtown` is
//!   `,down`); distcc then stops reading the token, so junk after an option, or after a
//!   limit (`h/4xyz`, `localhost/3,lzo`) or `]`, is ignored;
//! * a second limit replaces the first (`h/4/8` is 8); a sign is dropped (`h/+3`);
//!   a limit too large for 32 bits is the largest one;
//! * `--randomize` is prefix-matched; `--localslots` without a value, and a bad
//!   `--localslots_cpp`, are ignored;
//! * any character but the delimiters makes a host name (`h!x`, `a@b@c`'s host `b@c`),
//!   and brackets around a non-address are just a name (`[zz]`);
//! * `@h:` (empty command) is `@h`; `auth=` (empty name) is `auth`, and a name ends at
//!   '/' or ':' as in distcc's GSS-API builds (Debian's), the rest of the token ignored.
//!
//! Taken with what was evidently meant, where distcc's reading loses it: a limit,
//! port or ssh command after an option (`h,lzo/7` is limit 7 and `h,lzo:4000` port
//! 4000, which distcc 3.4 drops; `@h,lzo/3` likewise); an empty port (`h:`) is the
//! default port, not port 0;
//! `user@fe80::1` is the IPv6 address (distcc: host `fe80`, command `:1`).
//!
//! Left out with a warning, where distcc takes the token but its reading cannot work:
//! a port outside 1..65535 (`h:0`, `h:99999`, `h:-5`), a negative limit (`h/-3`), a
//! host name starting with '-' (`--foo`, `-j`; ssh would read it as an option), a bad
//! `--localslots=N` (distcc makes it a host of that name), and `h=0` (a bad limit to
//! swarmcc, a host named "h=0" to distcc 3.4).
//!
//! One reading differs from distcc 3.4 on purpose and without a warning: `=` ends a
//! host name and starts a limit (`h=3`, `localhost=3`), as in later distcc, where 3.4
//! reads a host named "h=3". Three of distcc's readings are not copied: `h/ 3` and
//! `h: 5`, where distcc reads the number from the next token (swarmcc refuses `h/` and
//! reads `h:` as above); a `#` right after a port (`h:3632#c`, `h:#c`), which distcc
//! refuses and swarmcc reads as a comment; and limits of 2^32 or more, which distcc's
//! `atoi` wraps (`h/4294967296` becomes 0 and is refused).
//!
//! `,auth` means swarmcc's own authentication (a pre-shared key, see `auth`), which
//! only swarmccd speaks. distcc gave the option to GSS-API; its `,auth=NAME` form is
//! still accepted, so that shared host lists load, and means the same as `,auth`.

mod number;
mod reapi;
mod spec;

pub use reapi::ReapiHost;

use std::fmt;

use number::Count;
use spec::{Res, Taken};

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
    /// A Remote Execution API engine (`reapi://`, `reapis://`; see `hosts::reapi`).
    Reapi(ReapiHost),
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
            HostKind::Reapi(r) => &r.host,
        }
    }

    /// The stem distcc builds lock and backoff file names from (`cpu_<stem>_<slot>`,
    /// `backoff_<stem>_0`): `localhost`, `tcp_<host>_<port>`, `ssh_<host>`.
    pub fn lock_name(&self) -> String {
        match &self.kind {
            HostKind::Localhost => "localhost".to_string(),
            HostKind::Tcp { host, port } => format!("tcp_{host}_{port}"),
            HostKind::Ssh { host, .. } => format!("ssh_{host}"),
            HostKind::Reapi(r) => format!("reapi_{}_{}", r.host, r.port),
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

    /// The spec written from the fields in the grammar's canonical form, port before
    /// limit (`h:3632/4,lzo`, `[::1]:3632/4`, `u@h/4:/bin/distccd`, `localhost/2`),
    /// which parses back to the same host without a warning when the name is valid.
    pub fn canonical(&self) -> String {
        // Brackets keep a name whole that would otherwise end at ':' or '=' (and
        // one that starts with '[').
        let bracketed = |name: &str| {
            if name.contains([':', '=']) || name.starts_with('[') {
                format!("[{name}]")
            } else {
                name.to_string()
            }
        };
        let mut out = match &self.kind {
            HostKind::Reapi(r) => return reapi::canonical(r, self.limit, self.down),
            HostKind::Localhost => format!("localhost/{}", self.limit),
            HostKind::Tcp { host, port } => {
                format!("{}:{port}/{}", bracketed(host), self.limit)
            }
            HostKind::Ssh {
                user,
                host,
                command,
            } => {
                let mut s = format!(
                    "{}@{}/{}",
                    user.as_deref().unwrap_or(""),
                    bracketed(host),
                    self.limit
                );
                if let Some(command) = command {
                    s.push(':');
                    s.push_str(command);
                }
                s
            }
        };
        let options = self.options_string();
        if !options.is_empty() {
            out.push(',');
            out.push_str(&options);
        }
        out
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
    /// One per token taken (or left out) with a caveat, in list order; the callers
    /// that load the list show them.
    pub warnings: Vec<ParseWarning>,
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

/// Something about a token that distcc 3.4 takes but swarmcc reads with a caveat:
/// the token, where it starts (as in [`ParseError`]) and what swarmcc made of it
/// (`read as h:3632/7,lzo; …`, `skipped: …`, `ignored: …`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseWarning {
    pub token: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ParseWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "host spec \"{}\" (line {}, column {}): {}",
            self.token, self.line, self.column, self.message
        )
    }
}

/// Parses a host list (the `DISTCC_HOSTS` value or a hosts file's text).
///
/// A token that distcc 3.4 refuses makes the whole list an error, as in distcc; one
/// that it takes is taken (or, where distcc's reading cannot work, left out) with a
/// warning in [`HostList::warnings`], one per token.
///
/// An empty list (or one holding only comments and pseudo-tokens) is `Ok` with no
/// hosts: whether that is an error depends on the caller.
pub fn parse(text: &str) -> Result<HostList, ParseError> {
    let mut list = HostList::default();
    for tok in tokens(text) {
        let mut warning = None;
        parse_token(tok.text, &mut list, &mut warning).map_err(|message| ParseError {
            token: tok.text.to_string(),
            line: tok.line,
            column: tok.column,
            message,
        })?;
        if let Some(message) = warning {
            list.warnings.push(ParseWarning {
                token: tok.text.to_string(),
                line: tok.line,
                column: tok.column,
                message,
            });
        }
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
        HostKind::Reapi(r) => return reapi::describe(out, r, spec),
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

/// The message of a token's warning, when it has one.
type Warning = Option<String>;

fn parse_token(tok: &str, list: &mut HostList, warning: &mut Warning) -> Res<()> {
    if let Some(rest) = tok.strip_prefix("--randomize") {
        list.randomize = true;
        if !rest.is_empty() {
            *warning = Some(
                "read as --randomize, as distcc 3.4 takes any token that starts with it".into(),
            );
        }
        return Ok(());
    }
    // `--localslots_cpp` first: `--localslots` is its prefix.
    if let Some(rest) = tok.strip_prefix("--localslots_cpp") {
        // distcc 3.4 never takes this token for a host: with a bad value it falls to
        // the `--localslots` check, which finds no value after that name and drops it.
        let setting = list_setting("--localslots_cpp", rest);
        *warning = apply_setting(&mut list.local_slots_cpp, "--localslots_cpp", setting);
        return Ok(());
    }
    if let Some(rest) = tok.strip_prefix("--localslots") {
        match list_setting("--localslots", rest) {
            // distcc 3.4 says so, then reads the whole token as a host name.
            Setting::Bad(why) => {
                spec::host(tok, &mut Vec::new()).map_err(|_| why.clone())?;
                *warning = Some(format!(
                    "skipped: {why}; distcc 3.4 says so, then takes \"{tok}\" as a host \
                     name, which cannot be reached"
                ));
            }
            setting => *warning = apply_setting(&mut list.local_slots, "--localslots", setting),
        }
        return Ok(());
    }
    if tok == "+zeroconf" {
        list.zeroconf.get_or_insert(list.hosts.len());
        return Ok(());
    }
    let mut notes = Vec::new();
    let taken = match reapi::host(tok) {
        Some(taken) => taken?,
        None => spec::host(tok, &mut notes)?,
    };
    match taken {
        Taken::Host(host) => {
            if !notes.is_empty() {
                *warning = Some(format!(
                    "read as {}; {}",
                    host.canonical(),
                    notes.join("; ")
                ));
            }
            list.hosts.push(host);
        }
        Taken::Skipped(why) => *warning = Some(format!("skipped: {why}")),
    }
    Ok(())
}

/// A `--localslots` / `--localslots_cpp` value, read as distcc 3.4 reads it.
enum Setting {
    /// The value, and notes about how it was written.
    Value(u32, Vec<String>),
    /// No `=` or `/` after the name: distcc ignores the token.
    Missing,
    /// Below zero: distcc takes it, and it leaves no slot.
    BelowOne(String),
    /// Zero or not a number: what distcc calls a bad multiplier.
    Bad(String),
}

fn list_setting(name: &str, rest: &str) -> Setting {
    let Some(body) = rest.strip_prefix(['=', '/']) else {
        return Setting::Missing;
    };
    let mut notes = Vec::new();
    match number::count(body, &format!("{name} value"), &mut notes) {
        Err(why) => Setting::Bad(why),
        Ok((Count::Negative(v), _)) => Setting::BelowOne(v),
        Ok((Count::Positive { n, .. }, rest)) => {
            if !rest.is_empty() {
                notes.push(format!(
                    "ignored \"{rest}\" after the value, as distcc 3.4 does"
                ));
            }
            Setting::Value(n, notes)
        }
    }
}

/// Stores a setting's value; the warning to give, if any.
fn apply_setting(slot: &mut Option<u32>, name: &str, setting: Setting) -> Warning {
    match setting {
        Setting::Value(n, notes) => {
            *slot = Some(n);
            (!notes.is_empty()).then(|| format!("read as {name}={n}; {}", notes.join("; ")))
        }
        Setting::Missing => Some(format!(
            "ignored: {name} needs a value, like {name}=4 (distcc 3.4 ignores it too)"
        )),
        Setting::BelowOne(v) => Some(format!(
            "ignored: {name} value {v} is below 1 (distcc 3.4 would take it)"
        )),
        Setting::Bad(why) => Some(format!(
            "ignored: {why} (distcc 3.4 says so and ignores it)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one host of a canonical spec, which parses without a warning.
    fn one(text: &str) -> HostSpec {
        let list = parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(list.hosts.len(), 1, "{text:?}");
        assert_eq!(list.warnings, [], "{text:?}");
        list.hosts.into_iter().next().unwrap()
    }

    /// The one host of a sloppy spec, and the message of its one warning.
    fn sloppy(text: &str) -> (HostSpec, String) {
        let list = parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(list.hosts.len(), 1, "{text:?}");
        assert_eq!(list.warnings.len(), 1, "{text:?}: {:?}", list.warnings);
        let w = list.warnings.into_iter().next().unwrap();
        assert_eq!((w.token.as_str(), w.line, w.column), (text, 1, 1));
        (list.hosts.into_iter().next().unwrap(), w.message)
    }

    /// The message of a token that is left out with a warning.
    fn skipped(text: &str) -> String {
        let list = parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(list.hosts, [], "{text:?}");
        assert_eq!(list.warnings.len(), 1, "{text:?}: {:?}", list.warnings);
        let message = list.warnings.into_iter().next().unwrap().message;
        assert!(message.starts_with("skipped: "), "{text:?}: {message}");
        message
    }

    fn tcp(host: &str, port: u16) -> HostKind {
        HostKind::Tcp {
            host: host.into(),
            port,
        }
    }

    fn ssh(user: Option<&str>, host: &str, command: Option<&str>) -> HostKind {
        HostKind::Ssh {
            user: user.map(Into::into),
            host: host.into(),
            command: command.map(Into::into),
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
            one("h/2,lzo,auth=h.example").auth.as_deref(),
            Some("h.example")
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
    fn localhost_trailing_text_is_ignored_with_a_warning() {
        let (h, m) = sloppy("localhost/4:3632");
        assert_eq!((h.kind, h.limit), (HostKind::Localhost, 4));
        assert!(
            m.starts_with("read as localhost/4; ignored \":3632\""),
            "{m}"
        );
        assert!(m.contains("127.0.0.1/4:3632"), "{m}");
        let (h, m) = sloppy("localhost/3xyz");
        assert_eq!(h.limit, 3);
        assert!(m.contains("ignored \"xyz\" after the limit"), "{m}");
        assert!(sloppy("localhost/4,lzo").1.contains("127.0.0.1/4,lzo"));
        assert!(err_msg("localhost/0").contains("at least 1"));
        assert!(err_msg("localhost/").contains("missing limit"));
        assert!(skipped("localhost/-2").contains("below 1"));
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
    fn ssh_errors_and_sloppy_forms() {
        assert_eq!(err_msg("user@"), "missing host name");
        assert_eq!(err_msg("u@::1"), "missing host name");
        assert!(err_msg("@h:/x,zip").contains("unknown option \"zip\""));
        let (h, m) = sloppy("@h:");
        assert_eq!(h.kind, ssh(None, "h", None));
        assert!(m.contains("empty command"), "{m}");
        let (h, m) = sloppy("a@b@c");
        assert_eq!(h.kind, ssh(Some("a"), "b@c", None));
        assert!(m.contains("\"b@c\" is not a valid host name"), "{m}");
        let (h, m) = sloppy("@h/3xyz");
        assert_eq!(h.limit, 3);
        assert!(m.contains("ignored \"xyz\""), "{m}");
        // The command runs to ',': "/3" is part of it, as in distcc.
        assert_eq!(one("@h:cmd/3").kind, ssh(None, "h", Some("cmd/3")));
    }

    #[test]
    fn ssh_limit_or_command_after_an_option_is_taken() {
        let (h, m) = sloppy("@h,lzo/3");
        assert_eq!((h.limit, h.lzo), (3, true));
        assert_eq!(
            m,
            "read as @h/3,lzo; distcc 3.4 would ignore the /3 after an option"
        );
        let (h, _) = sloppy("u@h,lzo:/opt/distccd,down");
        assert_eq!(h.kind, ssh(Some("u"), "h", Some("/opt/distccd")));
        assert!(h.lzo && h.down);
    }

    #[test]
    fn ssh_unbracketed_ipv6_means_the_address() {
        let (h, m) = sloppy("u@fe80::1/3");
        assert_eq!(h.kind, ssh(Some("u"), "fe80::1", None));
        assert_eq!(h.limit, 3);
        assert!(
            m.starts_with("read as u@[fe80::1]/3; an IPv6 address needs brackets"),
            "{m}"
        );
        assert!(m.contains("host \"fe80\" and command \":1\""), "{m}");
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
    fn bad_localslots_value() {
        // distcc 3.4 turns `--localslots=0` into a host of that name: left out here.
        let m = skipped("--localslots=0");
        assert!(
            m.contains("invalid --localslots value \"0\": must be at least 1"),
            "{m}"
        );
        assert!(m.contains("\"--localslots=0\" as a host name"), "{m}");
        assert!(skipped("--localslots=x").contains("not a number"));
        assert!(skipped("--localslots=").contains("missing --localslots value"));
        // …but `--localslots/0` is host "--localslots" with a bad limit: refused.
        assert!(err_msg("--localslots/0").contains("must be at least 1"));
        assert!(err_msg("--localslots/x").contains("not a number"));
        assert!(err_msg("--localslots=0/0").contains("must be at least 1"));
        // No value at all, or a bad --localslots_cpp: distcc drops the token.
        for tok in [
            "--localslots",
            "--localslots:4",
            "--localslotsX",
            "--localslots_cpp",
        ] {
            let l = parse(tok).unwrap();
            assert_eq!((l.local_slots, l.local_slots_cpp), (None, None), "{tok}");
            assert!(l.warnings[0].message.contains("needs a value"), "{tok}");
        }
        let l = parse("--localslots_cpp=0 --localslots=-2").unwrap();
        assert_eq!(
            (l.local_slots, l.local_slots_cpp, l.hosts.len()),
            (None, None, 0)
        );
        assert!(l.warnings[0]
            .message
            .starts_with("ignored: invalid --localslots_cpp"));
        assert!(l.warnings[1].message.contains("-2 is below 1"));
        let l = parse("--localslots=5xyz --localslots_cpp/+3").unwrap();
        assert_eq!((l.local_slots, l.local_slots_cpp), (Some(5), Some(3)));
        assert!(l.warnings[0]
            .message
            .starts_with("read as --localslots=5; ignored \"xyz\""));
        assert!(l.warnings[1].message.contains("sign"));
    }

    #[test]
    fn randomize_is_prefix_matched_and_other_dash_tokens_are_skipped() {
        let l = parse("--randomizeX a").unwrap();
        assert!(l.randomize);
        assert!(l.warnings[0].message.starts_with("read as --randomize"));
        let m = skipped("--foo");
        assert!(m.contains("\"--foo\" is not a list option"), "{m}");
        assert!(m.contains("distcc 3.4 would take it as a host name"), "{m}");
        assert!(skipped("-j").contains("\"-j\" cannot be a host name"));
        assert!(skipped("u@-oProxyCommand").contains("'-'"));
        skipped("u@-oProxyCommand=x");
        assert!(err_msg("--foo/0").contains("must be at least 1"));
    }

    #[test]
    fn zeroconf_marks_its_place() {
        let list = parse("a +zeroconf b +zeroconf").unwrap();
        assert_eq!(list.hosts.len(), 2);
        assert_eq!(list.zeroconf, Some(1));
        assert_eq!(parse("+zeroconf").unwrap().zeroconf, Some(0));
        assert_eq!(parse("a b").unwrap().zeroconf, None);
        // Exact, as distcc: anything longer is a host name, which distcc 3.4 takes
        // too, so it is kept with a warning and no discovery happens.
        let odd = parse("+zeroconf,lzo").unwrap();
        assert_eq!(odd.zeroconf, None);
        assert_eq!(odd.hosts[0].canonical(), "+zeroconf:3632/4,lzo");
        assert_eq!(odd.warnings.len(), 1);
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
    fn port_out_of_range_is_skipped() {
        for tok in ["h:0", "h:65536", "h:99999999999", "h:-5"] {
            assert!(skipped(tok).contains("outside 1..65535"), "{tok}");
        }
        // …but a refusal later in the token still refuses it.
        assert!(err_msg("h:0/0").contains("invalid limit"));
        let (h, m) = sloppy("h:");
        assert_eq!(h.kind, tcp("h", 3632));
        assert!(
            m.contains("empty port: 3632 is used (distcc 3.4 would use port 0)"),
            "{m}"
        );
        assert_eq!(sloppy("h:/3").0.limit, 3);
        let (h, m) = sloppy("h:+5");
        assert_eq!(h.kind, tcp("h", 5));
        assert!(m.contains("sign"), "{m}");
        assert!(err_msg("h:+").contains("invalid port \"+\""));
    }

    #[test]
    fn bad_limits() {
        assert!(err_msg("h/0").contains("invalid limit \"0\""));
        assert!(err_msg("h/x").contains("not a number"));
        assert!(err_msg("h/").contains("missing limit"));
        assert!(err_msg("h/-").contains("not a number"));
        assert!(err_msg("h:3632/-0").contains("at least 1"));
        assert!(err_msg("h/3/0").contains("invalid limit \"0\""));
    }

    #[test]
    fn sloppy_limits() {
        // The last of two limits counts, as in distcc; a third is junk.
        let (h, m) = sloppy("h/4/8");
        assert_eq!(h.limit, 8);
        assert!(m.contains("limit given twice: the last, 8, counts"), "{m}");
        assert_eq!(sloppy("h/2:3632/4").0.limit, 4);
        let (h, m) = sloppy("h/4/8/9");
        assert_eq!(h.limit, 8);
        assert!(m.contains("ignored \"/9\" after the limit"), "{m}");
        let (h, m) = sloppy("h/4xyz:4000");
        assert_eq!((h.limit, h.kind), (4, tcp("h", 3632)));
        assert!(m.contains("ignored \"xyz:4000\" after the limit"), "{m}");
        let (h, m) = sloppy("h/+3");
        assert_eq!(h.limit, 3);
        assert!(m.contains("sign"), "{m}");
        let (h, m) = sloppy("h/99999999999");
        assert_eq!(h.limit, u32::MAX);
        assert!(m.contains("too large"), "{m}");
        assert!(skipped("h:3632/-1").contains("limit -1 is below 1"));
    }

    #[test]
    fn equals_limit_is_kept_and_a_bad_one_skips_the_token() {
        // distcc 3.4 reads `h=3` as a host named "h=3"; swarmcc, as later distcc, as
        // a limit, without a warning.
        assert_eq!(one("h=3").limit, 3);
        assert_eq!(one("localhost=3").kind, HostKind::Localhost);
        let m = skipped("h=0");
        assert!(m.contains("invalid limit \"0\""), "{m}");
        assert!(m.contains("\"h=0\" as a host name"), "{m}");
        assert!(skipped("u@h=x").contains("\"h=x\""));
        assert!(skipped("localhost=0").contains("\"localhost=0\""));
        // …unless distcc 3.4 refuses that reading too.
        assert!(err_msg("h=3/0").contains("invalid limit \"0\""));
    }

    #[test]
    fn unknown_and_repeated_options() {
        assert!(err_msg("h,lz").contains("unknown option \"lz\""));
        assert!(err_msg("h,l").contains("unknown option \"l\""));
        assert!(err_msg("h,LZO").contains("unknown option"));
        assert!(err_msg("h,zstd").contains("unknown option"));
        assert!(err_msg("h,lzo,l").contains("unknown option \"l\""));
        assert!(err_msg("h,").contains("empty option"));
        assert!(err_msg("h,,lzo").contains("empty option"));
        let (h, m) = sloppy("h,lzo,lzo");
        assert!(h.lzo);
        assert_eq!(m, "read as h:3632/4,lzo; option lzo given twice");
        assert_eq!(sloppy("h,auth,auth=x").0.auth.as_deref(), Some("x"));
        let (h, m) = sloppy("h,auth=,lzo");
        assert_eq!((h.auth.as_deref(), h.lzo), (Some(""), true));
        assert!(m.contains("empty name after auth= ignored"), "{m}");
        // Options go on after `auth=NAME`, as in distcc's GSS-API builds.
        assert!(one("h,auth=x,lzo").lzo);
        assert!(err_msg("h,auth=x,l").contains("unknown option \"l\""));
        assert!(err_msg("h,auth=x,cpp").contains("pump mode"));
        // distcc ends the name at '/' or ':', and reads no further.
        let (h, m) = sloppy("h,auth=host/x.example,l");
        assert_eq!(h.auth.as_deref(), Some("host"));
        assert!(
            m.contains("ignored \"/x.example,l\" after option auth"),
            "{m}"
        );
    }

    #[test]
    fn options_are_prefix_matched_and_junk_after_them_ignored() {
        let (h, m) = sloppy("h,lzoxyz");
        assert!(h.lzo);
        assert_eq!(
            m,
            "read as h:3632/4,lzo; ignored \"xyz\" after option lzo, as distcc 3.4 does"
        );
        // distcc stops reading at the junk: `,cpp` is not seen.
        let (h, m) = sloppy("h,lzox,cpp");
        assert!(h.lzo && !h.cpp, "{m}");
        let (h, m) = sloppy("h,downtown/3");
        assert_eq!((h.down, h.limit), (true, 4));
        assert!(m.contains("ignored \"town/3\" after option down"), "{m}");
    }

    #[test]
    fn limit_or_port_after_an_option_is_taken() {
        let (h, m) = sloppy("h,lzo/7");
        assert_eq!((h.limit, h.lzo), (7, true));
        assert_eq!(
            m,
            "read as h:3632/7,lzo; distcc 3.4 would ignore the /7 after an option"
        );
        let (h, _) = sloppy("h:3632,lzo/4");
        assert_eq!((h.kind, h.limit), (tcp("h", 3632), 4));
        let (h, m) = sloppy("h,lzo:4000");
        assert_eq!(h.kind, tcp("h", 4000));
        assert!(m.contains("ignore the :4000 after an option"), "{m}");
        let (h, m) = sloppy("h,lzo/7:4000,cpp");
        assert_eq!((h.kind, h.limit, h.cpp), (tcp("h", 4000), 7, true));
        assert!(m.contains("ignore the /7:4000,cpp after"), "{m}");
        // A port given before stays; the second one is junk.
        let (h, m) = sloppy("h:4000,lzo:5000");
        assert_eq!(h.kind, tcp("h", 4000));
        assert!(m.contains("ignored \":5000\""), "{m}");
        // Not a valid limit there: junk, as distcc has it.
        let (h, m) = sloppy("h,lzo/0");
        assert_eq!(h.limit, 4);
        assert!(m.contains("ignored \"/0\""), "{m}");
        // Pump mode without compression is dropped rather than refusing the token.
        let (h, m) = sloppy("h,down/3,cpp");
        assert_eq!((h.limit, h.down, h.cpp), (3, true, false));
        assert!(m.contains("the ,cpp is ignored"), "{m}");
        let (h, m) = sloppy("h,auth=x,lzo/2");
        assert_eq!((h.auth.as_deref(), h.lzo, h.limit), (Some("x"), true, 2));
        assert!(m.contains("ignore the /2 after an option"), "{m}");
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
        assert!(err_msg("h:3632x").contains("invalid port \"3632x\""));
        assert!(err_msg("h:3632:4000").contains("invalid port"));
        // distcc takes any characters but its delimiters as a name.
        for tok in ["ho$t", "h!x", ".lan", "höst"] {
            let (h, m) = sloppy(tok);
            assert_eq!(h.hostname(), tok);
            assert!(m.contains("is not a valid host name"), "{tok}: {m}");
        }
    }

    #[test]
    fn ipv6_errors() {
        assert!(err_msg("::1").contains("brackets"));
        assert!(err_msg("fe80::1").contains("brackets, like [fe80::1]"));
        assert!(err_msg("fe80::1:3632").contains("brackets, like [fe80::1:3632]"));
        assert!(err_msg("[::1").contains("missing ']'"));
        assert!(err_msg("[::1/64]").contains("missing ']'"));
        assert!(err_msg("[]").contains("missing IPv6 address"));
    }

    #[test]
    fn sloppy_brackets() {
        let (h, m) = sloppy("[zz]");
        assert_eq!(h.kind, tcp("zz", 3632));
        assert!(m.contains("not an IPv6 address"), "{m}");
        assert!(sloppy("[fe80::1%]").1.contains("not an IPv6 address"));
        let (h, m) = sloppy("[::1]x");
        assert_eq!(h.kind, tcp("::1", 3632));
        assert!(
            m.starts_with("read as [::1]:3632/4; ignored \"x\" after the IPv6"),
            "{m}"
        );
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
        let e = err("# café\nok  höst/0");
        assert_eq!((e.line, e.column), (2, 5));
        let w = &parse("# café\nok  é!").unwrap().warnings[0];
        assert_eq!((w.token.as_str(), w.line, w.column), ("é!", 2, 5));
    }

    #[test]
    fn first_error_wins() {
        let e = err("a/0 b/0");
        assert_eq!(e.token, "a/0");
    }

    // --- warnings ------------------------------------------------------------------------------

    #[test]
    fn warning_names_token_line_column_and_reading() {
        let l = parse("# farm\na/2\n  b,lzo/7 c\n").unwrap();
        assert_eq!(l.hosts.len(), 3);
        assert_eq!(l.warnings.len(), 1);
        assert_eq!(
            l.warnings[0].to_string(),
            "host spec \"b,lzo/7\" (line 3, column 3): read as b:3632/7,lzo; \
             distcc 3.4 would ignore the /7 after an option"
        );
    }

    #[test]
    fn one_warning_per_token_whatever_its_notes() {
        let l = parse("h!x,lzo,lzo/3xyz ok").unwrap();
        assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
        let m = &l.warnings[0].message;
        assert!(m.starts_with("read as h!x:3632/4,lzo; "), "{m}");
        assert_eq!(m.matches("; ").count(), 3, "{m}");
    }

    #[test]
    fn a_sloppy_token_never_turns_the_list_off() {
        let l = parse("a/2 b:99999 --foo c,lzo/3 -j d h=0").unwrap();
        let names: Vec<_> = l.hosts.iter().map(|h| h.hostname()).collect();
        assert_eq!(names, ["a", "c", "d"]);
        assert_eq!(l.total_slots(), 2 + 3 + 4);
        assert_eq!(l.warnings.len(), 5);
        let skipped = l
            .warnings
            .iter()
            .filter(|w| w.message.starts_with("skipped"));
        assert_eq!(skipped.count(), 4);
    }

    #[test]
    fn canonical_form_parses_back_to_the_same_host() {
        for (i, tok) in [
            "h",
            "b.example/5:4001,lzo,cpp",
            "[fe80::1%eth0]/2:4000,down",
            "localhost",
            "u@h/2:/opt/distccd,lzo,cpp,auth=x",
            "@[::1],auth",
            "h,lzo/7",
            "h:,lzo:4000",
            "[a=b]",
            "[[zz]",
            "u@[x=y]:cmd",
        ]
        .into_iter()
        .enumerate()
        {
            let h = parse(tok).unwrap().hosts.remove(0);
            let canon = h.canonical();
            let list = parse(&canon).unwrap();
            // Without a warning, but for names that are not host names.
            assert_eq!(
                list.warnings.is_empty(),
                i < 8,
                "{canon}: {:?}",
                list.warnings
            );
            let mut back = list.hosts[0].clone();
            assert_eq!(back.spec, canon);
            back.spec = h.spec.clone();
            assert_eq!(back, h, "{tok} → {canon}");
        }
        assert_eq!(
            one("b.example/5:4001,cpp,lzo").canonical(),
            "b.example:4001/5,lzo,cpp"
        );
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
