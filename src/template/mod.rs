//! The command template: parsing placeholders once at start-up and expanding them per job.
//!
//! Each template word is parsed on its own into tokens and expands to exactly one argv
//! element, so nothing in a file name can split a word or inject anything. In shell mode the
//! whole script is one word and every substituted value is shell-quoted before it enters the
//! script text. This module works on bytes (`OsStr`), never on lossy strings, and touches
//! neither processes nor the file system.

use std::borrow::Cow;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use anyhow::{bail, Result};

mod placeholder;
mod shell;
mod typo;

pub(crate) use placeholder::Placeholder;
use placeholder::{spelling, PLACEHOLDERS};
use shell::{Conflict, ShellQuotes};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Text(Vec<u8>),
    Value(Placeholder),
}

/// One parsed template word.
#[derive(Debug, Clone)]
struct Word {
    tokens: Vec<Token>,
}

/// The placeholder whose `{` is `bytes[i]`, with the length of its name, when one starts
/// there. An error when it cannot stand there: `{out}` with nowhere to commit it, a value
/// that would land inside the script's quotes (`quotes`, in shell mode), or a near miss of a
/// placeholder's name.
fn placeholder_at(
    bytes: &[u8],
    i: usize,
    quotes: Option<&mut ShellQuotes>,
    with_out: bool,
) -> Result<Option<(Placeholder, usize)>> {
    let Some(len) = bytes[i + 1..].iter().position(|&c| c == b'}') else {
        return Ok(None);
    };
    let name = &bytes[i + 1..i + 1 + len];
    if let Some(&(_, ph)) = PLACEHOLDERS.iter().find(|(n, _)| n.as_bytes() == name) {
        if ph == Placeholder::Out && !with_out {
            bail!("{{out}} is where a job writes what fanout then commits: add -i/--in-place or -o/--output TEMPLATE");
        }
        if let Some(q) = quotes {
            if let Some(problem) = q.value_here() {
                let name = String::from_utf8_lossy(name);
                bail!(
                    "-s: {{{name}}} {problem} in `{}`; fanout quotes substituted values itself: write {{{name}}} without quotes{}",
                    String::from_utf8_lossy(bytes),
                    match problem {
                        Conflict::Backslash => " or backslash",
                        Conflict::Dollar => " or `$`",
                        Conflict::HereDocument => ", outside here-documents",
                        _ => "",
                    }
                );
            }
        }
        return Ok(Some((ph, len)));
    }
    // A near miss of a placeholder is a typo; other brace text is the command's own (awk,
    // jq, JSON), and `${name}` is a shell's expansion.
    let after_dollar = i > 0 && bytes[i - 1] == b'$';
    if let Some(meant) = typo::near_miss(name).filter(|_| !after_dollar) {
        let name = String::from_utf8_lossy(name);
        bail!(
            "unknown placeholder {{{name}}} in the command (did you mean {meant}?); write {{{{{name}}}}} for literal braces"
        );
    }
    Ok(None)
}

impl Word {
    fn parse(raw: &OsStr, shell: bool, with_out: bool) -> Result<Word> {
        let bytes = raw.as_bytes();
        let mut tokens = Vec::new();
        let mut text = Vec::new();
        // In a script, where each byte stands for `sh`: a quoted value must not land in quotes.
        let mut quotes = shell.then(ShellQuotes::default);
        let mut i = 0;
        // The `}}` that closes a `{{{placeholder}}}`.
        let mut close = None;
        while i < bytes.len() {
            let b = bytes[i];
            let literal = match b {
                b'{' if bytes.get(i + 1) == Some(&b'{') => match typo::doubled(bytes, i) {
                    Some(typo::Doubled::Literal { text, next }) => Some((text, next)),
                    Some(typo::Doubled::Around { close: at }) => {
                        close = Some(at);
                        Some((i..i + 1, i + 2))
                    }
                    None => None,
                },
                b'}' if close == Some(i) => Some((i..i + 1, i + 2)),
                _ => None,
            };
            if let Some((range, next)) = literal {
                for &c in &bytes[range] {
                    text.push(c);
                    if let Some(q) = quotes.as_mut() {
                        q.feed(c);
                    }
                }
                i = next;
                continue;
            }
            if b == b'{' {
                if let Some((ph, len)) = placeholder_at(bytes, i, quotes.as_mut(), with_out)? {
                    if !text.is_empty() {
                        tokens.push(Token::Text(std::mem::take(&mut text)));
                    }
                    tokens.push(Token::Value(ph));
                    i += len + 2;
                    continue;
                }
            }
            text.push(b);
            if let Some(q) = quotes.as_mut() {
                q.feed(b);
            }
            i += 1;
        }
        if !text.is_empty() {
            tokens.push(Token::Text(text));
        }
        Ok(Word { tokens })
    }

    fn has_path(&self) -> bool {
        self.tokens
            .iter()
            .any(|t| matches!(t, Token::Value(p) if p.is_path()))
    }

    fn is_literal(&self) -> bool {
        self.tokens.iter().all(|t| matches!(t, Token::Text(_)))
    }

    fn expand_into(&self, job: &JobValues, quote: bool, out: &mut Vec<u8>) {
        let mut previous: Option<&Token> = None;
        for token in &self.tokens {
            match token {
                Token::Text(t) => out.extend_from_slice(t),
                Token::Value(ph) => {
                    let mut value = job.value(*ph);
                    if value.first() == Some(&b'-') && begins_word(previous, quote) {
                        value = Cow::Owned([&b"./"[..], &value].concat());
                    }
                    if quote {
                        out.extend_from_slice(&shell_quote(&value));
                    } else {
                        out.extend_from_slice(&value);
                    }
                }
            }
            previous = Some(token);
        }
    }
}

