//! The layer map of docs/development.md holds: every module imports only modules listed above
//! it there, every module under src/ is listed, and no file inside a folder imports its folder's
//! mod.rs (mod.rs declares and re-exports; the folder's files import each other). The order is
//! read from docs/development.md itself, so the map and the code cannot drift apart.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

/// Folders whose files still import their mod.rs, each with why. Empty this as they are fixed.
const FOLDER_LOOPS_ALLOWED: &[(&str, &str)] = &[
    (
        "exec",
        "the job loop (exec/mod.rs, batched.rs) is being rewritten as one loop",
    ),
    (
        "os",
        "linux.rs and macos.rs implement the types os/mod.rs declares for both platforms",
    ),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The modules in the order docs/development.md lists them (`error.rs` → `error`, `exec/` →
/// `exec`).
fn layer_order(doc: &str) -> Vec<String> {
    let at = doc
        .find("each module imports only modules listed above it")
        .expect("docs/development.md states the layer rule");
    let rest = &doc[at..];
    let start = rest.find("```").expect("the layer map's code block") + 3;
    let block = &rest[start..];
    let block = &block[..block.find("```").expect("the code block ends")];
    let mut order = Vec::new();
    for line in block.lines() {
        // A module starts in the column after the layer's name; other lines continue one.
        let Some(word) = line.get(12..).filter(|w| !w.starts_with(' ')) else {
            continue;
        };
        let word = word.split_whitespace().next().unwrap_or("");
        if let Some(m) = word.strip_suffix(".rs").or_else(|| word.strip_suffix('/')) {
            order.push(m.to_string());
        }
    }
    order
}

/// The code of a file without comments and without its inline test module.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests {") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .map(|l| match l.find(" // ") {
            Some(at) => &l[..at],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first path segment of each item `prefix` reaches: `crate::a::b` and `crate::{a, b::c}`
/// give `a` (and `b`).
fn reached(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (at, _) in code.match_indices(prefix) {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let rest = &code[at + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.insert(first_segment(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 {
                    item.push(c);
                }
            }
            out.insert(first_segment(&item));
        } else {
            out.insert(first_segment(rest));
        }
    }
    out.remove("");
    out
}

fn first_segment(s: &str) -> String {
    s.trim()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// Every `.rs` file under `dir`, but the files of test modules (`tests.rs`).
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs")
            && path.file_name().is_some_and(|n| n != "tests.rs")
        {
            out.push(path);
        }
    }
}

/// What breaks the map in the tree at `src`, one line each.
fn breaches(src: &Path, order: &[String]) -> Vec<String> {
    let place: HashMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, m)| (m.as_str(), i))
        .collect();
    let mut files = Vec::new();
    sources(src, &mut files);
    let mut found = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(src).unwrap();
        let parts: Vec<String> = rel
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let module = parts[0].trim_end_matches(".rs").to_string();
        if module == "main" {
            continue;
        }
        let Some(&mine) = place.get(module.as_str()) else {
            found.push(format!(
                "{}: module {module} is not in docs/development.md",
                rel.display()
            ));
            continue;
        };
        let text = code(&fs::read_to_string(file).unwrap());
        for other in reached(&text, "crate::") {
            match place.get(other.as_str()) {
                None => found.push(format!(
                    "{}: crate::{other} is not in docs/development.md",
                    rel.display()
                )),
                Some(&theirs) if theirs >= mine && other != module => found.push(format!(
                    "{}: {module} imports {other}, which is listed below it",
                    rel.display()
                )),
                _ => {}
            }
        }
        let in_folder = parts.len() > 1 && parts.last().is_some_and(|f| f != "mod.rs");
        let allowed = FOLDER_LOOPS_ALLOWED.iter().any(|(f, _)| *f == module);
        if in_folder && !allowed {
            found.extend(folder_loop(file, &text, rel));
        }
    }
    found
}

/// `super::x` in a file of a folder, where `x` is neither a file of that folder nor a module
/// of the file itself: an import of the folder's mod.rs.
fn folder_loop(file: &Path, text: &str, rel: &Path) -> Vec<String> {
    let dir = file.parent().unwrap();
    let siblings: BTreeSet<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.trim_end_matches(".rs").to_string()
        })
        .collect();
    reached(text, "super::")
        .into_iter()
        .filter(|x| !siblings.contains(x) && !text.contains(&format!("mod {x} ")))
        .map(|x| format!("{}: super::{x} imports the folder's mod.rs", rel.display()))
        .collect()
}

#[test]
fn every_import_follows_the_layer_map_of_development_md() {
    let doc = fs::read_to_string(root().join("docs/development.md")).unwrap();
    let order = layer_order(&doc);
    assert!(order.len() > 20, "the map lists the modules: {order:?}");
    let found = breaches(&root().join("src"), &order);
    assert!(
        found.is_empty(),
        "imports against docs/development.md:\n{}",
        found.join("\n")
    );
}

/// The check sees a back-edge: a foundation module importing the run core, and a folder's
/// file importing its mod.rs.
#[test]
fn a_back_edge_is_caught() {
    let doc = fs::read_to_string(root().join("docs/development.md")).unwrap();
    let order = layer_order(&doc);
    let tree = tempfile::tempdir().unwrap();
    let src = tree.path();
    fs::write(src.join("error.rs"), "use crate::run::drive;\n").unwrap();
    fs::write(src.join("cancel.rs"), "use crate::error::ExitStatus;\n").unwrap();
    fs::create_dir(src.join("run")).unwrap();
    fs::write(
        src.join("run/mod.rs"),
        "mod collect;\npub(crate) struct Flow;\n",
    )
    .unwrap();
    fs::write(src.join("run/collect.rs"), "use super::Flow;\n").unwrap();
    let found = breaches(src, &order);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(found[0].contains("error imports run") || found[1].contains("error imports run"));
    assert!(
        found.iter().any(|f| f.contains("super::Flow")),
        "{found:#?}"
    );
}
