//! Running the binary on containers and comparing trees: helpers shared
//! by the tests that build images and directories from archives.

use std::path::Path;
use std::process::{Command, Output};
use vm_container::tree::manifest::{differences, manifest, Manifest};
use vm_container::tree::TreePath;

/// A finished command, its exit code and both outputs, for a message.
pub fn show(cmd: &Command, out: &Output) -> String {
    format!(
        "{:?} exited {:?}\nstdout:\n{}\nstderr:\n{}",
        cmd,
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd`, asserts it succeeded; returns its standard output.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    assert!(out.status.success(), "{}", show(cmd, &out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a shell script in `dir`, asserts it succeeded.
pub fn sh_ok(script: &str, dir: &Path) -> String {
    run_ok(Command::new("sh").arg("-c").arg(script).current_dir(dir))
}

/// The word after `key` (`Mode:`, `User:`) in debugfs's `stat` output.
pub fn stat_field<'a>(stat: &'a str, key: &str) -> &'a str {
    let mut words = stat.split_whitespace();
    words
        .by_ref()
        .find(|w| *w == key)
        .and_then(|_| words.next())
        .unwrap_or_else(|| panic!("no {key} in {stat}"))
}

/// `vm-container --container C --dir W [extra...]`, without
/// `SOURCE_DATE_EPOCH` so that mtimes are kept as they are.
pub fn vmc(container: &Path, workdir: &Path) -> Command {
    let mut c = super::bin();
    c.env_remove("SOURCE_DATE_EPOCH")
        .arg("--container")
        .arg(container)
        .arg("--dir")
        .arg(workdir);
    c
}

/// The manifest of a host directory.
pub fn tree_of(dir: &Path) -> Manifest {
    manifest(&mut vm_container::hostdir::Walker::new(dir)).unwrap()
}

/// The manifest of an ext2/3/4 image, read without mounting it.
pub fn image_tree(img: &Path) -> Manifest {
    let mut vol = vm_container::ext::Volume::open(std::fs::File::open(img).unwrap()).unwrap();
    manifest(&mut vol).unwrap()
}

/// The manifest without the root entry and `lost+found`.
pub fn without_root(mut m: Manifest) -> Manifest {
    m.remove(&TreePath::root());
    let lf = TreePath::from_member(b"lost+found").unwrap();
    m.retain(|p, _| !p.starts_with(&lf));
    m
}

/// Asserts two manifests are equal, listing the first differences.
pub fn assert_same(a: &Manifest, b: &Manifest, what: &str) {
    let d = differences(a, b);
    assert!(
        d.is_empty(),
        "{what}: {} differences, first ones:\n{}",
        d.len(),
        d.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
}

/// The 512-byte sectors a file of an image takes, as debugfs counts them.
pub fn blockcount(img: &Path, path: &str) -> u64 {
    let stat = run_ok(
        Command::new("debugfs")
            .arg("-R")
            .arg(format!("stat {path}"))
            .arg(img),
    );
    stat.split_whitespace()
        .skip_while(|w| *w != "Blockcount:")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no Blockcount in {stat}"))
}

/// A container file and the work directory it runs with: the "write a
/// container, run it, check the exit code and the message" block.
pub struct Job {
    pub container: std::path::PathBuf,
    pub workdir: std::path::PathBuf,
}

impl Job {
    /// Writes `text` to `dir/name`; it runs with `--dir dir/work`.
    pub fn new(dir: &Path, name: &str, text: &str) -> Job {
        let container = dir.join(name);
        std::fs::write(&container, text).unwrap();
        Job {
            container,
            workdir: dir.join("work"),
        }
    }

    /// The command that runs it (see [`vmc`]).
    pub fn command(&self) -> Command {
        vmc(&self.container, &self.workdir)
    }

    /// Runs it and asserts it succeeded; returns its standard error.
    pub fn ok(&self) -> String {
        let mut cmd = self.command();
        let out = cmd.output().expect("run");
        assert!(out.status.success(), "{}", show(&cmd, &out));
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Runs it and asserts it exited with `code`; returns its standard
    /// error.
    pub fn fails(&self, code: i32) -> String {
        let mut cmd = self.command();
        let out = cmd.output().expect("run");
        assert_eq!(out.status.code(), Some(code), "{}", show(&cmd, &out));
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

/// Extracts a cpio.gz archive with GNU cpio into `dir`.
pub fn gnu_extract(archive: &Path, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let sh = format!(
        "gzip -dc '{}' | cpio -idm --quiet --no-absolute-filenames",
        archive.display()
    );
    sh_ok(&sh, dir);
}

/// Sets the mtime of `p` itself (not of what a symlink points to).
pub fn set_mtime(p: &Path, secs: i64) {
    let stamp = format!("@{secs}");
    run_ok(Command::new("touch").arg("-h").arg("-d").arg(stamp).arg(p));
}
