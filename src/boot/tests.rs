use super::disk::{self, Format};
use super::*;

fn plan(text: &str) -> Result<Plan, Refused> {
    let (stmts, errs) = crate::xen::parse_config(text);
    assert!(errs.is_empty(), "{errs:?}");
    let settings = crate::xen::apply_all(&stmts).expect("apply");
    Plan::from_settings(&settings, Path::new("/cfg"))
}

fn args(p: &Plan, accel: Accel) -> Vec<String> {
    p.qemu_args(accel)
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

fn after<'a>(a: &'a [String], flag: &str) -> Vec<&'a str> {
    a.windows(2)
        .filter(|w| w[0] == flag)
        .map(|w| w[1].as_str())
        .collect()
}

#[test]
fn disk_positional_forms() {
    let d = disk::parse("/dev/vg/guest-volume,,hda").unwrap();
    assert_eq!(
        (d.target.as_str(), d.vdev.as_str()),
        ("/dev/vg/guest-volume", "hda")
    );
    assert_eq!((d.format, d.read_only), (Format::Raw, false));
    let d = disk::parse("/img,qcow2,xvdb,r").unwrap();
    assert_eq!(
        (d.format, d.vdev.as_str(), d.read_only),
        (Format::Qcow2, "xvdb", true)
    );
    // deprecated prefix: the format slot is skipped
    let d = disk::parse("file:build/fido-etc,xvda1,w").unwrap();
    assert_eq!(
        (d.target.as_str(), d.vdev.as_str(), d.read_only),
        ("build/fido-etc", "xvda1", false)
    );
    let d = disk::parse("tap:qcow2:/i.qcow2,sda1,r").unwrap();
    assert_eq!(
        (d.format, d.read_only, d.target.as_str()),
        (Format::Qcow2, true, "/i.qcow2")
    );
    let d = disk::parse("phy:vg/root,hda2,w").unwrap();
    assert!(d.phy);
    let d = disk::parse("raw:/root/image.iso,hdc:cdrom,ro").unwrap();
    assert!(d.cdrom && d.read_only);
    assert_eq!(d.vdev, "hdc");
}

#[test]
fn disk_key_value_forms() {
    let d = disk::parse("format=raw, vdev=hda, access=rw, target=/dev/vg/guest-volume").unwrap();
    assert_eq!(
        (d.target.as_str(), d.vdev.as_str(), d.read_only),
        ("/dev/vg/guest-volume", "hda", false)
    );
    let d = disk::parse("vdev=xvda1, access=r, format=qcow2, target=/a,b.img").unwrap();
    // target= takes the rest, commas included
    assert_eq!(
        (d.target.as_str(), d.format, d.read_only),
        ("/a,b.img", Format::Qcow2, true)
    );
    let d = disk::parse(
        "vdev=xvda1, access=rw, script=block-vmcontainer, target=/var/images/fido-root",
    )
    .unwrap();
    assert_eq!(d.script.as_deref(), Some("block-vmcontainer"));
    let d = disk::parse("/root/image.iso,raw,hdc,devtype=cdrom").unwrap();
    assert!(d.cdrom && d.read_only);
}

#[test]
fn disk_errors() {
    assert!(disk::parse("/img").unwrap_err().contains("no vdev"));
    assert!(disk::parse("/img,vmdk,xvda")
        .unwrap_err()
        .contains("format `vmdk`"));
    assert!(disk::parse("/img,,xvda,x")
        .unwrap_err()
        .contains("access `x`"));
    assert!(disk::parse(",,xvda").unwrap_err().contains("no target"));
    assert!(disk::parse("/a,raw,xvda,r,extra")
        .unwrap_err()
        .contains("too many"));
}

