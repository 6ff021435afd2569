//! `App::handle`: route -> handler -> response, and every error written in one place. The App owns
//! nothing platform-specific: storage, cache, clock, origin and events arrive as the `Platform`'s
//! trait implementations, so the same code runs in the worker and in native unit tests.

use std::rc::Rc;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};

use crate::config::Config;
use crate::content::{Content, LayoutContent, Sources};
use crate::error::{Error, ErrorCode, Result};
use crate::operation::Operation;
use crate::platform::{ClientBody, Platform};
use crate::upstream::content::UpstreamContent;

pub const API_VERSION_HEADER: &str = "docker-distribution-api-version";
pub const API_VERSION: &str = "registry/2.0";

/// The registry's request handler (it holds no per-request state).
pub struct App<P: Platform> {
    pub config: Rc<Config>,
    pub store: P::Store,
    pub cache: P::Cache,
    pub clock: P::Clock,
    /// Writes go here; `None` when no origin is configured (the edge is then read-only).
    pub origin: Option<P::Origin>,
    pub events: P::Events,
    /// The registry's records: tokens, scope maps, settings, repository attributes.
    pub kv: P::Kv,
    /// Where operational messages go (the worker's console; stderr natively).
    pub log: fn(&str),
    /// Work that may finish after the response (cache writes).
    pub background: P::Background,
    /// Requests to the upstream registries of `UPSTREAMS`.
    pub upstream: P::Upstream,
    /// The queue of work off the request's path (mirror fills, webhook deliveries).
    pub jobs: P::Jobs,
    /// Webhook deliveries.
    pub hooks: P::Hooks,
}

