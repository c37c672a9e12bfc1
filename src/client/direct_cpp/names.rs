//! The per-job names of a preprocessing command (source, output, our temporaries) and
//! the templates that stand for them: a command with the names replaced by placeholders,
//! filled in again with another job's names.

/// Marks a placeholder; no argument we learn from may contain it.
pub(super) const MARK: char = '\u{1}';

/// The names that differ between jobs of one shape.
#[derive(Debug, Clone, Copy)]
pub struct Names<'a> {
    /// The source file, as given on the command line.
    pub input: &'a str,
    /// The original compile's output (a `-MQ` value of ours).
    pub output: &'a str,
    /// Our temporary preprocessed file.
    pub i_file: &'a str,
    /// Our temporary dependency file, if any.
    pub deps: Option<&'a str>,
}

impl Names<'_> {
    /// (placeholder letter, text) pairs for whole arguments, then for parts of
    /// arguments. The temporaries' stems are random, so they never occur by accident;
    /// the input and output are replaced only where an argument is exactly them.
    pub(super) fn whole(&self) -> Vec<(char, &str)> {
        let mut v = vec![('S', self.input), ('O', self.output), ('I', self.i_file)];
        if let Some(d) = self.deps {
            v.push(('D', d));
        }
        v
    }

    pub(super) fn parts(&self) -> Vec<(char, &str)> {
        let mut v = vec![('i', file_stem(self.i_file))];
        if let Some(d) = self.deps {
            v.push(('d', file_stem(d)));
        }
        v
    }

    pub(super) fn all(&self) -> impl Iterator<Item = (char, &str)> {
        self.whole().into_iter().chain(self.parts())
    }

    pub(super) fn text(&self, letter: char) -> Option<&str> {
        self.all().find(|(l, _)| *l == letter).map(|(_, t)| t)
    }

    /// The names are usable only if none is empty, contains a placeholder or a quote
    /// (the driver quotes them in `COLLECT_GCC_OPTIONS`), or equals another.
    pub(super) fn usable(&self) -> bool {
        let all: Vec<&str> = self.all().map(|(_, t)| t).collect();
        all.iter()
            .all(|t| !t.is_empty() && !t.contains(MARK) && !t.contains('\''))
            && (1..all.len()).all(|i| !all[..i].contains(&all[i]))
    }
}

/// The file name of `path` without its extension(s): the random part of a temporary.
pub(super) fn file_stem(path: &str) -> &str {
    let name = path.rsplit('/').next().unwrap_or(path);
    let from = usize::from(name.starts_with('.'));
    match name[from..].find('.') {
        Some(i) => &name[..from + i],
        None => name,
    }
}

/// `arg` with the names replaced by placeholders.
pub(super) fn abstract_arg(arg: &str, names: &Names) -> String {
    if let Some((l, _)) = names.whole().into_iter().find(|(_, t)| *t == arg) {
        return format!("{MARK}{l}");
    }
    replace_parts(arg.to_owned(), names)
}

/// `text` with the temporaries' stems, wherever they occur, replaced by placeholders.
fn replace_parts(mut text: String, names: &Names) -> String {
    for (l, t) in names.parts() {
        text = text.replace(t, &format!("{MARK}{l}"));
    }
    text
}

/// An environment value with the names replaced: the driver lists its options in
/// `COLLECT_GCC_OPTIONS` single-quoted, so whole names appear as `'name'`.
pub(super) fn abstract_env(value: &str, names: &Names) -> String {
    let mut out = value.to_owned();
    for (l, t) in names.whole() {
        out = out.replace(&format!("'{t}'"), &format!("'{MARK}{l}'"));
    }
    replace_parts(out, names)
}

/// A template filled in with `names`; `None` if it has a placeholder they lack.
pub(super) fn fill(template: &str, names: &Names) -> Option<String> {
    let mut out = String::with_capacity(template.len() + 64);
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c == MARK {
            out.push_str(names.text(chars.next()?)?);
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// Names for the dry run: same directories and extensions, other file names.
#[derive(Debug)]
pub(super) struct AltNames {
    pub(super) input: String,
    pub(super) output: String,
    pub(super) i_file: String,
    pub(super) deps: Option<String>,
}

impl AltNames {
    pub(super) fn new(n: &Names) -> AltNames {
        let swap = |path: &str, stem: &str| {
            let (dir, name) = match path.rsplit_once('/') {
                Some((d, f)) => (format!("{d}/"), f),
                None => (String::new(), path),
            };
            format!("{dir}{stem}{}", &name[file_stem(name).len()..])
        };
        AltNames {
            input: swap(n.input, "swarmcc-probe-src"),
            output: swap(n.output, "swarmcc-probe-out"),
            i_file: swap(n.i_file, "swarmcc_probe0"),
            deps: n.deps.map(|d| swap(d, ".swarmcc-probe1")),
        }
    }

    pub(super) fn names(&self) -> Names<'_> {
        Names {
            input: &self.input,
            output: &self.output,
            i_file: &self.i_file,
            deps: self.deps.as_deref(),
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::client::direct_cpp) fn names<'a>(
        input: &'a str,
        i_file: &'a str,
        deps: Option<&'a str>,
    ) -> Names<'a> {
        Names {
            input,
            output: "build/x.o",
            i_file,
            deps,
        }
    }

    #[test]
    fn stems_are_the_random_part_of_our_temporaries() {
        assert_eq!(file_stem("/dev/shm/swarmcc_AbC123.ii"), "swarmcc_AbC123");
        assert_eq!(file_stem("sub/.swarmcc-xyZ.d.tmp"), ".swarmcc-xyZ");
        assert_eq!(file_stem("plain"), "plain");
    }

    #[test]
    fn a_template_fills_in_other_names_and_only_whole_names_are_replaced() {
        let n = names(
            "src/a.c",
            "/tmp/swarmcc_AAAAAA.i",
            Some("b/.swarmcc-DDDDDD.d.tmp"),
        );
        assert_eq!(abstract_arg("src/a.c", &n), "\u{1}S");
        // The input inside another argument stays literal (it is part of the key).
        assert_eq!(abstract_arg("-DF=src/a.c", &n), "-DF=src/a.c");
        assert_eq!(abstract_arg("swarmcc_AAAAAA.c", &n), "\u{1}i.c");
        let env = "'-o' '/tmp/swarmcc_AAAAAA.i' '-MQ' 'build/x.o'";
        let t = abstract_env(env, &n);
        assert_eq!(t, "'-o' '\u{1}I' '-MQ' '\u{1}O'");
        let alt = AltNames::new(&n);
        assert_eq!(alt.input, "src/swarmcc-probe-src.c");
        assert_eq!(alt.i_file, "/tmp/swarmcc_probe0.i");
        assert_eq!(alt.deps.as_deref(), Some("b/.swarmcc-probe1.d.tmp"));
        assert_eq!(
            fill(&t, &alt.names()).unwrap(),
            "'-o' '/tmp/swarmcc_probe0.i' '-MQ' 'build/swarmcc-probe-out.o'"
        );
        // A placeholder the names lack (no deps file) cannot be filled.
        assert_eq!(fill("\u{1}D", &names("a.c", "/t/s_1.i", None)), None);
    }

    #[test]
    fn names_that_clash_or_need_quoting_are_not_used() {
        assert!(names("a.c", "/t/swarmcc_1.i", None).usable());
        assert!(!names("it's.c", "/t/swarmcc_1.i", None).usable());
        assert!(!names("build/x.o", "/t/swarmcc_1.i", None).usable());
        assert!(!names("", "/t/swarmcc_1.i", None).usable());
    }
}
