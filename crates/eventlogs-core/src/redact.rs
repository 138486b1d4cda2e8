//! Hiding passwords in connection strings before they reach a log line or `Debug` output.

/// What replaces a hidden password (or a whole string that cannot be parsed).
const HIDDEN: &str = "***";

/// `connection` with every password replaced by `***`, safe to log and to show in `Debug`.
///
/// The one redaction helper of the backends. It understands:
///
/// - **URLs** (`scheme://user:password@host:port/path?query`): everything between `://` and
///   the *last* `@` is the user information, so a password holding `/`, `?`, `#`, `@` or
///   percent escapes goes whole. The user name before the first `:` is kept when it cannot
///   be part of something else (it holds none of `/ ? # & =` nor whitespace); otherwise the
///   whole user information becomes `***`. Query parameters whose name, percent-decoded,
///   contains `password` (any case: `password=`, `sentinelPassword=`) get `***` as value.
/// - **Key-value strings** as libpq and tokio-postgres read them (`host=db user=app
///   password=secret`, with `key = value` spacing, `'quoted values'` holding spaces and `\'`
///   escapes, and `\`-escapes in bare values): the value of every key containing `password`
///   (any case) becomes `***`.
///
/// Anything else, such as a URL with whitespace left outside its user information, or a
/// key-value string that does not parse, is hidden entirely as `***`: better hidden than
/// leaked. An empty string stays empty.
///
/// ```
/// use eventlogs_core::backend::redact_connection_string as redact;
///
/// assert_eq!(redact("postgres://app:pa/ss@db/app"), "postgres://app:***@db/app");
/// assert_eq!(redact("redis://:p@ss@h:6379"), "redis://:***@h:6379");
/// assert_eq!(redact("postgres://app@db/app?password=x&sslmode=require"),
///            "postgres://app@db/app?password=***&sslmode=require");
/// assert_eq!(redact("host=db password='se cret' user=app"), "host=db password=*** user=app");
/// assert_eq!(redact("not a connection string"), "***");
/// ```
#[must_use]
pub fn redact_connection_string(connection: &str) -> String {
    if let Some((scheme, rest)) = connection.split_once("://") {
        if is_scheme(scheme) {
            return redact_url(scheme, rest);
        }
    }
    redact_key_values(connection).unwrap_or_else(|| HIDDEN.to_owned())
}

/// `[A-Za-z][A-Za-z0-9+.-]*`, as RFC 3986 defines a scheme.
fn is_scheme(scheme: &str) -> bool {
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// Whether `c` cannot appear in a URL outside its user information without hiding something.
fn is_space(c: char) -> bool {
    c.is_whitespace() || c.is_control()
}

fn redact_url(scheme: &str, rest: &str) -> String {
    let (userinfo, host_and_rest) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let mut out = format!("{scheme}://");
    if let Some(userinfo) = userinfo {
        let (user, password) = match userinfo.split_once(':') {
            Some((user, _)) => (user, true),
            None => (userinfo, false),
        };
        let safe_user = !user.contains(['/', '?', '#', '&', '=']) && !user.contains(is_space);
        match (safe_user, password) {
            (true, true) => {
                out.push_str(user);
                out.push(':');
                out.push_str(HIDDEN);
            }
            (true, false) => out.push_str(user),
            (false, _) => out.push_str(HIDDEN),
        }
        out.push('@');
    }
    match host_and_rest.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            for (i, param) in query.split('&').enumerate() {
                if i > 0 {
                    out.push('&');
                }
                match param.split_once('=') {
                    Some((name, _)) if names_password(&percent_decode(name)) => {
                        out.push_str(name);
                        out.push('=');
                        out.push_str(HIDDEN);
                    }
                    _ => out.push_str(param),
                }
            }
        }
        None => out.push_str(host_and_rest),
    }
    // Whitespace is not part of a URL: this is something else, maybe key-value pairs.
    if host_and_rest.contains(is_space) {
        return HIDDEN.to_owned();
    }
    out
}

fn names_password(name: &str) -> bool {
    name.to_ascii_lowercase().contains("password")
}

