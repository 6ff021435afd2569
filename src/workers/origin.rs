//! The origin and the client's body over the Workers runtime. The client's body stays a JS
//! `ReadableStream` handed straight to `fetch()` (through a `FixedLengthStream` when its length is
//! known, so the origin gets a `Content-Length`): no byte of an upload passes through Rust.
//! Measured here: a stream handed to `fetch()` costs ~0.6 CPU-s per GiB, the same bytes pumped
//! through Rust ~32 CPU-s (Workers' CPU limits:
//! <https://developers.cloudflare.com/workers/platform/limits/#cpu-time>).

use std::time::Duration;

use js_sys::{BigInt, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use worker::worker_sys::FixedLengthStream;
use worker::worker_sys::web_sys;

use crate::origin::{Origin, OriginBody, OriginError};
use crate::platform::ClientBody;

thread_local! {
    /// A rejection handler that drops the reason (one per isolate, never freed).
    static IGNORE_REJECTION: wasm_bindgen::closure::Closure<dyn FnMut(JsValue)> =
        wasm_bindgen::closure::Closure::new(|_: JsValue| {});
}

/// The incoming request, as the source of the client's body.
pub(crate) struct Incoming<'a>(pub &'a web_sys::Request);

impl ClientBody for Incoming<'_> {
    async fn read(&self, limit: usize) -> Result<Option<Vec<u8>>, String> {
        let Some(stream) = self.0.body() else {
            return Ok(Some(Vec::new()));
        };
        let declared = self
            .0
            .headers()
            .get("content-length")
            .ok()
            .flatten()
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > limit) {
            return Ok(None);
        }
        let reader: web_sys::ReadableStreamDefaultReader = stream
            .get_reader()
            .dyn_into()
            .map_err(|_| "body reader".to_owned())?;
        read_limited(&reader, limit).await.map_err(js_error)
    }
}

/// What `reader` yields, whole, or `None` (the stream cancelled) once it is longer than `limit`.
pub(crate) async fn read_limited(
    reader: &web_sys::ReadableStreamDefaultReader,
    limit: usize,
) -> Result<Option<Vec<u8>>, JsValue> {
    let mut bytes = Vec::new();
    loop {
        let chunk = JsFuture::from(reader.read()).await?;
        if Reflect::get(&chunk, &"done".into())?
            .as_bool()
            .unwrap_or(true)
        {
            return Ok(Some(bytes));
        }
        let value: Uint8Array = Reflect::get(&chunk, &"value".into())?.unchecked_into();
        if bytes.len() + value.length() as usize > limit {
            let _ = reader.cancel();
            return Ok(None);
        }
        let start = bytes.len();
        bytes.resize(start + value.length() as usize, 0);
        value.copy_to(&mut bytes[start..]);
    }
}

/// The origin registry over `fetch()`.
pub(crate) struct WorkerOrigin<'a> {
    pub incoming: &'a web_sys::Request,
}

impl Origin for WorkerOrigin<'_> {
    async fn send(
        &self,
        request: http::Request<OriginBody>,
        timeout: Duration,
    ) -> Result<http::Response<Vec<u8>>, OriginError> {
        let (parts, body) = request.into_parts();
        let headers = web_sys::Headers::new().map_err(unreachable)?;
        for (name, value) in &parts.headers {
            if let Ok(value) = value.to_str() {
                headers.append(name.as_str(), value).map_err(unreachable)?;
            }
        }
        let init = web_sys::RequestInit::new();
        init.set_method(parts.method.as_str());
        init.set_headers(&headers);
        init.set_redirect(web_sys::RequestRedirect::Manual);
        let signal = web_sys::AbortSignal::timeout_with_u32(
            timeout.as_millis().min(u32::MAX as u128) as u32,
        );
        init.set_signal(Some(&signal));
        match body {
            OriginBody::Empty => {}
            OriginBody::Bytes(bytes) => init.set_body(&Uint8Array::from(bytes.as_slice())),
            OriginBody::Client => {
                if let Some(stream) = self.incoming.body() {
                    let length = parts
                        .headers
                        .get(http::header::CONTENT_LENGTH)
                        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                    match length {
                        Some(length) => {
                            let fixed = FixedLengthStream::new_big_int(BigInt::from(length))
                                .map_err(unreachable)?;
                            let transform: &web_sys::TransformStream = fixed.unchecked_ref();
                            // The pipe runs inside the runtime while fetch() reads the other end.
                            // A client that goes away mid-upload rejects it ("Network connection
                            // lost"); fetch() reports that too, so the rejection is handled here
                            // rather than logged as uncaught.
                            let piped = stream.pipe_to(&transform.writable());
                            IGNORE_REJECTION.with(|ignore| {
                                let _ = piped.catch(ignore);
                            });
                            init.set_body(&transform.readable());
                        }
                        None => init.set_body(&stream),
                    }
                }
            }
        }
        let url = parts.uri.to_string();
        let outbound = web_sys::Request::new_with_str_and_init(&url, &init).map_err(unreachable)?;
        let response = match worker::Fetch::Request(outbound.into()).send().await {
            Ok(response) => response,
            Err(_) if signal.aborted() => return Err(OriginError::Timeout),
            Err(e) => return Err(OriginError::Unreachable(e.to_string())),
        };
        let mut response = response;
        let mut builder = http::Response::builder().status(response.status_code());
        for (name, value) in response.headers().entries() {
            builder = builder.header(name, value);
        }
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(_) if signal.aborted() => return Err(OriginError::Timeout),
            Err(e) => return Err(OriginError::Unreachable(format!("reading the answer: {e}"))),
        };
        builder
            .body(body)
            .map_err(|e| OriginError::Unreachable(e.to_string()))
    }
}

pub(crate) fn js_error(e: JsValue) -> String {
    e.as_string()
        .or_else(|| js_sys::JSON::stringify(&e).ok().map(String::from))
        .unwrap_or_else(|| "JS error".into())
}

fn unreachable(e: JsValue) -> OriginError {
    OriginError::Unreachable(js_error(e))
}
