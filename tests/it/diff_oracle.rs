//! GNU diff and GNU patch as oracles, on a copy of this machine's `/etc`.

use crate::diff_common;

use diff_common::*;
use std::fs;
use std::path::Path;
use vm_container::diff::{self, ApplyError, FileMap, FileOp, FileVersion, UnifiedOptions};
use vm_container::tree::TreePath;

/// Text files of `/etc` (no NUL, under 32 KiB), plus account files in the
/// format of `/etc/passwd`, `/etc/shadow` and `/etc/group` when the
/// machine's own are missing.
fn etc_sample() -> FileMap {
    let mut files = FileMap::new();
    let mut stack = vec![Path::new("/etc").to_path_buf()];
    let mut found = Vec::new();
    while let Some(dir) = stack.pop() {
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let Ok(md) = fs::symlink_metadata(e.path()) else {
                continue;
            };
            if md.is_dir() {
                stack.push(e.path());
            } else if md.is_file() && md.len() < 32 * 1024 {
                found.push(e.path());
            }
        }
    }
    found.sort();
    for p in found {
        let Ok(content) = fs::read(&p) else { continue };
        if content.contains(&0) {
            continue;
        }
        let rel = p.strip_prefix("/").unwrap();
        let Ok(tp) = TreePath::from_member(rel.as_os_str().as_encoded_bytes()) else {
            continue;
        };
        // Names with bytes that GNU diff would quote differently are not
        // what this test is about.
        if tp
            .as_bytes()
            .iter()
            .any(|&b| b <= b' ' || b == b'"' || b == b'\\' || b >= 0x7f)
        {
            continue;
        }
        files.insert(
            tp,
            FileVersion {
                content,
                mtime: 0,
                mtime_nsec: 0,
            },
        );
        if files.len() >= 160 {
            break;
        }
    }
    let defaults = [
        ("etc/passwd", "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nbin:x:2:2:bin:/bin:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"),
        ("etc/shadow", "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\nbin:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n"),
        ("etc/group", "root:x:0:\ndaemon:x:1:\nbin:x:2:\nadm:x:4:\nnogroup:x:65534:\n"),
    ];
    for (p, c) in defaults {
        let real = fs::read(format!("/{p}")).ok();
        files.insert(
            tp(p),
            FileVersion {
                content: real.unwrap_or_else(|| c.as_bytes().to_vec()),
                mtime: 0,
                mtime_nsec: 0,
            },
        );
    }
    files.insert(
        tp("etc/no-newline.conf"),
        FileVersion {
            content: b"key = value\nlast = line".to_vec(),
            mtime: 0,
            mtime_nsec: 0,
        },
    );
    files
}

