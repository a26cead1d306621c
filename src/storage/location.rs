//! Where a run's files live: a local folder or a Cloud Storage prefix, parsed once from user input.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::error::StorageError;

/// A folder on local disk or a `gs://bucket/prefix`; objects are named relative to it with `/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    Gcs(GcsPrefix),
}

/// A bucket and an object-name prefix inside it (empty, or ending in `/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GcsPrefix {
    bucket: String,
    prefix: String,
}

impl GcsPrefix {
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The prefix, empty or ending in `/`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

impl Location {
    /// Parses `gs://bucket[/prefix]` or a local path. Any other `scheme://` is refused rather
    /// than taken as a folder literally named `s3:`, which would silently write to local disk.
    pub fn parse(text: &str) -> Result<Location, StorageError> {
        let bad = |reason: &str| StorageError::BadUrl {
            url: text.to_string(),
            reason: reason.to_string(),
        };
        let Some((scheme, rest)) = text.split_once("://") else {
            if text.is_empty() {
                return Err(bad("empty location"));
            }
            return Ok(Location::Local(PathBuf::from(text)));
        };
        if scheme != "gs" {
            return Err(bad("only gs:// URLs and local paths are supported"));
        }
        let (bucket, path) = rest.split_once('/').unwrap_or((rest, ""));
        check_bucket_name(bucket).map_err(bad)?;
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        if segments.iter().any(|s| *s == "." || *s == "..") {
            return Err(bad("`.` and `..` are not allowed in an object prefix"));
        }
        let prefix = segments.iter().map(|s| format!("{s}/")).collect();
        Ok(Location::Gcs(GcsPrefix {
            bucket: bucket.to_string(),
            prefix,
        }))
    }

    /// Parses the place of one file, `gs://bucket/path/name` or a local path, as the location
    /// of its folder and its name there (what [`super::Store`] reads and writes).
    pub fn parse_file(text: &str) -> Result<(Location, String), StorageError> {
        let no_name = || StorageError::BadUrl {
            url: text.to_string(),
            reason: "names a folder or bucket, not a file".to_string(),
        };
        match Location::parse(text)? {
            Location::Local(path) => {
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .ok_or_else(no_name)?;
                let dir = match path.parent() {
                    Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
                    _ => PathBuf::from("."),
                };
                Ok((Location::Local(dir), name.to_string()))
            }
            Location::Gcs(_) if text.ends_with('/') => Err(no_name()),
            Location::Gcs(gcs) => {
                let path = gcs.prefix.trim_end_matches('/');
                let (folder, name) = path.rsplit_once('/').unwrap_or(("", path));
                if name.is_empty() {
                    return Err(no_name());
                }
                let folder = if folder.is_empty() {
                    String::new()
                } else {
                    format!("{folder}/")
                };
                let location = Location::Gcs(GcsPrefix {
                    bucket: gcs.bucket,
                    prefix: folder,
                });
                Ok((location, name.to_string()))
            }
        }
    }

    /// A location given as a path option (`--out`, `--checkpoint`, ...): its text parsed as
    /// [`Location::parse`] does, so `gs://bucket/prefix` is a bucket; a path that is not UTF-8 is
    /// local.
    pub fn parse_path(path: &Path) -> Result<Location, StorageError> {
        match path.to_str() {
            Some(text) => Location::parse(text),
            None => Ok(Location::Local(path.to_path_buf())),
        }
    }

    /// The folder on local disk, if the location is one.
    pub fn local_path(&self) -> Option<&Path> {
        match self {
            Location::Local(path) => Some(path),
            Location::Gcs(_) => None,
        }
    }

    /// The last part of the name (a folder's or an object prefix's own name).
    pub fn name(&self) -> String {
        match self {
            Location::Local(path) => path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            Location::Gcs(gcs) => gcs
                .prefix
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_string(),
        }
    }

    /// How a user writes the file `name` of this folder: a local path, or `gs://bucket/prefix/name`.
    pub fn file(&self, name: &str) -> String {
        match self {
            Location::Local(dir) => dir.join(name).display().to_string(),
            Location::Gcs(_) => format!("{self}{name}"),
        }
    }

    /// The location of `name` (a `/`-separated relative name) inside this one.
    pub fn join(&self, name: &str) -> Location {
        match self {
            Location::Local(dir) => Location::Local(dir.join(name)),
            Location::Gcs(gcs) => Location::Gcs(GcsPrefix {
                bucket: gcs.bucket.clone(),
                prefix: format!("{}{}", gcs.prefix, name.trim_matches('/')) + "/",
            }),
        }
    }
}

/// For command-line options: `gs://bucket/prefix` or a local path, as [`Location::parse`].
impl FromStr for Location {
    type Err = StorageError;

