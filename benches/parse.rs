//! `cargo bench --bench parse`: parser throughput and memory on generated pytest-style files.
//!
//! 1. 100,000 testcases (about 17 MB): parsed from memory (owned and lent cases, and into a
//!    `Report`) and streamed from a temp file.
//! 2. A 1 GB file written to a temp dir, streamed from disk with `parse_stream_ref` (cases lent,
//!    nothing allocated per case) and `parse_stream` (cases owned).
//! 3. The `ci-test-metrics parse` command as a whole process (the release binary), beside the
//!    reference: a bare quick-xml event loop ([`xmlscan`], run as a child process of this
//!    bench) over the same files. On a 1,000,000-case file (about 170 MB): best wall and CPU
//!    time of 5 interleaved rounds of each, as ratios to the bare loop. On the 1 GB file: the
//!    peak RSS of each (the child's `ru_maxrss` from `wait4`; Linux carries the forking
//!    bench's RSS into it, so it is an upper bound: `/usr/bin/time -v` shows the command's own). Output goes to /dev/null.
//!    The big files are deleted at the end. Set `CTM_BENCH_GB` to another size in GB (`0` skips
//!    the 1 GB file; section 3 then runs on the 1,000,000-case file only).
//!
//! Prints MB/s (1 MB = 10^6 bytes) by wall clock and per CPU second of the parsing thread (the
//! machine may be shared), and peak RSS (VmHWM from /proc/self/status, reset before each
//! run through /proc/self/clear_refs where the kernel allows it). Not a timed test: nothing fails
//! on slowness; the figures are for people. Targets: ≥ 400 MB/s; whole process, < 64 MB peak
//! RSS on 1 GB in both formats and `parse --format table` within 1.3× the bare loop's wall time.

use ci_test_metrics::junit::{self, Status};
use quick_xml::events::Event;
use quick_xml::Reader;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// One generated suite of `cases` pytest-style testcases: mostly passes, some failures with a
/// traceback, skips, errors, and captured output, like a real `pytest --junitxml` file.
fn write_suite(out: &mut impl Write, suite: usize, cases: usize) -> std::io::Result<()> {
    writeln!(
        out,
        r#"  <testsuite name="pytest-{suite}" errors="0" failures="0" skipped="0" tests="{cases}" time="0" timestamp="2024-05-14T09:12:41.123456" hostname="ci-runner-7">"#
    )?;
    for i in 0..cases {
        let module = i % 97;
        let class = i % 13;
        let time = (i * 7919 % 10_000) as f64 / 1000.0;
        write!(
            out,
            r#"    <testcase classname="tests.unit.test_module_{module}.TestClass{class}" name="test_case_{i}[param-{p}]" file="tests/unit/test_module_{module}.py" line="{line}" time="{time:.3}""#,
            p = i % 5,
            line = 10 + i % 400,
        )?;
        match i % 50 {
            0 => writeln!(
                out,
                r#"><failure message="AssertionError: assert 404 == 200">def test_case_{i}(client):
        resp = client.get("/items/{i}")
&gt;       assert resp.status_code == 200
E       AssertionError: assert 404 == 200

tests/unit/test_module_{module}.py:{i}: AssertionError</failure><system-out>GET /items/{i} -&gt; 404 in 3 ms
</system-out></testcase>"#
            )?,
            1 | 2 => writeln!(
                out,
                r#"><skipped type="pytest.skip" message="requires GPU">tests/unit/test_module_{module}.py:{i}: requires GPU</skipped></testcase>"#
            )?,
            3 => writeln!(
                out,
                r#"><error message="failed on setup with &quot;RuntimeError: db&quot;"><![CDATA[@pytest.fixture
    def db():
>       raise RuntimeError("db")
E       RuntimeError: db]]></error></testcase>"#
            )?,
            _ => writeln!(out, " />")?,
        }
    }
    writeln!(out, "  </testsuite>")
}

