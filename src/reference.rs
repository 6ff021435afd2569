//! The spec's words as types: repository `Name`, `Tag`, `Digest` and `Reference` (tag or digest),
//! each parsed once by `FromStr` against the OCI Distribution Spec grammars, so that an invalid value
//! cannot be constructed. Everything that becomes part of a storage key goes through these types:
//! that is what keeps `..`, empty components, upper case and percent-encoded slashes out of the
//! keys. Nothing here is ever percent-decoded.

use std::fmt;
use std::str::FromStr;

use serde_json::json;
use sha2::{Digest as _, Sha256, Sha512};

use crate::error::{Error, ErrorCode};

/// Longest repository name accepted, as distribution's `reference.NameTotalLengthMax`.
pub const NAME_MAX_LEN: usize = 255;
/// Longest tag accepted: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub const TAG_MAX_LEN: usize = 128;

/// A repository name: `<component>(/<component>)*`, each component matching
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, at most 255 characters in all.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(String);

impl Name {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Name {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let invalid = |why: &str| {
            Error::new(ErrorCode::NameInvalid).with_detail(json!({ "name": s, "reason": why }))
        };
        if s.is_empty() {
            return Err(invalid("empty repository name"));
        }
        if s.len() > NAME_MAX_LEN {
            return Err(invalid("repository name longer than 255 characters"));
        }
        if s.split('/').all(is_name_component) {
            Ok(Name(s.to_owned()))
        } else {
            Err(invalid(
                "each /-separated component must match [a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*",
            ))
        }
    }
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn is_name_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or one or more "-", then an alphanumeric.
        let run = b[i..].iter().take_while(|x| !alnum(**x)).count();
        let sep = &c[i..i + run];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
        i += run;
    }
    true
}

/// A tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Tag {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let b = s.as_bytes();
        let first = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
        let rest = |x: u8| first(x) || x == b'.' || x == b'-';
        if !b.is_empty() && b.len() <= TAG_MAX_LEN && first(b[0]) && b[1..].iter().all(|x| rest(*x))
        {
            Ok(Tag(s.to_owned()))
        } else {
            Err(Error::new(ErrorCode::TagInvalid)
                .with_message("invalid tag: must match [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
                .with_detail(json!({ "tag": s })))
        }
    }
}

/// The digest algorithms this registry verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub const ALL: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Sha512];

    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// A content digest `<algorithm>:<lower-case hex>`, for `sha256` and `sha512`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// A digest from an algorithm and its encoded part, validated as `FromStr` does.
    pub fn from_parts(algorithm: Algorithm, hex: &str) -> Result<Digest, Error> {
        format!("{}:{hex}", algorithm.as_str()).parse()
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The encoded part, lower-case hex.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The digest of `bytes` with the same algorithm as `self`.
    pub fn of_same_algorithm(&self, bytes: &[u8]) -> Digest {
        let hex = match self.algorithm {
            Algorithm::Sha256 => hex::encode(Sha256::digest(bytes)),
            Algorithm::Sha512 => hex::encode(Sha512::digest(bytes)),
        };
        Digest {
            algorithm: self.algorithm,
            hex,
        }
    }

    /// The sha256 digest of `bytes`.
    pub fn sha256(bytes: &[u8]) -> Digest {
        Digest {
            algorithm: Algorithm::Sha256,
            hex: hex::encode(Sha256::digest(bytes)),
        }
    }

    /// Whether `bytes` hash to this digest.
    pub fn verifies(&self, bytes: &[u8]) -> bool {
        self.of_same_algorithm(bytes) == *self
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex)
    }
}

impl FromStr for Digest {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let invalid = |why: &str| {
            Error::new(ErrorCode::DigestInvalid)
                .with_message(format!("invalid digest: {why}"))
                .with_detail(json!({ "digest": s }))
        };
        let (alg, hex) = s
            .split_once(':')
            .ok_or_else(|| invalid("expected <algorithm>:<hex>"))?;
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            _ => {
                return Err(invalid(
                    "unsupported algorithm (sha256 and sha512 are supported)",
                ));
            }
        };
        if hex.len() != algorithm.hex_len()
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(invalid(&format!(
                "{alg} needs {} lower-case hex characters",
                algorithm.hex_len()
            )));
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_owned(),
        })
    }
}

