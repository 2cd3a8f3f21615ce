//! The shutdown trigger on real signals sent to this process. A test
//! binary of its own: with the handlers not yet installed, a stray SIGTERM
//! would end every other test.

#![cfg(unix)]

use std::time::Duration;

use mcp_guard_serve::signals::shutdown;

fn raise(signal: libc::c_int) {
    // SAFETY: kill(2) on our own process with a valid signal whose
    // handler `shutdown()` installed first.
    assert_eq!(unsafe { libc::kill(libc::getpid(), signal) }, 0);
}

#[tokio::test]
async fn sigterm_and_sigint_each_complete_the_shutdown_future() {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let mut stop = Box::pin(shutdown().expect("install handlers"));
        assert!(
            tokio::time::timeout(Duration::from_millis(100), &mut stop)
                .await
                .is_err(),
            "completes only on a signal"
        );
        raise(signal);
        tokio::time::timeout(Duration::from_secs(5), stop)
            .await
            .unwrap_or_else(|_| panic!("signal {signal} did not complete the future"));
    }
}
