//! `mailtrail bounce classify PATH...`: classifies raw messages (files, or folders of them)
//! and prints one JSON object per line and recipient (docs/inbound.md), in file order; the files
//! are shared among the machine's cores.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;

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

/// Files classified per round: each round is shared among the cores, then printed in order.
const ROUND: usize = 4096;

pub fn classify(paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let files = files(paths)?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for round in files.chunks(ROUND) {
        let share = round.len().div_ceil(threads);
        let printed: Vec<anyhow::Result<Vec<u8>>> = std::thread::scope(|scope| {
            let workers: Vec<_> = round
                .chunks(share)
                .map(|files| scope.spawn(move || lines(files)))
                .collect();
            workers
                .into_iter()
                .map(|worker| worker.join().expect("classifying never panics"))
                .collect()
        });
        for lines in printed {
            out.write_all(&lines?)?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// One output line (docs/inbound.md).
#[derive(Serialize)]
struct Line<'a> {
    file: &'a str,
    index: usize,
    recipient: &'a Option<String>,
    action: &'a Option<mailtrail_bounce::Action>,
    status: &'a Option<String>,
    reply_code: Option<u16>,
    reason: &'a str,
    hard_bounce: bool,
    feedback_type: &'a Option<String>,
    diagnostic: &'a Option<String>,
}

/// The JSON lines of `files`, in order.
fn lines(files: &[PathBuf]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    for file in files {
        let raw = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        let report = mailtrail_bounce::classify(&raw);
        let name = display(file);
        for (index, r) in report.recipients.iter().enumerate() {
            let line = Line {
                file: &name,
                index: index + 1,
                recipient: &r.recipient,
                action: &r.action,
                status: &r.status,
                reply_code: r.reply_code,
                reason: r.reason.as_str(),
                hard_bounce: r.hard_bounce,
                feedback_type: &r.feedback_type,
                diagnostic: &r.diagnostic,
            };
            serde_json::to_writer(&mut out, &line)?;
            out.push(b'\n');
        }
    }
    Ok(out)
}

fn display(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}
