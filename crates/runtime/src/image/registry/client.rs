//! The HTTP side of [`Registry`]: one exchange, authentication, redirects, fallback
//! across endpoints. The verbs (`manifest.rs`, `blob.rs`) are built on these.
//!
//! ```text
//! send(request)
//!   Authorization: cached token for (host, scope) | Basic if the host asked for it
//!   -> 401 + WWW-Authenticate -> token from the realm (or Basic) -> the request once more
//! follow(request)                    GET/HEAD: redirects, each resolved against the last URL;
//!                                    the Authorization header only goes to the endpoint's host
//! on_pull_endpoints(step, repo, f)   mirrors in order (any failure: next), then the origin
//! ```

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Instant;

use base64::Engine as _;
use ureq::http::{self, Method, Response};
use ureq::{Agent, Body, SendBody};

use super::body::{self, header, read_limited};
use super::challenge::{self, Challenge};
use super::config::Credentials;
use super::endpoint::{self, Endpoint};
use super::error::{RegistryError, describe_error_body};
use super::token::{self, TOKEN_BODY_LIMIT, TokenCache};
use super::url::Url;
use super::{Registry, tls};

/// Redirects followed for one request.
pub(crate) const MAX_REDIRECTS: u32 = 5;

/// What a request sends.
pub(crate) enum Payload<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// A body of exactly this many bytes, streamed; it cannot be sent twice.
    Reader(&'a mut dyn Read, u64),
}

/// One request to a registry endpoint.
pub(crate) struct Request<'a> {
    pub step: &'static str,
    pub method: Method,
    pub url: Url,
    /// The endpoint's host: credentials and tokens are only sent to it.
    pub auth_host: &'a str,
    /// The token scope (`repository:NAME:pull`), empty for none.
    pub scope: &'a str,
    pub headers: Vec<(http::HeaderName, String)>,
    pub payload: Payload<'a>,
}

/// Authentication state shared by every request of a client.
#[derive(Debug, Default)]
pub(crate) struct AuthState {
    tokens: TokenCache,
    /// The last challenge each host sent, answered up front on later requests.
    challenges: HashMap<String, Challenge>,
}

/// What the client knows and owns besides its configuration.
#[derive(Default)]
pub(crate) struct Shared {
    pub agents: Mutex<HashMap<String, Agent>>,
    pub auth: Mutex<AuthState>,
    pub system_roots: OnceLock<Arc<Vec<ureq::tls::Certificate<'static>>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded maps stay consistent whatever panicked while holding them.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Registry {
    /// The endpoints for pulling `repository`.
    pub(crate) fn pull_endpoints(
        &self,
        step: &'static str,
        repository: &str,
    ) -> Result<Vec<Endpoint>, RegistryError> {
        endpoint::pull_endpoints(
            &self.options.config,
            &self.registry,
            repository,
            self.options.plain_http,
        )
        .map_err(|e| RegistryError::Protocol {
            step,
            host: self.registry.clone(),
            reason: e.to_string(),
        })
    }

    /// The endpoint for pushing to `repository`: the origin.
    pub(crate) fn push_endpoint(
        &self,
        step: &'static str,
        repository: &str,
    ) -> Result<Endpoint, RegistryError> {
        let api = endpoint::origin(
            &self.options.config,
            &self.registry,
            self.options.plain_http,
        )
        .map_err(|e| RegistryError::Protocol {
            step,
            host: self.registry.clone(),
            reason: e.to_string(),
        })?;
        Ok(Endpoint {
            api,
            repository: repository.to_string(),
            mirror: false,
        })
    }

