//! TLS on every connection to a server: what `[connection]`'s `tls` keys make of a
//! MySQL/MariaDB connection (mysql_async's rustls) and of a PostgreSQL one (rustls
//! through tokio-postgres-rustls), and why a handshake failed in words an operator
//! acts on. What each connection ended as is noted in `samples::security`.
//!
//! Modes (MySQL's names; libpq's mean the same): `disabled` plain text; `preferred`
//! TLS when the server offers it, plain text when not, no certificate check;
//! `required` TLS, no certificate check; `verify_ca` TLS with a certificate that
//! chains to `tls_ca` (or the Mozilla roots built in), for any name; `verify_identity`
//! that, for the host connected to (or `tls_server_name`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientConfig, WebPkiServerVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::config::{TlsConfig, TlsMode};
pub use crate::samples::security::{Security, note};

/// The trust anchor given to mysql_async where it verifies nothing (`preferred` and
/// `required`): a verifier needs one. It is never consulted. (ISRG Root X2, a small
/// public root: 543 bytes of DER.)
const UNUSED_ANCHOR_PEM: &str = "-----BEGIN CERTIFICATE-----
MIICGzCCAaGgAwIBAgIQQdKd0XLq7qeAwSxs6S+HUjAKBggqhkjOPQQDAzBPMQsw
CQYDVQQGEwJVUzEpMCcGA1UEChMgSW50ZXJuZXQgU2VjdXJpdHkgUmVzZWFyY2gg
R3JvdXAxFTATBgNVBAMTDElTUkcgUm9vdCBYMjAeFw0yMDA5MDQwMDAwMDBaFw00
MDA5MTcxNjAwMDBaME8xCzAJBgNVBAYTAlVTMSkwJwYDVQQKEyBJbnRlcm5ldCBT
ZWN1cml0eSBSZXNlYXJjaCBHcm91cDEVMBMGA1UEAxMMSVNSRyBSb290IFgyMHYw
EAYHKoZIzj0CAQYFK4EEACIDYgAEzZvVn4CDCuwJSvMWSj5cz3es3mcFDR0HttwW
+1qLFNvicWDEukWVEYmO6gbf9yoWHKS5xcUy4APgHoIYOIvXRdgKam7mAHf7AlF9
ItgKbppbd9/w+kHsOdx1ymgHDB/qo0IwQDAOBgNVHQ8BAf8EBAMCAQYwDwYDVR0T
AQH/BAUwAwEB/zAdBgNVHQ4EFgQUfEKWrt5LSDv6kviejM9ti6lyN5UwCgYIKoZI
zj0EAwMDaAAwZQIwe3lORlCEwkSHRhtFcP9Ymd70/aTSVaYgLXTWNLxBo1BfASdW
tL4ndQavEi51mI38AjEAi/V3bNTIZargCyzuFJ0nN6T5U6VR5CmD1/iQMVtCnwr1
/q4AaOeMSQ+2b1tbFfLn
-----END CERTIFICATE-----
";

/// The mysql_async TLS options for `tls`; `None` for plain text. (`verify_ca` does not
/// reach here: mysql_async 0.37.1 cannot skip the name check, and the config refuses
/// it for MySQL/MariaDB clusters.)
pub fn mysql_ssl_opts(tls: &TlsConfig) -> Option<mysql_async::SslOpts> {
    use mysql_async::{ClientIdentity, SslOpts};
    if tls.mode == TlsMode::Disabled {
        return None;
    }
    let buf = |pem: &[u8]| pem.to_vec().into();
    let mut opts = SslOpts::default();
    if let Some(ca) = &tls.ca {
        opts = opts
            .with_root_certs(vec![buf(&ca.pem)])
            .with_disable_built_in_roots(true);
    }
    if let Some((cert, key)) = &tls.client {
        opts = opts.with_client_identity(Some(ClientIdentity::new(buf(&cert.pem), buf(&key.pem))));
    }
    Some(match tls.mode {
        TlsMode::Disabled | TlsMode::Preferred | TlsMode::Required => {
            if tls.ca.is_none() {
                // Nothing is verified, but mysql_async builds a verifier anyway, for
                // which it copies the ~150 built-in roots into every connection (about
                // 60 KB each, kept as long as the connection lives). One anchor does.
                opts = opts
                    .with_root_certs(vec![UNUSED_ANCHOR_PEM.as_bytes().to_vec().into()])
                    .with_disable_built_in_roots(true);
            }
            opts.with_danger_accept_invalid_certs(true)
                .with_danger_skip_domain_validation(true)
        }
        TlsMode::VerifyCa | TlsMode::VerifyIdentity => {
            opts.with_danger_tls_hostname_override(tls.server_name.clone())
        }
    })
}

