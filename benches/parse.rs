//! `cargo bench --bench parse`: parser throughput and memory on generated pytest-style files.
//!
//! 1. 100,000 testcases (about 17 MB): parsed from memory (owned and lent cases, and into a
//!    `Report`) and streamed from a temp file.
//! 2. A 1 GB file written to a temp dir, streamed from disk with `parse_stream_ref` (cases lent,
//!    nothing allocated per case) and `parse_stream` (cases owned), then deleted.
//!    Set `CTM_BENCH_GB` to another size in GB (`0` skips it).
//!
//! Prints MB/s (1 MB = 10^6 bytes) by wall clock and per CPU second of the parsing thread (the
//! machine may be shared), and peak RSS (VmHWM from /proc/self/status, reset before each
//! run through /proc/self/clear_refs where the kernel allows it). Not a timed test: nothing fails
//! on slowness; the figures are for people. Targets: ≥ 400 MB/s, < 64 MB peak RSS at 1 GB.

use ci_test_metrics::junit::{self, Status};
use std::fs::File;
use std::io::{BufWriter, Write};
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
/// `target_bytes` long (one suite at least). Returns its size.
fn generate(out: &mut impl Write, target_bytes: u64, cases_per_suite: usize) -> u64 {
    let mut counter = Counter(out, 0);
    writeln!(counter, r#"<?xml version="1.0" encoding="utf-8"?>"#).unwrap();
    writeln!(counter, "<testsuites>").unwrap();
    let mut suite = 0;
    // At least one suite, then more until the target size is reached.
    loop {
        write_suite(&mut counter, suite, cases_per_suite).unwrap();
        suite += 1;
        if counter.1 >= target_bytes {
            break;
        }
    }
    writeln!(counter, "</testsuites>").unwrap();
    counter.1
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
    // `cargo bench` passes `--bench`; accept and ignore arguments.
    let gb: f64 = std::env::var("CTM_BENCH_GB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    let dir = tempfile::tempdir().expect("temp dir");

    // 1. 100,000 testcases.
    let mut doc = Vec::new();
    generate(&mut doc, 0, 100_000);
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
    if gb <= 0.0 {
        println!("big file: skipped (CTM_BENCH_GB=0)");
        return;
    }
    let target = (gb * 1e9) as u64;
    let path = dir.path().join("big.xml");
    let t = Instant::now();
    let written = {
        let mut w = BufWriter::with_capacity(1 << 20, File::create(&path).expect("create"));
        let n = generate(&mut w, target, 10_000);
        w.flush().expect("flush");
        n
    };
    println!(
        "generated: {:.2} GB in {:.1} s at {}",
        written as f64 / 1e9,
        t.elapsed().as_secs_f64(),
        path.display()
    );
    for lend in [true, false] {
        let reset = reset_peak_rss();
        let rss_before = current_rss_kb();
        let (n, secs, cpu) = timed(|| {
            let mut n = 0usize;
            let file = File::open(&path).unwrap();
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
    std::fs::remove_file(&path).expect("delete the big file");
}
