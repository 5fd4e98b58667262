//! One `disk =` entry as xl-disk-configuration(5) reads it: comma-separated
//! positional parameters (`target, format, vdev, access`), `key=value`
//! pairs, flags, and the deprecated `prefix:` forms of the target.

/// The image formats a disk may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Raw,
    Qcow,
    Qcow2,
    Vhd,
}

impl Format {
    fn parse(s: &str) -> Option<Format> {
        match s {
            "raw" => Some(Format::Raw),
            "qcow" => Some(Format::Qcow),
            "qcow2" => Some(Format::Qcow2),
            "vhd" => Some(Format::Vhd),
            _ => None,
        }
    }

    /// QEMU's name for the format (`vpc` is QEMU's word for VHD).
    pub fn qemu_name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Qcow => "qcow",
            Format::Qcow2 => "qcow2",
            Format::Vhd => "vpc",
        }
    }

    pub fn xen_name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Qcow => "qcow",
            Format::Qcow2 => "qcow2",
            Format::Vhd => "vhd",
        }
    }
}

/// A parsed disk entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskSpec {
    pub target: String,
    pub format: Format,
    pub vdev: String,
    pub read_only: bool,
    pub cdrom: bool,
    /// `phy:` or `backendtype=phy`: a relative target lives under `/dev/`.
    pub phy: bool,
    /// `script=`: a hotplug script xl would run to make the target.
    pub script: Option<String>,
}

/// The deprecated target prefixes and the format each implies. With one
/// of them the `format` positional parameter is skipped, so the legacy
/// `file:/img,xvda1,w` is target, vdev, access.
const PREFIXES: &[(&str, Format, bool)] = &[
    ("tap2:tapdisk:aio:", Format::Raw, false),
    ("tap2:aio:", Format::Raw, false),
    ("tap:tapdisk:aio:", Format::Raw, false),
    ("tap:aio:", Format::Raw, false),
    ("tap:qcow2:", Format::Qcow2, false),
    ("tap:qcow:", Format::Qcow, false),
    ("tap:vhd:", Format::Vhd, false),
    ("tapdisk:aio:", Format::Raw, false),
    ("aio:", Format::Raw, false),
    ("file:", Format::Raw, false),
    ("phy:", Format::Raw, true),
    ("raw:", Format::Raw, false),
    ("qcow2:", Format::Qcow2, false),
    ("qcow:", Format::Qcow, false),
    ("vhd:", Format::Vhd, false),
];

