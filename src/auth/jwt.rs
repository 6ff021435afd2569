//! The edge's tokens: ES256 JWTs signed with `jwt-simple`. Access tokens carry Docker's `access`
//! claim; refresh tokens (what `docker login` keeps as an identity token) carry the principal and
//! a fingerprint of the password they were issued for, and are checked against the principal's
//! current record on every use. Both name their use in a `use` claim, so neither passes for the
//! other. Every verification checks the signature, the algorithm (ES256 only: `alg: none` and HMAC
//! tokens are refused), the issuer, the audience and the time, with `LEEWAY` of clock drift.
//! Time always comes from the caller (the platform's clock), never from the system.

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jwt_simple::prelude::{
    Duration, ECDSAP256KeyPairLike, ECDSAP256PublicKeyLike, ES256KeyPair, ES256PublicKey,
    JWTClaims, UnixTimeStamp, VerificationOptions,
};
use serde::{Deserialize, Serialize};

use super::{AccessEntry, Principal};

/// Clock drift tolerated between the edge's locations.
pub const LEEWAY_SECONDS: u64 = 30;

/// Longest token accepted, and so the longest the token service issues (one constant for both).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

const ACCESS_USE: &str = "access";
const REFRESH_USE: &str = "refresh";

/// The signing key and everything verification needs: its public key, and the public keys of
/// earlier signing keys still accepted while their tokens live (key rotation).
///
/// Keys are named (`kid`) as Docker's token authentication names them, by their libtrust key id
/// (`libtrust_key_id`), so a registry such as distribution finds the key in its trusted
/// certificates. Tokens issued before the edge named keys so carry the key's JWK thumbprint
/// (RFC 7638) instead; they are still accepted while they live (`by_thumbprint`).
pub struct TokenKeys {
    pair: ES256KeyPair,
    public: ES256PublicKey,
    previous: Vec<ES256PublicKey>,
    /// Every accepted key again, named by its JWK thumbprint.
    by_thumbprint: Vec<ES256PublicKey>,
    pub key_id: String,
    pub issuer: String,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("key_id", &self.key_id)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct AccessClaims {
    #[serde(rename = "use")]
    token_use: String,
    kind: String,
    /// The generation of the principal's record the token was issued for (a token deleted and
    /// created again under the same name is another generation).
    #[serde(rename = "gen", default, skip_serializing_if = "String::is_empty")]
    generation: String,
    access: Vec<AccessEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RefreshClaims {
    #[serde(rename = "use")]
    token_use: String,
    kind: String,
    #[serde(rename = "gen", default, skip_serializing_if = "String::is_empty")]
    generation: String,
    /// Which password the token was issued for, and its fingerprint.
    password: String,
    fingerprint: String,
}

/// The key id Docker's token authentication (and distribution's token verifier, through
/// libtrust) names a public key by: the SHA-256 of its DER SubjectPublicKeyInfo, the first 240
/// bits in base32 without padding, in groups of four joined by `:`.
pub fn libtrust_key_id(public: &ES256PublicKey) -> Result<String, String> {
    use sha2::Digest as _;
    let der = public
        .to_der()
        .map_err(|e| format!("public key encoding: {e}"))?;
    let digest = sha2::Sha256::digest(&der);
    let encoded = data_encoding::BASE32_NOPAD.encode(&digest[..30]);
    Ok(encoded
        .as_bytes()
        .chunks(4)
        .map(String::from_utf8_lossy)
        .collect::<Vec<_>>()
        .join(":"))
}

/// A verified access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedAccess {
    pub principal: Principal,
    /// The principal record's generation (empty for the admin and anonymous callers).
    pub generation: String,
    pub access: Vec<AccessEntry>,
    pub expires_at: u64,
}

/// A verified refresh token: the principal must still be enabled and the password still be there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRefresh {
    pub principal: Principal,
    pub generation: String,
    pub password: String,
    pub fingerprint: String,
}

