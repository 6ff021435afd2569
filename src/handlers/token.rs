//! The token service, as Docker's token authentication and its OAuth2 form specify it:
//!
//! - `GET /oauth2/token?service=&scope=...` with Basic credentials (or none, for anonymous
//!   access); `offline_token=true` also returns a refresh token.
//! - `POST /oauth2/token` form: `grant_type=password` (`username`, `password`) or
//!   `grant_type=refresh_token` (`refresh_token`), `service`, `scope` (space-separated),
//!   `access_type=offline` for a refresh token (what `docker login` stores as an identity token).
//! - `GET /oauth2/jwks`: the public key, as a JSON Web Key Set.
//!
//! The access token grants the intersection of what was asked and what the principal may do; a
//! scope it may not have is left out, not refused (the registry then answers 401
//! `insufficient_scope`, as distribution's token servers behave).

use http::{Method, Request, Response, StatusCode};
use serde_json::json;

use crate::app::{App, json_response};
use crate::auth::jwt::MAX_TOKEN_BYTES;
use crate::auth::secret::{self, Credentials};
use crate::auth::service::bad_request;
use crate::auth::{Principal, Scope, grant};
use crate::error::{Error, ErrorCode, Result};
use crate::platform::{ClientAddress, ClientBody, Clock, Platform};
use crate::query::Query;

/// Largest token request body read (a form of a few scopes).
const FORM_LIMIT: usize = 64 * 1024;

/// Most scopes one token request may ask for. Clients ask for one to three; the bound keeps every
/// token the service issues under what the registry accepts (`jwt::MAX_TOKEN_BYTES`), which is
/// also checked on the token itself before it is handed out.
pub const MAX_SCOPES: usize = 64;
const MAX_SCOPE_PARAMETERS: usize = MAX_SCOPES;

fn too_many_scopes(n: usize) -> Error {
    bad_request(format!(
        "{n} scopes asked for; a token request may ask for at most {MAX_SCOPES}"
    ))
}

/// The parameters of a token request, from the query (GET) or the form (POST).
#[derive(Default)]
struct TokenRequest {
    grant_type: Option<String>,
    service: Option<String>,
    scopes: Vec<String>,
    username: Option<String>,
    password: Option<String>,
    refresh_token: Option<String>,
    offline: bool,
}

impl TokenRequest {
    /// A query or a form. Every parameter but `scope` is taken once (a repeated one is a 400).
    fn parse(pairs: &[u8]) -> Result<TokenRequest> {
        let q = Query::from_bytes(pairs);
        let one = |key: &str| -> Result<Option<String>> { Ok(q.single(key)?.map(str::to_owned)) };
        let scopes: Vec<String> = q.all("scope").map(str::to_owned).collect();
        if scopes.len() > MAX_SCOPE_PARAMETERS {
            return Err(too_many_scopes(scopes.len()));
        }
        Ok(TokenRequest {
            grant_type: one("grant_type")?,
            service: one("service")?,
            scopes,
            username: one("username")?,
            password: one("password")?,
            refresh_token: one("refresh_token")?,
            offline: one("access_type")?.as_deref() == Some("offline")
                || one("offline_token")?.as_deref() == Some("true"),
        })
    }
}

