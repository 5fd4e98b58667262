//! `vm-container boot` against a real kernel: Debian's cloud kernel (put in
//! target/boot-kernel/ by scripts/setup.sh, or wherever VMC_BOOT_KERNEL
//! says) boots domains built by containers under QEMU, with an initramfs
//! that `vm-container pack` makes here from busybox and the virtio modules
//! modules.dep names.

use crate::common;

use common::{bin, ok, root, tempdir};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// The busybox binary both the initramfs and the guest run.
const BUSYBOX: &str = "/bin/busybox";

/// One guest at a time: the machine is small and TCG is CPU bound, so
/// parallel boots would only make each one's timeout meaningless.
fn one_guest() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// The unpacked kernel package: (vmlinuz, lib/modules/VERSION).
fn kernel() -> (PathBuf, PathBuf) {
    let dir = std::env::var_os("VMC_BOOT_KERNEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/boot-kernel"));
    let find = |sub: &str, prefix: &str| -> Option<PathBuf> {
        std::fs::read_dir(dir.join(sub))
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
            })
    };
    let vmlinuz = find("boot", "vmlinuz-");
    let modules = find("lib/modules", "");
    match (vmlinuz, modules) {
        (Some(k), Some(m)) if m.join("modules.dep").exists() => (k, m),
        _ => panic!(
            "no kernel with modules.dep under {}: run scripts/setup.sh (or set VMC_BOOT_KERNEL)",
            dir.display()
        ),
    }
}

/// The modules to load for `names`, dependencies first, as modules.dep
/// lists them (paths relative to the modules directory). A module built
/// into the kernel (modules.builtin) needs nothing.
fn module_chain(modules: &Path, names: &[&str]) -> Vec<String> {
    let dep = std::fs::read_to_string(modules.join("modules.dep")).expect("modules.dep");
    let builtin = std::fs::read_to_string(modules.join("modules.builtin")).unwrap_or_default();
    let table: Vec<(String, Vec<String>)> = dep
        .lines()
        .filter_map(|l| {
            let (m, d) = l.split_once(':')?;
            Some((
                m.to_string(),
                d.split_whitespace().map(String::from).collect(),
            ))
        })
        .collect();
    let base = |p: &str| {
        let f = p.rsplit('/').next().unwrap_or(p);
        f.split(".ko").next().unwrap_or(f).replace('-', "_")
    };
    fn visit(m: &str, table: &[(String, Vec<String>)], out: &mut Vec<String>, depth: usize) {
        assert!(depth < 64, "modules.dep: a dependency loop at {m}");
        if out.iter().any(|o| o == m) {
            return;
        }
        let deps = &table
            .iter()
            .find(|(n, _)| n == m)
            .expect("in modules.dep")
            .1;
        for d in deps {
            visit(d, table, out, depth + 1);
        }
        out.push(m.to_string());
    }
    let mut out = Vec::new();
    for name in names {
        match table.iter().find(|(p, _)| base(p) == *name) {
            Some((p, _)) => visit(p, &table, &mut out, 0),
            None => assert!(
                builtin.lines().any(|l| base(l) == *name),
                "{name}: neither a module in modules.dep nor built in"
            ),
        }
    }
    out
}

