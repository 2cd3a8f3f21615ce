//! A server task on a free loopback port, stopped on request.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The shutdown future handed to the server: completes on
/// [`Running::stop`] (or when the [`Running`] is dropped).
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A running server and the means to stop it.
pub struct Running {
    /// Where it listens (`127.0.0.1`, a port picked by the kernel).
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Binds `127.0.0.1:0` and spawns `serve(listener, shutdown)`.
    pub async fn spawn<S, Fut>(serve: S) -> Running
    where
        S: FnOnce(TcpListener, Shutdown) -> Fut,
        Fut: Future<Output = std::io::Result<()>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(
            listener,
            Box::pin(async move {
                let _ = stopped.await;
            }),
        ));
        Running {
            addr,
            stop: Some(stop),
            task,
        }
    }

    /// Signals shutdown and waits (15 s at most) for `serve` to return.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(15), &mut self.task)
            .await
            .expect("serve returns after shutdown")
            .expect("serve task does not panic")
    }
}