impl TokenKeys {
    /// From a PKCS#8 PEM private key (P-256). The key id is the key's libtrust key id.
    pub fn from_pem(pem: &str, issuer: &str) -> Result<TokenKeys, String> {
        // A PEM kept on one line (`\n` escapes), as variables and `.dev.vars` often hold it.
        let pem = pem.trim().replace("\\n", "\n");
        let pair = ES256KeyPair::from_pem(pem.trim())
            .map_err(|_| {
                "TOKEN_SIGNING_KEY is not a P-256 (ES256) private key in PKCS#8 PEM (BEGIN PRIVATE KEY)"
            })?;
        let key_id = libtrust_key_id(&pair.public_key())?;
        let thumbprint = pair.public_key().with_key_id(&pair.jwk_thumbprint());
        let pair = pair.with_key_id(&key_id);
        let public = pair.public_key().with_key_id(&key_id);
        Ok(TokenKeys {
            pair,
            public,
            previous: Vec::new(),
            by_thumbprint: vec![thumbprint],
            key_id,
            issuer: issuer.to_owned(),
        })
    }

    /// Also accepts tokens signed by these earlier keys: PEM blocks, public or private (only the
    /// public part is kept), one after another.
    pub fn with_previous(mut self, pems: &str) -> Result<TokenKeys, String> {
        let pems = pems.replace("\\n", "\n");
        let mut rest = pems.as_str();
        while let Some(start) = rest.find("-----BEGIN ") {
            let block = &rest[start..];
            let end = block
                .find("-----END ")
                .and_then(|e| block[e..].find("\n").map(|n| e + n).or(Some(block.len())))
                .ok_or("TOKEN_PREVIOUS_KEYS: a PEM block has no END line")?;
            let pem = block[..end].trim();
            let public = ES256PublicKey::from_pem(pem)
                .or_else(|_| ES256KeyPair::from_pem(pem).map(|pair| pair.public_key()))
                .map_err(|_| "TOKEN_PREVIOUS_KEYS holds a PEM block that is not a P-256 key")?;
            let key_id = libtrust_key_id(&public)?;
            if key_id != self.key_id
                && !self
                    .previous
                    .iter()
                    .any(|k| k.key_id().as_deref() == Some(&key_id))
            {
                let thumbprint = public.jwk_thumbprint();
                self.by_thumbprint
                    .push(public.clone().with_key_id(&thumbprint));
                self.previous.push(public.with_key_id(&key_id));
            }
            rest = &block[end..];
        }
        Ok(self)
    }

    /// The public key whose id the token's header names.
    fn key_for(&self, token: &str) -> Result<&ES256PublicKey, String> {
        let metadata = jwt_simple::token::Token::decode_metadata(token)
            .map_err(|_| "token is invalid".to_owned())?;
        let kid = metadata.key_id().ok_or("token names no key")?;
        std::iter::once(&self.public)
            .chain(&self.previous)
            .chain(&self.by_thumbprint)
            .find(|k| k.key_id().as_deref() == Some(kid))
            .ok_or_else(|| "token is signed by an unknown key".to_owned())
    }

    /// A new random key, as PEM (for `registry-edge keygen` and tests).
    pub fn generate_pem() -> Result<String, String> {
        ES256KeyPair::generate()
            .to_pem()
            .map_err(|e| format!("key generation: {e}"))
    }