/// Whether a value placed after `previous` begins a word of the command, where a leading `-`
/// would read as an option: the first thing in an argv word, or in a script (`shell`) after a
/// blank or an operator. A value inside a word (`--in={}`, `out/{/}`) cannot.
fn begins_word(previous: Option<&Token>, shell: bool) -> bool {
    match previous {
        None => true,
        Some(Token::Value(_)) => false,
        Some(Token::Text(t)) => shell && t.last().is_none_or(|b| b" \t\n;&|()<>`".contains(b)),
    }
}

/// The values one job's placeholders expand to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct JobValues<'a> {
    pub path: &'a Path,
    pub job: u64,
    pub slot: usize,
    pub threads: usize,
    /// Where the job writes, for `{out}`.
    pub out: Option<&'a Path>,
    /// Where `{rel}` begins in `path`: the length of the root it was found under, with its
    /// separator. `None`: a path named directly or read from standard input.
    pub rel_at: Option<usize>,
    /// The memory reservation in MiB, for `{mem}`.
    pub mem_mib: u64,
    /// An object's URL, for `{url}` and `{rel}` (`path` is then its staged copy); `None`: a
    /// local file, whose `{url}` is its path.
    pub url: Option<&'a Path>,
}

impl<'a> JobValues<'a> {
    /// The values for job `job` of `path` that do not depend on where or how it runs: slot
    /// 1, no `{out}`, no reservation (targets, plans; a run sets the others).
    pub(crate) fn of(path: &'a Path, job: u64, rel_at: Option<usize>, threads: usize) -> Self {
        JobValues {
            path,
            job,
            slot: 1,
            threads,
            out: None,
            rel_at,
            mem_mib: 0,
            url: None,
        }
    }

    fn value(&self, ph: Placeholder) -> Cow<'_, [u8]> {
        let path = self.path;
        match ph {
            Placeholder::Path => Cow::Borrowed(path.as_os_str().as_bytes()),
            Placeholder::NoExt => {
                let whole = path.as_os_str().as_bytes();
                let Some(name) = path.file_name().map(OsStr::as_bytes) else {
                    return Cow::Borrowed(whole);
                };
                let ext = name.len() - stem_len(name);
                if ext == 0 {
                    Cow::Borrowed(whole)
                } else if whole.ends_with(name) {
                    // The path as given, less the extension: `{//}/{/.}`.
                    Cow::Borrowed(&whole[..whole.len() - ext])
                } else {
                    // A path Rust normalises (a trailing `/`): build it from its parts.
                    let stem = OsStr::from_bytes(&name[..name.len() - ext]);
                    let parent = path.parent().unwrap_or(Path::new(""));
                    Cow::Owned(parent.join(stem).into_os_string().into_vec())
                }
            }
            Placeholder::Basename => {
                Cow::Borrowed(path.file_name().unwrap_or(path.as_os_str()).as_bytes())
            }
            Placeholder::Parent => match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => Cow::Borrowed(p.as_os_str().as_bytes()),
                _ => Cow::Borrowed(b"."),
            },
            Placeholder::BasenameNoExt => {
                let name = path.file_name().unwrap_or(path.as_os_str()).as_bytes();
                Cow::Borrowed(&name[..stem_len(name)])
            }
            Placeholder::JobNumber => Cow::Owned(self.job.to_string().into_bytes()),
            Placeholder::Slot => Cow::Owned(self.slot.to_string().into_bytes()),
            Placeholder::Threads => Cow::Owned(self.threads.to_string().into_bytes()),
            Placeholder::Mem => Cow::Owned(self.mem_mib.to_string().into_bytes()),
            Placeholder::Out => {
                Cow::Borrowed(self.out.map_or(&b""[..], |p| p.as_os_str().as_bytes()))
            }
            Placeholder::Url => Cow::Borrowed(self.url.unwrap_or(path).as_os_str().as_bytes()),
            Placeholder::Rel => Cow::Owned(rel_path(self.url.unwrap_or(path), self.rel_at)),
            Placeholder::RelNoExt => {
                let mut rel = rel_path(self.url.unwrap_or(path), self.rel_at);
                let start = rel.iter().rposition(|b| *b == b'/').map_or(0, |i| i + 1);
                rel.truncate(start + stem_len(&rel[start..]));
                Cow::Owned(rel)
            }
        }
    }
}

/// `{rel}`: the path below the root it was found under (`rel_at`), or for a path named
/// directly the path itself when it is relative without `..`, else its base name. Only plain
/// name components are kept (`.` and empty ones are dropped), so the value is never absolute,
/// never holds `..`, and `dir/{rel}` always stays inside `dir`. A value that would begin with
/// `-` begins with `./` instead, so it cannot read as an option.
pub(crate) fn rel_path(path: &Path, rel_at: Option<usize>) -> Vec<u8> {
    use std::path::Component;
    let whole = path.as_os_str().as_bytes();
    let below = match rel_at {
        Some(at) if at <= whole.len() => Path::new(OsStr::from_bytes(&whole[at..])),
        _ => path,
    };
    // Below a root, a leading `/` is the separator after the root's name.
    let plain = below.components().all(|c| match c {
        Component::Normal(_) | Component::CurDir => true,
        Component::RootDir => rel_at.is_some(),
        _ => false,
    });
    let mut rel = Vec::with_capacity(below.as_os_str().len());
    if plain {
        for c in below.components() {
            if let Component::Normal(name) = c {
                if !rel.is_empty() {
                    rel.push(b'/');
                }
                rel.extend_from_slice(name.as_bytes());
            }
        }
    }
    if rel.is_empty() {
        rel = path
            .file_name()
            .map_or(b"_".to_vec(), |n| n.as_bytes().to_vec());
    }
    if rel.first() == Some(&b'-') {
        rel.splice(0..0, *b"./");
    }
    rel
}

