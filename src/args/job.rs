//! The job a remote compile is built from: the classified argv with each element's role,
//! and the command lines derived from it (local preprocessing, the request sent to the
//! server, the server's own compile). Finding the roles is left to `scan`; nothing here
//! runs a command or chooses a path.

/// What each argv element becomes in the two derived command lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Role {
    /// Kept in both (unknown options, code generation flags, the input).
    Keep,
    /// Kept for the preprocessor, dropped from the remote command.
    CppOnly,
    /// `-c`/`-S`: `-E` for the preprocessor, kept remotely.
    Stop,
    /// `-o` and its value: replaced in both derived commands.
    Output,
    /// Driver-level `-MF` and its value: replaced by our own `-MF` for the preprocessor.
    DepFile,
    /// A `-x` language: kept for the preprocessor, this text remotely.
    Language(String),
}

/// A cc1-level (`-Wp,`/`-Xpreprocessor`) dependency-file value that `cpp_argv` redirects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CppDepFile {
    /// argv index of the `-Wp,` element or of the `-Xpreprocessor` value.
    pub(super) index: usize,
    /// Position in the comma-separated `-Wp,` list; `None` for `-Xpreprocessor`.
    pub(super) item: Option<usize>,
    /// Text before the path in the item (`"-MF"` for a joined `-MFfile`, else empty).
    pub(super) prefix: &'static str,
}

/// A compile that can run remotely, with what its derived command lines need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteJob {
    /// The source file argument as given.
    pub input: String,
    /// The output path the compile writes: the `-o` value, or derived like gcc.
    pub output: String,
    /// The `.d` file a local compile would write, if any.
    pub dep_file: Option<String>,
    /// The input is already preprocessed: no local cpp run is needed.
    pub preprocessed_input: bool,
    /// `".i"`, `".ii"`, `".mi"` or `".mii"`: the extension for the cpp output.
    pub preprocessed_ext: &'static str,
    pub(super) argv: Vec<String>,
    pub(super) roles: Vec<Role>,
    pub(super) input_index: usize,
    /// The user gave `-o` (otherwise `output` is derived by gcc's rules).
    pub(super) output_given: bool,
    /// `-MD`/`-MMD` given to the driver: `cpp_argv` adds `-MF` (and maybe `-MQ`).
    pub(super) driver_deps: bool,
    /// Driver-level `-MT`/`-MQ` present: the driver would not add `-MQ <output>`.
    pub(super) user_targets: bool,
    pub(super) cpp_dep_files: Vec<CppDepFile>,
}

impl RemoteJob {
    /// The local preprocessing command: `-c`/`-S` become `-E`, `-o` is replaced by
    /// `-o i_out`, and the dependency options are kept, with the `.d` redirected to
    /// `deps_out` (or to `dep_file` when `None`) and its targets pinned to what the
    /// original compile would name. Callers skip this for `preprocessed_input`.
    pub fn cpp_argv(&self, i_out: &str, deps_out: Option<&str>) -> Vec<String> {
        let deps_path = deps_out.or(self.dep_file.as_deref());
        let mut out = Vec::with_capacity(self.argv.len() + 6);
        for (index, (arg, role)) in self.argv.iter().zip(&self.roles).enumerate() {
            match role {
                Role::Keep | Role::CppOnly | Role::Language(_) => {
                    match (deps_path, self.cpp_dep_rewrite(index)) {
                        (Some(path), Some(edits)) => {
                            push_cpp_rewritten(&mut out, arg, &edits, path)
                        }
                        _ => out.push(arg.clone()),
                    }
                }
                Role::Stop => out.push("-E".to_owned()),
                Role::Output | Role::DepFile => {}
            }
        }
        out.push("-o".to_owned());
        out.push(i_out.to_owned());
        if let (true, Some(path)) = (self.driver_deps, deps_path) {
            // The driver passes -MF after its own `-MD <derived>`, so ours wins.
            out.push("-MF".to_owned());
            out.push(path.to_owned());
            if self.output_given && !self.user_targets {
                // What the driver adds for a compile but not for -E.
                out.push("-MQ".to_owned());
                out.push(self.output.clone());
            }
        }
        out
    }

    /// The command for the server: preprocessor-only options removed, `-x` rewritten to
    /// the preprocessed language, the original input name kept (the server substitutes
    /// its temp file), and the output always given as the last two arguments,
    /// `-o <output>`, whatever form the user wrote it in.
    pub fn remote_argv(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(self.argv.len() + 2);
        for (arg, role) in self.argv.iter().zip(&self.roles) {
            match role {
                Role::Keep | Role::Stop => out.push(arg.clone()),
                Role::Language(text) => out.push(text.clone()),
                Role::CppOnly | Role::DepFile | Role::Output => {}
            }
        }
        out.push("-o".to_owned());
        out.push(self.output.clone());
        out
    }

    /// For the server, on a job classified from the argv it received: that argv with the
    /// input replaced by `temp_input` and the output by `temp_output` (as a final
    /// `-o temp_output`). Nothing else is changed.
    pub fn server_argv(&self, temp_input: &str, temp_output: &str) -> Vec<String> {
        self.server_argv_with(&[temp_input], temp_output)
    }

    /// [`server_argv`](Self::server_argv) with the source read from standard input
    /// (`-x <language> -`), so that the compiler can start before the source arrives.
    pub fn server_argv_stdin(&self, language: &str, temp_output: &str) -> Vec<String> {
        self.server_argv_with(&["-x", language, "-"], temp_output)
    }

    /// The received argv with the input replaced by `input` and the output by a final
    /// `-o temp_output`.
    fn server_argv_with(&self, input: &[&str], temp_output: &str) -> Vec<String> {
        let mut out = Vec::with_capacity(self.argv.len() + input.len() + 1);
        for (index, (arg, role)) in self.argv.iter().zip(&self.roles).enumerate() {
            if index == self.input_index {
                out.extend(input.iter().map(|s| s.to_string()));
            } else if *role != Role::Output {
                out.push(arg.clone());
            }
        }
        out.push("-o".to_owned());
        out.push(temp_output.to_owned());
        out
    }

    /// The expanded argv this job was classified from.
    pub fn argv(&self) -> &[String] {
        &self.argv
    }

    /// The cc1-level dependency-file values inside argv element `index`, if any.
    fn cpp_dep_rewrite(&self, index: usize) -> Option<Vec<&CppDepFile>> {
        let edits: Vec<&CppDepFile> = self
            .cpp_dep_files
            .iter()
            .filter(|d| d.index == index)
            .collect();
        (!edits.is_empty()).then_some(edits)
    }
}

/// Emits argv element `arg` with its cc1-level dependency-file values replaced by `path`.
/// A `-Wp,` list is re-emitted as `-Xpreprocessor` pairs (the driver feeds both to cc1
/// in the same order), so a path containing a comma cannot be split.
fn push_cpp_rewritten(out: &mut Vec<String>, arg: &str, edits: &[&CppDepFile], path: &str) {
    let Some(list) = arg.strip_prefix("-Wp,") else {
        // An -Xpreprocessor value: the whole element is the item.
        out.push(format!("{}{path}", edits[0].prefix));
        return;
    };
    for (k, item) in list.split(',').enumerate() {
        out.push("-Xpreprocessor".to_owned());
        match edits.iter().find(|d| d.item == Some(k)) {
            Some(d) => out.push(format!("{}{path}", d.prefix)),
            None => out.push(item.to_owned()),
        }
    }
}
