//! The layering of `src/`, read from the source (no plugin, no build of anything): a module
//! uses only modules of the layers below its own, and the submodules of one top-level module
//! form no circle beyond the known ones. What counts as a use is a path in code (comments are
//! skipped): `crate::x::...`, `super::...`, `self::...` and, in the binary, `effnetv2::x::...`,
//! with `{...}` groups expanded.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The top-level modules, lowest layer first. A module may use its own submodules and the
/// modules of earlier rows, never one of its own row or a later one. `main` is `src/main.rs`.
const LAYERS: &[&[&str]] = &[
    &["storage"],
    &["data", "hlo"],
    &["runtime", "autodiff"],
    &["nn"],
    &["model"],
    &["step"],
    &["program"],
    &["trainer"],
    &["report", "weights", "aot"],
    &["search"],
    &["cli"],
    &["main"],
];

/// Circles among the submodules of one top-level module that are allowed: each circle found
/// must lie inside one of these. `autodiff`: the backward pass dispatches to the per-op rules,
/// and the control-flow rules differentiate their bodies with the backward pass. `model`: a spec
/// rounds its widths and depths with the resolver's rules, and the resolver reads the spec.
const ALLOWED_CIRCLES: &[&[&str]] = &[
    &["autodiff::backward", "autodiff::rules"],
    &["model::resolve", "model::spec"],
];

/// A source file and the module path its code lives in.
struct SourceFile {
    module: Vec<String>,
    code: String,
}

/// Every `.rs` file under `dir` with its module path (`mod.rs` is its folder's module).
fn source_files(root: &Path, dir: &Path, out: &mut Vec<SourceFile>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            source_files(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path.strip_prefix(root).unwrap().with_extension("");
            let mut module: Vec<String> = relative
                .iter()
                .map(|c| c.to_string_lossy().into_owned())
                .collect();
            if module.last().is_some_and(|m| m == "mod" || m == "lib") {
                module.pop();
            }
            let code = std::fs::read_to_string(&path).unwrap();
            out.push(SourceFile { module, code });
        }
    }
}

/// `code` without `//` comments (doc comments included) and without the contents of string
/// and character literals.
fn strip_comments_and_strings(code: &str) -> String {
    let chars: Vec<char> = code.chars().collect();
    let mut out = String::with_capacity(code.len());
    let mut i = 0;
    while i < chars.len() {
        let after_ident = i > 0 && is_ident(chars[i - 1]);
        match chars[i] {
            '/' if chars.get(i + 1) == Some(&'/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            'r' if !after_ident && matches!(chars.get(i + 1), Some('"' | '#')) => {
                // A raw string: r"..." or r#"..."#, ended by a quote and as many hashes.
                let hashes = chars[i + 1..].iter().take_while(|&&c| c == '#').count();
                if chars.get(i + 1 + hashes) != Some(&'"') {
                    out.push('r');
                    i += 1;
                    continue;
                }
                i += 2 + hashes;
                let end: String = std::iter::once('"')
                    .chain(std::iter::repeat_n('#', hashes))
                    .collect();
                while i < chars.len() && !chars[i..].iter().take(end.len()).copied().eq(end.chars())
                {
                    i += 1;
                }
                i += end.len();
                out.push_str("\"\"");
                continue;
            }
            '"' => {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("\"\"");
                continue;
            }
            '\'' if chars.get(i + 1) == Some(&'\\') => {
                // An escaped character literal: '\n', '\'', '\u{..}'.
                i += 3;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
                out.push_str("' '");
                continue;
            }
            '\'' if chars.get(i + 2) == Some(&'\'') => {
                i += 3;
                out.push_str("' '");
                continue;
            }
            c => out.push(c),
        }
        i += 1;
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The paths written at `text`'s start (`a::b::{c, d::e}` gives `a::b::c` and `a::b::d::e`).
fn parse_paths(text: &str) -> (Vec<Vec<String>>, usize) {
    let mut prefix = Vec::new();
    let mut i = 0;
    let bytes: Vec<char> = text.chars().collect();
    loop {
        let start = i;
        while i < bytes.len() && is_ident(bytes[i]) {
            i += 1;
        }
        if i > start {
            prefix.push(bytes[start..i].iter().collect::<String>());
        }
        let rest: String = bytes[i..bytes.len().min(i + 2)].iter().collect();
        if rest != "::" {
            return (vec![prefix], i);
        }
        i += 2;
        while i < bytes.len() && bytes[i].is_whitespace() {
            i += 1;
        }
        if i < bytes.len() && bytes[i] == '{' {
            i += 1;
            let mut paths = Vec::new();
            loop {
                while i < bytes.len() && (bytes[i].is_whitespace() || bytes[i] == ',') {
                    i += 1;
                }
                if i >= bytes.len() || bytes[i] == '}' {
                    return (paths, i + 1);
                }
                let tail: String = bytes[i..].iter().collect();
                let (inner, used) = parse_paths(&tail);
                for path in inner {
                    paths.push(prefix.iter().cloned().chain(path).collect());
                }
                i += used.max(1);
                // Skip `as name` and anything else up to the next item of the group.
                while i < bytes.len() && bytes[i] != ',' && bytes[i] != '}' {
                    i += 1;
                }
            }
        }
    }
}

/// `code` without its inline `mod tests { ... }`, and that module's body (one level deeper, so
/// its `super` is the file's module).
fn split_tests(code: &str) -> (String, &str) {
    let Some(start) = code.find("\nmod tests {") else {
        return (code.to_owned(), "");
    };
    let open = start + "\nmod tests ".len();
    let mut depth = 0;
    let mut end = code.len();
    for (i, c) in code[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    end = open + i + 1;
                    break;
                }
            }
            _ => {}
        }
    }
    (
        format!("{}{}", &code[..start], &code[end..]),
        &code[open..end],
    )
}

