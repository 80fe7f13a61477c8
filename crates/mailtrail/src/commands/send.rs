//! `mailtrail send`: queues one email through the same path as `POST /v1/emails`.

use std::process::ExitCode;

use anyhow::bail;
use mailtrail_outbound::submit::{self, Request, Senders, SubmitError};
use mailtrail_store::Store;

pub async fn run(
    store: &Store,
    senders: Senders,
    account: &str,
    request: Request,
) -> anyhow::Result<ExitCode> {
    if !store.account_exists(account).await? {
        bail!("no account {account}");
    }
    let accepted = match submit::submit_with(store, senders, account, request, None, |_| {
        String::new()
    })
    .await
    {
        Ok(accepted) => accepted,
        Err(SubmitError::Invalid { field, message }) => bail!("{field}: {message}"),
        Err(SubmitError::Store(e)) => return Err(e.into()),
    };
    if let Some(refusal) = accepted.refused.first() {
        bail!("not sent: {}", refusal.message);
    }
    let queued = &accepted.queued[0];
    match queued.dropped {
        Some(reason) => println!(
            "email {} dropped: the address is blocked ({reason})",
            queued.id
        ),
        None => println!("email {} queued", queued.id),
    }
    Ok(ExitCode::SUCCESS)
}
