//! One publisher connection: TCP, optionally TLS (rustls, trusting a CA file
//! or the system bundle), the WebSocket upgrade with the token.

use super::config::RemoteConfig;
use crate::access::Scope;
use crate::error::{ConfigError, Error, Result, TlsError};
use crate::wire::publish;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;
use tungstenite::client::IntoClientRequest;
use tungstenite::WebSocket;

/// A client's byte stream: plain TCP, or TLS (rustls) over TCP.
pub enum Stream {
    /// `ws://`
    Plain(TcpStream),
    /// `wss://`
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    /// The TCP socket underneath (for timeouts).
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref(),
        }
    }
}

impl io::Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl io::Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

pub(super) type Ws = WebSocket<Stream>;

fn tls_client_config(cfg: &RemoteConfig) -> Result<Arc<rustls::ClientConfig>> {
    let candidates: Vec<std::path::PathBuf> = match &cfg.tls_ca_file {
        Some(p) => vec![p.clone()],
        None => vec![
            "/etc/ssl/certs/ca-certificates.crt".into(),
            "/etc/pki/tls/certs/ca-bundle.crt".into(),
        ],
    };
    if let Some(p) = &cfg.tls_ca_file {
        if let Err(e) = std::fs::metadata(p) {
            let why = match e.kind() {
                io::ErrorKind::NotFound => "no such file".to_string(),
                _ => e.to_string(),
            };
            let what = "CA certificates";
            return Err(TlsError::File {
                what,
                path: p.clone(),
                why,
            }
            .into());
        }
    }
    let mut roots = rustls::RootCertStore::empty();
    for path in &candidates {
        if let Ok(iter) = CertificateDer::pem_file_iter(path) {
            for cert in iter.flatten() {
                let _ = roots.add(cert);
            }
        }
    }
    if roots.is_empty() {
        return Err(TlsError::NoCaCertificates(candidates).into());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let c = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Rejected)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(c))
}
/// Connects, upgrades and authenticates one publisher connection.
/// Connects, upgrades and authenticates one publisher connection, reads
/// polled every millisecond (the sender thread looks for acks between batches).
/// Also returns what the server's `101` response says the publisher must
/// keep to: its topic length limit (the server default when an older
/// server does not send it), and the token's publish scope, if any.
pub(super) fn open(cfg: &RemoteConfig) -> Result<(Ws, ServerRules)> {
    let (ws, mut rules) = connect_reading_limits(cfg, None)?;
    ws.get_ref()
        .tcp()
        .set_read_timeout(Some(Duration::from_millis(1)))?;
    rules.max_topic_len = rules
        .max_topic_len
        .or(Some(crate::config::Config::default().max_topic_len));
    Ok((ws, rules))
}

/// A failed handshake's message, with what to do when it is one of the
/// TLS failures a new user meets (rustls names them, but not the fix).
fn with_tls_hint(message: String, tls: bool) -> String {
    let hint = if message.contains("CaUsedAsEndEntity") {
        "the server's certificate is a CA certificate (basicConstraints CA:TRUE) serving as its own leaf; give the server a leaf certificate signed by that CA (docs/OPERATIONS.md, TLS)"
    } else if message.contains("NotValidForName") || message.contains("not valid for name") {
        "the certificate does not list this host name in its subjectAltName; connect with a name it lists, or make one with subjectAltName=DNS:<host> (docs/OPERATIONS.md, TLS)"
    } else if message.contains("UnknownIssuer") {
        "the certificate is not signed by an authority this client trusts; pass the CA's PEM file (--ca FILE)"
    } else if message.contains("Expired") {
        "the server's certificate has expired"
    } else if tls && (message.contains("InvalidContentType") || message.contains("corrupt message"))
    {
        "the server did not answer in TLS; if this port serves plain ws://, use ws://"
    } else {
        return message;
    };
    format!("{message} ({hint})")
}

/// An upgrade answered with `status` instead of `101`, explained: the
/// server's own first line when it sent one, and what to try.
fn refusal(status: u16, body: &[u8], path: &str) -> Error {
    let said = String::from_utf8_lossy(body);
    // A 200 is a page (the dashboard), not words for a client.
    let said = match status {
        200 => "",
        _ => said.lines().next().unwrap_or("").trim(),
    };
    let hint = match status {
        401 => "the token was refused: pass a token from the server's subscriber_tokens (for /ws) or publisher_tokens (for /publish)",
        403 if said.is_empty() => "the server does not allow this",
        200 | 404 => {
            "this path is not a WebSocket endpoint: subscribers connect to /ws, publishers to /publish"
        }
        426 => "the server expects a WebSocket upgrade here",
        _ => "",
    };
    let why = match (said.is_empty(), hint.is_empty()) {
        (false, false) => format!("{said} ({hint}; path {path})"),
        (false, true) => said.to_string(),
        (true, false) => format!("{hint}; path {path}"),
        (true, true) => format!("path {path}"),
    };
    Error::Refused { status, why }
}

