//! Finding and installing PJRT plugin libraries.
//!
//! A PJRT plugin is one shared library that exports `GetPjrtApi`. The plugins we support are
//! published as Python wheels (zip files) on the Python package index. Each kind is pinned to one
//! wheel (package, version, sha256) so every machine runs the same bytes: [`Cache::install`] fetches
//! that wheel with `pip download` (nothing is installed into Python), checks its hash, and extracts
//! only the library into a per-user cache.
//!
//! [`Locator::locate`] looks, in order, at an explicit path, the kind's `EFFNETV2_PLUGIN_<KIND>`
//! variable, the cache, and Python's site-packages. There is deliberately no kind-independent
//! variable: one path cannot serve several kinds, and a CPU test must never pick up a GPU plugin.
//! [`resolve`] adds a one-time automatic install of every kind: the CPU plugins run on every
//! machine, and libtpu and the CUDA plugin compile for their devices on every machine (`effnetv2
//! compile`), so `cargo test` works on a fresh clone; `effnetv2 plugin install` installs ahead.

use std::env;
use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::str::FromStr;
use std::sync::OnceLock;

use anyhow::{bail, ensure, Context, Result};
use fs4::fs_std::FileExt;
use sha2::{Digest, Sha256};
use zip::ZipArchive;

/// Where the installer's progress notices go (a download starting, waiting for another
/// install): nowhere unless a handler is set, e.g. by the command-line tool.
static NOTICES: OnceLock<fn(&str)> = OnceLock::new();

/// Sets the handler of the installer's progress notices (the first call wins).
pub fn on_notice(handler: fn(&str)) {
    let _ = NOTICES.set(handler);
}

fn notice(message: &str) {
    if let Some(handler) = NOTICES.get() {
        handler(message);
    }
}

/// A backend whose PJRT plugin we know how to find and install.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginKind {
    /// The official OpenXLA CPU plugin (PJRT C API 0.81).
    Cpu,
    /// A CPU plugin built from jaxlib 0.11.2's XLA (PJRT C API 0.115): the newer XLA, and the
    /// default CPU backend (see [`PluginKind::DEFAULT`]).
    CpuJax,
    /// NVIDIA GPUs with CUDA 13.
    Cuda,
    /// Google TPUs.
    Tpu,
}

impl PluginKind {
    /// Every kind, in the order `effnetv2 plugin list` shows them.
    pub const ALL: [PluginKind; 4] = [Self::Cpu, Self::CpuJax, Self::Cuda, Self::Tpu];

    /// What commands use when no `--plugin` is given: its newer XLA runs and compiles the train
    /// steps faster than the `cpu` plugin's (compare `effnetv2 bench --plugin cpu` with `--plugin
    /// cpu-jax`; docs/measurements.md records the ratio).
    pub const DEFAULT: PluginKind = Self::CpuJax;

    /// The name used on the command line and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::CpuJax => "cpu-jax",
            Self::Cuda => "cuda",
            Self::Tpu => "tpu",
        }
    }

    /// The environment variable that points at a plugin file of this kind, overriding the cache.
    pub fn env_var(self) -> &'static str {
        match self {
            Self::Cpu => "EFFNETV2_PLUGIN_CPU",
            Self::CpuJax => "EFFNETV2_PLUGIN_CPU_JAX",
            Self::Cuda => "EFFNETV2_PLUGIN_CUDA",
            Self::Tpu => "EFFNETV2_PLUGIN_TPU",
        }
    }

    /// The wheel this kind is installed from.
    pub fn pin(self) -> &'static WheelPin<'static> {
        match self {
            Self::Cpu => &CPU_PIN,
            Self::CpuJax => &CPU_JAX_PIN,
            Self::Cuda => &CUDA_PIN,
            Self::Tpu => &TPU_PIN,
        }
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PluginKind {
    type Err = anyhow::Error;

    fn from_str(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.name() == name)
            .with_context(|| {
                let known: Vec<_> = Self::ALL.map(Self::name).into();
                format!("unknown plugin kind `{name}` (known: {})", known.join(", "))
            })
    }
}

/// One file an install takes from a wheel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WheelFile<'a> {
    /// Path inside the wheel.
    pub member: &'a str,
    /// Path under the install directory.
    pub path: &'a str,
    /// Installed as a program (a compiler the plugin runs), else as a library or data.
    pub executable: bool,
}

impl<'a> WheelFile<'a> {
    /// A library installed under its own file name.
    pub const fn library(member: &'a str, name: &'a str) -> WheelFile<'a> {
        WheelFile {
            member,
            path: name,
            executable: false,
        }
    }
}

/// One exact wheel on the Python package index and the files taken from it.
///
/// The pinned table uses `WheelPin<'static>`; tests build pins for wheels they make themselves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WheelPin<'a> {
    /// Distribution name as pip spells it, e.g. `xla-cpu-pjrt`.
    pub package: &'a str,
    pub version: &'a str,
    /// The wheel's compatibility tags (from its file name). `pip download` is told to pick exactly
    /// this build whatever the local Python and platform are: libtpu publishes one wheel per Python
    /// version, each with its own hash.
    pub python_tag: &'a str,
    pub abi_tag: &'a str,
    pub platform_tag: &'a str,
    /// Lowercase hex sha256 of the wheel file.
    pub sha256: &'a str,
    /// The files installed from the wheel; the first is what an install returns (a plugin's
    /// library).
    pub files: &'a [WheelFile<'a>],
}

