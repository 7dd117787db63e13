//! Near misses of a placeholder. A brace group that is almost a placeholder (`{rel..}`,
//! `{Out}`, `{thread}`, `{/..}`) is a typo that would make every job fail, so the template is
//! refused with a suggestion; any other brace text (awk and perl blocks, jq and JSON objects,
//! `${var}`, `{a,b}`, `{1..10}`) is the command's own and stays literal.
//!
//! A group is a near miss when it is not a placeholder and either
//! - is made only of the placeholder characters `. / # %` (`{..}`, `{/..}`, `{./}`), or
//! - is the letters of a placeholder name with placeholder characters around them
//!   (`{rel/}`, `{out.}`, `{/rel}`), its letters one slip from `out`, `mem`, `rel` or
//!   `threads` (a letter missing, one too many, two swapped; in `threads` also one changed),
//!   case ignored (`{Rel}`, `{outt}`, `{mme}`, `{thread}`, `{threds}`).

use std::ops::Range;

use super::placeholder::PLACEHOLDERS;

/// A `{{` that escapes a placeholder. Doubled braces are an escape only there, so that the
/// command's own doubled braces (Go templates' `{{.State.Status}}`, nested JSON's `}}`, awk's
/// `{if (x) {print}}`) pass as written.
pub(super) enum Doubled {
    /// `{{X}}` where `{X}` is a placeholder or a near miss: the literal text `{X}` (`text`);
    /// parsing goes on at `next`.
    Literal { text: Range<usize>, next: usize },
    /// `{{{X}}}` where `{X}` is a placeholder: a literal `{`, the placeholder, and a literal
    /// `}` for the `}}` at `close`.
    Around { close: usize },
}

/// What the `{{` at `at` in `bytes` is, when it escapes a placeholder.
pub(super) fn doubled(bytes: &[u8], at: usize) -> Option<Doubled> {
    let group = |from: usize| -> Option<(&[u8], usize)> {
        let len = bytes.get(from..)?.iter().position(|&c| c == b'}')?;
        let name = &bytes[from..from + len];
        (!name.contains(&b'{')).then_some((name, from + len))
    };
    let is_placeholder = |name: &[u8]| PLACEHOLDERS.iter().any(|(n, _)| n.as_bytes() == name);
    if bytes.get(at + 2) == Some(&b'{') {
        let (name, end) = group(at + 3)?;
        return (is_placeholder(name) && bytes.get(end + 1..end + 3) == Some(b"}}"))
            .then_some(Doubled::Around { close: end + 1 });
    }
    let (name, end) = group(at + 2)?;
    (bytes.get(end + 1) == Some(&b'}') && (is_placeholder(name) || near_miss(name).is_some()))
        .then_some(Doubled::Literal {
            text: at + 1..end + 1,
            next: end + 2,
        })
}

/// The placeholder characters.
const SYMBOLS: &[u8] = b"./#%";

/// The placeholder (as written, `{rel.}`) that `name`, the text of a brace group that is not
/// a placeholder, is a near miss of; `None` when the group is not one.
pub(super) fn near_miss(name: &[u8]) -> Option<String> {
    let name = std::str::from_utf8(name).ok()?;
    let lead = name.bytes().take_while(|b| SYMBOLS.contains(b)).count();
    let letters = name[lead..]
        .bytes()
        .take_while(u8::is_ascii_alphabetic)
        .count();
    let trail = &name[lead + letters..];
    if name.is_empty() || !trail.bytes().all(|b| SYMBOLS.contains(&b)) {
        return None;
    }
    let symbols = format!("{}{trail}", &name[..lead]);
    let letters = name[lead..lead + letters].to_ascii_lowercase();
    let meant = if letters.is_empty() {
        closest(
            &symbols,
            PLACEHOLDERS
                .iter()
                .map(|(n, _)| *n)
                .filter(|n| n.bytes().all(|b| SYMBOLS.contains(&b))),
        )?
    } else {
        let named = PLACEHOLDERS
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| n.bytes().all(|b| b.is_ascii_alphabetic()) && !n.is_empty());
        let meant = closest(&letters, named)?;
        // One slip: a letter missing, one too many, two swapped. A changed letter counts
        // only in `threads`: in three letters it makes other words (`{res}`, `{ref}`, `{opt}`
        // of a Python format string).
        let changed = letters.len() == meant.len() && strsim::hamming(&letters, meant) == Ok(1);
        if strsim::osa_distance(&letters, meant) > 1 || changed && meant.len() <= 4 {
            return None;
        }
        // `{rel..}`, `{Rel.}`: the placeholder with a dot is `{rel.}`.
        if meant == "rel" && symbols.contains('.') {
            "rel."
        } else {
            meant
        }
    };
    Some(format!("{{{meant}}}"))
}

/// The candidate nearest to `typed`: fewest edits, then the same characters in another order
/// (`./` is `/.` swapped), then one that `typed` holds all the characters of (`..` is `.` with
/// one too many), then the closest in length, then the first listed.
fn closest<'a>(typed: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let sorted = |s: &str| {
        let mut b = s.as_bytes().to_vec();
        b.sort_unstable();
        b
    };
    candidates.min_by_key(|c| {
        (
            strsim::osa_distance(typed, c),
            sorted(typed) != sorted(c),
            !c.bytes().all(|b| typed.as_bytes().contains(&b)),
            typed.len().abs_diff(c.len()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::near_miss;

    fn meant(group: &str) -> Option<String> {
        near_miss(group.as_bytes())
    }

    #[test]
    fn near_misses_name_the_placeholder_meant() {
        for (typed, want) in [
            ("rel..", "{rel.}"),
            ("out.", "{out}"),
            ("rel/", "{rel}"),
            ("..", "{.}"),
            ("/..", "{/.}"),
            ("Rel", "{rel}"),
            ("REL.", "{rel.}"),
            ("outt", "{out}"),
            ("ot", "{out}"),
            ("uot", "{out}"),
            ("OUT", "{out}"),
            ("mme", "{mem}"),
            ("Mem", "{mem}"),
            ("thread", "{threads}"),
            ("treads", "{threads}"),
            ("threds", "{threads}"),
            ("thraeds", "{threads}"),
            ("threaks", "{threads}"),
            ("Threads", "{threads}"),
            ("./", "{/.}"),
            ("///", "{//}"),
            ("##", "{#}"),
            ("%%", "{%}"),
            ("/rel", "{rel}"),
            (".rel.", "{rel.}"),
            ("rell", "{rel}"),
        ] {
            assert_eq!(meant(typed).as_deref(), Some(want), "{{{typed}}}");
        }
    }

    #[test]
    fn other_brace_text_is_no_near_miss() {
        for text in [
            "print", "print $1", "next", "exit", "NR", "a,b", "1..10", "a..z", "x", "A", " ", "",
            "name", "id", "print NR", "\"a\": 1", "bogus", "nme", "res", "ref", "req", "ret",
            "opt", "put", "met", "reads", "1", "1.", "x.", ".foo", "$h",
        ] {
            assert_eq!(meant(text), None, "{{{text}}}");
        }
    }
}