    /// The public keys (current first) as a JSON Web Key Set.
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = std::iter::once(&self.public)
            .chain(&self.previous)
            .filter_map(|k| serde_json::from_str(&k.to_jwk()).ok())
            .collect();
        serde_json::json!({ "keys": keys })
    }

    fn claims<T>(
        &self,
        principal: &Principal,
        audience: &str,
        now: u64,
        lifetime: u64,
        custom: T,
    ) -> Result<JWTClaims<T>, String> {
        Ok(JWTClaims {
            issued_at: Some(UnixTimeStamp::from_secs(now)),
            expires_at: Some(UnixTimeStamp::from_secs(now + lifetime)),
            invalid_before: Some(UnixTimeStamp::from_secs(now)),
            issuer: Some(self.issuer.clone()),
            subject: Some(principal.subject().to_owned()),
            audiences: Some(jwt_simple::claims::Audiences::AsString(audience.to_owned())),
            jwt_id: Some(super::secret::random_id()?),
            nonce: None,
            custom,
        })
    }

    pub fn issue_access(
        &self,
        principal: &Principal,
        generation: &str,
        access: Vec<AccessEntry>,
        audience: &str,
        now: u64,
        lifetime: u64,
    ) -> Result<String, String> {
        let custom = AccessClaims {
            token_use: ACCESS_USE.into(),
            kind: principal.kind().into(),
            generation: generation.into(),
            access,
        };
        let claims = self.claims(principal, audience, now, lifetime, custom)?;
        self.sign(claims)
    }

    /// `password` names the password slot the token is for, and its fingerprint.
    pub fn issue_refresh(
        &self,
        principal: &Principal,
        generation: &str,
        (password, fingerprint): (&str, &str),
        audience: &str,
        now: u64,
        lifetime: u64,
    ) -> Result<String, String> {
        let custom = RefreshClaims {
            token_use: REFRESH_USE.into(),
            kind: principal.kind().into(),
            generation: generation.into(),
            password: password.into(),
            fingerprint: fingerprint.into(),
        };
        let claims = self.claims(principal, audience, now, lifetime, custom)?;
        self.sign(claims)
    }

    /// Signs, and writes the signature in its low-s form: each token has one encoding, and the
    /// verifier refuses the other (ECDSA's `(r, n - s)` is as valid as `(r, s)`).
    fn sign<T: Serialize + serde::de::DeserializeOwned>(
        &self,
        claims: JWTClaims<T>,
    ) -> Result<String, String> {
        let token = self
            .pair
            .sign(claims)
            .map_err(|e| format!("signing: {e}"))?;
        let (signed, signature) = token.rsplit_once('.').ok_or("signing: no signature")?;
        let signature = decode_signature(signature).ok_or("signing: bad signature")?;
        Ok(format!(
            "{signed}.{}",
            URL_SAFE_NO_PAD.encode(signature.normalize_s().to_bytes())
        ))
    }

    fn options(&self, key: &ES256PublicKey, audience: &str, now: u64) -> VerificationOptions {
        VerificationOptions {
            allowed_issuers: Some(HashSet::from([self.issuer.clone()])),
            allowed_audiences: Some(HashSet::from([audience.to_owned()])),
            time_tolerance: Some(Duration::from_secs(LEEWAY_SECONDS)),
            artificial_time: Some(UnixTimeStamp::from_secs(now)),
            required_key_id: key.key_id().clone(),
            max_token_length: Some(MAX_TOKEN_BYTES),
            ..VerificationOptions::default()
        }
    }

    /// Signature (by the key the header names), algorithm, issuer, audience and time.
    ///
    /// One encoding per token: the signature in strict base64url (no stray trailing bits) and in
    /// its low-s form; a twin of a token in another encoding is refused. `Signatures::Legacy`
    /// verifies a high-s signature in its low-s form instead: refresh tokens live for weeks in
    /// clients' credential stores, and those issued before the edge signed low-s are high-s half
    /// the time (the twin gains nothing: a refresh token is bound to its password's fingerprint).
    fn verify<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        audience: &str,
        now: u64,
        signatures: Signatures,
    ) -> Result<JWTClaims<T>, String> {
        let (signed, encoded) = token.rsplit_once('.').ok_or("token is invalid")?;
        let signature = decode_signature(encoded).ok_or("token is invalid")?;
        let normal = signature.normalize_s();
        let token = match (normal == signature, signatures) {
            (true, _) => token.to_owned(),
            (false, Signatures::Legacy) => {
                format!("{signed}.{}", URL_SAFE_NO_PAD.encode(normal.to_bytes()))
            }
            (false, Signatures::LowS) => return Err("token is invalid".into()),
        };
        let key = self.key_for(&token)?;
        key.verify_token::<T>(&token, Some(self.options(key, audience, now)))
            .map_err(describe)
    }

    /// Verifies an access token; the error says why it was refused (for the challenge's
    /// `error_description`, never containing the token).
    pub fn verify_access(
        &self,
        token: &str,
        audience: &str,
        now: u64,
    ) -> Result<VerifiedAccess, String> {
        let claims = self.verify::<AccessClaims>(token, audience, now, Signatures::LowS)?;
        if claims.custom.token_use != ACCESS_USE {
            return Err("not an access token".into());
        }
        let principal = principal_of(&claims.custom.kind, claims.subject.as_deref())?;
        let expires_at = claims.expires_at.ok_or("token has no expiry")?.as_secs();
        Ok(VerifiedAccess {
            principal,
            generation: claims.custom.generation,
            access: claims.custom.access,
            expires_at,
        })
    }

    pub fn verify_refresh(
        &self,
        token: &str,
        audience: &str,
        now: u64,
    ) -> Result<VerifiedRefresh, String> {
        let claims = self.verify::<RefreshClaims>(token, audience, now, Signatures::Legacy)?;
        if claims.custom.token_use != REFRESH_USE {
            return Err("not a refresh token".into());
        }
        if claims.expires_at.is_none() {
            return Err("token has no expiry".into());
        }
        Ok(VerifiedRefresh {
            principal: principal_of(&claims.custom.kind, claims.subject.as_deref())?,
            generation: claims.custom.generation,
            password: claims.custom.password,
            fingerprint: claims.custom.fingerprint,
        })
    }
}

