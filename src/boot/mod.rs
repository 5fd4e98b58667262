//! What a Xen PV domain config means to QEMU: the pure mapping from parsed
//! settings to a direct-kernel-boot invocation of `qemu-system-x86_64`.
//!
//! This module knows nothing about containers and does no I/O: relative
//! paths are joined to a base directory given by the caller, and whatever
//! cannot be mapped is either noted with the approximation made or
//! refused, one line each.

pub mod disk;
#[cfg(test)]
mod tests;

use crate::xen::Value;
use disk::DiskSpec;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// How QEMU runs the guest's instructions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// One `disk =` entry as the guest will see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disk {
    pub spec: DiskSpec,
    /// The target, resolved (relative to the config's directory; `phy:`
    /// targets relative to `/dev/`).
    pub path: PathBuf,
    /// The virtio name the guest gives it: `vda`, `vdb`, ...
    pub guest: String,
}

/// One `vif =` entry: a user-mode network device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nic {
    pub mac: Option<String>,
}

/// The QEMU invocation a domain config maps to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub name: Option<String>,
    pub kernel: PathBuf,
    pub ramdisk: Option<PathBuf>,
    /// The guest's kernel command line, device names already rewritten.
    pub cmdline: String,
    pub memory_mib: u64,
    pub vcpus: u32,
    pub disks: Vec<Disk>,
    pub nics: Vec<Nic>,
    /// What was approximated, one line each (`setting: what was done`).
    pub notes: Vec<String>,
}

/// Settings that cannot be mapped, one line each.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct Refused(pub Vec<String>);

/// Xen's default when `memory` is not given.
const DEFAULT_MEMORY_MIB: u64 = 128;

/// Settings that give a guest host hardware; a QEMU guest has none.
const PASSTHROUGH: &[(&str, &str)] = &[
    ("pci", "PCI passthrough needs a Xen host"),
    ("irqs", "interrupt passthrough needs a Xen host"),
    ("iomem", "I/O memory passthrough needs a Xen host"),
    ("ioports", "I/O port passthrough needs a Xen host"),
    ("dtdev", "device-tree passthrough needs a Xen host"),
    ("usbdev", "USB passthrough needs a Xen host"),
];

/// Settings that change nothing the boot test observes; noted as ignored.
const IGNORED: &[(&str, &str)] = &[
    ("maxmem", "ignored; the guest gets `memory`"),
    ("maxvcpus", "ignored; the guest gets `vcpus`"),
    ("cpus", "ignored; QEMU does not pin vCPUs"),
    ("vfb", "ignored; no display, the console is the serial line"),
    ("vnc", "ignored; no display, the console is the serial line"),
    ("sdl", "ignored; no display, the console is the serial line"),
    ("vtpm", "ignored; no TPM"),
    ("channel", "ignored; no Xen channels"),
    ("p9", "ignored; no 9p shares"),
    (
        "on_reboot",
        "the run ends when the guest stops (QEMU -no-reboot)",
    ),
    (
        "on_crash",
        "the run ends when the guest stops (QEMU -no-reboot)",
    ),
];

