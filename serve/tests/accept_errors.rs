//! Out of descriptors, `accept` fails on every call: the loop must pause
//! between attempts, not spin a core, and serve the waiting clients as soon
//! as descriptors are free again. A test binary of its own: it lowers the
//! process's open-file limit.

#![cfg(unix)]

mod support;

use std::io::{Read as _, Write as _};
use std::sync::Arc;
use std::time::Duration;

use mcp_guard_serve::{serve, Options};
use support::{eventually, Counts, Recorder};

fn soft_limit() -> libc::rlimit {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
        0
    );
    limit
}

fn set_soft_limit(limit: libc::rlimit) {
    // SAFETY: setrlimit reads the struct we pass.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
}

#[tokio::test(flavor = "current_thread")]
async fn accept_errors_pause_the_loop_and_it_recovers() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    // The kernel completes these handshakes before any accept.
    let clients: Vec<std::net::TcpStream> = (0..3)
        .map(|_| std::net::TcpStream::connect(addr).expect("connect"))
        .collect();

    // Take every descriptor the (lowered) limit allows.
    let original = soft_limit();
    let first_free = std::fs::File::open("/dev/null").expect("open");
    let lowered = {
        use std::os::fd::AsRawFd as _;
        libc::rlimit {
            rlim_cur: libc::rlim_t::try_from(first_free.as_raw_fd()).unwrap() + 16,
            ..original
        }
    };
    drop(first_free);
    set_soft_limit(lowered);
    let mut fillers = Vec::new();
    while let Ok(file) = std::fs::File::open("/dev/null") {
        fillers.push(file);
        assert!(fillers.len() < 64, "the lowered limit is not enforced");
    }

    let counts = Arc::new(Counts::default());
    let (stopping, _) = tokio::sync::watch::channel(false);
    let hooks = Recorder {
        counts: Arc::clone(&counts),
        stopping,
    };
    let options = Options {
        accept_backoff: Duration::from_millis(100),
        log_period: Duration::ZERO,
        ..Options::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(
        listener,
        |_request, lane| async move {
            Ok::<_, std::convert::Infallible>(hyper::Response::new(format!("{lane:?}")))
        },
        hooks,
        options,
        async move {
            let _ = stopped.await;
        },
    ));
    let started = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let failures = Counts::get(&counts.accept_failed);
    let most = usize::try_from(started.elapsed().as_millis() / 100).unwrap() + 2;
    assert_eq!(Counts::get(&counts.opened), 0);
    // One attempt per 100 ms backoff (a spinning loop makes thousands),
    // each reported (a zero log period).
    assert!(
        (2..=most).contains(&failures),
        "{failures} accept attempts, at most {most} expected"
    );
    assert_eq!(Counts::get(&counts.accept_not_reported), 0);

    // Descriptors free again: the clients that waited are served.
    drop(fillers);
    set_soft_limit(original);
    eventually("the waiting clients are accepted", || {
        Counts::get(&counts.opened) == clients.len()
    })
    .await;
    let reply = tokio::task::spawn_blocking(move || {
        let mut client = clients.into_iter().next().expect("a client");
        client
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .expect("write");
        let mut reply = String::new();
        client.read_to_string(&mut reply).expect("read");
        reply
    })
    .await
    .expect("client thread");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.ends_with("Regular"), "{reply}");
    let _ = stop.send(());
    task.await.expect("serve task").expect("serve");
}
