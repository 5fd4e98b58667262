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
