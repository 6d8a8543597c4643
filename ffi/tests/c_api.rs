//! Compiles the C tests in ffi/tests/c/ with `-Wall -Wextra -Wpedantic -Werror`
//! against the real libtickcast and runs them: plainly, under
//! AddressSanitizer, and under valgrind. The publishing test is checked by a
//! real WebSocket subscriber.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;
use tungstenite::Message;

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where libtickcast.so and libtickcast.a are. `cargo test` builds only the
/// Rust test harnesses, not the C libraries, so the first test to get here
/// builds them with cargo into a target directory of their own (the one this
/// test run holds is locked).
fn lib_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let target = exe.parent().unwrap().parent().unwrap().parent().unwrap();
        let target = target.join("c-abi");
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", "tickcast-ffi", "--lib"])
            .env("CARGO_TARGET_DIR", &target)
            .current_dir(crate_dir())
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building libtickcast failed");
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", "tickcast", "--bin", "tickcastd"])
            .env("CARGO_TARGET_DIR", &target)
            .current_dir(crate_dir())
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building tickcastd failed");
        let dir = target.join("debug");
        assert!(dir.join("libtickcast.so").exists() && dir.join("libtickcast.a").exists());
        dir
    })
    .clone()
}

/// Fails the test, naming the exact command that installs it, unless
/// `program` runs (`scripts/test` installs every tool the tests use).
fn require_tool(program: &str, install: &str) {
    let runs = Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        runs,
        "{program} not found; install it with `{install}` (scripts/test does)"
    );
}

fn out_dir() -> PathBuf {
    let d = lib_dir().join("c-tests");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Compiles one C test. `flavor` is "plain", "asan" or "static".
fn compile(source: &str, flavor: &str) -> PathBuf {
    let src = crate_dir().join("tests/c").join(source);
    let out = out_dir().join(format!("{}-{flavor}", source.trim_end_matches(".c")));
    let lib = lib_dir();
    let compiler = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    require_tool(&compiler, "sudo apt-get install -y gcc");
    let mut cc = Command::new(&compiler);
    cc.args([
        "-std=c11",
        "-g",
        "-O1",
        "-Wall",
        "-Wextra",
        "-Wpedantic",
        "-Werror",
        "-D_POSIX_C_SOURCE=200809L",
    ])
    .arg("-I")
    .arg(crate_dir().join("../include"))
    .arg(&src)
    .arg("-o")
    .arg(&out);
    match flavor {
        "static" => {
            cc.arg(lib.join("libtickcast.a"))
                .args(["-lpthread", "-ldl", "-lm"]);
        }
        _ => {
            if flavor == "asan" {
                cc.args(["-fsanitize=address", "-fno-omit-frame-pointer"]);
            }
            cc.arg("-L")
                .arg(&lib)
                .arg(format!("-Wl,-rpath,{}", lib.display()));
            cc.args(["-ltickcast", "-lpthread", "-lm"]);
        }
    }
    let status = cc.status().expect("a C compiler (cc) is installed");
    assert!(status.success(), "compiling {source} ({flavor}) failed");
    out
}

fn valgrind(program: &Path) -> Command {
    let mut c = Command::new("valgrind");
    c.args([
        "--quiet",
        "--error-exitcode=99",
        "--leak-check=full",
        "--show-leak-kinds=definite,indirect",
        "--errors-for-leak-kinds=definite,indirect",
    ])
    .arg(program);
    c
}

fn asan(program: &Path) -> Command {
    let mut c = Command::new(program);
    c.env(
        "ASAN_OPTIONS",
        "detect_leaks=1:abort_on_error=0:exitcode=98",
    );
    c
}

/// The library the C programs were linked with, found by their RUNPATH:
/// `cargo test` puts target/debug/deps on LD_LIBRARY_PATH, which wins over
/// RUNPATH, and a libtickcast.so left there by an earlier `cargo build`
/// would be an older build than the one just made.
fn own_library(cmd: &mut Command) -> &mut Command {
    cmd.env_remove("LD_LIBRARY_PATH")
}

fn run_to_end(mut cmd: Command, what: &str) {
    let out = own_library(&mut cmd)
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains(" passed, 0 failed"), "{what}: {stdout}");
}

/// The next message; a read interrupted by a signal (EINTR, met once in a
/// clean-clone CI run, in the valgrind test) is tried again, as std's own
/// reads are not.
fn read_event<S: std::io::Read + std::io::Write>(ws: &mut tungstenite::WebSocket<S>) -> Message {
    loop {
        match ws.read() {
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
            other => return other.unwrap(),
        }
    }
}

