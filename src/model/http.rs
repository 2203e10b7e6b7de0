//! HTTP(S) probe options beyond Route 53's (`expectedStatuses`, `headers`,
//! `minCertificateValidity`), in the form the prober uses on every probe: statuses as a bitset, headers parsed once per
//! check into the request's header types.

use std::fmt;
use std::time::Duration;

use hyper::header::{HeaderName, HeaderValue};
use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq};

pub use crate::resources::{MAX_EXPECTED_STATUSES, MAX_HEADER_NAME, MAX_HEADER_VALUE, MAX_HEADERS};

/// Headers the probe writes itself or that would change how the request is framed or
/// the connection used (lower case); `host` has a message of its own.
pub const RESERVED_HEADERS: &[&str] = &[
    "accept-encoding",
    "connection",
    "content-length",
    "expect",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The options of one HTTP(S) check; a check that sets none has none
/// (`Probe::Http::options` is None), so its probes do no work for them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpOptions {
    /// The statuses that pass; None: Route 53's 2xx and 3xx.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_statuses: Option<StatusSet>,
    #[serde(skip_serializing_if = "RequestHeaders::is_empty")]
    pub headers: RequestHeaders,
    /// HTTPS: the served certificate must stay valid at least this long.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "optional_ms")]
    pub min_certificate_validity: Option<Duration>,
}

impl HttpOptions {
    pub fn is_empty(&self) -> bool {
        *self == HttpOptions::default()
    }

    /// Whether a response with this status passes.
    pub fn passes(options: Option<&HttpOptions>, status: u16) -> bool {
        match options.and_then(|o| o.expected_statuses.as_ref()) {
            Some(set) => set.contains(status),
            None => (200..400).contains(&status),
        }
    }

    /// The statuses that pass, for a message: `2xx or 3xx`, `200-299, 404`.
    pub fn expected_text(options: Option<&HttpOptions>) -> String {
        match options.and_then(|o| o.expected_statuses.as_ref()) {
            Some(set) => set.to_string(),
            None => "2xx or 3xx".into(),
        }
    }
}

fn optional_ms<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_u64(d.as_millis() as u64),
        None => s.serialize_none(),
    }
}

/// HTTP status codes 100-599 as a bitset: one look-up per probe, no allocation.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct StatusSet([u64; 8]);

impl StatusSet {
    pub const MIN: u16 = 100;
    pub const MAX: u16 = 599;

    pub fn contains(&self, status: u16) -> bool {
        if !(Self::MIN..=Self::MAX).contains(&status) {
            return false;
        }
        let bit = usize::from(status - Self::MIN);
        self.0[bit / 64] & (1 << (bit % 64)) != 0
    }

    /// Adds `low..=high` (both within 100-599).
    pub fn insert(&mut self, low: u16, high: u16) {
        for status in low.max(Self::MIN)..=high.min(Self::MAX) {
            let bit = usize::from(status - Self::MIN);
            self.0[bit / 64] |= 1 << (bit % 64);
        }
    }

    /// The set as ranges, in order: `[(200, 299), (404, 404)]`.
    pub fn ranges(&self) -> Vec<(u16, u16)> {
        let mut out: Vec<(u16, u16)> = Vec::new();
        for status in Self::MIN..=Self::MAX {
            if !self.contains(status) {
                continue;
            }
            match out.last_mut() {
                Some((_, high)) if *high + 1 == status => *high = status,
                _ => out.push((status, status)),
            }
        }
        out
    }

    /// Parses one entry: `404` or `200-299` (codes 100-599, low <= high).
    pub fn parse_entry(text: &str) -> Result<(u16, u16), String> {
        let code = |s: &str| {
            let valid = s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit());
            match s.parse::<u16>() {
                Ok(n) if valid && (Self::MIN..=Self::MAX).contains(&n) => Ok(n),
                _ => Err(format!(
                    "{text:?} is not a status code (100-599) or a range of them (\"200-299\")"
                )),
            }
        };
        match text.trim().split_once('-') {
            None => code(text.trim()).map(|n| (n, n)),
            Some((low, high)) => {
                let (low, high) = (code(low.trim())?, code(high.trim())?);
                if low > high {
                    return Err(format!("{text:?}: the range's low end is above its high end"));
                }
                Ok((low, high))
            }
        }
    }
}

impl fmt::Display for StatusSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (low, high)) in self.ranges().into_iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            if low == high {
                write!(f, "{low}")?;
            } else {
                write!(f, "{low}-{high}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for StatusSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StatusSet({self})")
    }
}

impl Serialize for StatusSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let ranges = self.ranges();
        let mut seq = s.serialize_seq(Some(ranges.len()))?;
        for (low, high) in ranges {
            if low == high {
                seq.serialize_element(&format!("{low}"))?;
            } else {
                seq.serialize_element(&format!("{low}-{high}"))?;
            }
        }
        seq.end()
    }
}

/// Extra request headers, validated and parsed once per check: a probe only clones
/// them into its request (reference counts, no parsing).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct RequestHeaders(Vec<(HeaderName, HeaderValue)>);

