//! `rcs serve --cors-origin`: a real server process answers CORS preflights and requests of the
//! origins it was given, and gives no CORS header to any other origin.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

const RCS: &str = env!("CARGO_BIN_EXE_rcs");
const ALLOWED: &str = "http://127.0.0.1:5173";
const OTHER: &str = "http://evil.example:5173";

struct Serve {
    child: Child,
    addr: String,
}

impl Serve {
    fn start(extra: &[&str]) -> Serve {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("server.sqlite");
        let mut child = Command::new(RCS)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--db",
                db.to_str().unwrap(),
            ])
            .args(extra)
            .env("RCS_SERVE_TOKENS", "cors-token:records,owner=*")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rcs serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening: http://")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_owned();
        // The database lives as long as the process; the OS removes the temp dir's files later.
        std::mem::forget(dir);
        Serve { child, addr }
    }

    /// One raw HTTP/1.1 exchange; returns the status line and headers (lower-cased names).
    fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        stream.write_all(req.as_bytes()).unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        let head = text.split("\r\n\r\n").next().unwrap_or_default();
        let mut lines = head.lines();
        let status = lines.next().unwrap_or_default().to_owned();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Answer { status, headers }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Answer {
    status: String,
    headers: Vec<(String, String)>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn preflight(serve: &Serve, origin: &str) -> Answer {
    serve.request(
        "OPTIONS",
        "/v1/pull",
        &[
            ("Origin", origin),
            ("Access-Control-Request-Method", "POST"),
            (
                "Access-Control-Request-Headers",
                "authorization,content-type",
            ),
        ],
        "",
    )
}

#[test]
fn listed_origins_get_cors_headers_and_others_none() {
    let serve = Serve::start(&[
        "--cors-origin",
        ALLOWED,
        "--cors-origin",
        "https://app.test/",
    ]);

    let ok = preflight(&serve, ALLOWED);
    assert!(ok.status.contains(" 200"), "{}", ok.status);
    assert_eq!(ok.header("access-control-allow-origin"), Some(ALLOWED));
    let methods = ok
        .header("access-control-allow-methods")
        .unwrap_or_default();
    assert!(methods.contains("POST"), "{methods}");
    let allowed_headers = ok
        .header("access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        allowed_headers.contains("authorization"),
        "{allowed_headers}"
    );
    assert!(
        allowed_headers.contains("content-type"),
        "{allowed_headers}"
    );

    // The second origin was given with a trailing slash; browsers send none.
    let second = preflight(&serve, "https://app.test");
    assert_eq!(
        second.header("access-control-allow-origin"),
        Some("https://app.test")
    );

    let refused = preflight(&serve, OTHER);
    assert_eq!(refused.header("access-control-allow-origin"), None);

    // A real request from the listed origin carries the header (and still needs its token).
    let health = serve.request("GET", "/v1/health", &[("Origin", ALLOWED)], "");
    assert!(health.status.contains(" 200"), "{}", health.status);
    assert_eq!(health.header("access-control-allow-origin"), Some(ALLOWED));
    let unauthorized = serve.request(
        "POST",
        "/v1/pull",
        &[("Origin", ALLOWED), ("Content-Type", "application/json")],
        r#"{"scope":{"name":"records","params":{"owner":"a"}},"limit":10}"#,
    );
    assert!(
        unauthorized.status.contains(" 401"),
        "{}",
        unauthorized.status
    );
    assert_eq!(
        unauthorized.header("access-control-allow-origin"),
        Some(ALLOWED)
    );
}

#[test]
fn without_cors_origins_no_cors_headers() {
    let serve = Serve::start(&[]);
    let answer = preflight(&serve, ALLOWED);
    assert_eq!(answer.header("access-control-allow-origin"), None);
}

#[test]
fn bad_cors_origins_are_refused() {
    for bad in ["127.0.0.1:5173", "http://a.test/path", "*", "http://"] {
        let out = Command::new(RCS)
            .args(["serve", "--listen", "127.0.0.1:0", "--db", ":memory:"])
            .args(["--allow-all", "--cors-origin", bad])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{bad} accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--cors-origin"), "{bad}: {stderr}");
    }
}