/// The length of the part of a walked `path` below its `root` (where `{rel}` begins): what
/// `strip_prefix` leaves, found without parsing either path into components.
pub(crate) fn below(path: &Path, root: &Path) -> usize {
    let r = root.as_os_str().as_bytes();
    match path.as_os_str().as_bytes().strip_prefix(r) {
        Some(rest) if rest.first() == Some(&b'/') || r.ends_with(b"/") => {
            rest.iter().skip_while(|&&b| b == b'/').count()
        }
        _ => path.strip_prefix(root).map_or(0, |r| r.as_os_str().len()),
    }
}

/// The length of a file name without its extension. As in Python's `os.path.splitext`, the
/// extension starts at the last dot that is not one of the name's leading dots: `.hidden`,
/// `..double` and `...` have none, `.a.b` has `.b`. Rust's `file_stem` would make `..double` a
/// file `.` with extension `double`, so `{/.}` would name a directory (fd and GNU parallel do
/// the same); here a stem is never `.` or `..`.
fn stem_len(name: &[u8]) -> usize {
    let dots = name.iter().take_while(|&&b| b == b'.').count();
    match name[dots..].iter().rposition(|&b| b == b'.') {
        Some(i) => dots + i,
        None => name.len(),
    }
}

/// Quotes one value as a single POSIX shell word.
pub(crate) fn shell_quote(value: &[u8]) -> Cow<'_, [u8]> {
    // Most paths need no quotes: said at once, as shlex would say them.
    if !value.is_empty() && value.iter().all(|&b| needs_no_quotes(b)) {
        return Cow::Borrowed(value);
    }
    // Paths cannot contain NUL, the only byte shlex refuses; fall back to quoting by hand.
    shlex::bytes::try_quote(value).unwrap_or_else(|_| Cow::Owned(single_quote(value)))
}

/// The bytes shlex leaves unquoted (a word of only these is written as it is).
fn needs_no_quotes(b: u8) -> bool {
    matches!(b, b'+' | b'-' | b'.' | b'/' | b':' | b'@' | b']' | b'_') || b.is_ascii_alphanumeric()
}

/// `value` in single quotes, whatever it holds (a `'` becomes `'\''`).
pub(crate) fn single_quote(value: &[u8]) -> Vec<u8> {
    let mut q = b"'".to_vec();
    for &b in value {
        if b == b'\'' {
            q.extend_from_slice(b"'\\''");
        } else {
            q.push(b);
        }
    }
    q.push(b'\'');
    q
}

/// A parsed command template.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    words: Vec<Word>,
    /// The script is run with `sh -c`; substituted values are shell-quoted.
    shell: bool,
}

impl Template {
    /// Parses the words after `--`. In shell mode they are joined with single spaces into one
    /// script. A template without a path placeholder gets `{}` appended.
    pub(crate) fn parse(raw: &[OsString], shell: bool, with_out: bool) -> Result<Template> {
        if raw.is_empty() || (raw.len() == 1 && raw[0].is_empty()) {
            bail!("no command given after `--`");
        }
        let mut words = if shell {
            let script = raw.join(OsStr::new(" "));
            vec![Word::parse(&script, true, with_out)?]
        } else {
            raw.iter()
                .map(|w| Word::parse(w, false, with_out))
                .collect::<Result<Vec<_>>>()?
        };
        let has_out = words
            .iter()
            .flat_map(|w| &w.tokens)
            .any(|t| *t == Token::Value(Placeholder::Out));
        if with_out && !has_out {
            bail!("-i/--in-place and -o/--output need {{out}} in the command: the path the job writes the new content to, e.g. `cp {{}} {{out}}`");
        }
        if !words.iter().any(Word::has_path) {
            let path = Token::Value(Placeholder::Path);
            if shell {
                let script = &mut words[0].tokens;
                script.push(Token::Text(b" ".to_vec()));
                script.push(path);
            } else {
                words.push(Word { tokens: vec![path] });
            }
        }
        Ok(Template { words, shell })
    }

    /// The program to resolve before any job runs: the first word when it is literal text
    /// (`sh` in shell mode). `None` when the program itself comes from a placeholder.
    pub(crate) fn program(&self) -> Option<OsString> {
        if self.shell {
            return Some(OsString::from("sh"));
        }
        let first = &self.words[0];
        if !first.is_literal() {
            return None;
        }
        let mut bytes = Vec::new();
        for t in &first.tokens {
            if let Token::Text(b) = t {
                bytes.extend_from_slice(b);
            }
        }
        Some(OsString::from_vec(bytes))
    }

    /// Whether a job reads the file itself (`{}`, `{.}`, `{/}`, `{//}`, `{/.}`): an object is
    /// then downloaded first; a command that uses `{url}` (and `{rel}`) alone needs no copy.
    pub(crate) fn reads_file(&self) -> bool {
        self.words
            .iter()
            .flat_map(|w| &w.tokens)
            .any(|t| matches!(t, Token::Value(ph) if ph.reads_file()))
    }

