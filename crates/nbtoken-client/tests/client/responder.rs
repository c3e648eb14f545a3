//! A hand-rolled HTTP/1.1 responder on 127.0.0.1:0: it answers from a script
//! and records every request it receives, so tests can count attempts and
//! read the headers the client sent.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the responder does with one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// Sends this status line, extra headers and JSON body, then closes.
    Http { status: &'static str, headers: Vec<(&'static str, String)>, body: String },
    /// Closes the connection without answering.
    Hangup,
    /// Never answers.
    Stall,
}

impl Reply {
    pub fn json(status: &'static str, body: &str) -> Reply {
        Reply::Http { status, headers: Vec::new(), body: body.to_owned() }
    }

    pub fn with_header(mut self, name: &'static str, value: &str) -> Reply {
        if let Reply::Http { headers, .. } = &mut self {
            headers.push((name, value.to_owned()));
        }
        self
    }
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub at: Instant,
    pub request_line: String,
    pub headers: Vec<(String, String)>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

pub struct Responder {
    pub base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Responder {
    /// Answers the n-th request with `script[n]`, and later ones with the last entry.
    pub async fn start(script: Vec<Reply>) -> Responder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else { return };
                let log = log.clone();
                let script = script.clone();
                tokio::spawn(async move {
                    let Some(seen) = read_request(&mut sock).await else { return };
                    let n = {
                        let mut log = log.lock().unwrap();
                        log.push(seen);
                        log.len() - 1
                    };
                    match script.get(n).or(script.last()).cloned().unwrap() {
                        Reply::Http { status, headers, body } => {
                            let mut out = format!(
                                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                                body.len()
                            );
                            for (k, v) in headers {
                                out.push_str(&format!("{k}: {v}\r\n"));
                            }
                            out.push_str("\r\n");
                            out.push_str(&body);
                            let _ = sock.write_all(out.as_bytes()).await;
                            let _ = sock.shutdown().await;
                        }
                        Reply::Hangup => drop(sock),
                        Reply::Stall => {
                            tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                        }
                    }
                });
            }
        });
        Responder { base, seen }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let seen = Seen { at: Instant::now(), request_line, headers };
    // Read the body, so that closing the socket does not reset the connection early.
    let len: usize = seen.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut have = buf.len() - (head_end + 4);
    while have < len {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        have += n;
    }
    Some(seen)
}