static CPU_PIN: WheelPin<'static> = WheelPin {
    package: "xla-cpu-pjrt",
    version: "0.0.1",
    python_tag: "py3",
    abi_tag: "none",
    platform_tag: "manylinux_2_27_x86_64",
    sha256: "55837b6b7b47daa717f2d9a5a03563ea0ceaa338d06a81a1e2d3f060d960decc",
    files: &[WheelFile::library(
        "xla_plugins/xla_cpu_pjrt/xla_cpu_pjrt.so",
        "xla_cpu_pjrt.so",
    )],
};

static CPU_JAX_PIN: WheelPin<'static> = WheelPin {
    package: "lammps-jax-pjrt-cpu",
    version: "0.11.2",
    python_tag: "py3",
    abi_tag: "none",
    platform_tag: "manylinux_2_27_x86_64",
    sha256: "1319390d948b39f69f7dade496b7c385149d9ca6097a6b62114da113216d9ad1",
    files: &[WheelFile::library(
        "lammps_jax_pjrt_cpu/pjrt_c_api_cpu_plugin.so",
        "pjrt_c_api_cpu_plugin.so",
    )],
};

static CUDA_PIN: WheelPin<'static> = WheelPin {
    package: "jax-cuda13-pjrt",
    version: "0.12.0.1",
    python_tag: "py3",
    abi_tag: "none",
    platform_tag: "manylinux_2_27_x86_64",
    sha256: "5899bb6177eda86ea532afb9a26794f2bdd04966f6a01f9028266b16c2b6cf90",
    files: &[WheelFile::library(
        "jax_plugins/xla_cuda13/xla_cuda_plugin.so",
        "xla_cuda_plugin.so",
    )],
};

static TPU_PIN: WheelPin<'static> = WheelPin {
    package: "libtpu",
    version: "0.0.52",
    python_tag: "cp311",
    abi_tag: "cp311",
    platform_tag: "manylinux_2_31_x86_64",
    sha256: "f5e2e596eaea9357fbb5a6755a7a9007c6ab75bfde4a55191b03eff402971140",
    files: &[WheelFile::library("libtpu/libtpu.so", "libtpu.so")],
};

impl WheelPin<'_> {
    /// The pip requirement, `package==version`.
    pub fn requirement(&self) -> String {
        format!("{}=={}", self.package, self.version)
    }

    /// The wheel's file name (PEP 427: the distribution name with `-` written as `_`).
    pub fn file_name(&self) -> String {
        format!(
            "{}-{}-{}-{}-{}.whl",
            self.package.replace('-', "_"),
            self.version,
            self.python_tag,
            self.abi_tag,
            self.platform_tag
        )
    }

    /// The first file: a plugin's library.
    pub fn main_file(&self) -> &WheelFile<'_> {
        &self.files[0]
    }

    /// The file name of the first file, e.g. `xla_cpu_pjrt.so`.
    pub fn library_name(&self) -> &str {
        let path = self.main_file().path;
        path.rsplit_once('/').map_or(path, |(_, name)| name)
    }

    /// `pip download` options that select this wheel's tags instead of the running Python's.
    fn pip_target_args(&self) -> [&str; 8] {
        // A python tag is an implementation (`py`, `cp`) followed by the version digits (`3`,
        // `311`); pip reads `311` as 3.11.
        let digits = self
            .python_tag
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(self.python_tag.len());
        let (implementation, python_version) = self.python_tag.split_at(digits);
        // A compound tag (`manylinux2014_x86_64.manylinux_2_17_x86_64`) names one wheel for
        // several platforms; pip is told one of them.
        let platform = self.platform_tag.split('.').next().unwrap_or_default();
        [
            "--implementation",
            implementation,
            "--python-version",
            python_version,
            "--abi",
            self.abi_tag,
            "--platform",
            platform,
        ]
    }
}

/// Prefix of the scratch directories and temporary files an install creates inside a cache entry;
/// any left there by a crashed install are removed by the next one.
const SCRATCH_PREFIX: &str = ".partial-";

