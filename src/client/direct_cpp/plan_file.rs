//! The on-disk form of a plan (`$DISTCC_DIR/cpp-plans/KEY`): NUL-terminated fields,
//! read back strictly so that a garbled or older file is ignored, never trusted.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use super::plan::Plan;
use super::FORMAT;
use crate::stages::Stamp;

/// The cache file: format line, the driver's stamp, then "driver" or the plan, as
/// NUL-terminated fields.
pub(super) fn encode(driver: Option<Stamp>, plan: Option<&Plan>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut field = |b: &[u8]| {
        out.extend_from_slice(b);
        out.push(0);
    };
    field(FORMAT.as_bytes());
    field(stamp_text(driver).as_bytes());
    let Some(p) = plan else {
        field(b"driver");
        return out;
    };
    field(b"plan");
    field(p.path.as_os_str().as_bytes());
    field(stamp_text(p.stamp).as_bytes());
    field(p.argv.len().to_string().as_bytes());
    for a in &p.argv {
        field(a.as_bytes());
    }
    field(p.set_env.len().to_string().as_bytes());
    for (k, v) in &p.set_env {
        field(k.as_bytes());
        field(v.as_bytes());
    }
    field(p.removed_env.len().to_string().as_bytes());
    for k in &p.removed_env {
        field(k.as_bytes());
    }
    out
}

pub(super) type Decoded = (Option<Stamp>, Option<Plan>);

pub(super) fn decode(bytes: &[u8]) -> Option<Decoded> {
    let mut fields = bytes.split(|&b| b == 0);
    let mut text = || -> Option<String> { String::from_utf8(fields.next()?.to_vec()).ok() };
    if text()? != FORMAT {
        return None;
    }
    let driver = parse_stamp(&text()?)?;
    match text()?.as_str() {
        "driver" => return Some((driver, None)),
        "plan" => {}
        _ => return None,
    }
    let path = PathBuf::from(text()?);
    let stamp = parse_stamp(&text()?)?;
    let count = |s: String| s.parse::<usize>().ok().filter(|&n| n < 100_000);
    let n = count(text()?)?;
    let argv = (0..n).map(|_| text()).collect::<Option<Vec<_>>>()?;
    let n = count(text()?)?;
    let set_env = (0..n)
        .map(|_| Some((OsString::from(text()?), text()?)))
        .collect::<Option<Vec<_>>>()?;
    let n = count(text()?)?;
    let removed_env = (0..n)
        .map(|_| text().map(OsString::from))
        .collect::<Option<Vec<_>>>()?;
    if argv.is_empty() || !path.is_absolute() {
        return None;
    }
    Some((
        driver,
        Some(Plan {
            path,
            stamp,
            argv,
            set_env,
            removed_env,
        }),
    ))
}

fn stamp_text(s: Option<Stamp>) -> String {
    s.map_or_else(|| "-".to_owned(), |s| s.to_string())
}

/// `Some(None)` for "-" (no such file when learnt), `None` if garbled.
fn parse_stamp(s: &str) -> Option<Option<Stamp>> {
    if s == "-" {
        return Some(None);
    }
    s.parse().ok().map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CC1: &str = "/usr/lib/gcc/x86_64-linux-gnu/12/cc1";

    #[test]
    fn the_cache_file_round_trips_and_rejects_garbage() {
        let stamp: Stamp = "1 2 3 4 5".parse().unwrap();
        let plan = Plan {
            path: PathBuf::from(CC1),
            stamp: None,
            argv: vec![CC1.into(), "-E".into(), "\u{1}S".into(), String::new()],
            set_env: vec![("COLLECT_GCC".into(), "gcc".into())],
            removed_env: vec!["GONE".into()],
        };
        let bytes = encode(Some(stamp), Some(&plan));
        assert_eq!(decode(&bytes), Some((Some(stamp), Some(plan))));
        assert_eq!(decode(&encode(None, None)), Some((None, None)));
        assert_eq!(decode(b"swarmcc-cpp-plan 0\0"), None);
        assert_eq!(decode(&bytes[..bytes.len() - 9]), None);
        assert_eq!(decode(b""), None);
        assert!("1 2 3".parse::<Stamp>().is_err());
    }
}
