//! One token that names a host (`localhost…`, `[user]@host…`, `host…`), read the way
//! distcc 3.4 reads it (`src/hosts.c`) step by step, so that swarmcc refuses exactly
//! the tokens distcc refuses and takes the ones it takes. Wherever a step finds text
//! that the canonical grammar (the module doc of `hosts`) does not allow, it says so
//! in a note; the caller turns a token's notes into one warning.
//!
//! Two places where swarmcc reads differently on purpose: `=` ends a host name and
//! starts a limit (`h=3`, as distcc after 3.4), where distcc 3.4 keeps it in the name;
//! and an ssh host may be a bracketed IPv6 address (`u@[::1]`), where distcc 3.4 ends
//! the name at the first ':'. A token that only distcc 3.4's own reading accepts is
//! left out rather than refused (its host name cannot be looked up).

use std::net::Ipv6Addr;

use super::number::{count, read_port, strict_number, Count, PortRead};
use super::{HostKind, HostSpec, DEFAULT_LIMIT, DEFAULT_PORT, LOCALHOST_LIMIT};

pub(super) type Res<T> = Result<T, String>;

/// What became of a host token that distcc 3.4 does not refuse.
pub(super) enum Taken {
    Host(HostSpec),
    /// distcc 3.4 takes the token, but its reading cannot work: why it is left out.
    Skipped(String),
}

/// Reads one host token. `notes` gets one line for each way it departs from the
/// canonical grammar (only meaningful with [`Taken::Host`]).
pub(super) fn host(tok: &str, notes: &mut Vec<String>) -> Res<Taken> {
    // Both readings, so that swarmcc refuses what distcc 3.4 refuses. They part only
    // over '=' and ssh brackets.
    let distcc = read(tok, Reading::Distcc34, &mut Vec::new());
    let spec = match (read(tok, Reading::Swarmcc, notes), distcc) {
        // `=N` stays a limit even where distcc 3.4 refuses the token (`h:4000=5`).
        (Ok(_), Err(e)) if !tok.contains('=') => return Err(e),
        (Ok(Read::Host(spec)), _) => spec,
        (Ok(Read::Unusable(why)), _) => return Ok(Taken::Skipped(why)),
        // `h=0`: a bad limit to swarmcc, a host named "h=0" to distcc 3.4.
        (Err(e), Ok(_)) => {
            return Ok(Taken::Skipped(format!(
                "{e}; distcc 3.4 would take \"{}\" as a host name, which cannot be reached",
                distcc34_name(tok)
            )));
        }
        (Err(e), Err(_)) => return Err(e),
    };
    let name = spec.hostname();
    if name.starts_with('-') {
        // No host is called that, and ssh would read it as an option.
        let why = if tok.starts_with("--") {
            "is not a list option (--randomize, --localslots=N, --localslots_cpp=N)"
        } else {
            "cannot be a host name (it starts with '-')"
        };
        return Ok(Taken::Skipped(format!(
            "\"{name}\" {why}; distcc 3.4 would take it as a host name, which cannot be reached"
        )));
    }
    Ok(Taken::Host(spec))
}

/// swarmcc's reading of host names, or distcc 3.4's (`=` in the name, no brackets
/// for ssh hosts).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reading {
    Swarmcc,
    Distcc34,
}

enum Read {
    Host(HostSpec),
    Unusable(String),
}

fn read(tok: &str, reading: Reading, notes: &mut Vec<String>) -> Res<Read> {
    // distcc's order: `localhost/4@x` is the local machine.
    let local = tok == "localhost"
        || tok.starts_with("localhost/")
        || (reading == Reading::Swarmcc && tok.starts_with("localhost="));
    if local {
        localhost(tok, notes)
    } else if tok.contains('@') {
        ssh(tok, reading, notes)
    } else {
        tcp(tok, reading, notes)
    }
}

/// The host name distcc 3.4 reads from a token (after any '@').
fn distcc34_name(tok: &str) -> &str {
    let tok = tok.split_once('@').map_or(tok, |(_, host)| host);
    &tok[..tok.find(['/', ':', ',']).unwrap_or(tok.len())]
}

