//! `GET /v2/_catalog?n=&last=`: every repository the content source knows, in distribution's
//! order (component by component), filtered to what the caller may see, paginated with a `Link`
//! header.

use std::cmp::Ordering;

use http::{Response, StatusCode, header};

use super::manifests::header_value;
use super::{next_link, paginate, to_json};
use crate::app::{App, json_response};
use crate::auth::{Permission, Permissions};
use crate::content::{Content, compare_names};
use crate::error::Result;
use crate::platform::Platform;
use crate::route::Page;

/// Entries per page when the client gives no `n` (distribution's default).
const DEFAULT_N: usize = 100;

impl<P: Platform> App<P> {
    /// `visible`: `None` shows every repository (the admin); else the caller's permissions (a
    /// repository is shown where it may `metadata/read`) and the list-locked repositories.
    pub async fn get_catalog(
        &self,
        page: Page,
        visible: Option<(Permissions, Vec<String>)>,
    ) -> Result<Response<Vec<u8>>> {
        let mut repositories = self.content().repositories().await?;
        if let Some((permissions, locked)) = visible {
            repositories.retain(|name| {
                permissions.on(name).has(Permission::MetadataRead) && !locked.contains(name)
            });
        }
        let (entries, next) = paginate(&repositories, &page, Some(DEFAULT_N), |entry, last| {
            compare_names(entry, last) == Ordering::Greater
        });
        let body = to_json(&Catalog {
            repositories: entries,
        });
        let mut response = json_response(StatusCode::OK, body);
        if let Some(last) = next {
            let n = page.n.unwrap_or(DEFAULT_N).min(super::MAX_PAGE);
            response.headers_mut().insert(
                header::LINK,
                header_value(&next_link("/v2/_catalog", &last, n))?,
            );
        }
        Ok(response)
    }
}

#[derive(serde::Serialize)]
struct Catalog<'a> {
    repositories: &'a [String],
}
