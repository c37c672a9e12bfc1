//! The scan: one generic pass over argv that looks every option up in the table and
//! records what it found, then the checks that turn the findings into a [`RemoteJob`]
//! or the reason to compile locally. What an option means is the table's; the cc1 and
//! assembler lists are read by `passthrough`; the derived command lines are `job`'s.

use super::filename::{self, Language};
use super::job::{RemoteJob, Role};
use super::passthrough::{self, CppDeps, CppItem};
use super::reason::LocalReason;
use super::table::{self, Class, Found};

/// Scans argv (argv[0] is the compiler) into a remote job or the reason it is local.
/// The order of the checks only decides which reason is reported.
pub(super) fn scan(argv: &[String]) -> Result<RemoteJob, LocalReason> {
    if argv.is_empty() {
        return Err(LocalReason::EmptyCommand);
    }
    let found = Findings::walk(argv);
    found.check_mode()?;
    let cpp_deps = passthrough::scan_cpp_items(&found.cpp_items)?;
    found.check_options()?;
    let source = found.source(argv)?;
    let output = found.output(source.path)?;
    if found.driver.any && cpp_deps.any {
        return Err(LocalReason::MixedDependencyOptions);
    }
    Ok(found.into_job(argv, &source, output, cpp_deps))
}

/// One option as it occurs in argv: its text, its value and the elements holding them.
struct Occurrence<'a> {
    arg: &'a str,
    index: usize,
    value: &'a str,
    /// `index` for a joined (or no) value, the next element for a separate one.
    value_index: usize,
}

impl Occurrence<'_> {
    fn joined(&self) -> bool {
        self.value_index == self.index
    }
}

/// Driver-level dependency options (`-MD`, `-MF`, `-MT`…, not those inside `-Wp,`).
#[derive(Default)]
struct DriverDeps<'a> {
    /// `-MD`/`-MMD`: a `.d` file is written as a side effect.
    mode: bool,
    /// Any dependency option at all.
    any: bool,
    /// `-MT`/`-MQ`: the user names the targets.
    user_targets: bool,
    /// The last `-MF` value.
    mf: Option<&'a str>,
}

/// The single source input the checks accepted.
struct Source<'a> {
    index: usize,
    path: &'a str,
    lang: Language,
}

/// What the pass over argv found, before anything is decided.
#[derive(Default)]
struct Findings<'a> {
    roles: Vec<Role>,
    /// An option at the end of argv that lacks its value.
    missing: Option<String>,
    preprocess: bool,
    seen_c: bool,
    seen_s: bool,
    /// The first option that needs the local machine.
    first_local: Option<LocalReason>,
    outputs: Vec<&'a str>,
    /// (argv index, language in effect) for every non-option argument.
    inputs: Vec<(usize, Option<Language>)>,
    /// The `-x` language in effect.
    language: Option<Language>,
    /// (argv index holding a `-x` language name, text before the name in that element).
    language_opts: Vec<(usize, String)>,
    cpp_items: Vec<CppItem<'a>>,
    driver: DriverDeps<'a>,
}

impl<'a> Findings<'a> {
    /// The generic loop: non-options are inputs, unknown options pass through, and a
    /// known option's value is taken as the table says and its class recorded.
    fn walk(argv: &'a [String]) -> Self {
        let mut found = Findings {
            roles: vec![Role::Keep; argv.len()],
            ..Findings::default()
        };
        let mut i = 1;
        while i < argv.len() {
            let arg = argv[i].as_str();
            if !arg.starts_with('-') || arg == "-" {
                found.inputs.push((i, found.language));
                i += 1;
                continue;
            }
            let Some((opt, how)) = table::lookup(arg) else {
                i += 1; // unknown: passes through
                continue;
            };
            let (value, value_index) = match how {
                Found::Bare => ("", i),
                Found::Joined(v) => (v, i),
                Found::NextArg => match argv.get(i + 1) {
                    Some(v) => (v.as_str(), i + 1),
                    None => {
                        found.missing = Some(arg.to_owned());
                        break;
                    }
                },
            };
            let at = Occurrence {
                arg,
                index: i,
                value,
                value_index,
            };
            let role = found.record(opt.class, &at);
            found.roles[i] = role.clone();
            found.roles[value_index] = role;
            i = value_index + 1;
        }
        found
    }

