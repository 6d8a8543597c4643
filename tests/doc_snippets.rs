//! The code blocks of README.md, clients/js/README.md and
//! clients/python/README.md run as written, against a `tickcastd` this test
//! starts, so a snippet that breaks fails the test command:
//!
//! - shell blocks, line by line: `cargo run --release --bin X --` is the
//!   binary cargo built for this test, `cargo run --example X --` the built
//!   example, `127.0.0.1:8080` the test daemon's address (it listens on a
//!   free port); a daemon line starts that daemon; a command that streams
//!   (a live table) runs for a few seconds and must print and not fail;
//! - JavaScript blocks in Node (browser ones with Node's network imports and
//!   WebSocket, the Node one in a package with the client and `ws`
//!   installed as the README says);
//! - Python blocks with the client on the path, in `target/pyenv`;
//! - Rust blocks as doctests (src/lib.rs), and the C and CMake blocks in
//!   ffi/tests/c_api.rs (`readme_*`) and its install test.
//!
//! A shell line this test does not know fails it, so a new snippet cannot
//! go untested by accident.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One fenced code block: its language tag and text.
struct Block {
    lang: String,
    text: String,
    at: String,
}

/// The fenced blocks of a Markdown file (also indented ones, as in lists).
fn blocks(file: &str) -> Vec<Block> {
    let text = std::fs::read_to_string(repo().join(file)).unwrap();
    let mut out = Vec::new();
    let mut open: Option<(String, usize, usize, String)> = None;
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        match (&mut open, trimmed.strip_prefix("```")) {
            (None, Some(lang)) => {
                open = Some((lang.trim().to_string(), indent, n + 1, String::new()))
            }
            (Some(_), Some("")) => {
                let (lang, _, start, text) = open.take().unwrap();
                out.push(Block {
                    lang,
                    text,
                    at: format!("{file}:{start}"),
                });
            }
            (Some((_, ind, _, body)), _) => {
                body.push_str(line.get(*ind..).unwrap_or(line.trim_start()));
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "{file}: a code block is not closed");
    out
}

/// Shell lines of a block: continuations joined, comments dropped.
fn shell_lines(text: &str) -> Vec<String> {
    let joined = text.replace("\\\n", " ");
    joined
        .lines()
        .map(
            |l| match l.find("  #").or_else(|| l.starts_with('#').then_some(0)) {
                Some(i) => l[..i].trim().to_string(),
                None => l.trim().to_string(),
            },
        )
        .filter(|l| !l.is_empty())
        .collect()
}

/// Lines run by another test, with the test that runs them.
const ELSEWHERE: &[(&str, &str)] = &[
    ("scripts/test", "the test command itself"),
    (
        "cargo build --release -p tickcast-ffi",
        "ffi/tests/c_api.rs readme_c_one_liner_builds_without_a_warning_as_written (the library those tests build)",
    ),
    ("cc -std=c11 ", "ffi/tests/c_api.rs readme_c_one_liner_builds_without_a_warning_as_written, exactly as written"),
    ("make -C ffi/examples", "ffi/tests/c_api.rs readme_make_examples_builds_every_example"),
    (
        "sudo make -C ffi install",
        "nobody as written (root); ffi/tests/c_api.rs installed_library_builds_with_pkg_config_and_cmake \
         runs the same install into a temporary prefix",
    ),
    ("make -C ffi install", "ffi/tests/c_api.rs installed_library_builds_with_pkg_config_and_cmake"),
    (
        "sudo ldconfig",
        "nobody (root, and it changes the machine); the install test finds the library by rpath",
    ),
    ("export PKG_CONFIG_PATH=", "ffi/tests/c_api.rs installed_library_builds_with_pkg_config_and_cmake"),
    ("cc app.c ", "ffi/tests/c_api.rs installed_library_builds_with_pkg_config_and_cmake"),
    (
        "pip install ./clients/python",
        "nobody as written (it changes the environment); the Python tests import the same client from the repository",
    ),
    (
        "npm install ./clients/js",
        "nobody as written (it changes a package); the Node tests import the same client from the repository",
    ),
];

/// A daemon started from a README line, and the address it took.
struct Running {
    daemon: Daemon,
    /// With `--tls-self-signed DIR`: its TLS port, and the directory used
    /// for the README's DIR.
    tls: Option<(u16, String)>,
}

/// The directory the README's `--tls-self-signed` lines name.
const README_TLS_DIR: &str = "/tmp/tickcast-tls";

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.daemon.child.kill();
        let _ = self.daemon.child.wait();
    }
}

