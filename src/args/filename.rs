//! File names and languages: which inputs are C-family sources, which are already
//! preprocessed, what extension the preprocessor output gets, and the output name gcc
//! derives when there is no `-o`.
//!
//! Pure string functions. Deciding what to do with a language is `args::classify`'s job;
//! choosing temp file paths is the caller's, but the names a server gives a job's
//! input and output in its directory are here ([`job_input_name`], [`job_output_name`]),
//! because the farm cache's key (`cache::key`) is made of the command they make.

/// An input language as gcc names it with `-x`, or as it infers it from the extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    C,
    Cxx,
    ObjC,
    ObjCxx,
    /// `.i`, `-x cpp-output`
    CPreprocessed,
    /// `.ii`, `-x c++-cpp-output`
    CxxPreprocessed,
    /// `.mi`, `-x objective-c-cpp-output`
    ObjCPreprocessed,
    /// `.mii`, `-x objective-c++-cpp-output`
    ObjCxxPreprocessed,
    /// A header: compiling it builds a precompiled header.
    Header,
    /// `.s`, `.S`, `.sx`, `-x assembler*`
    Assembler,
    /// Anything else gcc knows (Fortran, Ada, CUDA, D, Go…) or an unknown `-x` value.
    Other,
}

impl Language {
    /// The language a `-x` value names, or `None` for `-x none` (back to extensions).
    pub fn from_x(name: &str) -> Option<Language> {
        Some(match name {
            "none" => return None,
            "c" => Language::C,
            "c++" => Language::Cxx,
            "objective-c" => Language::ObjC,
            "objective-c++" => Language::ObjCxx,
            "cpp-output" => Language::CPreprocessed,
            "c++-cpp-output" => Language::CxxPreprocessed,
            // gcc still accepts the old objc-* spellings.
            "objective-c-cpp-output" | "objc-cpp-output" => Language::ObjCPreprocessed,
            "objective-c++-cpp-output" | "objc++-cpp-output" => Language::ObjCxxPreprocessed,
            "c-header"
            | "c++-header"
            | "objective-c-header"
            | "objective-c++-header"
            | "c++-system-header"
            | "c++-user-header" => Language::Header,
            "assembler" | "assembler-with-cpp" => Language::Assembler,
            _ => Language::Other,
        })
    }

    /// The language gcc infers from a file name (case-sensitive, like gcc), or `None`
    /// when gcc would treat the file as linker input.
    pub fn from_path(path: &str) -> Option<Language> {
        Some(match extension(path)? {
            "c" => Language::C,
            "cc" | "cp" | "cxx" | "cpp" | "CPP" | "c++" | "C" => Language::Cxx,
            "m" => Language::ObjC,
            "mm" | "M" => Language::ObjCxx,
            "i" => Language::CPreprocessed,
            "ii" => Language::CxxPreprocessed,
            "mi" => Language::ObjCPreprocessed,
            "mii" => Language::ObjCxxPreprocessed,
            "h" | "hh" | "H" | "hp" | "hxx" | "hpp" | "HPP" | "h++" | "tcc" => Language::Header,
            "s" | "S" | "sx" => Language::Assembler,
            "f" | "for" | "ftn" | "F" | "FOR" | "fpp" | "FPP" | "FTN" | "f90" | "f95" | "f03"
            | "f08" | "F90" | "F95" | "F03" | "F08" | "go" | "d" | "di" | "dd" | "ads" | "adb"
            | "cu" | "m2" | "mod" | "def" => Language::Other,
            _ => return None,
        })
    }

    /// C, C++, Objective-C or Objective-C++, preprocessed or not: what we distribute.
    pub fn is_distributable(self) -> bool {
        self.preprocessed_form().is_some()
    }

    /// Already preprocessed: the compiler will not run cpp on it again.
    pub fn is_preprocessed(self) -> bool {
        matches!(
            self,
            Language::CPreprocessed
                | Language::CxxPreprocessed
                | Language::ObjCPreprocessed
                | Language::ObjCxxPreprocessed
        )
    }

    /// The language of this language's preprocessor output.
    pub fn preprocessed_form(self) -> Option<Language> {
        Some(match self {
            Language::C | Language::CPreprocessed => Language::CPreprocessed,
            Language::Cxx | Language::CxxPreprocessed => Language::CxxPreprocessed,
            Language::ObjC | Language::ObjCPreprocessed => Language::ObjCPreprocessed,
            Language::ObjCxx | Language::ObjCxxPreprocessed => Language::ObjCxxPreprocessed,
            _ => return None,
        })
    }

