//! Sending protection (issue #6, as hosted providers do it): every `check_interval`, each
//! account's emails of the last `window` are counted, and an account whose hard-bounce or
//! complaint rate is over its threshold — once it has sent at least `min_sent` emails in the
//! window, so a handful of early bounces cannot trip it — has its sending paused. Paused
//! emails stay queued (nothing is dropped) until an admin resumes sending.

use std::future::Future;
use std::time::Duration;

use mailtrail_store::{RecentRates, Store, now_ms};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProtectionConfig {
    pub enabled: bool,
    /// How far back the rates look.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Emails sent in the window before the rates count.
    pub min_sent: i64,
    /// Hard bounces per email sent (Amazon SES pauses at 10 %).
    pub max_bounce_rate: f64,
    /// Complaints per email sent: 0.3 %, the rate above which Gmail tells bulk senders
    /// their mail will be rejected or sent to spam (its 2024 sender requirements).
    pub max_complaint_rate: f64,
    #[serde(with = "humantime_serde")]
    pub check_interval: Duration,
}

impl Default for ProtectionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            window: Duration::from_secs(24 * 3600),
            min_sent: 200,
            max_bounce_rate: 0.10,
            max_complaint_rate: 0.003,
            check_interval: Duration::from_secs(60),
        }
    }
}

/// Why an account with these rates must stop sending, if it must.
pub fn verdict(rates: &RecentRates, config: &ProtectionConfig) -> Option<String> {
    if rates.sent < config.min_sent.max(1) {
        return None;
    }
    let sent = rates.sent as f64;
    let bounce = rates.hard_bounced as f64 / sent;
    let complaint = rates.complained as f64 / sent;
    if bounce > config.max_bounce_rate {
        Some(format!(
            "hard-bounce rate {:.1}% over the last {} ({} of {} emails) is above {:.1}%",
            bounce * 100.0,
            humantime::format_duration(config.window),
            rates.hard_bounced,
            rates.sent,
            config.max_bounce_rate * 100.0
        ))
    } else if complaint > config.max_complaint_rate {
        Some(format!(
            "complaint rate {:.2}% over the last {} ({} of {} emails) is above {:.2}%",
            complaint * 100.0,
            humantime::format_duration(config.window),
            rates.complained,
            rates.sent,
            config.max_complaint_rate * 100.0
        ))
    } else {
        None
    }
}

/// Checks every account now; returns the accounts paused by this check.
pub async fn check(
    store: &Store,
    config: &ProtectionConfig,
) -> Result<Vec<String>, mailtrail_store::StoreError> {
    let since = now_ms() - config.window.as_millis() as i64;
    let mut paused = Vec::new();
    for account in store.account_ids().await? {
        if store.sending_pause(&account).await?.is_some() {
            continue;
        }
        let rates = store.recent_rates(&account, since).await?;
        if let Some(reason) = verdict(&rates, config) {
            tracing::warn!(%account, %reason, "pausing the account's sending");
            store.pause_sending(&account, &reason).await?;
            paused.push(account);
        }
    }
    Ok(paused)
}

/// Checks every `check_interval` until `shutdown`.
pub async fn run(store: Store, config: ProtectionConfig, shutdown: impl Future<Output = ()>) {
    if !config.enabled {
        return;
    }
    tokio::pin!(shutdown);
    loop {
        if let Err(e) = check(&store, &config).await {
            tracing::warn!(error = %e, "sending protection check failed; trying again later");
        }
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(config.check_interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_only_over_a_threshold_and_after_enough_emails() {
        let config = ProtectionConfig::default();
        let rates = |sent, hard_bounced, complained| RecentRates {
            sent,
            hard_bounced,
            complained,
        };
        assert_eq!(
            verdict(&rates(100, 60, 0), &config),
            None,
            "too few emails yet"
        );
        assert_eq!(verdict(&rates(1000, 100, 3), &config), None, "at, not over");
        assert_eq!(
            verdict(&rates(199, 0, 199), &config),
            None,
            "under the minimum volume"
        );
        let bounce = verdict(&rates(1000, 101, 0), &config).unwrap();
        assert!(
            bounce.starts_with("hard-bounce rate 10.1% over the last 1day"),
            "{bounce}"
        );
        let complaint = verdict(&rates(1000, 0, 4), &config).unwrap();
        assert!(
            complaint.starts_with(
                "complaint rate 0.40% over the last 1day (4 of 1000 emails) is above 0.30%"
            ),
            "{complaint}"
        );
        let configured = ProtectionConfig {
            max_complaint_rate: 0.005,
            ..ProtectionConfig::default()
        };
        assert_eq!(
            verdict(&rates(1000, 0, 4), &configured),
            None,
            "configurable"
        );
    }
}
