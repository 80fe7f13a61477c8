//! `mailtrail lead import FILE.csv`: reads and checks every row first, then writes them all
//! in one transaction, so a bad file imports nothing (unless `--skip-invalid`). The file is
//! read by `mailtrail_store::lead_csv`, as the web UI's import reads it.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use mailtrail_store::Store;
use mailtrail_store::lead_csv::{self, Parsed};

/// Errors printed before "and N more".
const SHOWN_ERRORS: usize = 20;

pub async fn run(
    store: &Store,
    file: &Path,
    account: &str,
    skip_invalid: bool,
) -> anyhow::Result<ExitCode> {
    if !store.account_exists(account).await? {
        bail!("no account {account}");
    }
    let input =
        std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let Parsed { leads, errors } = lead_csv::parse(std::io::BufReader::new(input))
        .with_context(|| format!("{} cannot be imported", file.display()))?;
    for error in errors.iter().take(SHOWN_ERRORS) {
        eprintln!("{}: line {}: {}", file.display(), error.line, error.message);
    }
    if errors.len() > SHOWN_ERRORS {
        eprintln!("… and {} more invalid lines", errors.len() - SHOWN_ERRORS);
    }
    if !errors.is_empty() && !skip_invalid {
        eprintln!(
            "nothing imported: {} invalid line(s); fix them or pass --skip-invalid",
            errors.len()
        );
        return Ok(ExitCode::FAILURE);
    }

    let bar = ProgressBar::new(leads.len() as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} leads {per_sec} eta {eta}")
            .expect("valid template"),
    );
    let summary = store
        .import_leads(account, &leads, |n| bar.set_position(n as u64))
        .await?;
    bar.finish_and_clear();
    println!(
        "imported {} leads: {} created, {} updated",
        summary.created + summary.updated,
        summary.created,
        summary.updated
    );
    if !errors.is_empty() {
        let lines: Vec<String> = errors.iter().map(|e| e.line.to_string()).collect();
        println!(
            "skipped {} invalid line(s): {}",
            errors.len(),
            lines.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
