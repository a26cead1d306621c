//! Where downloaded data sets live on this machine.

use std::path::PathBuf;

use super::error::{DataError, Result};

/// The user cache folder of the project: `$EFFNETV2_CACHE`, else `$XDG_CACHE_HOME/effnetv2`, else
/// `~/.cache/effnetv2`. The folder is created if missing.
pub fn cache_dir() -> Result<PathBuf> {
    let non_empty = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    let dir = if let Some(dir) = non_empty("EFFNETV2_CACHE") {
        PathBuf::from(dir)
    } else if let Some(xdg) = non_empty("XDG_CACHE_HOME") {
        PathBuf::from(xdg).join("effnetv2")
    } else if let Some(home) = non_empty("HOME") {
        PathBuf::from(home).join(".cache").join("effnetv2")
    } else {
        return Err(DataError::Install(
            "no cache folder: set EFFNETV2_CACHE, XDG_CACHE_HOME or HOME".into(),
        ));
    };
    std::fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, e))?;
    Ok(dir)
}
