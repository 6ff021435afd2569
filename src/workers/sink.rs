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
        })
    }

    /// `body` as a stream of exactly `length` bytes whose chunks also go to the upload's digest,
    /// in order; and the pipes' end (which fails when the body does).
    fn hashed(
        &self,
        body: &web_sys::Response,
        length: u64,
    ) -> Result<(web_sys::ReadableStream, js_sys::Promise, Transform), StoreError> {
        let key = &self.key;
        let source = match body.body() {
            Some(stream) => stream,
            // An empty body (a part of zero bytes).
            None => web_sys::ReadableStream::new().map_err(|e| js_error("empty body", key, e))?,
        };
        let writer = self.writer.clone();
        let transform = Closure::wrap(Box::new(
            move |chunk: JsValue, controller: web_sys::TransformStreamDefaultController| {
                // The digest takes the chunk first; then it goes on, once the digest has it.
                let written = writer.write_with_chunk(&chunk);
                let _ = controller.enqueue_with_chunk(&chunk);
                written
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
        let first = source.pipe_to(&hashing.writable());
        let second = hashing.readable().pipe_to(&fixed.writable());
        let both = js_sys::Promise::all(&js_sys::Array::of2(&first, &second));
        Ok((fixed.readable(), both, transform))
    }
}

/// Awaits `pipes` after `upload` (the part's upload) ended: a failed pipe is the part's failure
/// even when the store took what it was given.
async fn finish_part(key: &str, pipes: js_sys::Promise) -> Result<(), StoreError> {
    JsFuture::from(pipes)
        .await
        .map(|_| ())
        .map_err(|e| js_error("streaming part of", key, e))
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
    let (stream, pipes, _transform) = upload.hashed(&body, length)?;
    let key = upload.key.clone();
    match &mut upload.target {
        Target::R2 { upload: r2, parts } => {
            let number = parts.len() as u16 + 1;
            let uploaded = r2
                .upload_part(number, worker::Data::ReadableStream(stream))
                .await
                .map_err(|e| StoreError(format!("R2 uploadPart {number} of {key}: {e}")));
            finish_part(&key, pipes).await?;
            parts.push(uploaded?);
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
            let init = web_sys::RequestInit::new();
            init.set_method("PUT");
            init.set_body(&stream);
            let request = web_sys::Request::new_with_str_and_init(url.as_str(), &init)
                .map_err(|e| js_error("part request", &key, e))?;
            let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
            let sent = JsFuture::from(global.fetch_with_request(&request)).await;
            finish_part(&key, pipes).await?;
            let response: web_sys::Response = sent
                .map_err(|e| js_error("UploadPart", &key, e))?
                .unchecked_into();
            let etag = response.headers().get("etag").ok().flatten();
            if let Some(body) = response.body() {
                let _ = body.cancel();
            }
            match etag {
                Some(etag) if response.status() == 200 => etags.push(etag),
                _ => {
                    return Err(StoreError(format!(
                        "UploadPart {number} of {key}: HTTP {}",
                        response.status()
                    )));
                }
            }
        }
    }
    Ok(())
}

pub(crate) async fn sha256(upload: &mut WorkerUpload) -> Result<String, StoreError> {
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
    let _ = upload.writer.abort();
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
