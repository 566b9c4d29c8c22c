//! TLS and connection strings: libpq's TLS parameters, the rustls connector, redaction.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};

/// A rustls connector trusting the system's roots plus the certificates in `extra`.
pub(super) fn tls_connector(extra: &[&Path]) -> Result<tokio_postgres_rustls::MakeRustlsConnect> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    let mut roots = rustls::RootCertStore::empty();
    // Errors from individual system certificates are ignored, like every TLS client does.
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    for path in extra {
        let bad = |e: &dyn fmt::Display| {
            Error::InvalidInput(format!(
                "postgres: cannot read TLS root certificates from {}: {e}",
                path.display()
            ))
        };
        let mut added = 0;
        for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))? {
            roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
            added += 1;
        }
        if added == 0 {
            return Err(bad(&"no certificate in the file"));
        }
    }
    if roots.is_empty() {
        return Err(Error::InvalidInput(
            "postgres: sslmode=require but no trusted root certificate was found; set tls_root_certificates".into(),
        ));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::InvalidInput(format!("postgres TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Accepts libpq's TLS parameters that `tokio-postgres` does not parse: `sslrootcert=PATH` is
/// taken out (and returned), `sslmode=verify-ca`/`verify-full` become `require` (which always
/// verifies fully here). Works on URLs and on the key/value form.
pub(super) fn libpq_tls_parameters(url: &str) -> (String, Option<PathBuf>) {
    let mut root_cert = None;
    if url.contains("://") {
        let Some((base, query)) = url.split_once('?') else {
            return (url.to_owned(), None);
        };
        let mut kept = Vec::new();
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("sslrootcert", v)) => root_cert = Some(PathBuf::from(percent_decode(v))),
                Some(("sslmode", "verify-ca" | "verify-full")) => kept.push("sslmode=require"),
                _ => kept.push(pair),
            }
        }
        let url = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        (url, root_cert)
    } else {
        // Key/value form; rewritten only when one of these parameters is present (unquoted).
        let mut kept = Vec::new();
        let mut changed = false;
        for part in url.split_whitespace() {
            match part.split_once('=') {
                Some(("sslrootcert", v)) if !v.starts_with('\'') => {
                    root_cert = Some(PathBuf::from(v));
                    changed = true;
                }
                Some(("sslmode", "verify-ca" | "verify-full")) => {
                    kept.push("sslmode=require");
                    changed = true;
                }
                _ => kept.push(part),
            }
        }
        if changed {
            (kept.join(" "), root_cert)
        } else {
            (url.to_owned(), None)
        }
    }
}

/// Masks the password of a `postgres://user:password@host/db` URL (or a `password=` key/value),
/// for messages and logs.
pub fn redact_connection_string(url: &str) -> String {
    if let Some(scheme_end) = url.find("://") {
        let rest = &url[scheme_end + 3..];
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            let userinfo = &rest[..at];
            if let Some(colon) = userinfo.find(':') {
                return format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &rest[at..]
                );
            }
        }
        return url.to_owned();
    }
    // key=value form: mask whatever follows `password=` up to the next whitespace.
    let mut out = String::with_capacity(url.len());
    for (i, part) in url.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if part
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("password=")
        {
            out.push_str("password=***");
        } else {
            out.push_str(part);
        }
    }
    out
}