/// The initramfs, built once per test run with `vm-container pack` from
/// examples/trees/boot-initramfs, busybox and the modules the virtio disk
/// and ext3 need on this kernel.
fn initramfs() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let (_, modules) = kernel();
        let parent = root().join("target/boot-test");
        // what earlier runs left
        for e in std::fs::read_dir(&parent).into_iter().flatten().flatten() {
            let pid = e
                .file_name()
                .to_string_lossy()
                .rsplit('-')
                .next()
                .map(str::to_string);
            if pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists()) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        let work = parent.join(format!("initramfs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&work);
        let tree = work.join("tree");
        std::fs::create_dir_all(tree.join("lib/modules")).unwrap();
        std::fs::create_dir_all(tree.join("bin")).unwrap();
        std::fs::create_dir_all(tree.join("etc")).unwrap();
        std::fs::copy(
            root().join("examples/trees/boot-initramfs/init"),
            tree.join("init"),
        )
        .unwrap();
        std::fs::copy(BUSYBOX, tree.join("bin/busybox")).unwrap();
        // ext4 drives ext3 file systems; on the cloud kernel it is built in
        let chain = module_chain(&modules, &["virtio_pci", "virtio_blk", "ext4"]);
        let mut order = String::new();
        for rel in &chain {
            let src = modules.join(rel);
            let name = rel.rsplit('/').next().unwrap();
            // busybox insmod takes plain .ko files; newer kernels compress them
            let plain = if let Some(stem) = name.strip_suffix(".xz") {
                decompress("xz", &src, &tree.join("lib/modules").join(stem));
                stem.to_string()
            } else if let Some(stem) = name.strip_suffix(".zst") {
                decompress("zstd", &src, &tree.join("lib/modules").join(stem));
                stem.to_string()
            } else {
                std::fs::copy(&src, tree.join("lib/modules").join(name)).unwrap();
                name.to_string()
            };
            order.push_str(&plain);
            order.push('\n');
        }
        std::fs::write(tree.join("etc/modules"), order).unwrap();
        let out = work.join("initrd.cpio.gz");
        ok(&bin().arg("pack").arg(&tree).arg(&out).output().unwrap());
        out
    })
    .clone()
}

fn decompress(tool: &str, src: &Path, dst: &Path) {
    let out = Command::new(tool).arg("-dc").arg(src).output().unwrap();
    assert!(out.status.success(), "{tool} -dc {}", src.display());
    std::fs::write(dst, out.stdout).unwrap();
}

/// A container for the test domain: a busybox root tree packed by
/// [create], busybox copied in, the hostname replaced, an ext3 image
/// populated. `root` and `more` vary per test.
fn domain(dir: &Path, root_setting: &str, more: &str) -> PathBuf {
    let (vmlinuz, _) = kernel();
    let text = format!(
        r#"name = "fido"
memory = 256
vcpus = 1
kernel = "{kernel}"
ramdisk = "{initrd}"
{root_setting}
extra = "console=hvc0"
disk = [ 'file:build/fido-root,xvda1,w' ]
vif = [ 'mac=00:16:3e:00:00:01, bridge=xenbr0' ]

[create {tree} build/root.cpio.gz][end]
[copy /bin/busybox archive build/root.cpio.gz mode 0755 {busybox}][end]
[replace /etc/hostname archive build/root.cpio.gz

FCDOBBS
] [end]
[image build/fido-root 32MB fido_root][end]
[populate image build/fido-root /mnt/ build/root.cpio.gz][end]
{more}"#,
        kernel = vmlinuz.display(),
        initrd = initramfs().display(),
        tree = root().join("examples/trees/boot-root").display(),
        busybox = BUSYBOX,
    );
    let path = dir.join("fido.vmc");
    std::fs::write(&path, text).unwrap();
    path
}

