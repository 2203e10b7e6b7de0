//! Which addresses health checks may connect to. Whoever may create a HealthCheck
//! chooses its target, so without a guard a probe can be pointed at the node's
//! link-local services or the cloud metadata endpoint (and, with `searchString`,
//! read a bit of what they answer). The guard is checked on the address about to
//! be connected to, after every resolution, so a name cannot smuggle a denied
//! address past it.
//!
//! Rules: the built-in denials (169.254.0.0/16, fe80::/10, fd00:ec2::254/128), every
//! `--probe-deny` and every `--probe-allow`. The most specific rule (longest prefix)
//! that covers an address decides; between an allow and a deny of the same prefix
//! length the allow wins. An address no rule covers is allowed. An IPv4 address in
//! IPv4-mapped IPv6 form (`::ffff:169.254.169.254`) is judged as the IPv4 address.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An address range: `10.0.0.0/8`, `fd00::/8`, or a bare address (a /32 or /128).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("{0:?} is not an IP address or CIDR range")]
    Address(String),
    #[error("prefix length {prefix} is too long for {addr} (at most {max})")]
    Prefix { addr: IpAddr, prefix: u8, max: u8 },
}

impl Cidr {
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, CidrError> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(CidrError::Prefix { addr, prefix, max });
        }
        Ok(Self { addr: mask(addr, prefix), prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.prefix) == self.addr
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4).checked_shr(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(bits.checked_shl(32 - u32::from(prefix)).unwrap_or(0).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6).checked_shr(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(bits.checked_shl(128 - u32::from(prefix)).unwrap_or(0).into())
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Self, CidrError> {
        let text = text.trim();
        let bad = || CidrError::Address(text.to_string());
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix.parse::<u8>().map_err(|_| bad())?)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        Cidr::new(addr, prefix.unwrap_or(if addr.is_ipv4() { 32 } else { 128 }))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Where a rule comes from, for the message of a denied probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    BuiltIn(&'static str),
    Deny,
    Allow,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rule {
    cidr: Cidr,
    origin: Origin,
}

/// The built-in denials: link-local (where node-local services and, on most
/// clouds, the instance metadata service live) and AWS's IPv6 metadata address.
pub const DEFAULT_DENY: [(&str, &str); 3] = [
    ("169.254.0.0/16", "IPv4 link-local and cloud metadata"),
    ("fe80::/10", "IPv6 link-local"),
    ("fd00:ec2::254/128", "cloud metadata (IPv6)"),
];

/// The rule that denied an address, for the probe's message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denied {
    pub rule: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeGuard {
    rules: Vec<Rule>,
}

impl Default for ProbeGuard {
    /// The built-in denials only.
    fn default() -> Self {
        Self::new(&[], &[])
    }
}

impl ProbeGuard {
    pub fn new(deny: &[Cidr], allow: &[Cidr]) -> Self {
        let builtin = DEFAULT_DENY.iter().map(|(cidr, why)| Rule {
            cidr: cidr.parse().expect("built-in rules parse"),
            origin: Origin::BuiltIn(why),
        });
        let deny = deny.iter().map(|&cidr| Rule { cidr, origin: Origin::Deny });
        let allow = allow.iter().map(|&cidr| Rule { cidr, origin: Origin::Allow });
        Self { rules: builtin.chain(deny).chain(allow).collect() }
    }

    /// Ok when a probe may connect to `ip`; else the rule that denies it.
    pub fn check(&self, ip: IpAddr) -> Result<(), Denied> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        // Longest prefix first; on a tie an allow beats a deny.
        let decisive = self
            .rules
            .iter()
            .filter(|r| r.cidr.contains(ip))
            .max_by_key(|r| (r.cidr.prefix, r.origin == Origin::Allow));
        match decisive {
            None | Some(Rule { origin: Origin::Allow, .. }) => Ok(()),
            Some(Rule { cidr, origin: Origin::Deny }) => {
                Err(Denied { rule: format!("--probe-deny {cidr}") })
            }
            Some(Rule { cidr, origin: Origin::BuiltIn(why) }) => Err(Denied {
                rule: format!("the built-in deny rule {cidr} ({why}; override with --probe-allow)"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|c| c.parse().unwrap()).collect()
    }

    #[test]
    fn cidrs_parse_and_normalise() {
        assert_eq!("10.1.2.3/8".parse::<Cidr>().unwrap().to_string(), "10.0.0.0/8");
        assert_eq!("192.0.2.7".parse::<Cidr>().unwrap().to_string(), "192.0.2.7/32");
        assert_eq!("2001:db8::1".parse::<Cidr>().unwrap().to_string(), "2001:db8::1/128");
        assert_eq!("0.0.0.0/0".parse::<Cidr>().unwrap().to_string(), "0.0.0.0/0");
        assert_eq!("::/0".parse::<Cidr>().unwrap().to_string(), "::/0");
        assert!(matches!("10.0.0.0/33".parse::<Cidr>(), Err(CidrError::Prefix { .. })));
        assert!(matches!("example.com".parse::<Cidr>(), Err(CidrError::Address(_))));
        assert!(matches!("10.0.0.0/x".parse::<Cidr>(), Err(CidrError::Address(_))));
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains(ip("203.0.113.9")));
        assert!(!"0.0.0.0/0".parse::<Cidr>().unwrap().contains(ip("2001:db8::1")));
    }

    /// The default list as a pure decision: no traffic is ever sent to these.
    #[test]
    fn link_local_and_metadata_addresses_are_denied_by_default() {
        let guard = ProbeGuard::default();
        for denied in [
            "169.254.169.254",
            "169.254.0.1",
            "169.254.255.255",
            "fe80::1",
            "febf::1",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
        ] {
            let err = guard.check(ip(denied)).expect_err(denied);
            assert!(err.rule.contains("built-in deny rule"), "{denied}: {}", err.rule);
        }
        assert!(guard.check(ip("169.254.169.254")).unwrap_err().rule.contains("169.254.0.0/16"));
        for allowed in [
            "127.0.0.1",
            "10.0.0.1",
            "169.253.255.255",
            "169.255.0.0",
            "fec0::1",
            "fd00:ec2::253",
            "::1",
            "2001:db8::1",
        ] {
            assert_eq!(guard.check(ip(allowed)), Ok(()), "{allowed}");
        }
    }

    #[test]
    fn the_most_specific_rule_wins_and_allow_wins_a_tie() {
        let guard = ProbeGuard::new(
            &cidrs(&["10.0.0.0/8", "10.1.2.3/32", "127.0.0.2"]),
            &cidrs(&["10.1.0.0/16", "169.254.10.0/24", "127.0.0.2/32"]),
        );
        assert!(guard.check(ip("10.9.9.9")).unwrap_err().rule.contains("--probe-deny 10.0.0.0/8"));
        assert_eq!(
            guard.check(ip("10.1.9.9")),
            Ok(()),
            "the /16 allow is more specific than the /8 deny"
        );
        assert_eq!(guard.check(ip("10.1.2.3")).unwrap_err().rule, "--probe-deny 10.1.2.3/32");
        assert_eq!(guard.check(ip("169.254.10.20")), Ok(()), "an allow overrides the built-in /16");
        assert!(guard.check(ip("169.254.169.254")).is_err());
        assert_eq!(guard.check(ip("127.0.0.2")), Ok(()), "same length: the allow wins");
    }

    #[test]
    fn a_broad_allow_does_not_open_the_built_in_ranges() {
        let guard = ProbeGuard::new(&[], &cidrs(&["0.0.0.0/0", "::/0"]));
        assert!(guard.check(ip("169.254.169.254")).is_err());
        assert!(guard.check(ip("fd00:ec2::254")).is_err());
    }
}