/// Writes a `<testsuites>` document of suites with `cases_per_suite` cases until it is at least
/// `target_bytes` long and has at least `min_suites` suites (one at least). Returns its size.
fn generate(
    out: &mut impl Write,
    target_bytes: u64,
    min_suites: usize,
    cases_per_suite: usize,
) -> u64 {
    let mut counter = Counter(out, 0);
    writeln!(counter, r#"<?xml version="1.0" encoding="utf-8"?>"#).unwrap();
    writeln!(counter, "<testsuites>").unwrap();
    let mut suite = 0;
    loop {
        write_suite(&mut counter, suite, cases_per_suite).unwrap();
        suite += 1;
        if counter.1 >= target_bytes && suite >= min_suites {
            break;
        }
    }
    writeln!(counter, "</testsuites>").unwrap();
    counter.1
}

/// Writes a generated document to a file; returns its size.
fn generate_file(path: &Path, target_bytes: u64, min_suites: usize) -> u64 {
    let mut w = BufWriter::with_capacity(1 << 20, File::create(path).expect("create"));
    let n = generate(&mut w, target_bytes, min_suites, 10_000);
    w.flush().expect("flush");
    n
}

/// Counts bytes written through it.
struct Counter<'a, W>(&'a mut W, u64);
impl<W: Write> Write for Counter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.0.write(buf)?;
        self.1 += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Peak resident set size in kB, or 0 when unknown.
fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn current_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Time this thread has spent on a CPU, in seconds (from /proc/thread-self/schedstat), so the
/// figures can be read apart from contention with other processes on a shared machine.
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(f64::NAN, |ns| ns as f64 / 1e9)
}

/// Resets VmHWM to the current RSS (Linux ≥ 4.0). Returns whether it worked.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Prints one result: wall-clock MB/s, and MB/s per second of CPU time of this thread.
fn report(what: &str, bytes: u64, secs: f64, cpu: f64, cases: usize, peak_note: &str) {
    let mb = bytes as f64 / 1e6;
    println!(
        "{what:<52} {mb:>7.1} MB in {secs:>6.3} s = {:>6.1} MB/s wall, {:>6.1} MB/s CPU  ({cases} cases){peak_note}",
        mb / secs,
        mb / cpu,
    );
}

/// Runs `f`, returning its result, wall-clock seconds and CPU seconds.
fn timed<T>(f: impl FnOnce() -> T) -> (T, f64, f64) {
    let (t, c) = (Instant::now(), cpu_seconds());
    let out = f();
    (out, t.elapsed().as_secs_f64(), cpu_seconds() - c)
}