#[test]
fn vdev_names() {
    assert_eq!(disk::split_vdev("xvda1"), Some(("xvda", Some(1))));
    assert_eq!(disk::split_vdev("sdb"), Some(("sdb", None)));
    assert_eq!(disk::split_vdev("hdaa12"), Some(("hdaa", Some(12))));
    assert_eq!(disk::split_vdev("xvd1"), None);
    assert_eq!(disk::split_vdev("d0p1"), None);
    assert_eq!(disk::virtio_name(0), "vda");
    assert_eq!(disk::virtio_name(25), "vdz");
    assert_eq!(disk::virtio_name(26), "vdaa");
    assert_eq!(disk::virtio_name(27), "vdab");
}

#[test]
fn fido_maps_to_virtio_and_serial() {
    let p = plan(
        "name = \"fido\"\nmemory = 256\nvcpus = 2\nkernel = \"/boot/vmlinuz\"\nramdisk = \"initrd.gz\"\n\
         extra = \"console=hvc0 ro\"\nroot = \"/dev/xvda1\"\n\
         disk = [ 'file:build/fido-etc,xvda1,w', 'format=qcow2, vdev=xvdb, access=r, target=/data.qcow2' ]\n\
         vif = [ 'mac=00:16:3E:00:00:01, bridge=xenbr0' ]\n",
    )
    .unwrap();
    assert_eq!(p.cmdline, "root=/dev/vda console=ttyS0 ro");
    let a = args(&p, Accel::Tcg);
    assert_eq!(after(&a, "-m"), ["256"]);
    assert_eq!(after(&a, "-smp"), ["2"]);
    assert_eq!(after(&a, "-kernel"), ["/boot/vmlinuz"]);
    assert_eq!(after(&a, "-initrd"), ["/cfg/initrd.gz"]);
    assert_eq!(after(&a, "-accel"), ["tcg"]);
    assert_eq!(
        after(&a, "-drive"),
        [
            "file=/cfg/build/fido-etc,format=raw,if=none,id=disk0",
            "file=/data.qcow2,format=qcow2,if=none,id=disk1,readonly=on"
        ]
    );
    assert_eq!(
        after(&a, "-device"),
        [
            "virtio-blk-pci,drive=disk0",
            "virtio-blk-pci,drive=disk1",
            "virtio-net-pci,netdev=net0,mac=00:16:3e:00:00:01"
        ]
    );
    assert_eq!(after(&a, "-netdev"), ["user,id=net0"]);
    assert_eq!(after(&args(&p, Accel::Kvm), "-cpu"), ["host"]);
    let m = p.mapping();
    assert!(
        m.contains(&"disk xvda1 -> /dev/vda (/cfg/build/fido-etc, raw, rw)".to_string()),
        "{m:?}"
    );
    assert!(
        m.contains(&"disk xvdb -> /dev/vdb (/data.qcow2, qcow2, ro)".to_string()),
        "{m:?}"
    );
    assert!(
        p.notes
            .iter()
            .any(|n| n.starts_with("vif 0: bridge=xenbr0")),
        "{:?}",
        p.notes
    );
}

#[test]
fn cmdline_composition_follows_xl() {
    let mut notes = Vec::new();
    assert_eq!(
        compose_cmdline(None, Some("/dev/sda1 rw"), Some("quiet"), &mut notes),
        "root=/dev/sda1 rw quiet"
    );
    assert_eq!(
        compose_cmdline(None, Some("/dev/sda1"), None, &mut notes),
        "root=/dev/sda1"
    );
    assert_eq!(
        compose_cmdline(None, None, Some("quiet"), &mut notes),
        "quiet"
    );
    assert!(notes.is_empty());
    assert_eq!(
        compose_cmdline(
            Some("init=/x"),
            Some("/dev/sda1"),
            Some("quiet"),
            &mut notes
        ),
        "init=/x"
    );
    assert_eq!(notes.len(), 1);
}