fn boot_cmd(config: &Path, work: &Path) -> Command {
    let mut c = bin();
    c.arg("boot")
        .arg(config)
        .arg("--dir")
        .arg(work.join("vmc"))
        .arg("--trust-dir")
        .arg(work.join("no-keys"));
    c
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The figure `boot` prints when every expected text appeared.
fn seconds_seen(err: &str) -> f64 {
    err.lines()
        .find_map(|l| l.strip_prefix("boot: every expected text seen after "))
        .and_then(|r| r.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no boot time in: {err}"))
}

/// The QEMU pid `boot` announces.
fn qemu_pid(line: &str) -> Option<u32> {
    line.strip_prefix("boot: qemu pid ")?
        .split(' ')
        .next()?
        .parse()
        .ok()
}

/// Whether a process is alive (a zombie awaiting its reaper is not).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // the state follows the parenthesised command name
        Ok(s) => s
            .rsplit(')')
            .next()
            .is_some_and(|r| !r.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn gone_within(pid: u32, limit: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    !alive(pid)
}

#[test]
#[ignore = "root tier: boots QEMU with the kernel scripts/setup.sh fetches"]
fn a_container_domain_boots_and_its_init_prints_the_hostname() {
    let t = tempdir();
    let cfg = domain(t.path(), r#"root = "/dev/xvda1 ro""#, "");
    let console = t.path().join("console.log");
    let _g = one_guest();
    let started = Instant::now();
    let out = boot_cmd(&cfg, t.path())
        .args([
            "--expect",
            "guest: hostname FCDOBBS",
            "--expect",
            "guest: init done",
        ])
        .arg("--console")
        .arg(&console)
        .args(["--timeout", "90"])
        .output()
        .unwrap();
    let err = ok(&out);
    let text = std::fs::read_to_string(&console).unwrap();
    assert!(text.contains("guest: hostname FCDOBBS"), "{text}");
    // the kernel took `vm-container pack` output as its initramfs
    assert!(!text.contains("Initramfs unpacking failed"), "{text}");
    assert!(
        text.contains("initramfs: root /dev/vda is /dev/vda"),
        "{text}"
    );
    // the mapping is printed: Xen names to the guest's virtio names
    assert!(err.contains("boot: disk xvda1 -> /dev/vda ("), "{err}");
    assert!(err.contains("raw, rw)"), "{err}");
    assert!(
        err.contains("boot: vif 0 -> virtio-net eth0, user-mode network, mac 00:16:3e:00:00:01"),
        "{err}"
    );
    assert!(
        err.contains("boot: cmdline: root=/dev/vda ro console=ttyS0"),
        "{err}"
    );
    assert!(
        err.contains("bridge=xenbr0 → QEMU user-mode network"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "the console went to --console");
    eprintln!(
        "boot to `guest: init done`: {:.1} s in the guest, {:.1} s with the build",
        seconds_seen(&err),
        started.elapsed().as_secs_f64()
    );
    // normal exit leaves no QEMU behind
    let pid = err.lines().find_map(qemu_pid).expect("qemu pid");
    assert!(!alive(pid), "QEMU {pid} outlived vm-container");
    // a second boot finds the domain up to date and streams to stdout
    let out = boot_cmd(&cfg, t.path())
        .args(["--expect", "FCDOBBS", "--timeout", "90"])
        .output()
        .unwrap();
    let err = ok(&out);
    assert!(err.contains("up to date"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("FCDOBBS"));
}

#[test]
#[ignore = "root tier: boots QEMU with the kernel scripts/setup.sh fetches"]
fn the_example_boots() {
    let t = tempdir();
    // the example's relative paths, made absolute so its outputs land here
    let text = std::fs::read_to_string(root().join("examples/containers/boot-test.vmc"))
        .unwrap()
        .replace(
            "../trees/",
            &format!("{}/", root().join("examples/trees").display()),
        )
        .replace(
            "../../target/",
            &format!("{}/", root().join("target").display()),
        );
    let cfg = t.path().join("boot-test.vmc");
    std::fs::write(&cfg, text).unwrap();
    let mut cmd = boot_cmd(&cfg, t.path());
    cmd.arg("--set")
        .arg(format!("dir={}", t.path().join("build").display()));
    if std::env::var_os("VMC_BOOT_KERNEL").is_some() {
        // the example's defaults name the kernel scripts/setup.sh unpacks
        let (vmlinuz, modules) = kernel();
        cmd.arg("--set")
            .arg(format!("kernel={}", vmlinuz.display()))
            .arg("--set")
            .arg(format!("modules={}", modules.display()));
    }
    let _g = one_guest();
    cmd.args(["--timeout", "120"]);
    let out = Command::new(cmd.get_program())
        .args(cmd.get_args())
        .args(["--expect", "guest: hostname FCDOBBS"])
        .output()
        .unwrap();
    let err = ok(&out);
    eprintln!(
        "examples/containers/boot-test.vmc: {:.1} s",
        seconds_seen(&err)
    );
    // without --expect the run lasts until the guest powers off
    let out = cmd.output().unwrap();
    let err = ok(&out);
    assert!(err.contains("boot: the guest stopped after"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("guest: init done"));
}

#[test]
#[ignore = "root tier: boots QEMU with the kernel scripts/setup.sh fetches"]
fn a_patched_domain_has_its_user() {
    let t = tempdir();
    let patch = t.path().join("users.patch");
    std::fs::write(
        &patch,
        "--- a/etc/passwd\n+++ b/etc/passwd\n@@ -1,2 +1,3 @@\n root:x:0:0:root:/root:/bin/sh\n daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n+fido:x:1000:1000:Fido:/home/fido:/bin/sh\n",
    )
    .unwrap();
    let cfg = domain(
        t.path(),
        r#"root = "LABEL=fido_root ro""#,
        &format!("[patch build/fido-root {}][end]\n", patch.display()),
    );
    let _g = one_guest();
    let out = boot_cmd(&cfg, t.path())
        .args([
            "--expect",
            "guest: passwd fido:x:1000:1000:Fido:/home/fido:/bin/sh",
        ])
        .args(["--expect", "guest: hostname FCDOBBS", "--timeout", "90"])
        .output()
        .unwrap();
    let err = ok(&out);
    let console = String::from_utf8_lossy(&out.stdout);
    assert!(
        console.contains("initramfs: root LABEL=fido_root is /dev/vda"),
        "{console}"
    );
    eprintln!("patched domain: {:.1} s", seconds_seen(&err));
}

#[test]
#[ignore = "root tier: boots QEMU with the kernel scripts/setup.sh fetches"]
fn the_guest_turns_on_a_swap_image() {
    let t = tempdir();
    let cfg = domain(
        t.path(),
        r#"root = "LABEL=fido_root ro""#,
        "[image build/fido-swap 16MB fido_swap fs swap][end]\n",
    );
    // the swap image is the domain's second disk
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "disk = [ 'file:build/fido-root,xvda1,w' ]",
        "disk = [ 'file:build/fido-root,xvda1,w', 'file:build/fido-swap,xvdb,w' ]",
    );
    std::fs::write(&cfg, text).unwrap();
    let _g = one_guest();
    let out = boot_cmd(&cfg, t.path())
        .args(["--expect", "guest: swaps /dev/vdb"])
        .args(["--expect", "guest: hostname FCDOBBS", "--timeout", "90"])
        .output()
        .unwrap();
    let err = ok(&out);
    assert!(
        err.contains("xvdb"),
        "the mapping names the swap disk: {err}"
    );
    let console = String::from_utf8_lossy(&out.stdout);
    assert!(console.contains("initramfs: swap /dev/vdb on"), "{console}");
    // 16 MiB less the header page, in KiB, as the kernel counts it
    assert!(console.contains("16380"), "{console}");
}

#[test]
#[ignore = "root tier: boots QEMU with the kernel scripts/setup.sh fetches"]
fn a_wrong_root_panics_and_fails_within_the_timeout() {
    let t = tempdir();
    // no disk entry is xvdb1: the initramfs finds no root, the kernel panics
    let cfg = domain(t.path(), r#"root = "/dev/xvdb1 ro""#, "");
    let _g = one_guest();
    let started = Instant::now();
    let out = boot_cmd(&cfg, t.path())
        .args(["--expect", "guest: hostname", "--timeout", "90"])
        .output()
        .unwrap();
    let took = started.elapsed();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(took < Duration::from_secs(90), "{took:?}");
    assert!(
        err.contains("root=/dev/xvdb1: no disk entry has that device"),
        "{err}"
    );
    assert!(
        err.contains("error: the guest kernel panicked after"),
        "{err}"
    );
    // the last console lines show the panic and why
    assert!(err.contains("Kernel panic - not syncing"), "{err}");
    assert!(
        err.contains("initramfs: root /dev/xvdb1 not found"),
        "{err}"
    );
    eprintln!("panic reported after {:.1} s", took.as_secs_f64());
}

/// A plain config (no expressions) booting the domain's kernel with no
/// disk: the initramfs waits for a root that never comes.
fn plain_config(dir: &Path) -> PathBuf {
    let (vmlinuz, _) = kernel();
    let cfg = dir.join("plain.cfg");
    std::fs::write(
        &cfg,
        format!(
            "name = \"plain\"\nmemory = 128\nkernel = \"{}\"\nramdisk = \"{}\"\nextra = \"console=hvc0\"\n",
            vmlinuz.display(),
            initramfs().display()
        ),
    )
    .unwrap();
    cfg
}

#[test]
#[ignore = "root tier: boots QEMU with the kernel scripts/setup.sh fetches"]
fn the_timeout_is_honoured_within_two_seconds() {
    let t = tempdir();
    let cfg = plain_config(t.path());
    let _g = one_guest();
    let started = Instant::now();
    let out = boot_cmd(&cfg, t.path())
        .args(["--expect", "never printed", "--timeout", "3"])
        .output()
        .unwrap();
    let took = started.elapsed();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("error: timeout after 3 s: `never printed` did not appear"),
        "{err}"
    );
    assert!(
        took < Duration::from_secs(5),
        "took {took:?} for --timeout 3"
    );
    let pid = err.lines().find_map(qemu_pid).expect("qemu pid");
    assert!(!alive(pid), "QEMU {pid} outlived the timeout");
}

/// Starts a boot that would run for a minute, and returns it with QEMU's pid
/// once QEMU is running and the console has started.
fn start_long_boot(t: &Path) -> (Child, u32) {
    let cfg = plain_config(t);
    let mut child = boot_cmd(&cfg, t)
        .args(["--expect", "never printed", "--timeout", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let pid = loop {
        line.clear();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "boot ended before QEMU started"
        );
        if let Some(p) = qemu_pid(line.trim_end()) {
            break p;
        }
    };
    // wait for the console: QEMU is past its start-up
    let mut out = BufReader::new(child.stdout.take().unwrap());
    line.clear();
    assert!(out.read_line(&mut line).unwrap() > 0, "no console");
    assert!(alive(pid));
    // keep draining both pipes so nothing blocks on a full pipe
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    (child, pid)
}

#[test]
#[ignore = "root tier: boots QEMU with the kernel scripts/setup.sh fetches"]
fn no_qemu_survives_sigkill_of_vm_container() {
    let t = tempdir();
    let _g = one_guest();
    let (mut child, pid) = start_long_boot(t.path());
    let vmc = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(vmc, rustix::process::Signal::KILL).unwrap();
    let st = child.wait().unwrap();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&st), Some(9));
    assert!(
        gone_within(pid, Duration::from_secs(5)),
        "QEMU {pid} survived kill -9 of vm-container"
    );
}

#[test]
#[ignore = "root tier: boots QEMU with the kernel scripts/setup.sh fetches"]
fn sigint_stops_qemu_and_exits() {
    let t = tempdir();
    let _g = one_guest();
    let (mut child, pid) = start_long_boot(t.path());
    let vmc = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    let sent = Instant::now();
    rustix::process::kill_process(vmc, rustix::process::Signal::INT).unwrap();
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(130));
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "{:?}",
        sent.elapsed()
    );
    // vm-container reaped QEMU itself before exiting
    assert!(!alive(pid), "QEMU {pid} survived SIGINT of vm-container");
    let (mut child, pid) = start_long_boot(t.path());
    let vmc = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(vmc, rustix::process::Signal::TERM).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(143));
    assert!(!alive(pid), "QEMU {pid} survived SIGTERM of vm-container");
}

#[test]
#[ignore = "root tier: boots QEMU with the kernel scripts/setup.sh fetches"]
fn unmappable_settings_get_one_line_each() {
    let t = tempdir();
    let cfg = t.path().join("hvm.cfg");
    std::fs::write(
        &cfg,
        "name = \"h\"\nbuilder = \"hvm\"\nkernel = \"/k\"\npci = [ '0000:00:1f.2' ]\n",
    )
    .unwrap();
    let out = boot_cmd(&cfg, t.path()).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines.iter().any(|l| l.starts_with(&format!(
            "error: {}: builder = \"hvm\": an HVM guest boots firmware",
            cfg.display()
        ))),
        "{err}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with("pci: PCI passthrough needs a Xen host; refused")),
        "{err}"
    );
    std::fs::write(
        &cfg,
        "name = \"p\"\nbootloader = \"pygrub\"\ndisk = [ '/x,,xvda,w' ]\n",
    )
    .unwrap();
    let out = boot_cmd(&cfg, t.path()).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("bootloader = \"pygrub\" with no kernel"),
        "{err}"
    );
    // an approximation is a note and the boot goes on (here to a missing kernel)
    std::fs::write(
        &cfg,
        "name = \"p\"\nkernel = \"/nonexistent/vmlinuz\"\nmaxmem = 512\n",
    )
    .unwrap();
    let out = boot_cmd(&cfg, t.path()).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("maxmem: ignored; the guest gets `memory`"),
        "{err}"
    );
    assert!(
        err.contains("error: kernel: /nonexistent/vmlinuz: No such file"),
        "{err}"
    );
}