impl<P: Platform> App<P> {
    pub async fn token<B: ClientBody>(&self, request: &Request<B>) -> Result<Response<Vec<u8>>> {
        let settings = self.settings().await?;
        let address = request.extensions().get::<ClientAddress>().map(|a| a.0);
        if !settings.network_rules.allows(address) {
            return Err(Error::new(ErrorCode::Denied)
                .with_message("client address is not allowed by the registry's network rules"));
        }
        let mut form = match *request.method() {
            Method::GET => {
                let query = TokenRequest::parse(request.uri().query().unwrap_or("").as_bytes())?;
                // A URL is logged by every proxy on the way: secrets never travel in one.
                if query.password.is_some() || query.refresh_token.is_some() {
                    return Err(bad_request(
                        "credentials go in the Authorization header (GET) or a POST form, never \
                         in the URL",
                    ));
                }
                query
            }
            Method::POST => {
                let body = request
                    .body()
                    .read(FORM_LIMIT)
                    .await
                    .map_err(|e| bad_request(format!("token request body: {e}")))?
                    .ok_or_else(|| bad_request("token request body is too large"))?;
                let mut form = TokenRequest::parse(&body)?;
                // Scopes may also come in the query.
                let query = TokenRequest::parse(request.uri().query().unwrap_or("").as_bytes())?;
                form.scopes.extend(query.scopes);
                form
            }
            _ => {
                return Err(Error::new(ErrorCode::Unsupported)
                    .with_message("the token endpoint takes GET or POST"));
            }
        };
        let auth = &self.config.auth;
        if let Some(service) = &form.service
            && *service != auth.service
        {
            return Err(bad_request(format!(
                "unknown service {service:?}: this token service issues tokens for {:?}",
                auth.service
            )));
        }
        let scopes = Scope::parse_all(form.scopes.iter().map(String::as_str))?;
        if scopes.len() > MAX_SCOPES {
            return Err(too_many_scopes(scopes.len()));
        }
        let unauthorized = |why: &str| {
            Error::new(ErrorCode::Unauthorized)
                .with_message(format!("authentication failed: {why}"))
        };
        let now = self.clock.now();

        // Who is asking, and whether a refresh token may be issued for them.
        let (principal, generation, refresh) = match form.grant_type.as_deref() {
            Some("refresh_token") => {
                let token = form
                    .refresh_token
                    .take()
                    .ok_or_else(|| bad_request("grant_type=refresh_token needs refresh_token"))?;
                let verified = auth
                    .keys
                    .verify_refresh(&token, &auth.service, now)
                    .map_err(|why| unauthorized(&why))?;
                if !self
                    .still_signed_in(
                        &settings,
                        &verified.principal,
                        &verified.generation,
                        &verified.password,
                        &verified.fingerprint,
                    )
                    .await?
                {
                    return Err(unauthorized(
                        "the refresh token's user or password is no longer valid",
                    ));
                }
                (verified.principal, verified.generation, None)
            }
            Some("password") | None => {
                let credentials = match (form.username.take(), form.password.take()) {
                    (Some(username), Some(password)) => Some((username, password)),
                    (None, None) => match request.headers().get(http::header::AUTHORIZATION) {
                        None => None,
                        Some(value) => match secret::parse_authorization(value.as_bytes()) {
                            Ok(Credentials::Basic { username, password }) => {
                                Some((username, password))
                            }
                            Ok(Credentials::Bearer(_)) => {
                                return Err(unauthorized(
                                    "the token service takes Basic credentials or a refresh token",
                                ));
                            }
                            Err(why) => return Err(unauthorized(why)),
                        },
                    },
                    _ => return Err(bad_request("username and password go together")),
                };
                if form.grant_type.is_some() && credentials.is_none() {
                    return Err(bad_request(
                        "grant_type=password needs username and password",
                    ));
                }
                match credentials {
                    None => (Principal::Anonymous, String::new(), None),
                    Some((username, password)) => {
                        let signed_in = self
                            .sign_in(&settings, &username, &password)
                            .await?
                            .ok_or_else(|| unauthorized("invalid username or password"))?;
                        let principal = signed_in.principal.clone();
                        let generation = signed_in.generation.clone();
                        (principal, generation, Some(signed_in))
                    }
                }
            }
            Some(other) => {
                return Err(bad_request(format!(
                    "unsupported grant_type {other:?} (password or refresh_token)"
                )));
            }
        };

        let permissions = self
            .permissions(&settings, &principal, &generation)
            .await?
            .ok_or_else(|| unauthorized("the principal may no longer act"))?;
        let access = grant(&scopes, &permissions, &principal);
        let token = auth
            .keys
            .issue_access(
                &principal,
                &generation,
                access,
                &auth.service,
                now,
                auth.token_seconds,
            )
            .map_err(Error::internal)?;
        // The registry refuses tokens longer than this; never hand out one it would refuse.
        if token.len() > MAX_TOKEN_BYTES {
            return Err(bad_request(format!(
                "the scopes asked for make a token of {} bytes, over the registry's limit of \
                 {MAX_TOKEN_BYTES}: ask for fewer or shorter scopes",
                token.len()
            )));
        }
        let mut body = json!({
            "token": token,
            "access_token": token,
            "expires_in": auth.token_seconds,
            "issued_at": issued_at(now),
        });
        if form.offline
            && let Some(signed_in) = refresh
        {
            let mut lifetime = auth.refresh_token_seconds;
            if let Some(expiry) = signed_in.expiry {
                lifetime = lifetime.min(expiry.saturating_sub(now));
            }
            body["refresh_token"] = auth
                .keys
                .issue_refresh(
                    &principal,
                    &generation,
                    (&signed_in.password, &signed_in.fingerprint),
                    &auth.service,
                    now,
                    lifetime,
                )
                .map_err(Error::internal)?
                .into();
        }
        let mut response = json_response(StatusCode::OK, serde_json::to_vec(&body).unwrap());
        response.headers_mut().insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-store"),
        );
        Ok(response)
    }

    pub fn jwks(&self) -> Response<Vec<u8>> {
        let mut response = json_response(
            StatusCode::OK,
            serde_json::to_vec(&self.config.auth.keys.jwks()).unwrap(),
        );
        response.headers_mut().insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("public, max-age=300"),
        );
        response
    }
}

fn issued_at(now: u64) -> String {
    jiff::Timestamp::from_second(now as i64)
        .map(|t| t.to_string())
        .unwrap_or_default()
}
