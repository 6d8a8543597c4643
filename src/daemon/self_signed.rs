//! `tickcastd --tls-self-signed`: `wss://` in the first minute. At start
//! the daemon makes a throwaway certificate authority and a certificate for
//! this machine's loopback names signed by it, writes the authority's
//! certificate where clients can be pointed at it (`tickcast sub --ca`,
//! Node's `NODE_EXTRA_CA_CERTS`, Python's `ssl` context), and forgets the
//! authority's key, so nothing else can ever be signed by it. Every start
//! makes new ones.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rcgen::{ExtendedKeyUsagePurpose, Issuer, PublicKeyData};
use std::path::{Path, PathBuf};

/// What `make` wrote, and how clients recognise it.
#[derive(Debug, Clone)]
pub struct SelfSigned {
    /// The authority's certificate: what clients trust.
    pub ca: PathBuf,
    /// The server's certificate chain: its certificate, then the authority's.
    pub cert: PathBuf,
    /// The server's private key (mode 0600).
    pub key: PathBuf,
    /// The names the certificate is valid for.
    pub names: Vec<String>,
    /// SHA-256 of the authority's certificate, as colon-separated hex (what
    /// browsers and `openssl x509 -fingerprint -sha256` show).
    pub ca_sha256: String,
    /// Base64 SHA-256 of the server certificate's public key: what
    /// Chromium's `--ignore-certificate-errors-spki-list` takes.
    pub spki_sha256: String,
}

/// Where the files go by default: `$XDG_RUNTIME_DIR/tickcastd`, else a
/// directory of the user's in the temporary directory.
pub fn default_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(run) => PathBuf::from(run).join("tickcastd"),
        None => {
            let user = std::env::var("USER").unwrap_or_else(|_| "user".into());
            std::env::temp_dir().join(format!("tickcastd-{user}"))
        }
    }
}

/// The names a loopback certificate covers, with `host` (the TLS listener's
/// address) when it is a specific one.
pub fn names_for(host: Option<std::net::IpAddr>) -> Vec<String> {
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    if let Some(ip) = host.filter(|ip| !ip.is_unspecified()) {
        if !names.contains(&ip.to_string()) {
            names.push(ip.to_string());
        }
    }
    names
}

/// Makes the authority and the certificate for `names`, and writes
/// `ca.pem`, `cert.pem` and `key.pem` into `dir` (created if needed).
pub fn make(dir: &Path, names: &[String]) -> Result<SelfSigned, String> {
    let failed = |what: &str, e: &dyn std::fmt::Display| format!("{what}: {e}");
    let ca_key = KeyPair::generate().map_err(|e| failed("making a key", &e))?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(|e| failed("CA", &e))?;
    ca.distinguished_name
        .push(DnType::CommonName, "tickcastd throwaway local CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca
        .self_signed(&ca_key)
        .map_err(|e| failed("signing the CA", &e))?;
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate().map_err(|e| failed("making a key", &e))?;
    let mut leaf = CertificateParams::new(names.to_vec()).map_err(|e| failed("names", &e))?;
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = leaf
        .signed_by(&key, &issuer)
        .map_err(|e| failed("signing the certificate", &e))?;

    std::fs::create_dir_all(dir).map_err(|e| failed(&dir.display().to_string(), &e))?;
    let out = SelfSigned {
        ca: dir.join("ca.pem"),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
        names: names.to_vec(),
        ca_sha256: colon_hex(&sha256(ca_cert.der())),
        spki_sha256: base64(&sha256(&key.subject_public_key_info())),
    };
    let write = |path: &Path, text: &str, private: bool| -> Result<(), String> {
        write_file(path, text, private).map_err(|e| failed(&path.display().to_string(), &e))
    };
    write(&out.ca, &ca_cert.pem(), false)?;
    // The chain: the certificate, then its authority (as a real CA's
    // fullchain.pem), so --check-config can follow it.
    write(
        &out.cert,
        &format!("{}{}", cert.pem(), ca_cert.pem()),
        false,
    )?;
    write(&out.key, &key.serialize_pem(), true)?;
    Ok(out)
}

/// Writes `text` to `path`, readable only by its owner when `private`.
fn write_file(path: &Path, text: &str, private: bool) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    if private {
        opts.mode(0o600);
    }
    std::io::Write::write_all(&mut opts.open(path)?, text.as_bytes())
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .to_vec()
}

fn colon_hex(bytes: &[u8]) -> String {
    let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

/// Standard base64 with padding (RFC 4648), for the SPKI hash.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, b| (n << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (raw, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(raw.as_bytes()), enc);
        }
    }

    #[test]
    fn the_certificate_is_one_every_client_accepts_for_its_names() {
        let dir = std::env::temp_dir().join(format!("tickcast-selfsigned-{}", std::process::id()));
        let made = make(&dir, &names_for(None)).unwrap();
        let chain = crate::net::transport::read_chain(&made.cert).unwrap();
        // What --check-config checks: not a CA, with subjectAltNames.
        let names = crate::net::cert_check::client_view(&chain).unwrap();
        assert_eq!(names.len(), 3, "{names:?}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&made.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the key is private");
        assert_eq!(made.ca_sha256.len(), 32 * 3 - 1);
        assert_eq!(made.spki_sha256.len(), 44);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
