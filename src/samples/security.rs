//! What a connection to a server ended as (plain text or TLS, its certificate checked
//! how far), noted by the probes when they connect (`probe::tls`) and read by what
//! reports it (`init`, `record`'s first lines, `/status`). One process-wide table,
//! keyed by `host:port`: the last connection to each server.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::config::{Address, TlsMode};

/// What a connection ended as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Plain text: `tls = disabled`.
    PlainAsConfigured,
    /// Plain text: `tls = preferred` and the server offers no TLS.
    PlainFallback,
    /// TLS; the certificate checked as `mode` says (not at all for `preferred` and
    /// `required`).
    Encrypted { mode: TlsMode },
}

impl Security {
    /// Whether the connection is encrypted.
    pub fn encrypted(self) -> bool {
        matches!(self, Security::Encrypted { .. })
    }

    /// How far the server's certificate was checked: `none`, `ca` or `identity`.
    pub fn verified(self) -> &'static str {
        match self {
            Security::Encrypted {
                mode: TlsMode::VerifyIdentity,
            } => "identity",
            Security::Encrypted {
                mode: TlsMode::VerifyCa,
            } => "ca",
            _ => "none",
        }
    }
}

impl std::fmt::Display for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Security::PlainAsConfigured => f.write_str("plain text (tls = disabled)"),
            Security::PlainFallback => {
                f.write_str("plain text: the server offers no TLS (tls = preferred)")
            }
            Security::Encrypted {
                mode: TlsMode::VerifyIdentity,
            } => f.write_str("TLS, certificate verified for the server's name (verify_identity)"),
            Security::Encrypted {
                mode: TlsMode::VerifyCa,
            } => f.write_str("TLS, certificate verified against the CA, any name (verify_ca)"),
            Security::Encrypted { mode } => {
                write!(f, "TLS, certificate not checked ({})", mode.name())
            }
        }
    }
}

/// What `/status` shows of a server's connection.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TlsDoc {
    pub encrypted: bool,
    /// How far the certificate was checked: `none`, `ca` or `identity`.
    pub verified: &'static str,
    /// In words, as `init` and `record` say it.
    pub detail: String,
}

impl Security {
    pub fn doc(self) -> TlsDoc {
        TlsDoc {
            encrypted: self.encrypted(),
            verified: self.verified(),
            detail: self.to_string(),
        }
    }
}

/// What the last connection to each server (`host:port`) ended as.
static SEEN: Mutex<BTreeMap<String, Security>> = Mutex::new(BTreeMap::new());

/// Notes what a connection to `addr` ended as; logs it when it is new or changed
/// (plain text where TLS was preferred at warn: the operator asked for TLS).
pub fn note(addr: &Address, security: Security) {
    let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    if seen.insert(addr.to_string(), security) == Some(security) {
        return;
    }
    if security == Security::PlainFallback {
        tracing::warn!(server = %addr, "connection in {security}");
    } else {
        tracing::info!(server = %addr, "connection in {security}");
    }
}

/// What the last connection to the server at `address` (`host:port`, as
/// [`Address`] prints) ended as, if one was made.
pub fn seen(address: &str) -> Option<Security> {
    let seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    seen.get(address).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_connection_ended_as_is_said_plainly() {
        let verified = Security::Encrypted {
            mode: TlsMode::VerifyIdentity,
        };
        assert_eq!(verified.verified(), "identity");
        assert!(verified.to_string().contains("verified"));
        let required = Security::Encrypted {
            mode: TlsMode::Required,
        };
        assert_eq!(required.verified(), "none");
        assert!(required.to_string().contains("not checked"));
        assert!(!Security::PlainFallback.encrypted());
        assert!(
            Security::PlainFallback
                .to_string()
                .contains("offers no TLS")
        );
    }
}
