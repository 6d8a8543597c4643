//! Issue 16: the operator endpoints, behind an admin token, against a real
//! two-shard server with real subscribers.

mod common;

use common::{http_raw, wait_until, Client};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::net::SocketAddr;
use tickcast::{Server, Update};
use tungstenite::protocol::frame::coding::CloseCode;

const ADMIN: &str = "admin-token-for-tests";

fn request(addr: SocketAddr, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let req = format!("{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}\r\n");
    let resp = http_raw(addr, req.as_bytes());
    let status = resp[9..12].parse().unwrap();
    let body = resp
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

fn get(addr: SocketAddr, path: &str) -> Value {
    let (status, body) = request(addr, "GET", path, Some(ADMIN));
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn the_admin_api_is_off_without_tokens_and_refuses_a_wrong_one() {
    let server = common::server();
    let (status, _) = request(
        server.local_addr(),
        "GET",
        "/admin/connections",
        Some(ADMIN),
    );
    assert_eq!(status, 403);
    let server = Server::start(common::config().admin_tokens(vec![ADMIN.into()])).unwrap();
    let addr = server.local_addr();
    assert_eq!(request(addr, "GET", "/admin/connections", None).0, 401);
    assert_eq!(
        request(addr, "GET", "/admin/connections", Some("wrong-token-1")).0,
        401
    );
    assert_eq!(
        request(addr, "POST", "/admin/connections", Some(ADMIN)).0,
        405
    );
    assert_eq!(request(addr, "GET", "/admin/nothing", Some(ADMIN)).0, 404);
    assert_eq!(
        request(addr, "POST", "/admin/connections/x/close", Some(ADMIN)).0,
        400
    );
    // /metrics stays open unless protected.
    assert_eq!(request(addr, "GET", "/metrics", None).0, 200);
    let server = Server::start(
        common::config()
            .admin_tokens(vec![ADMIN.into()])
            .protect_metrics(true),
    )
    .unwrap();
    let addr = server.local_addr();
    assert_eq!(request(addr, "GET", "/metrics", None).0, 401);
    let (status, body) = request(addr, "GET", "/metrics", Some(ADMIN));
    assert_eq!(status, 200);
    assert!(body.contains("tickcast_connections"));
}

#[test]
fn connections_and_topics_are_listed_across_shards_and_one_can_be_closed() {
    let secret = "admin test secret, long enough";
    let dir = std::env::temp_dir().join(format!("tickcast-admin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("secret"), secret).unwrap();
    let server = Server::start(
        common::config()
            .shards(2)
            .admin_tokens(vec![ADMIN.into()])
            .subscriber_tokens(vec!["static-subscriber".into()])
            .jwt_hmac_secret_file(dir.join("secret")),
    )
    .unwrap();
    let addr = server.local_addr();
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let jwt = encode(
        &Header::new(Algorithm::HS256),
        &json!({"exp": exp, "sub": "alice"}),
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    let connect = |token: &str| {
        let ws = tungstenite::client(
            {
                use tungstenite::client::IntoClientRequest;
                let mut r = format!("ws://{addr}/ws").into_client_request().unwrap();
                r.headers_mut()
                    .insert("Authorization", format!("Bearer {token}").parse().unwrap());
                r
            },
            std::net::TcpStream::connect(addr).unwrap(),
        )
        .unwrap()
        .0;
        ws.get_ref()
            .set_read_timeout(Some(common::TIMEOUT))
            .unwrap();
        Client::from_ws(ws)
    };
    // Four subscribers: dealt to both shards.
    let mut alice = connect(&jwt);
    alice.subscribe(&["FX.*", "BTC-USD"]);
    let mut others: Vec<Client> = (0..3).map(|_| connect("static-subscriber")).collect();
    for c in &mut others {
        c.subscribe(&["BTC-USD"]);
    }
    let p = server.publisher();
    p.publish(Update::new("BTC-USD").bid(1.0)).unwrap();
    p.publish(Update::new("FX.EURUSD").bid(1.1)).unwrap();
    for c in others.iter_mut().chain([&mut alice]) {
        c.next_event();
    }
    alice.next_event();

    let list = get(addr, "/admin/connections");
    assert_eq!(list["shards"], 2);
    assert_eq!(list["shards_answered"], 2);
    let conns = list["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 4, "{list}");
    let shards: std::collections::BTreeSet<u64> = conns
        .iter()
        .map(|c| c["id"].as_u64().unwrap() >> 48)
        .collect();
    assert_eq!(shards.len(), 2, "both shards answered with their own");
    let a = conns
        .iter()
        .find(|c| c["sub"] == "alice")
        .expect("alice listed");
    assert_eq!(a["subscriptions"], json!(["BTC-USD", "FX.*"]));
    assert_eq!(a["subscription_count"], 2);
    assert_eq!(
        (a["role"].as_str(), a["format"].as_str()),
        (Some("subscriber"), Some("json"))
    );
    assert!(a["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(a["connected_since"].as_u64().unwrap() + 60 > exp - 3600);

    let topics = get(addr, "/admin/topics");
    let t = |name: &str| {
        topics["topics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["topic"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not in {topics}"))
    };
    assert_eq!(
        (
            t("BTC-USD")["subscribers"].as_u64(),
            t("BTC-USD")["seq"].as_u64()
        ),
        (Some(4), Some(1))
    );
    assert_eq!(t("FX.EURUSD")["subscribers"], 1);
    assert_eq!(t("FX.EURUSD")["stale"], false);
    assert!(t("FX.EURUSD")["age_secs"].as_f64().unwrap() < 60.0);

    // Close alice: she gets 1008, the others stay.
    let id = a["id"].as_u64().unwrap();
    let (status, body) = request(
        addr,
        "POST",
        &format!("/admin/connections/{id}/close"),
        Some(ADMIN),
    );
    assert_eq!(status, 200, "{body}");
    let (code, reason) = alice.expect_close();
    assert_eq!(
        (code, reason.as_str()),
        (CloseCode::Policy, "closed by an operator")
    );
    wait_until("three left", || {
        get(addr, "/admin/connections")["connections"]
            .as_array()
            .unwrap()
            .len()
            == 3
    });
    let (status, _) = request(
        addr,
        "POST",
        &format!("/admin/connections/{id}/close"),
        Some(ADMIN),
    );
    assert_eq!(status, 404, "already gone");
    wait_until("counted as a policy close", || {
        server
            .metrics_text()
            .contains("tickcast_connections_closed_total{reason=\"policy\"} 1")
    });
}