/// Runs publish_threads under the driver protocol and checks, as a WebSocket
/// subscriber, that each of the four topics arrives complete and in order.
fn run_publisher(mut cmd: Command, what: &str) {
    let mut child = own_library(&mut cmd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("PORT line").unwrap();
    let port: u16 = first
        .strip_prefix("PORT ")
        .expect("PORT n")
        .parse()
        .unwrap();

    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let (mut ws, _) = tungstenite::client(format!("ws://127.0.0.1:{port}/ws"), stream).unwrap();
    ws.send(Message::text(
        r#"{"op":"subscribe","id":1,"topics":["C.*"]}"#,
    ))
    .unwrap();
    match read_event(&mut ws) {
        Message::Text(t) => assert!(t.contains("\"subscribed\""), "{t}"),
        other => panic!("{other:?}"),
    }
    writeln!(stdin, "GO").unwrap();

    const PER_THREAD: u64 = 2000;
    let mut next: HashMap<String, u64> = (0..4).map(|t| (format!("C.{t}"), 1)).collect();
    let mut remaining = 4 * PER_THREAD;
    // Order is per topic: with several routers, C.0's marks and C.1's clear
    // may come before another topic's last updates. They are kept, by
    // topic, and checked after.
    let mut later: HashMap<String, Vec<serde_json::Value>> = HashMap::new();
    while remaining > 0 {
        let Message::Text(t) = read_event(&mut ws) else {
            continue;
        };
        let ev: serde_json::Value = serde_json::from_str(&t).unwrap();
        let topic = ev["topic"].as_str().unwrap_or_default().to_string();
        if ev["event"] != "update" || later.contains_key(&topic) {
            later.entry(topic).or_default().push(ev);
            continue;
        }
        let topic = ev["topic"].as_str().unwrap().to_string();
        let want = next
            .get_mut(&topic)
            .unwrap_or_else(|| panic!("unexpected topic {topic}"));
        let seq = ev["seq"].as_u64().unwrap();
        assert_eq!(seq, *want, "{what}: {topic} out of order or gap");
        // One thread per topic, publishing i = 0, 1, 2, ... in order.
        assert_eq!(ev["bid"].as_f64(), Some((seq - 1) as f64), "{what}: {ev}");
        assert_eq!(ev["ts"].as_u64(), Some(seq), "{what}: {ev}");
        *want += 1;
        remaining -= 1;
    }
    // Then the topic operations, in the order the C program made them,
    // per topic: C.0 stale then live; C.1 cleared, then its seq 1 again.
    let mut of = |topic: &str, n: usize| {
        while later.get(topic).map_or(0, Vec::len) < n {
            if let Message::Text(t) = read_event(&mut ws) {
                let ev: serde_json::Value = serde_json::from_str(&t).unwrap();
                let t = ev["topic"].as_str().unwrap_or_default().to_string();
                later.entry(t).or_default().push(ev);
            }
        }
        later[topic].clone()
    };
    let status = |state: &str| serde_json::json!({"event":"status","topic":"C.0","state":state});
    assert_eq!(of("C.0", 2), [status("stale"), status("live")], "{what}");
    let c1 = of("C.1", 2);
    assert_eq!(
        c1[0],
        serde_json::json!({"event":"cleared","topic":"C.1"}),
        "{what}"
    );
    let restarted = c1[1].clone();
    assert_eq!(restarted["seq"], 1, "{what}: {restarted}");
    assert!(restarted["epoch"].is_string(), "{what}: {restarted}");
    assert_eq!(lines.next().expect("DONE line").unwrap(), "DONE");
    writeln!(stdin, "QUIT").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{what} exited with {}:\n{stderr}",
        out.status
    );
}

#[test]
fn c_api_errors_plain_and_static() {
    run_to_end(Command::new(compile("api_errors.c", "plain")), "api_errors");
    run_to_end(
        Command::new(compile("api_errors.c", "static")),
        "api_errors (static)",
    );
}

/// `tickcast_config_load_toml` with the JWT settings, and a C remote
/// publisher whose JWT may write only `FX.*` (plain and under ASan).
#[test]
fn c_publisher_with_a_publish_scope_gets_forbidden_for_other_topics() {
    let secret = "a shared secret for the C publish-scope test";
    let secret_file = out_dir().join("jwt.secret");
    std::fs::write(&secret_file, secret).unwrap();
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"exp": exp, "sub": "c-feed", "publish": ["FX.*"]}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    for (exe, what) in [
        (
            Command::new(compile("publish_scope.c", "plain")),
            "publish_scope",
        ),
        (
            asan(&compile("publish_scope.c", "asan")),
            "publish_scope under ASan",
        ),
    ] {
        let mut cmd = exe;
        cmd.arg(&secret_file).arg(&token);
        run_to_end(cmd, what);
    }
}

