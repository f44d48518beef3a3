//! The member controllers the hub asks: each by name, its API's URL, the
//! token the hub holds for it and the CA its certificate chains to.

use std::path::PathBuf;
use std::time::Duration;

use bulkhead_api::v1::Problem;
use bulkhead_api::v1::hub::MemberAnswer;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ControllerError;
use crate::service::ServiceError;

/// How long a member may take to answer one request.
pub const MEMBER_TIMEOUT: Duration = Duration::from_secs(10);

/// One member cluster, from `--member NAME=URL,TOKEN[,CA_FILE]`.
#[derive(Clone)]
pub struct Member {
    /// The cluster's name, as identities and the hub's answers carry it.
    pub name: String,
    /// Its controller's API, `https://…` (plain `http://` on loopback only).
    pub url: String,
    token: String,
    ca: Option<PathBuf>,
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member").field("name", &self.name).field("url", &self.url).field("ca", &self.ca).finish()
    }
}

fn bad(spec: &str, why: impl std::fmt::Display) -> ControllerError {
    ControllerError::BadRequest(format!(
        "--member {spec:?}: {why} (expected NAME=URL,TOKEN[,CA_FILE]; TOKEN as @FILE reads it from a file)"
    ))
}

impl std::str::FromStr for Member {
    type Err = ControllerError;

    /// Parses `NAME=URL,TOKEN[,CA_FILE]`; a TOKEN of `@FILE` is read from
    /// that file, so it stays out of the process list.
    fn from_str(spec: &str) -> Result<Self, ControllerError> {
        let shown = spec.split(',').take(1).collect::<String>();
        let (name, rest) = spec.split_once('=').ok_or_else(|| bad(&shown, "no NAME="))?;
        bulkhead_policy::selector::check_value(name).map_err(|m| bad(&shown, format!("cluster name: {m}")))?;
        if name.is_empty() {
            return Err(bad(&shown, "the cluster name is empty"));
        }
        let mut parts = rest.split(',');
        let url = parts.next().unwrap_or_default().trim_end_matches('/').to_string();
        let token = parts.next().ok_or_else(|| bad(&shown, "no TOKEN"))?;
        let ca = parts.next().map(PathBuf::from);
        if parts.next().is_some() {
            return Err(bad(&shown, "too many fields"));
        }
        let parsed = reqwest::Url::parse(&url).map_err(|e| bad(&shown, format!("{url:?}: {e}")))?;
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(bad(&shown, "no user or password in the URL: the token is the credential"));
        }
        let host = parsed.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
        let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
        match parsed.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => {
                return Err(bad(
                    &shown,
                    format!("{url:?}: a member is reached over https (plain http on loopback only)"),
                ));
            }
        }
        let token = match token.strip_prefix('@') {
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| bad(&shown, format!("reading the token file {path}: {e}")))?
                .trim()
                .to_string(),
            None => token.to_string(),
        };
        if token.is_empty() {
            return Err(bad(&shown, "the token is empty"));
        }
        Ok(Self { name: name.to_string(), url, token, ca })
    }
}

/// The hub's connections to its members.
#[derive(Debug, Clone)]
pub struct Members {
    members: Vec<(Member, reqwest::Client)>,
}

/// Why a member did not do what was asked.
fn member_error(cluster: &str, status: u16, problem: Option<Problem>) -> ServiceError {
    let field = problem.as_ref().and_then(|p| p.field.clone());
    let detail = problem.map(|p| p.detail).unwrap_or_else(|| format!("answered HTTP {status}"));
    let detail = format!("cluster {cluster}: {detail}");
    match status {
        400 => ServiceError::BadRequest { object: Some(format!("cluster {cluster}")), field, detail },
        403 => ServiceError::Forbidden { detail },
        404 => ServiceError::NotFound { object: format!("cluster {cluster}"), detail },
        409 => ServiceError::Conflict { object: format!("cluster {cluster}"), detail },
        401 => ServiceError::Unavailable(format!("cluster {cluster} refused the hub's token (check --member)")),
        _ => ServiceError::Unavailable(detail),
    }
}