#[test]
#[ignore = "root tier: boots QEMU with the kernel scripts/setup.sh fetches"]
fn accel_kvm_boots_or_says_why_not() {
    let t = tempdir();
    let cfg = domain(t.path(), r#"root = "/dev/xvda1 ro""#, "");
    let _g = one_guest();
    let out = boot_cmd(&cfg, t.path())
        .args([
            "--accel",
            "kvm",
            "--expect",
            "guest: hostname FCDOBBS",
            "--timeout",
            "60",
        ])
        .output()
        .unwrap();
    let err = stderr(&out);
    if out.status.success() {
        eprintln!("KVM boot: {:.1} s", seconds_seen(&err));
    } else {
        // where KVM cannot run a kernel the refusal is one clear line
        assert_eq!(out.status.code(), Some(1), "{err}");
        let last = err.lines().last().unwrap_or("");
        assert!(last.starts_with("error: --accel kvm: "), "{err}");
        eprintln!("KVM unusable here: {last}");
    }
}

#[test]
#[ignore = "root tier: boots QEMU with the kernel scripts/setup.sh fetches"]
fn require_signatures_checks_the_config_before_anything() {
    let t = tempdir();
    let cfg = t.path().join("signed.cfg");
    std::fs::write(
        &cfg,
        "name = \"s\"\nkernel = \"/k\"\ndisk = [ '/d,,xvda1,w' ]\n",
    )
    .unwrap();
    let (public, secret) = (t.path().join("k.pub"), t.path().join("k.sec"));
    ok(&bin()
        .arg("keygen")
        .arg("-p")
        .arg(&public)
        .arg("-s")
        .arg(&secret)
        .output()
        .unwrap());
    let boot = || {
        boot_cmd(&cfg, t.path())
            .arg("--require-signatures")
            .arg("--trust")
            .arg(&public)
            .arg("--dry-run")
            .output()
            .unwrap()
    };
    let out = boot();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("missing signature"), "{err}");
    assert!(
        !err.contains("boot: disk"),
        "mapped before the signature was checked: {err}"
    );
    ok(&bin()
        .arg("sign")
        .arg("-s")
        .arg(&secret)
        .arg(&cfg)
        .output()
        .unwrap());
    let out = boot();
    let err = ok(&out);
    assert!(
        err.contains("boot: disk xvda1 -> /dev/vda (/d, raw, rw)"),
        "{err}"
    );
}

/// The paper's Figure 1 domain from a Debian minbase with systemd
/// (bench/boot-minbase.sh: debootstrap takes minutes, cached under target/).
#[test]
#[ignore = "root tier: debootstraps a Debian minbase and boots it under QEMU"]
fn a_debootstrapped_minbase_reaches_its_login_prompt() {
    let _g = one_guest();
    let out = Command::new("bash")
        .arg(root().join("bench/boot-minbase.sh"))
        .env("TIMEOUT", "120")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(text.contains("minbase: \"FCDOBBS login:\" after"), "{text}");
    eprintln!("{}", text.lines().last().unwrap_or(""));
}