#[test]
fn c_publishers_on_four_threads_deliver_every_update_in_order() {
    run_publisher(
        Command::new(compile("publish_threads.c", "plain")),
        "publish_threads",
    );
}

#[test]
fn c_tests_pass_under_address_sanitizer() {
    run_to_end(
        asan(&compile("api_errors.c", "asan")),
        "api_errors under ASan",
    );
    run_publisher(
        asan(&compile("publish_threads.c", "asan")),
        "publish_threads under ASan",
    );
}

#[test]
fn c_tests_pass_under_valgrind() {
    require_tool("valgrind", "sudo apt-get install -y valgrind");
    run_to_end(
        valgrind(&compile("api_errors.c", "plain")),
        "api_errors under valgrind",
    );
    run_publisher(
        valgrind(&compile("publish_threads.c", "plain")),
        "publish_threads under valgrind",
    );
}

/// Builds an example from ffi/examples exactly as a user would, with only the
/// header and the shared library; returns the program.
fn compile_example(source: &str, compiler: &str, std: &str) -> PathBuf {
    let lib = lib_dir();
    let out = out_dir().join(source.replace('.', "_"));
    require_tool(
        compiler,
        if compiler == "c++" {
            "sudo apt-get install -y g++"
        } else {
            "sudo apt-get install -y gcc"
        },
    );
    let status = Command::new(compiler)
        .args([std, "-O1", "-Wall", "-Wextra", "-Wpedantic", "-Werror"])
        .arg("-I")
        .arg(crate_dir().join("../include"))
        .arg(crate_dir().join("examples").join(source))
        .arg("-o")
        .arg(&out)
        .arg("-L")
        .arg(&lib)
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .args(["-ltickcast", "-lpthread"])
        .status()
        .expect("compiler runs");
    assert!(status.success(), "compiling {source} failed");
    out
}

/// Builds an example, runs it for a moment and subscribes to what it publishes.
fn run_example(source: &str, compiler: &str, std: &str, topic: &str) {
    let out = compile_example(source, compiler, std);
    check_example_serves(&out, source, topic);
}

/// An example's standard output, a line at a time.
type ExampleLines = std::io::Lines<BufReader<std::process::ChildStdout>>;

