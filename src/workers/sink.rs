//! `BlobSink` on Workers: a mirror's blob copy from the upstream's answer into a multipart upload
//! (R2's binding, or S3 over presigned URLs), inside the runtime. Each part's stream runs through
//! a transform that hands every chunk to one `crypto.DigestStream` for the whole upload before
//! passing it on, then through a `FixedLengthStream` of the part's length (which both stores need,
//! and which fails a body that ends early or runs over). The chunks stay JS objects: no byte
//! enters Rust, and the transform's backpressure keeps memory flat whatever the blob's size.

use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use worker::worker_sys::web_sys;

use crate::storage::StoreError;
use crate::storage::s3::S3Store;

use super::WorkerClock;
use super::fetch::FetchClient;

/// Lifetime of the signature on one part's `PUT` (a part may take minutes to stream).
const PART_URL_SECONDS: u64 = 3600;

type TransformFn = dyn FnMut(JsValue, web_sys::TransformStreamDefaultController) -> js_sys::Promise;
/// The transform's callback, kept alive while its part streams.
type Transform = Closure<TransformFn>;

/// An upload in progress.
pub(crate) struct WorkerUpload {
    key: String,
    target: Target,
    digest: worker::crypto::DigestStream,
    writer: web_sys::WritableStreamDefaultWriter,
    /// The digest's writer was closed (`sha256`).
    closed: bool,
}

enum Target {
    R2 {
        upload: worker::MultipartUpload,
        parts: Vec<worker::UploadedPart>,
    },
    S3 {
        upload_id: String,
        etags: Vec<String>,
    },
}

fn js_error(what: &str, key: &str, e: JsValue) -> StoreError {
    StoreError(format!("{what} {key}: {}", super::origin::js_error(e)))
}

impl WorkerUpload {
    fn new(key: &str, target: Target) -> Result<WorkerUpload, StoreError> {
        let digest =
            worker::crypto::DigestStream::new(worker::crypto::DigestStreamAlgorithm::Sha256);
        let sink: &web_sys::WritableStream = digest.raw().unchecked_ref();
        let writer = sink
            .get_writer()
            .map_err(|e| js_error("digest stream", key, e))?;
        Ok(WorkerUpload {
            key: key.to_owned(),
            target,
            digest,
            writer,
            closed: false,
        })
    }

    /// `body` as a stream of exactly `length` bytes whose chunks also go to the upload's digest,
    /// in order; the pipes' end (which fails when the body does); the callback to keep alive
    /// while they run; and the controller that stops them.
    fn hashed(&self, body: &web_sys::Response, length: u64) -> Result<Hashed, StoreError> {
        let key = &self.key;
        let source = body
            .body()
            .ok_or_else(|| StoreError(format!("part of {key}: the upstream sent no body")))?;
        let writer = self.writer.clone();
        let transform = Closure::wrap(Box::new(
            move |chunk: JsValue, controller: web_sys::TransformStreamDefaultController| {
                // The digest takes the chunk first; it goes on once the digest has it.
                let written = writer.write_with_chunk(&chunk);
                let pass = Closure::once_into_js(move |_: JsValue| {
                    let _ = controller.enqueue_with_chunk(&chunk);
                });
                let then: Result<js_sys::Function, _> =
                    js_sys::Reflect::get(&written, &"then".into()).map(JsCast::unchecked_into);
                match then.and_then(|then| then.call1(&written, &pass)) {
                    Ok(chained) => chained.unchecked_into(),
                    Err(e) => js_sys::Promise::reject(&e),
                }
            },
        ) as Box<TransformFn>);
        let transformer = js_sys::Object::new();
        js_sys::Reflect::set(&transformer, &"transform".into(), transform.as_ref())
            .map_err(|e| js_error("transform", key, e))?;
        let hashing = web_sys::TransformStream::new_with_transformer(&transformer)
            .map_err(|e| js_error("transform", key, e))?;
        let fixed =
            worker::worker_sys::FixedLengthStream::new_big_int(js_sys::BigInt::from(length))
                .map_err(|e| js_error("fixed-length stream", key, e))?;
        let fixed: &web_sys::TransformStream = fixed.unchecked_ref();
        let stop = web_sys::AbortController::new().map_err(|e| js_error("abort", key, e))?;
        let options = web_sys::StreamPipeOptions::new();
        options.set_signal(&stop.signal());
        let first = source.pipe_to_with_options(&hashing.writable(), &options);
        let second = hashing
            .readable()
            .pipe_to_with_options(&fixed.writable(), &options);
        let pipes = js_sys::Promise::all(&js_sys::Array::of2(&first, &second));
        Ok(Hashed {
            stream: fixed.readable(),
            pipes,
            _transform: transform,
            stop,
        })
    }
}

/// A part's stream on its way.
struct Hashed {
    /// What the store reads: exactly the part's bytes.
    stream: web_sys::ReadableStream,
    /// Both pipes' end.
    pipes: js_sys::Promise,
    _transform: Transform,
    stop: web_sys::AbortController,
}

/// How long one part may take, upstream to store (a stalled upstream must not hold the consumer
/// until the platform ends it).
const PART_SECONDS: u64 = 600;