/// Parses one entry; the error says what is wrong in a few words.
pub fn parse(spec: &str) -> Result<DiskSpec, String> {
    let mut target: Option<String> = None;
    let mut format: Option<Format> = None;
    let mut vdev: Option<String> = None;
    let mut access: Option<String> = None;
    let mut cdrom = false;
    let mut phy = false;
    let mut script = None;
    let mut positional = 0usize;
    let mut prefixed = false;
    // `target=` takes the rest of the string, commas included
    let (head, tail_target) = match find_target_key(spec) {
        Some(i) => (&spec[..i], Some(spec[i + "target=".len()..].to_string())),
        None => (spec, None),
    };
    for raw in head.split(',') {
        let p = raw.trim();
        if let Some((k, v)) = p.split_once('=') {
            let v = v.trim();
            match k.trim() {
                "format" => format = Some(parse_format(v)?),
                "vdev" => vdev = Some(v.to_string()),
                "access" => access = Some(v.to_string()),
                "devtype" => cdrom = v == "cdrom",
                "backendtype" => phy = v == "phy",
                "script" => script = Some(v.to_string()),
                // backend domain, discard, direct-io and the like change
                // nothing a guest sees
                _ => {}
            }
            continue;
        }
        match p {
            "cdrom" => {
                cdrom = true;
                continue;
            }
            "discard" | "no-discard" | "direct-io-safe" | "colo" | "no-colo" => continue,
            _ => {}
        }
        // positional: target, format, vdev, access, each slot once
        loop {
            match positional {
                0 if target.is_none() => {
                    let (t, f, is_phy) = strip_prefix(p);
                    if let Some(f) = f {
                        prefixed = true;
                        format = Some(f);
                    }
                    phy |= is_phy;
                    target = Some(t.to_string());
                }
                1 if !prefixed && format.is_none() => {
                    if !p.is_empty() {
                        format = Some(parse_format(p)?);
                    }
                }
                2 if vdev.is_none() => {
                    // the deprecated `hdc:cdrom`
                    let (v, kind) = p.split_once(':').unwrap_or((p, ""));
                    cdrom |= kind == "cdrom";
                    vdev = Some(v.to_string());
                }
                3 if access.is_none() => {
                    if p == "cdrom" {
                        cdrom = true;
                    } else if !p.is_empty() {
                        access = Some(p.to_string());
                    }
                }
                0..=3 => {
                    positional += 1;
                    continue;
                }
                _ => return Err(format!("`{p}`: too many positional parameters")),
            }
            positional += 1;
            break;
        }
    }
    if let Some(t) = tail_target {
        let (t, f, is_phy) = strip_prefix(t.trim());
        if let Some(f) = f {
            format = Some(f);
        }
        phy |= is_phy;
        target = Some(t.to_string());
    }
    let vdev = vdev
        .filter(|v| !v.is_empty())
        .ok_or_else(|| "no vdev (the guest device name)".to_string())?;
    let target = target
        .filter(|t| !t.is_empty())
        .ok_or_else(|| format!("{vdev}: no target (an empty drive)"))?;
    let read_only = match access.as_deref() {
        None => cdrom,
        Some("r" | "ro") => true,
        Some("w" | "rw" | "w!" | "rw!") => false,
        Some(a) => return Err(format!("{vdev}: access `{a}`: expected r, ro, w or rw")),
    };
    Ok(DiskSpec {
        target,
        format: format.unwrap_or(Format::Raw),
        vdev,
        read_only,
        cdrom,
        phy,
        script,
    })
}

fn find_target_key(spec: &str) -> Option<usize> {
    let mut at = 0;
    for part in spec.split(',') {
        let t = part.trim_start();
        if t.starts_with("target=") {
            return Some(at + (part.len() - t.len()));
        }
        at += part.len() + 1;
    }
    None
}

fn parse_format(s: &str) -> Result<Format, String> {
    Format::parse(s).ok_or_else(|| format!("format `{s}`: expected raw, qcow, qcow2 or vhd"))
}

fn strip_prefix(t: &str) -> (&str, Option<Format>, bool) {
    for (p, f, phy) in PREFIXES {
        if let Some(rest) = t.strip_prefix(p) {
            return (rest, Some(*f), *phy);
        }
    }
    (t, None, false)
}

/// A Xen device name split into its disk and partition: `xvda1` is disk
/// `xvda`, partition 1; `sdb` is the whole disk `sdb`.
pub fn split_vdev(vdev: &str) -> Option<(&str, Option<u32>)> {
    let rest = ["xvd", "sd", "hd"]
        .iter()
        .find_map(|p| vdev.strip_prefix(p))?;
    let letters = rest.bytes().take_while(u8::is_ascii_lowercase).count();
    if letters == 0 {
        return None;
    }
    let (disk, part) = vdev.split_at(vdev.len() - rest.len() + letters);
    if part.is_empty() {
        return Some((disk, None));
    }
    if !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse()
        .ok()
        .filter(|&n| n > 0)
        .map(|n| (disk, Some(n)))
}

/// The N-th virtio disk's name: vda … vdz, vdaa …, as Linux names them.
pub fn virtio_name(index: usize) -> String {
    let mut n = index;
    let mut letters = Vec::new();
    loop {
        letters.push(b'a' + (n % 26) as u8);
        if n < 26 {
            break;
        }
        n = n / 26 - 1;
    }
    letters.reverse();
    format!("vd{}", String::from_utf8_lossy(&letters))
}