impl Members {
    /// Builds one client per member, trusting its CA file when given (the
    /// system's roots otherwise).
    pub fn new(members: Vec<Member>) -> Result<Self, ControllerError> {
        let mut out = Vec::new();
        for m in members {
            if out.iter().any(|(o, _): &(Member, _)| o.name == m.name) {
                return Err(ControllerError::BadRequest(format!("--member {}: named twice", m.name)));
            }
            // A member answers itself: a redirect is not followed (the
            // token would go wherever it points).
            let mut b = reqwest::Client::builder()
                .use_rustls_tls()
                .timeout(MEMBER_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none());
            if let Some(ca) = &m.ca {
                let pem = std::fs::read(ca).map_err(|source| ControllerError::Io {
                    action: "reading a member's CA",
                    path: ca.clone(),
                    source,
                })?;
                let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| {
                    ControllerError::BadRequest(format!("{}: not a PEM certificate: {e}", ca.display()))
                })?;
                b = b.add_root_certificate(cert);
            }
            let client = b.build().map_err(|e| ControllerError::Serve { what: "hub", message: e.to_string() })?;
            out.push((m, client));
        }
        if out.is_empty() {
            return Err(ControllerError::BadRequest("the hub needs at least one --member".into()));
        }
        Ok(Self { members: out })
    }

    /// The members, in the order given.
    pub fn list(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().map(|(m, _)| m)
    }

    async fn call<T: DeserializeOwned>(
        m: &Member,
        client: &reqwest::Client,
        method: reqwest::Method,
        path: &str,
        body: Option<&(impl Serialize + Sync)>,
    ) -> Result<T, ServiceError> {
        let mut req = client.request(method, format!("{}{path}", m.url)).bearer_auth(&m.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp =
            req.send().await.map_err(|e| ServiceError::Unavailable(format!("cluster {} at {}: {e}", m.name, m.url)))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ServiceError::Unavailable(format!("cluster {}: reading its answer: {e}", m.name)))?;
        if !(200..300).contains(&status) {
            return Err(member_error(&m.name, status, serde_json::from_slice(&bytes).ok()));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            ServiceError::Unavailable(format!("cluster {}: its answer is not what the hub expects: {e}", m.name))
        })
    }

    /// Asks every member the same read at once; each answers or says why not.
    pub async fn read_all<T: DeserializeOwned>(&self, path: &str) -> Vec<MemberAnswer<T>> {
        let asks = self.members.iter().map(|(m, c)| async move {
            match Self::call::<T>(m, c, reqwest::Method::GET, path, None::<&()>).await {
                Ok(answer) => MemberAnswer { cluster: m.name.clone(), answer: Some(answer), error: None },
                Err(e) => MemberAnswer { cluster: m.name.clone(), answer: None, error: Some(e.to_string()) },
            }
        });
        futures::future::join_all(asks).await
    }

    /// Sends one request to the member named `cluster`.
    pub async fn send<T: DeserializeOwned>(
        &self,
        cluster: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&(impl Serialize + Sync)>,
    ) -> Result<T, ServiceError> {
        let Some((m, c)) = self.members.iter().find(|(m, _)| m.name == cluster) else {
            let known: Vec<&str> = self.list().map(|m| m.name.as_str()).collect();
            return Err(ServiceError::NotFound {
                object: format!("cluster {cluster}"),
                detail: format!("no member cluster {cluster:?}; the hub knows {}", known.join(", ")),
            });
        };
        Self::call(m, c, method, path, body).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_specs_are_checked() {
        let m: Member = "east=https://east.example:8443/,t0k".parse().unwrap();
        assert_eq!((m.name.as_str(), m.url.as_str(), m.token.as_str()), ("east", "https://east.example:8443", "t0k"));
        assert!(!format!("{m:?}").contains("t0k"), "the token is never printed");
        let local: Member = "lab=http://127.0.0.1:9000,t,/tmp/ca.pem".parse().unwrap();
        assert_eq!(local.ca, Some(PathBuf::from("/tmp/ca.pem")));
        for (spec, want) in [
            ("east", "no NAME="),
            ("east=https://e", "no TOKEN"),
            ("east=http://e.example,t", "over https"),
            ("east=http://127.0.0.1.evil.example,t", "over https"),
            ("east=http://localhost.evil.example,t", "over https"),
            ("east=http://localhost@evil.example,t", "no user or password"),
            ("east=ftp://e.example,t", "over https"),
            ("Bad Name=https://e,t", "cluster name"),
            ("=https://e,t", "cluster name"),
            ("east=https://e,", "token is empty"),
            ("east=https://e,@/nonexistent/token", "reading the token file"),
            ("east=https://e,t,ca,x", "too many fields"),
        ] {
            let e = spec.parse::<Member>().unwrap_err().to_string();
            assert!(e.contains(want) && !e.contains(",t,"), "{spec}: {e}");
        }
        let twice = vec![m.clone(), m];
        assert!(Members::new(twice).unwrap_err().to_string().contains("named twice"));
        assert!(Members::new(vec![]).unwrap_err().to_string().contains("at least one"));
    }
}
