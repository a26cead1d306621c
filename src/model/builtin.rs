//! The model specs shipped in `graphs/`, compiled into the binary so it works from any directory, and
//! the lookup that accepts either a short name (`s`, `b0`, `tiny`), a full name (`efficientnetv2-s`) or
//! a path to a user's JSON file.

use std::path::Path;

use super::error::SpecError;
use super::spec::ModelSpec;

/// (short name, full name, JSON text) of every built-in model.
const BUILTINS: &[(&str, &str, &str)] = &[
    (
        "b0",
        "efficientnetv2-b0",
        include_str!("../../graphs/efficientnetv2-b0.json"),
    ),
    (
        "b1",
        "efficientnetv2-b1",
        include_str!("../../graphs/efficientnetv2-b1.json"),
    ),
    (
        "b2",
        "efficientnetv2-b2",
        include_str!("../../graphs/efficientnetv2-b2.json"),
    ),
    (
        "b3",
        "efficientnetv2-b3",
        include_str!("../../graphs/efficientnetv2-b3.json"),
    ),
    (
        "s",
        "efficientnetv2-s",
        include_str!("../../graphs/efficientnetv2-s.json"),
    ),
    (
        "m",
        "efficientnetv2-m",
        include_str!("../../graphs/efficientnetv2-m.json"),
    ),
    (
        "l",
        "efficientnetv2-l",
        include_str!("../../graphs/efficientnetv2-l.json"),
    ),
    (
        "xl",
        "efficientnetv2-xl",
        include_str!("../../graphs/efficientnetv2-xl.json"),
    ),
    (
        "tiny",
        "efficientnetv2-tiny",
        include_str!("../../graphs/efficientnetv2-tiny.json"),
    ),
];

/// Short names of the built-in models, in size order.
pub fn builtin_names() -> impl Iterator<Item = &'static str> {
    BUILTINS.iter().map(|(short, _, _)| *short)
}

/// Loads a built-in model by short or full name, or else a JSON spec from the path `name_or_path`.
/// Built-in names win over a file of the same name in the working directory.
pub fn load_spec(name_or_path: &str) -> Result<ModelSpec, SpecError> {
    let builtin = BUILTINS.iter().find(|(short, full, _)| {
        name_or_path.eq_ignore_ascii_case(short) || name_or_path.eq_ignore_ascii_case(full)
    });
    if let Some((_, full, text)) = builtin {
        return ModelSpec::from_json(text, &format!("built-in model {full}"));
    }
    let path = Path::new(name_or_path);
    if path.is_file() {
        return ModelSpec::from_file(path);
    }
    Err(SpecError::UnknownModel {
        name: name_or_path.to_string(),
        builtins: builtin_names().collect::<Vec<_>>().join(", "),
    })
}
