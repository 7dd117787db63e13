//! The `-s` script as `sh` reads its quoting: whether a substituted value, which fanout quotes
//! as one word, would stand as its own unquoted word where a placeholder appears. A placeholder
//! inside quotes or a here-document would not (`"{}"` with a file named `$(touch PWNED)` would
//! run it), so such a template is refused when it is parsed.

/// Why a shell-quoted value would not arrive as one unchanged word at some point of a script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Conflict {
    Single,
    Double,
    Ansi,
    Backslash,
    Dollar,
    HereDocument,
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Conflict::Single => "is inside single quotes",
            Conflict::Double => "is inside double quotes",
            Conflict::Ansi => "is inside $'...' quotes",
            Conflict::Backslash => "follows a backslash",
            Conflict::Dollar => {
                "follows a `$` (it would read as $'...', which expands backslashes)"
            }
            Conflict::HereDocument => {
                "is inside a here-document (whose text sh expands but does not unquote)"
            }
        })
    }
}

/// A nesting level of a shell script: quotes, or an unquoted command inside them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Nest {
    /// `'...'`: nothing is special but the closing quote.
    Single,
    /// `"..."`: `\`, `$(` and backquotes are special.
    Double,
    /// `$'...'`: backslash escapes.
    Ansi,
    /// `$(...)`, with its open parentheses: a command again, quotes start afresh.
    Subst(u32),
    /// `` `...` ``: a command again.
    Backquote,
}

/// Follows a `-s` script byte by byte as `sh` reads its quoting (backslash escapes, `'...'`,
/// `"..."`, `$'...'`, `$(...)`, backquotes, comments), to tell whether a substituted value,
/// which fanout single-quotes, would stand as its own unquoted word. `"{}"` would not: the
/// value's quotes would become literal text and `$(...)` in a file name would run.
#[derive(Debug, Default)]
pub(super) struct ShellQuotes {
    nest: Vec<Nest>,
    /// The previous byte was an unquoted (or double-quoted) backslash.
    escaped: bool,
    /// The previous byte was an unescaped `$`.
    dollar: bool,
    /// Inside a `# comment`, up to the end of the line.
    comment: bool,
    /// The previous byte continues a word (so `#` does not start a comment).
    word: bool,
    /// The previous byte was an unquoted `<`.
    lt: bool,
    /// The word after `<<` being read: the here-document's delimiter, with `<<-` (tabs
    /// stripped) and the nesting depth it started at.
    delimiter: Option<(Vec<u8>, bool, usize)>,
    /// Here-documents whose bodies start at the next line, in order.
    pending: Vec<(Vec<u8>, bool)>,
    /// Inside a here-document's body: its delimiter, `<<-`, and the line read so far.
    body: Option<(Vec<u8>, bool, Vec<u8>)>,
}