impl Plan {
    /// Maps parsed settings (as [`crate::xen::apply_all`] returns them).
    /// `base` is the directory relative paths are taken from.
    pub fn from_settings(settings: &BTreeMap<String, Value>, base: &Path) -> Result<Plan, Refused> {
        let mut refused = Vec::new();
        let mut notes = Vec::new();
        let text = |key: &str| -> Option<String> {
            settings
                .get(key)
                .and_then(Value::scalar_text)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
        };
        for key in ["type", "builder"] {
            match text(key).as_deref() {
                Some("hvm") => refused.push(format!(
                    "{key} = \"hvm\": an HVM guest boots firmware, not a kernel; only PV (and PVH) domains are booted"
                )),
                Some("pvh") => notes.push(format!(
                    "{key} = \"pvh\": booted as a PV domain (direct kernel boot)"
                )),
                _ => {}
            }
        }
        for (key, why) in PASSTHROUGH {
            if settings.get(*key).is_some_and(|v| !is_empty_list(v)) {
                refused.push(format!("{key}: {why}; refused"));
            }
        }
        for (key, how) in IGNORED {
            if settings.contains_key(*key) {
                notes.push(format!("{key}: {how}"));
            }
        }
        let bootloader = text("bootloader");
        let kernel = match (text("kernel"), &bootloader) {
            (Some(k), Some(b)) => {
                notes.push(format!(
                    "bootloader = \"{b}\": ignored, the kernel is booted directly"
                ));
                Some(k)
            }
            (Some(k), None) => Some(k),
            (None, Some(b)) => {
                refused.push(format!(
                    "bootloader = \"{b}\" with no kernel: QEMU boots a kernel directly and cannot run a Xen bootloader; refused (give kernel = and ramdisk =)"
                ));
                None
            }
            (None, None) => {
                refused.push("no kernel: a PV domain needs kernel = \"PATH\"".to_string());
                None
            }
        };
        let memory_mib = match text("memory") {
            None => {
                notes.push(format!(
                    "memory: not given; {DEFAULT_MEMORY_MIB} MiB, as xl"
                ));
                DEFAULT_MEMORY_MIB
            }
            Some(m) => match m.trim().parse::<u64>() {
                Ok(n) if n > 0 => n,
                _ => {
                    refused.push(format!("memory = {m}: expected a number of MiB"));
                    0
                }
            },
        };
        let vcpus = match text("vcpus") {
            None => 1,
            Some(v) => match v.trim().parse::<u32>() {
                Ok(n) if (1..=255).contains(&n) => n,
                _ => {
                    refused.push(format!("vcpus = {v}: expected 1 to 255"));
                    0
                }
            },
        };
        let mut disks = Vec::new();
        for (i, entry) in list_items(settings.get("disk")).into_iter().enumerate() {
            let entry = match entry {
                Some(e) => e,
                None => {
                    refused.push(format!("disk entry {}: not a string", i + 1));
                    continue;
                }
            };
            match disk::parse(&entry) {
                Ok(spec) => {
                    if let Some(s) = &spec.script {
                        notes.push(format!(
                            "disk {}: script={s} not run; the target is opened as a file",
                            spec.vdev
                        ));
                    }
                    if spec.cdrom {
                        notes.push(format!(
                            "disk {}: a CD-ROM, attached as a read-only virtio disk",
                            spec.vdev
                        ));
                    }
                    let t = Path::new(&spec.target);
                    let path = if t.is_absolute() {
                        t.to_path_buf()
                    } else if spec.phy {
                        Path::new("/dev").join(t)
                    } else {
                        base.join(t)
                    };
                    disks.push(Disk {
                        guest: disk::virtio_name(disks.len()),
                        path,
                        spec,
                    });
                }
                Err(e) => refused.push(format!("disk '{entry}': {e}")),
            }
        }
        let mut nics = Vec::new();
        for (i, entry) in list_items(settings.get("vif")).into_iter().enumerate() {
            let Some(entry) = entry else {
                refused.push(format!("vif entry {}: not a string", i + 1));
                continue;
            };
            match parse_vif(&entry) {
                Ok((nic, approximated)) => {
                    if !approximated.is_empty() {
                        notes.push(format!(
                            "vif {i}: {} → QEMU user-mode network (NAT, no bridge)",
                            approximated.join(", ")
                        ));
                    }
                    nics.push(nic);
                }
                Err(e) => refused.push(format!("vif '{entry}': {e}")),
            }
        }
        let cmdline = compose_cmdline(
            text("cmdline").as_deref(),
            text("root").as_deref(),
            text("extra").as_deref(),
            &mut notes,
        );
        let cmdline = rewrite_cmdline(&cmdline, &disks, &mut notes);
        if !refused.is_empty() {
            return Err(Refused(refused));
        }
        let Some(kernel) = kernel else {
            return Err(Refused(vec!["no kernel".into()]));
        };
        Ok(Plan {
            name: text("name"),
            kernel: base.join(kernel),
            ramdisk: text("ramdisk").map(|r| base.join(r)),
            cmdline,
            memory_mib,
            vcpus,
            disks,
            nics,
            notes,
        })
    }

