//! `HttpClient` over the Workers `fetch()`: small requests only (storage reads and small writes),
//! redirects not followed.

use worker::{Fetch, Method, Request, RequestInit, RequestRedirect};

use crate::platform::HttpClient;

pub(crate) struct FetchClient;

impl HttpClient for FetchClient {
    async fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, String> {
        let url = request.uri().to_string();
        let mut init = RequestInit::new();
        init.with_method(Method::from(request.method().as_str().to_owned()));
        init.with_redirect(RequestRedirect::Manual);
        // The request's own headers (a conditional write's `If-Match`); the runtime sets the
        // length and the host itself.
        let headers = worker::Headers::new();
        for (name, value) in request.headers() {
            if name == http::header::CONTENT_LENGTH || name == http::header::HOST {
                continue;
            }
            let value = value.to_str().map_err(|e| format!("header {name}: {e}"))?;
            headers
                .set(name.as_str(), value)
                .map_err(|e| format!("header {name}: {e}"))?;
        }
        init.with_headers(headers);
        if !request.body().is_empty() {
            let body = js_sys::Uint8Array::from(request.body().as_slice());
            init.with_body(Some(body.into()));
        }
        let outbound = Request::new_with_init(&url, &init).map_err(|e| e.to_string())?;
        let mut response = Fetch::Request(outbound)
            .send()
            .await
            .map_err(|e| format!("fetch: {e}"))?;
        let mut builder = http::Response::builder().status(response.status_code());
        for (name, value) in response.headers().entries() {
            builder = builder.header(name, value);
        }
        let body = if request.method() == http::Method::HEAD {
            Vec::new()
        } else {
            response
                .bytes()
                .await
                .map_err(|e| format!("reading response: {e}"))?
        };
        builder.body(body).map_err(|e| e.to_string())
    }
}