/// Names, tags and digests are strings on the wire and in records, parsed again when read: a
/// record holding an invalid one fails to load rather than being believed.
macro_rules! serde_as_string {
    ($($t:ty),*) => {$(
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(|e: Error| serde::de::Error::custom(e.to_string()))
            }
        }
    )*};
}

serde_as_string!(Name, Tag, Digest);

/// What a manifest is addressed by: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Tag(Tag),
    Digest(Digest),
}

impl FromStr for Reference {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        if s.contains(':') {
            s.parse().map(Reference::Digest)
        } else {
            s.parse().map(Reference::Tag)
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => t.fmt(f),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let valid = [
            "a",
            "library/busybox",
            "team/app/service",
            "a.b/c_d/e__f/g-h/i---j",
            "0/9",
            &"a".repeat(255),
        ];
        for n in valid {
            assert!(n.parse::<Name>().is_ok(), "{n} should be valid");
        }
        let long = format!("{}/b", "a".repeat(254));
        let invalid = [
            "", "A/b", "a//b", "a/../b", "..", "a/./b", "/a", "a/", "a%2fb", "a%2Fb", "a..b",
            "a___b", "-a", "a-", "a_", ".a", "a/b/", "a b", "a\\b", "é", "a:b", &long,
        ];
        for n in invalid {
            let err = n.parse::<Name>().unwrap_err();
            assert_eq!(err.code, ErrorCode::NameInvalid, "{n}");
        }
    }

    #[test]
    fn tags() {
        for t in ["latest", "v1.0", "_x", "A-b_c.d", &"a".repeat(128)] {
            assert!(t.parse::<Tag>().is_ok(), "{t}");
        }
        for t in ["", ".a", "-a", "a/b", "a%2f", "a b", "..", &"a".repeat(129)] {
            assert_eq!(
                t.parse::<Tag>().unwrap_err().code,
                ErrorCode::TagInvalid,
                "{t}"
            );
        }
    }

    #[test]
    fn digests() {
        let d: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(d.to_string(), format!("sha256:{}", "a".repeat(64)));
        assert!(
            format!("sha512:{}", "0".repeat(128))
                .parse::<Digest>()
                .is_ok()
        );
        let invalid = [
            "sha256".to_string(),
            "sha256:".to_string(),
            format!("sha256:{}", "a".repeat(63)),
            format!("sha256:{}", "A".repeat(64)),
            format!("sha256:{}", "g".repeat(64)),
            format!("sha512:{}", "a".repeat(64)),
            format!("md5:{}", "a".repeat(32)),
            format!("sha256:../{}", "a".repeat(61)),
        ];
        for s in invalid {
            assert_eq!(
                s.parse::<Digest>().unwrap_err().code,
                ErrorCode::DigestInvalid,
                "{s}"
            );
        }
    }

    #[test]
    fn digest_verification() {
        // sha256("abc") and sha512("abc") from FIPS 180-2.
        let d = Digest::sha256(b"abc");
        assert_eq!(
            d.hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(d.verifies(b"abc"));
        assert!(!d.verifies(b"abd"));
        let d512: Digest = "sha512:ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f".parse().unwrap();
        assert!(d512.verifies(b"abc"));
    }

    #[test]
    fn references() {
        assert!(matches!(
            "latest".parse::<Reference>().unwrap(),
            Reference::Tag(_)
        ));
        let digest = format!("sha256:{}", "b".repeat(64));
        assert!(matches!(
            digest.parse::<Reference>().unwrap(),
            Reference::Digest(_)
        ));
        assert_eq!(
            "sha256:xyz".parse::<Reference>().unwrap_err().code,
            ErrorCode::DigestInvalid
        );
    }
}
