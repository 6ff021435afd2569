//! Upstream registries over `fetch()`. The answer stays a JS `Response` until the core decides:
//! small bodies are read here, bounded; a blob's stream is kept aside (`pass_through`) and
//! becomes the body of the edge's own answer, so its bytes go from the upstream's socket to the
//! client's inside the runtime and never through Rust.

use std::cell::RefCell;
use std::time::Duration;

use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use worker::worker_sys::web_sys;

use crate::origin::OriginError;
use crate::platform::UpstreamHttp;

#[derive(Default)]
pub(crate) struct WorkerUpstream {
    /// The body the edge's answer carries, when an upstream streams it.
    passed: RefCell<Option<web_sys::ReadableStream>>,
}

impl WorkerUpstream {
    /// The stream the answer's body is, if the core passed one through.
    pub(crate) fn take_passed(&self) -> Option<web_sys::ReadableStream> {
        self.passed.borrow_mut().take()
    }
}

/// `op`, or `Timeout` once `timeout` has passed (then `abort` is called).
async fn within<T>(
    timeout: Duration,
    abort: impl FnOnce(),
    op: impl std::future::Future<Output = Result<T, OriginError>>,
) -> Result<T, OriginError> {
    let op = std::pin::pin!(op);
    let timer = std::pin::pin!(worker::Delay::from(timeout));
    match futures::future::select(op, timer).await {
        futures::future::Either::Left((result, _)) => result,
        futures::future::Either::Right(_) => {
            abort();
            Err(OriginError::Timeout)
        }
    }
}

fn unreachable(e: wasm_bindgen::JsValue) -> OriginError {
    OriginError::Unreachable(super::origin::js_error(e))
}

impl UpstreamHttp for WorkerUpstream {
    type Body = web_sys::Response;

    async fn send(
        &self,
        request: http::Request<()>,
        timeout: Duration,
    ) -> Result<http::Response<web_sys::Response>, OriginError> {
        let (parts, ()) = request.into_parts();
        let headers = web_sys::Headers::new().map_err(unreachable)?;
        for (name, value) in &parts.headers {
            if let Ok(value) = value.to_str() {
                headers.append(name.as_str(), value).map_err(unreachable)?;
            }
        }
        let controller = web_sys::AbortController::new().map_err(unreachable)?;
        let init = web_sys::RequestInit::new();
        init.set_method(parts.method.as_str());
        init.set_headers(&headers);
        init.set_redirect(web_sys::RequestRedirect::Manual);
        init.set_signal(Some(&controller.signal()));
        let url = parts.uri.to_string();
        let outbound = web_sys::Request::new_with_str_and_init(&url, &init).map_err(unreachable)?;
        let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
        let fetched = JsFuture::from(global.fetch_with_request(&outbound));
        // The timeout bounds the wait for the answer's headers only: a streamed body runs as
        // long as the client reads it.
        let response = within(timeout, || controller.abort(), async {
            fetched.await.map_err(unreachable)
        })
        .await?;
        let response: web_sys::Response = response.dyn_into().map_err(unreachable)?;
        let mut builder = http::Response::builder().status(response.status());
        if let Ok(Some(entries)) = js_sys::try_iter(&response.headers()) {
            for entry in entries.flatten() {
                let pair = js_sys::Array::from(&entry);
                if let (Some(name), Some(value)) =
                    (pair.get(0).as_string(), pair.get(1).as_string())
                {
                    builder = builder.header(name, value);
                }
            }
        }
        builder
            .body(response)
            .map_err(|e| OriginError::Unreachable(e.to_string()))
    }

    async fn read(
        &self,
        body: web_sys::Response,
        limit: usize,
        timeout: Duration,
    ) -> Result<Option<Vec<u8>>, OriginError> {
        let declared = body
            .headers()
            .get("content-length")
            .ok()
            .flatten()
            .and_then(|v| v.trim().parse::<usize>().ok());
        let Some(stream) = body.body() else {
            return Ok(Some(Vec::new()));
        };
        if declared.is_some_and(|n| n > limit) {
            let _ = stream.cancel();
            return Ok(None);
        }
        let reader: web_sys::ReadableStreamDefaultReader = stream
            .get_reader()
            .dyn_into()
            .map_err(|_| OriginError::Unreachable("body reader".into()))?;
        let cancel = reader.clone();
        within(
            timeout,
            move || {
                let _ = cancel.cancel();
            },
            async {
                super::origin::read_limited(&reader, limit)
                    .await
                    .map_err(unreachable)
            },
        )
        .await
    }

    fn pass_through(&self, body: web_sys::Response) {
        *self.passed.borrow_mut() = body.body();
    }

    fn discard(&self, body: web_sys::Response) {
        if let Some(stream) = body.body()
            && !stream.locked()
        {
            let _ = stream.cancel();
        }
    }
}
