//! Host and port addresses: parsing `host:port` forms, and the statsd address and
//! prefix checks shared by the config and `replay`'s flags.

use std::fmt;

use super::{Address, DEFAULT_MYSQL_PORT};

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Why an address (`host:port`) was refused; each names the text given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("address is empty")]
    Empty,
    #[error("bad address {0:?}: contains whitespace")]
    Whitespace(String),
    #[error("bad address {0:?}: missing ']'")]
    MissingBracket(String),
    #[error("bad address {0:?}: expected ':' after ']'")]
    NoColonAfterBracket(String),
    #[error("bad address {0:?}: write IPv6 addresses as [addr]:port")]
    BareIpv6(String),
    #[error("bad address {0:?}: host is empty")]
    EmptyHost(String),
    #[error("bad address {0:?}: host has invalid characters")]
    BadHost(String),
    #[error("bad address {0:?}: port must be 1-65535")]
    PortRange(String),
    #[error("bad address {0:?}: port is not a number")]
    PortNotNumber(String),
    #[error("bad address {0:?}: give host:port (statsd has no default port here)")]
    NoPort(String),
}

/// A statsd prefix that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a statsd prefix (letters, digits, _ - and inner dots)")]
pub struct BadPrefix(pub String);

/// A statsd `host:port` (there is no default port: 8125 is only the usual one).
pub fn statsd_address(text: &str) -> Result<Address, AddressError> {
    if !text.contains(':') {
        return Err(AddressError::NoPort(text.to_string()));
    }
    Address::parse(text)
}

/// A statsd metric prefix: letters, digits, `_`, `-` and inner dots.
pub fn check_statsd_prefix(prefix: &str) -> Result<(), BadPrefix> {
    let valid = !prefix.is_empty()
        && !prefix.starts_with('.')
        && !prefix.ends_with('.')
        && !prefix.contains("..")
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if valid {
        Ok(())
    } else {
        Err(BadPrefix(prefix.to_string()))
    }
}

impl Address {
    /// Whether `host:port` (a replication channel's source) names this server: the same
    /// port, and the same host name or a common IP once both are resolved. Resolving is
    /// a lookup: call it when a source changed, not on every poll.
    pub fn is(&self, host: &str, port: u16) -> bool {
        use std::net::{IpAddr, ToSocketAddrs};
        if port != self.port {
            return false;
        }
        if host.eq_ignore_ascii_case(&self.host) {
            return true;
        }
        let ips = |host: &str| -> Vec<IpAddr> {
            (host, 0)
                .to_socket_addrs()
                .map(|a| a.map(|s| s.ip()).collect())
                .unwrap_or_default()
        };
        let mine = ips(&self.host);
        ips(host).iter().any(|ip| mine.contains(ip))
    }

    /// Parses `host:port`, `host` (port 3306) or `[v6]:port`.
    pub fn parse(text: &str) -> Result<Address, AddressError> {
        Address::parse_or_port(text, DEFAULT_MYSQL_PORT)
    }

    /// [`Address::parse`], with `default_port` when the text names none.
    pub fn parse_or_port(text: &str, default_port: u16) -> Result<Address, AddressError> {
        let bad = |why: fn(String) -> AddressError| Err(why(text.to_string()));
        if text.is_empty() {
            return Err(AddressError::Empty);
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return bad(AddressError::Whitespace);
        }
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let Some((host, after)) = rest.split_once(']') else {
                return bad(AddressError::MissingBracket);
            };
            match after {
                "" => (host, None),
                p => match p.strip_prefix(':') {
                    Some(p) => (host, Some(p)),
                    None => return bad(AddressError::NoColonAfterBracket),
                },
            }
        } else {
            match text.rsplit_once(':') {
                Some((h, _)) if h.contains(':') => return bad(AddressError::BareIpv6),
                Some((h, p)) => (h, Some(p)),
                None => (text, None),
            }
        };
        if host.is_empty() {
            return bad(AddressError::EmptyHost);
        }
        let valid_host = host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '%'));
        if !valid_host {
            return bad(AddressError::BadHost);
        }
        let port = match port {
            None => default_port,
            Some(p) => match p.parse::<u32>() {
                Ok(n) if (1..=65535).contains(&n) => n as u16,
                Ok(_) => return bad(AddressError::PortRange),
                Err(_) => return bad(AddressError::PortNotNumber),
            },
        };
        Ok(Address {
            host: host.to_string(),
            port,
        })
    }
}