    /// The file extension (with the dot) for this language's preprocessor output.
    pub fn preprocessed_ext(self) -> Option<&'static str> {
        Some(match self.preprocessed_form()? {
            Language::CPreprocessed => ".i",
            Language::CxxPreprocessed => ".ii",
            Language::ObjCPreprocessed => ".mi",
            _ => ".mii",
        })
    }

    /// The `-x` name of this language's preprocessor output.
    pub fn preprocessed_x_name(self) -> Option<&'static str> {
        Some(match self.preprocessed_form()? {
            Language::CPreprocessed => "cpp-output",
            Language::CxxPreprocessed => "c++-cpp-output",
            Language::ObjCPreprocessed => "objective-c-cpp-output",
            _ => "objective-c++-cpp-output",
        })
    }

    /// A short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Language::C => "c",
            Language::Cxx => "c++",
            Language::ObjC => "objective-c",
            Language::ObjCxx => "objective-c++",
            Language::CPreprocessed => "cpp-output",
            Language::CxxPreprocessed => "c++-cpp-output",
            Language::ObjCPreprocessed => "objective-c-cpp-output",
            Language::ObjCxxPreprocessed => "objective-c++-cpp-output",
            Language::Header => "header (precompiled header output)",
            Language::Assembler => "assembler",
            Language::Other => "non-C language",
        }
    }
}

/// The last component of a path (after the last `/`).
pub fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The extension of the file name (without the dot), if the base name has one.
/// A leading dot alone (`.bashrc`) is not an extension.
pub fn extension(path: &str) -> Option<&str> {
    let base = basename(path);
    let dot = base.rfind('.')?;
    if dot == 0 {
        return None;
    }
    Some(&base[dot + 1..])
}

/// Whether the file name has a C/C++/ObjC/ObjC++ source or preprocessed extension.
pub fn is_source(path: &str) -> bool {
    Language::from_path(path).is_some_and(Language::is_distributable)
}

/// Whether the file name has a preprocessed extension (`.i .ii .mi .mii`).
pub fn is_preprocessed(path: &str) -> bool {
    Language::from_path(path).is_some_and(Language::is_preprocessed)
}

/// The extension for the preprocessed form of this source file (`"a.cc"` → `".ii"`), by
/// name alone; `None` if it is not a C-family source.
pub fn preprocessed_ext(path: &str) -> Option<&'static str> {
    Language::from_path(path)?.preprocessed_ext()
}

/// The input's name where a server or an engine compiles it: the client's base name (so that a source without line
/// markers compiles to the same object and assembly as it would locally) with the
/// preprocessed extension of its source name, as distccd's `dcc_preproc_exten`
/// (`.c`→`.i`, C++ sources→`.ii`, `.m`→`.mi`, `.mm`/`.M`→`.mii`), falling back to the
/// job's language. Unusual names become `input`.
pub fn job_input_name(client_input: &str, fallback_ext: &'static str) -> String {
    let ext = preprocessed_ext(client_input).unwrap_or(fallback_ext);
    let base = basename(client_input);
    let stem = match base.rfind('.') {
        Some(dot) if dot > 0 => &base[..dot],
        _ => base,
    };
    let plain = !stem.is_empty()
        && stem.len() <= 100
        && stem != "output"
        && !stem.starts_with('-')
        && stem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b));
    format!("{}{ext}", if plain { stem } else { "input" })
}

/// The output's name where a server or an engine compiles it: `output` with the extension of the client's output name
/// (`.o`, `.s`…), `.o` when it has none or an unusual one.
pub fn job_output_name(client_output: &str) -> String {
    match extension(client_output) {
        Some(ext)
            if !ext.is_empty()
                && ext.len() <= 8
                && ext.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            format!("output.{ext}")
        }
        _ => "output.o".to_owned(),
    }
}

/// The output gcc writes when there is no `-o`: the input's base name with its last
/// suffix replaced by `suffix`, in the current directory (`sub/a.b.c` → `a.b.o`).
pub fn default_output(input: &str, suffix: &str) -> String {
    let base = basename(input);
    let stem = match base.rfind('.') {
        Some(dot) if dot > 0 => &base[..dot],
        _ => base,
    };
    format!("{stem}{suffix}")
}