/// Runs `upload` (the store reading `hashed.stream`) to its end, bounded by `PART_SECONDS`, then
/// the pipes: a failed pipe is the part's failure even when the store took what it was given. A
/// failed or stalled upload stops the pipes, so nothing waits on a stream nobody reads.
async fn stream_part<T>(
    key: &str,
    hashed: Hashed,
    upload: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let upload = std::pin::pin!(upload);
    let timer = std::pin::pin!(worker::Delay::from(std::time::Duration::from_secs(
        PART_SECONDS
    )));
    let uploaded = match futures::future::select(upload, timer).await {
        futures::future::Either::Left((uploaded, _)) => uploaded,
        futures::future::Either::Right(_) => Err(StoreError(format!(
            "a part of {key} did not finish within {PART_SECONDS} s"
        ))),
    };
    if uploaded.is_err() {
        hashed.stop.abort();
    }
    let piped = JsFuture::from(hashed.pipes)
        .await
        .map_err(|e| js_error("streaming a part of", key, e));
    let value = uploaded?;
    piped?;
    Ok(value)
}

pub(crate) async fn begin_r2(
    bucket: &worker::Bucket,
    key: &str,
) -> Result<WorkerUpload, StoreError> {
    let upload = bucket
        .create_multipart_upload(key)
        .execute()
        .await
        .map_err(|e| StoreError(format!("R2 createMultipartUpload {key}: {e}")))?;
    WorkerUpload::new(
        key,
        Target::R2 {
            upload,
            parts: Vec::new(),
        },
    )
}

pub(crate) async fn begin_s3(
    s3: &S3Store<FetchClient, WorkerClock>,
    key: &str,
) -> Result<WorkerUpload, StoreError> {
    let upload_id = s3.start_multipart(key).await?;
    WorkerUpload::new(
        key,
        Target::S3 {
            upload_id,
            etags: Vec::new(),
        },
    )
}

pub(crate) async fn part(
    s3: Option<&S3Store<FetchClient, WorkerClock>>,
    upload: &mut WorkerUpload,
    body: web_sys::Response,
    length: u64,
) -> Result<(), StoreError> {
    let hashed = upload.hashed(&body, length)?;
    let stream = hashed.stream.clone();
    let key = upload.key.clone();
    match &mut upload.target {
        Target::R2 { upload: r2, parts } => {
            let number = parts.len() as u16 + 1;
            let sent = async {
                r2.upload_part(number, worker::Data::ReadableStream(stream))
                    .await
                    .map_err(|e| StoreError(format!("R2 uploadPart {number} of {key}: {e}")))
            };
            let uploaded = stream_part(&key, hashed, sent).await?;
            parts.push(uploaded);
        }
        Target::S3 { upload_id, etags } => {
            let s3 = s3.ok_or_else(|| StoreError("an S3 upload without S3".into()))?;
            let number = etags.len() as u16 + 1;
            let url = s3.part_url(
                &key,
                upload_id,
                number,
                std::time::Duration::from_secs(PART_URL_SECONDS),
            );
            let sent = async {
                let init = web_sys::RequestInit::new();
                init.set_method("PUT");
                init.set_body(&stream);
                let request = web_sys::Request::new_with_str_and_init(url.as_str(), &init)
                    .map_err(|e| js_error("part request", &key, e))?;
                let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
                let response: web_sys::Response =
                    JsFuture::from(global.fetch_with_request(&request))
                        .await
                        .map_err(|e| js_error("UploadPart", &key, e))?
                        .unchecked_into();
                let etag = response.headers().get("etag").ok().flatten();
                if let Some(body) = response.body() {
                    let _ = body.cancel();
                }
                match etag {
                    Some(etag) if response.status() == 200 => Ok(etag),
                    _ => Err(StoreError(format!(
                        "UploadPart {number} of {key}: HTTP {}",
                        response.status()
                    ))),
                }
            };
            let etag = stream_part(&key, hashed, sent).await?;
            etags.push(etag);
        }
    }
    Ok(())
}

pub(crate) async fn sha256(upload: &mut WorkerUpload) -> Result<String, StoreError> {
    upload.closed = true;
    JsFuture::from(upload.writer.close())
        .await
        .map_err(|e| js_error("digest of", &upload.key, e))?;
    let digest = upload
        .digest
        .digest()
        .await
        .map_err(|e| StoreError(format!("digest of {}: {e}", upload.key)))?;
    Ok(hex::encode(digest.to_vec()))
}

pub(crate) async fn commit(
    s3: Option<&S3Store<FetchClient, WorkerClock>>,
    upload: WorkerUpload,
) -> Result<(), StoreError> {
    let key = upload.key;
    match upload.target {
        Target::R2 { upload, parts } => upload
            .complete(parts)
            .await
            .map(|_| ())
            .map_err(|e| StoreError(format!("R2 complete {key}: {e}"))),
        Target::S3 { upload_id, etags } => {
            let s3 = s3.ok_or_else(|| StoreError("an S3 upload without S3".into()))?;
            s3.complete_multipart(&key, &upload_id, &etags).await
        }
    }
}

pub(crate) async fn abort(s3: Option<&S3Store<FetchClient, WorkerClock>>, upload: WorkerUpload) {
    if !upload.closed {
        // Its rejection (the stream may have errored already) is of no interest.
        let _ = JsFuture::from(upload.writer.abort()).await;
    }
    let key = upload.key;
    let failed = match upload.target {
        Target::R2 { upload, .. } => upload.abort().await.err().map(|e| e.to_string()),
        Target::S3 { upload_id, .. } => match s3 {
            Some(s3) => s3
                .abort_multipart(&key, &upload_id)
                .await
                .err()
                .map(|e| e.to_string()),
            None => None,
        },
    };
    if let Some(why) = failed {
        super::log(&format!("aborting the upload of {key}: {why}"));
    }
}
