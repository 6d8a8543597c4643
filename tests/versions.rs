//! One version for the whole project (issue 27): the crates take the
//! workspace's, and the C header, the JavaScript client and the Python
//! client carry the same (`scripts/set-version` writes them all).

use std::path::PathBuf;

fn read(path: &str) -> String {
    std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// The value of the first `key` line: `key = "v"` or `"key": "v"`.
fn first_quoted_after(text: &str, key: &str) -> String {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(key))
        .unwrap_or_else(|| panic!("no {key}"));
    let value = line.split_once([':', '=']).unwrap().1;
    value
        .trim()
        .trim_end_matches(',')
        .trim_matches('"')
        .to_string()
}

#[test]
fn the_header_and_the_clients_carry_the_crates_version() {
    let version = env!("CARGO_PKG_VERSION");
    let header = read("include/tickcast.h");
    assert!(
        header.contains(&format!("#define TICKCAST_VERSION \"{version}\"")),
        "include/tickcast.h"
    );
    assert_eq!(
        first_quoted_after(&read("clients/js/package.json"), "\"version\""),
        version,
        "clients/js/package.json"
    );
    assert_eq!(
        first_quoted_after(&read("clients/python/pyproject.toml"), "version"),
        version,
        "pyproject.toml"
    );
    assert_eq!(
        first_quoted_after(
            &read("clients/python/tickcast_client/__init__.py"),
            "__version__"
        ),
        version,
        "tickcast_client.__version__"
    );
    assert!(
        read("ffi/Cargo.toml").contains("version.workspace = true"),
        "the C library takes it too"
    );
}
