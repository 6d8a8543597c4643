//! What packaging/ gives operators: Prometheus alert rules and a Grafana
//! dashboard. Every expression in them names only metrics a real daemon
//! exports (a cluster-mode one, so the cluster metrics are there too), the
//! alerts the operations guide promises exist, and `promtool check rules`
//! accepts the rules.

mod common;

use common::redis::RedisServer;
use std::collections::BTreeSet;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every series name a daemon's /metrics shows (histograms and summaries
/// with their `_bucket`, `_sum` and `_count` series).
fn exported(metrics: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let (name, kind) = (words.next().unwrap(), words.next().unwrap());
        names.insert(name.to_string());
        let parts: &[&str] = match kind {
            "histogram" => &["_bucket", "_sum", "_count"],
            "summary" => &["_sum", "_count"],
            _ => &[],
        };
        names.extend(parts.iter().map(|p| format!("{name}{p}")));
    }
    names
}

/// The `tickcast_…` names an expression uses.
fn used(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("tickcast_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

/// The `expr:` lines of the alert rules, and the `"expr"` strings of the
/// dashboard's panels.
fn expressions() -> Vec<(String, String)> {
    let rules =
        std::fs::read_to_string(root().join("packaging/prometheus/tickcast-alerts.yml")).unwrap();
    let mut out: Vec<(String, String)> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr:"))
        .map(|e| ("alert rule".to_string(), e.trim().to_string()))
        .collect();
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("packaging/grafana/tickcast-dashboard.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    for panel in dash["panels"].as_array().expect("panels") {
        for t in panel["targets"].as_array().expect("targets") {
            let title = panel["title"].as_str().unwrap().to_string();
            out.push((title, t["expr"].as_str().expect("expr").to_string()));
        }
    }
    out
}

#[test]
fn every_alert_and_dashboard_expression_names_metrics_the_daemon_exports() {
    let redis = RedisServer::start();
    let server = tickcast::Server::start(common::config().redis(redis.url())).unwrap();
    common::wait_until("the Redis link", || {
        server.metrics_text().contains("tickcast_cluster_up 1")
    });
    let names = exported(&server.metrics_text());
    let exprs = expressions();
    assert!(exprs.len() >= 20, "{} expressions", exprs.len());
    let mut checked = 0;
    for (place, expr) in &exprs {
        let metrics = used(expr);
        assert!(
            !metrics.is_empty() || expr.contains("up{"),
            "{place}: no metric in {expr}"
        );
        for m in metrics {
            assert!(
                names.contains(&m),
                "{place}: {m} is not exported (in {expr}); exported: {names:?}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 25, "{checked} metric uses checked");
}

#[test]
fn the_promised_alerts_exist_and_promtool_accepts_them() {
    let rules =
        std::fs::read_to_string(root().join("packaging/prometheus/tickcast-alerts.yml")).unwrap();
    for alert in [
        "TickcastSlowConsumerCloses",
        "TickcastUpdatesRefused",
        "TickcastClusterLinkDown",
        "TickcastOutboundNearBudget",
        "TickcastDescriptorsExhausted",
    ] {
        assert!(
            rules.contains(&format!("alert: {alert}\n")),
            "{alert} is missing"
        );
    }
    common::require_tool(
        "promtool",
        "--version",
        "sudo apt-get install -y prometheus",
    );
    let out = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(root().join("packaging/prometheus/tickcast-alerts.yml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