#[test]
fn root_names_follow_entry_order() {
    // each entry is its own disk: the second entry is vdb whatever its Xen name
    let p = plan("kernel = \"/k\"\nroot = \"/dev/sda1 rw\"\ndisk = [ '/swap,,sda2,w', '/root.img,,sda1,w' ]\n").unwrap();
    assert_eq!(p.cmdline, "root=/dev/vdb rw console=ttyS0");
    // a partition of a whole-disk entry keeps its number
    let p = plan("kernel = \"/k\"\nextra = \"root=/dev/xvda2 console=hvc0\"\ndisk = [ '/disk.img,,xvda,w' ]\n").unwrap();
    assert_eq!(p.cmdline, "root=/dev/vda2 console=ttyS0");
    // a root no entry names is left alone, and said so
    let p =
        plan("kernel = \"/k\"\nroot = \"/dev/xvdc1\"\ndisk = [ '/disk.img,,xvda1,w' ]\n").unwrap();
    assert_eq!(p.cmdline, "root=/dev/xvdc1 console=ttyS0");
    assert!(p.notes.iter().any(|n| n.contains("xvdc1")), "{:?}", p.notes);
    // LABEL= and UUID= need no rewriting
    let p = plan("kernel = \"/k\"\ncmdline = \"root=LABEL=r console=ttyS0,115200\"\n").unwrap();
    assert_eq!(p.cmdline, "root=LABEL=r console=ttyS0,115200");
}

#[test]
fn unmappable_settings_are_refused_one_line_each() {
    let e = plan("kernel = \"/k\"\npci = [ '0000:00:1f.2' ]\ntype = \"hvm\"\n").unwrap_err();
    assert_eq!(e.0.len(), 2, "{e:?}");
    assert!(e.0.iter().any(|l| l.starts_with("pci: PCI passthrough")));
    assert!(e.0.iter().any(|l| l.starts_with("type = \"hvm\"")));
    let e = plan("bootloader = \"pygrub\"\n").unwrap_err();
    assert!(
        e.0[0].starts_with("bootloader = \"pygrub\" with no kernel"),
        "{e:?}"
    );
    let e = plan("memory = 64\n").unwrap_err();
    assert!(e.0[0].starts_with("no kernel"));
    let e = plan("kernel = \"/k\"\nbuilder = \"hvm\"\n").unwrap_err();
    assert!(e.0[0].starts_with("builder = \"hvm\""));
    let e = plan("kernel = \"/k\"\nvif = [ 'mac=zz' ]\n").unwrap_err();
    assert!(e.0[0].contains("mac `zz`"));
    // an empty passthrough list asks for nothing
    assert!(plan("kernel = \"/k\"\npci = [ ]\n").is_ok());
}

#[test]
fn approximations_are_noted() {
    let p = plan("kernel = \"/k\"\nbootloader = \"pygrub\"\nmaxmem = 512\non_crash = 'restart'\n")
        .unwrap();
    assert_eq!(p.memory_mib, 128);
    for key in ["bootloader", "maxmem", "on_crash", "memory"] {
        assert!(
            p.notes.iter().any(|n| n.starts_with(key)),
            "{key}: {:?}",
            p.notes
        );
    }
    assert!(p.notes.iter().all(|n| !n.contains('\n')));
}

#[test]
fn paths_with_commas_are_escaped_for_qemu() {
    let p = plan("kernel = \"/k\"\ndisk = [ 'vdev=xvda, target=/a,b' ]\n").unwrap();
    assert_eq!(
        after(&args(&p, Accel::Tcg), "-drive"),
        ["file=/a,,b,format=raw,if=none,id=disk0"]
    );
}

#[test]
fn the_plain_example_maps() {
    // SystemImager's config: a phy: volume, two bridged vifs, root + extra
    let p = plan(include_str!("../../examples/containers/plain.cfg")).unwrap();
    assert_eq!(p.disks.len(), 1);
    assert_eq!(p.disks[0].path, Path::new("/dev/vm_volumes/root-Subian-1A"));
    assert_eq!(p.cmdline, "root=/dev/vda rw console=ttyS0");
    assert_eq!((p.memory_mib, p.vcpus, p.nics.len()), (64, 2, 2));
    let vif_notes = p.notes.iter().filter(|n| n.starts_with("vif ")).count();
    assert_eq!(vif_notes, 2, "{:?}", p.notes);
    assert!(p.notes.iter().any(|n| n.starts_with("on_crash")));
}
