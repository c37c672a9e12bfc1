//! Options the driver hands on to its subprograms: the cc1 preprocessor's (`-Wp,`,
//! `-Xpreprocessor`), whose dependency options and local-only flags matter, and the
//! assembler's (`-Wa,`, `-Xassembler`), which may ask for listings. Collecting the items
//! from argv is left to `scan`; redirecting their `.d` files is `job`'s.

use super::job::CppDepFile;
use super::reason::LocalReason;
use super::table::{self, Class};

/// One argument handed to cc1 through `-Wp,` or `-Xpreprocessor`.
pub(super) struct CppItem<'a> {
    pub(super) index: usize,
    pub(super) item: Option<usize>,
    pub(super) text: &'a str,
}

/// What the cc1-level items say about dependencies.
#[derive(Default)]
pub(super) struct CppDeps {
    pub(super) any: bool,
    pub(super) mode: bool,
    pub(super) file: Option<String>,
    pub(super) files: Vec<CppDepFile>,
}

/// Scans cc1-level options. At this level `-MD`/`-MMD` take the file as a separate
/// argument (that is how `-Wp,-MD,FILE` works), and the last file option wins.
pub(super) fn scan_cpp_items(items: &[CppItem<'_>]) -> Result<CppDeps, LocalReason> {
    let mut deps = CppDeps::default();
    let mut j = 0;
    while j < items.len() {
        let text = items[j].text;
        let takes_file = matches!(text, "-MD" | "-MMD" | "-MF");
        let takes_target = matches!(text, "-MT" | "-MQ");
        if takes_file || takes_target {
            let value = items
                .get(j + 1)
                .ok_or_else(|| LocalReason::MissingArgument(text.to_owned()))?;
            deps.any = true;
            deps.mode |= text != "-MF" && takes_file;
            if takes_file {
                deps.file = Some(value.text.to_owned());
                deps.files.push(CppDepFile {
                    index: value.index,
                    item: value.item,
                    prefix: "",
                });
            }
            j += 2;
            continue;
        }
        if let Some(file) = text.strip_prefix("-MF") {
            deps.any = true;
            deps.file = Some(file.to_owned());
            deps.files.push(CppDepFile {
                index: items[j].index,
                item: items[j].item,
                prefix: "-MF",
            });
        } else if text.starts_with("-MT")
            || text.starts_with("-MQ")
            || text == "-MP"
            || text == "-MG"
        {
            deps.any = true;
        } else if let Some((opt, _)) = table::lookup(text) {
            match opt.class {
                Class::Preprocess => return Err(LocalReason::Preprocess),
                Class::Local(_) => return Err(LocalReason::LocalOnlyOption(text.to_owned())),
                _ => {}
            }
        }
        j += 1;
    }
    Ok(deps)
}

/// Whether assembler options ask for a listing (`-a…`) or a dependency file (`--MD`),
/// which would be written on the server and lost.
pub(super) fn asm_wants_local(items: &str, comma_list: bool) -> bool {
    let wants = |item: &str| item.starts_with("-a") || item.starts_with("--MD");
    if comma_list {
        items.split(',').any(wants)
    } else {
        wants(items)
    }
}
