//! The layout rules of docs/ARCHITECTURE.md, checked on the source itself:
//! no module imports a module that imports it back (directly or through
//! others), the engine never reaches the network side, every `crate::` path
//! names the module that owns the item, and files stay small.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
    out
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `src/net/shard/mod.rs` → `net::shard`; `src/net/conn.rs` → `net::conn`.
fn module_of(file: &Path) -> String {
    let rel = file.strip_prefix(root().join("src")).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|s| s.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts.join("::")
}

/// The code of a file without comments and without its unit-test module
/// (tests may reach anything; the rules are about the production code).
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The longest known module that `segments` (after `base`) names.
fn resolve(modules: &BTreeSet<String>, base: &str, segments: &[&str]) -> String {
    let mut at = base.to_string();
    for s in segments {
        let next = if at.is_empty() {
            s.to_string()
        } else {
            format!("{at}::{s}")
        };
        if modules.contains(&next) {
            at = next;
        } else {
            break;
        }
    }
    at
}

fn parent(module: &str) -> String {
    module
        .rsplit_once("::")
        .map_or(String::new(), |(p, _)| p.to_string())
}

/// Each module of the core crate and the modules it imports.
fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let files: Vec<PathBuf> = rust_files(&root().join("src"))
        .into_iter()
        .filter(|f| !f.starts_with(root().join("src/bin")))
        .collect();
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(f)).collect();
    let mut graph = BTreeMap::new();
    for f in &files {
        let me = module_of(f);
        let text = code(&std::fs::read_to_string(f).unwrap());
        let mut deps = BTreeSet::new();
        for (start, base) in [("crate::", String::new()), ("super::", parent(&me))] {
            for (i, _) in text.match_indices(start) {
                let before = text[..i].chars().next_back().unwrap_or(' ');
                if before.is_alphanumeric() || before == '_' || before == ':' {
                    continue; // `$crate::`, `foo_crate::`, a longer path
                }
                let rest = &text[i + start.len()..];
                // `super::{a::X, B}`: each entry of the group is a path.
                let paths: Vec<&str> = if rest.starts_with('{') {
                    let end = rest.find('}').unwrap();
                    rest[1..end].split(',').map(str::trim).collect()
                } else {
                    let end = rest
                        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                        .unwrap_or(rest.len());
                    vec![&rest[..end]]
                };
                for p in paths {
                    let segments: Vec<&str> = p.split("::").filter(|s| !s.is_empty()).collect();
                    let target = resolve(&modules, &base, &segments);
                    assert!(
                        !target.is_empty(),
                        "{me}: `{start}{p}` goes through the crate root's re-exports; \
                         name the module that owns the item"
                    );
                    if target != me {
                        deps.insert(target);
                    }
                }
            }
        }
        graph.insert(me, deps);
    }
    graph
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let graph = import_graph();
    assert!(graph.len() > 30, "found only {} modules", graph.len());
    // Depth-first search for a cycle, reporting the path.
    fn visit(
        m: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if let Some(pos) = stack.iter().position(|s| s == m) {
            panic!("import cycle: {} -> {m}", stack[pos..].join(" -> "));
        }
        if !done.insert(m.to_string()) {
            return;
        }
        stack.push(m.to_string());
        for d in graph.get(m).into_iter().flatten() {
            visit(d, graph, stack, done);
        }
        stack.pop();
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        let mut stack = Vec::new();
        // A module already explored from another start has no cycle through it.
        if !done.contains(m) {
            visit(m, &graph, &mut stack, &mut done);
        }
    }
}

#[test]
fn the_engine_never_reaches_the_network_side() {
    let graph = import_graph();
    let upward = ["net", "server", "daemon", "remote", "internals", "fuzzing"];
    for (m, deps) in &graph {
        if !m.starts_with("engine") {
            continue;
        }
        for d in deps {
            let top = d.split("::").next().unwrap();
            assert!(!upward.contains(&top), "{m} imports {d}");
        }
    }
    // And the wire formats know only the engine's data types and names.
    for (m, deps) in graph.iter().filter(|(m, _)| m.starts_with("wire")) {
        for d in deps {
            assert!(
                d.starts_with("wire")
                    || d == "engine::update"
                    || d == "engine::book"
                    || d == "engine::topic_name"
                    || d == "error",
                "{m} imports {d}"
            );
        }
    }
}

#[test]
fn source_files_stay_small_and_the_shard_loop_fits_a_screen() {
    let mut files = rust_files(&root().join("src"));
    files.extend(rust_files(&root().join("ffi/src")));
    for f in &files {
        let lines = std::fs::read_to_string(f).unwrap().lines().count();
        assert!(lines <= 500, "{} has {lines} lines", f.display());
    }
    let shard_loop = std::fs::read_to_string(root().join("src/net/shard/mod.rs")).unwrap();
    let lines = shard_loop.lines().count();
    assert!(lines < 300, "the shard loop's file has {lines} lines");
}