    fn from_str(text: &str) -> Result<Location, StorageError> {
        Location::parse(text)
    }
}

/// A path is a local location, whatever its text: only user input is parsed for `gs://`.
impl From<&Path> for Location {
    fn from(path: &Path) -> Location {
        Location::Local(path.to_path_buf())
    }
}

impl From<PathBuf> for Location {
    fn from(path: PathBuf) -> Location {
        Location::Local(path)
    }
}

impl From<&PathBuf> for Location {
    fn from(path: &PathBuf) -> Location {
        Location::Local(path.clone())
    }
}

impl From<&Location> for Location {
    fn from(location: &Location) -> Location {
        location.clone()
    }
}

/// Cloud Storage's bucket naming rules, the parts a typo breaks: 3 to 63 characters (222 with
/// dots), lowercase letters, digits, `-`, `_` and `.`, starting and ending with a letter or digit.
fn check_bucket_name(bucket: &str) -> Result<(), &'static str> {
    let max = if bucket.contains('.') { 222 } else { 63 };
    if bucket.len() < 3 || bucket.len() > max {
        return Err("a bucket name has 3 to 63 characters (222 with dots)");
    }
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c);
    if !bucket.chars().all(allowed) {
        return Err("a bucket name has only lowercase letters, digits, `-`, `_` and `.`");
    }
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !alnum(bucket.chars().next()) || !alnum(bucket.chars().last()) {
        return Err("a bucket name starts and ends with a letter or digit");
    }
    Ok(())
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(path) => write!(f, "{}", path.display()),
            Location::Gcs(gcs) => write!(f, "gs://{}/{}", gcs.bucket, gcs.prefix),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gcs(text: &str) -> (String, String) {
        match Location::parse(text).unwrap() {
            Location::Gcs(g) => (g.bucket, g.prefix),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_buckets_prefixes_and_paths() {
        assert_eq!(gcs("gs://my-bucket"), ("my-bucket".into(), "".into()));
        assert_eq!(gcs("gs://my-bucket/"), ("my-bucket".into(), "".into()));
        assert_eq!(
            gcs("gs://b.example.com/runs//a/"),
            ("b.example.com".into(), "runs/a/".into())
        );
        assert_eq!(
            Location::parse("runs/a").unwrap(),
            Location::Local(PathBuf::from("runs/a"))
        );
        let joined = Location::parse("gs://bkt/runs").unwrap().join("ckpt-10");
        assert_eq!(joined.to_string(), "gs://bkt/runs/ckpt-10/");
        assert_eq!(joined.name(), "ckpt-10");
        assert_eq!(joined.file("meta.json"), "gs://bkt/runs/ckpt-10/meta.json");
        assert_eq!(
            Location::Local("runs/a".into()).file("meta.json"),
            Path::new("runs/a").join("meta.json").display().to_string()
        );
        assert_eq!(
            Location::parse_path(Path::new("gs://bkt/runs")).unwrap(),
            Location::parse("gs://bkt/runs").unwrap()
        );
        assert_eq!(Location::from(Path::new("runs/a")).name(), "a");
    }

    #[test]
    fn a_file_is_a_folder_and_a_name() {
        let (folder, name) = Location::parse_file("gs://bkt/w/model.safetensors").unwrap();
        assert_eq!(
            (folder.to_string(), name.as_str()),
            ("gs://bkt/w/".into(), "model.safetensors")
        );
        let (folder, name) = Location::parse_file("gs://bkt/m.bin").unwrap();
        assert_eq!(
            (folder.to_string(), name.as_str()),
            ("gs://bkt/".into(), "m.bin")
        );
        let (folder, name) = Location::parse_file("m.bin").unwrap();
        assert_eq!(
            (folder, name.as_str()),
            (Location::Local(".".into()), "m.bin")
        );
        let (folder, name) = Location::parse_file("/tmp/w/m.bin").unwrap();
        assert_eq!(
            (folder, name.as_str()),
            (Location::Local("/tmp/w".into()), "m.bin")
        );
        for text in ["gs://bkt", "gs://bkt/", "gs://bkt/w/"] {
            let message = Location::parse_file(text).unwrap_err().to_string();
            assert!(message.contains("not a file"), "{text}: {message}");
        }
    }

    #[test]
    fn bad_urls_name_the_problem() {
        for (text, words) in [
            ("s3://bucket/x", "only gs://"),
            ("gs://", "3 to 63"),
            ("gs://ab", "3 to 63"),
            ("gs://My_Bucket", "lowercase"),
            ("gs://-bucket", "starts and ends"),
            ("gs://bucket/a/../b", "`..`"),
            ("", "empty"),
        ] {
            let message = Location::parse(text).unwrap_err().to_string();
            assert!(
                message.contains(words) && message.contains(text),
                "{text}: {message}"
            );
        }
    }
}
