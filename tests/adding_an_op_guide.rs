//! Keeps `docs/adding-an-op.md` true to the code.
//!
//! `Op` is a closed enum, so that exhaustive matches make the compiler ask for every decision a
//! new op needs. A test therefore cannot add an op of its own. The guide instead walks through a
//! real op, and these tests fail when the guide drifts from the code:
//! - a quoted snippet no longer appears in the file the guide names;
//! - the op is named in a file the guide does not list (for example, a new per-op `match`
//!   elsewhere);
//! - the guide lists more than four files;
//! - an elementwise op (`UnaryOp`, `BinaryOp`) is named outside the files the guide gives for
//!   those;
//! - the printer or the encoder names an op;
//! - an op family has a shape-rule file without a gradient-rule file, or the other way round.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

const GUIDE: &str = "docs/adding-an-op.md";
/// The op the guide's worked example follows.
const EXAMPLE: &str = "Op::Reverse";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// `text` with every run of whitespace collapsed to one space, so that snippets compare
/// independently of line breaks.
fn normalized(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The guide's `### \`path\`` sections, each with the Rust code blocks under it.
fn sections(guide: &str) -> Vec<(String, Vec<String>)> {
    let mut sections: Vec<(String, Vec<String>)> = Vec::new();
    let mut block: Option<String> = None;
    for line in guide.lines() {
        if let Some(code) = block.as_mut() {
            if line.trim_start().starts_with("```") {
                let code = block.take().unwrap_or_default();
                sections
                    .last_mut()
                    .unwrap_or_else(|| panic!("a code block before any file heading: {code}"))
                    .1
                    .push(code);
            } else {
                code.push_str(line);
                code.push('\n');
            }
        } else if line.trim_start().starts_with("```rust") {
            block = Some(String::new());
        } else if let Some(heading) = line.strip_prefix("### ") {
            let path = heading.trim().trim_matches('`').to_string();
            sections.push((path, Vec::new()));
        }
    }
    assert!(block.is_none(), "{GUIDE} has an unterminated code block");
    sections
}

/// Every `.rs` file under `dir`, as paths relative to the crate root.
fn rust_files(dir: &Path, out: &mut Vec<String>) {
    let mut entries: Vec<_> = fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let relative = path.strip_prefix(root()).expect("under the crate root");
        if path.is_dir() {
            rust_files(relative, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(relative.to_string_lossy().into_owned());
        }
    }
}

/// Whether `text` names `name` as a whole path (not `Op::ReverseX`).
fn mentions(text: &str, name: &str) -> bool {
    text.match_indices(name).any(|(i, _)| {
        !text[i + name.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

#[test]
fn every_snippet_appears_in_the_file_the_guide_names() {
    let sections = sections(&read(GUIDE));
    assert!(!sections.is_empty(), "{GUIDE} names no files");
    for (path, blocks) in &sections {
        let source = normalized(&read(path));
        for code in blocks {
            assert!(
                source.contains(&normalized(code)),
                "{GUIDE} quotes code that {path} does not contain:\n{code}"
            );
        }
    }
}

#[test]
fn the_guide_lists_every_file_that_names_the_example_op_and_at_most_four() {
    let listed: BTreeSet<String> = sections(&read(GUIDE))
        .into_iter()
        .map(|(path, _)| path)
        .collect();
    assert!(
        listed.len() <= 4,
        "{GUIDE} lists {} files for one op: {listed:?}",
        listed.len()
    );
    let mut files = Vec::new();
    rust_files(Path::new("src"), &mut files);
    let naming: BTreeSet<String> = files
        .into_iter()
        .filter(|f| mentions(&read(f), EXAMPLE))
        .collect();
    let unlisted: Vec<&String> = naming.difference(&listed).collect();
    assert!(
        unlisted.is_empty(),
        "{unlisted:?} name {EXAMPLE} but {GUIDE} does not list them: a new op would need an edit there too"
    );
    assert!(
        naming.contains("src/hlo/op.rs"),
        "the example op is expected in src/hlo/op.rs; found in {naming:?}"
    );
}

/// The files the guide names for a new `UnaryOp` or `BinaryOp`.
const ELEMENTWISE_FILES: [&str; 3] = [
    "src/hlo/op.rs",
    "src/hlo/ops/elementwise.rs",
    "src/autodiff/rules/elementwise.rs",
];

#[test]
fn the_guide_lists_every_file_that_names_an_elementwise_op() {
    let guide = read(GUIDE);
    for path in ELEMENTWISE_FILES {
        assert!(
            guide.contains(&format!("`{path}`")),
            "{GUIDE} does not name {path}"
        );
    }
    let mut files = Vec::new();
    rust_files(Path::new("src"), &mut files);
    for example in ["UnaryOp::Sin", "BinaryOp::Atan2"] {
        let unlisted: Vec<&String> = files
            .iter()
            .filter(|f| !ELEMENTWISE_FILES.contains(&f.as_str()) && mentions(&read(f), example))
            .collect();
        assert!(
            unlisted.is_empty(),
            "{unlisted:?} name {example} but {GUIDE} does not list them for elementwise ops"
        );
    }
}

#[test]
fn printer_and_encoder_have_no_per_op_code() {
    for path in ["src/hlo/printer.rs", "src/hlo/encode.rs"] {
        let text = read(path);
        // A variant (`Op::Reverse`), not a method (`Op::attributes`) or `UnaryOp::..`.
        let names_an_op = text.match_indices("Op::").any(|(i, _)| {
            let before = text[..i].chars().next_back();
            let after = text[i + 4..].chars().next();
            !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
                && after.is_some_and(|c| c.is_ascii_uppercase())
        });
        assert!(
            !names_an_op,
            "{path} matches on ops; the guide says a new op needs no edit there"
        );
    }
}

#[test]
fn every_op_family_has_a_shape_rule_file_and_a_gradient_rule_file() {
    let families = |dir: &str| -> BTreeSet<String> {
        let mut files = Vec::new();
        rust_files(Path::new(dir), &mut files);
        files
            .iter()
            .filter_map(|f| Path::new(f).file_stem()?.to_str().map(str::to_string))
            .filter(|stem| stem != "mod")
            .collect()
    };
    let (shapes, gradients) = (families("src/hlo/ops"), families("src/autodiff/rules"));
    assert_eq!(
        shapes, gradients,
        "src/hlo/ops and src/autodiff/rules should hold the same op families"
    );
    let guide = read(GUIDE);
    for family in &shapes {
        assert!(
            guide.contains(&format!("`{family}`")),
            "{GUIDE} does not name the family {family}"
        );
    }
}
