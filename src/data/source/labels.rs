//! The labels file: one class name per line, line `i` naming class `i`.

use std::path::Path;

use crate::data::error::{DataError, Result};

/// File name of the labels file written next to shards.
pub const LABELS_FILE: &str = "labels.txt";

/// Writes `classes` one per line.
pub fn write_labels(path: &Path, classes: &[String]) -> Result<()> {
    let mut text = classes.join("\n");
    text.push('\n');
    std::fs::write(path, text).map_err(|e| DataError::io(path, e))
}

/// Reads a labels file written by [`write_labels`].
pub fn read_labels(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    parse_labels(&text, &path.display().to_string())
}

/// The class names of the text of labels file `what` (a path or URL, for the error).
pub(crate) fn parse_labels(text: &str, what: &str) -> Result<Vec<String>> {
    let classes: Vec<String> = text.lines().map(str::to_owned).collect();
    if classes.is_empty() || classes.iter().any(String::is_empty) {
        return Err(DataError::Layout(format!(
            "labels file {what} must list one non-empty class name per line"
        )));
    }
    Ok(classes)
}
