//! `mailtrail check`: proves the stored stages equal the derivation from the events.

use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};
use mailtrail_store::Store;

pub async fn run(store: &Store) -> anyhow::Result<ExitCode> {
    let spinner = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} checked {pos} emails").expect("valid template"),
    );
    let mismatches = store.check_stages(|n| spinner.set_position(n)).await?;
    let checked = spinner.position();
    spinner.finish_and_clear();
    for m in &mismatches {
        println!(
            "email {}: stored stage {} but its events say {}",
            m.email_id, m.stored, m.derived
        );
    }
    if mismatches.is_empty() {
        println!("checked {checked} emails: every stored stage matches its events");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("checked {checked} emails: {} mismatched", mismatches.len());
        Ok(ExitCode::FAILURE)
    }
}
