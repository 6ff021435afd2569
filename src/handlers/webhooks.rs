//! Webhooks at work: events queued after the origin's success (`notify_webhooks`), delivered by
//! the queue consumer (`deliver_webhook`: signed, judged, logged, retried), and managed under
//! `/api/v1/webhooks` (`manage_webhooks`). The records, payload and policy are
//! `crate::webhooks`'.

use http::{Method, Request, Response, StatusCode, header};
use serde_json::json;

use super::manage::read_json;
use crate::api::{
    CreatedWebhook, Endpoint, WebhookConfig, WebhookCreate, WebhookUpdate, WebhookView,
};
use crate::app::App;
use crate::auth::Principal;
use crate::cache::EdgeCache;
use crate::error::{Error, ErrorCode, Result};
use crate::events::Event;
use crate::jobs::{Job, Jobs, Outcome};
use crate::platform::{ClientBody, Clock, HookHttp, Platform};
use crate::reference::{Name, Reference};
use crate::webhooks::{
    self, Action, Delivered, DeliveryEntry, RequestInfo, Status, Target, WebhookRecord,
};

/// How long a receiver has to answer.
const DELIVERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

fn view(hook: &WebhookRecord) -> WebhookView {
    WebhookView {
        name: hook.name.clone(),
        service_uri: redacted(&hook.service_uri),
        status: hook.status,
        actions: hook.actions.clone(),
        scope: hook.scope.clone(),
        custom_headers: hook.custom_headers.keys().cloned().collect(),
        created: hook.created,
    }
}

/// A service URI down to its scheme and host (its path and query may hold a secret).
fn redacted(uri: &str) -> String {
    match url::Url::parse(uri) {
        Ok(url) => {
            let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!(
                "{}://{}{port}/...",
                url.scheme(),
                url.host_str().unwrap_or("")
            )
        }
        Err(_) => "...".into(),
    }
}

fn bad_request(message: String) -> Error {
    Error::new(ErrorCode::BadRequest).with_message(message)
}

fn not_found(name: &str) -> Error {
    Error::new(ErrorCode::NotFound).with_message(format!("webhook {name} does not exist"))
}

impl<P: Platform> App<P> {
    /// Hosts no webhook may deliver to: the edge's own, its origin's, its upstreams'.
    fn refused_hosts(&self) -> Vec<String> {
        let mut hosts: Vec<String> = self
            .config
            .upstreams
            .iter()
            .filter_map(|u| u.url.host_str().map(str::to_owned))
            .collect();
        hosts.extend(
            [
                self.config.public_url.as_ref(),
                self.config.origin.as_ref().map(|o| &o.url),
            ]
            .into_iter()
            .flatten()
            .filter_map(|u| u.host_str().map(str::to_owned)),
        );
        hosts.push(self.config.auth.service.clone());
        hosts
    }

    /// The webhooks the registry has, or none (logged) when they cannot be read.
    async fn current_webhooks(&self) -> Vec<WebhookRecord> {
        let listed = async {
            let settings = self.settings().await?;
            self.records().webhooks(&settings).await
        };
        match listed.await {
            Ok(hooks) => hooks,
            Err(e) => {
                (self.log)(&format!("webhooks not read, no events sent: {e}"));
                Vec::new()
            }
        }
    }

