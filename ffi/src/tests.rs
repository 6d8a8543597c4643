//! Unit tests of the ABI that need no C compiler: the panic boundary, and a
//! remote publisher over wss:// (the C tests in ffi/tests/c cover the rest).

use crate::config::tickcast_config;
use crate::error::tickcast_result;
use crate::panic::ffi_panic_boundary;
use crate::remote::*;
use crate::update::*;
use std::time::Duration;
use tickcast::{Config, Server};

/// An entry point built exactly like the real ones, whose body panics.
extern "C" fn panicking_entry_point() -> tickcast_result {
    ffi_panic_boundary! {
        let v: Vec<u8> = std::hint::black_box(Vec::new());
        // Index out of bounds: a real panic, not a simulated result.
        if v[3] == 0 {
            return tickcast_result::InvalidArgument;
        }
        tickcast_result::Ok
    }
}

extern "C" fn panicking_constructor() -> *mut tickcast_config {
    ffi_panic_boundary! {
        panic!("boom")
    }
}

#[test]
fn remote_publisher_over_wss_with_a_ca_file() {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let dir = std::env::temp_dir().join(format!("tickcast-ffi-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let server = Server::start(
        Config::default()
            .listen("127.0.0.1:0".parse().unwrap())
            .tls("127.0.0.1:0".parse().unwrap(), &cert, &key)
            .publisher_tokens(vec!["ffi-tls-token".into()]),
    )
    .unwrap();
    let url = std::ffi::CString::new(format!(
        "wss://localhost:{}/publish",
        server.tls_addr().unwrap().port()
    ))
    .unwrap();
    let token = c"ffi-tls-token";
    let ca = std::ffi::CString::new(cert.to_str().unwrap()).unwrap();
    let mut p: *mut tickcast_remote_publisher = std::ptr::null_mut();
    // The system bundle does not trust a self-signed test certificate.
    let r = tickcast_remote_publisher_connect_ca(
        url.as_ptr(),
        token.as_ptr(),
        std::ptr::null(),
        &mut p,
    );
    assert_eq!(r, tickcast_result::IoError);
    assert!(p.is_null());
    let bad = c"/nonexistent/ca.pem";
    let r =
        tickcast_remote_publisher_connect_ca(url.as_ptr(), token.as_ptr(), bad.as_ptr(), &mut p);
    assert_eq!(r, tickcast_result::InvalidArgument);
    let r = tickcast_remote_publisher_connect_ca(url.as_ptr(), token.as_ptr(), ca.as_ptr(), &mut p);
    assert_eq!(r, tickcast_result::Ok);
    let u = tickcast_update {
        fields: TICKCAST_FIELD_BID,
        bid: 42.5,
        ..Default::default()
    };
    assert_eq!(
        tickcast_remote_publish(p, c"TLS.C".as_ptr(), &u),
        tickcast_result::Ok
    );
    assert_eq!(tickcast_remote_flush(p, 10_000), tickcast_result::Ok);
    // Acknowledged means queued for the router; give it a moment to sequence.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while server.snapshot("TLS.C").is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(
        server.snapshot("TLS.C").map(|s| s.prices.bid),
        Some(Some(42.5))
    );
    tickcast_remote_publisher_free(p);
}

#[test]
fn a_panic_inside_an_entry_point_becomes_the_panic_code() {
    assert_eq!(panicking_entry_point(), tickcast_result::Panic);
    assert!(panicking_constructor().is_null());
}

#[test]
fn every_exported_function_runs_inside_the_panic_boundary() {
    let sources = [
        include_str!("config.rs"),
        include_str!("server.rs"),
        include_str!("remote.rs"),
        include_str!("update.rs"),
        include_str!("error.rs"),
    ];
    let mut checked = 0;
    for chunk in sources
        .iter()
        .flat_map(|src| src.split("pub extern \"C\" fn ").skip(1))
    {
        let body_start = chunk.find('{').unwrap();
        let head = &chunk[..body_start];
        let after = chunk[body_start + 1..].trim_start();
        assert!(
            after.starts_with("ffi_panic_boundary!"),
            "{} is not wrapped in ffi_panic_boundary!",
            head.split('(').next().unwrap()
        );
        checked += 1;
    }
    assert!(checked >= 10, "found only {checked} entry points");
}

#[test]
fn result_str_names_every_code_and_survives_any_number() {
    use crate::error::tickcast_result_str;
    let text = |n: u32| {
        let p = tickcast_result_str(n);
        assert!(!p.is_null());
        // SAFETY: the function returns a static NUL-terminated string.
        unsafe { std::ffi::CStr::from_ptr(p) }
            .to_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        text(tickcast_result::QueueFull as u32),
        "ingest queue is full"
    );
    assert_eq!(
        text(tickcast_result::InvalidBook as u32),
        tickcast_result::InvalidBook.message().to_str().unwrap()
    );
    // Every number from 0 to 18 is a code with its own message; the
    // numbers around them (C may pass any integer) are not, and say so.
    for n in 0..=18 {
        assert_ne!(text(n), "unknown result code", "code {n}");
        assert_eq!(tickcast_result::from_number(n).map(|r| r as u32), Some(n));
    }
    for n in [19, 100, 6999, u32::MAX] {
        assert_eq!(text(n), "unknown result code");
    }
}
