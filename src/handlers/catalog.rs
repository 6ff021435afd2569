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