impl RequestHeaders {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &(HeaderName, HeaderValue)> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Validates `headers` (name → value) as a whole and each entry; the errors name
    /// the header.
    pub fn parse<'a>(
        headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, Vec<String>> {
        let mut parsed: Vec<(HeaderName, HeaderValue)> = Vec::new();
        let mut errors = Vec::new();
        let mut count = 0;
        for (name, value) in headers {
            count += 1;
            match header(name, value) {
                Ok((name, value)) => {
                    if parsed.iter().any(|(n, _)| *n == name) {
                        errors.push(format!(
                            "{name:?} is given twice (header names are case-insensitive)"
                        ));
                    } else {
                        parsed.push((name, value));
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        if count > MAX_HEADERS {
            errors.insert(0, format!("{count} headers; at most {MAX_HEADERS}"));
        }
        if errors.is_empty() { Ok(Self(parsed)) } else { Err(errors) }
    }
}

/// One header: a token name (not reserved) and a value of visible ASCII and spaces,
/// so no value can end the header line and start another header or request.
fn header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), String> {
    if name.is_empty() || name.len() > MAX_HEADER_NAME || !name.bytes().all(is_token_byte) {
        return Err(format!(
            "{name:?} is not a header name (1-{MAX_HEADER_NAME} letters, digits and !#$%&'*+-.^_`|~)"
        ));
    }
    let lower = name.to_ascii_lowercase();
    if lower == "host" {
        return Err(
            "Host may not be set here: it is fqdn (or the address) with the port, as for every check"
                .into(),
        );
    }
    if RESERVED_HEADERS.contains(&lower.as_str()) {
        return Err(format!(
            "{name:?} may not be set: the probe sets it or it would change how the request is framed"
        ));
    }
    if value.len() > MAX_HEADER_VALUE {
        return Err(format!(
            "the value of {name:?} is {} bytes long; at most {MAX_HEADER_VALUE}",
            value.len()
        ));
    }
    if let Some(bad) = value.bytes().find(|b| !(b' '..=b'~').contains(b)) {
        return Err(format!(
            "the value of {name:?} holds the byte {bad:#04x}: only visible ASCII characters and spaces are allowed (no CR, LF or other control characters)"
        ));
    }
    let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| format!("{name:?}: {e}"))?;
    let value = HeaderValue::from_str(value).map_err(|e| format!("{name:?}: {e}"))?;
    Ok((name, value))
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl Serialize for RequestHeaders {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name.as_str(), value.to_str().unwrap_or_default())?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_set_holds_codes_and_ranges() {
        let mut set = StatusSet::default();
        for entry in ["200-299", "404", "100", "599", "300-300"] {
            let (low, high) = StatusSet::parse_entry(entry).unwrap();
            set.insert(low, high);
        }
        for yes in [100, 200, 250, 299, 300, 404, 599] {
            assert!(set.contains(yes), "{yes}");
        }
        for no in [0, 99, 101, 301, 403, 405, 500, 598, 600, 1000] {
            assert!(!set.contains(no), "{no}");
        }
        assert_eq!(set.to_string(), "100, 200-300, 404, 599");
    }

    #[test]
    fn status_entries_are_checked() {
        assert_eq!(StatusSet::parse_entry("200-299"), Ok((200, 299)));
        assert_eq!(StatusSet::parse_entry(" 404 "), Ok((404, 404)));
        for bad in ["99", "600", "2xx", "", "-", "200-", "300-200", "0200", "+200", "200-2999"] {
            assert!(StatusSet::parse_entry(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn default_options_pass_2xx_and_3xx() {
        assert!(HttpOptions::passes(None, 200));
        assert!(HttpOptions::passes(None, 399));
        assert!(!HttpOptions::passes(None, 404));
        assert!(!HttpOptions::passes(None, 199));
        assert_eq!(HttpOptions::expected_text(None), "2xx or 3xx");
    }

    #[test]
    fn headers_refuse_what_could_smuggle_or_break_the_request() {
        let ok =
            RequestHeaders::parse([("X-Probe", "yes please"), ("Authorization", "Bearer a.b")]);
        assert_eq!(ok.unwrap().len(), 2);
        let refused = |name: &str, value: &str| RequestHeaders::parse([(name, value)]).unwrap_err();
        assert!(refused("X-A", "a\r\nX-B: b")[0].contains("0x0d"));
        assert!(refused("X-A", "a\nGET / HTTP/1.1")[0].contains("0x0a"));
        assert!(refused("X-A", "a\0")[0].contains("0x00"));
        assert!(refused("X-A", "tab\there")[0].contains("0x09"));
        assert!(refused("X-A", "é")[0].contains("visible ASCII"));
        assert!(refused("X A", "v")[0].contains("not a header name"));
        assert!(refused("X-A:", "v")[0].contains("not a header name"));
        assert!(refused("", "v")[0].contains("not a header name"));
        assert!(refused(&"x".repeat(65), "v")[0].contains("not a header name"));
        assert!(refused("X-A", &"v".repeat(2049))[0].contains("at most 2048"));
        assert!(refused("HOST", "evil.example")[0].contains("Host may not be set"));
        for name in ["Content-Length", "transfer-encoding", "Connection", "Upgrade", "TE"] {
            assert!(refused(name, "x")[0].contains("may not be set"), "{name}");
        }
        let twice = RequestHeaders::parse([("X-A", "1"), ("x-a", "2")]).unwrap_err();
        assert!(twice[0].contains("given twice"), "{twice:?}");
        let many: Vec<(String, String)> = (0..17).map(|i| (format!("x-{i}"), "v".into())).collect();
        let errors =
            RequestHeaders::parse(many.iter().map(|(n, v)| (n.as_str(), v.as_str()))).unwrap_err();
        assert!(errors[0].contains("17 headers; at most 16"), "{errors:?}");
    }
}
