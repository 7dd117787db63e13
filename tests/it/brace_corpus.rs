//! Brace text in real one-liners: awk, jq, perl, sed, JSON, Python dicts, shell brace
//! expansions and `${var}` reach the job untouched, while near misses of a placeholder
//! (`{rel..}`, `{Rel}`, `{/..}`) are refused before anything runs, naming the placeholder meant.

use crate::harness::*;

/// One-liners as the words after `--` (no `-s`). Each word reaches the job unchanged, but for
/// `{}`, which is the path. Without `{}` the path is appended.
const ONE_LINERS: &[&[&str]] = &[
    &["awk", "{print}", "{}"],
    &["awk", "{print $1}", "{}"],
    &["awk", "-F,", "{s+=$3} END {print s}", "{}"],
    &["awk", "NR==1{print; next} {print tolower($0)}", "{}"],
    &["awk", "BEGIN{FS=OFS=\"\\t\"} {$2=toupper($2)} 1", "{}"],
    &["awk", "{n++} END{print n}"],
    &["awk", "/x/{c++} END{print c+0}", "{}"],
    &["awk", "{next}", "{}"],
    &["jq", "-c", "{name, id}", "{}"],
    &["jq", "{a: .x, b: .y}", "{}"],
    &[
        "jq",
        "-r",
        ".items[] | {id: .id, tags: (.tags // [])}",
        "{}",
    ],
    &["jq", ". + {processed: true}", "{}"],
    &["jq", "{(.key): .value}", "{}"],
    &["jq", "-c", ".[] | {x}", "{}"],
    &["jq", ".[] | select(.n > 1) | {n}"],
    &["yq", ".spec | {name: .metadata.name}", "{}"],
    &["perl", "-ne", "print if /^\\d{3}-\\d{4}$/", "{}"],
    &["perl", "-pe", "s/(\\w+)/\\u$1/g; $h{$_}++", "{}"],
    &[
        "perl",
        "-lane",
        "$s{$F[0]} += $F[1]; END { print \"$_ $s{$_}\" for sort keys %s }",
        "{}",
    ],
    &["sed", "-n", "/start/,/end/{p}", "{}"],
    &["sed", "/^#/{N;d}", "{}"],
    &["sed", "-E", "s/[0-9]{4}-[0-9]{2}/DATE/g", "{}"],
    &["grep", "-E", "^[A-Z]{2,3}[0-9]{1,}$", "{}"],
    &[
        "curl",
        "-s",
        "-H",
        "Content-Type: application/json",
        "-d",
        "{\"path\": \"x\", \"size\": 3}",
        "http://localhost:9/",
    ],
    &[
        "curl",
        "--json",
        "{\"file\":\"f\",\"tags\":[\"a\",\"b\"],\"meta\":{\"k\":1}}",
        "http://localhost:9/",
    ],
    &[
        "python3",
        "-c",
        "import sys, json; print(json.dumps({\"path\": sys.argv[1], \"n\": 1}))",
        "{}",
    ],
    &[
        "python3",
        "-c",
        "d = {k: v for k, v in [(\"a\", 1)]}; print(d)",
    ],
    &["python3", "-c", "print(\"{0} {1:>8}\".format(1, 2))"],
    &[
        "python3",
        "-c",
        "res, ref, opt, reads = 1, 2, 3, 4; print(f\"{res} {ref} {opt} {reads}\")",
        "{}",
    ],
    &[
        "python3",
        "-c",
        "import sys; print(f\"{sys.argv[1]!r}\")",
        "{}",
    ],
    &["bash", "-c", "echo ${1%.csv}.parquet", "_", "{}"],
    &[
        "bash",
        "-c",
        "f=${1##*/}; echo ${f%%.*} ${#f} ${Rel} ${OUT:-x}",
        "_",
        "{}",
    ],
    &[
        "bash",
        "-c",
        "for i in {1..10}; do echo $i; done",
        "_",
        "{}",
    ],
    &[
        "bash",
        "-c",
        "cp \"$1\" \"${1}.bak\"; mkdir -p out/{a,b,c}",
        "_",
        "{}",
    ],
    &["bash", "-c", "echo {a..z} {A..Z}", "_", "{}"],
    &[
        "sh",
        "-c",
        "{ echo start; cat \"$1\"; } > \"$1.log\"",
        "_",
        "{}",
    ],
    &["duckdb", "-c", "SELECT {'a': 1, 'b': 2} AS s, '{}' AS f"],
    &["lua", "-e", "local t = {1, 2, 3} print(#t)"],
    &[
        "node",
        "-e",
        "const {a, b} = {a: 1, b: 2}; console.log(a + b)",
    ],
    &["ruby", "-ne", "BEGIN{c=0}; c+=1; END{puts c}", "{}"],
    &["git", "show", "HEAD@{1}:{}"],
    &["Rscript", "-e", "f <- function(a) {a + 1}; f(1)"],
    &["awk", "{if ($1 > 0) {print}}", "{}"],
    &["docker", "inspect", "--format", "{{.State.Status}}"],
    &[
        "gh",
        "pr",
        "list",
        "--template",
        "{{range .}}{{.title}}{{\"\\n\"}}{{end}}",
    ],
    &[
        "printf", "%s\\n", "{ }", "{1}", "{A}", "{x}", "{id}", "{bogus}", "{nme}",
    ],
];

