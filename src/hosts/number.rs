//! Numbers in host specs, read as distcc 3.4 reads them with C's `atoi` (limits,
//! `--localslots`) and `strtol` (ports): the same tokens refused, the same values
//! taken, and a note wherever the text is not plain digits.

use super::spec::Res;

/// A count after `/` or `=`, as distcc's `atoi` reads it.
pub(super) enum Count {
    /// `signed`: written with a `+`, after which distcc reads nothing more.
    Positive { n: u32, signed: bool },
    /// Below zero (as written): distcc takes it, but it leaves no slot.
    Negative(String),
}

/// Reads a count (`what` names it in messages) off the front of `s`: an optional
/// sign, then digits. Err where distcc refuses it (`atoi` gives 0: no digits, or
/// zero). Returns the text after the digits.
pub(super) fn count<'a>(s: &'a str, what: &str, notes: &mut Vec<String>) -> Res<(Count, &'a str)> {
    let sign = s.starts_with(['+', '-']) as usize;
    let len = s[sign..].bytes().take_while(u8::is_ascii_digit).count();
    let digits = &s[sign..sign + len];
    let rest = &s[sign + len..];
    let shown = &s[..s.find([':', ',', '/', '=']).unwrap_or(s.len())];
    if s.is_empty() {
        return Err(format!("missing {what}"));
    }
    if digits.is_empty() {
        return Err(format!("invalid {what} \"{shown}\": not a number"));
    }
    if digits.bytes().all(|b| b == b'0') {
        return Err(format!("invalid {what} \"{shown}\": must be at least 1"));
    }
    if s.starts_with('-') {
        return Ok((Count::Negative(format!("-{digits}")), rest));
    }
    let n = digits.parse::<u32>().unwrap_or_else(|_| {
        notes.push(format!(
            "{what} {digits} is too large: {} is used",
            u32::MAX
        ));
        u32::MAX
    });
    if sign == 1 {
        notes.push(format!("the sign of \"+{digits}\" is ignored"));
    }
    let signed = sign == 1;
    Ok((Count::Positive { n, signed }, rest))
}

pub(super) enum PortRead {
    Port(u16),
    /// `h:`: distcc's `strtol` finds no number and uses 0.
    Empty,
    Unusable(String),
}

/// A port after ':', as distcc's `strtol` reads it: the number must end the token or
/// be followed by '/' or ',' (or, in swarmcc, '='), else distcc refuses the token.
pub(super) fn read_port<'a>(s: &'a str, notes: &mut Vec<String>) -> Res<(PortRead, &'a str)> {
    let sign = s.starts_with(['+', '-']) as usize;
    let len = s[sign..].bytes().take_while(u8::is_ascii_digit).count();
    let (number, rest) = if len == 0 {
        ("", s)
    } else {
        s.split_at(sign + len)
    };
    if !(rest.is_empty() || rest.starts_with(['/', ',', '='])) {
        let shown = &s[..s.find(['/', '=', ',']).unwrap_or(s.len())];
        return Err(format!("invalid port \"{shown}\""));
    }
    if number.is_empty() {
        return Ok((PortRead::Empty, rest));
    }
    let digits = number.trim_start_matches(['+', '-']);
    match digits.parse::<u32>() {
        Ok(n) if (1..=65535).contains(&n) && !number.starts_with('-') => {
            if sign == 1 {
                notes.push(format!("the sign of \"{number}\" is ignored"));
            }
            Ok((PortRead::Port(n as u16), rest))
        }
        _ => Ok((
            PortRead::Unusable(format!(
                "port {number} is outside 1..65535, so nothing can be reached there \
                 (distcc 3.4 takes it)"
            )),
            rest,
        )),
    }
}

/// Plain digits, 1 or more in value, fitting a u32.
pub(super) fn strict_number(s: &str) -> Option<u32> {
    let digits = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits
        .then(|| s.parse::<u32>().ok())
        .flatten()
        .filter(|&n| n >= 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(s: &str) -> Res<(u32, bool, String, Vec<String>)> {
        let mut notes = Vec::new();
        match count(s, "limit", &mut notes)? {
            (Count::Positive { n, signed }, rest) => Ok((n, signed, rest.into(), notes)),
            (Count::Negative(v), _) => Err(format!("negative {v}")),
        }
    }

    #[test]
    fn counts_read_as_atoi() {
        assert_eq!(
            limit("12:4000").unwrap(),
            (12, false, ":4000".into(), vec![])
        );
        assert_eq!(limit("007").unwrap().0, 7);
        let (n, signed, rest, notes) = limit("+3x").unwrap();
        assert_eq!((n, signed, rest.as_str()), (3, true, "x"));
        assert!(notes[0].contains("sign"));
        assert_eq!(limit("99999999999").unwrap().0, u32::MAX);
        assert_eq!(limit("-3").unwrap_err(), "negative -3");
        assert_eq!(limit("").unwrap_err(), "missing limit");
        assert!(limit("-0").unwrap_err().contains("at least 1"));
        assert!(limit("x,lzo").unwrap_err().contains("\"x\": not a number"));
    }

    #[test]
    fn ports_read_as_strtol() {
        fn port(s: &str) -> Res<(PortRead, &str)> {
            read_port(s, &mut Vec::new())
        }
        assert!(matches!(port("4000/3"), Ok((PortRead::Port(4000), "/3"))));
        assert!(matches!(port(""), Ok((PortRead::Empty, ""))));
        assert!(matches!(port(",lzo"), Ok((PortRead::Empty, ",lzo"))));
        assert!(matches!(port("+5"), Ok((PortRead::Port(5), ""))));
        for unusable in ["0", "65536", "-5", "99999999999"] {
            assert!(
                matches!(port(unusable), Ok((PortRead::Unusable(_), ""))),
                "{unusable}"
            );
        }
        assert_eq!(port("12ab").err().unwrap(), "invalid port \"12ab\"");
        assert_eq!(port("+").err().unwrap(), "invalid port \"+\"");
        assert_eq!(port("1:2").err().unwrap(), "invalid port \"1:2\"");
    }
}
