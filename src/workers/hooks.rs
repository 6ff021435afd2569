//! Webhook deliveries over `fetch()`: one `POST`, redirects not followed, the whole exchange
//! bounded by a timeout (an `AbortController`), and only the first bytes of the answer read.

use std::time::Duration;

use js_sys::{Reflect, Uint8Array};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use worker::worker_sys::web_sys;

use crate::platform::{HookAnswer, HookHttp};

/// Bytes of an answer read (the log keeps fewer).
const READ_BYTES: usize = 1024;

pub(crate) struct WorkerHooks;

fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// Up to `limit` bytes of the stream, then it is cancelled.
async fn first_bytes(stream: web_sys::ReadableStream, limit: usize) -> Vec<u8> {
    let Ok(reader) = stream
        .get_reader()
        .dyn_into::<web_sys::ReadableStreamDefaultReader>()
    else {
        return Vec::new();
    };
    let mut bytes = Vec::new();
    while bytes.len() < limit {
        let Ok(chunk) = JsFuture::from(reader.read()).await else {
            break;
        };
        let done = Reflect::get(&chunk, &"done".into())
            .ok()
            .and_then(|d| d.as_bool())
            .unwrap_or(true);
        if done {
            break;
        }
        let Ok(value) = Reflect::get(&chunk, &"value".into()) else {
            break;
        };
        let value: Uint8Array = value.unchecked_into();
        let take = (limit - bytes.len()).min(value.length() as usize);
        let start = bytes.len();
        bytes.resize(start + take, 0);
        value.subarray(0, take as u32).copy_to(&mut bytes[start..]);
    }
    let _ = reader.cancel();
    bytes
}

impl HookHttp for WorkerHooks {
    async fn post(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
        timeout: Duration,
    ) -> HookAnswer {
        let started = now_ms();
        let failed = |error: String| HookAnswer {
            error: Some(error),
            elapsed_ms: (now_ms() - started).max(0.0) as u64,
            ..HookAnswer::default()
        };
        let Ok(sent_headers) = web_sys::Headers::new() else {
            return failed("headers".into());
        };
        for (name, value) in headers {
            if sent_headers.append(name, value).is_err() {
                return failed(format!("header {name}"));
            }
        }
        let Ok(controller) = web_sys::AbortController::new() else {
            return failed("abort controller".into());
        };
        let init = web_sys::RequestInit::new();
        init.set_method("POST");
        init.set_headers(&sent_headers);
        init.set_redirect(web_sys::RequestRedirect::Manual);
        init.set_signal(Some(&controller.signal()));
        let bytes = Uint8Array::from(body.as_slice());
        init.set_body(&bytes);
        let request = match web_sys::Request::new_with_str_and_init(url, &init) {
            Ok(request) => request,
            Err(e) => return failed(super::origin::js_error(e)),
        };
        let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
        let exchange = async {
            let response: web_sys::Response = JsFuture::from(global.fetch_with_request(&request))
                .await
                .map_err(super::origin::js_error)?
                .unchecked_into();
            let retry_after = response.headers().get("retry-after").ok().flatten();
            let body = match response.body() {
                Some(stream) => first_bytes(stream, READ_BYTES).await,
                None => Vec::new(),
            };
            Ok::<_, String>((response.status(), retry_after, body))
        };
        let exchange = std::pin::pin!(exchange);
        let timer = std::pin::pin!(worker::Delay::from(timeout));
        match futures::future::select(exchange, timer).await {
            futures::future::Either::Left((Ok((status, retry_after, body)), _)) => HookAnswer {
                status: Some(status),
                error: None,
                retry_after,
                body,
                elapsed_ms: (now_ms() - started).max(0.0) as u64,
            },
            futures::future::Either::Left((Err(e), _)) => failed(e),
            futures::future::Either::Right(_) => {
                controller.abort();
                failed(format!("no answer within {} s", timeout.as_secs()))
            }
        }
    }
}
