//! README.md and docs/*.md stay true: every fanout option they name exists, and every relative
//! link and image resolves (a `#section` included).
//!
//! Which options are fanout's: in code blocks and code spans, a command whose program is
//! `fanout` (its words before `--`; after `--` is the job's command), with `fanout report`'s
//! own options after `report`. A span that is only an option (`` `--keep-order` ``) names
//! fanout's, but for the few options of other tools the docs discuss (sbatch's in
//! docs/cluster.md, GNU parallel's `--memsuspend`), listed in `FOREIGN`, and a template word
//! with a placeholder (`--name={#}`, the job's own). Commands of other programs (`jq -r`,
//! `xargs -P`, `fd -x`, `hyperfine`, `sbatch`) are theirs and not checked.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::harness::*;

/// Other tools' options that the docs name on their own, with the tool.
const FOREIGN: &[(&str, &str)] = &[
    ("--mem", "sbatch"),
    ("--mem-per-cpu", "sbatch"),
    ("--mem-per-gpu", "sbatch"),
    ("--mem-bind", "sbatch"),
    ("--array", "sbatch"),
    ("--requeue", "sbatch"),
    ("--no-requeue", "sbatch"),
    ("--cpus-per-task", "sbatch"),
    ("--time", "sbatch"),
    ("--partition", "sbatch"),
    ("--exact", "srun"),
    ("--memsuspend", "GNU parallel"),
    ("--no-default-features", "cargo"),
];

/// The hidden `fanout worker` entry that sbatch starts (docs/cluster.md shows its line).
const WORKER: &[&str] = &["--plan", "--shard"];

/// The documents a reader gets: README.md and docs/*.md.
fn documents() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut docs = vec![root.join("README.md")];
    let mut more: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    more.sort();
    docs.extend(more);
    docs
}

/// The option names of a help text: `-e`, `--ext`, ... from its option lines.
fn help_options(help: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in help.lines() {
        let line = line.trim_start();
        if !line.starts_with('-') {
            continue;
        }
        for word in line.split([',', ' ']).take(3) {
            let name = word.split(['=', '<', '[']).next().unwrap_or("");
            if name.len() > 1 && name.starts_with('-') {
                names.insert(name.to_string());
            }
        }
    }
    names
}

/// The code of a Markdown text: each line of a fenced block (continuation lines joined) and
/// each code span outside blocks. Also returns the text with code removed, for links.
fn code_and_prose(text: &str) -> (Vec<String>, String) {
    let mut code = Vec::new();
    let mut prose = String::new();
    let mut in_block = false;
    let mut pending = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block {
            let joined = format!("{pending}{line}");
            match joined.strip_suffix('\\') {
                Some(head) => pending = format!("{head} "),
                None => {
                    code.push(joined);
                    pending.clear();
                }
            }
            continue;
        }
        let mut parts = line.split('`');
        prose.push_str(parts.next().unwrap_or(""));
        while let (Some(span), rest) = (parts.next(), parts.next()) {
            code.push(span.to_string());
            prose.push_str(rest.unwrap_or(""));
        }
        prose.push('\n');
    }
    (code, prose)
}

/// The options a piece of code names as fanout's, each with a reason it is fanout's.
fn fanout_options(code: &str) -> Vec<(String, bool)> {
    let mut found = Vec::new();
    let words: Vec<&str> = code.split_whitespace().collect();
    // An option on its own, not a command.
    if words.first().is_some_and(|w| w.starts_with("--")) && !code.contains('{') {
        let name = words[0].split('=').next().unwrap().to_string();
        if name.len() > 2 && !FOREIGN.iter().any(|(f, _)| *f == name) {
            found.push((name, false));
        }
        return found;
    }
    for segment in code.split(['|', ';', '&', '(', ')']) {
        let mut words = segment
            .split_whitespace()
            .skip_while(|w| *w == "$" || w.contains('=') && !w.starts_with('-'));
        let Some(program) = words.next() else {
            continue;
        };
        if program != "fanout" && !program.ends_with("/fanout") {
            continue;
        }
        let words: Vec<&str> = words.take_while(|w| *w != "--").collect();
        let report = words.first() == Some(&"report");
        for word in words {
            if word.starts_with("--") && word.len() > 2 {
                let name = word.split('=').next().unwrap().to_string();
                found.push((name, report));
            } else if word.len() > 1
                && word.starts_with('-')
                && word[1..].chars().all(|c| c.is_ascii_alphanumeric())
            {
                for c in word[1..].chars() {
                    found.push((format!("-{c}"), report));
                }
            }
        }
    }
    found
}