fn localhost(tok: &str, notes: &mut Vec<String>) -> Res<Read> {
    let mut c = Cursor::new(&tok["localhost".len()..], After::Name, notes);
    let mut limit = None;
    if let Some(why) = c.limit(&mut limit)? {
        return Ok(Read::Unusable(why));
    }
    if c.rest.starts_with([':', ',']) {
        let hint = format!(
            " (a daemon on this machine is written 127.0.0.1{})",
            &tok["localhost".len()..]
        );
        c.junk(&hint);
    } else {
        c.junk("");
    }
    Ok(Read::Host(HostSpec {
        limit: limit.unwrap_or(LOCALHOST_LIMIT),
        ..bare(tok, HostKind::Localhost)
    }))
}

fn tcp(tok: &str, reading: Reading, notes: &mut Vec<String>) -> Res<Read> {
    refuse_unbracketed_ipv6(tok)?;
    let (host, after, rest) = hostid(tok, reading, notes)?;
    let mut c = Cursor::new(rest, after, notes);
    let mut limit = None;
    if let Some(why) = c.limit(&mut limit)? {
        return Ok(Read::Unusable(why));
    }
    let mut port = None;
    let mut unusable = None;
    if let Some(text) = c.rest.strip_prefix(':') {
        let (read, rest) = read_port(text, c.notes)?;
        match read {
            PortRead::Port(p) => port = Some(p),
            PortRead::Empty => c.notes.push(format!(
                "empty port: {DEFAULT_PORT} is used (distcc 3.4 would use port 0)"
            )),
            // Read on: a refusal later in the token still refuses it, as in distcc.
            PortRead::Unusable(why) => unusable = Some(why),
        }
        c.rest = rest;
        c.after = After::Port;
    }
    if let Some(why) = c.limit(&mut limit)? {
        return Ok(Read::Unusable(why));
    }
    // The kind is known once a port written after the options has been read.
    let mut spec = bare(tok, HostKind::Localhost);
    c.options(&mut spec)?;
    c.evident(&mut spec, &mut limit, Tail::Port(&mut port));
    c.junk("");
    if let Some(why) = unusable {
        return Ok(Read::Unusable(why));
    }
    let port = port.unwrap_or(DEFAULT_PORT);
    spec.kind = HostKind::Tcp { host, port };
    spec.limit = limit.unwrap_or(DEFAULT_LIMIT);
    Ok(Read::Host(spec))
}

fn ssh(tok: &str, reading: Reading, notes: &mut Vec<String>) -> Res<Read> {
    let (user, s) = tok.split_once('@').unwrap_or(("", tok));
    let user = (!user.is_empty()).then(|| user.to_string());
    let (host, after, rest) = match unbracketed_ipv6(s).filter(|_| reading == Reading::Swarmcc) {
        Some((addr, rest)) => {
            let (name, command) = addr.split_once(':').unwrap_or((addr, ""));
            notes.push(format!(
                "an IPv6 address needs brackets (distcc 3.4 would read host \"{name}\" \
                 and command \"{command}\")"
            ));
            (addr.to_string(), After::Address, rest)
        }
        None if reading == Reading::Distcc34 => name(s, reading, notes)?,
        None => hostid(s, reading, notes)?,
    };
    let mut c = Cursor::new(rest, after, notes);
    let mut limit = None;
    if let Some(why) = c.limit(&mut limit)? {
        return Ok(Read::Unusable(why));
    }
    let mut command = None;
    if let Some(text) = c.rest.strip_prefix(':') {
        let end = text.find(',').unwrap_or(text.len());
        if end == 0 {
            c.notes
                .push("empty command after ':': the default is used, as distcc 3.4 does".into());
        } else {
            command = Some(text[..end].to_string());
        }
        c.rest = &text[end..];
        c.after = After::Command;
    }
    let mut spec = bare(tok, HostKind::Localhost);
    c.options(&mut spec)?;
    c.evident(&mut spec, &mut limit, Tail::Command(&mut command));
    c.junk("");
    spec.kind = HostKind::Ssh {
        user,
        host,
        command,
    };
    spec.limit = limit.unwrap_or(DEFAULT_LIMIT);
    Ok(Read::Host(spec))
}

