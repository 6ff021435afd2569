//! `GET /v2/_catalog?n=&last=`: every repository, found by walking `repositories/` (a directory
//! with a `_layers` (or `_manifests`) child is a repository; its name may span several directories), in
//! distribution's order (component by component), paginated with a `Link` header. The walk lists
//! one directory per request, a level at a time in parallel, and its result is cached for
//! `TAG_CACHE_SECONDS`.

use std::cmp::Ordering;

use futures::future::try_join_all;
use http::{Response, StatusCode, header};

use super::manifests::header_value;
use super::{decode_lines, encode_lines, next_link, paginate, to_json};
use crate::app::{App, json_response};
use crate::auth::{Permission, Permissions};
use crate::cache::{EdgeCache, key};
use crate::error::Result;
use crate::platform::Platform;
use crate::reference::Name;
use crate::route::Page;
use crate::storage::ObjectStore;

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
        let mut repositories = self.all_repositories().await?;
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

    async fn all_repositories(&self) -> Result<Vec<String>> {
        if let Some(cached) = self.cache.get(&key::catalog()).await
            && let Some(names) = decode_lines(&cached)
        {
            return Ok(names);
        }
        let layout = &self.config.layout;
        let mut found = Vec::new();
        let mut level = vec![String::new()];
        while !level.is_empty() {
            let listings = try_join_all(level.iter().map(|path| {
                let prefix = if path.is_empty() {
                    layout.repositories()
                } else {
                    layout.repository_dir(path)
                };
                async move { self.store.list_dirs(&prefix).await.map(|dirs| (path, dirs)) }
            }))
            .await?;
            let mut next = Vec::new();
            for (path, dirs) in listings {
                // distribution counts a directory with `_layers` (a repository that holds only
                // blobs, after a mount or an upload, is one too).
                if !path.is_empty() && dirs.iter().any(|d| d == "_layers" || d == "_manifests") {
                    found.push(path.clone());
                }
                for dir in dirs.into_iter().filter(|d| !d.starts_with('_')) {
                    let child = if path.is_empty() {
                        dir
                    } else {
                        format!("{path}/{dir}")
                    };
                    // Directories that cannot be part of a valid name are not repositories.
                    if child.parse::<Name>().is_ok() {
                        next.push(child);
                    }
                }
            }
            level = next;
        }
        found.sort_by(|a, b| compare_names(a, b));
        self.cache
            .put(
                &key::catalog(),
                &encode_lines(&found),
                self.config.tag_cache_seconds,
            )
            .await;
        Ok(found)
    }
}

#[derive(serde::Serialize)]
struct Catalog<'a> {
    repositories: &'a [String],
}

/// Repository order: component by component, so `a` < `a/b` < `a-b` (as distribution walks).
pub(crate) fn compare_names(a: &str, b: &str) -> Ordering {
    a.split('/').cmp(b.split('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_order() {
        let mut names = vec!["a-b", "a/b", "a", "b", "a/b/c", "a.b", "a/c"];
        names.sort_by(|a, b| compare_names(a, b));
        assert_eq!(names, ["a", "a/b", "a/b/c", "a/c", "a-b", "a.b", "b"]);
    }
}