/// gcc's `%.d%*` substitution for `-MD` with `-o`: strip the suffix of the last path
/// component (from its last dot, even a leading one) and append `.d`
/// (`out/x.o` → `out/x.d`, `out.dir/x` → `out.dir/x.d`, `out/.x.o` → `out/.x.d`).
pub fn dep_file_for_output(output: &str) -> String {
    let start = output.rfind('/').map_or(0, |slash| slash + 1);
    let stem = match output[start..].rfind('.') {
        Some(dot) => &output[..start + dot],
        None => output,
    };
    format!("{stem}.d")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preprocessed_extensions_match_distcc() {
        let cases = [
            ("a.c", Some(".i")),
            ("a.i", Some(".i")),
            ("a.cc", Some(".ii")),
            ("a.cpp", Some(".ii")),
            ("a.cxx", Some(".ii")),
            ("a.cp", Some(".ii")),
            ("a.c++", Some(".ii")),
            ("a.C", Some(".ii")),
            ("a.ii", Some(".ii")),
            ("a.m", Some(".mi")),
            ("a.mi", Some(".mi")),
            ("a.mm", Some(".mii")),
            ("a.M", Some(".mii")),
            ("a.mii", Some(".mii")),
            ("a.s", None),
            ("a.S", None),
            ("a.h", None),
            ("a.o", None),
            ("dir.c/a", None),
            (".c", None),
        ];
        for (name, want) in cases {
            assert_eq!(preprocessed_ext(name), want, "{name}");
        }
    }

    #[test]
    fn source_and_preprocessed() {
        assert!(is_source("x/y.cpp"));
        assert!(is_source("y.ii"));
        assert!(!is_source("y.s"));
        assert!(!is_source("libfoo.a"));
        assert!(is_preprocessed("y.mii"));
        assert!(!is_preprocessed("y.c"));
    }

    #[test]
    fn derived_names() {
        assert_eq!(default_output("sub/a.b.c", ".o"), "a.b.o");
        assert_eq!(default_output("foo", ".o"), "foo.o");
        assert_eq!(default_output("d/.x.c", ".s"), ".x.s");
        assert_eq!(dep_file_for_output("out/x.o"), "out/x.d");
        assert_eq!(dep_file_for_output("out.dir/x"), "out.dir/x.d");
        assert_eq!(dep_file_for_output("out/.x.o"), "out/.x.d");
        assert_eq!(dep_file_for_output("x"), "x.d");
    }

    #[test]
    fn x_names_round_trip() {
        for lang in [Language::C, Language::Cxx, Language::ObjC, Language::ObjCxx] {
            let pre = lang.preprocessed_x_name().unwrap();
            assert_eq!(Language::from_x(pre), lang.preprocessed_form());
        }
        assert_eq!(Language::from_x("none"), None);
        assert_eq!(Language::from_x("cuda"), Some(Language::Other));
    }

    #[test]
    fn input_names_follow_dcc_preproc_exten() {
        assert_eq!(job_input_name("src/hello.c", ".i"), "hello.i");
        assert_eq!(job_input_name("a.i", ".i"), "a.i");
        for cxx in ["a.cc", "a.cpp", "a.cxx", "a.cp", "a.c++", "a.C", "a.ii"] {
            assert_eq!(job_input_name(cxx, ".i"), "a.ii", "{cxx}");
        }
        assert_eq!(job_input_name("a.m", ".i"), "a.mi");
        assert_eq!(job_input_name("a.mi", ".i"), "a.mi");
        for objcxx in ["a.mm", "a.M", "a.mii"] {
            assert_eq!(job_input_name(objcxx, ".i"), "a.mii", "{objcxx}");
        }
        // -x c++ on an odd name: the job's language decides.
        assert_eq!(job_input_name("weird.txt", ".ii"), "weird.ii");
        assert_eq!(job_input_name("sp ace.c", ".i"), "input.i");
        assert_eq!(job_input_name("output.c", ".i"), "input.i");
        assert_eq!(job_input_name("-rf.c", ".i"), "input.i");
    }

    #[test]
    fn output_names_keep_the_extension() {
        assert_eq!(job_output_name("obj/x.o"), "output.o");
        assert_eq!(job_output_name("x.s"), "output.s");
        assert_eq!(job_output_name("x"), "output.o");
        assert_eq!(job_output_name("x.o;rm"), "output.o");
    }
}
