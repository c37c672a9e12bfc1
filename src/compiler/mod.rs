//! Which compiler to run: how swarmcc was invoked (explicit, implicit, masquerade or
//! one of its own options), the masquerade PATH trimming, the real-compiler search with
//! its recursion guard, the `_DISTCC_SAFEGUARD` rule, and the cross-compile rewrite of
//! argv[0] for the remote command.
//!
//! It leaves argument scanning (is this a distributable compile?) to `args`, running
//! anything to `client`/`exec`, and reading the environment to `config`: the decisions
//! here are pure functions of the values they are given. The functions that look at the
//! filesystem say so in their docs; each has a pure counterpart (or takes its checks as
//! closures) so that the rules can be unit-tested.
//!
//! Masquerade safety has three layers, because any one of them can be defeated by an
//! unusual PATH:
//! 1. [`trim_masquerade_path`] drops PATH entries up to and including our directory
//!    (as distcc does), plus later entries that spell that same directory;
//! 2. [`find_real_compiler`] never returns a file that is swarmcc (same inode, a link
//!    into a swarmcc install, or a byte-for-byte copy), whatever directory it is in, so
//!    a shim directory listed twice or under another spelling is harmless;
//! 3. [`check_safeguard`] stops a loop that got past both, via `_DISTCC_SAFEGUARD`.
//!
//! The submodules, one concept each: `invocation` (how swarmcc was called),
//! `own_options` (swarmcc's own words), `masquerade` (the trimmed PATH), `path_var`
//! (reading a PATH value), `identity` (is this file swarmcc?), `real_compiler` (the
//! PATH search that skips swarmcc), `safeguard` (the recursion-level rule) and `cross`
//! (cross-compile names for the remote command).
//! Their public items are re-exported here, so callers keep writing `compiler::NAME`.

mod cross;
mod identity;
mod invocation;
mod masquerade;
mod own_options;
mod path_var;
mod real_compiler;
mod safeguard;

pub use cross::{native_triple, native_triple_from_compiler, rewrite_for_remote};
pub use identity::{is_executable_file, is_swarmcc, probe_executable, Probe};
pub use invocation::{
    classify_invocation, classify_invocation_with, Invocation, IMPLICIT_COMPILER,
};
pub use masquerade::trim_masquerade_path;
pub use own_options::{is_self_name, OWN_OPTIONS};
pub use real_compiler::{exists_on_path, find_real_compiler, resolve_generic};
pub use safeguard::{
    check_safeguard, child_safeguard_level, safeguard_level, Safeguard, SAFEGUARD_VAR,
};

/// The last component of a `/`-separated name (`/usr/bin/gcc` → `gcc`).
fn basename(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}