    /// Notes what an option of `class` means and returns the role of its elements.
    fn record(&mut self, class: Class, at: &Occurrence<'a>) -> Role {
        match class {
            Class::StopC => {
                self.seen_c = true;
                Role::Stop
            }
            Class::StopS => {
                self.seen_s = true;
                Role::Stop
            }
            Class::Preprocess => {
                self.preprocess = true;
                Role::Keep
            }
            Class::Output => {
                self.outputs.push(at.value);
                Role::Output
            }
            Class::Language => {
                self.note_language(at);
                Role::Keep
            }
            Class::Cpp | Class::Link => Role::CppOnly,
            Class::CppPass => {
                self.note_cpp_items(at);
                Role::CppOnly
            }
            Class::DepMode | Class::DepFile | Class::DepTarget | Class::DepFlag => {
                self.note_driver_deps(class, at.value)
            }
            Class::Asm if passthrough::asm_wants_local(at.value, at.joined()) => {
                self.stay_local(|| LocalReason::LocalOnlyOption(at.arg.to_owned()))
            }
            Class::Asm | Class::Pass => Role::Keep,
            Class::NoOutput => self.stay_local(|| LocalReason::NoOutput),
            Class::Local(_) => self.stay_local(|| LocalReason::LocalOnlyOption(at.arg.to_owned())),
        }
    }

    /// Keeps the first reason to compile locally; the option itself is kept.
    fn stay_local(&mut self, why: impl FnOnce() -> LocalReason) -> Role {
        self.first_local.get_or_insert_with(why);
        Role::Keep
    }

    fn note_language(&mut self, at: &Occurrence<'a>) {
        self.language = Language::from_x(at.value);
        let prefix = if at.joined() {
            at.arg[..at.arg.len() - at.value.len()].to_owned()
        } else {
            String::new()
        };
        self.language_opts.push((at.value_index, prefix));
    }

    /// `-Wp,a,b` gives one item per comma-separated part; `-Xpreprocessor a` one item.
    fn note_cpp_items(&mut self, at: &Occurrence<'a>) {
        if at.joined() {
            let items = at.value.split(',').enumerate();
            self.cpp_items.extend(items.map(|(k, text)| CppItem {
                index: at.index,
                item: Some(k),
                text,
            }));
        } else {
            self.cpp_items.push(CppItem {
                index: at.value_index,
                item: None,
                text: at.value,
            });
        }
    }

    fn note_driver_deps(&mut self, class: Class, value: &'a str) -> Role {
        self.driver.any = true;
        match class {
            Class::DepMode => self.driver.mode = true,
            Class::DepFile => {
                self.driver.mf = Some(value);
                return Role::DepFile;
            }
            Class::DepTarget => self.driver.user_targets = true,
            _ => {}
        }
        Role::CppOnly
    }

    /// A missing value, preprocessing only, or no compile at all.
    fn check_mode(&self) -> Result<(), LocalReason> {
        if let Some(opt) = &self.missing {
            return Err(LocalReason::MissingArgument(opt.clone()));
        }
        if self.preprocess {
            return Err(LocalReason::Preprocess);
        }
        if !self.seen_c && !self.seen_s {
            return Err(LocalReason::NotACompile);
        }
        Ok(())
    }

    /// A local-only option, or more than one `-o`.
    fn check_options(&self) -> Result<(), LocalReason> {
        if let Some(reason) = &self.first_local {
            return Err(reason.clone());
        }
        if self.outputs.len() > 1 {
            return Err(LocalReason::SeveralOutputs);
        }
        Ok(())
    }

