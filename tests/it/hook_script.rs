//! examples/hooks/block-vmcontainer, driven as Xen's hotplug machinery
//! drives it, with a stand-in for block-common.sh whose xenstore is a
//! directory: `add` refreshes the image and hands a loop device to the
//! backend, `remove` releases it.

use crate::common;

use common::{bin, root, tempdir};
use std::fs;
use std::process::Command;

const FAKE_BLOCK_COMMON: &str = r#"
command="$1"
store="$FAKE_XENSTORE"
xenstore_read() { cat "$store/$(echo "$1" | tr / _)"; }
xenstore_read_default() { cat "$store/$(echo "$1" | tr / _)" 2>/dev/null || echo "$2"; }
xenstore_write() { printf '%s' "$2" > "$store/$(echo "$1" | tr / _)"; }
write_dev() { printf '%s' "$1" > "$store/physical-device"; }
fatal() { echo "FATAL: $*" >&2; exit 1; }
log() { shift; echo "LOG: $*" >&2; }
"#;

#[test]
#[ignore = "root tier: attaches the image to a loop device (losetup) and logs to /var/log"]
fn the_block_script_refreshes_the_image_and_attaches_it() {
    let t = tempdir();
    let w = t.path();
    let scripts = w.join("scripts");
    let store = w.join("xenstore");
    fs::create_dir_all(&scripts).unwrap();
    fs::create_dir_all(&store).unwrap();
    fs::write(scripts.join("block-common.sh"), FAKE_BLOCK_COMMON).unwrap();
    let archive = w.join("base.cpio.gz");
    let st = bin()
        .arg("pack")
        .arg(root().join("examples/trees/base"))
        .arg(&archive)
        .status()
        .unwrap();
    assert!(st.success());
    let img = w.join("fido-root");
    fs::write(
        w.join("fido-root.vmc"),
        format!(
            "[image {img} 8M fido][end]\n[populate image {img} /mnt {a}][end]\n",
            img = img.display(),
            a = archive.display()
        ),
    )
    .unwrap();
    let bus = "backend/vbd/7/51713";
    let key = |k: &str| store.join(format!("{bus}/{k}").replace('/', "_"));
    fs::write(key("params"), img.to_str().unwrap()).unwrap();
    fs::write(key("mode"), "w").unwrap();
    let script = root().join("examples/hooks/block-vmcontainer");
    let run = |cmd: &str| {
        Command::new("bash")
            .arg(&script)
            .arg(cmd)
            .env("XEN_SCRIPT_DIR", &scripts)
            .env("FAKE_XENSTORE", &store)
            .env("XENBUS_PATH", bus)
            .env("VMC_BIN", env!("CARGO_BIN_EXE_vm-container"))
            .env("VMC_DIR", w.join("cache"))
            .output()
            .unwrap()
    };
    let out = run("add");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dev = fs::read_to_string(store.join("physical-device")).unwrap();
    assert!(dev.starts_with("/dev/loop"), "{dev}");
    let back = Command::new("losetup")
        .arg("-n")
        .arg("-O")
        .arg("BACK-FILE")
        .arg(&dev)
        .output()
        .unwrap();
    let backing = String::from_utf8_lossy(&back.stdout).trim().to_string();
    let remove = run("remove");
    assert!(
        remove.status.success(),
        "{}",
        String::from_utf8_lossy(&remove.stderr)
    );
    assert_eq!(backing, img.to_str().unwrap());
    // the image exists, is clean and holds the tree
    let fsck = Command::new("e2fsck")
        .arg("-fn")
        .arg(&img)
        .status()
        .unwrap();
    assert!(fsck.success());
    let cat = bin()
        .arg("cat")
        .arg(&img)
        .arg("/etc/HOSTNAME")
        .output()
        .unwrap();
    assert_eq!(cat.stdout, b"localhost\n");
    // the loop device is released
    let still = Command::new("losetup")
        .arg("-j")
        .arg(&img)
        .output()
        .unwrap();
    assert!(
        still.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&still.stdout)
    );
}