fn main() {
    if let Some(path) = std::env::var_os(XMLSCAN) {
        println!("{} events", xmlscan(Path::new(&path)));
        return;
    }
    // `cargo bench` passes `--bench`; accept and ignore arguments.
    let gb: f64 = std::env::var("CTM_BENCH_GB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    let dir = tempfile::tempdir().expect("temp dir");

    // 1. 100,000 testcases.
    let mut doc = Vec::new();
    generate(&mut doc, 0, 1, 100_000);
    let bytes = doc.len() as u64;
    println!(
        "generated: 100,000 pytest-style testcases, {:.1} MB",
        bytes as f64 / 1e6
    );
    let (mut best, mut best_cpu) = (f64::MAX, f64::MAX);
    for _ in 0..5 {
        let (n, secs, cpu) = timed(|| {
            let mut n = 0usize;
            let s = junit::parse_stream("mem.xml", &doc[..], |c| {
                n += 1;
                std::hint::black_box(c);
            });
            assert!(s.error.is_none(), "{:?}", s.error);
            assert_eq!(s.count(Status::Failed), 2_000);
            n
        });
        assert_eq!(n, 100_000);
        best = best.min(secs);
        best_cpu = best_cpu.min(cpu);
    }
    report(
        "100k cases, parse_stream from memory (best of 5)",
        bytes,
        best,
        best_cpu,
        100_000,
        "",
    );

    let (mut best, mut best_cpu) = (f64::MAX, f64::MAX);
    for _ in 0..5 {
        let (n, secs, cpu) = timed(|| {
            let mut n = 0usize;
            let s = junit::parse_stream_ref("mem.xml", &doc[..], |c| {
                n += 1;
                std::hint::black_box(c);
            });
            assert!(s.error.is_none(), "{:?}", s.error);
            n
        });
        assert_eq!(n, 100_000);
        best = best.min(secs);
        best_cpu = best_cpu.min(cpu);
    }
    report(
        "100k cases, parse_stream_ref from memory (best of 5)",
        bytes,
        best,
        best_cpu,
        100_000,
        "",
    );

    let (r, secs, cpu) = timed(|| junit::parse_bytes("mem.xml", &doc));
    report(
        "100k cases, parse_bytes into a Report",
        bytes,
        secs,
        cpu,
        r.cases.len(),
        "",
    );
    drop(r);

    let path = dir.path().join("100k.xml");
    std::fs::write(&path, &doc).expect("write temp file");
    drop(doc);
    let reset = reset_peak_rss();
    let (n, secs, cpu) = timed(|| {
        let mut n = 0usize;
        let s = junit::parse_stream("100k.xml", File::open(&path).unwrap(), |c| {
            n += 1;
            std::hint::black_box(c);
        });
        assert!(s.error.is_none());
        n
    });
    let note = if reset {
        format!(", peak RSS {:.1} MB", peak_rss_kb() as f64 / 1024.0)
    } else {
        String::new()
    };
    report(
        "100k cases, parse_stream from a file",
        bytes,
        secs,
        cpu,
        n,
        &note,
    );

    // 2. A big file streamed from disk.
    let big = (gb > 0.0).then(|| {
        let path = dir.path().join("big.xml");
        let t = Instant::now();
        let written = generate_file(&path, (gb * 1e9) as u64, 1);
        println!(
            "generated: {:.2} GB in {:.1} s at {}",
            written as f64 / 1e9,
            t.elapsed().as_secs_f64(),
            path.display()
        );
        big_file_in_process(&path, written, gb);
        (path, written)
    });
    if big.is_none() {
        println!("big file: skipped (CTM_BENCH_GB=0)");
    }

    // 3. The command as a whole process, beside the bare loop.
    let path = dir.path().join("1m.xml");
    let written = generate_file(&path, 0, 100);
    println!(
        "generated: 1,000,000 pytest-style testcases, {:.1} MB",
        written as f64 / 1e6
    );
    whole_process(&path, written, big.as_ref().map(|(p, n)| (p.as_path(), *n)));
    std::fs::remove_file(&path).expect("delete the 1,000,000-case file");
    if let Some((path, _)) = big {
        std::fs::remove_file(&path).expect("delete the big file");
    }
}

/// Section 2: the big file streamed in this process, cases lent and owned.
fn big_file_in_process(path: &Path, written: u64, gb: f64) {
    for lend in [true, false] {
        let reset = reset_peak_rss();
        let rss_before = current_rss_kb();
        let (n, secs, cpu) = timed(|| {
            let mut n = 0usize;
            let file = File::open(path).unwrap();
            let s = if lend {
                junit::parse_stream_ref("big.xml", file, |c| {
                    n += 1;
                    std::hint::black_box(c);
                })
            } else {
                junit::parse_stream("big.xml", file, |c| {
                    n += 1;
                    std::hint::black_box(c);
                })
            };
            assert!(s.error.is_none(), "{:?}", s.error);
            n
        });
        let peak = peak_rss_kb();
        let api = if lend {
            "parse_stream_ref"
        } else {
            "parse_stream"
        };
        report(
            &format!("{gb} GB file, {api} from disk"),
            written,
            secs,
            cpu,
            n,
            &format!(
                ", peak RSS {:.1} MB (RSS before {:.1} MB{})",
                peak as f64 / 1024.0,
                rss_before as f64 / 1024.0,
                if reset {
                    ""
                } else {
                    "; peak not reset, includes earlier runs"
                }
            ),
        );
    }
}

/// The reference: a bare quick-xml event loop over a file, like `xmlscan`, that only counts
/// events. This bench runs it in a child process of itself (see `main`), so that it is
/// measured exactly like the command.
fn xmlscan(path: &Path) -> u64 {
    let mut reader = Reader::from_file(path).expect("open the file");
    let mut buf = Vec::new();
    let mut events = 0u64;
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Eof) => break,
            Ok(_) => events += 1,
            Err(e) => panic!(
                "{}: {e} at byte {}",
                path.display(),
                reader.buffer_position()
            ),
        }
        buf.clear();
    }
    events
}

/// The environment variable that makes this bench run [`xmlscan`] on a file and exit.
const XMLSCAN: &str = "CTM_BENCH_XMLSCAN";

/// What one child process cost: wall seconds, CPU seconds (user + system), peak RSS in kB.
#[derive(Clone, Copy)]
struct Cost {
    wall: f64,
    cpu: f64,
    rss_kb: u64,
}

