//! The open-file limit. Every waiting long-poll holds one connection, so
//! one file descriptor: the soft `RLIMIT_NOFILE` (often 1024 by default)
//! caps how many filters one replica can carry long before memory does.
//! The service raises its soft limit to the hard limit at start, as most
//! servers do; the hard limit is the operator's (ulimit, systemd
//! `LimitNOFILE`, the container runtime).

/// The soft and hard open-file limits before and after [`raise`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    /// The soft limit the process started with.
    pub before: u64,
    /// The soft limit now in force.
    pub soft: u64,
    /// The hard limit (the ceiling for `soft`).
    pub hard: u64,
}

/// Descriptors kept free of client connections: the store's files (or
/// database connections), the refusals of connections past the limit,
/// logs and the runtime's own.
pub const RESERVED_FDS: u64 = 128;

/// Fewest connections a limit may leave (a tiny `ulimit -n` still serves).
const MIN_CONNECTIONS: u64 = 16;

impl FdLimit {
    /// How many connections to serve at once: `asked` if given, never
    /// more than the soft limit minus [`RESERVED_FDS`].
    pub fn max_connections(&self, asked: Option<usize>) -> usize {
        let ceiling = self.soft.saturating_sub(RESERVED_FDS).max(MIN_CONNECTIONS);
        let ceiling = usize::try_from(ceiling).unwrap_or(usize::MAX);
        asked.map_or(ceiling, |asked| asked.min(ceiling))
    }
}

/// Why the limit could not be read or changed.
#[derive(Debug, thiserror::Error)]
#[error("open-file limit: {0}")]
pub struct FdLimitError(#[from] std::io::Error);

/// Raises the soft open-file limit to the hard limit (a no-op when it is
/// already there) and reports both.
#[cfg(unix)]
pub fn raise() -> Result<FdLimit, FdLimitError> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    let before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we own; raising the soft limit
        // up to the hard one needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        limit = raised;
    }
    Ok(FdLimit {
        before: as_u64(before),
        soft: as_u64(limit.rlim_cur),
        hard: as_u64(limit.rlim_max),
    })
}

/// Nothing to raise where there are no Unix resource limits.
#[cfg(not(unix))]
pub fn raise() -> Result<FdLimit, FdLimitError> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported).into())
}

/// `RLIM_INFINITY` and friends as a number (saturating). `rlim_t` is
/// `u64` on most targets but not all, hence the conversion.
#[cfg(unix)]
#[allow(clippy::useless_conversion)]
fn as_u64(value: libc::rlim_t) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn connections_leave_room_for_the_store() {
        let limit = FdLimit {
            before: 1024,
            soft: 20_000,
            hard: 20_000,
        };
        assert_eq!(limit.max_connections(None), 20_000 - 128);
        assert_eq!(limit.max_connections(Some(500)), 500);
        // Asking for more than the descriptors allow gets the ceiling.
        assert_eq!(limit.max_connections(Some(50_000)), 20_000 - 128);
        let tiny = FdLimit {
            before: 64,
            soft: 64,
            hard: 64,
        };
        assert_eq!(tiny.max_connections(None), 16);
    }

    #[test]
    fn raises_the_soft_limit_to_the_hard_one() {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as in `raise`.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        // Start just below the hard limit, so the raise has something to
        // do (only one below: other tests in this process open files).
        let lowered = libc::rlimit {
            rlim_cur: limit.rlim_max.saturating_sub(1),
            rlim_max: limit.rlim_max,
        };
        // SAFETY: lowering the soft limit of this test process is allowed.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lowered) }, 0);
        let raised = raise().expect("raise");
        assert_eq!(raised.before, as_u64(lowered.rlim_cur));
        assert_eq!(raised.soft, raised.hard);
        assert_eq!(raised.hard, as_u64(limit.rlim_max));
        let mut now = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as above.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut now) }, 0);
        assert_eq!(now.rlim_cur, limit.rlim_max);
        // Idempotent.
        assert_eq!(raise().expect("again").before, raised.soft);
    }
}
