//! The HTTPS client every AWS call goes through (`aws::loader`: rustls with `ring`), against a
//! local `openssl s_server` with a throw-away CA. The other tests talk plain HTTP to loopback
//! servers, so without this one a build with no TLS client, or one that skips verification,
//! would pass them all.

use crate::common;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (install the Debian package `openssl`)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A self-signed CA in `dir`: `{ca}.pem` and `{ca}.key`.
fn make_ca(dir: &Path, ca: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=ctm test CA",
            "-keyout",
            &format!("{ca}.key"),
            "-out",
            &format!("{ca}.pem"),
        ],
    );
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `openssl s_server -www` on a free loopback port: it answers any GET with HTTP 200 and a page
/// of HTML, which is all this test needs (the SDK then fails to read it as S3's XML).
fn start_server(dir: &Path) -> (Server, u16) {
    make_ca(dir, "ca");
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
        ],
    );
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "leaf.ext",
            "-out",
            "leaf.pem",
        ],
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("openssl")
        .args([
            "s_server", "-quiet", "-www", "-cert", "leaf.pem", "-key", "leaf.key",
        ])
        .arg("-accept")
        .arg(format!("127.0.0.1:{port}"))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start openssl s_server");
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "openssl s_server did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (server, port)
}

/// `analyze` against the TLS server, trusting only the CA in `ca_file`; returns its stderr.
fn analyze_over_tls(port: u16, ca_file: &Path) -> String {
    let out = common::bin()
        .args(["analyze", "--store", "s3://ctm-tls"])
        .env("AWS_ENDPOINT_URL", format!("https://127.0.0.1:{port}"))
        .env("AWS_MAX_ATTEMPTS", "1")
        .env("SSL_CERT_FILE", ca_file)
        .env_remove("SSL_CERT_DIR")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "the store error exit code");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn https_calls_complete_and_verify_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, port) = start_server(dir.path());

    // Trusting the server's CA, the handshake completes and an HTTP answer comes back.
    let trusted = analyze_over_tls(port, &dir.path().join("ca.pem"));
    assert!(
        trusted.contains("(HTTP 200)"),
        "expected an answer over TLS:\n{trusted}"
    );

    // Trusting another CA only, the same server is refused.
    make_ca(dir.path(), "other");
    let refused = analyze_over_tls(port, &dir.path().join("other.pem"));
    assert!(
        refused.contains("invalid peer certificate") && !refused.contains("HTTP 200"),
        "expected a certificate error:\n{refused}"
    );
}
