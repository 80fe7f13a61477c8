//! The service's health endpoints: `/healthz` (200 when the database answers), `/livez` (the
//! process answers, so it can serve) and `/readyz` (the database answers within a moment and
//! every part of the service is running, as [`Readiness`] tells).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;

/// The answer of `/healthz`.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok` or `unavailable`.
    #[schema(example = "ok")]
    pub status: &'static str,
    /// Why it is unavailable; absent when `ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<&'static str>,
}

#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "service",
    security(()),
    responses(
        (status = 200, description = "the database answers", body = Health),
        (status = 503, description = "the database does not answer", body = Health),
    )
)]
pub async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    match state.store.ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(Health {
                status: "ok",
                detail: None,
            }),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "health check: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Health {
                    status: "unavailable",
                    detail: Some("the database does not answer"),
                }),
            )
        }
    }
}

/// Liveness: answering at all shows the runtime is not stuck, and nothing a restart would cure
/// is asked, so no database query (a database outage is for `/readyz` to say).
#[utoipa::path(
    get,
    path = "/livez",
    operation_id = "livez",
    tag = "service",
    security(()),
    responses((status = 200, description = "the process can serve", body = Health))
)]
pub async fn livez() -> Json<Health> {
    Json(Health {
        status: "ok",
        detail: None,
    })
}

/// How long `/readyz` waits for the database: a probe must answer well within its own
/// timeout, and a database slower than this is not ready for traffic either.
const DATABASE_TIMEOUT: Duration = Duration::from_secs(2);

/// Which parts of the service are not running, as the service's supervisor sees them; shared
/// between it and `/readyz`. A fresh one has nothing to report (no part has ended).
#[derive(Clone, Default)]
pub struct Readiness(Arc<Mutex<Parts>>);

#[derive(Default)]
struct Parts {
    /// The parts that ended while the service was meant to be running.
    ended: Vec<&'static str>,
    /// The service was asked to stop, or is stopping because a part ended.
    stopping: bool,
}

impl Readiness {
    /// `part` (its name in logs, such as `delivery worker`) ended without being asked to.
    pub fn ended(&self, part: &'static str) {
        self.parts().ended.push(part);
    }

    /// The service is stopping: new work belongs elsewhere.
    pub fn stopping(&self) {
        self.parts().stopping = true;
    }

    fn failed_checks(&self) -> Vec<FailedCheck> {
        let parts = self.parts();
        let ended = parts.ended.iter().map(|part| FailedCheck {
            check: (*part).to_owned(),
            detail: "not running".to_owned(),
        });
        let stopping = parts.stopping.then(|| FailedCheck {
            check: "service".to_owned(),
            detail: "stopping".to_owned(),
        });
        ended.chain(stopping).collect()
    }

    fn parts(&self) -> std::sync::MutexGuard<'_, Parts> {
        // The guarded data is always whole: a panic elsewhere cannot leave it half-written.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The answer of `/readyz`.
#[derive(Serialize, ToSchema)]
pub struct Ready {
    /// `ok` or `unavailable`.
    #[schema(example = "ok")]
    pub status: &'static str,
    /// Each check that failed; absent when `ok`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<FailedCheck>,
}

/// One failed readiness check. The cause of a part's end is in the service's log, not here:
/// this endpoint needs no key.
#[derive(Serialize, ToSchema)]
pub struct FailedCheck {
    /// `database`, `service`, or the name of a part of the service (`delivery worker`, `http
    /// server`, `inbound smtp`, …).
    #[schema(example = "database")]
    pub check: String,
    /// What is wrong with it.
    #[schema(example = "no answer within 2 s")]
    pub detail: String,
}

#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "service",
    security(()),
    responses(
        (status = 200, description = "the database answers and every part of the service runs", body = Ready),
        (status = 503, description = "the database does not answer in time, a part of the service (a listener, a loop) is not running, or the service is stopping", body = Ready),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Ready>) {
    let database = match tokio::time::timeout(DATABASE_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => None,
        Ok(Err(_)) => Some("does not answer"),
        Err(_) => Some("no answer within 2 s"),
    };
    let failed: Vec<FailedCheck> = database
        .map(|detail| FailedCheck {
            check: "database".to_owned(),
            detail: detail.to_owned(),
        })
        .into_iter()
        .chain(state.readiness.failed_checks())
        .collect();
    if failed.is_empty() {
        (
            StatusCode::OK,
            Json(Ready {
                status: "ok",
                failed,
            }),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Ready {
                status: "unavailable",
                failed,
            }),
        )
    }
}
