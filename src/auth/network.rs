//! Network rules, as ACR has them: a default action and a list of IPv4/IPv6 ranges that are
//! allowed. The client address is the one the platform reports (`CF-Connecting-IP` on Cloudflare,
//! set by the edge itself); an unknown address under a deny default is refused.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DefaultAction {
    #[default]
    Allow,
    Deny,
}

/// `{"defaultAction": "Allow" | "Deny", "ipRules": ["203.0.113.0/24", "2001:db8::/32", ...]}`.
/// The ranges are parsed when the rules are read (a stored rule that does not parse fails the
/// settings record, never silently allows or skips), and written back as CIDR text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkRules {
    #[serde(default)]
    pub default_action: DefaultAction,
    #[serde(default, with = "ranges")]
    pub ip_rules: Vec<IpNet>,
}

impl NetworkRules {
    /// Rules from their text form (the management API's); an invalid range is named.
    pub fn parse(default_action: DefaultAction, rules: &[String]) -> Result<NetworkRules, String> {
        Ok(NetworkRules {
            default_action,
            ip_rules: rules
                .iter()
                .map(|r| parse_range(r))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Whether a client at `address` may use the registry.
    pub fn allows(&self, address: Option<IpAddr>) -> bool {
        if self.default_action == DefaultAction::Allow {
            return true;
        }
        let Some(address) = address else {
            return false;
        };
        let address = canonical(address);
        self.ip_rules.iter().any(|range| range.contains(&address))
    }
}

/// Ranges as their CIDR text.
mod ranges {
    use ipnet::IpNet;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ranges: &[IpNet], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(ranges.iter().map(ToString::to_string))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|r| super::parse_range(r).map_err(serde::de::Error::custom))
            .collect()
    }
}

pub fn parse_range(rule: &str) -> Result<IpNet, String> {
    let rule = rule.trim();
    rule.parse::<IpNet>()
        .or_else(|_| rule.parse::<IpAddr>().map(IpNet::from))
        .map(|net| net.trunc())
        .map_err(|_| format!("{rule:?} is not an IPv4 or IPv6 address or CIDR range"))
}

/// An IPv4 address written as IPv6 (`::ffff:192.0.2.1`) is the IPv4 address.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn default_allow_allows_everyone() {
        assert!(NetworkRules::default().allows(None));
    }

    #[test]
    fn deny_with_ranges() {
        let rules = NetworkRules::parse(
            DefaultAction::Deny,
            &[
                "10.0.0.0/8".into(),
                "2001:db8::/32".into(),
                "192.0.2.7".into(),
            ],
        )
        .unwrap();
        assert!(rules.allows(ip("10.1.2.3")));
        assert!(rules.allows(ip("192.0.2.7")));
        assert!(rules.allows(ip("::ffff:10.9.9.9")));
        assert!(rules.allows(ip("2001:db8::1")));
        assert!(!rules.allows(ip("192.0.2.8")));
        assert!(!rules.allows(ip("11.0.0.1")));
        assert!(!rules.allows(ip("2001:db9::1")));
        assert!(!rules.allows(None));
        let json = serde_json::to_value(&rules).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"defaultAction": "Deny", "ipRules": ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7/32"]})
        );
        assert_eq!(serde_json::from_value::<NetworkRules>(json).unwrap(), rules);
    }

    #[test]
    fn invalid_rules_are_named_and_never_skipped() {
        let err = NetworkRules::parse(DefaultAction::Deny, &["10.0.0.0/33".into()]).unwrap_err();
        assert!(err.contains("10.0.0.0/33"));
        assert!(parse_range("host.example").is_err());
        assert_eq!(parse_range("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        // A stored rule that does not parse fails the record.
        assert!(
            serde_json::from_str::<NetworkRules>(
                r#"{"defaultAction": "Deny", "ipRules": ["10.0.0.0/8", "nonsense"]}"#
            )
            .is_err()
        );
    }
}