/// The roots `tls` trusts: its `tls_ca`, or the Mozilla roots built in.
fn roots(tls: &TlsConfig) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    match &tls.ca {
        Some(ca) => {
            for cert in CertificateDer::pem_slice_iter(&ca.pem) {
                let cert = cert.map_err(|e| format!("{}: {e}", ca.path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: not a CA certificate: {e}", ca.path.display()))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(roots)
}

/// The rustls client configuration `tls` makes (for PostgreSQL): the roots, the
/// client certificate, and a verifier that checks what the mode says. An error says
/// which file is at fault.
pub fn client_config(tls: &TlsConfig) -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let webpki =
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots(tls)?), provider.clone())
            .build()
            .map_err(|e| format!("no CA to verify against: {e}"))?;
    let verifier = Arc::new(Verifier {
        mode: tls.mode,
        webpki,
    });
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    match &tls.client {
        None => Ok(builder.with_no_client_auth()),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_slice_iter(&cert.pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{}: {e}", cert.path.display()))?;
            let private = PrivateKeyDer::from_pem_slice(&key.pem)
                .map_err(|e| format!("{}: {e}", key.path.display()))?;
            builder
                .with_client_auth_cert(chain, private)
                .map_err(|e| format!("{} and {}: {e}", cert.path.display(), key.path.display()))
        }
    }
}

/// [`client_config`] made once per settings (every connection of a recorder has the
/// same): parsing the built-in roots for each of a thousand replicas' connections
/// would be a thousand times the same work.
pub fn cached_client_config(tls: &TlsConfig) -> Result<ClientConfig, String> {
    static MADE: std::sync::Mutex<Option<(TlsConfig, ClientConfig)>> = std::sync::Mutex::new(None);
    let mut made = MADE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((settings, config)) = made.as_ref()
        && settings == tls
    {
        return Ok(config.clone());
    }
    let config = client_config(tls)?;
    *made = Some((tls.clone(), config.clone()));
    Ok(config)
}

/// Checks a server's certificate as far as the mode says; the handshake's signatures
/// are always checked (the key exchange is what encrypts).
#[derive(Debug)]
struct Verifier {
    mode: TlsMode,
    webpki: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if !self.mode.verifies() {
            return Ok(ServerCertVerified::assertion());
        }
        match self
            .webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if self.mode == TlsMode::VerifyCa => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// tokio-postgres's TLS maker for `tls`: rustls with [`client_config`], the server's
/// name from `tls_server_name` when set, and `used` turned true once the server has
/// agreed to TLS (so that `preferred` can tell what it got).
pub struct PgTls {
    inner: tokio_postgres_rustls::MakeRustlsConnect,
    server_name: Option<String>,
    pub used: Arc<AtomicBool>,
}

impl PgTls {
    pub fn new(tls: &TlsConfig) -> Result<PgTls, String> {
        Ok(PgTls {
            inner: tokio_postgres_rustls::MakeRustlsConnect::new(cached_client_config(tls)?),
            server_name: tls.server_name.clone(),
            used: Arc::new(AtomicBool::new(false)),
        })
    }
}

impl<S> tokio_postgres::tls::MakeTlsConnect<S> for PgTls
where
    tokio_postgres_rustls::MakeRustlsConnect: tokio_postgres::tls::MakeTlsConnect<S>,
{
    type Stream = <tokio_postgres_rustls::MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<S>>::Stream;
    type TlsConnect = Noted<
        <tokio_postgres_rustls::MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<S>>::TlsConnect,
    >;
    type Error =
        <tokio_postgres_rustls::MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<S>>::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<Self::TlsConnect, Self::Error> {
        let name = self.server_name.as_deref().unwrap_or(domain);
        let inner = self.inner.make_tls_connect(name)?;
        Ok(Noted(inner, self.used.clone()))
    }
}

/// A TLS connector that notes when the server agreed to TLS.
pub struct Noted<C>(C, Arc<AtomicBool>);

impl<S, C: tokio_postgres::tls::TlsConnect<S>> tokio_postgres::tls::TlsConnect<S> for Noted<C> {
    type Stream = C::Stream;
    type Error = C::Error;
    type Future = C::Future;

    fn connect(self, stream: S) -> Self::Future {
        self.1.store(true, Ordering::Relaxed);
        self.0.connect(stream)
    }
}

/// An operator's words for a TLS failure, from rustls's error (`error`), or `None`
/// when it is not a TLS failure.
pub fn reason(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut at: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = at {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(words(r));
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(r) = inner.downcast_ref::<rustls::Error>()
        {
            return Some(words(r));
        }
        at = e.source();
    }
    None
}

fn words(e: &rustls::Error) -> String {
    use CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => {
                "the server's certificate is not signed by a trusted CA (tls_ca, or the built-in roots without it)".into()
            }
            C::NotValidForName | C::NotValidForNameContext { .. } => format!(
                "the server's certificate is for another name ({c}); set tls_server_name to the name it is for"
            ),
            C::ExpiredContext { not_after, .. } => format!(
                "the server's certificate expired at {}",
                crate::clock::format_utc_us(not_after.as_secs() as i64 * 1_000_000)
            ),
            C::Expired => "the server's certificate has expired".into(),
            C::NotValidYet | C::NotValidYetContext { .. } => {
                format!("the server's certificate is not valid yet ({c})")
            }
            other => format!("the server's certificate was refused: {other}"),
        },
        rustls::Error::AlertReceived(alert) => {
            format!("the server refused the TLS handshake ({alert:?}): a client certificate it does not accept?")
        }
        other => format!("TLS handshake failed: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_read_as_an_operator_acts_on_them() {
        let unknown = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, unknown);
        let text = reason(&io).unwrap();
        assert!(text.contains("not signed by a trusted CA"), "{text}");
        let expired = rustls::Error::InvalidCertificate(CertificateError::Expired);
        assert!(reason(&expired).unwrap().contains("has expired"));
        let plain = std::io::Error::other("connection reset");
        assert_eq!(reason(&plain), None);
    }

    /// Modes that verify nothing give the driver one root, not the built-in ~150 it
    /// would copy into every connection; `verify_identity` without `tls_ca` keeps them.
    #[test]
    fn only_a_verifying_mode_without_a_ca_gives_the_driver_the_built_in_roots() {
        for mode in [TlsMode::Preferred, TlsMode::Required] {
            let opts = mysql_ssl_opts(&TlsConfig {
                mode,
                ..TlsConfig::default()
            })
            .unwrap();
            assert!(opts.disable_built_in_roots(), "{mode:?}");
            assert_eq!(opts.root_certs().len(), 1, "{mode:?}");
        }
        let verifying = mysql_ssl_opts(&TlsConfig {
            mode: TlsMode::VerifyIdentity,
            ..TlsConfig::default()
        })
        .unwrap();
        assert!(!verifying.disable_built_in_roots());
    }
}