/// Starts the daemon a README line describes, on a free loopback port.
fn start_daemon(args: &str) -> Running {
    let mut words: Vec<String> = args.split_whitespace().map(String::from).collect();
    match words.iter().position(|w| w == "--listen") {
        Some(i) => words[i + 1] = "127.0.0.1:0".into(),
        None => words.extend(["--listen".into(), "127.0.0.1:0".into()]),
    }
    // The file a README line names is the example next to it.
    static STARTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let self_signed = words.iter().any(|w| w == "--tls-self-signed");
    let tls_dir = match self_signed {
        true => {
            let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            scratch(&format!("tls{n}")).display().to_string()
        }
        false => String::new(),
    };
    for w in words.iter_mut() {
        if w == "tickcastd.toml" {
            *w = repo().join("tickcastd.example.toml").display().to_string();
        }
        if w == README_TLS_DIR {
            *w = tls_dir.clone();
        }
    }
    if self_signed {
        // Its own TLS port instead of 8443, which a parallel test may hold.
        words.extend(["--tls-listen".into(), "127.0.0.1:0".into()]);
    }
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let daemon = Daemon::start(&words);
    let tls = self_signed.then(|| (daemon.logged_tls_port(), tls_dir.clone()));
    Running { daemon, tls }
}

/// Runs `program` for at most `streaming` (a command that would stream
/// forever is stopped then); returns its output and whether it was stopped.
/// It runs in a process group of its own, and the whole group is stopped:
/// `sh -c` may run the command as its child, which would outlive `sh` and
/// hold the output pipes open.
fn run_for(cmd: &mut Command, streaming: Duration) -> (Output, bool) {
    use std::os::unix::process::CommandExt;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    let mut stopped = false;
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > streaming {
            let group = format!("-{}", child.id());
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            stopped = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (child.wait_with_output().unwrap(), stopped)
}

/// Runs one shell line through `sh`, with the binaries and address mapped.
fn run_client_line(line: &str, at: &str, running: &Running) {
    let addr = running.daemon.addr.to_string();
    let bin = |name: &str| match name {
        "tickcast" => env!("CARGO_BIN_EXE_tickcast").to_string(),
        "tickcastd" => env!("CARGO_BIN_EXE_tickcastd").to_string(),
        other => panic!("{at}: unknown binary {other}"),
    };
    let examples = Path::new(env!("CARGO_BIN_EXE_tickcast"))
        .parent()
        .unwrap()
        .join("examples");
    let mut mapped = line.replace("127.0.0.1:8080", &addr);
    if let Some((port, dir)) = &running.tls {
        mapped = mapped
            .replace("localhost:8443", &format!("localhost:{port}"))
            .replace(README_TLS_DIR, dir);
    }
    for name in ["tickcast", "tickcastd"] {
        mapped = mapped.replace(&format!("cargo run --release --bin {name} --"), &bin(name));
    }
    if let Some(rest) = mapped.strip_prefix("cargo run --example ") {
        let (name, args) = rest.split_once(" -- ").unwrap_or((rest, ""));
        mapped = format!("{} {args}", examples.join(name.trim()).display());
    }
    let (out, stopped) = run_for(
        Command::new("sh")
            .arg("-c")
            .arg(&mapped)
            .current_dir(repo()),
        Duration::from_secs(4),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stopped || out.status.success(),
        "{at}: `{line}` failed ({:?}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        !stdout.trim().is_empty(),
        "{at}: `{line}` printed nothing\n{stderr}"
    );
}

/// Every shell block of `file`, line by line; daemons in a block serve the
/// lines after them (the README's own order), the demo daemon otherwise.
fn run_shell_blocks(file: &str) -> usize {
    let mut ran = 0;
    let mut current: Option<Running> = None;
    for b in blocks(file).into_iter().filter(|b| b.lang == "sh") {
        for line in shell_lines(&b.text) {
            if let Some((_, why)) = ELSEWHERE.iter().find(|(p, _)| line.starts_with(p)) {
                eprintln!("{}: `{line}`: run by {why}", b.at);
                continue;
            }
            let daemon = line
                .strip_prefix("cargo run --release --bin tickcastd --")
                .or_else(|| line.strip_prefix("tickcastd "));
            if let Some(args) = daemon {
                drop(current.take()); // one daemon at a time, as a reader runs them
                current = Some(start_daemon(args));
                ran += 1;
                continue;
            }
            let known = [
                "cargo run --release --bin tickcast -- ",
                "cargo run --example ",
            ];
            assert!(
                known.iter().any(|k| line.starts_with(k)),
                "{}: `{line}` is a shell line this test does not know how to run: \
                 teach tests/doc_snippets.rs, or run it in another test and list it in ELSEWHERE",
                b.at
            );
            let running = current.get_or_insert_with(|| start_daemon("--demo"));
            run_client_line(&line, &b.at, running);
            ran += 1;
        }
    }
    ran
}

#[test]
fn readme_shell_lines_run_as_written() {
    let ran = run_shell_blocks("README.md");
    assert!(ran >= 6, "only {ran} README shell lines ran");
    // The clients' shell lines (their installs) are known too: a new one
    // that nothing runs fails here.
    run_shell_blocks("clients/js/README.md");
    run_shell_blocks("clients/python/README.md");
}

/// Runs a JavaScript snippet as an ES module in Node for a few seconds,
/// in `dir`; returns what it printed.
fn run_node(dir: &Path, code: &str, flags: &[&str], at: &str) -> String {
    let file = dir.join("snippet.mjs");
    std::fs::write(&file, code).unwrap();
    let (out, stopped) = run_for(
        Command::new("node").args(flags).arg(&file).current_dir(dir),
        Duration::from_secs(4),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        stopped || out.status.success(),
        "{at}: node failed ({:?}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tickcast-snippets-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Node 20 has neither network imports nor a global WebSocket by default;
/// a browser has both.
const BROWSER_LIKE: &[&str] = &[
    "--experimental-network-imports",
    "--experimental-websocket",
    "--no-warnings",
];

#[test]
fn javascript_snippets_run_in_node_as_written() {
    require_tool("node", "--version", "sudo apt-get install -y nodejs");
    let js_modules = repo().join("clients/js/node_modules/ws/package.json");
    assert!(
        js_modules.exists(),
        "clients/js/node_modules is missing: run scripts/test (or npm ci in clients/js)"
    );
    let running = start_daemon("--demo --publisher-token demo-publisher-token");
    let addr = running.daemon.addr.to_string();
    let mut ran = 0;
    // Browser snippets: the README's console one and its module import, and
    // the client README's <script type="module">.
    for (file, b) in blocks("README.md")
        .into_iter()
        .map(|b| ("README.md", b))
        .chain(
            blocks("clients/js/README.md")
                .into_iter()
                .map(|b| ("clients/js/README.md", b)),
        )
    {
        let code = match b.lang.as_str() {
            "js" => b.text.clone(),
            "html" => {
                let start = b
                    .text
                    .find("<script type=\"module\">")
                    .expect("a module script")
                    + 22;
                let end = b.text.find("</script>").unwrap();
                b.text[start..end].to_string()
            }
            _ => continue,
        };
        let code = code.replace("127.0.0.1:8080", &addr);
        let node_package = code.contains("from \"ws\"");
        let dir = scratch(&format!("js{ran}"));
        let printed = if node_package {
            // As the README says: a module package with `ws` and
            // `npm install ./clients/js` (here: the same packages linked).
            std::fs::write(dir.join("package.json"), r#"{"type":"module"}"#).unwrap();
            let nm = dir.join("node_modules");
            std::fs::create_dir_all(&nm).unwrap();
            std::os::unix::fs::symlink(repo().join("clients/js"), nm.join("tickcast-client"))
                .unwrap();
            std::os::unix::fs::symlink(repo().join("clients/js/node_modules/ws"), nm.join("ws"))
                .unwrap();
            std::fs::create_dir_all(nm.join("@msgpack")).unwrap();
            let codec = repo().join("clients/js/node_modules/@msgpack/msgpack");
            std::os::unix::fs::symlink(codec, nm.join("@msgpack/msgpack")).unwrap();
            run_node(&dir, &code, &[], &b.at)
        } else {
            run_node(&dir, &code, BROWSER_LIKE, &b.at)
        };
        // Every snippet shows the demo's values, snapshots first: a listener
        // registered too late would miss them.
        if code.contains("Publisher(") {
            // A publisher says what the server acknowledged: all of it.
            assert!(
                printed.contains("acknowledged"),
                "{}: printed {printed:?}",
                b.at
            );
            let counts: Vec<&str> = printed
                .split_whitespace()
                .filter(|w| w.parse::<u32>().is_ok())
                .collect();
            assert!(
                counts.len() == 2 && counts[0] == counts[1],
                "{}: {printed}",
                b.at
            );
            ran += 1;
            continue;
        }
        assert!(
            printed.contains("BTC-USD") || printed.contains("FX."),
            "{}: printed {printed:?}",
            b.at
        );
        let listens_to_snapshots = ["on(\"*\"", "on(\"snapshot\"", "onmessage"]
            .iter()
            .any(|l| code.contains(l));
        if listens_to_snapshots {
            assert!(
                printed.contains("snapshot"),
                "{file} {}: no snapshot seen: {printed:?}",
                b.at
            );
        }
        ran += 1;
    }
    assert_eq!(ran, 5, "the README's two, the client README's three");
}

#[test]
fn python_snippets_run_as_written() {
    let python = repo().join("target/pyenv/bin/python");
    let ready = Command::new(&python)
        .args(["-c", "import websockets, msgpack"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ready,
        "target/pyenv with websockets and msgpack is missing: run scripts/test, which makes it"
    );
    let mut ran = 0;
    // (file, the daemon its snippets expect, what they must print)
    let files = [
        ("README.md", "--demo", "FX."),
        (
            "clients/python/README.md",
            "--demo --publisher-token demo-publisher-token",
            "FX.",
        ),
        (
            "docs/PROTOCOL.md",
            "--demo --publisher-token demo-publisher-token",
            "'ack'",
        ),
    ];
    for (file, daemon, shows) in files {
        let running = start_daemon(daemon);
        let addr = running.daemon.addr.to_string();
        for b in blocks(file).into_iter().filter(|b| b.lang == "python") {
            let code = b.text.replace("127.0.0.1:8080", &addr);
            let dir = scratch(&format!("py{ran}"));
            let file = dir.join("snippet.py");
            std::fs::write(&file, code).unwrap();
            let (out, stopped) = run_for(
                Command::new(&python)
                    .arg(&file)
                    .env("PYTHONPATH", repo().join("clients/python"))
                    .env("PYTHONUNBUFFERED", "1"),
                Duration::from_secs(4),
            );
            let printed = String::from_utf8_lossy(&out.stdout);
            assert!(
                stopped || out.status.success(),
                "{}: python failed:\n{printed}\n{}",
                b.at,
                String::from_utf8_lossy(&out.stderr)
            );
            let shows = if b.text.contains("Publisher(") {
                "acknowledged"
            } else {
                shows
            };
            assert!(printed.contains(shows), "{}: printed {printed:?}", b.at);
            ran += 1;
        }
    }
    assert_eq!(
        ran, 4,
        "the README's, the client README's two, PROTOCOL.md's publisher"
    );
}
