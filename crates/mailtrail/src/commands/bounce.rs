//! `mailtrail bounce classify PATH...`: classifies raw messages (files, or folders of them)
//! and prints one JSON object per line and recipient (PRODUCT.md §8).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde_json::json;

/// Every file under `paths`, folders walked recursively, in a stable order.
fn files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("cannot read {}", path.display()))?
                .map(|e| e.map(|e| e.path()))
                .collect::<Result<_, _>>()?;
            entries.sort();
            found.extend(files(&entries)?);
        } else {
            found.push(path.clone());
        }
    }
    Ok(found)
}

pub fn classify(paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for file in files(paths)? {
        let raw =
            std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
        let report = mailtrail_bounce::classify(&raw);
        let name = display(&file);
        for (index, r) in report.recipients.iter().enumerate() {
            let line = json!({
                "file": name,
                "index": index + 1,
                "recipient": r.recipient,
                "action": r.action,
                "status": r.status,
                "reply_code": r.reply_code,
                "reason": r.reason.as_str(),
                "hard_bounce": r.hard_bounce,
                "feedback_type": r.feedback_type,
                "diagnostic": r.diagnostic,
            });
            writeln!(out, "{line}")?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn display(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}