/// Shell scripts for `-s`, each checked through the dry run: the script `sh -c` gets is the
/// one written, with `{}` replaced by the (shell-safe) path.
const SCRIPTS: &[&str] = &[
    "gzip -c {} > {}.gz",
    "for f in {a,b}; do echo $f {}; done",
    "{ head -n1 {}; tail -n1 {}; } > {}.ends",
    "awk '{print $1}' {} | sort | uniq -c",
    "n=$(wc -l < {}); echo \"${n}\"",
    "f={}; echo ${f%.csv} ${f##*/} ${#f}",
    "echo {1..3} {}",
    "test -s {} || { echo empty {} >&2; exit 1; }",
    "jq -c '{name: .n}' {} > {}.out",
    "python3 -c 'print({\"a\": 1})' {}",
    "echo ${OUT:-default} ${Rel} {}",
    "f() { wc -c < \"$1\"; }; f {}",
    "awk '{print}' {} | head -n 1",
    "sed -n '/a/{p}' {}",
];

/// Near misses (the words after `--`) and the placeholder fanout suggests.
const NEAR_MISSES: &[(&[&str], &str)] = &[
    (&["cp", "{}", "clean/{rel..}.csv"], "{rel.}"),
    (&["cp", "{}", "{out.}"], "{out}"),
    (&["cp", "{}", "x/{rel/}"], "{rel}"),
    (&["echo", "{..}"], "{.}"),
    (&["echo", "{/..}"], "{/.}"),
    (&["cp", "{}", "x/{Rel}"], "{rel}"),
    (&["cp", "{}", "{OUT}"], "{out}"),
    (&["cp", "{}", "{outt}"], "{out}"),
    (&["cp", "{}", "{ot}"], "{out}"),
    (
        &["python3", "t.py", "--threads={thread}", "{}"],
        "{threads}",
    ),
    (&["python3", "t.py", "-j", "{Threads}", "{}"], "{threads}"),
    (&["python3", "t.py", "-j", "{treads}", "{}"], "{threads}"),
    (
        &["duckdb", "-c", "SET memory_limit='{mme}MB'", "{}"],
        "{mem}",
    ),
    (
        &["duckdb", "-c", "SET memory_limit='{MEM}MB'", "{}"],
        "{mem}",
    ),
    (&["echo", "{./}"], "{/.}"),
    (&["echo", "{///}"], "{//}"),
    (&["echo", "{.//}"], "{//}"),
    (&["echo", "{##}", "{}"], "{#}"),
    (&["echo", "{%%}", "{}"], "{%}"),
    (&["cp", "{}", "x/{/rel}"], "{rel}"),
    (&["cp", "{}", "x/{rell}"], "{rel}"),
    (&["cp", "{}", "x/{REL.}"], "{rel.}"),
    (&["cp", "{}", "x/{re}"], "{rel}"),
    (&["echo", "{...}"], "{.}"),
    (&["echo", "a{/.}b{/...}c"], "{/.}"),
];