/// Which ECDSA signature forms a verification takes.
#[derive(Clone, Copy)]
enum Signatures {
    /// Only the low-s form the edge signs.
    LowS,
    /// Also a high-s signature, verified in its low-s form (refresh tokens issued before the
    /// edge signed low-s).
    Legacy,
}

/// The raw `r || s` signature of an ES256 JWT.
fn decode_signature(encoded: &str) -> Option<p256::ecdsa::Signature> {
    let bytes = URL_SAFE_NO_PAD.decode(encoded).ok()?;
    p256::ecdsa::Signature::from_slice(&bytes).ok()
}

/// One signing key for the whole test run (generating one per test would be slow).
#[cfg(test)]
pub fn test_pem() -> &'static str {
    static PEM: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PEM.get_or_init(|| TokenKeys::generate_pem().unwrap())
}

fn principal_of(kind: &str, subject: Option<&str>) -> Result<Principal, String> {
    Principal::from_claims(kind, subject.unwrap_or("")).ok_or_else(|| "unknown principal".into())
}

/// A refusal in words a client may see: what was wrong, not how the check works.
fn describe(e: jwt_simple::Error) -> String {
    use jwt_simple::JWTError::*;
    match e.downcast_ref::<jwt_simple::JWTError>() {
        Some(TokenHasExpired) => "token has expired",
        Some(RequiredAudienceMismatch | RequiredAudienceMissing) => "token is for another service",
        Some(RequiredIssuerMismatch | RequiredIssuerMissing) => "token is from another issuer",
        Some(TokenNotValidYet | ClockDrift) => "token is not valid yet",
        _ => "token is invalid",
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;
    const AUD: &str = "registry.example.com";

    fn new_keys() -> TokenKeys {
        TokenKeys::from_pem(&TokenKeys::generate_pem().unwrap(), AUD).unwrap()
    }

    fn access() -> Vec<AccessEntry> {
        vec![AccessEntry {
            kind: crate::auth::ResourceType::Repository,
            name: "team-a/app".into(),
            actions: vec!["pull".into()],
        }]
    }

    fn refresh_token(keys: &TokenKeys, lifetime: u64) -> String {
        let ci = Principal::Token("ci".into());
        keys.issue_refresh(&ci, "g1", ("password1", "ab"), AUD, NOW, lifetime)
            .unwrap()
    }

    fn token(keys: &TokenKeys) -> String {
        keys.issue_access(
            &Principal::Token("ci".into()),
            "g1",
            access(),
            AUD,
            NOW,
            300,
        )
        .unwrap()
    }

    #[test]
    fn access_tokens_round_trip() {
        let keys = new_keys();
        let verified = keys.verify_access(&token(&keys), AUD, NOW + 10).unwrap();
        assert_eq!(verified.principal, Principal::Token("ci".into()));
        assert_eq!(verified.access, access());
        assert_eq!(verified.expires_at, NOW + 300);
        assert_eq!(verified.generation, "g1");
        let header: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(token(&keys).split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"], keys.key_id);
        let jwks = keys.jwks();
        assert_eq!(jwks["keys"][0]["kid"], keys.key_id);
        assert_eq!(jwks["keys"][0]["crv"], "P-256");
        assert!(jwks["keys"][0].get("d").is_none(), "no private part");
    }

    #[test]
    fn signatures_are_low_s_and_their_high_s_twins_are_refused() {
        let keys = new_keys();
        let mut twins = 0;
        for _ in 0..16 {
            let t = token(&keys);
            let (signed, encoded) = t.rsplit_once('.').unwrap();
            let sig = decode_signature(encoded).unwrap();
            assert_eq!(sig.normalize_s(), sig, "issued tokens are low-s");
            // The twin (r, n - s): a valid ECDSA signature of the same claims.
            let (r, s) = sig.split_scalars();
            let twin = p256::ecdsa::Signature::from_scalars(r, -*s).unwrap();
            assert_ne!(twin, sig);
            let forged = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(twin.to_bytes()));
            assert_eq!(
                keys.verify_access(&forged, AUD, NOW).unwrap_err(),
                "token is invalid"
            );
            assert!(keys.verify_access(&t, AUD, NOW).is_ok());
            twins += 1;
            // A refresh token issued high-s (as before the edge normalized) still works.
            let refresh = refresh_token(&keys, 60);
            let (signed, encoded) = refresh.rsplit_once('.').unwrap();
            let sig = decode_signature(encoded).unwrap();
            let (r, s) = sig.split_scalars();
            let high = p256::ecdsa::Signature::from_scalars(r, -*s).unwrap();
            let old = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(high.to_bytes()));
            assert!(keys.verify_refresh(&old, AUD, NOW).is_ok());
        }
        assert_eq!(twins, 16);
    }

    #[test]
    fn refusals() {
        let keys = new_keys();
        let good = token(&keys);
        // Time: expired (past the leeway), not yet valid.
        assert_eq!(
            keys.verify_access(&good, AUD, NOW + 300 + LEEWAY_SECONDS + 1)
                .unwrap_err(),
            "token has expired"
        );
        assert!(keys.verify_access(&good, AUD, NOW + 300 + 5).is_ok());
        assert!(
            keys.verify_access(&good, AUD, NOW - LEEWAY_SECONDS - 60)
                .is_err()
        );
        // Audience.
        assert_eq!(
            keys.verify_access(&good, "other.example.com", NOW)
                .unwrap_err(),
            "token is for another service"
        );
        // Another key, even with the same kid claim.
        let other = new_keys();
        assert!(other.verify_access(&good, AUD, NOW).is_err());
        // A tampered payload or signature.
        let parts: Vec<&str> = good.split('.').collect();
        let mut payload: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        payload["access"][0]["name"] = "team-b/app".into();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(payload.to_string()),
            parts[2]
        );
        assert!(keys.verify_access(&forged, AUD, NOW).is_err());
        let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        sig[10] ^= 1;
        let flipped = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(sig));
        assert!(keys.verify_access(&flipped, AUD, NOW).is_err());
        // alg: none, and HS256 keyed with the public key.
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        assert!(
            keys.verify_access(&format!("{none_header}.{}.", parts[1]), AUD, NOW)
                .is_err()
        );
        let hs_header = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"alg":"HS256","typ":"JWT","kid":"{}"}}"#,
            keys.key_id
        ));
        assert!(
            keys.verify_access(&format!("{hs_header}.{}.{}", parts[1], parts[2]), AUD, NOW)
                .is_err()
        );
        // A refresh token is not an access token, nor the other way round.
        let refresh = refresh_token(&keys, 600);
        assert!(keys.verify_access(&refresh, AUD, NOW).is_err());
        assert!(keys.verify_refresh(&good, AUD, NOW).is_err());
        let r = keys.verify_refresh(&refresh, AUD, NOW).unwrap();
        assert_eq!(r.password, "password1");
        assert_eq!(r.fingerprint, "ab");
    }

    /// A throwaway key as `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256` writes
    /// it (PKCS#8), kept on one line with `\\n` escapes as `scripts/lib.sh` passes it.
    const OPENSSL_KEY: &str = "-----BEGIN PRIVATE KEY-----\\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgj4usVMuD0bk4Ojt/\\nZ83dvGhTwfqAiN/KfDUAZJf261ihRANCAATNSwBoTzXfc4w8HE1eNEHcGOdDipcy\\nNDzRmh7Pvfu4BHL+R4Ere8ZU2ywhiRKVYF0haG9spd+pCJWhRaGMScOx\\n-----END PRIVATE KEY-----\\n";

    #[test]
    fn keys_are_named_by_their_libtrust_id() {
        // The id `openssl pkey -pubout -outform DER | sha256sum`, cut to 30 bytes and base32
        // encoded in groups of four, gives for OPENSSL_KEY.
        let keys = TokenKeys::from_pem(OPENSSL_KEY, AUD).unwrap();
        assert_eq!(
            keys.key_id,
            "S22J:VSFT:QHVZ:3UO2:GXWX:COWC:J3CG:RGAH:XXL3:3TNH:PCNJ:HOFS"
        );
        // A token issued while keys were named by their JWK thumbprint still verifies.
        let pair = ES256KeyPair::from_pem(&OPENSSL_KEY.replace("\\n", "\n")).unwrap();
        let thumbprint = pair.jwk_thumbprint();
        let legacy = TokenKeys {
            key_id: thumbprint.clone(),
            pair: pair.with_key_id(&thumbprint),
            ..TokenKeys::from_pem(OPENSSL_KEY, AUD).unwrap()
        };
        let token = legacy
            .issue_access(&Principal::Anonymous, "", vec![], AUD, NOW, 60)
            .unwrap();
        let header = jwt_simple::token::Token::decode_metadata(&token).unwrap();
        assert_eq!(header.key_id(), Some(thumbprint.as_str()));
        assert!(keys.verify_access(&token, AUD, NOW).is_ok());
    }

    #[test]
    fn openssl_keys_on_one_line_load() {
        let keys = TokenKeys::from_pem(OPENSSL_KEY, AUD).unwrap();
        let token = keys
            .issue_access(&Principal::Anonymous, "", vec![], AUD, NOW, 60)
            .unwrap();
        assert!(keys.verify_access(&token, AUD, NOW).is_ok());
    }

    #[test]
    fn rotated_keys_keep_their_tokens_alive() {
        let old = new_keys();
        let old_pem_public = old.public.to_pem().unwrap();
        let token = token(&old);
        let current = new_keys();
        assert_eq!(
            current.verify_access(&token, AUD, NOW).unwrap_err(),
            "token is signed by an unknown key"
        );
        let rotated = TokenKeys::from_pem(&TokenKeys::generate_pem().unwrap(), AUD)
            .unwrap()
            .with_previous(&format!(
                "{old_pem_public}\n{}",
                TokenKeys::generate_pem().unwrap()
            ))
            .unwrap();
        assert!(rotated.verify_access(&token, AUD, NOW).is_ok());
        assert_eq!(rotated.jwks()["keys"].as_array().unwrap().len(), 3);
        assert!(rotated.verify_access(&token, "other", NOW).is_err());
        assert!(
            new_keys()
                .with_previous("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----")
                .is_err()
        );
    }

    #[test]
    fn bad_keys_are_named() {
        assert!(
            TokenKeys::from_pem("not a key", AUD)
                .unwrap_err()
                .contains("TOKEN_SIGNING_KEY")
        );
    }
}
