//! Python reference environments for the tests: a virtual environment per set of pinned
//! requirements, created once in the user cache and shared by the test processes that need it.

use std::path::PathBuf;
use std::process::Command;

use fs4::fs_std::FileExt;

/// The Python of the virtual environment `name` in the user cache, with `requirements` installed.
/// Created under a lock file, so concurrent test processes install it once; an `installed` file
/// records the requirements, so a changed pin reinstalls.
pub fn venv_python(name: &str, requirements: &[&str]) -> PathBuf {
    let venv = effnetv2::data::cache_dir().unwrap().join(name);
    std::fs::create_dir_all(&venv).unwrap();
    let lock = std::fs::File::create(venv.with_extension("lock")).unwrap();
    lock.lock_exclusive().unwrap();
    let python = venv.join("bin/python");
    let done = venv.join("installed");
    let pins = requirements.join(" ");
    if std::fs::read_to_string(&done).ok().as_deref() != Some(pins.as_str()) {
        let run = |command: &mut Command| {
            let output = command.output().unwrap();
            assert!(output.status.success(), "{command:?}: {output:?}");
        };
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
        run(Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(requirements));
        std::fs::write(&done, pins).unwrap();
    }
    python
}
