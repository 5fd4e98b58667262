//! `boot CONFIG`: build the domain if CONFIG is a container, then start it
//! under QEMU with direct kernel boot and watch its console until every
//! expected text appears, the guest panics, or the time is up. QEMU never
//! outlives the run: it is killed on every way out of this module, and the
//! kernel kills it (parent-death signal) if this process is killed.

use super::{load, Error, Result, RunOptions};
use crate::boot::{self, Accel, Plan};
use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// `--accel`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AccelChoice {
    #[default]
    Auto,
    Kvm,
    Tcg,
}

/// Everything `boot` is asked for.
#[derive(Clone, Debug)]
pub struct BootOptions {
    /// The run options; `run.container` is CONFIG.
    pub run: RunOptions,
    pub timeout: Duration,
    pub expect: Vec<String>,
    /// Where the console goes instead of standard output.
    pub console: Option<PathBuf>,
    pub accel: AccelChoice,
}

/// How many console lines a failure shows.
const TAIL_LINES: usize = 15;
/// How many lines are kept to find what led to a panic.
const KEPT_LINES: usize = 400;
/// After a panic, how long the rest of the panic message may take.
const PANIC_GRACE: Duration = Duration::from_millis(1500);

/// The QEMU binary: `VMC_QEMU` when set (another build, a wrapper).
fn qemu_binary() -> OsString {
    std::env::var_os("VMC_QEMU")
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| OsString::from("qemu-system-x86_64"))
}

pub fn boot(opts: &BootOptions) -> Result<()> {
    let config = &opts.run.container;
    if config == "-" {
        return Err(Error::usage(
            "boot: CONFIG must be a file (relative disk paths are taken from its directory)",
        ));
    }
    // a container is anything with expressions: built first, as a run.
    // With --require-signatures the run comes first whatever CONFIG is,
    // so that nothing parses it before its signature is checked.
    let verified_first = opts.run.require_signatures;
    if verified_first {
        super::run(&opts.run)?;
    }
    let loaded = load::load(config, &opts.run.set)?;
    if !verified_first && !loaded.plan.steps.is_empty() {
        super::run(&opts.run)?;
        if opts.run.dry_run {
            println!("boot the stripped config");
        }
    }
    let (stmts, errors) = crate::xen::parse_config(&loaded.plan.stripped);
    if let Some(e) = errors.first() {
        return Err(Error::usage(format!(
            "{}: stripped config: {}",
            loaded.name, e.kind
        )));
    }
    let settings = crate::xen::apply_all(&stmts)
        .map_err(|e| Error::usage(format!("{}: {}", loaded.name, e.kind)))?;
    let plan = Plan::from_settings(&settings, &loaded.base_dir).map_err(|r| {
        Error::Diagnostics(
            r.0.iter()
                .map(|l| format!("error: {}: {l}", loaded.name))
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })?;
    for n in &plan.notes {
        eprintln!("boot: {}: {n}", loaded.name);
    }
    for m in plan.mapping() {
        eprintln!("boot: {m}");
    }
    let qemu = qemu_binary();
    if opts.run.dry_run {
        let accel = match opts.accel {
            AccelChoice::Kvm => Accel::Kvm,
            _ => Accel::Tcg,
        };
        let shown: Vec<String> = plan
            .qemu_args(accel)
            .iter()
            .map(|a| shell_word(&a.to_string_lossy()))
            .collect();
        println!("{} {}", qemu.to_string_lossy(), shown.join(" "));
        return Ok(());
    }
    check_inputs(&plan)?;
    let accel = choose_accel(opts.accel, &qemu)?;
    run_qemu(opts, &plan, accel, &qemu)
}

/// A word as a POSIX shell reads it back, so the printed command runs.
fn shell_word(w: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=,:@%+".contains(c);
    if !w.is_empty() && w.chars().all(plain) {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', "'\\''"))
    }
}

/// Missing files are named before QEMU says something vaguer.
fn check_inputs(plan: &Plan) -> Result<()> {
    let mut paths: Vec<(&str, &Path)> = vec![("kernel", &plan.kernel)];
    if let Some(r) = &plan.ramdisk {
        paths.push(("ramdisk", r));
    }
    for d in &plan.disks {
        paths.push((d.spec.vdev.as_str(), &d.path));
    }
    for (what, p) in paths {
        std::fs::metadata(p).map_err(|e| Error::run(format!("{what}: {}: {e}", p.display())))?;
    }
    Ok(())
}

fn choose_accel(choice: AccelChoice, qemu: &OsString) -> Result<Accel> {
    match choice {
        AccelChoice::Tcg => Ok(Accel::Tcg),
        AccelChoice::Kvm => match kvm_works(qemu) {
            Ok(()) => Ok(Accel::Kvm),
            Err(why) => Err(Error::run(format!("--accel kvm: {why}"))),
        },
        AccelChoice::Auto => match kvm_works(qemu) {
            Ok(()) => {
                eprintln!("boot: accel kvm");
                Ok(Accel::Kvm)
            }
            Err(why) => {
                eprintln!("boot: accel tcg (KVM unusable: {why})");
                Ok(Accel::Tcg)
            }
        },
    }
}

/// Whether KVM runs a guest here: `/dev/kvm` opens read-write, and QEMU
/// with the CPU model a boot would use runs a few real-mode instructions
/// (a 64 KiB firmware whose reset vector writes 0x2a to an exit port) and
/// reports no host CPU feature missing. A nested host may hand out
/// `/dev/kvm` yet be unable to run a kernel; those warnings are how it
/// shows.
fn kvm_works(qemu: &OsString) -> std::result::Result<(), String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map_err(|e| format!("/dev/kvm: {e}"))?;
    let mut rom = vec![0u8; 64 * 1024];
    // mov al, 0x2a; out 0xf4, al; hlt; jmp $
    let code = [0xb0, 0x2a, 0xe6, 0xf4, 0xf4, 0xeb, 0xfe];
    rom[0xfff0..0xfff0 + code.len()].copy_from_slice(&code);
    let mut file = tempfile::Builder::new()
        .prefix("vmc-kvm-probe-")
        .tempfile()
        .map_err(|e| format!("probe firmware: {e}"))?;
    file.write_all(&rom)
        .map_err(|e| format!("probe firmware: {e}"))?;
    let mut cmd = Command::new(qemu);
    cmd.args([
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-monitor",
        "none",
        "-serial",
        "none",
        "-accel",
        "kvm",
        "-cpu",
        "host",
        "-m",
        "16",
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=0x04",
        "-bios",
    ])
    .arg(file.path())
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let child = spawn_guarded(&mut cmd).map_err(|e| format!("{}: {e}", qemu.to_string_lossy()))?;
    let mut guard = ChildGuard(Some(child));
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        let c = guard.0.as_mut().expect("child");
        match c.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => return Err("the probe guest did not finish in 10 s".into()),
            Err(e) => return Err(format!("waiting for the probe: {e}")),
        }
    };
    // reaped already: the guard's kill and wait find nothing left to do
    let mut err = String::new();
    if let Some(mut e) = guard.0.as_mut().and_then(|c| c.stderr.take()) {
        let _ = e.read_to_string(&mut err);
    }
    let first = err.lines().next().unwrap_or("").trim().to_string();
    // isa-debug-exit exits with (value << 1) | 1
    if status.code() != Some((0x2a << 1) | 1) {
        return Err(if first.is_empty() {
            format!("the probe guest ended with {status}")
        } else {
            first
        });
    }
    if err.contains("doesn't support requested feature") {
        return Err(first);
    }
    Ok(())
}

