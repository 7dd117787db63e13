//! The option table of docs/reference.md against `fanout --help`: every option the help lists has
//! a row with the same short letter and value name, and every option in the table exists, so the
//! two cannot drift apart.
//!
//! Only names are compared (long name, short letter, value name), not descriptions: the table is
//! a summary and words things its own way. Options clap hides do not appear in `--help`, so they
//! need no row (and a row for one is reported, since a reader could not find it in the help).
//! Positional arguments (`PATH...`) are not options and are left out on both sides.

use std::collections::BTreeMap;
use std::fmt;

use crate::harness::*;

/// One option as a reader sees it: `-e, --ext EXT`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Opt {
    short: Option<char>,
    long: Option<String>,
    /// The value name, without clap's `<>`/`[]`/`...` decoration; `None` for a flag.
    value: Option<String>,
}

impl Opt {
    /// The name both sides are matched by: the long name, or the short letter when there is none.
    fn key(&self) -> String {
        match (&self.long, self.short) {
            (Some(long), _) => format!("--{long}"),
            (None, Some(short)) => format!("-{short}"),
            (None, None) => unreachable!("an option has a short or a long name"),
        }
    }
}

impl fmt::Display for Opt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names = Vec::new();
        if let Some(short) = self.short {
            names.push(format!("-{short}"));
        }
        if let Some(long) = &self.long {
            names.push(format!("--{long}"));
        }
        write!(f, "{}", names.join(", "))?;
        if let Some(value) = &self.value {
            write!(f, " {value}")?;
        }
        Ok(())
    }
}

/// `<EXT>`, `[<EXT>]`, `<EXT>...` and `EXT` all name the value `EXT`.
fn value_name(raw: &str) -> Option<String> {
    let v = raw
        .trim()
        .trim_end_matches("...")
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    (!v.is_empty()).then(|| v.to_string())
}

/// Parses an option spec as either side writes it: `-e, --ext <EXT>`, `--ext=EXT`, `-q`,
/// `--progress`. `None` when it does not start with an option name.
fn parse_spec(spec: &str) -> Option<Opt> {
    let mut opt = Opt {
        short: None,
        long: None,
        value: None,
    };
    let mut rest = spec.trim();
    if let Some(tail) = rest.strip_prefix('-').filter(|t| !t.starts_with('-')) {
        let mut chars = tail.chars();
        opt.short = Some(chars.next()?);
        rest = chars.as_str().trim_start_matches(',').trim_start();
    }
    if let Some(tail) = rest.strip_prefix("--") {
        let end = tail.find([' ', '=']).unwrap_or(tail.len());
        opt.long = Some(tail[..end].to_string());
        rest = tail[end..].trim_start_matches('=');
    }
    if opt.short.is_none() && opt.long.is_none() {
        return None;
    }
    opt.value = value_name(rest);
    Some(opt)
}

/// The options of `fanout --help`: the header lines of its `Options:` section. A header starts
/// at most 6 columns in (`  -e, --ext <EXT>`, `      --timeout <DURATION>`); descriptions are
/// indented further, and in the short form follow the header after a gap of two spaces.
fn help_options(help: &str) -> Vec<Opt> {
    help.lines()
        .skip_while(|l| l.trim_end() != "Options:")
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with(' '))
        .filter(|l| {
            let indent = l.len() - l.trim_start().len();
            indent <= 6 && l.trim_start().starts_with('-')
        })
        .map(|l| {
            let header = l.trim_start();
            let header = header.split("  ").next().unwrap_or(header);
            parse_spec(header).unwrap_or_else(|| panic!("cannot read help line {l:?}"))
        })
        .collect()
}

/// The options in the table under `## Command line` of the reference: each code span of a row's first cell that
/// starts with `-` (`` `--progress` / `--no-progress` `` is two options). `\|` inside a cell is
/// a literal `|` (`SIZE\|PCT`).
fn readme_options(readme: &str) -> Vec<Opt> {
    let section: Vec<&str> = readme
        .lines()
        .skip_while(|l| l.trim_end() != "## Command line")
        .skip(1)
        .take_while(|l| !l.starts_with("## "))
        .collect();
    assert!(
        !section.is_empty(),
        "docs/reference.md has no \"## Command line\" section"
    );
    let mut opts = Vec::new();
    for row in section.iter().filter(|l| l.starts_with('|')) {
        let row = row.replace("\\|", "\u{0}");
        let first = row.split('|').nth(1).unwrap_or("").replace('\u{0}', "|");
        let spans: Vec<&str> = first.split('`').skip(1).step_by(2).collect();
        let specs = if spans.is_empty() {
            vec![first.trim()]
        } else {
            spans
        };
        for spec in specs {
            // The header row, the `|---|` rule and positional arguments are not options.
            if spec.starts_with('-') && !spec.chars().all(|c| c == '-' || c == ':') {
                let opt = parse_spec(spec)
                    .unwrap_or_else(|| panic!("cannot read reference table cell {spec:?}"));
                opts.push(opt);
            }
        }
    }
    opts
}

