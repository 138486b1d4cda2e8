//! Parsing what the command line says about logs and feed positions.

use eventlogs::{EventFeed, FeedPosition, LogId};

use crate::failure::Failure;

/// A log id as the library prints it (`log_…`) or as PostgreSQL stores it (a UUID).
pub(crate) fn log_id(text: &str) -> Result<LogId, Failure> {
    if let Ok(id) = text.parse::<LogId>() {
        return Ok(id);
    }
    match uuid::Uuid::parse_str(text) {
        Ok(uuid) => Ok(LogId::from_u128(uuid.as_u128())),
        Err(_) => Err(Failure::Usage(format!(
            "{:?} is not a log id: expected `log_` and 26 base32 characters, or a UUID",
            shorten(text)
        ))),
    }
}

/// `start`, `head` or `T.S`.
pub(crate) async fn feed_position(
    text: &str,
    feed: &impl EventFeed,
) -> Result<FeedPosition, Failure> {
    match text {
        "start" => Ok(FeedPosition::START),
        "head" => Ok(feed.head().await?),
        _ => text
            .split_once('.')
            .and_then(|(t, s)| {
                Some(FeedPosition {
                    transaction: t.parse().ok()?,
                    sequence: s.parse().ok()?,
                })
            })
            .ok_or_else(|| {
                Failure::Usage(format!(
                    "{:?} is not a feed position: expected `start`, `head` or `T.S` (two \
                     numbers, as printed by `feed tail` and `subscriptions list`)",
                    shorten(text)
                ))
            }),
    }
}

/// At most 80 characters of hostile input, for an error message.
pub(crate) fn shorten(text: &str) -> String {
    let mut short: String = text.chars().take(80).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    short
}
