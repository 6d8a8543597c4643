//! A connection's byte transport: plain TCP, or TLS (rustls) over TCP.
//!
//! The TLS handshake is driven by the same non-blocking reads and writes as
//! everything else: ciphertext is read when the socket is readable and
//! written when the shard flushes, so a TLS connection never blocks a shard.
//! A bad ClientHello, or plain text on the TLS port, fails that connection's
//! reads with `InvalidData` and it is closed; nobody else notices.

use super::outbound::{Flushed, Outbound, Tally};
use crate::error::TlsError;
use mio::net::TcpStream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection};
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::path::Path;
use std::sync::Arc;

/// The certificates of a PEM chain file, leaf first; at least one.
pub(crate) fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let unreadable = |e: rustls::pki_types::pem::Error| TlsError::File {
        what: "certificates",
        path: path.to_path_buf(),
        why: e.to_string(),
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(unreadable)?
        .collect::<Result<_, _>>()
        .map_err(unreadable)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_path_buf()));
    }
    Ok(certs)
}

/// Loads a PEM certificate chain and private key into a rustls server config.
pub(crate) fn load_server_config(
    cert_chain: &Path,
    key: &Path,
) -> Result<Arc<ServerConfig>, TlsError> {
    let unreadable = |what, path: &Path, why: String| TlsError::File {
        what,
        path: path.to_path_buf(),
        why,
    };
    let certs = read_chain(cert_chain)?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| unreadable("the private key", key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Rejected)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(TlsError::Rejected)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The answer to a plain-text request on the TLS listener.
const PLAIN_HTTP_ON_TLS: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Length: 64\r\nConnection: close\r\n\r\n\
this port speaks TLS: use wss:// (or https://) instead of ws://\n";

/// Do the next bytes on a TLS connection look like an HTTP request line
/// (`GET /ws ...`)? A TLS record starts with a content type byte (20-24),
/// never an upper-case letter. Peeks, so TLS bytes stay for rustls; asked
/// only while the handshake runs.
fn plain_http(s: &TcpStream) -> bool {
    let mut head = [0u8; 3];
    matches!(s.peek(&mut head), Ok(3) if head.iter().all(u8::is_ascii_uppercase))
}

/// How a connection's bytes travel.
pub(crate) enum Transport {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP; the session is boxed (it is large).
    Tls(TcpStream, Box<ServerConnection>),
}

impl Transport {
    /// The socket, for (de)registering with the poller.
    pub fn socket(&mut self) -> &mut TcpStream {
        match self {
            Transport::Plain(s) | Transport::Tls(s, _) => s,
        }
    }

    /// Reads plaintext. TLS: pulls ciphertext from the socket as needed.
    /// `WouldBlock` when nothing more can be read now.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            Transport::Tls(s, tls) => loop {
                match tls.reader().read(buf) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
                if tls.is_handshaking() && plain_http(s) {
                    // A ws:// or http:// client on the wss:// port: tell it
                    // so in words it can read, instead of a TLS alert it
                    // would report as a reset or a bad response.
                    let _ = s.write_all(PLAIN_HTTP_ON_TLS);
                    let why = "plain HTTP on the TLS port";
                    return Err(io::Error::new(io::ErrorKind::InvalidData, why));
                }
                match tls.read_tls(s) {
                    Ok(0) => return Ok(0),
                    Ok(_) => {
                        if let Err(e) = tls.process_new_packets() {
                            // Let the alert go out, then fail this connection only.
                            let _ = tls.write_tls(s);
                            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                        }
                    }
                    Err(e) => return Err(e),
                }
            },
        }
    }

    /// Has TLS protocol data (handshake, alerts) to send even with an empty queue?
    pub fn wants_write(&self) -> bool {
        match self {
            Transport::Plain(_) => false,
            Transport::Tls(_, tls) => tls.wants_write(),
        }
    }

    /// Writes the queue out. TLS: encrypts as much as the session buffers
    /// (bounded by rustls), then writes ciphertext until the socket is full.
    pub fn flush(&mut self, out: &mut Outbound, tally: &mut Tally) -> io::Result<Flushed> {
        match self {
            Transport::Plain(s) => out.write_to(s, tally),
            Transport::Tls(s, tls) => loop {
                if !tls.is_handshaking() {
                    // rustls takes what fits under its buffer limit (64 KiB by
                    // default); the rest stays in our queue.
                    while !out.is_empty() {
                        let n = tls.writer().write(out.front())?;
                        if n == 0 {
                            break;
                        }
                        out.advance(n);
                    }
                }
                let mut wrote = false;
                while tls.wants_write() {
                    match tls.write_tls(s) {
                        Ok(n) => {
                            tally.bytes += n as u64;
                            tally.writes += 1;
                            wrote = true;
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            return Ok(Flushed::Blocked)
                        }
                        Err(e) => return Err(e),
                    }
                }
                if out.is_empty() || tls.is_handshaking() {
                    return Ok(Flushed::All);
                }
                if !wrote {
                    return Ok(Flushed::Blocked);
                }
            },
        }
    }

    /// Ends our side: TLS sends close_notify first.
    pub fn shutdown_write(&mut self) {
        if let Transport::Tls(s, tls) = self {
            tls.send_close_notify();
            let _ = tls.write_tls(s);
        }
        let _ = self.socket().shutdown(Shutdown::Write);
    }
}