/// Every way the table and the help disagree, one line each, naming the option and the side.
fn drift(help: &[Opt], readme: &[Opt]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut table: BTreeMap<String, &Opt> = BTreeMap::new();
    for opt in readme {
        if table.insert(opt.key(), opt).is_some() {
            problems.push(format!(
                "the reference's option table has more than one row for `{}`",
                opt.key()
            ));
        }
    }
    for want in help {
        let Some(have) = table.remove(&want.key()) else {
            problems.push(format!(
                "`fanout --help` lists `{want}`, but the reference's option table has no row for it"
            ));
            continue;
        };
        let show_short =
            |s: Option<char>| s.map_or("no short letter".into(), |c| format!("`-{c}`"));
        if want.short != have.short {
            problems.push(format!(
                "`{}`: `fanout --help` gives {}, the reference's option table gives {}",
                want.key(),
                show_short(want.short),
                show_short(have.short)
            ));
        }
        let show_value = |v: &Option<String>| {
            v.as_ref()
                .map_or("no value".into(), |v| format!("value `{v}`"))
        };
        if want.value != have.value {
            problems.push(format!(
                "`{}`: `fanout --help` gives {}, the reference's option table gives {}",
                want.key(),
                show_value(&want.value),
                show_value(&have.value)
            ));
        }
    }
    for extra in table.values() {
        problems.push(format!(
            "the reference's option table lists `{extra}`, which `fanout --help` does not have"
        ));
    }
    problems
}

#[test]
fn readme_option_table_matches_help() {
    let out = TestEnv::new(&[], &[]).run(&["--help"]);
    out.assert_ok();
    let help = help_options(&out.stdout_str());
    assert!(
        help.iter().any(|o| o.long.as_deref() == Some("help")),
        "found no `--help` among the options of `fanout --help`: cannot read its format\n{}",
        out.dump()
    );
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/reference.md");
    let text = std::fs::read_to_string(path).expect("read docs/reference.md");
    let readme = readme_options(&text);

    let problems = drift(&help, &readme);
    assert!(
        problems.is_empty(),
        "the option table of docs/reference.md (under \"## Command line\") and `fanout --help` \
         disagree; fix the table or the help in src/cli.rs:\n  - {}",
        problems.join("\n  - ")
    );
}

/// The comparison itself: each kind of drift is reported, naming the option and the side.
#[test]
fn drift_names_the_option_and_the_side() {
    let help = help_options(
        "Usage: fanout [OPTIONS]\n\nOptions:\n  -e, --ext <EXT>\n          Only this extension\n\n      \
         --mem-limit <SIZE|PCT>\n          Budget\n\n  -q, --quiet  Quiet\n      --summary <FILE>\n\
         \nEXAMPLES:\n  -x, --not-an-option\n",
    );
    assert_eq!(
        help.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [
            "-e, --ext EXT",
            "--mem-limit SIZE|PCT",
            "-q, --quiet",
            "--summary FILE"
        ]
    );

    let table = "# x\n## Command line\n| option | meaning |\n|---|---|\n| `PATH...` | paths |\n\
                 | `-e, --ext EXT` | ext |\n| `--mem-limit SIZE\\|PCT` | budget |\n\
                 | `-q, --quiet` / `--summary FILE` | both |\n## Next\n| `--later` | x |\n";
    assert!(drift(&help, &readme_options(table)).is_empty());

    let drifted = "## Command line\n| `-x, --ext EXT` | \
                   |\n| `--mem-limit SIZE` | |\n| `-q, --quiet` | |\n| `--fake N` | |\n";
    assert_eq!(
        drift(&help, &readme_options(drifted)),
        [
            "`--ext`: `fanout --help` gives `-e`, the reference's option table gives `-x`",
            "`--mem-limit`: `fanout --help` gives value `SIZE|PCT`, the reference's option table gives \
             value `SIZE`",
            "`fanout --help` lists `--summary FILE`, but the reference's option table has no row for it",
            "the reference's option table lists `--fake N`, which `fanout --help` does not have",
        ]
    );
}