/// The per-user directory where installed plugins live, as
/// `<root>/plugins/<package>-<version>/<library>` next to a `wheel.sha256` record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    /// Overrides the cache root.
    pub const ENV_VAR: &'static str = "EFFNETV2_CACHE";

    /// A cache rooted at `root` (created on first install).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The user's cache: `$EFFNETV2_CACHE`, else `$XDG_CACHE_HOME/effnetv2`, else
    /// `~/.cache/effnetv2`.
    pub fn user_default() -> Result<Self> {
        default_cache_root(
            env::var_os(Self::ENV_VAR),
            env::var_os("XDG_CACHE_HOME"),
            env::var_os("HOME"),
        )
        .map(Self::new)
        .with_context(|| {
            format!(
                "cannot choose a cache directory for PJRT plugins: HOME is not set; set {} to a \
                 writable directory",
                Self::ENV_VAR
            )
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the first file of `pin` (a plugin's library) is (or would be) installed.
    pub fn library_path(&self, pin: &WheelPin<'_>) -> PathBuf {
        self.entry_dir(pin).join(pin.main_file().path)
    }

    /// The installed library of `pin`, if a complete install of exactly that wheel is present.
    pub fn lookup(&self, pin: &WheelPin<'_>) -> Result<Option<PathBuf>> {
        let record_path = self.record_path(pin);
        let record = match fs::read_to_string(&record_path) {
            Ok(record) => record,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => {
                return Err(err).with_context(|| format!("cannot read {}", record_path.display()))
            }
        };
        let entry = self.entry_dir(pin);
        let complete = record.split_whitespace().next() == Some(pin.sha256)
            && pin.files.iter().all(|f| entry.join(f.path).is_file());
        Ok(complete.then(|| self.library_path(pin)))
    }

    /// Installs the library of `pin` from `source` unless it is already installed (or always, with
    /// `force`), and returns its path.
    ///
    /// Safe to call from several threads and processes at once: a lock file per entry lets exactly
    /// one of them fetch while the others wait and then reuse its result. Files appear atomically,
    /// so a process that has the old library loaded keeps working during a forced reinstall.
    pub fn install(
        &self,
        pin: &WheelPin<'_>,
        source: &dyn WheelSource,
        force: bool,
    ) -> Result<PathBuf> {
        if !force {
            if let Some(library) = self.lookup(pin)? {
                return Ok(library);
            }
        }
        let entry = self.entry_dir(pin);
        fs::create_dir_all(&entry)
            .with_context(|| format!("cannot create the plugin cache {}", entry.display()))?;
        let _lock = lock_entry(&entry, pin)?;
        if !force {
            // Another process may have completed the same install while we waited.
            if let Some(library) = self.lookup(pin)? {
                return Ok(library);
            }
        }
        remove_scratch_left_by_crashes(&entry)?;
        let scratch = tempfile::Builder::new()
            .prefix(SCRATCH_PREFIX)
            .tempdir_in(&entry)
            .with_context(|| {
                format!("cannot create a download directory in {}", entry.display())
            })?;
        let wheel = source.fetch(pin, scratch.path())?;
        verify_sha256(&wheel, pin.sha256)?;
        for file in pin.files {
            let dest = entry.join(file.path);
            if let Some(dir) = dest.parent() {
                fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            extract_member(&wheel, file.member, &dest, file.executable)?;
        }
        // Written last: its presence marks the install as complete.
        write_atomically(&self.record_path(pin), |file| {
            writeln!(file, "{}  {}", pin.sha256, pin.file_name())?;
            Ok(())
        })?;
        Ok(self.library_path(pin))
    }

    /// The directory `pin`'s files are installed under.
    pub fn entry_dir(&self, pin: &WheelPin<'_>) -> PathBuf {
        self.root
            .join("plugins")
            .join(format!("{}-{}", pin.package, pin.version))
    }

    fn record_path(&self, pin: &WheelPin<'_>) -> PathBuf {
        self.entry_dir(pin).join("wheel.sha256")
    }
}

/// The cache root from the values of `EFFNETV2_CACHE`, `XDG_CACHE_HOME` and `HOME`; empty values
/// count as unset, and a relative `XDG_CACHE_HOME` is ignored as the XDG spec asks.
fn default_cache_root(
    explicit: Option<OsString>,
    xdg_cache_home: Option<OsString>,
    home: Option<OsString>,
) -> Option<PathBuf> {
    let set = |value: Option<OsString>| value.filter(|v| !v.is_empty()).map(PathBuf::from);
    set(explicit)
        .or_else(|| {
            set(xdg_cache_home)
                .filter(|dir| dir.is_absolute())
                .map(|dir| dir.join("effnetv2"))
        })
        .or_else(|| set(home).map(|home| home.join(".cache").join("effnetv2")))
}

/// Takes the entry's lock file, blocking while another thread or process holds it.
fn lock_entry(entry: &Path, pin: &WheelPin<'_>) -> Result<File> {
    let path = entry.join(".lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))?;
    let lock_error = || format!("cannot lock {}", path.display());
    if !file.try_lock_exclusive().with_context(lock_error)? {
        notice(&format!(
            "waiting for another install of {} to finish",
            pin.requirement()
        ));
        file.lock_exclusive().with_context(lock_error)?;
    }
    Ok(file)
}

/// Removes scratch files in `entry` that a crashed install left behind. Call with the entry locked.
fn remove_scratch_left_by_crashes(entry: &Path) -> Result<()> {
    let listing =
        fs::read_dir(entry).with_context(|| format!("cannot list {}", entry.display()))?;
    for item in listing {
        let item = item.with_context(|| format!("cannot list {}", entry.display()))?;
        if !item
            .file_name()
            .to_string_lossy()
            .starts_with(SCRATCH_PREFIX)
        {
            continue;
        }
        let path = item.path();
        let removed = if path.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        removed.with_context(|| format!("cannot remove {}", path.display()))?;
    }
    Ok(())
}

/// Lowercase hex sha256 of a file, read in a stream.
fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut hasher).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(format!("{:x}", hasher.finalize()))
}

fn verify_sha256(wheel: &Path, expected: &str) -> Result<()> {
    let actual = sha256_file(wheel)?;
    ensure!(
        actual.eq_ignore_ascii_case(expected),
        "sha256 mismatch for {}: the pin expects {expected}, the file has {actual}; it is not the \
         pinned wheel (corrupt download, or the index serves different bytes)",
        wheel.display()
    );
    Ok(())
}

/// Extracts one member of a zip archive to `dest`, decompressing in a stream (the CPU plugin is
/// 259 MB unpacked); the zip reader checks the member's CRC-32.
fn extract_member(wheel: &Path, member: &str, dest: &Path, executable: bool) -> Result<()> {
    let file = File::open(wheel).with_context(|| format!("cannot open {}", wheel.display()))?;
    let mut archive = ZipArchive::new(BufReader::new(file))
        .with_context(|| format!("{} is not a valid wheel (zip archive)", wheel.display()))?;
    let Some(index) = archive.index_for_name(member) else {
        let mut libraries: Vec<&str> = archive
            .file_names()
            .filter(|name| name.ends_with(".so"))
            .collect();
        libraries.sort_unstable();
        bail!(
            "wheel {} has no member {member} (shared libraries in it: {})",
            wheel.display(),
            if libraries.is_empty() {
                "none".to_owned()
            } else {
                libraries.join(", ")
            }
        );
    };
    let mut contents = archive
        .by_index(index)
        .with_context(|| format!("cannot read {member} in {}", wheel.display()))?;
    write_atomically(dest, |out| {
        io::copy(&mut contents, out)
            .with_context(|| format!("cannot extract {member} from {}", wheel.display()))?;
        if executable {
            out.set_permissions(Permissions::from_mode(0o755))
                .with_context(|| format!("cannot make {} executable", dest.display()))?;
        }
        Ok(())
    })
}

/// Writes `dest` through a temporary file in the same directory that is synced and then renamed
/// over it, so readers see either the old file or the complete new one.
fn write_atomically(dest: &Path, write: impl FnOnce(&mut File) -> Result<()>) -> Result<()> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    // Readable by everyone, as pip leaves installed files (a temporary file starts owner-only),
    // so a cache shared through EFFNETV2_CACHE serves a whole team; the umask still applies.
    let mut temp = tempfile::Builder::new()
        .prefix(SCRATCH_PREFIX)
        .permissions(Permissions::from_mode(0o644))
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    write(temp.as_file_mut())?;
    temp.as_file()
        .sync_all()
        .with_context(|| format!("cannot write {}", temp.path().display()))?;
    temp.persist(dest)
        .map_err(|err| err.error)
        .with_context(|| format!("cannot create {}", dest.display()))?;
    // The rename itself is durable only once the directory is synced.
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .with_context(|| format!("cannot sync {}", dir.display()))
}

/// Where [`Cache::install`] gets a wheel from.
pub trait WheelSource {
    /// Returns the path of the wheel for `pin`; a download goes into `scratch`, an empty directory
    /// that is deleted after the install. The caller checks the wheel's hash.
    fn fetch(&self, pin: &WheelPin<'_>, scratch: &Path) -> Result<PathBuf>;
}

impl<F: Fn(&WheelPin<'_>, &Path) -> Result<PathBuf>> WheelSource for F {
    fn fetch(&self, pin: &WheelPin<'_>, scratch: &Path) -> Result<PathBuf> {
        self(pin, scratch)
    }
}

/// A wheel file that is already on disk, e.g. downloaded on another machine for an offline one.
#[derive(Clone, Debug)]
pub struct LocalWheel(pub PathBuf);

impl WheelSource for LocalWheel {
    fn fetch(&self, _pin: &WheelPin<'_>, _scratch: &Path) -> Result<PathBuf> {
        Ok(self.0.clone())
    }
}

/// Downloads the wheel from the Python package index with `pip download`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Pip;

/// Ways to run pip, best first: `python3 -m pip` over a bare `pip` that may belong to another Python.
const PIP_COMMANDS: [(&str, &[&str]); 2] = [("python3", &["-m", "pip"]), ("pip", &[])];

impl WheelSource for Pip {
    fn fetch(&self, pin: &WheelPin<'_>, scratch: &Path) -> Result<PathBuf> {
        let requirement = pin.requirement();
        let Some((program, prefix)) = PIP_COMMANDS.into_iter().find(|(program, prefix)| {
            Command::new(program)
                .args(*prefix)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success())
        }) else {
            bail!(
                "downloading {requirement} from the Python package index needs pip, but neither \
                 `python3 -m pip` nor `pip` runs; install Python 3 with pip"
            );
        };
        let pip = format!("{program} {}", prefix.join(" "));
        let pip = pip.trim_end();
        let output = Command::new(program)
            .args(prefix)
            .args(["download", "--no-deps", "--only-binary=:all:"])
            .args(["--progress-bar", "off", "--disable-pip-version-check"])
            .args(pin.pip_target_args())
            .arg("--dest")
            .arg(scratch)
            .arg(&requirement)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot run `{pip}`"))?;
        ensure!(
            output.status.success(),
            "could not download {requirement} with `{pip} download`:\n  {}\nFetching a plugin \
             needs a network connection to the Python package index (https://pypi.org, or the \
             index pip is configured to use).",
            pip_error_summary(&output)
        );
        let wheel = scratch.join(pin.file_name());
        ensure!(
            wheel.is_file(),
            "`{pip} download {requirement}` did not produce {} (it wrote: {})",
            pin.file_name(),
            list_dir(scratch)
        );
        Ok(wheel)
    }
}

/// pip's `ERROR:` lines, or the end of its output when it printed none.
fn pip_error_summary(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("ERROR:"))
        .collect();
    let lines = if errors.is_empty() {
        let all: Vec<&str> = stderr
            .lines()
            .filter(|line| !line.trim().is_empty())
            .collect();
        all[all.len().saturating_sub(5)..].to_vec()
    } else {
        errors
    };
    if lines.is_empty() {
        format!("pip failed ({}) without a message", output.status)
    } else {
        lines.join("\n  ")
    }
}

fn list_dir(dir: &Path) -> String {
    let names: Vec<String> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|item| item.file_name().to_string_lossy().into_owned())
        .collect();
    if names.is_empty() {
        "nothing".to_owned()
    } else {
        names.join(", ")
    }
}

