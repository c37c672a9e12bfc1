//! The `--version` text of both binaries: distcc's first two lines, so that scripts
//! reading `distcc --version | head -2` keep working, then swarmcc's own.

/// distcc's port, printed in the second line as distcc prints it.
const DEFAULT_PORT: u16 = 3632;

/// `NAME VERSION TARGET`, `  (protocols 1 and 2) (default port 3632)`, then what
/// swarmcc adds to distcc and the licence.
pub fn text(name: &str) -> String {
    format!(
        "{name} {version} {target}\n  (protocols 1 and 2) (default port {DEFAULT_PORT})\n  \
         swarmcc {version}: distcc 3.4 wire protocol, negotiated swarmcc extension 1 \
         (compiler identity check, keep-alives, zstd), pre-shared-key authentication\n\
         Licence GPL-2.0-or-later. https://www.gnu.org/licenses/\n",
        version = env!("CARGO_PKG_VERSION"),
        target = env!("SWARMCC_TARGET"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_lines_have_distccs_shape() {
        let text = text("swarmccd");
        let mut lines = text.lines();
        let first: Vec<&str> = lines.next().unwrap().split(' ').collect();
        assert_eq!(first.len(), 3, "{text}");
        assert_eq!(first[0], "swarmccd");
        assert_eq!(first[1], env!("CARGO_PKG_VERSION"));
        assert!(first[2].contains("-linux"), "{text}");
        assert_eq!(
            lines.next().unwrap(),
            "  (protocols 1 and 2) (default port 3632)"
        );
        assert_eq!(DEFAULT_PORT, crate::hosts::DEFAULT_PORT);
    }
}