/// The absolute module paths that `file` uses.
fn uses(file: &SourceFile) -> Vec<Vec<String>> {
    let code = strip_comments_and_strings(&file.code);
    let (body, tests) = split_tests(&code);
    let mut found = Vec::new();
    for (text, depth_extra) in [(body.as_str(), false), (tests, true)] {
        let mut module = file.module.clone();
        if depth_extra {
            module.push("tests".into());
        }
        for (i, _) in text.char_indices() {
            let boundary = i == 0 || !text[..i].chars().next_back().is_some_and(is_ident);
            let starts = ["crate::", "super::", "self::", "effnetv2::"]
                .iter()
                .any(|k| text[i..].starts_with(k));
            if !(boundary && starts) {
                continue;
            }
            for path in parse_paths(&text[i..]).0 {
                if let Some(absolute) = resolve(&module, &path) {
                    found.push(absolute);
                }
            }
        }
    }
    found
}

/// `path` as seen from `module`, from the crate root.
fn resolve(module: &[String], path: &[String]) -> Option<Vec<String>> {
    let mut base: Vec<String> = module.to_vec();
    let mut rest = path;
    match rest.first()?.as_str() {
        "crate" | "effnetv2" => {
            base.clear();
            rest = &rest[1..];
        }
        "self" => rest = &rest[1..],
        "super" => {
            while rest.first().is_some_and(|s| s == "super") {
                base.pop()?;
                rest = &rest[1..];
            }
        }
        _ => return None,
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

fn layer_of(top: &str) -> Option<usize> {
    LAYERS.iter().position(|row| row.contains(&top))
}

/// The top-level module of a file (`main` for `src/main.rs`).
fn top(module: &[String]) -> &str {
    module.first().map_or("lib", String::as_str)
}

/// Layer violations: `(user, used)` pairs where `used` is not in a lower layer than `user`.
fn violations(files: &[SourceFile]) -> BTreeSet<(String, String)> {
    let mut bad = BTreeSet::new();
    for file in files {
        let user = top(&file.module);
        let Some(own) = layer_of(user) else { continue };
        for used in uses(file) {
            let Some(name) = used.first() else { continue };
            if name == user {
                continue;
            }
            if let Some(layer) = layer_of(name) {
                if layer >= own {
                    bad.insert((file.module.join("::"), used.join("::")));
                }
            }
        }
    }
    bad
}

/// The submodule a module path belongs to: `top::child` where `child` is a submodule of `top`
/// (or an item `top` re-exports from one), else `top`.
fn node(
    path: &[String],
    children: &BTreeMap<String, BTreeSet<String>>,
    reexports: &BTreeMap<(String, String), String>,
) -> String {
    let top = path[0].clone();
    match path.get(1) {
        Some(second) if children.get(&top).is_some_and(|c| c.contains(second)) => {
            format!("{top}::{second}")
        }
        Some(second) => match reexports.get(&(top.clone(), second.clone())) {
            Some(child) => format!("{top}::{child}"),
            None => top,
        },
        None => top,
    }
}

/// Circles among the submodules of each top-level module, each as its sorted members.
fn circles(files: &[SourceFile]) -> Vec<Vec<String>> {
    let mut children: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files.iter().filter(|f| f.module.len() >= 2) {
        children
            .entry(file.module[0].clone())
            .or_default()
            .insert(file.module[1].clone());
    }
    // Items a top-level `mod.rs` re-exports with `pub use child::{...}`.
    let mut reexports = BTreeMap::new();
    for file in files.iter().filter(|f| f.module.len() == 1) {
        let code = strip_comments_and_strings(&file.code);
        for statement in code.split("pub use ").skip(1) {
            for path in parse_paths(statement).0 {
                if let [child, .., item] = path.as_slice() {
                    reexports.insert((file.module[0].clone(), item.clone()), child.clone());
                }
            }
        }
    }
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files.iter().filter(|f| !f.module.is_empty()) {
        let from = node(&file.module, &children, &reexports);
        for used in uses(file) {
            if used.first() == file.module.first() {
                let to = node(&used, &children, &reexports);
                if to != from {
                    edges.entry(from.clone()).or_default().insert(to);
                }
            }
        }
    }
    let reach = |start: &String| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![start.clone()];
        while let Some(n) = todo.pop() {
            for next in edges.get(&n).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let reachable: BTreeMap<String, BTreeSet<String>> =
        edges.keys().map(|n| (n.clone(), reach(n))).collect();
    let mut found: BTreeSet<Vec<String>> = BTreeSet::new();
    for (n, reached) in &reachable {
        if !reached.contains(n) {
            continue;
        }
        let members: Vec<String> = reached
            .iter()
            .filter(|m| reachable.get(*m).is_some_and(|r| r.contains(n)))
            .cloned()
            .collect();
        found.insert(members);
    }
    found.into_iter().collect()
}

fn sources() -> Vec<SourceFile> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    source_files(&root, &root, &mut files);
    files
}

#[test]
fn no_module_uses_a_higher_layer() {
    let files = sources();
    for file in &files {
        let top = top(&file.module);
        assert!(
            top == "lib" || layer_of(top).is_some(),
            "src/{top} is in no row of LAYERS: place it in the layer table"
        );
    }
    let bad = violations(&files);
    assert!(
        bad.is_empty(),
        "uses of a module of the same or a higher layer (user -> used):\n{}",
        bad.iter()
            .map(|(user, used)| format!("  {user} -> {used}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn no_circle_of_submodules_beyond_the_known_ones() {
    let unexpected: Vec<Vec<String>> = circles(&sources())
        .into_iter()
        .filter(|circle| {
            !ALLOWED_CIRCLES
                .iter()
                .any(|allowed| circle.iter().all(|m| allowed.contains(&m.as_str())))
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "circles of submodules that use each other: {unexpected:?}"
    );
}

/// The checks themselves find what they look for: a planted upward use and a planted circle.
#[test]
fn the_checks_find_a_planted_violation() {
    let file = |module: &[&str], code: &str| SourceFile {
        module: module.iter().map(|s| s.to_string()).collect(),
        code: code.into(),
    };
    let files = vec![
        file(&["hlo"], "pub mod a;"),
        file(
            &["hlo", "a"],
            "// crate::trainer::run in a comment is no use\nuse super::{b::X, c};\nuse crate::{model::Model, runtime::Buffer};",
        ),
        file(
            &["hlo", "b"],
            "#[cfg(test)]\nmod tests {\n    use super::*;\n}\nfn f() { super::a::g(); }",
        ),
        file(&["nn", "x"], "let s = \"crate::step::y\"; use crate::autodiff::{self, Z};\nuse crate::step::W;"),
    ];
    let bad = violations(&files);
    let expected: BTreeSet<(String, String)> = [
        ("hlo::a", "model::Model"),
        ("hlo::a", "runtime::Buffer"),
        ("nn::x", "step::W"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(bad, expected);
    assert_eq!(
        circles(&files),
        vec![vec!["hlo::a".to_string(), "hlo::b".to_string()]]
    );
}