/// Where a plugin library was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A path the caller gave.
    Explicit,
    /// The kind's environment variable (its name).
    Env(&'static str),
    /// Our own cache, installed from the pinned wheel.
    Cache,
    /// A Python environment where the wheel is pip-installed; its version may differ from the pin.
    SitePackages,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Explicit => f.write_str("explicit path"),
            Self::Env(var) => write!(f, "env {var}"),
            Self::Cache => f.write_str("cache"),
            Self::SitePackages => f.write_str("site-packages"),
        }
    }
}

/// A plugin library and how it was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    pub path: PathBuf,
    pub source: Source,
}

/// Python environments that the `python3` on PATH does not report but where plugins are known to
/// be pip-installed: the GPU machines ship jax-cuda13-pjrt in this venv.
const KNOWN_SITE_DIRS: [&str; 1] = ["/opt/torch/.venv/lib/python3.12/site-packages"];

/// Prints the interpreter's site-packages directories and import path, one a line.
const SITE_DIRS_SCRIPT: &str = "import site, sys
print('\\n'.join([*getattr(site, 'getsitepackages', list)(), site.getusersitepackages(), *sys.path]))";

/// Everything plugin discovery consults, read from the process environment once.
#[derive(Debug)]
pub struct Locator {
    cache: Cache,
    /// The `EFFNETV2_PLUGIN_<KIND>` variables that are set.
    overrides: Vec<(PluginKind, PathBuf)>,
    /// Site-packages directories, asked from Python only when the cache misses.
    site_dirs: OnceLock<Vec<PathBuf>>,
}