    /// Runs `f` against each pull endpoint until one succeeds. A mirror's failure of any
    /// kind falls through to the next endpoint (logged); the origin's is returned.
    pub(crate) fn on_pull_endpoints<T>(
        &self,
        step: &'static str,
        repository: &str,
        mut f: impl FnMut(&Endpoint) -> Result<T, RegistryError>,
    ) -> Result<T, RegistryError> {
        let endpoints = self.pull_endpoints(step, repository)?;
        let mut last = None;
        for ep in &endpoints {
            match f(ep) {
                Ok(v) => return Ok(v),
                Err(e) if ep.mirror => {
                    tracing::warn!(step, mirror = %ep.api, error = %e, "mirror failed; trying the next endpoint");
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        // The origin is always last, so this is reached only when every endpoint was a
        // mirror, which `pull_endpoints` never returns; kept total all the same.
        Err(last.unwrap_or_else(|| RegistryError::Protocol {
            step,
            host: self.registry.clone(),
            reason: "no endpoint to try".into(),
        }))
    }

    /// Whether plain HTTP may be used to `authority`.
    pub(crate) fn allows_plain_http(&self, authority: &str) -> bool {
        self.options.plain_http || self.options.config.allows_plain_http(authority)
    }

    fn agent(&self, url: &Url) -> Result<Agent, RegistryError> {
        let key = url.origin();
        if let Some(agent) = lock(&self.shared.agents).get(&key) {
            return Ok(agent.clone());
        }
        let t = &self.options.timeouts;
        let mut config = Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .timeout_connect(Some(t.connect))
            .timeout_per_read(Some(t.read))
            .timeout_per_write(Some(t.read))
            .user_agent(self.options.user_agent.as_str())
            .max_idle_connections_per_host(4);
        if url.is_https() {
            let roots = self.shared.system_roots.get_or_init(tls::system_roots);
            let files = self
                .options
                .config
                .host(url.authority())
                .and_then(|h| h.tls.as_ref());
            config = config.tls_config(tls::tls_config(url.authority(), files, roots)?);
        }
        let agent = config.build().new_agent();
        lock(&self.shared.agents).insert(key, agent.clone());
        Ok(agent)
    }

    /// One HTTP exchange, no authentication logic, no redirects.
    pub(crate) fn exchange(
        &self,
        req: &mut Request<'_>,
        authorization: Option<&str>,
    ) -> Result<Response<Body>, RegistryError> {
        let host = req.url.authority().to_string();
        if !req.url.is_https() && !self.allows_plain_http(&host) {
            return Err(RegistryError::PlainHttp {
                step: req.step,
                url: req.url.to_string(),
            });
        }
        let agent = self.agent(&req.url)?;
        let mut builder = http::Request::builder()
            .method(req.method.clone())
            .uri(req.url.to_string());
        for (name, value) in &req.headers {
            builder = builder.header(name, value);
        }
        if let Some(a) = authorization {
            builder = builder.header(http::header::AUTHORIZATION, a);
        }
        let bad_request = |e: http::Error| RegistryError::Protocol {
            step: req.step,
            host: host.clone(),
            reason: e.to_string(),
        };
        let step = req.step;
        let connect = |source| RegistryError::Connect {
            step,
            host: host.clone(),
            source: Box::new(source),
        };
        match &mut req.payload {
            Payload::Empty if req.method == Method::GET || req.method == Method::HEAD => agent
                .run(builder.body(()).map_err(bad_request)?)
                .map_err(connect),
            Payload::Empty => agent
                .run(builder.body(&[][..]).map_err(bad_request)?)
                .map_err(connect),
            Payload::Bytes(b) => agent
                .run(builder.body(*b).map_err(bad_request)?)
                .map_err(connect),
            Payload::Reader(reader, len) => {
                let mut source = body::ExactReader {
                    inner: &mut **reader,
                    left: *len,
                    failure: None,
                };
                let request = builder
                    .header(http::header::CONTENT_LENGTH, len.to_string())
                    .body(SendBody::from_reader(&mut source))
                    .map_err(bad_request)?;
                let result = agent.run(request);
                if let Some(source) = source.failure.take() {
                    return Err(RegistryError::Source { step, host, source });
                }
                result.map_err(connect)
            }
        }
    }

    /// One request, authenticated: answers a 401's challenge and sends it once more.
    /// Other statuses are the caller's to judge.
    pub(crate) fn send(&self, req: &mut Request<'_>) -> Result<Response<Body>, RegistryError> {
        let host = req.url.authority().to_string();
        if host != req.auth_host {
            return self.exchange(req, None);
        }
        let (authorization, fresh) = self.authorization(req.step, &host, req.scope)?;
        let response = self.exchange(req, authorization.as_deref())?;
        let replayable = !matches!(req.payload, Payload::Reader(..));
        if response.status() != 401 || fresh || !replayable {
            return Ok(response);
        }
        let headers: Vec<&str> = response
            .headers()
            .get_all(http::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let challenge = challenge::choose(&headers).map_err(|e| RegistryError::Auth {
            step: req.step,
            host: host.clone(),
            reason: e.to_string(),
        })?;
        if challenge == Challenge::Basic && authorization.is_some() {
            // The configured credentials were refused: asking again changes nothing.
            return Ok(response);
        }
        {
            let mut auth = lock(&self.shared.auth);
            auth.tokens.remove(&host, req.scope);
            auth.challenges.insert(host.clone(), challenge);
        }
        drop(response);
        let (authorization, _) = self.authorization(req.step, &host, req.scope)?;
        if authorization.is_none() {
            return Err(RegistryError::Auth {
                step: req.step,
                host,
                reason: "the registry asks for a user name and password; registries.yaml has none for this host".into(),
            });
        }
        self.exchange(req, authorization.as_deref())
    }

    /// The Authorization header for `host` and `scope`, and whether a token was fetched
    /// for it just now (a 401 then is final).
    fn authorization(
        &self,
        step: &'static str,
        host: &str,
        scope: &str,
    ) -> Result<(Option<String>, bool), RegistryError> {
        let challenge = {
            let auth = lock(&self.shared.auth);
            if let Some(t) = auth.tokens.get(host, scope, Instant::now()) {
                return Ok((Some(format!("Bearer {t}")), false));
            }
            auth.challenges.get(host).cloned()
        };
        let credentials = self.options.config.host(host).and_then(|h| h.auth.as_ref());
        match challenge {
            None => Ok((None, false)),
            Some(Challenge::Basic) => match credentials {
                Some(Credentials::Basic { username, password }) => {
                    let encoded = base64::engine::general_purpose::STANDARD
                        .encode(format!("{username}:{password}"));
                    Ok((Some(format!("Basic {encoded}")), false))
                }
                _ => Ok((None, false)),
            },
            Some(Challenge::Bearer {
                realm,
                service,
                scope: asked,
            }) => {
                // A request without a scope of its own (ping) asks for the challenge's.
                let wanted = if scope.is_empty() {
                    asked.unwrap_or_default()
                } else {
                    scope.to_string()
                };
                let token =
                    self.fetch_token(step, host, &realm, service.as_deref(), &wanted, credentials)?;
                let mut auth = lock(&self.shared.auth);
                auth.tokens.insert(host, scope, &token, Instant::now());
                Ok((Some(format!("Bearer {}", token.value)), true))
            }
        }
    }

    /// Asks the token server named by a challenge for a token.
    fn fetch_token(
        &self,
        step: &'static str,
        registry_host: &str,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        credentials: Option<&Credentials>,
    ) -> Result<token::Token, RegistryError> {
        let step_token = "fetch token";
        let realm_url = Url::parse(realm).map_err(|e| RegistryError::Auth {
            step,
            host: registry_host.to_string(),
            reason: format!("token realm {:.200?}: {e}", realm),
        })?;
        let host = realm_url.authority().to_string();
        // A realm over plain HTTP needs its host allowed plain HTTP like any other host
        // (`exchange` checks): credentials are not sent in clear to a host nobody named.
        let scopes: Vec<&str> = scope.split(' ').filter(|s| !s.is_empty()).collect();
        let mut req = Request {
            step: step_token,
            method: Method::GET,
            url: realm_url.clone(),
            auth_host: "",
            scope: "",
            headers: Vec::new(),
            payload: Payload::Empty,
        };
        let form;
        let authorization = match credentials {
            Some(Credentials::IdentityToken(refresh)) => {
                // OAuth2 refresh-token grant, as Docker does with an identity token.
                let mut pairs = vec![
                    ("grant_type", "refresh_token"),
                    ("client_id", "moor"),
                    ("refresh_token", refresh.as_str()),
                ];
                if let Some(s) = service {
                    pairs.push(("service", s));
                }
                pairs.extend(scopes.iter().map(|s| ("scope", *s)));
                form = super::url::form(&pairs);
                req.method = Method::POST;
                req.headers.push((
                    http::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded".into(),
                ));
                req.payload = Payload::Bytes(form.as_bytes());
                None
            }
            Some(Credentials::Basic { username, password }) => {
                let encoded = base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{password}"));
                Some(format!("Basic {encoded}"))
            }
            None => None,
        };
        if req.method == Method::GET {
            if let Some(s) = service {
                req.url = req.url.with_query("service", s);
            }
            for s in &scopes {
                req.url = req.url.with_query("scope", s);
            }
        }
        let response = self.exchange(&mut req, authorization.as_deref())?;
        let status = response.status().as_u16();
        let body = read_limited(step_token, &host, response, TOKEN_BODY_LIMIT)?;
        if status != 200 {
            return Err(RegistryError::Status {
                step: step_token,
                host,
                status,
                message: describe_error_body(&body),
            });
        }
        token::parse_answer(&body).map_err(|reason| RegistryError::Auth {
            step: step_token,
            host,
            reason,
        })
    }

    /// A GET or HEAD, following redirects. Returns the response and the URL that gave it.
    pub(crate) fn follow(
        &self,
        mut req: Request<'_>,
    ) -> Result<(Response<Body>, Url), RegistryError> {
        for _ in 0..=MAX_REDIRECTS {
            let response = self.send(&mut req)?;
            let status = response.status();
            if !status.is_redirection() || status == 304 {
                return Ok((response, req.url));
            }
            let host = req.url.authority().to_string();
            let location = header(&response, http::header::LOCATION).ok_or_else(|| {
                RegistryError::Protocol {
                    step: req.step,
                    host: host.clone(),
                    reason: format!("HTTP {status} without a Location"),
                }
            })?;
            let next = req
                .url
                .join(&location)
                .map_err(|e| RegistryError::Protocol {
                    step: req.step,
                    host: host.clone(),
                    reason: format!("Location {location:.200?}: {e}"),
                })?;
            tracing::debug!(step = req.step, from = %req.url, to = %next, "redirect");
            req.url = next;
        }
        Err(RegistryError::TooManyRedirects {
            step: req.step,
            host: req.url.authority().to_string(),
            limit: MAX_REDIRECTS,
        })
    }
}