impl<P: Platform> App<P> {
    /// Answers one request. Never fails: errors become OCI error responses. The request's URI may
    /// be absolute (its scheme and host are then the edge's public URL) or a path.
    pub async fn handle<B: ClientBody>(&self, request: Request<B>) -> Response<Vec<u8>> {
        let head = request.method() == Method::HEAD;
        let mut response = match self.dispatch(&request).await {
            Ok(response) => response,
            Err(error) => {
                if error.status().is_server_error() {
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

    async fn dispatch<B: ClientBody>(&self, request: &Request<B>) -> Result<Response<Vec<u8>>> {
        let path = request.uri().path();
        match path {
            "/oauth2/token" => return self.token(request).await,
            "/oauth2/jwks" => return Ok(self.jwks()),
            _ if path == "/api/v1" || path.starts_with("/api/v1/") => {
                return self.manage(request).await;
            }
            _ => {}
        }
        // The network rules come first: a client they refuse learns nothing, not even whether its
        // request parses. Then the operation (a malformed one is refused before credentials are
        // looked at), then the caller and the locks.
        let settings = self.settings().await?;
        self.check_network(request, &settings)?;
        let mut operation = Operation::parse(request.method(), path, request.uri().query())?;
        let namespace = self.apply_namespace(request.uri().query(), &mut operation)?;
        let (caller, attributes, operation) = self.authorize(request, operation, &settings).await?;
        if operation.is_write() {
            if let Some(name) = operation.name() {
                crate::upstream::check_writable(&self.config.upstreams, name)?;
            }
            if self.origin.is_none() {
                return Err(crate::handlers::writes_disabled());
            }
        }
        let mut response = self
            .run(request, operation, caller, attributes, &settings)
            .await?;
        if let Some(ns) = namespace
            && let Ok(value) = HeaderValue::from_str(&ns)
        {
            response.headers_mut().insert("oci-namespace", value);
        }
        Ok(response)
    }

    /// The one name the request is about, before anything is checked: containerd's
    /// `?ns=<registry>` beside an unprefixed name addresses the mirror's repository
    /// `<registry>/<name>` when an upstream serves that namespace (and nothing, when none does),
    /// and a Docker Hub short name (`docker.io/nginx`) is `docker.io/library/nginx`. Returns the
    /// namespace applied, for the answer's `OCI-Namespace`.
    fn apply_namespace(
        &self,
        query: Option<&str>,
        operation: &mut Operation,
    ) -> Result<Option<String>> {
        use crate::upstream::{Namespace, canonical, with_namespace};
        let upstreams = &self.config.upstreams;
        if upstreams.is_empty() {
            return Ok(None);
        }
        let query = crate::query::Query::parse(query);
        let ns = query.single("ns")?;
        let Some(name) = operation.name_mut() else {
            return Ok(None);
        };
        if let Some(ns) = ns {
            let own = self
                .config
                .public_url
                .as_ref()
                .and_then(|u| u.host_str())
                .unwrap_or(&self.config.auth.service);
            match with_namespace(upstreams, name, ns, Some(own)) {
                Namespace::Renamed(renamed) => {
                    *name = renamed;
                    return Ok(Some(ns.to_owned()));
                }
                Namespace::Unknown => {
                    return Err(Error::new(ErrorCode::NameUnknown)
                        .with_message(format!(
                            "this registry mirrors no registry named {ns:?} (ns=): it has \
                             nothing of {ns}/{name}"
                        ))
                        .with_detail(serde_json::json!({ "name": name.as_str(), "ns": ns })));
                }
                Namespace::Unchanged => {}
            }
        }
        if let Some(renamed) = canonical(upstreams, name) {
            *name = renamed;
        }
        Ok(None)
    }

    async fn run<B: ClientBody>(
        &self,
        request: &Request<B>,
        operation: Operation,
        caller: crate::auth::Caller,
        attributes: crate::auth::records::RepositoryAttributes,
        settings: &crate::auth::records::RegistrySettings,
    ) -> Result<Response<Vec<u8>>> {
        let scopes = operation.origin_scopes();
        let actor = &caller.principal;
        match operation {
            Operation::ApiVersion => Ok(json_response(StatusCode::OK, b"{}".to_vec())),
            Operation::Catalog { page } => {
                let filter = self.catalog_filter(&caller).await?;
                self.get_catalog(page, filter).await
            }
            Operation::ListTags { name, page } => {
                // Tags come from storage, which holds only valid ones.
                let listed = |tag: &str| {
                    tag.parse()
                        .is_ok_and(|tag| attributes.tag(&tag, crate::auth::records::Lock::List))
                };
                self.get_tags(&name, page, listed).await
            }
            Operation::GetManifest { name, reference } => {
                let response = self
                    .get_manifest(&name, &reference, request.headers(), &attributes)
                    .await?;
                // Only where a webhook may take pull events (their names are in the settings).
                if request.method() == Method::GET
                    && response.status() == StatusCode::OK
                    && !settings.webhooks.is_empty()
                {
                    self.count_pull(request, &name, &reference, &response, actor)
                        .await;
                }
                Ok(response)
            }
            Operation::PutManifest {
                name,
                reference,
                tags,
            } => {
                self.put_manifest(&name, &reference, &tags, request, scopes, actor)
                    .await
            }
            Operation::DeleteManifest { name, reference } => {
                self.delete_manifest(&name, &reference, request, scopes, actor)
                    .await
            }
            Operation::HeadBlob { name, digest } => self.head_blob(&name, &digest).await,
            Operation::GetBlob { name, digest } => {
                self.get_blob(&name, &digest, request.headers()).await
            }
            Operation::DeleteBlob { name, digest } => {
                self.delete_blob(&name, &digest, request, scopes).await
            }
            Operation::StartUpload { name, start } => {
                self.start_upload(&name, &start, request, scopes).await
            }
            Operation::Upload {
                name,
                upload_id,
                step,
            } => self.upload(&name, &upload_id, step, request, scopes).await,
            Operation::Referrers {
                name,
                digest,
                artifact_type,
            } => {
                self.get_referrers(&name, &digest, artifact_type.as_deref(), &attributes)
                    .await
            }
        }
    }

    /// Runs one job off the queue: its `attempt` (from 1), and whether it is the `last` one.
    pub async fn run_job(
        &self,
        job: &crate::jobs::Job,
        attempt: u32,
        last: bool,
    ) -> crate::jobs::Outcome {
        match job {
            crate::jobs::Job::DeliverWebhook {
                webhook,
                event,
                created,
            } => {
                self.deliver_webhook(webhook, event, *created, attempt, last)
                    .await
            }
            crate::jobs::Job::IndexManifest {
                name,
                digest,
                subject,
            } => {
                self.run_index_manifest(name, digest, subject.as_deref())
                    .await
            }
            crate::jobs::Job::RebuildIndex { run } => self.run_rebuild(*run).await,
            crate::jobs::Job::ReconcileIndex => {
                match self.start_rebuild("a scheduled reconcile", false).await {
                    Ok(_) => crate::jobs::Outcome::Done,
                    Err(e) => crate::jobs::Outcome::Retry(format!("the reconcile: {e}")),
                }
            }
            fill => self.run_fill(fill, last).await,
        }
    }

    /// The edge's public URL, for `Location` headers: `PUBLIC_URL`, else the request's own scheme
    /// and host, else nothing (path-only locations).
    pub(crate) fn public_base<B>(&self, request: &Request<B>) -> String {
        if let Some(url) = &self.config.public_url {
            return url.as_str().trim_end_matches('/').to_owned();
        }
        match (request.uri().scheme_str(), request.uri().authority()) {
            (Some(scheme), Some(authority)) => format!("{scheme}://{authority}"),
            _ => String::new(),
        }
    }

    /// The registry's content, as the reads see it: the edge's storage, then its upstreams.
    pub(crate) fn content(&self) -> ReadSources<'_, P> {
        Sources {
            own: self.layout_content(),
            upstream: self.upstream_content(),
            upstreams: &self.config.upstreams,
            jobs: &self.jobs,
            cache: &self.cache,
            log: self.log,
            now: crate::platform::Clock::now(&self.clock),
            warnings: Default::default(),
        }
    }

    /// The edge's storage, as reads see it.
    pub(crate) fn layout_content(&self) -> LayoutContent<'_, P::Store, P::Cache> {
        use crate::platform::Clock;
        LayoutContent {
            store: &self.store,
            cache: &self.cache,
            layout: &self.config.layout,
            tag_cache_seconds: self.config.tag_cache_seconds,
            blob_base_url: self.config.blob_base_url.as_ref(),
            presign_seconds: self.config.presign_seconds,
            now: self.clock.now(),
            indexed: self.indexes_kept(),
            unindexed: Default::default(),
        }
    }

    /// Whether the edge keeps the catalog and referrers indexes: it needs storage to keep them in
    /// and a queue to update them through.
    pub(crate) fn indexes_kept(&self) -> bool {
        self.config.backend != crate::config::Backend::None
            && crate::jobs::Jobs::available(&self.jobs)
    }

    /// The upstream registries, as reads see them.
    pub(crate) fn upstream_content(&self) -> UpstreamContent<'_, P::Upstream, P::Cache> {
        use crate::platform::Clock;
        UpstreamContent {
            upstreams: &self.config.upstreams,
            http: &self.upstream,
            cache: &self.cache,
            now: self.clock.now(),
            warnings: Default::default(),
        }
    }

    /// The not-found answer for something in `name`: `NAME_UNKNOWN` when the repository itself does
    /// not exist, `code` otherwise.
    pub(crate) async fn not_found(
        &self,
        name: &crate::reference::Name,
        code: ErrorCode,
        detail: serde_json::Value,
    ) -> Error {
        match self.content().repository_exists(name).await {
            Ok(false) => Error::new(ErrorCode::NameUnknown)
                .with_detail(serde_json::json!({ "name": name.as_str() })),
            Ok(true) => Error::new(code).with_detail(detail),
            Err(e) => e,
        }
    }
}

/// The content sources of a request on platform `P`.
pub(crate) type ReadSources<'a, P> = Sources<
    'a,
    LayoutContent<'a, <P as Platform>::Store, <P as Platform>::Cache>,
    UpstreamContent<'a, <P as Platform>::Upstream, <P as Platform>::Cache>,
    <P as Platform>::Jobs,
    <P as Platform>::Cache,
>;

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
    let mut response = json_response(error.status(), error.body());
    if let Some(challenge) = &error.challenge
        && let Ok(value) = HeaderValue::from_str(challenge)
    {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    if let Some(seconds) = error.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}