impl Locator {
    /// Reads the plugin variables and the cache location from the environment.
    pub fn from_env() -> Result<Self> {
        let overrides = PluginKind::ALL
            .into_iter()
            .filter_map(|kind| {
                let path = env::var_os(kind.env_var()).filter(|value| !value.is_empty())?;
                Some((kind, PathBuf::from(path)))
            })
            .collect();
        Ok(Self {
            cache: Cache::user_default()?,
            overrides,
            site_dirs: OnceLock::new(),
        })
    }

    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Finds the plugin of `kind`: `explicit` if given, else the kind's environment variable, the
    /// cache, Python's site-packages. A path the user named that is not a file is an error, not a
    /// reason to look elsewhere.
    pub fn locate(&self, kind: PluginKind, explicit: Option<&Path>) -> Result<Option<Located>> {
        if let Some(path) = explicit {
            ensure!(
                path.is_file(),
                "the PJRT plugin {} given for `{kind}` is not a file",
                path.display()
            );
            return Ok(Some(Located {
                path: path.to_owned(),
                source: Source::Explicit,
            }));
        }
        if let Some((_, path)) = self.overrides.iter().find(|(k, _)| *k == kind) {
            ensure!(
                path.is_file(),
                "{}={} is not a file (it should name the PJRT plugin library of `{kind}`, {})",
                kind.env_var(),
                path.display(),
                kind.pin().library_name()
            );
            return Ok(Some(Located {
                path: path.clone(),
                source: Source::Env(kind.env_var()),
            }));
        }
        let pin = kind.pin();
        if let Some(path) = self.cache.lookup(pin)? {
            return Ok(Some(Located {
                path,
                source: Source::Cache,
            }));
        }
        Ok(self
            .site_dirs()
            .iter()
            .map(|dir| dir.join(pin.main_file().member))
            .find(|path| path.is_file())
            .map(|path| Located {
                path,
                source: Source::SitePackages,
            }))
    }

    /// The plugin of `kind`, installing the CPU plugins into the cache on first use.
    pub fn resolve(&self, kind: PluginKind) -> Result<PathBuf> {
        self.resolve_from(kind, &Pip)
    }

    fn resolve_from(&self, kind: PluginKind, source: &dyn WheelSource) -> Result<PathBuf> {
        if let Some(found) = self.locate(kind, None)? {
            return Ok(found.path);
        }
        let pin = kind.pin();
        notice(&format!(
            "PJRT plugin `{kind}` not found; installing {} into {} (one-time download)",
            pin.requirement(),
            self.cache.root().display()
        ));
        install_into(&self.cache, kind, source, false)
    }

    fn site_dirs(&self) -> &[PathBuf] {
        self.site_dirs.get_or_init(|| {
            let mut dirs = python_site_dirs("python3");
            dirs.extend(KNOWN_SITE_DIRS.map(PathBuf::from));
            dirs
        })
    }
}

