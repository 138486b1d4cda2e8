//! CPU time spent by this process and by the PostgreSQL server the bench runs on (Linux
//! `/proc`, when the server's data directory is readable here; otherwise none).

use std::time::Duration;

use deadpool_postgres::Pool;

/// Clock ticks per second of `/proc/*/stat` (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
const TICKS: u64 = 100;

/// `utime + stime` (and the reaped children's, when `children`) of process `pid`.
fn ticks(pid: &str, children: bool) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let n = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    // `rest` starts at field 3 (state): ppid is field 4, utime 14, stime 15, cutime 16, cstime 17.
    let ppid = n(1)?;
    let own = n(11)? + n(12)?;
    let reaped = if children { n(13)? + n(14)? } else { 0 };
    Some((ppid, own + reaped))
}

/// CPU time of this process so far.
pub(crate) fn this_process() -> Duration {
    ticks("self", false).map_or(Duration::ZERO, |(_, t)| {
        Duration::from_millis(t * 1000 / TICKS)
    })
}

/// The server's postmaster, from `postmaster.pid` in its data directory.
pub(crate) async fn postmaster(pool: &Pool) -> Option<u64> {
    let client = pool.get().await.ok()?;
    let dir: String = client
        .query_one("SHOW data_directory", &[])
        .await
        .ok()?
        .get(0);
    let pid = std::fs::read_to_string(format!("{dir}/postmaster.pid")).ok()?;
    pid.lines().next()?.trim().parse().ok()
}

/// CPU time of the server so far: the postmaster, its processes and those that ended.
pub(crate) fn server(postmaster: u64) -> Option<Duration> {
    let (_, mut total) = ticks(&postmaster.to_string(), true)?;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if let Some((ppid, t)) = ticks(pid, false) {
            if ppid == postmaster {
                total += t;
            }
        }
    }
    Some(Duration::from_millis(total * 1000 / TICKS))
}
