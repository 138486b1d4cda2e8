//! `eventlogs`: the command-line tool — migrate a schema, see what a store holds, read logs and
//! the feed, list and reset subscriptions.

mod args;
mod cache;
mod connect;
mod failure;
mod feed;
mod log;
mod output;
mod position;
mod status;
mod subscriptions;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};
use crate::failure::Failure;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("eventlogs: cannot start: {e}");
            return ExitCode::from(failure::ERROR);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("eventlogs: {failure}");
            ExitCode::from(failure.code())
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let out = output::Output::new(cli.json);
    match &cli.command {
        Command::Migrate { print } => status::migrate(&cli, *print, &out).await,
        Command::Status { estimate } => status::status(&cli, *estimate, &out).await,
        Command::Log { command } => log::run(&cli, command, &out).await,
        Command::Feed { command } => feed::run(&cli, command, &out).await,
        Command::Keys { command } => log::keys(&cli, command, &out).await,
        Command::Subscriptions { command } => subscriptions::run(&cli, command, &out).await,
        Command::Cache {
            redis_url,
            snapshots,
            key_prefix,
            command,
        } => {
            let source = if *snapshots {
                cache::Source::Snapshots
            } else {
                cache::Source::Redis {
                    url: redis_url.as_deref(),
                    prefix: key_prefix,
                }
            };
            cache::run(&cli, source, command, &out).await
        }
    }
}
