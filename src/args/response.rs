//! gcc `@file` response files: expanding them into the argv, with libiberty's quoting.
//! Reading a file is the caller's (a closure), so this stays free of I/O; what the
//! expanded arguments mean is left to the classifier.

/// How deep `@file` arguments may nest before they are left as literals.
const MAX_RESPONSE_DEPTH: usize = 16;

/// Expands gcc `@file` response-file arguments (recursively, bounded depth, gcc quoting
/// rules: whitespace separates, '…' and "…" quote, backslash escapes) using `read` to get
/// a file's text. A file that cannot be read is left as the literal argument (as gcc does).
pub fn expand_response_files(
    argv: &[String],
    read: &dyn Fn(&str) -> std::io::Result<String>,
) -> Vec<String> {
    let mut out = Vec::with_capacity(argv.len());
    for arg in argv {
        expand_one(arg, read, 0, &mut out);
    }
    out
}

fn expand_one(
    arg: &str,
    read: &dyn Fn(&str) -> std::io::Result<String>,
    depth: usize,
    out: &mut Vec<String>,
) {
    let text = match arg.strip_prefix('@') {
        Some(path) if depth < MAX_RESPONSE_DEPTH => read(path).ok(),
        _ => None,
    };
    match text {
        Some(text) => {
            for inner in split_response_text(&text) {
                expand_one(&inner, read, depth + 1, out);
            }
        }
        None => out.push(arg.to_owned()),
    }
}

/// Splits response-file text like libiberty's `buildargv`: whitespace separates
/// arguments outside quotes, `'…'` and `"…"` quote (an empty pair gives an empty
/// argument), and a backslash takes the next character literally, even inside quotes.
pub fn split_response_text(text: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| is_gcc_space(*c)) {
            chars.next();
        }
        if chars.peek().is_none() {
            return args;
        }
        let mut arg = String::new();
        let mut quote: Option<char> = None;
        while let Some(c) = chars.next() {
            match (c, quote) {
                ('\\', _) => {
                    if let Some(next) = chars.next() {
                        arg.push(next);
                    }
                }
                (c, Some(q)) if c == q => quote = None,
                (c, Some(_)) => arg.push(c),
                ('\'' | '"', None) => quote = Some(c),
                (c, None) if is_gcc_space(c) => break,
                (c, None) => arg.push(c),
            }
        }
        args.push(arg);
    }
}

/// C `isspace` in the C locale, which `buildargv` uses.
fn is_gcc_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(line: &str) -> Vec<String> {
        shell_words::split(line).expect("test command line")
    }

    #[test]
    fn response_files_expand_recursively_with_gcc_quoting() {
        let read = |path: &str| -> std::io::Result<String> {
            match path {
                "a.rsp" => Ok("-c  'sp ace.c'\n-o \"out dir/x.o\" @b.rsp @missing".into()),
                "b.rsp" => Ok("-DX=\\\"q\\\" '' a\\ b 'it\\'s'".into()),
                "loop.rsp" => Ok("@loop.rsp".into()),
                _ => Err(std::io::ErrorKind::NotFound.into()),
            }
        };
        let got = expand_response_files(&argv("gcc @a.rsp -O2"), &read);
        assert_eq!(
            got,
            [
                "gcc",
                "-c",
                "sp ace.c",
                "-o",
                "out dir/x.o",
                "-DX=\"q\"",
                "",
                "a b",
                "it's",
                "@missing",
                "-O2"
            ]
        );
        assert_eq!(
            expand_response_files(&argv("gcc @loop.rsp"), &read),
            ["gcc", "@loop.rsp"]
        );
        assert_eq!(split_response_text(" \t\n"), Vec::<String>::new());
    }
}