/// `%XX` escapes decoded (invalid ones kept as they are), lossily as UTF-8.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escape {
            Some(byte) => {
                decoded.push(byte);
                i += 3;
            }
            None => {
                decoded.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// `keyword = value` pairs, read the way tokio-postgres reads them; `None` when they do not parse.
fn redact_key_values(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.char_indices().peekable();
    // Start of the text not yet copied to `out`.
    let mut copied = 0;
    loop {
        while chars.next_if(|&(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(key_start, _)) = chars.peek() else {
            break;
        };
        while chars
            .next_if(|&(_, c)| !c.is_whitespace() && c != '=')
            .is_some()
        {}
        let key_end = chars.peek().map_or(text.len(), |&(i, _)| i);
        if key_end == key_start {
            return None; // `=` with no keyword before it
        }
        while chars.next_if(|&(_, c)| c.is_whitespace()).is_some() {}
        chars.next_if(|&(_, c)| c == '=')?;
        while chars.next_if(|&(_, c)| c.is_whitespace()).is_some() {}
        let value_start = chars.peek().map_or(text.len(), |&(i, _)| i);
        if chars.next_if(|&(_, c)| c == '\'').is_some() {
            loop {
                match chars.next()? {
                    (_, '\\') => {
                        chars.next()?;
                    }
                    (_, '\'') => break,
                    _ => {}
                }
            }
        } else {
            let mut empty = true;
            while let Some((_, c)) = chars.next_if(|&(_, c)| !c.is_whitespace()) {
                empty = false;
                if c == '\\' {
                    chars.next();
                }
            }
            if empty {
                return None;
            }
        }
        let value_end = chars.peek().map_or(text.len(), |&(i, _)| i);
        if names_password(&text[key_start..key_end]) {
            out.push_str(&text[copied..value_start]);
            out.push_str(HIDDEN);
            copied = value_end;
        }
    }
    out.push_str(&text[copied..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (connection string, exactly what may be shown)
    #[rustfmt::skip]
    const CASES: &[(&str, &str)] = &[
        // Nothing to hide.
        ("", ""),
        ("postgres://app@db/app", "postgres://app@db/app"),
        ("postgres://db:5432/app?sslmode=require", "postgres://db:5432/app?sslmode=require"),
        ("redis://h:1", "redis://h:1"),
        ("host=db user=app dbname=app", "host=db user=app dbname=app"),
        // URL passwords, hostile shapes included.
        ("postgres://app:s3cret@db.example:5432/app", "postgres://app:***@db.example:5432/app"),
        ("postgres://app:pa/ss@db/app", "postgres://app:***@db/app"),
        ("postgres://app:p@ss@db/app", "postgres://app:***@db/app"),
        ("postgres://app:p?ss#x@db/app?sslmode=require", "postgres://app:***@db/app?sslmode=require"),
        ("postgres://app:p%40ss%2Fw%3F@db/app", "postgres://app:***@db/app"),
        ("postgres://app:a:b:c@db", "postgres://app:***@db"),
        ("postgres://app:@db", "postgres://app:***@db"),
        ("postgres://app:se cret@db", "postgres://app:***@db"),
        ("redis://:p@ss@h:1", "redis://:***@h:1"),
        ("rediss://u:pa/ss@h:1?x=1", "rediss://u:***@h:1?x=1"),
        ("redis-cluster://u:pw@h:1?node=h:2", "redis-cluster://u:***@h:1?node=h:2"),
        ("REDIS://u:pw@h", "REDIS://u:***@h"),
        // Query parameters naming a password.
        ("postgres://app@db/app?password=s3cret&sslmode=require", "postgres://app@db/app?password=***&sslmode=require"),
        ("postgres://db/app?sslmode=require&PassWord=a#b", "postgres://db/app?sslmode=require&PassWord=***"),
        ("postgres://db/app?pass%77ord=x", "postgres://db/app?pass%77ord=***"),
        ("redis-sentinel://h:1?sentinelPassword=pw2&x=1", "redis-sentinel://h:1?sentinelPassword=***&x=1"),
        ("postgres://u:pw@db/app?sslpassword=k", "postgres://u:***@db/app?sslpassword=***"),
        // An `@` after the host makes everything before it user information: over-hidden,
        // never shown; a "user" that looks like a path or query is hidden whole.
        ("postgres://db/app?password=se@cret", "postgres://***@cret"),
        ("postgres://db/app?password=s:e@cret", "postgres://***@cret"),
        ("postgres://db/app?application_name=a@b", "postgres://***@b"),
        // Key-value strings.
        ("host=db user=app password=s3cret dbname=app", "host=db user=app password=*** dbname=app"),
        ("host=db password = s3cret", "host=db password = ***"),
        ("password='se cret' host=db", "password=*** host=db"),
        (r"password='it\'s se cret' host=db", "password=*** host=db"),
        (r"password=se\ cret host=db", "password=*** host=db"),
        ("host=db sslpassword=k PASSWORD=p", "host=db sslpassword=*** PASSWORD=***"),
        ("host=db password=a://b@c", "host=db password=***"),
        ("  host=db\tpassword=x  ", "  host=db\tpassword=***  "),
        // Unparseable: hidden whole.
        ("not a url with pw", "***"),
        ("not a url at all ://", "***"),
        ("dbname://x password=s3cret", "***"),
        ("host=db password='unterminated s3cret", "***"),
        ("host=db password", "***"),
        ("host=db password=", "***"),
        ("=s3cret", "***"),
        ("h:1", "***"),
    ];

    #[test]
    fn passwords_are_replaced_and_the_rest_kept() {
        for &(connection, shown) in CASES {
            assert_eq!(
                redact_connection_string(connection),
                shown,
                "{connection:?}"
            );
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("pass%77ord"), "password");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
        assert_eq!(percent_decode("%C3%A9"), "é");
    }
}