fn lines_of(c: &[u8]) -> Vec<Vec<u8>> {
    c.split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

/// Varied edits: start, middle and end of files, trailing newline added
/// and removed, deletions, creations (also in new directories), and the
/// account files.
fn edit(old: &FileMap) -> FileMap {
    let mut new = old.clone();
    let mut rng = Lcg(7);
    let paths: Vec<TreePath> = old.keys().cloned().collect();
    for (i, p) in paths.iter().enumerate() {
        let Some(f) = new.get_mut(p) else { continue };
        let mut lines = lines_of(&f.content);
        match i % 9 {
            0 => {
                if lines.is_empty() {
                    lines.push(b"# first\n".to_vec());
                } else {
                    lines[0] = b"# changed first line\n".to_vec();
                }
            }
            1 => {
                let at = lines.len() / 2;
                let end = (at + 1).min(lines.len());
                lines.splice(
                    at..end,
                    [b"middle one\n".to_vec(), b"middle two\n".to_vec()],
                );
            }
            2 => lines.push(b"appended at end\n".to_vec()),
            3 => {
                if let Some(l) = lines.last_mut() {
                    if l.last() == Some(&b'\n') {
                        l.pop();
                    }
                }
            }
            4 if i % 2 == 0 => {
                new.remove(p);
                continue;
            }
            5 => {
                // Several scattered edits, some close enough to share a
                // hunk.
                for _ in 0..4 {
                    if lines.is_empty() {
                        break;
                    }
                    let at = rng.below(lines.len());
                    if rng.below(2) == 0 {
                        lines.remove(at);
                    } else {
                        lines.insert(at, format!("inserted {}\n", rng.next()).into_bytes());
                    }
                }
            }
            _ => {}
        }
        f.content = lines.concat();
    }
    let set = |new: &mut FileMap, p: &str, c: Vec<u8>| {
        new.insert(
            tp(p),
            FileVersion {
                content: c,
                mtime: 0,
                mtime_nsec: 0,
            },
        );
    };
    let mut passwd = old[&tp("etc/passwd")].content.clone();
    passwd.extend_from_slice(b"xenguest:x:1500:1500:Xen guest:/home/xenguest:/bin/sh\n");
    set(&mut new, "etc/passwd", passwd);
    let shadow = lines_of(&old[&tp("etc/shadow")].content)
        .into_iter()
        .map(|l| {
            if l.starts_with(b"root:") {
                b"root:$6$salt$hashhashhash:20000:0:99999:7:::\n".to_vec()
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .concat();
    set(&mut new, "etc/shadow", shadow);
    let mut group = old[&tp("etc/group")].content.clone();
    group.extend_from_slice(b"xenguest:x:1500:\n");
    set(&mut new, "etc/group", group);
    set(
        &mut new,
        "etc/no-newline.conf",
        b"key = value\nlast = line\n".to_vec(),
    );
    set(&mut new, "etc/added.conf", b"new = file\n".to_vec());
    set(
        &mut new,
        "etc/newdir/sub/deep.conf",
        b"in a new directory\nwithout final newline".to_vec(),
    );
    new
}

struct Trees {
    dir: tempfile::TempDir,
    old: FileMap,
    new: FileMap,
}

fn trees() -> Trees {
    require("diff", "diffutils");
    require("patch", "patch");
    let old = etc_sample();
    let new = edit(&old);
    let dir = tempfile::tempdir().unwrap();
    write_tree(&dir.path().join("a"), &old);
    write_tree(&dir.path().join("b"), &new);
    // Real modification times from disk, as GNU diff sees them.
    let old = read_tree(&dir.path().join("a"));
    let new = read_tree(&dir.path().join("b"));
    Trees { dir, old, new }
}

#[test]
fn gnu_diff_applied_by_us_equals_gnu_patch() {
    let t = trees();
    let text = gnu_diff(t.dir.path(), "a", "b");
    let patch = diff::parse(&text, "gnu.diff").unwrap();
    assert!(patch.files.iter().any(|f| f.op == FileOp::Create));
    assert!(patch.files.iter().any(|f| f.op == FileOp::Delete));
    assert_eq!(patch.unsupported().count(), 0);

    let mut ours = Mem(contents(&t.old));
    let changes = patch.apply(&mut ours).unwrap();
    ours.commit(changes);

    let gnu_dir = t.dir.path().join("gnu");
    write_tree(&gnu_dir, &t.old);
    let out = gnu_patch(&gnu_dir, &text, false);
    assert!(
        out.status.success(),
        "GNU patch failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let gnu = contents(&read_tree(&gnu_dir));
    assert_eq!(ours.0, gnu);
    assert_eq!(ours.0, contents(&t.new));
}

#[test]
fn our_diff_is_gnu_diff_and_gnu_patch_accepts_it() {
    let t = trees();
    let ours = diff::unified(&t.old, &t.new, &UnifiedOptions::default());
    let gnu = gnu_diff(t.dir.path(), "a", "b");
    // Where several minimal diffs exist the hunks may legitimately differ;
    // on this tree they must not.
    if ours != gnu {
        let o = String::from_utf8_lossy(&ours);
        let g = String::from_utf8_lossy(&gnu);
        let first = o
            .lines()
            .zip(g.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        panic!(
            "differs from GNU diff at line {}:\nours: {:?}\ngnu:  {:?}",
            first + 1,
            o.lines().nth(first),
            g.lines().nth(first)
        );
    }

    let gnu_dir = t.dir.path().join("gnu");
    write_tree(&gnu_dir, &t.old);
    let out = gnu_patch(&gnu_dir, &ours, false);
    assert!(
        out.status.success(),
        "GNU patch refused our diff: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(contents(&read_tree(&gnu_dir)), contents(&t.new));
    // The deleted files are gone, not left empty.
    for p in t.old.keys().filter(|p| !t.new.contains_key(*p)) {
        assert!(!gnu_dir.join(p.to_string()).exists(), "{p} not deleted");
    }

    let patch = diff::parse(&ours, "ours.diff").unwrap();
    let mut mem = Mem(contents(&t.old));
    let changes = patch.apply(&mut mem).unwrap();
    mem.commit(changes);
    assert_eq!(mem.0, contents(&t.new));
}

#[test]
fn a_failing_third_file_changes_nothing_and_is_named() {
    let t = trees();
    let mut old = FileMap::new();
    let mut new = FileMap::new();
    let names = ["etc/group", "etc/passwd", "etc/shadow", "etc/zz.conf"];
    for n in names {
        let f = t.old.get(&tp(n)).cloned().unwrap_or(FileVersion {
            content: b"a\nb\nc\nd\ne\nf\ng\n".to_vec(),
            mtime: 0,
            mtime_nsec: 0,
        });
        let mut g = f.clone();
        g.content.extend_from_slice(b"tail line\n");
        old.insert(tp(n), f);
        new.insert(tp(n), g);
    }
    let text = diff::unified(&old, &new, &UnifiedOptions::default());
    let patch = diff::parse(&text, "three.diff").unwrap();
    assert_eq!(patch.files.len(), 4);

    // The third file's end no longer matches the context of its hunk.
    let mut target = Mem(contents(&old));
    target
        .0
        .get_mut(&tp("etc/shadow"))
        .unwrap()
        .extend_from_slice(b"local:*:1:0:99999:7:::\n");
    let before = target.clone();
    let err = patch.apply(&mut target).unwrap_err();
    let at = match &err {
        ApplyError::HunkFailed {
            patch,
            file,
            hunk,
            at,
            ..
        } => {
            assert_eq!(patch, "three.diff");
            assert_eq!(file, &tp("etc/shadow"));
            assert_eq!(*hunk, 1);
            *at
        }
        e => panic!("unexpected error {e}"),
    };
    let msg = err.to_string();
    assert!(
        msg.contains("etc/shadow") && msg.contains("hunk #1"),
        "{msg}"
    );
    assert_eq!(target, before);

    // GNU patch agrees that exactly this hunk fails.
    let dir = t.dir.path().join("three");
    let mut on_disk = FileMap::new();
    for (p, c) in &target.0 {
        on_disk.insert(
            p.clone(),
            FileVersion {
                content: c.clone(),
                mtime: 0,
                mtime_nsec: 0,
            },
        );
    }
    write_tree(&dir, &on_disk);
    let out = gnu_patch(&dir, &text, true);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("Hunk #1 FAILED"), "{said}");
    let failed: Vec<&str> = said
        .lines()
        .filter(|l| l.starts_with("Hunk #") && l.contains("FAILED"))
        .collect();
    assert_eq!(failed, [format!("Hunk #1 FAILED at {at}.")], "{said}");
    assert!(
        said.contains("checking file etc/shadow\nHunk #1 FAILED"),
        "{said}"
    );
}

#[test]
fn hunks_found_at_an_offset_like_gnu_patch() {
    require("patch", "patch");
    let base: String = (1..=60).map(|i| format!("line {i}\n")).collect();
    let mut edited = lines_of(base.as_bytes());
    edited[9] = b"line ten\n".to_vec();
    edited[39] = b"line forty\n".to_vec();
    edited.insert(50, b"extra\n".to_vec());
    let old = FileMap::from([(
        tp("f"),
        FileVersion {
            content: base.clone().into_bytes(),
            mtime: 0,
            mtime_nsec: 0,
        },
    )]);
    let new = FileMap::from([(
        tp("f"),
        FileVersion {
            content: edited.concat(),
            mtime: 0,
            mtime_nsec: 0,
        },
    )]);
    let text = diff::unified(&old, &new, &UnifiedOptions::default());
    let patch = diff::parse(&text, "offset.diff").unwrap();
    assert_eq!(patch.files[0].hunks.len(), 3);

    // Lines added before (positive offset) and removed (negative offset),
    // and a duplicate of the context further on that must not be chosen.
    let variants: Vec<Vec<u8>> = vec![
        format!("new a\nnew b\nnew c\n{base}").into_bytes(),
        base.lines()
            .skip(4)
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            .into_bytes(),
        {
            let mut l = lines_of(base.as_bytes());
            l.insert(20, b"shifts the later hunks\n".to_vec());
            l.extend(lines_of(base.as_bytes()).into_iter().take(15));
            l.concat()
        },
    ];
    for (n, input) in variants.into_iter().enumerate() {
        let mut mem = Mem(std::collections::BTreeMap::from([(tp("f"), input.clone())]));
        let ours = patch.apply(&mut mem).map(|c| {
            mem.commit(c);
            mem.0[&tp("f")].clone()
        });
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("f"), &input).unwrap();
        let out = gnu_patch(dir.path(), &text, false);
        let gnu = fs::read(dir.path().join("f")).unwrap();
        assert!(out.status.success(), "variant {n}: GNU patch failed");
        assert_eq!(ours.unwrap(), gnu, "variant {n}");
    }
}

#[test]
fn git_diff_output_applies() {
    require("git", "git");
    let t = trees();
    let out = std::process::Command::new("git")
        .args([
            "diff",
            "--no-index",
            "--no-color",
            "--no-ext-diff",
            "--no-prefix",
            "a",
            "b",
        ])
        .current_dir(t.dir.path())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", t.dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "git diff: {:?}", out);
    let patch = diff::parse(&out.stdout, "git.diff").unwrap();
    let mut mem = Mem(contents(&t.old));
    let changes = patch.apply(&mut mem).unwrap();
    mem.commit(changes);
    assert_eq!(mem.0, contents(&t.new));
}

#[test]
fn epoch_in_another_time_zone_still_creates_and_deletes() {
    let t = trees();
    let opts = UnifiedOptions {
        tz_offset_minutes: -300,
        ..UnifiedOptions::default()
    };
    let ours = diff::unified(&t.old, &t.new, &opts);
    assert!(String::from_utf8_lossy(&ours).contains("\t1969-12-31 19:00:00.000000000 -0500\n"));
    // GNU diff in a fixed UTC-5 zone writes the same bytes.
    let out = std::process::Command::new("diff")
        .args(["-ruN", "a", "b"])
        .current_dir(t.dir.path())
        .env("LC_ALL", "C")
        .env("TZ", "EST5")
        .output()
        .unwrap();
    assert!(ours == out.stdout, "differs from TZ=EST5 diff -ruN");

    let patch = diff::parse(&ours, "est.diff").unwrap();
    assert!(patch.files.iter().any(|f| f.op == FileOp::Create));
    assert!(patch.files.iter().any(|f| f.op == FileOp::Delete));
    let mut mem = Mem(contents(&t.old));
    let changes = patch.apply(&mut mem).unwrap();
    mem.commit(changes);
    assert_eq!(mem.0, contents(&t.new));

    let gnu_dir = t.dir.path().join("gnu");
    write_tree(&gnu_dir, &t.old);
    assert!(gnu_patch(&gnu_dir, &ours, false).status.success());
    assert_eq!(contents(&read_tree(&gnu_dir)), contents(&t.new));
}