    /// The request's part of a payload.
    fn request_info<B>(&self, request: &Request<B>) -> RequestInfo {
        let host = self
            .config
            .public_url
            .as_ref()
            .and_then(|u| u.host_str().map(str::to_owned))
            .or_else(|| request.uri().host().map(str::to_owned))
            .or_else(|| {
                request
                    .headers()
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        RequestInfo {
            id: crate::auth::secret::random_id().unwrap_or_default(),
            host,
            method: request.method().to_string(),
            useragent: request
                .headers()
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .chars()
                .take(512)
                .collect(),
        }
    }

    /// The enabled webhooks that take `action` for `repository` (`tag`) in their scope.
    async fn subscribed(
        &self,
        action: Action,
        repository: &str,
        tag: Option<&str>,
    ) -> Vec<WebhookRecord> {
        self.current_webhooks()
            .await
            .into_iter()
            .filter(|h| h.status == Status::Enabled && h.actions.contains(&action))
            .filter(|h| webhooks::in_scope(&h.scope, repository, tag))
            .collect()
    }

    /// Queues `action` on `target` for each of `hooks`, one payload (and event id) each. A queue
    /// that cannot take them is logged, never the request's failure.
    async fn queue_events<'h, B>(
        &self,
        request: &Request<B>,
        hooks: impl IntoIterator<Item = &'h WebhookRecord>,
        action: Action,
        target: &Target,
        actor: &str,
    ) {
        let info = self.request_info(request);
        let now = self.clock.now();
        let jobs: Vec<Job> = hooks
            .into_iter()
            .map(|hook| {
                let id = crate::auth::secret::random_id().unwrap_or_default();
                let payload = webhooks::payload(&id, now, action.as_str(), target, &info, actor);
                Job::DeliverWebhook {
                    webhook: hook.name.clone(),
                    event: payload.to_string(),
                    created: hook.created,
                }
            })
            .collect();
        if jobs.is_empty() {
            return;
        }
        if let Err(e) = self.jobs.enqueue(&jobs).await {
            (self.log)(&format!(
                "{} webhook event(s) for {} not queued ({e}): {} missed",
                jobs.len(),
                target.repository,
                action.as_str()
            ));
        }
    }

    /// Queues `event` (a write the origin accepted; `chart`: its manifest is a Helm chart) for
    /// every enabled webhook whose actions and scope cover it. A registry without webhooks pays
    /// nothing: their names are in the settings record every request reads.
    pub(crate) async fn notify_webhooks<B>(
        &self,
        request: &Request<B>,
        event: &Event,
        chart: bool,
    ) {
        let action = match (event.action, chart) {
            (crate::events::Action::Push, false) => Action::Push,
            (crate::events::Action::Push, true) => Action::ChartPush,
            (crate::events::Action::Delete, false) => Action::Delete,
            (crate::events::Action::Delete, true) => Action::ChartDelete,
        };
        let hooks = self
            .subscribed(action, &event.repository, event.tag.as_deref())
            .await;
        if hooks.is_empty() {
            return;
        }
        let chart = chart.then(|| {
            let name = event.repository.rsplit('/').next().unwrap_or("");
            (name.to_owned(), event.tag.clone().unwrap_or_default())
        });
        let target = Target {
            repository: event.repository.clone(),
            tag: event.tag.clone(),
            digest: event.digest.clone(),
            media_type: event.media_type.clone(),
            size: event.size,
            chart,
            count: None,
        };
        self.queue_events(request, &hooks, action, &target, &event.actor)
            .await;
    }

    /// Counts a pull (a manifest `GET` that was answered) for the webhooks that take `pull`
    /// events, and queues one event per `PULL_EVENT_BATCH` pulls of a repository's manifest, or
    /// at the first pull after `PULL_EVENT_SECONDS`, with `target.count`; each webhook counts
    /// the pulls its scope covers. Counted in the isolate's memory: a pull costs no storage, KV
    /// or queue operation, and the pulls an isolate counted but had not sent when it ends are
    /// not reported (the counts are a floor).
    pub(crate) async fn count_pull<B>(
        &self,
        request: &Request<B>,
        name: &Name,
        reference: &Reference,
        response: &Response<Vec<u8>>,
        actor: &Principal,
    ) {
        let Some(digest) = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
        else {
            return;
        };
        let tag = match reference {
            Reference::Tag(t) => Some(t.as_str()),
            Reference::Digest(_) => None,
        };
        let hooks = self.subscribed(Action::Pull, name.as_str(), tag).await;
        let now = self.clock.now();
        let batch = self.config.pull_event_batch;
        let interval = self.config.pull_event_seconds;
        for hook in &hooks {
            let key = crate::cache::key::pulls(&hook.name, hook.created, name, &digest);
            let (count, since) = self
                .cache
                .get_local(&key)
                .await
                .and_then(|v| {
                    let text = String::from_utf8(v).ok()?;
                    let (count, since) = text.split_once(' ')?;
                    Some((count.parse::<u64>().ok()?, since.parse::<u64>().ok()?))
                })
                .unwrap_or((0, now));
            let count = count + 1;
            if count < batch && now < since + interval {
                let entry = format!("{count} {since}");
                self.cache
                    .put_local(&key, entry.as_bytes(), interval * 2 + 60)
                    .await;
                continue;
            }
            self.cache.delete_local(&key).await;
            let target = Target {
                repository: name.to_string(),
                digest: Some(digest.clone()),
                count: Some(count),
                ..Target::default()
            };
            self.queue_events(request, [hook], Action::Pull, &target, &actor.actor())
                .await;
        }
    }

    /// One delivery attempt of `event` (a payload) to the webhook `name`: signed, sent, judged
    /// and logged. A receiver's 2xx is done; a 408, 429, 5xx or no answer is tried again (after
    /// its `Retry-After`, for a 429), until the last attempt, which is logged as sent to the
    /// dead-letter queue; any other 4xx is the receiver's refusal, not tried again.
    pub(crate) async fn deliver_webhook(
        &self,
        name: &str,
        event: &str,
        created: u64,
        attempt: u32,
        last: bool,
    ) -> Outcome {
        let records = self.records();
        let hook = match records.webhook(name).await {
            Ok(Some(hook)) => hook,
            // Deleted since: nothing to deliver to.
            Ok(None) => return Outcome::Done,
            Err(e) => return Outcome::Retry(format!("webhook {name}: {e}")),
        };
        // Disabled, or deleted and created again since: not the webhook the event was for.
        if hook.status == Status::Disabled || (created != 0 && hook.created != created) {
            return Outcome::Done;
        }
        let parsed: serde_json::Value = serde_json::from_str(event).unwrap_or_default();
        let field = |path: &[&str]| {
            let mut v = &parsed;
            for p in path {
                v = v.get(p)?;
            }
            v.as_str().map(str::to_owned)
        };
        let mut entry = DeliveryEntry {
            event_id: field(&["id"]).unwrap_or_default(),
            action: field(&["action"]).unwrap_or_default(),
            repository: field(&["target", "repository"]),
            tag: field(&["target", "tag"]),
            digest: field(&["target", "digest"]),
            status: None,
            error: None,
            duration_ms: 0,
            attempt,
            response: String::new(),
            timestamp: self.clock.now(),
            gave_up: false,
        };
        let refused = self.refused_hosts();
        let url = match webhooks::check_uri(
            &hook.service_uri,
            self.config.webhook_allow_http,
            &refused,
        ) {
            Ok(url) => url,
            Err(why) => {
                entry.error = Some(why.clone());
                self.log_delivery(name, entry).await;
                return Outcome::Failed(format!("webhook {name}: {why}"));
            }
        };
        if event.len() > webhooks::MAX_PAYLOAD_BYTES {
            entry.error = Some("the payload is over the bound (64 KiB)".into());
            self.log_delivery(name, entry).await;
            return Outcome::Failed(format!("webhook {name}: a payload over the bound"));
        }
        let now = self.clock.now();
        let mut headers = vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            (
                "x-registry-signature".to_owned(),
                webhooks::signature(&hook.secret, now, event.as_bytes()),
            ),
            (
                "user-agent".to_owned(),
                concat!("registry-edge/", env!("CARGO_PKG_VERSION")).to_owned(),
            ),
        ];
        headers.extend(
            hook.custom_headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        let answer = self
            .hooks
            .post(
                url.as_str(),
                &headers,
                event.as_bytes().to_vec(),
                DELIVERY_TIMEOUT,
            )
            .await;
        entry.duration_ms = answer.elapsed_ms;
        entry.status = answer.status;
        entry.error = answer.error.clone();
        entry.response = webhooks::excerpt(&answer.body);
        let judged = webhooks::judge(answer.status, answer.retry_after.as_deref(), now);
        let why = || match (answer.status, &answer.error) {
            (Some(status), _) => format!("webhook {name}: the receiver answered {status}"),
            (None, Some(e)) => format!("webhook {name}: no answer ({e})"),
            (None, None) => format!("webhook {name}: no answer"),
        };
        let outcome = match judged {
            Delivered::Ok => Outcome::Done,
            Delivered::Refused => Outcome::Failed(why()),
            Delivered::Again(after) => {
                entry.gave_up = last;
                match after {
                    Some(seconds) => Outcome::RetryIn(why(), seconds),
                    None => Outcome::Retry(why()),
                }
            }
        };
        self.log_delivery(name, entry).await;
        outcome
    }

    async fn log_delivery(&self, name: &str, entry: DeliveryEntry) {
        if let Err(e) = self.records().log_delivery(name, entry).await {
            (self.log)(&format!("webhook {name}: delivery not logged: {e}"));
        }
    }

    /// `/api/v1/webhooks...`, for the admin.
    pub(crate) async fn manage_webhooks<B: ClientBody>(
        &self,
        request: &Request<B>,
        method: &Method,
        endpoint: &Endpoint,
    ) -> Result<Response<Vec<u8>>> {
        let records = self.records();
        let existing = async |name: &str| -> Result<WebhookRecord> {
            records.webhook(name).await?.ok_or_else(|| not_found(name))
        };
        match (method.clone(), endpoint) {
            (Method::GET, Endpoint::Webhooks) => {
                let hooks = records.webhooks(&self.settings().await?).await?;
                Ok(ok(&hooks.iter().map(view).collect::<Vec<_>>()))
            }
            (Method::GET, Endpoint::Webhook(name)) => Ok(ok(&view(&existing(name).await?))),
            (Method::PUT, Endpoint::Webhook(name)) => {
                webhooks::check_name(name).map_err(bad_request)?;
                let create: WebhookCreate = read_json(request).await?;
                if records.webhook(name).await?.is_some() {
                    return Err(Error::new(ErrorCode::Conflict).with_message(format!(
                        "webhook {name} exists: change it with PATCH, or delete it first"
                    )));
                }
                self.check_webhook(&create.service_uri, &create.actions, &create.custom_headers)?;
                let hook = WebhookRecord {
                    name: name.clone(),
                    service_uri: create.service_uri,
                    custom_headers: create.custom_headers,
                    status: create.status,
                    actions: dedup(create.actions),
                    scope: create.scope.trim().to_owned(),
                    secret: crate::auth::secret::generate_password().map_err(Error::internal)?,
                    created: self.clock.now(),
                };
                records.put_webhook(&hook).await?;
                let mut settings = self.settings().await?;
                if settings.webhooks.insert(hook.name.clone()) {
                    records.put_settings(&settings).await?;
                }
                let created = CreatedWebhook {
                    webhook: view(&hook),
                    secret: hook.secret.clone(),
                };
                let mut response = ok(&created);
                *response.status_mut() = StatusCode::CREATED;
                response.headers_mut().insert(
                    header::CACHE_CONTROL,
                    http::HeaderValue::from_static("no-store"),
                );
                Ok(response)
            }
            (Method::PATCH, Endpoint::Webhook(name)) => {
                let update: WebhookUpdate = read_json(request).await?;
                let mut hook = existing(name).await?;
                if let Some(uri) = update.service_uri {
                    hook.service_uri = uri;
                }
                if let Some(actions) = update.actions {
                    hook.actions = dedup(actions);
                }
                if let Some(scope) = update.scope {
                    hook.scope = scope.trim().to_owned();
                }
                if let Some(headers) = update.custom_headers {
                    hook.custom_headers = headers;
                }
                if let Some(status) = update.status {
                    hook.status = status;
                }
                self.check_webhook(&hook.service_uri, &hook.actions, &hook.custom_headers)?;
                records.put_webhook(&hook).await?;
                Ok(ok(&view(&hook)))
            }
            (Method::DELETE, Endpoint::Webhook(name)) => {
                existing(name).await?;
                let mut settings = self.settings().await?;
                if settings.webhooks.remove(name.as_str()) {
                    records.put_settings(&settings).await?;
                }
                records.delete_webhook(name).await?;
                let mut response = Response::new(Vec::new());
                *response.status_mut() = StatusCode::NO_CONTENT;
                Ok(response)
            }
            (Method::POST, Endpoint::WebhookPing(name)) => {
                // A JSON body, as every management write: no cross-site form can send one.
                let _: crate::api::Empty = read_json(request).await?;
                let hook = existing(name).await?;
                let id = crate::auth::secret::random_id().map_err(Error::internal)?;
                let host = self.request_info(request).host;
                let event = webhooks::ping(&id, self.clock.now(), &host).to_string();
                self.jobs
                    .enqueue(&[Job::DeliverWebhook {
                        webhook: hook.name.clone(),
                        event,
                        created: hook.created,
                    }])
                    .await
                    .map_err(|e| {
                        Error::new(ErrorCode::UpstreamUnavailable)
                            .with_message(format!("the ping was not queued: {e}"))
                    })?;
                let mut response = ok(&json!({ "id": id }));
                *response.status_mut() = StatusCode::ACCEPTED;
                Ok(response)
            }
            (Method::GET, Endpoint::WebhookEvents(name)) => {
                existing(name).await?;
                Ok(ok(&records.webhook_log(name).await?))
            }
            (Method::GET, Endpoint::WebhookConfig(name)) => {
                let hook = existing(name).await?;
                Ok(ok(&WebhookConfig {
                    service_uri: hook.service_uri.clone(),
                    custom_headers: hook.custom_headers.keys().cloned().collect(),
                }))
            }
            _ => Err(Error::new(ErrorCode::Unsupported)
                .with_message(format!("{method} is not supported on {}", endpoint.path()))),
        }
    }

    fn check_webhook(
        &self,
        uri: &str,
        actions: &[Action],
        headers: &std::collections::BTreeMap<String, String>,
    ) -> Result<()> {
        webhooks::check_uri(uri, self.config.webhook_allow_http, &self.refused_hosts())
            .map_err(bad_request)?;
        webhooks::check_headers(headers).map_err(bad_request)?;
        if actions.is_empty() {
            return Err(bad_request(
                "a webhook needs at least one action (push, delete, chart_push, chart_delete, \
                 pull, replicated)"
                    .into(),
            ));
        }
        Ok(())
    }
}

fn dedup(mut actions: Vec<Action>) -> Vec<Action> {
    actions.sort();
    actions.dedup();
    actions
}

fn ok(value: &impl serde::Serialize) -> Response<Vec<u8>> {
    crate::app::json_response(
        StatusCode::OK,
        serde_json::to_vec(value).expect("serializes"),
    )
}