    /// The argv of one job: one element per template word (`sh -c SCRIPT` in shell mode).
    pub(crate) fn expand(&self, job: &JobValues) -> Vec<OsString> {
        if self.shell {
            let mut script = Vec::new();
            self.words[0].expand_into(job, true, &mut script);
            return vec!["sh".into(), "-c".into(), OsString::from_vec(script)];
        }
        self.words
            .iter()
            .map(|w| {
                let mut buf = Vec::new();
                w.expand_into(job, false, &mut buf);
                OsString::from_vec(buf)
            })
            .collect()
    }
}

impl Template {
    /// Whether any word holds `ph`.
    pub(crate) fn uses(&self, ph: Placeholder) -> bool {
        self.words
            .iter()
            .flat_map(|w| &w.tokens)
            .any(|t| *t == Token::Value(ph))
    }

    /// One job's command as one shell line, appended to `line`: the very bytes of
    /// `display_argv(&self.expand(job))`, without a string per word (`scratch` holds each word
    /// while it is quoted). A dry run lists every job this way.
    pub(crate) fn display_into(&self, job: &JobValues, scratch: &mut Vec<u8>, line: &mut Vec<u8>) {
        if self.shell {
            for word in [&b"sh"[..], b"-c"] {
                quote_word(word, line);
                line.push(b' ');
            }
            scratch.clear();
            self.words[0].expand_into(job, true, scratch);
            quote_word(scratch, line);
            return;
        }
        for (i, w) in self.words.iter().enumerate() {
            if i > 0 {
                line.push(b' ');
            }
            scratch.clear();
            w.expand_into(job, false, scratch);
            quote_word(scratch, line);
        }
    }
}

/// One word of a command line as `sh` reads it back: quoted when it needs to be, `''` when
/// empty.
fn quote_word(word: &[u8], line: &mut Vec<u8>) {
    if word.is_empty() {
        line.extend_from_slice(b"''");
    } else {
        line.extend_from_slice(&shell_quote(word));
    }
}

/// The `-o` template: one word naming each input's target. Every placeholder works in it
/// but those that differ between runs of the same input (`{%}`, `{mem}`) and `{out}`.
#[derive(Debug, Clone)]
pub(crate) struct TargetTemplate {
    word: Word,
}

impl TargetTemplate {
    pub(crate) fn parse(raw: &OsStr) -> Result<TargetTemplate> {
        if raw.is_empty() {
            bail!("-o/--output needs a template, e.g. -o 'clean/{{rel.}}.parquet'");
        }
        let word = Word::parse(raw, false, true)?;
        for token in &word.tokens {
            if let Token::Value(ph @ (Placeholder::Out | Placeholder::Slot | Placeholder::Mem)) =
                token
            {
                bail!(
                    "-o/--output: {} cannot name a target{}",
                    spelling(*ph),
                    if *ph == Placeholder::Out {
                        " ({out} is the temporary file the command writes)"
                    } else {
                        ": it differs from one run to the next, so a target could not be found again"
                    }
                );
            }
        }
        if raw.as_bytes().ends_with(b"/") {
            bail!(
                "-o/--output names a directory ({}): name the file, e.g. 'clean/{{rel.}}.parquet'",
                raw.to_string_lossy()
            );
        }
        Ok(TargetTemplate { word })
    }

    /// The target of one input. When the template begins with text (`clean/...`), no
    /// placeholder may bring in a `..` component: the target stays under that text.
    pub(crate) fn expand(&self, job: &JobValues) -> Result<std::path::PathBuf, String> {
        let fenced = matches!(self.word.tokens.first(), Some(Token::Text(_)));
        let mut target = Vec::new();
        for token in &self.word.tokens {
            match token {
                Token::Text(t) => target.extend_from_slice(t),
                Token::Value(ph) => {
                    let value = job.value(*ph);
                    let path = Path::new(OsStr::from_bytes(&value));
                    if fenced
                        && path
                            .components()
                            .any(|c| c == std::path::Component::ParentDir)
                    {
                        return Err(format!(
                            "{} is {}, which holds `..`: the target would leave the template's directory (use {{rel}} or {{/}})",
                            spelling(*ph),
                            path.display()
                        ));
                    }
                    target.extend_from_slice(&value);
                }
            }
        }
        let target = std::path::PathBuf::from(OsString::from_vec(target));
        let named = target.file_name().is_some()
            && !target.as_os_str().as_bytes().ends_with(b"/")
            && !target.ends_with(".");
        if !named {
            return Err(format!(
                "the target {} is not a file name",
                target.display()
            ));
        }
        Ok(target)
    }
}

impl Template {
    /// The argv of one batch: a word with a path placeholder is repeated once per path, in
    /// order (`--in={}` gives `--in=a --in=b`); every other word appears once, with `values`
    /// (whose `job` is the batch number). Shell mode has no words to repeat: the config
    /// refuses batches with `-s`.
    /// `rels` holds each path's `{rel}` start (`Input::rel_at`), or is empty when none is known.
    /// `urls` holds each object's URL when `paths` are their staged copies (or is empty).
    pub(crate) fn expand_batch(
        &self,
        paths: &[&Path],
        rels: &[Option<usize>],
        urls: &[Option<&Path>],
        values: &JobValues,
    ) -> Vec<OsString> {
        debug_assert!(!self.shell, "batches are refused in shell mode");
        let mut argv = Vec::with_capacity(self.words.len() + paths.len());
        for w in &self.words {
            if w.has_path() {
                for (i, path) in paths.iter().enumerate() {
                    let mut buf = Vec::new();
                    let rel_at = rels.get(i).copied().flatten();
                    w.expand_into(
                        &JobValues {
                            path,
                            rel_at,
                            url: urls.get(i).copied().flatten(),
                            ..*values
                        },
                        false,
                        &mut buf,
                    );
                    argv.push(OsString::from_vec(buf));
                }
            } else {
                let mut buf = Vec::new();
                w.expand_into(values, false, &mut buf);
                argv.push(OsString::from_vec(buf));
            }
        }
        argv
    }

