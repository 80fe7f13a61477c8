//! The `mailtrail` binary: parses the command line, loads the configuration, and hands off
//! to one of [`commands`]. Everything with behaviour of its own lives in the library crates.

mod access_log;
mod cli;
mod commands;
mod config;
mod metrics;
mod service;
mod submission;

use clap::Parser;

/// jemalloc rather than glibc's malloc. Each thread keeps a cache of small blocks, so the
/// runtime threads and SQLite's writer do not take turns on one lock for every request's
/// allocations. glibc, held to one arena for memory, spent the pixel's request path in
/// arena locks and in consolidating freed blocks whenever hyper took a new 8 KiB read
/// buffer; with an arena per thread it peaked at 206 MB with 1,000,000 emails queued.
/// Pixel runs (README, "Where it stands"): ~70k → ~82k requests/s, 16.5 → 13.9 µs of CPU
/// per request.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read at its start-up (`_RJEM_MALLOC_CONF` in the environment still
/// wins). One arena, and freed pages given back within a second, not kept ten: with its
/// defaults `serve` peaked at 269 MB with 1,000,000 emails queued, with these at 156 MB
/// (`bench/queue_memory.sh`), the same requests/s on the pixel.
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: &[u8; 47] = b"narenas:1,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    if let cli::Command::Config {
        command: cli::ConfigCommand::Check,
    } = cli.command
    {
        return check_config(cli.config.as_deref());
    }
    let config = match config::Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e:#}");
            return std::process::ExitCode::from(2);
        }
    };
    init_tracing(&config);
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    match runtime.block_on(commands::run(cli.command, config)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `mailtrail config check`: every problem, or a confirmation.
fn check_config(file: Option<&std::path::Path>) -> std::process::ExitCode {
    let problems = config::check(file);
    for problem in &problems {
        println!("{}: {}", problem.path, problem.message);
    }
    let source = file.map_or_else(|| "defaults".to_owned(), |f| f.display().to_string());
    if problems.is_empty() {
        println!("configuration OK ({source} and the MAILTRAIL_* environment)");
        std::process::ExitCode::SUCCESS
    } else {
        println!(
            "{} problem(s) in {source} and the MAILTRAIL_* environment",
            problems.len()
        );
        std::process::ExitCode::FAILURE
    }
}

fn init_tracing(config: &config::Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MAILTRAIL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        // Each line's fields at the top level of its object, beside `message`.
        config::LogFormat::Json => builder.json().flatten_event(true).init(),
        config::LogFormat::Text => builder.init(),
    }
}