/// Near misses in `-s` scripts.
const SHELL_NEAR_MISSES: &[(&str, &str)] = &[
    ("gzip -c {} > {rel..}.gz", "{rel.}"),
    ("{ cat {}; } > out/{Rel}", "{rel}"),
    ("echo ${x} {..}", "{.}"),
    ("awk '{print}' {} > {/..}.txt", "{/.}"),
];

fn expected(words: &[&str], path: &str) -> Vec<Vec<u8>> {
    let mut argv: Vec<Vec<u8>> = words.iter().map(|w| b(&w.replace("{}", path))).collect();
    if !words.iter().any(|w| w.contains("{}")) {
        argv.push(b(path));
    }
    argv
}

#[test]
fn brace_text_of_real_one_liners_reaches_the_job_untouched() {
    assert!(ONE_LINERS.len() >= 30);
    let env = TestEnv::new(&[], &[("d/in.txt", "")]);
    let out_dir = env.out_dir("argv");
    let dump = fixture("argv-dump.sh");
    for words in ONE_LINERS {
        clear_dir(&out_dir);
        let mut args = vec!["d", "--", dump.as_str(), out_dir.as_str()];
        args.extend_from_slice(words);
        let out = env.run(&args);
        out.assert_ok();
        let got = read_argv_dumps(&out_dir);
        assert_eq!(
            got,
            [expected(words, "d/in.txt")],
            "{words:?}\n{}",
            show_argvs(&got)
        );
    }
}

#[test]
fn brace_text_of_shell_scripts_reaches_sh_untouched() {
    let env = TestEnv::new(&[], &[("d/in.txt", "")]);
    for script in SCRIPTS {
        let out = env.run(&["-n", "-s", "d", "--", script]);
        out.assert_ok();
        let lines = out.stdout_lines();
        assert_eq!(lines.len(), 1, "{}", out.dump());
        let argv = shlex::split(&lines[0]).expect("the dry run prints shell words");
        assert_eq!(
            argv,
            ["sh", "-c", &script.replace("{}", "d/in.txt")],
            "{script}"
        );
    }
}

#[test]
fn a_near_miss_of_a_placeholder_is_refused_with_the_one_meant() {
    assert!(NEAR_MISSES.len() + SHELL_NEAR_MISSES.len() >= 20);
    let env = TestEnv::new(&[], &[("d/in.txt", "")]);
    let out_dir = env.out_dir("argv");
    let dump = fixture("argv-dump.sh");
    for (words, meant) in NEAR_MISSES {
        let mut args = vec!["d", "--", dump.as_str(), out_dir.as_str()];
        args.extend_from_slice(words);
        let out = env.run(&args);
        out.assert_code(2)
            .assert_stderr_contains(&format!("did you mean {meant}?"))
            .assert_no_panic();
        assert_eq!(out.stderr_lines().len(), 1, "{words:?}\n{}", out.dump());
        assert!(read_argv_dumps(&out_dir).is_empty(), "{words:?} ran a job");
    }
    for (script, meant) in SHELL_NEAR_MISSES {
        env.run(&["-s", "d", "--", script])
            .assert_code(2)
            .assert_stderr_contains(&format!("did you mean {meant}?"));
    }
}

#[test]
fn doubled_braces_keep_a_near_miss_literal() {
    let env = TestEnv::new(&[], &[("d/in.txt", "")]);
    env.run(&["d", "--", "echo", "{{rel..}}", "{{Rel}}", "{{}}", "{}"])
        .assert_ok()
        .assert_stdout_lines(&["{rel..} {Rel} {} d/in.txt"]);
}