/// What the server announced in its `101` response.
#[derive(Default)]
pub(super) struct ServerRules {
    pub max_topic_len: Option<usize>,
    pub scope: Option<Scope>,
    /// The server's extra fields, in index order.
    pub fields: Box<[Box<str>]>,
}

/// Connects and upgrades to `cfg.url` (`ws://` or `wss://`), presenting
/// `cfg.token` when it is not empty; reads and writes time out after
/// `connect_timeout`.
pub(super) fn connect(cfg: &RemoteConfig) -> Result<Ws> {
    connect_reading_limits(cfg, None).map(|(ws, _)| ws)
}

/// [`connect`], asking for a subprotocol (`tickcast.msgpack`).
pub(super) fn connect_as(cfg: &RemoteConfig, subprotocol: &str) -> Result<Ws> {
    connect_reading_limits(cfg, Some(subprotocol)).map(|(ws, _)| ws)
}

/// The upgrade request for `cfg.url`, with its subprotocol, `on_leave`
/// and token headers, and whether it is `wss://`.
fn upgrade_request(
    cfg: &RemoteConfig,
    subprotocol: Option<&str>,
) -> Result<(tungstenite::handshake::client::Request, bool)> {
    let bad_url = |why: String| Error::InvalidUrl {
        url: cfg.url.clone(),
        why,
    };
    let mut req = cfg
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| bad_url(e.to_string()))?;
    let tls = match req.uri().scheme_str() {
        Some("ws") => false,
        Some("wss") => true,
        _ => return Err(bad_url("must start with ws:// or wss://".into())),
    };
    if let Some(p) = subprotocol {
        let value = p
            .parse()
            .map_err(|_| bad_url(format!("bad subprotocol {p:?}")))?;
        req.headers_mut().insert("Sec-WebSocket-Protocol", value);
    }
    if cfg.keep_live_on_leave {
        req.headers_mut()
            .insert(publish::ON_LEAVE_HEADER, "keep".parse().expect("ASCII"));
    }
    if !cfg.token.is_empty() {
        req.headers_mut().insert(
            "Authorization",
            format!("Bearer {}", cfg.token)
                .parse()
                .map_err(|_| ConfigError::BadToken)?,
        );
    }
    Ok((req, tls))
}

/// [`connect`], with the `Tickcast-Max-Topic-Len` and
/// `Tickcast-Publish-Scope` the server announced.
fn connect_reading_limits(
    cfg: &RemoteConfig,
    subprotocol: Option<&str>,
) -> Result<(Ws, ServerRules)> {
    let bad_url = |why: String| Error::InvalidUrl {
        url: cfg.url.clone(),
        why,
    };
    let (req, tls) = upgrade_request(cfg, subprotocol)?;
    let uri = req.uri().clone();
    let host = uri.host().unwrap_or("127.0.0.1");
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let addr = (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| bad_url(format!("cannot resolve {host}")))?;
    let stream = TcpStream::connect_timeout(&addr, cfg.connect_timeout)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(cfg.connect_timeout))?;
    stream.set_write_timeout(Some(cfg.connect_timeout))?;
    let stream = if tls {
        let name = rustls::pki_types::ServerName::try_from(host.to_string())
            .map_err(|_| TlsError::ServerName(host.to_string()))?;
        let conn = rustls::ClientConnection::new(tls_client_config(cfg)?, name)
            .map_err(TlsError::Rejected)?;
        Stream::Tls(Box::new(rustls::StreamOwned::new(conn, stream)))
    } else {
        Stream::Plain(stream)
    };
    let (ws, resp) = tungstenite::client(req, stream).map_err(|e| match e {
        tungstenite::HandshakeError::Failure(tungstenite::Error::Http(resp)) => {
            let body = resp.body().as_deref().unwrap_or_default();
            refusal(resp.status().as_u16(), body, uri.path())
        }
        tungstenite::HandshakeError::Failure(tungstenite::Error::Io(e)) => {
            Error::Io(io::Error::new(e.kind(), with_tls_hint(e.to_string(), tls)))
        }
        other => Error::Io(io::Error::other(with_tls_hint(other.to_string(), tls))),
    })?;
    let header = |name| resp.headers().get(name).and_then(|v| v.to_str().ok());
    let max_topic_len = header(publish::MAX_TOPIC_LEN_HEADER).and_then(|v| v.trim().parse().ok());
    let scope = header(publish::PUBLISH_SCOPE_HEADER).and_then(|v| {
        let patterns: Vec<String> = v.split(',').map(|p| p.trim().to_string()).collect();
        Scope::parse(&patterns, 1024).ok()
    });
    let fields = header(publish::FIELDS_HEADER).map_or_else(Default::default, |v| {
        let names = v.split(',').map(str::trim).filter(|n| !n.is_empty());
        names.map(Into::into).collect()
    });
    Ok((
        ws,
        ServerRules {
            max_topic_len,
            scope,
            fields,
        },
    ))
}
