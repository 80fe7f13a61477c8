//! Faults on request, for tests of supervision only: compiled in with the `test-hooks` cargo
//! feature (off by default, so never in a release build) and acted on only when their
//! environment variable is set.

use std::time::Duration;

/// The variable: seconds after the delivery loop starts when it panics.
const PANIC_DELIVERY_AFTER: &str = "MAILTRAIL_TEST_PANIC_DELIVERY_AFTER";

/// The delivery loop `run`, which panics inside its own task `MAILTRAIL_TEST_PANIC_DELIVERY_AFTER`
/// seconds after it starts, when that is set.
pub async fn panic_delivery(run: impl Future<Output = ()>) {
    let Ok(after) = std::env::var(PANIC_DELIVERY_AFTER) else {
        return run.await;
    };
    let seconds: f64 = after
        .parse()
        .unwrap_or_else(|_| panic!("{PANIC_DELIVERY_AFTER}={after:?} is not a number of seconds"));
    tokio::select! {
        () = run => {}
        () = tokio::time::sleep(Duration::from_secs_f64(seconds)) => {
            panic!("test hook: the delivery loop panics after {after} s ({PANIC_DELIVERY_AFTER})")
        }
    }
}