    /// One line per device: how a Xen name reaches the guest.
    pub fn mapping(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for d in &self.disks {
            lines.push(format!(
                "disk {} -> /dev/{} ({}, {}, {})",
                d.spec.vdev,
                d.guest,
                d.path.display(),
                d.spec.format.xen_name(),
                if d.spec.read_only { "ro" } else { "rw" }
            ));
        }
        for (i, n) in self.nics.iter().enumerate() {
            lines.push(format!(
                "vif {i} -> virtio-net eth{i}, user-mode network{}",
                n.mac
                    .as_deref()
                    .map(|m| format!(", mac {m}"))
                    .unwrap_or_default()
            ));
        }
        lines.push(format!("cmdline: {}", self.cmdline));
        lines
    }

    /// The arguments of `qemu-system-x86_64`. The console is the first
    /// serial port on QEMU's standard output; QEMU's own messages go to
    /// its standard error.
    pub fn qemu_args(&self, accel: Accel) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut push = |s: &str| a.push(OsString::from(s));
        // nothing the config does not ask for: no default NIC, VGA, floppy
        push("-nodefaults");
        push("-no-user-config");
        push("-display");
        push("none");
        push("-monitor");
        push("none");
        push("-serial");
        push("stdio");
        // a guest that reboots (or panics with panic=N) ends the run
        push("-no-reboot");
        push("-accel");
        push(accel.name());
        if accel == Accel::Kvm {
            push("-cpu");
            push("host");
        }
        push("-m");
        push(&self.memory_mib.to_string());
        push("-smp");
        push(&self.vcpus.to_string());
        if let Some(n) = &self.name {
            push("-name");
            push(&n.replace(',', ",,"));
        }
        a.push("-kernel".into());
        a.push(self.kernel.clone().into_os_string());
        if let Some(r) = &self.ramdisk {
            a.push("-initrd".into());
            a.push(r.clone().into_os_string());
        }
        a.push("-append".into());
        a.push(self.cmdline.clone().into());
        for (i, d) in self.disks.iter().enumerate() {
            let mut drive = OsString::from("file=");
            // QEMU's option syntax doubles a comma inside a value
            drive.push(escape_commas(d.path.as_os_str()));
            drive.push(format!(
                ",format={},if=none,id=disk{i}{}",
                d.spec.format.qemu_name(),
                if d.spec.read_only { ",readonly=on" } else { "" }
            ));
            a.push("-drive".into());
            a.push(drive);
            a.push("-device".into());
            a.push(format!("virtio-blk-pci,drive=disk{i}").into());
        }
        for (i, n) in self.nics.iter().enumerate() {
            a.push("-netdev".into());
            a.push(format!("user,id=net{i}").into());
            a.push("-device".into());
            a.push(
                format!(
                    "virtio-net-pci,netdev=net{i}{}",
                    n.mac
                        .as_deref()
                        .map(|m| format!(",mac={m}"))
                        .unwrap_or_default()
                )
                .into(),
            );
        }
        a
    }
}

fn escape_commas(s: &std::ffi::OsStr) -> OsString {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let mut out = Vec::new();
    for &b in s.as_bytes() {
        out.push(b);
        if b == b',' {
            out.push(b',');
        }
    }
    OsString::from_vec(out)
}

fn is_empty_list(v: &Value) -> bool {
    matches!(v, Value::List(l) if l.is_empty())
}