/// Starts a child that dies with this process: the parent-death signal is
/// set between fork and exec, and a child whose parent is already gone
/// exits at once. (The signal follows the thread that forked, so `boot`
/// starts QEMU from the thread that lives as long as the process.) Its own process group keeps a terminal's ^C for us: we
/// decide how QEMU stops.
fn spawn_guarded(cmd: &mut Command) -> std::io::Result<Child> {
    let parent = rustix::process::getpid();
    cmd.process_group(0);
    // SAFETY: the closure runs in the forked child before exec; it only
    // makes two system calls (async-signal-safe) and allocates nothing
    // (an io::Error from a kind is not boxed).
    unsafe {
        cmd.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
            if rustix::process::getppid() != Some(parent) {
                // the parent died before the signal was armed: failing
                // here ends the child before exec
                return Err(std::io::ErrorKind::Other.into());
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// Kills and reaps the child however the run ends (errors, panics).
struct ChildGuard(Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

enum Msg {
    Out(Vec<u8>),
    Eof,
}

/// The console as it streams: complete lines kept for error messages,
/// and a window wide enough to find a text split across two reads.
struct Watch {
    expect: Vec<(String, bool)>,
    window: Vec<u8>,
    keep: usize,
    lines: VecDeque<String>,
    partial: Vec<u8>,
    panic_at: Option<Instant>,
}

impl Watch {
    fn new(expect: &[String]) -> Watch {
        let longest = expect
            .iter()
            .map(String::len)
            .chain(std::iter::once("Kernel panic".len()))
            .max()
            .unwrap_or(0);
        Watch {
            expect: expect.iter().map(|e| (e.clone(), false)).collect(),
            window: Vec::new(),
            keep: longest,
            lines: VecDeque::new(),
            partial: Vec::new(),
            panic_at: None,
        }
    }

    fn feed(&mut self, chunk: &[u8]) {
        self.window.extend_from_slice(chunk);
        let text = String::from_utf8_lossy(&self.window).into_owned();
        for (e, seen) in &mut self.expect {
            if !*seen && text.contains(e.as_str()) {
                *seen = true;
            }
        }
        if self.panic_at.is_none() && boot::is_panic(&text) {
            self.panic_at = Some(Instant::now());
        }
        let cut = self.window.len().saturating_sub(self.keep);
        self.window.drain(..cut);
        for &b in chunk {
            if b == b'\n' {
                let line = String::from_utf8_lossy(&self.partial)
                    .trim_end_matches('\r')
                    .to_string();
                self.partial.clear();
                self.push_line(line);
            } else {
                self.partial.push(b);
            }
        }
    }

    fn push_line(&mut self, line: String) {
        if self.lines.len() == KEPT_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    fn all_seen(&self) -> bool {
        !self.expect.is_empty() && self.expect.iter().all(|(_, s)| *s)
    }

    fn missing(&self) -> Vec<String> {
        self.expect
            .iter()
            .filter(|(_, s)| !*s)
            .map(|(e, _)| format!("`{e}`"))
            .collect()
    }

    fn tail(&self) -> String {
        let mut lines: Vec<String> = self.lines.iter().cloned().collect();
        if !self.partial.is_empty() {
            lines.push(String::from_utf8_lossy(&self.partial).into_owned());
        }
        if lines.is_empty() {
            return "\n(the console printed nothing)".into();
        }
        let from = lines.len().saturating_sub(TAIL_LINES);
        show("last console lines", &lines[from..])
    }

    /// The panic line and what came just before it (the reason is there;
    /// the stack dump after it is not).
    fn panic_context(&self) -> String {
        let lines: Vec<String> = self.lines.iter().cloned().collect();
        match lines.iter().position(|l| boot::is_panic(l)) {
            Some(i) => show(
                "console lines up to the panic",
                &lines[i.saturating_sub(TAIL_LINES - 1)..=i],
            ),
            None => self.tail(),
        }
    }
}

fn show(title: &str, lines: &[String]) -> String {
    let mut s = format!("\n{title}:");
    for l in lines {
        s.push_str("\n  ");
        s.push_str(l);
    }
    s
}

fn run_qemu(opts: &BootOptions, plan: &Plan, accel: Accel, qemu: &OsString) -> Result<()> {
    let interrupt = Arc::new(AtomicBool::new(false));
    let terminate = Arc::new(AtomicBool::new(false));
    let signals = [
        signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&interrupt)),
        signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&terminate)),
    ];
    let ids: Vec<_> = signals
        .into_iter()
        .collect::<std::io::Result<_>>()
        .map_err(|e| Error::run(format!("installing signal handlers: {e}")))?;
    let result = watch_qemu(opts, plan, accel, qemu, &interrupt, &terminate);
    for id in ids {
        signal_hook::low_level::unregister(id);
    }
    result
}

fn watch_qemu(
    opts: &BootOptions,
    plan: &Plan,
    accel: Accel,
    qemu: &OsString,
    interrupt: &AtomicBool,
    terminate: &AtomicBool,
) -> Result<()> {
    let mut console: Box<dyn Write> = match &opts.console {
        Some(p) => Box::new(
            std::fs::File::create(p)
                .map_err(|e| Error::run(format!("--console {}: {e}", p.display())))?,
        ),
        None => Box::new(std::io::stdout()),
    };
    let mut cmd = Command::new(qemu);
    cmd.args(plan.qemu_args(accel))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = spawn_guarded(&mut cmd)
        .map_err(|e| Error::run(format!("{}: {e}", qemu.to_string_lossy())))?;
    eprintln!("boot: qemu pid {} ({})", child.id(), accel.name());
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let mut guard = ChildGuard(Some(child));
    let (tx, rx) = mpsc::channel();
    if let Some(mut out) = stdout {
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 8192];
            loop {
                match out.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(Msg::Out(buf[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = tx.send(Msg::Eof);
        });
    }
    // QEMU's own messages, for the error if it stops by itself
    let mut errors = stderr.map(|mut e| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = e.read_to_end(&mut s);
            String::from_utf8_lossy(&s).trim_end().to_string()
        })
    });
    let deadline = started + opts.timeout;
    let mut watch = Watch::new(&opts.expect);
    let mut eof = false;
    // printed once the console is finished with
    let mut said = None;
    let outcome: Result<()> = loop {
        if interrupt.load(Ordering::Relaxed) {
            break Err(Error::Stopped {
                code: 130,
                message: format!("interrupted (SIGINT); QEMU stopped{}", watch.tail()),
            });
        }
        if terminate.load(Ordering::Relaxed) {
            break Err(Error::Stopped {
                code: 143,
                message: format!("terminated (SIGTERM); QEMU stopped{}", watch.tail()),
            });
        }
        if watch.all_seen() {
            said = Some(format!(
                "boot: every expected text seen after {:.1} s ({})",
                started.elapsed().as_secs_f64(),
                accel.name()
            ));
            break Ok(());
        }
        if let Some(t) = watch.panic_at {
            if eof || t.elapsed() >= PANIC_GRACE {
                break Err(Error::run(format!(
                    "the guest kernel panicked after {:.1} s{}",
                    t.duration_since(started).as_secs_f64(),
                    watch.panic_context()
                )));
            }
        }
        let now = Instant::now();
        if now >= deadline {
            let what = if opts.expect.is_empty() {
                "the guest did not stop".to_string()
            } else {
                format!("{} did not appear", watch.missing().join(", "))
            };
            break Err(Error::run(format!(
                "timeout after {} s: {what}{}",
                opts.timeout.as_secs_f64(),
                watch.tail()
            )));
        }
        if eof {
            // the console is closed: QEMU is ending; its status decides
            let c = guard.0.as_mut().expect("child");
            let status = c
                .wait()
                .map_err(|e| Error::run(format!("waiting for QEMU: {e}")));
            guard.0 = None;
            let status = match status {
                Ok(s) => s,
                Err(e) => break Err(e),
            };
            let qemu_said = errors
                .take()
                .and_then(|h| h.join().ok())
                .filter(|s| !s.is_empty())
                .map(|s| format!("\nQEMU: {s}"))
                .unwrap_or_default();
            if opts.expect.is_empty() && status.success() {
                said = Some(format!(
                    "boot: the guest stopped after {:.1} s ({})",
                    started.elapsed().as_secs_f64(),
                    accel.name()
                ));
                break Ok(());
            }
            let what = if opts.expect.is_empty() {
                String::new()
            } else {
                format!(" before {} appeared", watch.missing().join(", "))
            };
            break Err(Error::run(format!(
                "QEMU ended ({status}){what}{qemu_said}{}",
                watch.tail()
            )));
        }
        let wait = (deadline - now).min(Duration::from_millis(100));
        match rx.recv_timeout(wait) {
            Ok(Msg::Out(chunk)) => {
                // the console is best effort: a closed stdout must not
                // keep the guest running
                let _ = console.write_all(&chunk);
                let _ = console.flush();
                watch.feed(&chunk);
            }
            Ok(Msg::Eof) | Err(mpsc::RecvTimeoutError::Disconnected) => eof = true,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    };
    drop(guard);
    if !watch.partial.is_empty() {
        // the guest stopped mid-line; what follows must not run into it
        let _ = console.write_all(b"\n");
    }
    let _ = console.flush();
    if let Some(s) = said {
        eprintln!("{s}");
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expected_text_split_across_reads_is_seen() {
        let mut w = Watch::new(&["guest: hostname FCDOBBS".into(), "done".into()]);
        w.feed(b"[ 1.0] boot\r\nguest: host");
        assert!(!w.all_seen());
        w.feed(b"name FCDOB");
        w.feed(b"BS\nall do");
        assert!(!w.all_seen());
        assert_eq!(w.missing(), ["`done`"]);
        w.feed(b"ne\n");
        assert!(w.all_seen());
        assert!(w.panic_at.is_none());
        assert!(w.tail().ends_with("\n  all done"), "{}", w.tail());
    }

    #[test]
    fn a_panic_is_shown_with_what_led_to_it() {
        let mut w = Watch::new(&[]);
        w.feed(b"initramfs: root /dev/xvdb1 not found\n[ 9.1] Kernel pan");
        assert!(w.panic_at.is_none());
        w.feed(b"ic - not syncing: Attempted to kill init!\n");
        for i in 0..40 {
            w.feed(format!("[ 9.2] stack line {i}\n").as_bytes());
        }
        assert!(w.panic_at.is_some());
        let c = w.panic_context();
        assert!(c.contains("initramfs: root /dev/xvdb1 not found"), "{c}");
        assert!(
            c.ends_with("Kernel panic - not syncing: Attempted to kill init!"),
            "{c}"
        );
        assert!(w.tail().ends_with("stack line 39"));
        // no --expect: nothing is ever "all seen"
        assert!(!w.all_seen());
    }

    #[test]
    fn shell_words_read_back() {
        assert_eq!(shell_word("file=/a,,b,format=raw"), "file=/a,,b,format=raw");
        assert_eq!(shell_word("root=/dev/vda ro"), "'root=/dev/vda ro'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
        assert_eq!(shell_word(""), "''");
    }
}
