//! Where a request came from, as the sign-in throttle counts it, and whether the browser
//! reached the service over https (so cookies must be `Secure`). Both follow the tracking
//! endpoints' rule for a reverse proxy: its `X-Forwarded-*` headers are believed only when the
//! peer is on this machine. `Host` decides nothing: a client may send any.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use mailtrail_api::track::{client_address, forwarded_https};
use mailtrail_store::Store;
use tokio::sync::OnceCell;

use crate::csrf::FormKey;
use crate::error::WebError;
use crate::throttle::Limits;

/// What the UI knows of the installation, shared by every request.
#[derive(Debug)]
pub(crate) struct Site {
    /// The configured public URL is `https://`.
    pub https: bool,
    pub limits: Limits,
    /// Signs sign-in forms; read from the store on first use ([`Site::form_key`]).
    pub forms: OnceCell<FormKey>,
}

impl Site {
    /// The key of sign-in form tokens: the installation's `login_forms` secret, the same on
    /// every node, read once.
    pub(crate) async fn form_key(&self, store: &Store) -> Result<&FormKey, WebError> {
        self.forms
            .get_or_try_init(|| async {
                Ok(FormKey::new(&store.shared_secret("login_forms").await?))
            })
            .await
    }
}

/// The request's client, and the site it reached.
pub(crate) struct Client {
    /// `None` without a connection (tests driving the router directly).
    pub address: Option<IpAddr>,
    /// Cookies set on this answer carry `Secure`.
    pub secure: bool,
    pub site: Arc<Site>,
}

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, WebError> {
        let site = parts
            .extensions
            .get::<Arc<Site>>()
            .cloned()
            .ok_or_else(|| WebError::Internal("the web router has no site settings".into()))?;
        Ok(Client {
            address: client_address(parts),
            secure: site.https || forwarded_https(parts),
            site,
        })
    }
}