/// The entries of a list setting (a lone string counts as one entry, as
/// xl reads it); `None` for an entry that is not a string.
fn list_items(v: Option<&Value>) -> Vec<Option<String>> {
    let text = |v: &Value| {
        v.scalar_text()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    };
    match v {
        None => Vec::new(),
        Some(Value::List(items)) => items.iter().map(text).collect(),
        Some(other) => vec![text(other)],
    }
}

/// xl.cfg(5): `cmdline` wins; else `root=` + root, then extra.
pub fn compose_cmdline(
    cmdline: Option<&str>,
    root: Option<&str>,
    extra: Option<&str>,
    notes: &mut Vec<String>,
) -> String {
    if let Some(c) = cmdline {
        if root.is_some() || extra.is_some() {
            notes.push("cmdline: given, so root and extra are ignored (as xl does)".into());
        }
        return c.to_string();
    }
    match (root, extra) {
        (Some(r), Some(e)) => format!("root={r} {e}"),
        (Some(r), None) => format!("root={r}"),
        (None, Some(e)) => e.to_string(),
        (None, None) => String::new(),
    }
}

/// Rewrites Xen device names and the Xen console for the QEMU guest:
/// `root=/dev/xvda1` names the virtio disk the entry became, and
/// `console=hvc0` (Xen's PV console) becomes the first serial port.
pub fn rewrite_cmdline(cmdline: &str, disks: &[Disk], notes: &mut Vec<String>) -> String {
    let mut words: Vec<String> = Vec::new();
    let mut has_console = false;
    for w in cmdline.split_ascii_whitespace() {
        if let Some(dev) = w.strip_prefix("root=/dev/") {
            match guest_device(dev, disks) {
                Some(g) => words.push(format!("root=/dev/{g}")),
                None => {
                    if disk::split_vdev(dev).is_some() {
                        notes.push(format!(
                            "root=/dev/{dev}: no disk entry has that device; left as written"
                        ));
                    }
                    words.push(w.to_string());
                }
            }
            continue;
        }
        if let Some(c) = w.strip_prefix("console=") {
            has_console = true;
            if c == "hvc0" || c.starts_with("hvc0,") || c == "xvc0" {
                words.push("console=ttyS0".into());
                continue;
            }
        }
        words.push(w.to_string());
    }
    if !has_console {
        // a PV guest's console is hvc0 by default; here it is the serial port
        words.push("console=ttyS0".into());
    }
    words.join(" ")
}

/// The guest name of a Xen device: the entry itself (`xvda1` → `vda`), or
/// a partition of a whole-disk entry (`xvda2` of `xvda` → `vda2`).
fn guest_device(dev: &str, disks: &[Disk]) -> Option<String> {
    if let Some(d) = disks.iter().find(|d| d.spec.vdev == dev) {
        return Some(d.guest.clone());
    }
    let (name, part) = disk::split_vdev(dev)?;
    let part = part?;
    disks
        .iter()
        .find(|d| disk::split_vdev(&d.spec.vdev) == Some((name, None)))
        .map(|d| format!("{}{part}", d.guest))
}

/// A `vif` entry: its MAC is kept; bridge, IP and script are approximated
/// by the user-mode network (returned so they can be noted).
fn parse_vif(entry: &str) -> Result<(Nic, Vec<String>), String> {
    let mut mac = None;
    let mut approximated = Vec::new();
    for part in entry.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let (k, v) = (k.trim(), v.trim());
        match k {
            "mac" => {
                if !is_mac(v) {
                    return Err(format!(
                        "mac `{v}`: expected six hex pairs, like 00:16:3e:00:00:01"
                    ));
                }
                mac = Some(v.to_ascii_lowercase());
            }
            "bridge" | "ip" | "script" | "gatewaydev" | "vifname" | "rate" | "backend" => {
                approximated.push(part.to_string())
            }
            _ => {}
        }
    }
    Ok((Nic { mac }, approximated))
}

fn is_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// True when the console text shows a kernel panic.
pub fn is_panic(line: &str) -> bool {
    line.contains("Kernel panic")
}
