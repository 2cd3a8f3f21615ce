//! The upstreams behind Envoy: nginx (fast, for throughput: `/small`,
//! `/pii`, `/sse`) and a tiny in-process server for what nginx cannot do
//! (`/stream/sse` sends events 1 ms apart, for time to first byte;
//! `/stream/echo` keeps the request body it received, to prove requests
//! were scrubbed).

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::payloads;
use super::procs::{self, Guard};
use super::wire::Conn;

/// A running nginx on a loopback port.
pub struct Nginx {
    /// Its port.
    pub port: u16,
    /// The process (stopped on drop).
    pub guard: Guard,
}

/// nginx's configuration: one process (`master_process off`), in the
/// foreground, no access log, long keep-alive, the answers as files.
/// nginx's static module refuses `POST` with 405; `error_page 405 =200
/// $uri` serves the file anyway (answers must fit no config string: nginx
/// limits those to 4 KB).
fn nginx_config(dir: &Path, port: u16) -> String {
    let d = dir.display();
    format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/nginx-error.log warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  keepalive_requests 100000000;\n  keepalive_timeout 300s;\n\
           etag off;\n  open_file_cache max=16;\n\
           client_body_temp_path {d}/nginx-tmp/body;\n  proxy_temp_path {d}/nginx-tmp/proxy;\n\
           fastcgi_temp_path {d}/nginx-tmp/fastcgi;\n  uwsgi_temp_path {d}/nginx-tmp/uwsgi;\n\
           scgi_temp_path {d}/nginx-tmp/scgi;\n\
           server {{\n    listen 127.0.0.1:{port};\n    error_page 405 =200 $uri;\n\
             location = /small {{ default_type application/json; alias {d}/answers/small.json; }}\n\
             location = /pii {{ default_type application/json; alias {d}/answers/pii.json; }}\n\
             location = /sse {{ default_type text/event-stream; alias {d}/answers/sse.txt; }}\n\
             location = /mcp {{ default_type application/json; alias {d}/answers/mcp.json; }}\n\
           }}\n}}\n"
    )
}

/// Installs a Debian package when `binary` is not on the PATH.
pub fn ensure_debian_tool(binary: &str, package: &str) -> Result<(), String> {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {binary}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Ok(());
    }
    eprintln!("bench-envoy: {binary} is missing; installing the Debian package `{package}`");
    crate::steps::run("apt-get", &["update", "-qq"], &[])?;
    crate::steps::run("apt-get", &["install", "-y", "-qq", package], &[])
}

/// Writes the configuration into `dir` and starts nginx on a free port.
pub fn start_nginx(dir: &Path) -> Result<Nginx, String> {
    ensure_debian_tool("nginx", "nginx")?;
    std::fs::create_dir_all(dir.join("nginx-tmp")).map_err(|e| e.to_string())?;
    let answers = dir.join("answers");
    std::fs::create_dir_all(&answers).map_err(|e| e.to_string())?;
    for (name, body) in [
        ("small.json", payloads::small_json()),
        ("pii.json", payloads::pii_json()),
        ("sse.txt", payloads::sse_answer()),
        ("mcp.json", payloads::mcp_result()),
    ] {
        std::fs::write(answers.join(name), body).map_err(|e| e.to_string())?;
    }
    let port = procs::free_port()?;
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, nginx_config(dir, port)).map_err(|e| e.to_string())?;
    let mut command = Command::new("nginx");
    command
        .arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join("nginx-error.log"))
        .arg("-c")
        .arg(&conf);
    let mut guard = Guard::spawn("nginx", command, &dir.join("nginx.out"))?;
    procs::wait_for_port(port, &mut guard)?;
    Ok(Nginx { port, guard })
}

/// The in-process streaming upstream; stops accepting when dropped.
pub struct StreamUpstream {
    /// Its port.
    pub port: u16,
    /// The body of the last `/stream/echo` request.
    pub last_echo: Arc<Mutex<Vec<u8>>>,
    stop: Arc<AtomicBool>,
}

impl StreamUpstream {
    /// Binds a free loopback port and serves it on background threads.
    pub fn start() -> Result<Self, String> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let last_echo = Arc::new(Mutex::new(Vec::new()));
        let (stop2, echo2) = (stop.clone(), last_echo.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let echo = echo2.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &echo);
                });
            }
        });
        Ok(Self {
            port,
            last_echo,
            stop,
        })
    }
}

impl Drop for StreamUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Serves keep-alive requests on one connection until the peer closes it.
fn serve(stream: TcpStream, echo: &Mutex<Vec<u8>>) -> std::io::Result<()> {
    let mut conn = Conn::new(stream)?;
    while let Some(req) = conn.read_message()? {
        match req.path() {
            "/stream/sse" => {
                conn.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                      cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n",
                )?;
                for (i, event) in payloads::stream_events().iter().enumerate() {
                    if i > 0 {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    conn.write_all(format!("{:x}\r\n{event}\r\n", event.len()).as_bytes())?;
                }
                conn.write_all(b"0\r\n\r\n")?;
            }
            "/stream/echo" => {
                if let Ok(mut last) = echo.lock() {
                    *last = req.body.clone();
                }
                let body = payloads::small_json();
                conn.write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                         content-length: {}\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                )?;
            }
            _ => conn.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_upstream_streams_and_echoes() {
        let up = StreamUpstream::start().unwrap();
        let mut conn = Conn::connect(up.port).unwrap();
        conn.write_all(&crate::bench_envoy::wire::post("/stream/sse", "t", "{}"))
            .unwrap();
        let msg = conn.read_message().unwrap().unwrap();
        assert_eq!(msg.status(), 200);
        assert_eq!(msg.body, payloads::stream_events().concat().into_bytes());
        conn.write_all(&crate::bench_envoy::wire::post(
            "/stream/echo",
            "t",
            "{\"a\":1}",
        ))
        .unwrap();
        assert_eq!(conn.read_message().unwrap().unwrap().status(), 200);
        assert_eq!(*up.last_echo.lock().unwrap(), b"{\"a\":1}");
    }
}