#[test]
fn every_fanout_option_the_docs_name_exists() {
    let env = TestEnv::new(&[], &[]);
    let run = help_options(&env.run(&["--help"]).stdout_str());
    let report = help_options(&env.run(&["report", "--help"]).stdout_str());
    assert!(run.contains("--keep-order") && report.contains("--output"));
    let mut problems = Vec::new();
    let mut checked = 0;
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        let (code, _) = code_and_prose(&text);
        for piece in &code {
            for (name, of_report) in fanout_options(piece) {
                checked += 1;
                let known = if of_report { &report } else { &run };
                if !known.contains(&name) && !WORKER.contains(&name.as_str()) {
                    problems.push(format!(
                        "{}: `{name}` is no option of `fanout{}` (in `{piece}`)",
                        doc.display(),
                        if of_report { " report" } else { "" }
                    ));
                }
            }
        }
    }
    assert!(
        checked > 100,
        "only {checked} options found: the rule reads nothing"
    );
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn the_option_rule_reads_commands_as_a_reader_does() {
    let names =
        |code: &str| -> Vec<String> { fanout_options(code).into_iter().map(|(n, _)| n).collect() };
    assert_eq!(names("--slurm"), ["--slurm"]);
    assert_eq!(names("--memsuspend"), Vec::<String>::new());
    assert_eq!(names("--"), Vec::<String>::new());
    assert_eq!(names("--name={#}"), Vec::<String>::new());
    assert_eq!(
        names("fanout -kn -e csv data/ --summary r.jsonl -- jq -r --arg x . {}"),
        ["-k", "-n", "-e", "--summary"]
    );
    assert_eq!(names("git ls-files -z | fanout -0 - -- jq -e . {}"), ["-0"]);
    assert_eq!(
        names("jq -r 'select(.status)' run.jsonl"),
        Vec::<String>::new()
    );
    assert_eq!(names("$ ./target/release/fanout --tag d -- cat"), ["--tag"]);
    assert_eq!(
        fanout_options("fanout report run.jsonl --output x"),
        [("--output".to_string(), true)]
    );
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    let mut in_block = false;
    let mut out = BTreeSet::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
        } else if !in_block && line.starts_with('#') {
            out.insert(slug(line.trim_start_matches('#')));
        }
    }
    out
}

#[test]
fn every_relative_link_and_image_in_the_docs_resolves() {
    assert_eq!(
        slug("Coming from xargs, GNU parallel or fd -x"),
        "coming-from-xargs-gnu-parallel-or-fd--x"
    );
    let mut problems = Vec::new();
    let mut checked = 0;
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        let (_, prose) = code_and_prose(&text);
        // `[text](target)` and `![alt](target)`; the target ends at `)` or white space.
        for (i, _) in prose.match_indices("](") {
            let target: String = prose[i + 2..]
                .chars()
                .take_while(|c| *c != ')' && !c.is_whitespace())
                .collect();
            if target.contains("://") || target.starts_with("mailto:") || target.is_empty() {
                continue;
            }
            checked += 1;
            let (file, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let path = if file.is_empty() {
                doc.clone()
            } else {
                doc.parent().unwrap().join(file)
            };
            if !path.exists() {
                problems.push(format!("{}: {target} does not resolve", doc.display()));
                continue;
            }
            if !anchor.is_empty() && path.extension().is_some_and(|e| e == "md") {
                let there = std::fs::read_to_string(&path).unwrap();
                if !anchors(&there).contains(anchor) {
                    problems.push(format!(
                        "{}: {target}: no heading #{anchor} in {}",
                        doc.display(),
                        path.display()
                    ));
                }
            }
        }
    }
    assert!(checked > 20, "only {checked} links found");
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}