fn bare(tok: &str, kind: HostKind) -> HostSpec {
    HostSpec {
        spec: tok.to_string(),
        kind,
        limit: DEFAULT_LIMIT,
        lzo: false,
        cpp: false,
        down: false,
        auth: None,
    }
}

/// Takes the host name (or a bracketed address) off the front: the name without
/// brackets, what it was, and the rest of the token.
fn hostid<'a>(
    s: &'a str,
    reading: Reading,
    notes: &mut Vec<String>,
) -> Res<(String, After, &'a str)> {
    if let Some(inner) = s.strip_prefix('[') {
        // distcc reads up to ']', '/' or ',' and wants the ']' there.
        let end = inner.find([']', '/', ',']).unwrap_or(inner.len());
        if !inner[end..].starts_with(']') {
            return Err("missing ']' after the IPv6 address".into());
        }
        let addr = &inner[..end];
        if addr.is_empty() {
            return Err("missing IPv6 address in \"[]\"".into());
        }
        if !is_ipv6(addr) {
            notes.push(format!(
                "\"{addr}\" in brackets is not an IPv6 address: taken as a host name, \
                 as distcc 3.4 does"
            ));
        }
        return Ok((addr.to_string(), After::Address, &inner[end + 1..]));
    }
    name(s, reading, notes)
}

/// Takes a host name (no brackets) off the front: the name, and the rest.
fn name<'a>(
    s: &'a str,
    reading: Reading,
    notes: &mut Vec<String>,
) -> Res<(String, After, &'a str)> {
    let stops: &[char] = match reading {
        Reading::Swarmcc => &['/', '=', ':', ','],
        Reading::Distcc34 => &['/', ':', ','],
    };
    let end = s.find(stops).unwrap_or(s.len());
    let name = &s[..end];
    if name.is_empty() {
        return Err("missing host name".into());
    }
    let valid = !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    // A name starting with '-' is skipped by the caller, with its own reason.
    if !valid && !name.starts_with('-') {
        notes.push(format!(
            "\"{name}\" is not a valid host name (letters, digits, '.', '-', '_'), \
             but distcc 3.4 takes it, so it is kept"
        ));
    }
    Ok((name.to_string(), After::Name, &s[end..]))
}

/// `fe80::1` without brackets: distcc reads host `fe80` and then fails on the port,
/// so refuse it too, saying what to write.
fn refuse_unbracketed_ipv6(s: &str) -> Res<()> {
    if s.starts_with('[') || s.matches(':').count() < 2 {
        return Ok(());
    }
    let end = s.find(['/', '=', ',']).unwrap_or(s.len());
    let name_end = s.find([':', '/', '=', ',']).unwrap_or(s.len());
    let ends_at_colon = s[name_end..].starts_with(':');
    if ends_at_colon && (s[..end].parse::<Ipv6Addr>().is_ok() || name_end == 0) {
        return Err(format!(
            "IPv6 address must be written in brackets, like [{}]",
            &s[..end]
        ));
    }
    Ok(())
}

/// `user@fe80::1`: distcc would ssh to `fe80` and run `:1`; the address is meant.
/// The address and the rest after it, when `s` starts with one.
fn unbracketed_ipv6(s: &str) -> Option<(&str, &str)> {
    let end = s.find(['/', '=', ',']).unwrap_or(s.len());
    let addr = &s[..end];
    let meant = !addr.starts_with(':') && addr.matches(':').count() >= 2 && is_ipv6(addr);
    meant.then(|| (addr, &s[end..]))
}

fn is_ipv6(addr: &str) -> bool {
    // A link-local address may carry a zone (`fe80::1%eth0`), which Ipv6Addr rejects.
    let (ip, zone) = match addr.split_once('%') {
        Some((ip, zone)) => (ip, Some(zone)),
        None => (addr, None),
    };
    let zone_ok = zone.is_none_or(|z| {
        !z.is_empty()
            && z.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    });
    ip.parse::<Ipv6Addr>().is_ok() && zone_ok
}

