//! The command line: global options and every subcommand, parsed by clap.

use clap::{Parser, Subcommand};

/// Inspect and operate an eventlogs store on PostgreSQL.
///
/// Exit codes: 0 done, 1 failed (server unreachable, query failed), 2 bad input, 3 refused
/// (for example a reset while the subscription runs), 4 not found.
#[derive(Debug, Parser)]
#[command(name = "eventlogs", version, about, long_about = None)]
pub(crate) struct Cli {
    /// PostgreSQL URL, for example `postgres://app@db/app` (its password is never printed).
    #[arg(
        long,
        env = "EVENTLOGS_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    pub(crate) database_url: Option<String>,
    /// The schema holding the store's tables.
    #[arg(
        long,
        env = "EVENTLOGS_SCHEMA",
        default_value = "eventlogs",
        global = true
    )]
    pub(crate) schema: String,
    /// Machine output: one JSON document (or one per line for streams) instead of tables.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Creates or upgrades the schema (under an advisory lock, safe to run from many places).
    Migrate {
        /// Prints the SQL of every migration instead of running it.
        #[arg(long)]
        print: bool,
    },
    /// Schema version, events, logs, idempotency keys and subscriptions.
    Status {
        /// Planner estimates, at once, instead of counting every row.
        #[arg(long)]
        estimate: bool,
    },
    /// One log's events.
    Log {
        #[command(subcommand)]
        command: LogCommand,
    },
    /// The global feed.
    Feed {
        #[command(subcommand)]
        command: FeedCommand,
    },
    /// Idempotency keys: their retention.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Named subscriptions: checkpoints, lag, who runs them.
    Subscriptions {
        #[command(subcommand)]
        command: SubscriptionsCommand,
    },
    /// The cache of reductions: Redis, or the snapshot table with `--snapshots`.
    ///
    /// With `EVENTLOGS_CACHE_KEY` set (64 hexadecimal digits, and any keys still accepted
    /// during a rotation in `EVENTLOGS_CACHE_PREVIOUS_KEYS`, separated by commas), `check` also
    /// verifies the entry's MAC. Keys are read from the environment only, never from flags.
    Cache {
        /// Redis URL (`redis://…`, or `rediss://…` for TLS); its password is never printed.
        #[arg(long, env = "EVENTLOGS_REDIS_URL", hide_env_values = true)]
        redis_url: Option<String>,
        /// The `snapshots` table of `--schema` (`PostgresSnapshotCache`) instead of Redis.
        #[arg(long)]
        snapshots: bool,
        /// The prefix of the Redis cache's keys (`RedisCacheOptions::key_prefix`).
        #[arg(long, default_value = "eventlogs")]
        key_prefix: String,
        #[command(subcommand)]
        command: CacheCommand,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum CacheCommand {
    /// Entries by aggregate and version (scans the prefix's keys).
    Stats,
    /// Deletes an aggregate's entries (every version, or one), or, on the snapshot table,
    /// every entry last written longer ago than `--older-than`.
    #[command(group(clap::ArgGroup::new("which").required(true).args(["aggregate", "older_than"])))]
    Purge {
        /// The aggregate's `NAME`.
        #[arg(long)]
        aggregate: Option<String>,
        /// Only this `VERSION` of it.
        #[arg(long, requires = "aggregate")]
        version: Option<u32>,
        /// With `--snapshots`: entries last written longer ago than this age (`30d`, `12h`);
        /// Redis entries expire by their TTL instead.
        #[arg(long, value_parser = humantime::parse_duration)]
        older_than: Option<std::time::Duration>,
    },
    /// Whether a log's entry is one the store confirms, and how many events it is behind.
    Check {
        /// The log id (`log_…`, or the UUID stored in PostgreSQL).
        id: String,
        /// The aggregate's `NAME`.
        #[arg(long)]
        aggregate: String,
        /// The aggregate's `VERSION`, with its upcaster chain's fingerprint when the manager
        /// has upcasters, as `cache stats` shows it (`2.u0123456789abcdef`).
        #[arg(long, default_value = "1")]
        version: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum LogCommand {
    /// Prints a log's events with index, time, key, metadata and payload.
    Show {
        /// The log id (`log_…`, or the UUID stored in PostgreSQL).
        id: String,
        /// The first index to print.
        #[arg(long, default_value_t = 0)]
        from: u32,
        /// How many events to print at most.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Prints a log's last events, and with `--follow` each new one as it is written.
    Tail {
        /// The log id (`log_…`, or the UUID stored in PostgreSQL).
        id: String,
        /// How many of the last events to print first.
        #[arg(long, short = 'n', default_value_t = 10)]
        lines: u32,
        /// Keeps printing new events until interrupted (Ctrl-C).
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// Deletes a log for good (its events; a marker refuses later writes and tells read
    /// models). Cached reductions are left to expire: purge them with `cache purge`.
    Delete {
        /// The log id (`log_…`, or the UUID stored in PostgreSQL).
        id: String,
        /// Confirms the deletion (without it nothing is deleted).
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Removes idempotency keys stored longer ago than `--older-than`: a retry with a removed
    /// key writes again.
    Remove {
        /// The age, for example `30d`, `12h` or `90m`.
        #[arg(long, value_parser = humantime::parse_duration)]
        older_than: std::time::Duration,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum FeedCommand {
    /// Prints feed events in order, one per line.
    Tail {
        /// Where to start: `start`, `head` (only what comes next) or a position `T.S` (events
        /// after it).
        #[arg(long, default_value = "start")]
        from: String,
        /// Keeps printing new events until interrupted (Ctrl-C).
        #[arg(long, short = 'f')]
        follow: bool,
        /// Only some events: `type=NAME` (the event's type) or `log=ID`; repeat to allow more.
        #[arg(long, value_name = "type=NAME|log=ID")]
        filter: Vec<String>,
        /// How many events to print at most without `--follow`.
        #[arg(long, default_value_t = 100)]
        limit: u64,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum SubscriptionsCommand {
    /// Every subscription: checkpoint, lag, and the session that runs it, if any.
    List,
    /// Moves a subscription's checkpoint; refused while a consumer runs it.
    Reset {
        /// The subscription's name.
        name: String,
        /// `start` (replay everything), `head` (skip to now) or a position `T.S`.
        #[arg(long)]
        to: String,
    },
}
