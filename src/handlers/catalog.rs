//! `GET /v2/_catalog?n=&last=`: every repository the content source knows, in distribution's
//! order (component by component), filtered to what the caller may see, paginated with a `Link`
//! header.

use std::cmp::Ordering;

use http::{Response, StatusCode, header};

use super::manifests::{header_value, warning as warning_text};
use super::{next_link, paginate, to_json};
use crate::app::{App, json_response};
use crate::auth::{Permission, Permissions};
use crate::content::{Content, compare_names};
use crate::error::Result;
use crate::index::Lookup;
use crate::platform::Platform;
use crate::route::Page;

/// Entries per page when the client gives no `n` (distribution's default).
const DEFAULT_N: usize = 100;

/// How many shards a filtered page reads at most before it ends early (with a `Link` to go on
/// from): a token that sees few repositories of a large registry pages through it in bounded
/// steps.
pub const FILTERED_SHARDS: usize = 4;

impl<P: Platform> App<P> {
    /// `visible`: `None` shows every repository (the admin); else the caller's permissions (a
    /// repository is shown where it may `metadata/read`) and the list-locked repositories.
    ///
    /// From the catalog index: its root and one shard per page (a filtered page walks on through
    /// at most `FILTERED_SHARDS` shards). Without an index, from a walk of the layout, with a
    /// `Warning`, and a rebuild is asked for.
    pub async fn get_catalog(
        &self,
        page: Page,
        visible: Option<(Permissions, Vec<String>)>,
    ) -> Result<Response<Vec<u8>>> {
        let shown = |name: &str| {
            visible.as_ref().is_none_or(|(permissions, locked)| {
                permissions.on(name).has(Permission::MetadataRead)
                    && !locked.iter().any(|l| l == name)
            })
        };
        let n = page.n.unwrap_or(DEFAULT_N).min(super::MAX_PAGE);
        let key = cursor_key(&self.config.upload_key.0);
        let page = Page {
            n: page.n,
            last: page
                .last
                .map(|last| match last.strip_prefix(CURSOR) {
                    Some(sealed) => open_cursor(&key, sealed),
                    None => Ok(last),
                })
                .transpose()?,
        };
        let lookup = if self.indexes_kept() {
            let shards = if visible.is_none() {
                1
            } else {
                FILTERED_SHARDS
            };
            crate::index::catalog_page(
                &self.store,
                &self.cache,
                &self.config.layout,
                page.last.as_deref(),
                n,
                shown,
                shards,
            )
            .await?
        } else {
            Lookup::NotBuilt
        };
        let mut warning = None;
        let (entries, next) = match lookup {
            Lookup::Found(found) => (found.names, found.next),
            lookup => {
                if self.indexes_kept() {
                    let why = match lookup {
                        Lookup::Corrupt(why) => {
                            (self.log)(&format!("catalog index: {why}"));
                            "the catalog index failed its checks and is being rebuilt"
                        }
                        _ => "the catalog index is not built yet",
                    };
                    self.ask_rebuild(why).await;
                    warning = Some(format!(
                        "{why}: this list comes from a walk of storage, which takes longer as                          the registry grows"
                    ));
                }
                let mut repositories = self.content().repositories().await?;
                repositories.retain(|name| shown(name));
                let (entries, next) =
                    paginate(&repositories, &page, Some(DEFAULT_N), |entry, last| {
                        compare_names(entry, last) == Ordering::Greater
                    });
                (entries.to_vec(), next)
            }
        };
        let body = to_json(&Catalog {
            repositories: &entries,
        });
        let mut response = json_response(StatusCode::OK, body);
        // A page that ended on a repository the caller may not see goes on from there without
        // naming it.
        let next = next
            .map(|last| {
                if shown(&last) {
                    Ok(last)
                } else {
                    seal_cursor(&key, &last).map(|sealed| format!("{CURSOR}{sealed}"))
                }
            })
            .transpose()?;
        if let Some(last) = next {
            response.headers_mut().insert(
                header::LINK,
                header_value(&next_link("/v2/_catalog", &last, n))?,
            );
        }
        if let Some(text) = warning {
            response
                .headers_mut()
                .append(header::WARNING, header_value(&warning_text(&text))?);
        }
        Ok(response)
    }
}

#[derive(serde::Serialize)]
struct Catalog<'a> {
    repositories: &'a [String],
}

/// What starts an opaque `last=` cursor (no repository name starts with it).
const CURSOR: &str = "~";

/// The cursors' key: derived from the edge's secret, for this one use.
fn cursor_key(secret: &[u8]) -> [u8; 32] {
    use hmac::{KeyInit, Mac};
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(b"registry-edge catalog cursor");
    mac.finalize().into_bytes().into()
}

/// `name`, encrypted and authenticated (AES-256-GCM, a random nonce), base64url.
fn seal_cursor(key: &[u8; 32], name: &str) -> Result<String> {
    use aes_gcm::aead::{Aead, KeyInit};
    use base64::Engine;
    let cipher = aes_gcm::Aes256Gcm::new_from_slice(key).expect("a 32-byte key");
    let mut nonce = [0u8; 12];
    getrandom::fill(&mut nonce)
        .map_err(|e| crate::error::Error::internal(format!("no randomness: {e}")))?;
    let sealed = cipher
        .encrypt(&nonce.into(), name.as_bytes())
        .map_err(|_| crate::error::Error::internal("sealing a catalog cursor"))?;
    let mut bytes = nonce.to_vec();
    bytes.extend_from_slice(&sealed);
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// The name a cursor `seal_cursor` made holds; a 400 for anything else.
fn open_cursor(key: &[u8; 32], sealed: &str) -> Result<String> {
    use aes_gcm::aead::{Aead, KeyInit};
    use base64::Engine;
    let invalid = || {
        crate::error::Error::new(crate::error::ErrorCode::BadRequest).with_message(
            "last= is not a cursor this registry handed out: follow the Link header, or start again",
        )
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sealed)
        .map_err(|_| invalid())?;
    if bytes.len() < 12 + 16 {
        return Err(invalid());
    }
    let (nonce, text) = bytes.split_at(12);
    let nonce: [u8; 12] = nonce.try_into().expect("12 bytes");
    let cipher = aes_gcm::Aes256Gcm::new_from_slice(key).expect("a 32-byte key");
    let name = cipher.decrypt(&nonce.into(), text).map_err(|_| invalid())?;
    String::from_utf8(name).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_hide_the_name_and_refuse_what_they_did_not_make() {
        let key = cursor_key(b"secret");
        let sealed = seal_cursor(&key, "team-b/private").unwrap();
        assert!(!sealed.contains("team"));
        assert_ne!(
            sealed,
            seal_cursor(&key, "team-b/private").unwrap(),
            "a nonce each"
        );
        assert_eq!(open_cursor(&key, &sealed).unwrap(), "team-b/private");
        assert!(open_cursor(&cursor_key(b"other"), &sealed).is_err());
        let mut forged = sealed.into_bytes();
        let last = forged.len() - 1;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        assert!(open_cursor(&key, std::str::from_utf8(&forged).unwrap()).is_err());
        assert!(open_cursor(&key, "team-a").is_err());
    }
}
