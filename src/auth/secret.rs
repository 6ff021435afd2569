//! Passwords and the `Authorization` header. Passwords are generated here (32 random bytes), shown
//! once and kept only as SHA-256 hashes: random secrets make a fast hash safe, and a check costs
//! microseconds of the request's CPU budget. Comparisons run in constant time. Nothing in this
//! module logs or formats a password.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

/// Bytes of randomness in a generated password.
pub const PASSWORD_BYTES: usize = 32;

/// A new random password: 32 bytes, base64url (43 characters).
pub fn generate_password() -> Result<String, String> {
    let mut bytes = [0u8; PASSWORD_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// A random identifier (JWT ids): 16 bytes, base64url.
pub fn random_id() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The stored form of a password: `sha256:<hex>`.
pub fn hash_password(password: &str) -> String {
    format!(
        "sha256:{}",
        hex::encode(Sha256::digest(password.as_bytes()))
    )
}

/// Whether `password` hashes to `stored` (compared in constant time).
pub fn verify_password(password: &str, stored: &str) -> bool {
    let candidate = hash_password(password);
    candidate.len() == stored.len() && bool::from(candidate.as_bytes().ct_eq(stored.as_bytes()))
}

/// A short, non-reversible fingerprint of a stored hash: refresh tokens carry it, so that a
/// regenerated or deleted password ends the refresh tokens issued for the old one.
pub fn fingerprint(stored_hash: &str) -> String {
    hex::encode(&Sha256::digest(stored_hash.as_bytes())[..8])
}

/// The credentials of an `Authorization` header.
#[derive(PartialEq, Eq)]
pub enum Credentials {
    Basic { username: String, password: String },
    Bearer(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Basic { username, .. } => write!(f, "Basic({username})"),
            Credentials::Bearer(_) => f.write_str("Bearer(..)"),
        }
    }
}

/// Parses an `Authorization` header value strictly: a scheme we do not know, bad base64, a Basic
/// value without `:`, or a token with characters outside the token68 alphabet is an error (the
/// request is refused, never treated as anonymous).
pub fn parse_authorization(value: &[u8]) -> Result<Credentials, &'static str> {
    let value = std::str::from_utf8(value).map_err(|_| "Authorization header is not UTF-8")?;
    let (scheme, rest) = value
        .split_once(' ')
        .ok_or("Authorization header has no scheme")?;
    let rest = rest.trim();
    if rest.is_empty() {
        return Err("Authorization header has no credentials");
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = STANDARD
            .decode(rest)
            .map_err(|_| "Basic credentials are not base64")?;
        let decoded = String::from_utf8(decoded).map_err(|_| "Basic credentials are not UTF-8")?;
        let (username, password) = decoded
            .split_once(':')
            .ok_or("Basic credentials have no ':'")?;
        if username.is_empty() {
            return Err("Basic credentials have no user name");
        }
        Ok(Credentials::Basic {
            username: username.to_owned(),
            password: password.to_owned(),
        })
    } else if scheme.eq_ignore_ascii_case("bearer") {
        let token68 = rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b));
        if !token68 {
            return Err("Bearer token has characters a token cannot have");
        }
        Ok(Credentials::Bearer(rest.to_owned()))
    } else {
        Err("Authorization scheme must be Basic or Bearer")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_are_long_and_distinct() {
        let a = generate_password().unwrap();
        let b = generate_password().unwrap();
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
    }

    #[test]
    fn hashes_verify() {
        let stored = hash_password("s3cret");
        assert!(stored.starts_with("sha256:"));
        assert!(verify_password("s3cret", &stored));
        assert!(!verify_password("s3cret ", &stored));
        assert!(!verify_password("", &stored));
        assert!(!verify_password("s3cret", "sha256:00"));
        assert_ne!(fingerprint(&stored), fingerprint(&hash_password("other")));
    }

    #[test]
    fn authorization_headers() {
        assert_eq!(
            parse_authorization(b"Basic dTpwOnE=").unwrap(),
            Credentials::Basic {
                username: "u".into(),
                password: "p:q".into()
            }
        );
        assert_eq!(
            parse_authorization(b"bearer abc.def-_").unwrap(),
            Credentials::Bearer("abc.def-_".into())
        );
        for bad in [
            &b"Basic"[..],
            b"Basic ",
            b"Basic !!!",
            b"Basic dXNlcg==", // "user": no colon
            b"Basic OnA=",     // ":p": no user
            b"Bearer a b",     // space inside
            b"Bearer a\"b",    // quote
            b"Digest abc",     // unknown scheme
            b"Basic \xff\xfe", // not UTF-8
            b"BasicdTpw",      // no space
        ] {
            assert!(parse_authorization(bad).is_err(), "{bad:?}");
        }
        // Passwords never reach Debug output.
        let c = parse_authorization(b"Basic dTpodW50ZXIy").unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