/// What the cursor read last, for notes about text after it.
#[derive(Clone, Copy)]
enum After {
    Name,
    Address,
    Limit,
    Port,
    Command,
    Option(&'static str),
}

impl After {
    fn describe(self) -> String {
        match self {
            After::Name => "the host name".into(),
            After::Address => "the IPv6 address".into(),
            After::Limit => "the limit".into(),
            After::Port => "the port".into(),
            After::Command => "the command".into(),
            After::Option(name) => format!("option {name}"),
        }
    }
}

/// Where a port or command written after the options goes.
enum Tail<'b> {
    Port(&'b mut Option<u16>),
    Command(&'b mut Option<String>),
}

const OPTIONS: [&str; 4] = ["lzo", "cpp", "down", "auth"];

/// The unread rest of a token, what was read last, and the notes so far.
struct Cursor<'a, 'n> {
    rest: &'a str,
    after: After,
    notes: &'n mut Vec<String>,
}

impl<'a, 'n> Cursor<'a, 'n> {
    fn new(rest: &'a str, after: After, notes: &'n mut Vec<String>) -> Self {
        Cursor { rest, after, notes }
    }

    /// An optional `/N` or `=N`; a second one replaces the first, as in distcc 3.4.
    /// `Some(why)` when the limit leaves the host unusable.
    fn limit(&mut self, limit: &mut Option<u32>) -> Res<Option<String>> {
        let Some(body) = self.rest.strip_prefix(['/', '=']) else {
            return Ok(None);
        };
        let (n, signed, rest) = match count(body, "limit", self.notes)? {
            (Count::Negative(text), _) => {
                return Ok(Some(format!(
                    "limit {text} is below 1, so the host could take no job \
                     (distcc 3.4 takes it)"
                )))
            }
            (Count::Positive { n, signed }, rest) => (n, signed, rest),
        };
        if limit.is_some() {
            self.notes.push(format!(
                "limit given twice: the last, {n}, counts, as in distcc 3.4"
            ));
        }
        *limit = Some(n);
        self.rest = rest;
        self.after = After::Limit;
        if signed {
            // distcc's scan stops at the sign: the rest of the token is not read.
            self.junk("");
        }
        Ok(None)
    }

    /// `{',' OPTION}`, prefix-matched as distcc 3.4 does: after `lzo`, `cpp`, `down`
    /// or `auth` anything but ',' ends the options.
    fn options(&mut self, spec: &mut HostSpec) -> Res<()> {
        let mut seen: Vec<&str> = Vec::new();
        while let Some(list) = self.rest.strip_prefix(',') {
            let Some(name) = OPTIONS.into_iter().find(|o| list.starts_with(o)) else {
                let shown = &list[..list.find(',').unwrap_or(list.len())];
                return Err(if shown.is_empty() {
                    "empty option (two commas, or a trailing comma)".into()
                } else {
                    format!("unknown option \"{shown}\" (expected lzo, cpp, down or auth[=name])")
                });
            };
            if seen.contains(&name) {
                self.notes.push(format!("option {name} given twice"));
            }
            seen.push(name);
            self.rest = &list[name.len()..];
            self.after = After::Option(name);
            set_option(spec, name);
            // `auth=NAME`, distcc's GSS-API principal: the options go on after it.
            if let Some(after) = self.rest.strip_prefix('=').filter(|_| name == "auth") {
                let end = after.find(AUTH_NAME_ENDS).unwrap_or(after.len());
                if end == 0 {
                    self.notes
                        .push("empty name after auth= ignored, as distcc 3.4 does".into());
                } else {
                    spec.auth = Some(after[..end].to_string());
                }
                self.rest = &after[end..];
            }
        }
        if spec.cpp && !spec.lzo {
            return Err("pump mode (',cpp') requires compression (',lzo')".into());
        }
        Ok(())
    }

    /// After an option, distcc 3.4 ignores the rest of the token, which loses what
    /// `h,lzo/7` or `h,lzo:4000` evidently mean: this reads a limit, a port (or ssh
    /// command) not given before, and exactly spelt options there, and notes it.
    fn evident(&mut self, spec: &mut HostSpec, limit: &mut Option<u32>, mut tail: Tail) {
        if !matches!(self.after, After::Option(_)) {
            return;
        }
        let start = self.rest;
        let had_cpp = spec.cpp;
        while let Some(what) = self.evident_item(spec, limit, &mut tail) {
            self.after = what;
        }
        let read = &start[..start.len() - self.rest.len()];
        if !read.is_empty() {
            self.notes.push(format!(
                "distcc 3.4 would ignore the {read} after an option"
            ));
        }
        if spec.cpp && !spec.lzo && !had_cpp {
            spec.cpp = false;
            self.notes
                .push("pump mode (,cpp) needs ,lzo: the ,cpp is ignored".into());
        }
    }

    /// One `/N`, `:PORT` (or `:COMMAND`) or `,OPTION` at the front of the rest, read
    /// strictly; None (nothing read) when the rest starts otherwise.
    fn evident_item(
        &mut self,
        spec: &mut HostSpec,
        limit: &mut Option<u32>,
        tail: &mut Tail,
    ) -> Option<After> {
        let first = self.rest.chars().next()?;
        let body = &self.rest[first.len_utf8()..];
        let end = body.find([',', ':', '/']).unwrap_or(body.len());
        let (item, after) = (&body[..end], &body[end..]);
        let what = match (first, tail) {
            ('/', _) => strict_number(item).map(|n| {
                *limit = Some(n);
                After::Limit
            })?,
            (':', Tail::Port(port)) if port.is_none() => {
                **port = Some(strict_number(item).and_then(|n| u16::try_from(n).ok())?);
                After::Port
            }
            (':', Tail::Command(cmd)) if cmd.is_none() => {
                // A command runs to the next ','.
                let end = body.find(',').unwrap_or(body.len());
                if end == 0 {
                    return None;
                }
                **cmd = Some(body[..end].to_string());
                self.rest = &body[end..];
                return Some(After::Command);
            }
            (',', _) => return self.exact_option(spec, body),
            _ => return None,
        };
        self.rest = after;
        Some(what)
    }

    /// An option spelt exactly (`lzo`, `cpp`, `down`, `auth`, `auth=NAME`) at the
    /// front of `body`, followed by the end or a ','.
    fn exact_option(&mut self, spec: &mut HostSpec, body: &'a str) -> Option<After> {
        let end = body.find(',').unwrap_or(body.len());
        let name = OPTIONS.into_iter().find(|o| *o == &body[..end]);
        let principal = body.strip_prefix("auth").and_then(auth_name);
        let name = match (name, principal) {
            (Some(name), _) => name,
            (None, Some(p)) if 5 + p.len() == end => {
                spec.auth = Some(p.to_string());
                "auth"
            }
            _ => return None,
        };
        if name != "auth" || spec.auth.is_none() {
            set_option(spec, name);
        }
        self.rest = &body[end..];
        Some(After::Option(name))
    }

    /// Text that is left: ignored, as distcc 3.4 ignores it, and noted.
    fn junk(&mut self, hint: &str) {
        if !self.rest.is_empty() {
            self.notes.push(format!(
                "ignored \"{}\" after {}, as distcc 3.4 does{hint}",
                self.rest,
                self.after.describe()
            ));
            self.rest = "";
        }
    }
}

fn set_option(spec: &mut HostSpec, name: &str) {
    match name {
        "lzo" => spec.lzo = true,
        "cpp" => spec.cpp = true,
        "down" => spec.down = true,
        _ => spec.auth = Some(String::new()),
    }
}

/// Where distcc 3.4 ends the NAME of `auth=NAME`.
const AUTH_NAME_ENDS: [char; 3] = [',', '/', ':'];

/// The NAME of `=NAME` at the front of `s`, when not empty.
fn auth_name(s: &str) -> Option<&str> {
    let name = s.strip_prefix('=')?;
    let name = &name[..name.find(AUTH_NAME_ENDS).unwrap_or(name.len())];
    (!name.is_empty()).then_some(name)
}