    /// Exactly one input, a file, in a distributed language, and not an autoconf probe.
    fn source(&self, argv: &'a [String]) -> Result<Source<'a>, LocalReason> {
        let (index, language) = match self.inputs.as_slice() {
            [] => return Err(LocalReason::NoInput),
            [one] => *one,
            _ => return Err(LocalReason::SeveralInputs),
        };
        let path = argv[index].as_str();
        if path == "-" {
            return Err(LocalReason::StdinInput);
        }
        let lang = match language.or_else(|| Language::from_path(path)) {
            Some(lang) if lang.is_distributable() => lang,
            Some(lang) => return Err(LocalReason::UnsupportedLanguage(lang.name().to_owned())),
            None => return Err(LocalReason::NotASource(path.to_owned())),
        };
        let base = filename::basename(path);
        if base.starts_with("conftest.") || base.starts_with("tmp.conftest.") {
            return Err(LocalReason::Conftest);
        }
        Ok(Source { index, path, lang })
    }

    /// The `-o` value, or the name gcc derives from the input.
    fn output(&self, input: &str) -> Result<String, LocalReason> {
        match self.outputs.first() {
            Some(&"-") => Err(LocalReason::OutputToStdout),
            Some(&"") => Err(LocalReason::EmptyOutput),
            Some(o) => Ok((*o).to_owned()),
            // -S wins over -c, as in gcc.
            None => Ok(filename::default_output(
                input,
                if self.seen_s { ".s" } else { ".o" },
            )),
        }
    }

    /// The `.d` file a local compile would write (the rules are in the `args` doc).
    fn dep_file(&self, source: &Source<'_>, cpp_deps: &CppDeps) -> Option<String> {
        if source.lang.is_preprocessed() {
            None // cc1 does not run the preprocessor, so nothing is written
        } else if self.driver.mode {
            Some(match (self.driver.mf, self.outputs.first()) {
                (Some(mf), _) => mf.to_owned(),
                (None, Some(o)) => filename::dep_file_for_output(o),
                (None, None) => filename::default_output(source.path, ".d"),
            })
        } else if cpp_deps.mode {
            cpp_deps.file.clone()
        } else {
            None
        }
    }

    /// The roles that depend on the whole command line.
    fn settle_roles(&mut self, argv: &[String], input_index: usize) {
        // Without -MD/-MMD a stray -MF is not ours to redirect: keep it as given.
        if !self.driver.mode {
            for role in self.roles.iter_mut().filter(|r| **r == Role::DepFile) {
                *role = Role::CppOnly;
            }
        }
        // The server compiles preprocessed text, so a -x naming a source language (only
        // those before the input can matter) must name its preprocessed form; otherwise
        // the server would run cpp again on the .i.
        for (index, prefix) in &self.language_opts {
            if *index > input_index {
                continue;
            }
            let pre = Language::from_x(&argv[*index][prefix.len()..])
                .and_then(Language::preprocessed_x_name);
            if let Some(pre) = pre {
                self.roles[*index] = Role::Language(format!("{prefix}{pre}"));
            }
        }
    }

    fn into_job(
        mut self,
        argv: &[String],
        source: &Source<'_>,
        output: String,
        cpp_deps: CppDeps,
    ) -> RemoteJob {
        let preprocessed_input = source.lang.is_preprocessed();
        let dep_file = self.dep_file(source, &cpp_deps);
        self.settle_roles(argv, source.index);
        RemoteJob {
            input: source.path.to_owned(),
            output,
            dep_file,
            preprocessed_input,
            preprocessed_ext: source.lang.preprocessed_ext().unwrap_or(".i"),
            argv: argv.to_vec(),
            roles: self.roles,
            input_index: source.index,
            output_given: !self.outputs.is_empty(),
            driver_deps: self.driver.mode && !preprocessed_input,
            user_targets: self.driver.user_targets,
            cpp_dep_files: if cpp_deps.mode {
                cpp_deps.files
            } else {
                Vec::new()
            },
        }
    }
}
