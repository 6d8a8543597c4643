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

/// Which top-level modules of `src/` each may import: the layer graph of
/// docs/ARCHITECTURE.md, bottom first. An import not listed here fails
/// `every_module_edge_is_in_the_table`; add one only when it points down.
const ALLOWED: &[(&str, &[&str])] = &[
    ("model", &[]),
    ("faults", &[]),
    ("logging", &[]),
    ("metrics", &[]),
    ("error", &["model"]),
    ("config", &["error", "model"]),
    ("admin", &["config", "error"]),
    ("engine", &["admin", "config", "error", "metrics", "model"]),
    ("wire", &["error", "model"]),
    ("access", &["engine", "error", "model"]),
    ("cluster", &["engine", "error", "metrics", "model"]),
    ("interest", &["engine"]),
    (
        "net",
        &[
            "access", "admin", "cluster", "config", "engine", "error", "faults", "metrics",
            "model", "wire",
        ],
    ),
    ("reload", &["access", "config", "error", "net"]),
    (
        "remote",
        &["access", "config", "error", "interest", "model", "wire"],
    ),
    ("daemon", &["config", "engine", "error", "model"]),
    (
        "server",
        &[
            "cluster", "config", "engine", "error", "faults", "interest", "metrics", "model",
            "net", "reload", "wire",
        ],
    ),
    (
        "internals",
        &["config", "engine", "metrics", "model", "net", "wire"],
    ),
    ("fuzzing", &["access", "engine", "model", "net", "wire"]),
];

/// The imports between top-level modules: (importer, imported).
fn top_level_edges() -> BTreeSet<(String, String)> {
    let mut edges = BTreeSet::new();
    for (m, deps) in import_graph() {
        let a = m.split("::").next().unwrap().to_string();
        for d in deps {
            let b = d.split("::").next().unwrap().to_string();
            if a != b {
                edges.insert((a.clone(), b));
            }
        }
    }
    edges
}

/// The edges of `ALLOWED` that `edges` breaks, as readable lines.
fn broken_edges(edges: &BTreeSet<(String, String)>) -> Vec<String> {
    let table: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut out = Vec::new();
    for (a, b) in edges {
        match table.get(a.as_str()) {
            None => out.push(format!("module {a} is not in the layer table")),
            Some(allowed) if !allowed.contains(&b.as_str()) => out.push(format!(
                "{a} imports {b}, which the layer table does not allow"
            )),
            Some(_) => {}
        }
    }
    out
}

#[test]
fn every_module_edge_is_in_the_table() {
    let edges = top_level_edges();
    assert!(edges.len() > 40, "found only {} edges", edges.len());
    let broken = broken_edges(&edges);
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn the_layer_table_points_one_way() {
    // Each module may import only modules listed before it: the table is
    // the layer order, so no edge it allows can close a cycle.
    for (i, (m, deps)) in ALLOWED.iter().enumerate() {
        for d in *deps {
            let at = ALLOWED.iter().position(|(n, _)| n == d);
            assert!(
                at.is_some_and(|at| at < i),
                "{m} may import {d}, which is not below it in the table"
            );
        }
    }
}

#[test]
fn the_table_check_catches_an_upward_edge() {
    // The check itself must fail on an import against the layers: the
    // engine reaching the network side, or the model importing anything.
    let mut edges = top_level_edges();
    edges.insert(("engine".into(), "net".into()));
    edges.insert(("model".into(), "error".into()));
    let broken = broken_edges(&edges);
    assert_eq!(
        broken,
        [
            "engine imports net, which the layer table does not allow",
            "model imports error, which the layer table does not allow",
        ]
    );
}

#[test]
fn source_files_stay_small() {
    let mut files = rust_files(&root().join("src"));
    files.extend(rust_files(&root().join("ffi/src")));
    for f in &files {
        let lines = std::fs::read_to_string(f).unwrap().lines().count();
        assert!(lines <= 500, "{} has {lines} lines", f.display());
    }
}

/// The functions of a file longer than `max` lines, as "name (n lines)": a
/// function runs from its `fn` line to the first line that closes it at
/// the same indentation.
fn long_functions(text: &str, max: usize) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut long = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let body = line.trim_start();
        let indent = &line[..line.len() - body.len()];
        let after_vis = ["pub(crate) ", "pub(super) ", "pub "]
            .iter()
            .find_map(|v| body.strip_prefix(v))
            .unwrap_or(body);
        let after_mods = after_vis
            .trim_start_matches("const ")
            .trim_start_matches("unsafe ");
        if let Some(rest) = after_mods.strip_prefix("fn ") {
            if !line.trim_end().ends_with(';') {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                let close = format!("{indent}}}");
                let end = (i + 1..lines.len())
                    .find(|&j| lines[j] == close)
                    .unwrap_or(i);
                let n = end - i + 1;
                if n > max {
                    long.push(format!("{name} ({n} lines)"));
                }
                i = end;
            }
        }
        i += 1;
    }
    long
}

#[test]
fn no_function_in_src_is_over_80_lines() {
    let mut long = Vec::new();
    for f in rust_files(&root().join("src")) {
        let text = std::fs::read_to_string(&f).unwrap();
        for l in long_functions(&text, 80) {
            long.push(format!("{}: {l}", f.display()));
        }
    }
    assert!(long.is_empty(), "split these: {long:#?}");
}

#[test]
fn the_function_length_check_sees_a_long_function() {
    let body = "    let x = 1;\n".repeat(90);
    let text = format!("fn short() {{\n}}\n\nimpl A {{\n    pub fn long() {{\n{body}    }}\n}}\n");
    assert_eq!(long_functions(&text, 80), ["long (92 lines)"]);
    assert!(long_functions(&text, 100).is_empty());
}
