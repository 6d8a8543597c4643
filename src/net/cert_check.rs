//! What clients will say about the server's certificate: `--check-config`
//! verifies the chain the way a rustls client (and a browser) would, with
//! the file's own last certificate as the authority, so a certificate every
//! client refuses is caught before a client meets it.

use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, Error, OtherError};
use std::sync::Arc;

/// How to make a certificate clients accept, for every refusal below.
const MAKE_ONE: &str = "make a leaf certificate with subjectAltName=DNS:<host> \
(and IP:<address> for clients that connect by address), signed by a CA that \
clients trust (docs/OPERATIONS.md, \"TLS\")";

/// `DnsName("localhost")` or `IpAddress(127.0.0.1)` (how rustls lists a
/// certificate's names) as the name alone.
fn plain_name(presented: &str) -> String {
    let inner = presented
        .split_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .unwrap_or(presented);
    inner.trim_matches('"').to_string()
}

/// The names clients may connect with (DNS names and IP addresses from the
/// leaf's subjectAltName), or why every client refuses the chain.
pub(crate) fn client_view(chain: &[CertificateDer<'static>]) -> Result<Vec<String>, String> {
    let (Some(leaf), Some(anchor)) = (chain.first(), chain.last()) else {
        return Err("no certificate".into());
    };
    let mut roots = rustls::RootCertStore::empty();
    if roots.add(anchor.clone()).is_err() {
        // Not usable as an anchor (e.g. an unsupported key): leave it to
        // the handshake; the server config already accepted the pair.
        return Ok(Vec::new());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let Ok(verifier) =
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider).build()
    else {
        return Ok(Vec::new());
    };
    // A name no certificate lists: verification then fails on the name
    // (which lists the names the certificate does hold) once the chain
    // itself is good, or earlier with what is wrong with the chain.
    let probe = ServerName::try_from("tickcast-check.invalid").expect("valid name");
    let outcome = verifier.verify_server_cert(leaf, &chain[1..], &probe, &[], UnixTime::now());
    match outcome {
        Err(Error::InvalidCertificate(CertificateError::NotValidForNameContext {
            presented,
            ..
        })) if presented.is_empty() => Err(format!(
            "it has no subjectAltName, so every client refuses it (NotValidForName): {MAKE_ONE}"
        )),
        Err(Error::InvalidCertificate(CertificateError::NotValidForNameContext {
            presented,
            ..
        })) => Ok(presented.iter().map(|n| plain_name(n)).collect()),
        Err(Error::InvalidCertificate(CertificateError::Other(OtherError(e))))
            if format!("{e:?}").contains("CaUsedAsEndEntity") =>
        {
            Err(format!(
                "it is a CA certificate (basicConstraints CA:TRUE) serving as the server's own, \
which clients refuse (CaUsedAsEndEntity): {MAKE_ONE}"
            ))
        }
        Err(Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        )) => Err("it has expired: renew it".into()),
        Err(Error::InvalidCertificate(
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. },
        )) => Err("it is not valid yet (check the clock, or its notBefore)".into()),
        // The issuer is not in the file (a leaf from a public CA without its
        // chain): clients check that against their own store, not here.
        Err(Error::InvalidCertificate(CertificateError::UnknownIssuer)) => Ok(Vec::new()),
        Err(e) => Err(format!("clients would refuse it: {e}")),
        Ok(_) => Ok(Vec::new()),
    }
}