/// The existing directories on `python`'s import path; none if it cannot run.
fn python_site_dirs(python: &str) -> Vec<PathBuf> {
    let output = Command::new(python)
        .args(["-c", SITE_DIRS_SCRIPT])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    let stdout = match output {
        Ok(output) if output.status.success() => output.stdout,
        _ => return Vec::new(),
    };
    let mut dirs: Vec<PathBuf> = Vec::new();
    for line in String::from_utf8_lossy(&stdout).lines() {
        let dir = PathBuf::from(line);
        if dir.is_absolute() && dir.is_dir() && !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    dirs
}

/// Finds the plugin of `kind` (see [`Locator::locate`]) using the process environment.
pub fn locate(kind: PluginKind, explicit: Option<&Path>) -> Result<Option<Located>> {
    Locator::from_env()?.locate(kind, explicit)
}

/// The path of the plugin of `kind`, for loading. Found as [`Locator::locate`] does; a missing CPU
/// plugin is downloaded into the user cache once (a notice goes to stderr), any other missing
/// plugin is an error that says how to install it.
pub fn resolve(kind: PluginKind) -> Result<PathBuf> {
    Locator::from_env()?.resolve(kind)
}

/// Installs the pinned wheel of `kind` from `source` into the user cache (see [`Cache::install`]).
pub fn install(kind: PluginKind, source: &dyn WheelSource, force: bool) -> Result<PathBuf> {
    install_into(&Cache::user_default()?, kind, source, force)
}

fn install_into(
    cache: &Cache,
    kind: PluginKind,
    source: &dyn WheelSource,
    force: bool,
) -> Result<PathBuf> {
    let pin = kind.pin();
    cache.install(pin, source, force).with_context(|| {
        format!(
            "could not install the PJRT plugin `{kind}` ({}). To use a plugin file you already \
             have, set {}=/path/to/{}; to install from a wheel downloaded elsewhere, run \
             `effnetv2 plugin install {kind} --wheel /path/to/{}`",
            pin.requirement(),
            kind.env_var(),
            pin.library_name(),
            pin.file_name()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread;
    use std::time::Duration;
    use zip::write::{SimpleFileOptions, ZipWriter};

    const FAKE_MEMBER: &str = "fake_plugin/libfake_plugin.so";
    const FAKE_FILES: &[WheelFile<'static>] =
        &[WheelFile::library(FAKE_MEMBER, "libfake_plugin.so")];

    /// Library bytes that compress (like a real one) and that no other test file shares.
    fn fake_library() -> Vec<u8> {
        (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect()
    }

    /// Writes a wheel holding `members` (name, contents), deflated as real wheels are.
    fn write_wheel(path: &Path, members: &[(&str, &[u8])]) {
        let mut zip = ZipWriter::new(File::create(path).unwrap());
        let options =
            SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for (name, contents) in members {
            zip.start_file(*name, options).unwrap();
            zip.write_all(contents).unwrap();
        }
        zip.finish().unwrap();
    }

    /// A wheel with the fake library and the metadata a real wheel has beside it.
    fn write_fake_wheel(path: &Path) {
        write_wheel(
            path,
            &[
                ("fake_plugin/__init__.py", b""),
                (FAKE_MEMBER, &fake_library()),
                (
                    "fake_plugin-1.0.dist-info/RECORD",
                    b"fake_plugin/__init__.py,,\n",
                ),
            ],
        );
    }

    fn fake_pin(sha256: &str) -> WheelPin<'_> {
        WheelPin {
            package: "fake-plugin",
            version: "1.0",
            python_tag: "py3",
            abi_tag: "none",
            platform_tag: "any",
            sha256,
            files: FAKE_FILES,
        }
    }

    /// A source that hands out `wheel` slowly (so that concurrent installs overlap) and counts
    /// how often it was asked.
    struct CountingSource {
        wheel: PathBuf,
        fetches: AtomicUsize,
    }

    impl WheelSource for CountingSource {
        fn fetch(&self, _pin: &WheelPin<'_>, _scratch: &Path) -> Result<PathBuf> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            thread::sleep(Duration::from_millis(200));
            Ok(self.wheel.clone())
        }
    }

    fn counting(wheel: PathBuf) -> CountingSource {
        CountingSource {
            wheel,
            fetches: AtomicUsize::new(0),
        }
    }

    #[test]
    fn pinned_file_names_are_the_wheels_in_the_spec() {
        // File names as listed with their hashes in shared/spec/pjrt.md.
        let expected = [
            (
                PluginKind::Cpu,
                "xla_cpu_pjrt-0.0.1-py3-none-manylinux_2_27_x86_64.whl",
            ),
            (
                PluginKind::CpuJax,
                "lammps_jax_pjrt_cpu-0.11.2-py3-none-manylinux_2_27_x86_64.whl",
            ),
            (
                PluginKind::Cuda,
                "jax_cuda13_pjrt-0.12.0.1-py3-none-manylinux_2_27_x86_64.whl",
            ),
            (
                PluginKind::Tpu,
                "libtpu-0.0.52-cp311-cp311-manylinux_2_31_x86_64.whl",
            ),
        ];
        for (kind, file_name) in expected {
            assert_eq!(kind.pin().file_name(), file_name);
            assert_eq!(kind.pin().sha256.len(), 64);
        }
        assert_eq!(PluginKind::Cpu.pin().library_name(), "xla_cpu_pjrt.so");
    }

    #[test]
    fn pip_is_told_the_wheel_tags() {
        assert_eq!(
            PluginKind::Tpu.pin().pip_target_args(),
            [
                "--implementation",
                "cp",
                "--python-version",
                "311",
                "--abi",
                "cp311",
                "--platform",
                "manylinux_2_31_x86_64"
            ]
        );
        assert_eq!(
            PluginKind::Cpu.pin().pip_target_args()[..4],
            ["--implementation", "py", "--python-version", "3"]
        );
    }

    #[test]
    fn kinds_parse_from_their_names() {
        for kind in PluginKind::ALL {
            assert_eq!(kind.name().parse::<PluginKind>().unwrap(), kind);
        }
        let err = "gpu".parse::<PluginKind>().unwrap_err().to_string();
        assert!(
            err.contains("`gpu`") && err.contains("cpu, cpu-jax, cuda, tpu"),
            "{err}"
        );
    }

    #[test]
    fn cache_root_prefers_explicit_then_xdg_then_home() {
        let os = |s: &str| Some(OsString::from(s));
        assert_eq!(
            default_cache_root(os("/c"), os("/x"), os("/h")),
            Some(PathBuf::from("/c"))
        );
        assert_eq!(
            default_cache_root(os(""), os("/x"), os("/h")),
            Some(PathBuf::from("/x/effnetv2"))
        );
        assert_eq!(
            default_cache_root(None, os("relative"), os("/h")),
            Some(PathBuf::from("/h/.cache/effnetv2"))
        );
        assert_eq!(default_cache_root(None, None, None), None);
    }

    #[test]
    fn install_extracts_the_member_once() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("fake.whl");
        write_fake_wheel(&wheel);
        let sha = sha256_file(&wheel).unwrap();
        let pin = fake_pin(&sha);
        let cache = Cache::new(dir.path().join("cache"));
        let source = counting(wheel);

        assert_eq!(cache.lookup(&pin).unwrap(), None);
        let library = cache.install(&pin, &source, false).unwrap();
        assert_eq!(
            library,
            dir.path()
                .join("cache/plugins/fake-plugin-1.0/libfake_plugin.so")
        );
        assert_eq!(fs::read(&library).unwrap(), fake_library());
        assert_eq!(cache.lookup(&pin).unwrap(), Some(library.clone()));

        assert_eq!(cache.install(&pin, &source, false).unwrap(), library);
        assert_eq!(source.fetches.load(Ordering::SeqCst), 1);
        assert_eq!(cache.install(&pin, &source, true).unwrap(), library);
        assert_eq!(source.fetches.load(Ordering::SeqCst), 2);
        // Nothing but the library, its record and the lock file stays behind.
        let mut names: Vec<String> = fs::read_dir(library.parent().unwrap())
            .unwrap()
            .map(|item| item.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort_unstable();
        assert_eq!(names, [".lock", "libfake_plugin.so", "wheel.sha256"]);
    }

    #[test]
    fn sha256_mismatch_is_an_error_naming_both_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("fake.whl");
        write_fake_wheel(&wheel);
        let actual = sha256_file(&wheel).unwrap();
        let pinned = "0".repeat(64);
        let pin = fake_pin(&pinned);
        let cache = Cache::new(dir.path().join("cache"));

        let err = cache
            .install(&pin, &LocalWheel(wheel), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains(&pinned) && err.contains(&actual), "{err}");
        assert!(err.contains("sha256 mismatch"), "{err}");
        assert_eq!(cache.lookup(&pin).unwrap(), None);
        assert!(!cache.library_path(&pin).exists());
    }

    #[test]
    fn sha256_matches_a_known_digest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abc");
        fs::write(&path, b"abc").unwrap();
        // FIPS 180-2 test vector.
        assert_eq!(
            sha256_file(&path).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn missing_member_is_an_error_listing_the_libraries() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("other.whl");
        write_wheel(
            &wheel,
            &[("other/libother.so", b"x"), ("other/__init__.py", b"")],
        );
        let sha = sha256_file(&wheel).unwrap();
        let pin = fake_pin(&sha);
        let cache = Cache::new(dir.path().join("cache"));

        let err = cache
            .install(&pin, &LocalWheel(wheel), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains(FAKE_MEMBER), "{err}");
        assert!(err.contains("other/libother.so"), "{err}");
        assert_eq!(cache.lookup(&pin).unwrap(), None);
    }

    #[test]
    fn concurrent_threads_install_once() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("fake.whl");
        write_fake_wheel(&wheel);
        let sha = sha256_file(&wheel).unwrap();
        let pin = fake_pin(&sha);
        let cache = Cache::new(dir.path().join("cache"));
        let source = counting(wheel);

        let libraries: Vec<PathBuf> = thread::scope(|scope| {
            let installs: Vec<_> = (0..6)
                .map(|_| scope.spawn(|| cache.install(&pin, &source, false).unwrap()))
                .collect();
            installs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(source.fetches.load(Ordering::SeqCst), 1);
        assert!(libraries.iter().all(|path| *path == libraries[0]));
        assert_eq!(fs::read(&libraries[0]).unwrap(), fake_library());
    }

    /// Set for the child processes of `concurrent_processes_install_once`: their shared directory.
    const CHILD_DIR_VAR: &str = "EFFNETV2_PROVISION_TEST_DIR";

    #[test]
    #[ignore = "run as a child process by concurrent_processes_install_once"]
    fn install_in_child_process() {
        let dir = PathBuf::from(env::var_os(CHILD_DIR_VAR).expect("set by the parent test"));
        let wheel = dir.join("fake.whl");
        let sha = sha256_file(&wheel).unwrap();
        let fetch = |_: &WheelPin<'_>, _: &Path| -> Result<PathBuf> {
            let mut log = OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("fetches.log"))?;
            writeln!(log, "{}", std::process::id())?;
            thread::sleep(Duration::from_millis(300));
            Ok(wheel.clone())
        };
        Cache::new(dir.join("cache"))
            .install(&fake_pin(&sha), &fetch, false)
            .unwrap();
    }

    #[test]
    fn concurrent_processes_install_once() {
        let dir = tempfile::tempdir().unwrap();
        write_fake_wheel(&dir.path().join("fake.whl"));
        let test_binary = env::current_exe().unwrap();
        let children: Vec<_> = (0..2)
            .map(|_| {
                Command::new(&test_binary)
                    .args([
                        "--exact",
                        "runtime::provision::tests::install_in_child_process",
                        "--ignored",
                        "--quiet",
                    ])
                    .env(CHILD_DIR_VAR, dir.path())
                    .stdout(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut child in children {
            assert!(child.wait().unwrap().success());
        }
        let log = fs::read_to_string(dir.path().join("fetches.log")).unwrap();
        assert_eq!(log.lines().count(), 1, "fetches by process: {log}");
        let sha = sha256_file(&dir.path().join("fake.whl")).unwrap();
        let library = Cache::new(dir.path().join("cache"))
            .lookup(&fake_pin(&sha))
            .unwrap()
            .expect("installed by a child");
        assert_eq!(fs::read(library).unwrap(), fake_library());
    }

    #[test]
    fn scratch_of_a_crashed_install_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("fake.whl");
        write_fake_wheel(&wheel);
        let sha = sha256_file(&wheel).unwrap();
        let pin = fake_pin(&sha);
        let cache = Cache::new(dir.path().join("cache"));
        let entry = cache.entry_dir(&pin);
        fs::create_dir_all(entry.join(".partial-download")).unwrap();
        fs::write(entry.join(".partial-library"), b"half").unwrap();

        cache.install(&pin, &LocalWheel(wheel), false).unwrap();
        assert!(!entry.join(".partial-download").exists());
        assert!(!entry.join(".partial-library").exists());
    }

    #[test]
    fn pip_failure_names_the_wheel_and_the_package_index() {
        let pin = WheelPin {
            version: "0.0.0.dev999",
            ..*PluginKind::Cpu.pin()
        };
        let scratch = tempfile::tempdir().unwrap();
        let err = Pip.fetch(&pin, scratch.path()).unwrap_err().to_string();
        assert!(err.contains("xla-cpu-pjrt==0.0.0.dev999"), "{err}");
        assert!(err.contains("Python package index"), "{err}");
    }

    #[test]
    fn failed_install_says_how_to_use_an_existing_plugin() {
        let dir = tempfile::tempdir().unwrap();
        let offline = |_: &WheelPin<'_>, _: &Path| -> Result<PathBuf> { bail!("network is down") };
        let err =
            install_into(&Cache::new(dir.path()), PluginKind::Cpu, &offline, false).unwrap_err();
        let message = format!("{err:#}");
        for expected in [
            "xla-cpu-pjrt==0.0.1",
            "EFFNETV2_PLUGIN_CPU=/path/to/xla_cpu_pjrt.so",
            "--wheel /path/to/xla_cpu_pjrt-0.0.1-py3-none-manylinux_2_27_x86_64.whl",
            "network is down",
        ] {
            assert!(message.contains(expected), "{message}");
        }
    }

    /// A locator that sees only `cache` and `site_dirs`, whatever the real environment holds.
    fn isolated_locator(cache: &Path, site_dirs: Vec<PathBuf>) -> Locator {
        Locator {
            cache: Cache::new(cache),
            overrides: Vec::new(),
            site_dirs: OnceLock::from(site_dirs),
        }
    }

    fn touch(path: &Path) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, b"plugin").unwrap();
    }

    #[test]
    fn locate_prefers_explicit_then_env_then_cache_then_site_packages() {
        let dir = tempfile::tempdir().unwrap();
        let kind = PluginKind::CpuJax;
        let pin = kind.pin();
        let site = dir.path().join("site-packages");
        let mut locator = isolated_locator(&dir.path().join("cache"), vec![site.clone()]);
        assert_eq!(locator.locate(kind, None).unwrap(), None);

        let in_site = site.join(pin.main_file().member);
        touch(&in_site);
        let found = |locator: &Locator, explicit| locator.locate(kind, explicit).unwrap().unwrap();
        assert_eq!(
            found(&locator, None),
            Located {
                path: in_site,
                source: Source::SitePackages
            }
        );

        // A cache entry counts only with its record of the pinned wheel's hash.
        let in_cache = locator.cache.library_path(pin);
        touch(&in_cache);
        assert_eq!(found(&locator, None).source, Source::SitePackages);
        fs::write(
            locator.cache.record_path(pin),
            format!("{}  x.whl\n", pin.sha256),
        )
        .unwrap();
        assert_eq!(
            found(&locator, None),
            Located {
                path: in_cache,
                source: Source::Cache
            }
        );

        let in_env = dir.path().join("env.so");
        touch(&in_env);
        locator
            .overrides
            .push((PluginKind::Cpu, dir.path().join("other.so")));
        locator.overrides.push((kind, in_env.clone()));
        assert_eq!(
            found(&locator, None),
            Located {
                path: in_env,
                source: Source::Env("EFFNETV2_PLUGIN_CPU_JAX")
            }
        );

        let explicit = dir.path().join("explicit.so");
        touch(&explicit);
        assert_eq!(
            found(&locator, Some(&explicit)),
            Located {
                path: explicit,
                source: Source::Explicit
            }
        );
    }

    #[test]
    fn paths_the_user_named_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let mut locator = isolated_locator(dir.path(), Vec::new());
        let missing = dir.path().join("missing.so");
        let err = locator
            .locate(PluginKind::Cpu, Some(&missing))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.so"), "{err}");

        locator.overrides.push((PluginKind::Tpu, missing));
        let err = locator
            .locate(PluginKind::Tpu, None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("EFFNETV2_PLUGIN_TPU=") && err.contains("libtpu.so"),
            "{err}"
        );
    }

    #[test]
    fn resolve_installs_every_kind_on_first_use() {
        let dir = tempfile::tempdir().unwrap();
        let locator = isolated_locator(dir.path(), Vec::new());
        let fetches = AtomicUsize::new(0);
        let offline = |_: &WheelPin<'_>, _: &Path| -> Result<PathBuf> {
            fetches.fetch_add(1, Ordering::SeqCst);
            bail!("network is down")
        };

        for (fetched, kind) in PluginKind::ALL.into_iter().enumerate() {
            let err = locator.resolve_from(kind, &offline).unwrap_err();
            let message = format!("{err:#}");
            assert!(
                message.contains("network is down") && message.contains(kind.env_var()),
                "{message}"
            );
            assert_eq!(fetches.load(Ordering::SeqCst), fetched + 1);
        }
    }

    #[test]
    fn python_site_dirs_tolerates_a_missing_python() {
        assert!(python_site_dirs("effnetv2-no-such-python").is_empty());
    }

    /// The path `cargo test` takes on a fresh clone: download the official CPU plugin (a 63 MB
    /// wheel) with pip into the user cache, unless it is already there.
    #[test]
    fn real_cpu_plugin_installs_into_the_user_cache() {
        let cache = Cache::user_default().unwrap();
        let library = install_into(&cache, PluginKind::Cpu, &Pip, false).unwrap();
        assert_eq!(library, cache.library_path(PluginKind::Cpu.pin()));
        let mut magic = [0u8; 4];
        io::Read::read_exact(&mut File::open(&library).unwrap(), &mut magic).unwrap();
        assert_eq!(&magic, b"\x7fELF");
        assert!(resolve(PluginKind::Cpu).unwrap().is_file());
    }
}