    /// What `path` adds to a batch's argument list, in bytes as `execve` counts them (each
    /// word, its NUL and its pointer). Numbers are taken at their widest, so this never
    /// underestimates.
    pub(crate) fn batch_cost(&self, path: &Path, rel_at: Option<usize>) -> usize {
        self.words
            .iter()
            .filter(|w| w.has_path())
            .map(|w| word_cost(w, path, rel_at))
            .sum()
    }

    /// What the words that are not repeated cost, with the argument list's closing pointer.
    pub(crate) fn batch_fixed_cost(&self) -> usize {
        let fixed: usize = self
            .words
            .iter()
            .filter(|w| !w.has_path())
            .map(|w| word_cost(w, Path::new(""), None))
            .sum();
        fixed + std::mem::size_of::<usize>()
    }
}

/// One expanded word's cost in `execve`'s argument area: its bytes, its NUL, its pointer.
fn word_cost(w: &Word, path: &Path, rel_at: Option<usize>) -> usize {
    let widest = JobValues {
        path,
        rel_at,
        job: u64::MAX,
        slot: usize::MAX,
        threads: usize::MAX,
        out: None,
        mem_mib: u64::MAX,
        url: None,
    };
    let mut buf = Vec::new();
    w.expand_into(&widest, false, &mut buf);
    buf.len() + 1 + std::mem::size_of::<usize>()
}

