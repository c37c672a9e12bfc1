//! The `_DISTCC_SAFEGUARD` recursion rule: the last layer of masquerade safety, for a
//! loop that got past PATH trimming and the real-compiler search.

/// The recursion-level variable. We use distcc's own name rather than a swarmcc one so
/// that a build mixing distcc and swarmcc (a distcc masquerade directory on PATH ahead
/// of ours, or the reverse) still counts one level per wrapper and cannot loop.
pub const SAFEGUARD_VAR: &str = "_DISTCC_SAFEGUARD";

/// What to do given the inherited `_DISTCC_SAFEGUARD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Safeguard {
    /// Not nested: distribute as usual.
    Normal,
    /// Started by a swarmcc/distcc (e.g. a local cpp run passing back through a
    /// masquerade link): run the real compiler at once, no locks, no distribution.
    RunLocally,
    /// We are running ourselves in a loop: exit 111, "swarmcc seems to have invoked
    /// itself recursively".
    Recursive,
}

/// The level in a `_DISTCC_SAFEGUARD` value. Unset, empty, negative or non-numeric
/// count as 0, as distcc's `atoi` does: only distcc and swarmcc set it, always to a
/// number, so anything else was not set by a parent wrapper.
pub fn safeguard_level(level: Option<&str>) -> u32 {
    level
        .and_then(|s| s.trim().parse::<i64>().ok())
        .map_or(0, |n| n.clamp(0, i64::from(u32::MAX)) as u32)
}

/// The value to give `_DISTCC_SAFEGUARD` in every child we start: one more than ours.
pub fn child_safeguard_level(level: Option<&str>) -> String {
    safeguard_level(level).saturating_add(1).to_string()
}

/// The recursion rule, as distcc's: any level above 0 means run locally; a level that
/// is still above 0 after discounting one for a trimmed masquerade PATH means we are
/// looping. (A masquerade call at level 1 is the normal local-cpp round trip; an
/// explicit `swarmcc gcc` at level 1 means the compiler found was swarmcc again.)
pub fn check_safeguard(level: Option<&str>, path_trimmed: bool) -> Safeguard {
    let level = i64::from(safeguard_level(level));
    if level - i64::from(path_trimmed) > 0 {
        Safeguard::Recursive
    } else if level > 0 {
        Safeguard::RunLocally
    } else {
        Safeguard::Normal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safeguard_rules() {
        assert_eq!(check_safeguard(None, false), Safeguard::Normal);
        assert_eq!(check_safeguard(None, true), Safeguard::Normal);
        assert_eq!(check_safeguard(Some("0"), false), Safeguard::Normal);
        assert_eq!(check_safeguard(Some(""), false), Safeguard::Normal);
        assert_eq!(check_safeguard(Some("1"), true), Safeguard::RunLocally);
        assert_eq!(check_safeguard(Some("1"), false), Safeguard::Recursive);
        assert_eq!(check_safeguard(Some("2"), true), Safeguard::Recursive);
        assert_eq!(check_safeguard(Some("2"), false), Safeguard::Recursive);
        assert_eq!(check_safeguard(Some(" 1 "), true), Safeguard::RunLocally);
        assert_eq!(check_safeguard(Some("junk"), false), Safeguard::Normal);
        assert_eq!(check_safeguard(Some("-3"), false), Safeguard::Normal);
    }

    #[test]
    fn safeguard_levels() {
        assert_eq!(safeguard_level(None), 0);
        assert_eq!(safeguard_level(Some("7")), 7);
        assert_eq!(child_safeguard_level(None), "1");
        assert_eq!(child_safeguard_level(Some("1")), "2");
        assert_eq!(
            child_safeguard_level(Some("99999999999")),
            u32::MAX.to_string()
        );
        assert_eq!(SAFEGUARD_VAR, "_DISTCC_SAFEGUARD");
    }
}