/// Starts a built example for `seconds` on a free port, reads the port
/// from its first line (`…127.0.0.1:PORT/…`), and connects a WebSocket
/// subscriber to it. The rest of its output is in the returned lines.
fn start_example(
    out: &Path,
    seconds: &str,
) -> (
    std::process::Child,
    ExampleLines,
    tungstenite::WebSocket<TcpStream>,
) {
    let mut child = own_library(&mut Command::new(out))
        .args([seconds, "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let port: u16 = first
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {first:?}"));
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (ws, _) = tungstenite::client(format!("ws://127.0.0.1:{port}/ws"), stream).unwrap();
    (child, lines, ws)
}

/// Runs a built feed-handler example and checks with a real subscriber that
/// it serves consistent prices on `topic`.
fn check_example_serves(out: &Path, source: &str, topic: &str) {
    // Its output is kept open until it exits: a closed pipe would kill it.
    let (mut child, _lines, mut ws) = start_example(out, "2");
    ws.send(Message::text(format!(
        r#"{{"op":"subscribe","id":1,"topics":["{topic}"]}}"#
    )))
    .unwrap();
    let mut prices = 0;
    while prices < 5 {
        if let Message::Text(t) = read_event(&mut ws) {
            let ev: serde_json::Value = serde_json::from_str(&t).unwrap();
            if ev["event"] == "update" || ev["event"] == "snapshot" {
                assert!(
                    ev["bid"].as_f64().unwrap() < ev["ask"].as_f64().unwrap(),
                    "{ev}"
                );
                prices += 1;
            }
        }
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "{source} exited with {status}");
}

#[test]
fn c_example_feed_handler_builds_and_publishes() {
    run_example("feed_handler.c", "cc", "-std=c11", "*");
}

#[test]
fn cpp_example_with_raii_wrappers_builds_and_publishes() {
    run_example("feed_handler.cpp", "c++", "-std=c++17", "FUT.ES");
}

/// A separate tickcastd process and a separate C publisher process: a
/// subscriber receives every update in order, and a late one a snapshot.
#[test]
fn c_remote_publisher_into_a_separate_daemon() {
    let lib = lib_dir();
    let exe = compile("remote_publish.c", "plain");
    let dir = out_dir();
    let cfg = dir.join("remote.toml");
    // The subscriber below is a debug build sharing two cores with everything
    // else: a high conflation mark keeps a slow moment from skipping updates.
    std::fs::write(
        &cfg,
        "[auth]\npublisher_tokens = [\"c-publisher-token\"]\n\
         [limits]\nconflate_bytes = 67108864\nmax_outbound_bytes = 134217728\n",
    )
    .unwrap();
    let mut daemon = KillOnDrop::new(
        Command::new(lib.join("tickcastd"))
            .args(["--listen", "127.0.0.1:0", "--config"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut log = BufReader::new(daemon.stderr.take().unwrap()).lines();
    let port: u16 = loop {
        let line = log.next().expect("daemon log").unwrap();
        if let Some(rest) = line.split(" listening on 127.0.0.1:").nth(1) {
            break rest.split(':').next().unwrap().parse().unwrap();
        }
    };
    std::thread::spawn(move || for _ in log {});

    let subscribe = |topics: &str| {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let (mut ws, _) = tungstenite::client(format!("ws://127.0.0.1:{port}/ws"), stream).unwrap();
        ws.send(Message::text(format!(
            r#"{{"op":"subscribe","id":1,"topics":[{topics}]}}"#
        )))
        .unwrap();
        let Message::Text(ack) = read_event(&mut ws) else {
            panic!()
        };
        assert!(ack.contains("subscribed"), "{ack}");
        ws
    };
    let mut ws = subscribe(r#""RC.*""#);
    let mut child = KillOnDrop::new(
        own_library(&mut Command::new(&exe))
            .arg(format!("ws://127.0.0.1:{port}/publish"))
            .arg("c-publisher-token")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    writeln!(child.stdin.as_mut().unwrap(), "GO").unwrap();
    let mut next: HashMap<String, u64> = [("RC.A".to_string(), 1), ("RC.B".to_string(), 1)].into();
    for _ in 0..6000 {
        let Message::Text(t) = read_event(&mut ws) else {
            continue;
        };
        let ev: serde_json::Value = serde_json::from_str(&t).unwrap();
        let topic = ev["topic"].as_str().unwrap().to_string();
        let want = next.get_mut(&topic).unwrap();
        assert_eq!(ev["seq"].as_u64(), Some(*want), "{ev}");
        assert_eq!(ev["bid"].as_f64(), Some((*want - 1) as f64), "{ev}");
        *want += 1;
    }
    let out = child.wait_with_output();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("DONE 0 ok"), "{stdout}");
    let mut late = subscribe(r#""RC.B""#);
    let Message::Text(t) = late.read().unwrap() else {
        panic!()
    };
    let snap: serde_json::Value = serde_json::from_str(&t).unwrap();
    assert_eq!(
        (snap["event"].as_str(), snap["seq"].as_u64()),
        (Some("snapshot"), Some(3000)),
        "{snap}"
    );
    // SAFETY: kill(2) on our child.
    unsafe { libc_kill(daemon.id() as i32, 15) };
    assert!(daemon.wait().unwrap().success());
}

/// A child process that is killed if the test fails before it ends, so no
/// daemon outlives a failed test (and holds the test runner's output open).
/// Always `Some` until `wait_with_output` takes it.
struct KillOnDrop(Option<std::process::Child>);

impl KillOnDrop {
    fn new(child: std::process::Child) -> Self {
        KillOnDrop(Some(child))
    }

    /// std's `wait_with_output`: the child has ended, nothing left to kill.
    fn wait_with_output(mut self) -> std::process::Output {
        self.0.take().unwrap().wait_with_output().unwrap()
    }
}

impl std::ops::Deref for KillOnDrop {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        self.0.as_ref().unwrap()
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.0.as_mut().unwrap()
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

#[test]
fn c_example_remote_feed_builds_with_only_the_header_and_library() {
    let out = compile_example("remote_feed.c", "cc", "-std=c11");
    // Without a server it must fail cleanly with a message, not crash.
    let run = own_library(&mut Command::new(&out))
        .args(["ws://127.0.0.1:1/publish", "some-token-123"])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("nothing listens at that address"), "{err}");
}

/// `make -C ffi install` into a temporary prefix, then the C and C++
/// examples built as a user of the installed library would: with
/// pkg-config, and with CMake's find_package (shared and static), each run
/// against a real subscriber.
#[test]
fn installed_library_builds_with_pkg_config_and_cmake() {
    require_tool("make", "sudo apt-get install -y make");
    require_tool("pkg-config", "sudo apt-get install -y pkgconf");
    require_tool("cmake", "sudo apt-get install -y cmake");
    let prefix = out_dir().join("prefix");
    let _ = std::fs::remove_dir_all(&prefix);
    let status = Command::new("make")
        .args(["-C", crate_dir().to_str().unwrap(), "install"])
        .arg(format!("PREFIX={}", prefix.display()))
        .arg(format!("CARGO={}", env!("CARGO")))
        .status()
        .unwrap();
    assert!(status.success(), "make install failed");
    let lib = prefix.join("lib");
    for f in [
        "libtickcast.so",
        "libtickcast.so.0.1",
        "libtickcast.so.0.1.0",
        "libtickcast.a",
    ] {
        assert!(lib.join(f).exists(), "{f} not installed");
    }
    assert!(prefix.join("include/tickcast.h").exists());
    // The soname a program records is the versioned one.
    let dynamic = Command::new("readelf")
        .args(["-d", lib.join("libtickcast.so.0.1.0").to_str().unwrap()])
        .output()
        .unwrap();
    let dynamic = String::from_utf8_lossy(&dynamic.stdout);
    assert!(
        dynamic.contains("Library soname: [libtickcast.so.0.1]"),
        "{dynamic}"
    );

    // pkg-config.
    let pc = Command::new("pkg-config")
        .args(["--cflags", "--libs", "tickcast"])
        .env("PKG_CONFIG_PATH", lib.join("pkgconfig"))
        .output()
        .unwrap();
    assert!(
        pc.status.success(),
        "{}",
        String::from_utf8_lossy(&pc.stderr)
    );
    let flags: Vec<String> = String::from_utf8_lossy(&pc.stdout)
        .split_whitespace()
        .map(String::from)
        .collect();
    assert!(flags.iter().any(|f| f == "-ltickcast"), "{flags:?}");
    let c_out = out_dir().join("feed_handler_pkgconfig");
    let status = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Werror"])
        .arg(crate_dir().join("examples/feed_handler.c"))
        .args(&flags)
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .args(["-lpthread", "-o"])
        .arg(&c_out)
        .status()
        .unwrap();
    assert!(status.success(), "cc with pkg-config flags failed");
    let needed = Command::new("readelf")
        .arg("-d")
        .arg(&c_out)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&needed.stdout).contains("Shared library: [libtickcast.so.0.1]")
    );
    check_example_serves(&c_out, "feed_handler.c (pkg-config)", "*");

    // CMake: a C++ program on the shared library, a C one on the static one.
    let project = out_dir().join("cmake-consumer");
    let _ = std::fs::remove_dir_all(&project);
    std::fs::create_dir_all(&project).unwrap();
    for f in ["feed_handler.c", "feed_handler.cpp"] {
        std::fs::copy(crate_dir().join("examples").join(f), project.join(f)).unwrap();
    }
    std::fs::write(
        project.join("CMakeLists.txt"),
        "cmake_minimum_required(VERSION 3.16)\n\
         project(consumer C CXX)\n\
         set(CMAKE_CXX_STANDARD 17)\n\
         find_package(tickcast 0.1 REQUIRED)\n\
         add_executable(feed_handler_cpp feed_handler.cpp)\n\
         target_link_libraries(feed_handler_cpp PRIVATE tickcast::tickcast)\n\
         add_executable(feed_handler_static feed_handler.c)\n\
         target_compile_definitions(feed_handler_static PRIVATE _DEFAULT_SOURCE)\n\
         target_link_libraries(feed_handler_static PRIVATE tickcast::tickcast_static)\n",
    )
    .unwrap();
    let build = project.join("build");
    let configure = Command::new("cmake")
        .arg("-S")
        .arg(&project)
        .arg("-B")
        .arg(&build)
        .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix.display()))
        .output()
        .unwrap();
    assert!(
        configure.status.success(),
        "cmake configure:\n{}",
        String::from_utf8_lossy(&configure.stderr)
    );
    let compile = Command::new("cmake")
        .arg("--build")
        .arg(&build)
        .output()
        .unwrap();
    assert!(
        compile.status.success(),
        "cmake build:\n{}",
        String::from_utf8_lossy(&compile.stdout)
    );
    check_example_serves(
        &build.join("feed_handler_cpp"),
        "feed_handler.cpp (CMake)",
        "FUT.ES",
    );
    check_example_serves(
        &build.join("feed_handler_static"),
        "feed_handler.c (CMake, static)",
        "*",
    );
    // find_package refuses an incompatible version.
    let wrong = project.join("CMakeLists.txt");
    std::fs::write(
        &wrong,
        "cmake_minimum_required(VERSION 3.16)\nproject(c C)\nfind_package(tickcast 0.2 REQUIRED)\n",
    )
    .unwrap();
    let refused = Command::new("cmake")
        .arg("-S")
        .arg(&project)
        .arg("-B")
        .arg(project.join("build-wrong"))
        .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix.display()))
        .output()
        .unwrap();
    assert!(
        !refused.status.success(),
        "find_package(tickcast 0.2) accepted 0.1"
    );
}

/// Runs interest.c under the driver protocol: a WebSocket subscriber
/// subscribes to a topic and a pattern, gets the price the C callback
/// published for the topic, then drops its socket; the program must print
/// each event, in order, and exit cleanly.
fn run_interest(cmd: Command, what: &str) {
    let mut c = Driven::start(cmd, what);
    let mut ws = c.subscriber();
    ws.send(Message::text(
        r#"{"op":"subscribe","id":1,"topics":["IN.1"]}"#,
    ))
    .unwrap();
    assert_eq!(c.line(), "INTEREST IN.1 0 1", "{what}");
    // The callback answered with a price: the subscriber gets it.
    let update = loop {
        if let Message::Text(t) = read_event(&mut ws) {
            let ev: serde_json::Value = serde_json::from_str(&t).unwrap();
            if ev["event"] == "update" {
                break ev;
            }
        }
    };
    assert_eq!(update["bid"], 42.0, "{what}: {update}");
    ws.send(Message::text(
        r#"{"op":"subscribe","id":2,"topics":["IN.*"]}"#,
    ))
    .unwrap();
    assert_eq!(c.line(), "INTEREST IN.* 1 1", "{what}");
    // Dropped without a close frame.
    ws.get_ref().shutdown(std::net::Shutdown::Both).unwrap();
    drop(ws);
    let mut gone = vec![c.line(), c.line()];
    gone.sort();
    assert_eq!(gone, ["INTEREST IN.* 1 0", "INTEREST IN.1 0 0"], "{what}");
    c.quit(what);
}

#[test]
fn c_interest_callback_hears_first_and_last_subscribers_plain_asan_and_valgrind() {
    run_interest(Command::new(compile("interest.c", "plain")), "interest");
    run_interest(asan(&compile("interest.c", "asan")), "interest under ASan");
    require_tool("valgrind", "sudo apt-get install -y valgrind");
    run_interest(
        valgrind(&compile("interest.c", "plain")),
        "interest under valgrind",
    );
}

/// The on-demand example publishes only what a subscriber asked for, and
/// says so as it subscribes and unsubscribes upstream.
#[test]
fn c_example_on_demand_feed_publishes_only_what_is_wanted() {
    let out = compile_example("on_demand_feed.c", "cc", "-std=c11");
    let (mut child, mut lines, mut ws) = start_example(&out, "3");
    ws.send(Message::text(
        r#"{"op":"subscribe","id":1,"topics":["OD.SYM3"]}"#,
    ))
    .unwrap();
    assert_eq!(
        lines.next().unwrap().unwrap(),
        "upstream: subscribe OD.SYM3"
    );
    fn next_event(ws: &mut tungstenite::WebSocket<TcpStream>) -> serde_json::Value {
        loop {
            if let Message::Text(t) = read_event(ws) {
                return serde_json::from_str(&t).unwrap();
            }
        }
    }
    let mut prices = 0;
    while prices < 5 {
        let ev = next_event(&mut ws);
        if ev["event"] == "update" {
            assert_eq!(ev["topic"], "OD.SYM3", "{ev}");
            prices += 1;
        }
    }
    ws.send(Message::text(r#"{"op":"topics","id":2}"#)).unwrap();
    let listed = loop {
        let ev = next_event(&mut ws);
        if ev["event"] == "topics" {
            break ev;
        }
    };
    assert_eq!(
        listed["topics"],
        serde_json::json!(["OD.SYM3"]),
        "only what was wanted"
    );
    ws.send(Message::text(
        r#"{"op":"unsubscribe","id":3,"topics":["OD.SYM3"]}"#,
    ))
    .unwrap();
    assert_eq!(
        lines.next().unwrap().unwrap(),
        "upstream: unsubscribe OD.SYM3"
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "on_demand_feed exited with {status}");
}

/// Runs book.c under the driver protocol: a WebSocket subscriber at depth
/// 10 gets the book the C program published (its checksum computed here
/// from the levels), then the change as a book_update.
fn run_book(cmd: Command, what: &str) {
    let mut c = Driven::start(cmd, what);
    let pairs = |v: &serde_json::Value| -> Vec<(f64, f64)> {
        let list = v.as_array().unwrap().iter();
        list.map(|l| (l[0].as_f64().unwrap(), l[1].as_f64().unwrap()))
            .collect()
    };
    // Subscribe once the book is numbered (it is listed by `topics`).
    let mut ws = c.subscriber();
    let listed = (0..100).any(|_| {
        ws.send(Message::text(r#"{"op":"topics","id":9}"#)).unwrap();
        let reply = read_event(&mut ws).into_text().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        reply.contains("C.book")
    });
    assert!(listed, "{what}: the book was never published");
    ws.send(Message::text(
        r#"{"op":"subscribe","id":1,"topics":["C.book"],"depth":10}"#,
    ))
    .unwrap();
    let mut next = || loop {
        if let Message::Text(t) = read_event(&mut ws) {
            let ev: serde_json::Value = serde_json::from_str(&t).unwrap();
            if ev["event"] != "subscribed" {
                return ev;
            }
        }
    };
    let book = next();
    assert_eq!(book["event"], "book", "{what}: {book}");
    let (bids, asks) = (pairs(&book["bids"]), pairs(&book["asks"]));
    assert_eq!(bids.len(), 10, "{what}: cut to the depth");
    assert_eq!((bids[0], asks[0]), ((99.0, 1.0), (101.0, 2.0)), "{what}");
    assert_eq!(bids[9], (90.0, 10.0), "{what}");
    assert_eq!(
        book["checksum"].as_u64().unwrap(),
        tickcast::book_checksum(&bids, &asks) as u64,
        "{what}"
    );
    c.say("CHANGE");
    let ev = next();
    assert_eq!(ev["event"], "book_update", "{what}: {ev}");
    // 99 goes and 89 enters the window from below; 100.5 is the new best
    // ask and pushes 110 out.
    assert_eq!(
        ev["bids"],
        serde_json::json!([[99.0, 0.0], [89.0, 11.0]]),
        "{what}"
    );
    assert_eq!(
        ev["asks"],
        serde_json::json!([[100.5, 4.0], [110.0, 0.0]]),
        "{what}"
    );
    c.quit(what);
}

#[test]
fn c_publishes_an_order_book_plain_and_asan() {
    run_book(Command::new(compile("book.c", "plain")), "book");
    run_book(asan(&compile("book.c", "asan")), "book under ASan");
}

/// Runs extra_fields.c: a subscriber (JSON) gets the fields the C program
/// set by index, by their names, from both publish paths.
fn run_extra_fields(cmd: Command, what: &str) {
    let c = Driven::start(cmd, what);
    let mut ws = c.subscriber();
    ws.send(Message::text(
        r#"{"op":"subscribe","id":1,"topics":["OPT.*"]}"#,
    ))
    .unwrap();
    let mut seen = HashMap::new();
    while seen.len() < 2 {
        if let Message::Text(t) = read_event(&mut ws) {
            let ev: serde_json::Value = serde_json::from_str(&t).unwrap();
            if ev["event"] == "snapshot" || ev["event"] == "update" {
                seen.insert(ev["topic"].as_str().unwrap().to_string(), ev);
            }
        }
    }
    let opt = &seen["OPT.C"];
    assert_eq!(
        (
            opt["last"].as_f64(),
            opt["iv"].as_f64(),
            opt["delta"].as_f64()
        ),
        (Some(12.5), Some(0.31), Some(-0.42)),
        "{what}: {opt}"
    );
    assert!(
        opt.get("open_interest").is_none(),
        "{what}: unset fields are absent"
    );
    assert_eq!(seen["OPT.R"]["open_interest"], 1500.0, "{what}");
    c.quit(what);
}

#[test]
fn c_publishes_extra_fields_in_process_and_remotely_plain_and_asan() {
    run_extra_fields(
        Command::new(compile("extra_fields.c", "plain")),
        "extra_fields",
    );
    run_extra_fields(
        asan(&compile("extra_fields.c", "asan")),
        "extra_fields under ASan",
    );
}

/// A C test program run under the driver protocol: stdin and stdout piped,
/// its first line `PORT <n>` read.
struct Driven {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
    port: u16,
}

impl Driven {
    fn start(mut cmd: Command, what: &str) -> Driven {
        let mut child = own_library(&mut cmd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
        let stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().expect("a PORT line").unwrap();
        let port = first
            .strip_prefix("PORT ")
            .unwrap_or_else(|| panic!("{what}: {first}"))
            .parse()
            .unwrap();
        Driven {
            child,
            stdin,
            lines,
            port,
        }
    }

    /// A WebSocket subscriber on the program's server.
    fn subscriber(&self) -> tungstenite::WebSocket<TcpStream> {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let url = format!("ws://127.0.0.1:{}/ws", self.port);
        tungstenite::client(url, stream).unwrap().0
    }

    /// The program's next line on stdout.
    fn line(&mut self) -> String {
        self.lines.next().expect("a line").unwrap()
    }

    fn say(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
    }

    /// Says QUIT; the program must exit 0 with every check passed.
    fn quit(mut self, what: &str) {
        self.say("QUIT");
        drop(self.stdin);
        let rest: Vec<String> = self.lines.map_while(Result::ok).collect();
        let out = self.child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{what} exited with {}:\n{rest:?}\n{stderr}",
            out.status
        );
        assert!(
            rest.iter().any(|l| l.ends_with(" passed, 0 failed")),
            "{what}: {rest:?}"
        );
    }
}

/// The fenced ```` ```lang ```` blocks of the README, in order.
fn readme_blocks(lang: &str) -> Vec<String> {
    let text = std::fs::read_to_string(crate_dir().join("../README.md")).unwrap();
    let mut out = Vec::new();
    let mut open: Option<String> = None;
    for line in text.lines() {
        match (&mut open, line.trim_start().strip_prefix("```")) {
            (None, Some(l)) if l.trim() == lang => open = Some(String::new()),
            (Some(body), Some("")) => {
                out.push(std::mem::take(body));
                open = None;
            }
            (Some(body), _) => {
                body.push_str(line);
                body.push('\n');
            }
            _ => {}
        }
    }
    out
}

/// The README's one-line C build, run exactly as written from the
/// repository root (its `target/release` is where this test's library is),
/// compiles without a single warning, and the program runs.
#[test]
fn readme_c_one_liner_builds_without_a_warning_as_written() {
    require_tool("cc", "sudo apt-get install -y gcc");
    let lib = lib_dir();
    let line = readme_blocks("sh")
        .iter()
        .flat_map(|b| {
            b.replace("\\\n", " ")
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .find(|l| l.trim_start().starts_with("cc -std=c11 "))
        .expect("the README has its cc one-liner");
    let out = out_dir().join("readme_feed_handler");
    let mapped = line
        .replace("target/release", &lib.display().to_string())
        .replace("$PWD/", "")
        .replace("-o feed_handler", &format!("-o {}", out.display()));
    let run = Command::new("sh")
        .arg("-c")
        .arg(&mapped)
        .current_dir(crate_dir().join(".."))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "`{line}` failed:\n{stderr}");
    assert!(stderr.trim().is_empty(), "`{line}` warned:\n{stderr}");
    check_example_serves(&out, "feed_handler.c", "*");
}

/// `make -C ffi/examples` builds every example (a copy of the directory,
/// so the source tree stays clean), with nothing but the header and library.
#[test]
fn readme_make_examples_builds_every_example() {
    require_tool("make", "sudo apt-get install -y make");
    let copy = out_dir().join("examples-copy");
    let _ = std::fs::remove_dir_all(&copy);
    std::fs::create_dir_all(&copy).unwrap();
    for entry in std::fs::read_dir(crate_dir().join("examples")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
    }
    let run = Command::new("make")
        .arg("-C")
        .arg(&copy)
        .arg(format!("ROOT={}", crate_dir().join("..").display()))
        .arg(format!("LIBDIR={}", lib_dir().display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "make failed:\n{stderr}");
    for built in [
        "feed_handler",
        "feed_handler_cpp",
        "remote_feed",
        "on_demand_feed",
    ] {
        assert!(copy.join(built).exists(), "{built} was not built");
    }
}

/// The README's C fragments (starting a server and publishing; loading a
/// TOML configuration into a buffer of TICKCAST_MESSAGE_MAX), put in one
/// program as a reader would, compile under -Werror and run; a bad key
/// gets its whole message, naming the valid keys.
#[test]
fn readme_c_fragments_compile_and_run() {
    require_tool("cc", "sudo apt-get install -y gcc");
    let fragments = readme_blocks("c");
    assert_eq!(fragments.len(), 2, "the README's two C blocks");
    let program = format!(
        "#include <stdio.h>\n#include <string.h>\n#include \"tickcast.h\"\n\
         int main(void) {{\n{}\n\
         cfg = tickcast_config_new();\n\
         {}\n\
         {{ char why2[TICKCAST_MESSAGE_MAX];\n\
           if (tickcast_config_load_toml(cfg, \"[limits]\\nconflate_byte = 1\\n\", why2, sizeof why2) == TICKCAST_RESULT_OK) return 3;\n\
           if (!strstr(why2, \"conflate_byte\") || !strstr(why2, \"max_outbound_bytes\")) {{ fprintf(stderr, \"%s\\n\", why2); return 4; }}\n\
           puts(why2); }}\n\
         tickcast_config_free(cfg);\n\
         return 0;\n}}\n",
        fragments[0].replace("127.0.0.1:8090", "127.0.0.1:0"),
        fragments[1]
    );
    let src = out_dir().join("readme_fragments.c");
    std::fs::write(&src, program).unwrap();
    let out = out_dir().join("readme_fragments");
    let lib = lib_dir();
    let status = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror"])
        .arg("-I")
        .arg(crate_dir().join("../include"))
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .arg("-L")
        .arg(&lib)
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .args(["-ltickcast", "-lpthread"])
        .status()
        .unwrap();
    assert!(status.success(), "the README's C fragments do not compile");
    let run = own_library(&mut Command::new(&out)).output().unwrap();
    assert!(
        run.status.success(),
        "{:?}\n{}{}",
        run.status,
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
}
