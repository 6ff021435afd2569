//! `GET /v2/<name>/tags/list?n=&last=`: the repository's tags in lexical order, paginated with a
//! `Link` header. The full list is cached for `TAG_CACHE_SECONDS`; list-locked tags are left out.

use http::{Response, StatusCode, header};
use serde_json::json;

use super::manifests::header_value;
use super::{next_link, paginate, to_json};
use crate::app::{App, json_response};
use crate::content::Content;
use crate::error::{Error, ErrorCode, Result};
use crate::platform::Platform;
use crate::reference::Name;
use crate::route::Page;

impl<P: Platform> App<P> {
    /// `listed` says which tags the list shows (a tag whose `listEnabled` is false is left out).
    pub async fn get_tags(
        &self,
        name: &Name,
        page: Page,
        listed: impl Fn(&str) -> bool,
    ) -> Result<Response<Vec<u8>>> {
        let mut tags = self.content().tags(name).await?;
        if tags.is_empty() {
            return Err(
                Error::new(ErrorCode::NameUnknown).with_detail(json!({ "name": name.as_str() }))
            );
        }
        tags.retain(|t| listed(t));
        let (entries, next) = paginate(&tags, &page, None, |entry, last| entry > last);
        let body = to_json(&TagList {
            name: name.as_str(),
            tags: entries,
        });
        let mut response = json_response(StatusCode::OK, body);
        if let Some(last) = next {
            let n = page.n.unwrap_or(super::MAX_PAGE).min(super::MAX_PAGE);
            let link = next_link(&format!("/v2/{name}/tags/list"), &last, n);
            response
                .headers_mut()
                .insert(header::LINK, header_value(&link)?);
        }
        Ok(response)
    }
}

#[derive(serde::Serialize)]
struct TagList<'a> {
    name: &'a str,
    tags: &'a [String],
}
