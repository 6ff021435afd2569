//! `App::handle`: route -> handler -> response, and every error written in one place. The App owns
//! nothing platform-specific: storage, cache, clock and log arrive as trait implementations, so the
//! same code runs in the worker and in native unit tests.

use std::rc::Rc;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};

use crate::cache::EdgeCache;
use crate::config::Config;
use crate::error::{Error, ErrorCode, Result};
use crate::platform::Clock;
use crate::route::{Page, Route};
use crate::storage::ObjectStore;
use crate::storage::presign::Presigner;

pub const API_VERSION_HEADER: &str = "docker-distribution-api-version";
pub const API_VERSION: &str = "registry/2.0";

/// The registry's request handler for one request (or many: it holds no per-request state).
pub struct App<S, C, K> {
    pub config: Rc<Config>,
    pub presigner: Option<Rc<Presigner>>,
    pub store: S,
    pub cache: C,
    pub clock: K,
    /// Where operational messages go (the worker's console; stderr natively).
    pub log: fn(&str),
}

impl<S: ObjectStore, C: EdgeCache, K: Clock> App<S, C, K> {
    /// Answers one request. Never fails: errors become OCI error responses.
    pub async fn handle(&self, request: &Request<()>) -> Response<Vec<u8>> {
        let head = request.method() == Method::HEAD;
        let mut response = match self.dispatch(request).await {
            Ok(response) => response,
            Err(error) => {
                if error.status.is_server_error() {
                    (self.log)(&format!(
                        "{} {}: {error}",
                        request.method(),
                        request.uri().path()
                    ));
                }
                error_response(&error)
            }
        };
        let headers = response.headers_mut();
        headers.insert(API_VERSION_HEADER, HeaderValue::from_static(API_VERSION));
        if head {
            // HEAD answers the GET's headers, Content-Length included, without the body.
            let body = std::mem::take(response.body_mut());
            if !body.is_empty() || !response.headers().contains_key(header::CONTENT_LENGTH) {
                response
                    .headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
            }
        }
        response
    }

    async fn dispatch(&self, request: &Request<()>) -> Result<Response<Vec<u8>>> {
        let route = Route::parse(request.uri().path())?;
        let method = request.method();
        let read = method == Method::GET || method == Method::HEAD;
        let page = || Page::from_query(request.uri().query());
        match route {
            Route::Base if read => Ok(json_response(StatusCode::OK, b"{}".to_vec())),
            Route::Catalog if read => self.get_catalog(page()?).await,
            Route::Tags { name } if read => self.get_tags(&name, page()?).await,
            Route::Manifest { name, reference } if read => {
                self.get_manifest(&name, &reference, request.headers())
                    .await
            }
            Route::Blob { name, digest } if method == Method::HEAD => {
                self.head_blob(&name, &digest).await
            }
            Route::Blob { name, digest } if method == Method::GET => {
                self.get_blob(&name, &digest).await
            }
            Route::Referrers { name, digest } if read => {
                self.get_referrers(&name, &digest, request.uri().query())
                    .await
            }
            _ if [Method::POST, Method::PUT, Method::PATCH, Method::DELETE].contains(method) => {
                Err(Error::new(ErrorCode::Unsupported)
                    .with_message("this registry edge serves reads only; writes are not enabled"))
            }
            _ => Err(Error::new(ErrorCode::Unsupported)
                .with_message(format!("method {method} is not allowed on this endpoint"))),
        }
    }

    /// The not-found answer for something in `name`: `NAME_UNKNOWN` when the repository itself does
    /// not exist, `code` otherwise. Costs a listing, on the miss path only.
    pub(crate) async fn not_found(
        &self,
        name: &crate::reference::Name,
        code: ErrorCode,
        detail: serde_json::Value,
    ) -> Error {
        let repo = self.config.layout.repository_dir(name.as_str());
        match self.store.list_dirs(&repo).await {
            Ok(dirs) if !dirs.iter().any(|d| d == "_manifests" || d == "_layers") => {
                Error::new(ErrorCode::NameUnknown)
                    .with_detail(serde_json::json!({ "name": name.as_str() }))
            }
            Ok(_) => Error::new(code).with_detail(detail),
            Err(e) => e.into(),
        }
    }
}

pub fn json_response(status: StatusCode, body: Vec<u8>) -> Response<Vec<u8>> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

pub fn error_response(error: &Error) -> Response<Vec<u8>> {
    json_response(error.status, error.body())
}