impl ShellQuotes {
    pub(super) fn feed(&mut self, b: u8) {
        if self.body.is_some() {
            self.feed_body(b);
            return;
        }
        if self.comment {
            self.comment = b != b'\n';
            self.word = false;
            if b == b'\n' {
                self.next_body();
            }
            return;
        }
        self.read_delimiter(b);
        let dollar = std::mem::take(&mut self.dollar);
        let lt = std::mem::take(&mut self.lt);
        if std::mem::take(&mut self.escaped) {
            self.word = true;
            return;
        }
        match self.nest.last_mut() {
            Some(Nest::Single) => {
                if b == b'\'' {
                    self.nest.pop();
                }
            }
            Some(Nest::Ansi) => match b {
                b'\\' => self.escaped = true,
                b'\'' => {
                    self.nest.pop();
                }
                _ => {}
            },
            Some(Nest::Double) => match b {
                b'\\' => self.escaped = true,
                b'"' => {
                    self.nest.pop();
                }
                b'`' => self.nest.push(Nest::Backquote),
                b'(' if dollar => self.nest.push(Nest::Subst(0)),
                b'$' => self.dollar = true,
                _ => {}
            },
            top @ (None | Some(Nest::Subst(_) | Nest::Backquote)) => match (b, top) {
                (b'\\', _) => self.escaped = true,
                (b'\'', _) if dollar => self.nest.push(Nest::Ansi),
                (b'\'', _) => self.nest.push(Nest::Single),
                (b'"', _) => self.nest.push(Nest::Double),
                (b'`', Some(Nest::Backquote)) => {
                    self.nest.pop();
                }
                (b'`', _) => self.nest.push(Nest::Backquote),
                (b'(', _) if dollar => self.nest.push(Nest::Subst(0)),
                (b'(', Some(Nest::Subst(depth))) => *depth += 1,
                (b')', Some(Nest::Subst(0))) => {
                    self.nest.pop();
                }
                (b')', Some(Nest::Subst(depth))) => *depth -= 1,
                (b'#', _) if !self.word => self.comment = true,
                (b'$', _) => self.dollar = true,
                (b'<', _) if lt => self.delimiter = Some((Vec::new(), false, self.nest.len())),
                (b'<', _) => self.lt = true,
                (b'\n', None) => self.next_body(),
                _ => {}
            },
        }
        self.word = !matches!(
            b,
            b' ' | b'\t' | b'\n' | b';' | b'&' | b'|' | b'(' | b')' | b'<' | b'>'
        );
    }

    /// Inside a here-document's body: reads its lines up to the one that is its delimiter.
    fn feed_body(&mut self, b: u8) {
        let Some((delimiter, dash, line)) = &mut self.body else {
            return;
        };
        if b != b'\n' {
            line.push(b);
            return;
        }
        let tabs = if *dash {
            line.iter().take_while(|&&c| c == b'\t').count()
        } else {
            0
        };
        if line[tabs..] == delimiter[..] {
            self.body = None;
            self.next_body();
        } else {
            line.clear();
        }
    }

    /// Reads the delimiter word after `<<` (`<<-`), alongside the usual quoting: `'EOF'`,
    /// `"EOF"` and `\EOF` all mean `EOF`.
    fn read_delimiter(&mut self, b: u8) {
        let Some((word, dash, depth)) = &mut self.delimiter else {
            return;
        };
        let ends = matches!(
            b,
            b' ' | b'\t' | b'\n' | b';' | b'&' | b'|' | b'(' | b')' | b'<' | b'>'
        );
        if word.is_empty() && (b == b' ' || b == b'\t' || (b == b'-' && !*dash)) {
            *dash |= b == b'-';
        } else if ends && self.nest.len() == *depth {
            let (word, dash) = (std::mem::take(word), *dash);
            self.delimiter = None;
            if !word.is_empty() {
                self.pending.push((word, dash));
            }
        } else if !matches!(b, b'\'' | b'"' | b'\\') || self.escaped {
            word.push(b);
        }
    }

    /// At the end of a command line: the next here-document's body begins, if any.
    fn next_body(&mut self) {
        if !self.pending.is_empty() {
            let (delimiter, dash) = self.pending.remove(0);
            self.body = Some((delimiter, dash, Vec::new()));
        }
    }

    /// Whether a quoted value may stand here; then takes it as part of a word.
    pub(super) fn value_here(&mut self) -> Option<Conflict> {
        if let Some((_, _, line)) = &mut self.body {
            // Not a delimiter line, whatever the value.
            line.push(0);
            return Some(Conflict::HereDocument);
        }
        if let Some((word, _, _)) = &mut self.delimiter {
            word.push(0);
        }
        let conflict = if self.comment {
            None
        } else if self.escaped {
            Some(Conflict::Backslash)
        } else if self.dollar {
            Some(Conflict::Dollar)
        } else {
            match self.nest.last() {
                Some(Nest::Single) => Some(Conflict::Single),
                Some(Nest::Double) => Some(Conflict::Double),
                Some(Nest::Ansi) => Some(Conflict::Ansi),
                _ => None,
            }
        };
        self.word = true;
        conflict
    }
}