/// `struct rusage` of Linux on 64-bit targets: two `timeval`s, then 14 `long`s (maxrss first).
#[repr(C)]
#[derive(Default)]
struct Rusage {
    utime: [i64; 2],
    stime: [i64; 2],
    maxrss: i64,
    rest: [i64; 13],
}

extern "C" {
    /// From the C library std already links: waits for `pid` and reports what it used.
    fn wait4(pid: i32, status: *mut i32, options: i32, rusage: *mut Rusage) -> i32;
}

/// Runs `cmd` with stdout and stderr to /dev/null and waits for it with `wait4`, which reports the child's
/// own CPU time and peak RSS. Panics if it fails.
fn run_child(mut cmd: Command) -> Cost {
    cmd.stdout(File::create("/dev/null").expect("/dev/null"))
        .stderr(Stdio::null());
    let start = Instant::now();
    // Reaped by `wait4` below, not by `Child::wait`.
    #[allow(clippy::zombie_processes)]
    let child = cmd.spawn().expect("spawn");
    let mut status = 0i32;
    let mut usage = Rusage::default();
    // SAFETY: `status` and `usage` are valid for writes and `usage` has the C layout; the child
    // is ours and not waited for elsewhere (std's `Child` is dropped without waiting).
    let pid = unsafe { wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let wall = start.elapsed().as_secs_f64();
    assert_eq!(pid, child.id() as i32, "wait4 failed");
    // WIFEXITED && WEXITSTATUS == 0
    assert!(
        status & 0x7f == 0 && (status >> 8) & 0xff == 0,
        "{cmd:?}: status {status:#x}"
    );
    let secs = |t: [i64; 2]| t[0] as f64 + t[1] as f64 / 1e6;
    Cost {
        wall,
        cpu: secs(usage.utime) + secs(usage.stime),
        rss_kb: usage.maxrss as u64,
    }
}

fn xmlscan_command(path: &Path) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("this bench's path"));
    cmd.env(XMLSCAN, path);
    cmd
}

fn parse_command(path: &Path, format: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ci-test-metrics"));
    cmd.args(["parse", "--format", format]).arg(path);
    cmd
}

/// Builds the command for one measured run over a file.
type Launcher = fn(&Path) -> Command;

/// Section 3: `parse --format table|json` as child processes beside the bare loop.
fn whole_process(medium: &Path, medium_bytes: u64, big: Option<(&Path, u64)>) {
    let mb = medium_bytes as f64 / 1e6;
    let runs: [(&str, Launcher); 3] = [
        ("bare quick-xml loop (xmlscan)", xmlscan_command),
        ("parse --format table", |p| parse_command(p, "table")),
        ("parse --format json > /dev/null", |p| {
            parse_command(p, "json")
        }),
    ];
    let mut best = [Cost {
        wall: f64::MAX,
        cpu: f64::MAX,
        rss_kb: 0,
    }; 3];
    // Interleaved rounds, so that a burst of load on the shared machine hits all alike.
    for _ in 0..5 {
        for (i, (_, command)) in runs.iter().enumerate() {
            let c = run_child(command(medium));
            best[i].wall = best[i].wall.min(c.wall);
            best[i].cpu = best[i].cpu.min(c.cpu);
            best[i].rss_kb = best[i].rss_kb.max(c.rss_kb);
        }
    }
    let reference = best[0];
    println!("whole process, 1,000,000 cases ({mb:.1} MB), best of 5 interleaved rounds:");
    for ((what, _), c) in runs.iter().zip(best) {
        println!(
            "  {what:<34} {:>6.3} s wall = {:>5.2}x bare, {:>6.3} s CPU = {:>5.2}x bare, {:>6.1} MB/s wall, peak RSS {:>6.1} MB",
            c.wall,
            c.wall / reference.wall,
            c.cpu,
            c.cpu / reference.cpu,
            mb / c.wall,
            c.rss_kb as f64 / 1024.0,
        );
    }
    let Some((path, bytes)) = big else { return };
    println!(
        "whole process, {:.2} GB file, one run each (target: peak RSS < 64 MB):",
        bytes as f64 / 1e9
    );
    for (what, command) in runs {
        let c = run_child(command(path));
        println!(
            "  {what:<34} {:>6.3} s wall, {:>6.3} s CPU, {:>6.1} MB/s wall, peak RSS {:>6.1} MB",
            c.wall,
            c.cpu,
            bytes as f64 / 1e6 / c.wall,
            c.rss_kb as f64 / 1024.0,
        );
    }
}