/// Renders an argv as one shell command line: `sh -c "$line"` runs the very same argv.
pub(crate) fn display_argv(argv: &[OsString]) -> Vec<u8> {
    let mut line = Vec::new();
    for (i, arg) in argv.iter().enumerate() {
        if i > 0 {
            line.push(b' ');
        }
        quote_word(arg.as_bytes(), &mut line);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(words: &[&str]) -> Result<Template> {
        let raw: Vec<OsString> = words.iter().map(OsString::from).collect();
        Template::parse(&raw, false, false)
    }

    fn expand(t: &Template, path: &str) -> Vec<String> {
        let job = JobValues {
            path: Path::new(path),
            job: 7,
            slot: 2,
            threads: 3,
            out: Some(Path::new("o")),
            rel_at: None,
            mem_mib: 512,
            url: None,
        };
        t.expand(&job)
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect()
    }

    #[test]
    fn below_a_root_is_what_strip_prefix_leaves() {
        for (root, path) in [
            ("tree", "tree/d/x.csv"),
            ("tree/", "tree/d/x.csv"),
            ("tree//", "tree//d"),
            (".", "./d/x"),
            ("./t/", "./t/x"),
            ("a/./b", "a/./b/x"),
            ("tree/.", "tree/./d"),
            ("/", "/etc/x"),
            ("tr", "tree/x"),
            ("d", "d"),
        ] {
            let (root, path) = (Path::new(root), Path::new(path));
            let want = path.strip_prefix(root).map_or(0, |r| r.as_os_str().len());
            assert_eq!(below(path, root), want, "{root:?} {path:?}");
        }
    }

    #[test]
    fn quoting_is_shlex_quoting() {
        let mut words: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        words.extend((0..=255u8).map(|b| [b"a-b/c.d", &[b][..], b"e:f@g]h_+"].concat()));
        words.extend([
            b"^x".to_vec(),
            b"x^".to_vec(),
            b"-rf".to_vec(),
            b"~".to_vec(),
        ]);
        for w in words {
            let want =
                shlex::bytes::try_quote(&w).map_or_else(|_| single_quote(&w), Cow::into_owned);
            assert_eq!(shell_quote(&w).into_owned(), want, "{w:?}");
        }
    }

    #[test]
    fn a_line_written_in_place_is_the_displayed_argv() {
        let templates: [(&[&str], bool); 6] = [
            (&["echo"], false),
            (&["cp", "{}", "{out}", "--tag={/.}", ""], false),
            (
                &["{}", "{#}", "{%}", "{mem}", "{rel}", "{rel.}", "'$x'"],
                false,
            ),
            (&["a b", "{{}}", "{//}/{/}", "{.}.bak"], false),
            (&["echo {} | wc -c > {/.}.n && cat {out}"], true),
            (&["x", "{rel}"], true),
        ];
        let paths = [
            "d/part-0001.parquet",
            "-leading dash",
            "it's",
            "a b\nc",
            "a\nb/ü.tar.gz",
            "$(touch PWNED)",
            "",
            ".hidden",
            "d/",
        ];
        let mut scratch = Vec::new();
        for (words, shell) in templates {
            let raw: Vec<OsString> = words.iter().map(OsString::from).collect();
            let with_out = words.iter().any(|w| w.contains("{out}"));
            let t = Template::parse(&raw, shell, with_out).unwrap();
            for path in paths {
                let job = JobValues {
                    path: Path::new(path),
                    job: 12,
                    slot: 2,
                    threads: 3,
                    out: Some(Path::new("o/x y")),
                    rel_at: Some(2.min(path.len())),
                    mem_mib: 512,
                    url: None,
                };
                let mut line = b"before ".to_vec();
                t.display_into(&job, &mut scratch, &mut line);
                let want = [&b"before "[..], &display_argv(&t.expand(&job))].concat();
                assert_eq!(line, want, "{words:?} {path:?}");
            }
        }
    }

    #[test]
    fn a_batch_repeats_the_words_with_a_path() {
        let t = parse(&["gz", "-t", "--in={}", "{/.}:{//}", "n{#}"]).unwrap();
        let values = JobValues {
            path: Path::new(""),
            rel_at: None,
            job: 4,
            slot: 1,
            threads: 1,
            out: None,
            mem_mib: 1,
            url: None,
        };
        let paths = [Path::new("a/x.c"), Path::new("b y.h")];
        let argv = t.expand_batch(&paths, &[], &[], &values);
        let argv: Vec<_> = argv.iter().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(
            argv,
            ["gz", "-t", "--in=a/x.c", "--in=b y.h", "x:a", "b y:.", "n4"]
        );
        // The implicit trailing {} is repeated too.
        let t = parse(&["wc", "-c"]).unwrap();
        let argv = t.expand_batch(&paths, &[], &[], &values);
        assert_eq!(argv, ["wc", "-c", "a/x.c", "b y.h"]);
        // Costs: bytes, NUL and pointer of each word.
        let p = std::mem::size_of::<usize>();
        assert_eq!(t.batch_cost(Path::new("a/x.c"), None), 5 + 1 + p);
        assert_eq!(t.batch_fixed_cost(), 2 + 1 + p + 2 + 1 + p + p);
    }

    #[test]
    fn every_placeholder_expands() {
        let t = parse(&[
            "x",
            "{}",
            "{.}",
            "{/}",
            "{//}",
            "{/.}",
            "{#}",
            "{%}",
            "{threads}",
        ])
        .unwrap();
        assert_eq!(
            expand(&t, "d/e/f.tar.gz"),
            [
                "x",
                "d/e/f.tar.gz",
                "d/e/f.tar",
                "f.tar.gz",
                "d/e",
                "f.tar",
                "7",
                "2",
                "3"
            ]
        );
    }

    /// `{}|{.}|{/}|{//}|{/.}` of `path`.
    fn path_values(path: &str) -> Vec<String> {
        let t = parse(&["x", "{}", "{.}", "{/}", "{//}", "{/.}"]).unwrap();
        expand(&t, path)[1..].to_vec()
    }

    #[test]
    fn leading_dots_never_begin_an_extension() {
        // As Python's os.path.splitext: the name's leading dots belong to its stem.
        for (path, no_ext, stem) in [
            ("d/..double", "d/..double", "..double"),
            ("d/...", "d/...", "..."),
            ("d/....", "d/....", "...."),
            ("d/.hidden", "d/.hidden", ".hidden"),
            ("d/.a.b", "d/.a", ".a"),
            ("d/..a.b", "d/..a", "..a"),
            ("d/a.b.c", "d/a.b", "a.b"),
            ("d/a.", "d/a", "a"),
            ("..double", "..double", "..double"),
            ("...", "...", "..."),
            (".a.b", ".a", ".a"),
            ("a.b.c", "a.b", "a.b"),
            ("/r/..x", "/r/..x", "..x"),
            ("/.a.b", "/.a", ".a"),
        ] {
            let v = path_values(path);
            assert_eq!(v[1], no_ext, "{{.}} of {path}");
            assert_eq!(v[4], stem, "{{/.}} of {path}");
        }
    }

    #[test]
    fn no_ext_is_parent_slash_stem() {
        for path in [
            "d/..double",
            "d/...",
            "d/.hidden",
            "d/.a.b",
            "d/a.b.c",
            "d/e/f.tar.gz",
            "./x.y",
            "../..z",
            "d/a.",
        ] {
            let v = path_values(path);
            assert_eq!(v[1], format!("{}/{}", v[3], v[4]), "{path}: {v:?}");
        }
        // A bare name: {//} is `.`, and {.} is just {/.}.
        for path in ["..double", "...", ".a.b", "a.b.c", "plain"] {
            let v = path_values(path);
            assert_eq!(v[3], ".");
            assert_eq!(v[1], v[4], "{path}: {v:?}");
        }
    }

    #[test]
    fn no_name_value_is_a_dot_directory() {
        for path in [
            "d/..double",
            "d/...",
            "d/.x",
            "..y",
            "...",
            "d/a..",
            "d/.a.",
        ] {
            for (i, v) in path_values(path).iter().enumerate() {
                // {//} (index 3) names the parent directory by design.
                if i == 3 {
                    continue;
                }
                assert!(
                    v != "." && v != ".." && !v.ends_with("/.") && !v.ends_with("/.."),
                    "{path}: value {i} is {v:?}"
                );
            }
        }
    }

    #[test]
    fn placeholders_inside_words() {
        let t = parse(&["cp", "{}", "out/{/.}.csv", "--name={#}-{%}"]).unwrap();
        assert_eq!(
            expand(&t, "a/b.parquet"),
            ["cp", "a/b.parquet", "out/b.csv", "--name=7-2"]
        );
    }

    #[test]
    fn parent_of_bare_name_is_dot() {
        let t = parse(&["echo", "{//}"]).unwrap();
        assert_eq!(expand(&t, "f.txt"), ["echo", "."]);
    }

    #[test]
    fn implicit_trailing_path() {
        let t = parse(&["wc", "-l"]).unwrap();
        assert_eq!(expand(&t, "a b"), ["wc", "-l", "a b"]);
        let t = parse(&["echo", "{#}"]).unwrap();
        assert_eq!(expand(&t, "p"), ["echo", "7", "p"]);
        let t = parse(&["echo", "{/}"]).unwrap();
        assert_eq!(expand(&t, "d/p"), ["echo", "p"]);
    }

    #[test]
    fn literal_braces() {
        let t = parse(&["awk", "{print $1}", "{{}}", "{{x}}", "{ }", "{A}"]).unwrap();
        assert_eq!(
            expand(&t, "f"),
            ["awk", "{print $1}", "{}", "{{x}}", "{ }", "{A}", "f"]
        );
        // Doubled braces escape placeholders only; the command's own stay as written.
        let t = parse(&[
            "x",
            "{{rel..}}",
            "{{{/}}}",
            "{{.State.Status}}",
            "{\"a\":{\"b\":1}}",
            "{if(x){print}}",
            "{{}",
            "}}",
        ])
        .unwrap();
        assert_eq!(
            expand(&t, "d/f"),
            [
                "x",
                "{rel..}",
                "{f}",
                "{{.State.Status}}",
                "{\"a\":{\"b\":1}}",
                "{if(x){print}}",
                "{d/f",
                "}}"
            ]
        );
    }

    #[test]
    fn unknown_lowercase_placeholder_is_rejected() {
        let err = parse(&["cp", "{}", "{outt}"]).unwrap_err().to_string();
        assert!(err.contains("{outt}"), "{err}");
        assert!(parse(&["echo", "{thread}"])
            .unwrap_err()
            .to_string()
            .contains("{threads}"));
    }

    #[test]
    fn shell_mode_quotes_values() {
        let raw: Vec<OsString> = ["cat", "{}", "|", "wc", "-c"]
            .iter()
            .map(OsString::from)
            .collect();
        let t = Template::parse(&raw, true, false).unwrap();
        let argv = expand(&t, "it's $(x).txt");
        assert_eq!(argv[..2], ["sh", "-c"]);
        // Whatever quoting shlex picks, the shell must see the name as one unchanged word.
        let words = shlex::split(&argv[2]).unwrap();
        assert_eq!(words, ["cat", "it's $(x).txt", "|", "wc", "-c"]);
    }

    #[test]
    fn shell_mode_allows_parameter_expansion() {
        let raw = vec![OsString::from("x=1; echo ${x} {}")];
        let t = Template::parse(&raw, true, false).unwrap();
        assert_eq!(expand(&t, "f")[2], "x=1; echo ${x} f");
        let raw = vec![OsString::from("echo ${Rel} {Rel}")];
        let err = Template::parse(&raw, true, false).unwrap_err().to_string();
        assert!(
            err.contains("{Rel}") && err.contains("did you mean {rel}?"),
            "{err}"
        );
    }

    fn shell(script: &str) -> Result<Template> {
        Template::parse(&[OsString::from(script)], true, false)
    }

    #[test]
    fn shell_mode_refuses_placeholders_inside_quotes() {
        for (script, quotes) in [
            (r#"echo "{}""#, "double quotes"),
            (r#"echo "x {/.}.txt""#, "double quotes"),
            ("echo '{}'", "single quotes"),
            ("echo 'a'b'{}'", "single quotes"),
            ("echo $'{}'", "$'...' quotes"),
            (r#"echo "a\"{}""#, "double quotes"),
            (r#"echo "$(echo "{}")""#, "double quotes"),
            (r"echo \{}", "a backslash"),
            ("cat <<EOF\n{}\nEOF", "here-document"),
            ("cat <<-'EOF' # c\n\t{/}\n\tEOF", "here-document"),
            ("cat <<A <<B; echo {}\nA\n{}\nB\n", "here-document"),
        ] {
            let err = shell(script).unwrap_err().to_string();
            assert!(err.contains(quotes), "{script}: {err}");
            assert!(err.contains("without quotes"), "{script}: {err}");
        }
    }

    #[test]
    fn shell_mode_accepts_placeholders_outside_quotes() {
        for script in [
            r#"echo {} "literal""#,
            "awk '{print $1}' {}",
            r"echo 'it''s' {} \' {}",
            r#"echo "\"" {} 'a"b' {}"#,
            r#"echo "$(basename {})""#,
            r#"echo "`basename {}`""#,
            r"echo $'a\'b' {}",
            "echo {} # it's {} in a comment",
            "echo a#{}",
            r#"echo "{{}}" {}"#,
            r#"x=1; echo "${x}" {}"#,
            r"echo \\{}",
            "cat <<EOF {}\ntext\nEOF\necho {}",
            "cat <<-\"E F\"\n\tE F\necho {}",
            "echo a<b {}",
        ] {
            assert!(shell(script).is_ok(), "{script}: {:?}", shell(script).err());
        }
    }

    #[test]
    fn quoted_placeholders_are_fine_without_a_shell() {
        // Without -s, quotes are plain characters of one argv word: nothing to break.
        assert!(parse(&["echo", "\"{}\""]).is_ok());
    }

    #[test]
    fn shell_mode_appends_path() {
        let raw = vec![OsString::from("wc -c")];
        let t = Template::parse(&raw, true, false).unwrap();
        assert_eq!(expand(&t, "a b")[2], "wc -c 'a b'");
    }

    #[test]
    fn out_needs_in_place_and_in_place_needs_out() {
        let raw: Vec<OsString> = ["cp", "{}", "{out}"].iter().map(OsString::from).collect();
        assert!(Template::parse(&raw, false, false)
            .unwrap_err()
            .to_string()
            .contains("-i/--in-place"));
        let t = Template::parse(&raw, false, true).unwrap();
        assert_eq!(expand(&t, "a.csv"), ["cp", "a.csv", "o"]);
        let raw: Vec<OsString> = ["cp", "{}"].iter().map(OsString::from).collect();
        assert!(Template::parse(&raw, false, true)
            .unwrap_err()
            .to_string()
            .contains("{out}"));
        // {out} counts as a path placeholder: nothing is appended.
        let raw: Vec<OsString> = ["touch", "{out}"].iter().map(OsString::from).collect();
        assert_eq!(
            expand(&Template::parse(&raw, false, true).unwrap(), "a"),
            ["touch", "o"]
        );
    }

    #[test]
    fn program_is_known_only_when_literal() {
        assert_eq!(parse(&["ls", "{}"]).unwrap().program(), Some("ls".into()));
        assert_eq!(parse(&["{}"]).unwrap().program(), None);
    }

    #[test]
    fn display_round_trips_through_sh_words() {
        let argv: Vec<OsString> = ["echo", "a b", "", "it's", "$HOME", "-x"]
            .iter()
            .map(OsString::from)
            .collect();
        let line = String::from_utf8(display_argv(&argv)).unwrap();
        assert_eq!(
            shlex::split(&line).unwrap(),
            ["echo", "a b", "", "it's", "$HOME", "-x"]
        );
    }

    fn target(template: &str, path: &str, rel_at: Option<usize>) -> Result<String, String> {
        let t = TargetTemplate::parse(OsStr::new(template)).map_err(|e| e.to_string())?;
        t.expand(&JobValues {
            path: Path::new(path),
            job: 3,
            slot: 1,
            threads: 1,
            out: None,
            rel_at,
            mem_mib: 1,
            url: None,
        })
        .map(|p| p.into_os_string().into_string().unwrap())
    }

    #[test]
    fn rel_is_the_path_below_its_root() {
        let rel = |p: &str, at| String::from_utf8(rel_path(Path::new(p), at)).unwrap();
        assert_eq!(
            rel("raw/year=2024/month=01/part-0.csv", Some(4)),
            "year=2024/month=01/part-0.csv"
        );
        assert_eq!(rel("raw//a/./b.csv", Some(4)), "a/b.csv");
        // Named directly: the path when relative without `..`, else the base name.
        assert_eq!(rel("a/b.csv", None), "a/b.csv");
        assert_eq!(rel("./a/b.csv", None), "a/b.csv");
        assert_eq!(rel("/abs/a/b.csv", None), "b.csv");
        assert_eq!(rel("../up/b.csv", None), "b.csv");
        assert_eq!(rel("a/../b.csv", None), "b.csv");
        assert_eq!(rel("-x.csv", None), "./-x.csv");
        // A root given as `..` or absolute: only what lies below it counts.
        assert_eq!(rel("../raw/a.csv", Some(7)), "a.csv");
        assert_eq!(rel("/data/raw/y=1/a.csv", Some(10)), "y=1/a.csv");
    }

    #[test]
    fn rel_without_extension() {
        assert_eq!(
            target("clean/{rel.}.parquet", "raw/y=1/part-0.csv", Some(4)).unwrap(),
            "clean/y=1/part-0.parquet"
        );
        assert_eq!(
            target("c/{rel.}.p", "raw/y=1.d/.hidden", Some(4)).unwrap(),
            "c/y=1.d/.hidden.p"
        );
        assert_eq!(target("c/{rel.}.p", "-x.csv", None).unwrap(), "c/./-x.p");
    }

    #[test]
    fn targets_never_leave_a_relative_template() {
        for (path, rel_at) in [
            ("../../etc/passwd", None),
            ("/etc/passwd", None),
            ("a/../../b", None),
            ("raw/../../x.csv", Some(4)),
        ] {
            let t = target("clean/{rel}", path, rel_at).unwrap();
            assert!(t.starts_with("clean/"), "{t}");
            assert!(
                !Path::new(&t)
                    .components()
                    .any(|c| c == std::path::Component::ParentDir),
                "{t}"
            );
        }
        let err = target("clean/{}.parquet", "../x.csv", None).unwrap_err();
        assert!(err.contains("`..`"), "{err}");
        let err = target("clean/{//}/{/}", "../x.csv", None).unwrap_err();
        assert!(err.contains("{//}"), "{err}");
        // A template that begins with the input's own path puts the target beside it.
        assert_eq!(
            target("{.}.parquet", "../x.csv", None).unwrap(),
            "../x.parquet"
        );
        assert_eq!(target("/abs/{/.}.p", "/d/x.csv", None).unwrap(), "/abs/x.p");
    }

    #[test]
    fn target_templates_are_checked_when_parsed() {
        for (bad, says) in [
            ("", "needs a template"),
            ("o/{out}", "{out}"),
            ("o/{%}.p", "{%}"),
            ("o/{mem}.p", "{mem}"),
            ("o/{rel}/", "names a directory"),
            ("o/{rel..}", "did you mean {rel.}?"),
        ] {
            let err = target(bad, "a.csv", None).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
        assert!(target("o/{//}/..", "a/b.csv", None).is_err());
    }
}
