//! `reconciler breaker [status|reset] [--target NAME]`: talks to a running service's
//! admin HTTP (`admin.listen`, with `admin.token` when set), since the breaker lives in
//! the service's memory. A plain HTTP/1.1 exchange: no client library for two requests.

use std::time::Duration;

use model::config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::app::exit;
use crate::cli::{BreakerAction, BreakerArgs};

/// One request; returns the status code and body.
pub async fn request(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        let body = body.unwrap_or("");
        let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await?;
        s.write_all(body.as_bytes()).await?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await?;
        let out = String::from_utf8_lossy(&out).into_owned();
        let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
        Ok((status, body))
    };
    tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer within 30 s"))?
}

pub async fn breaker(config: &Config, args: &BreakerArgs) -> i32 {
    let addr = args.admin.clone().unwrap_or_else(|| config.admin.listen.clone());
    let token = config.admin.token.as_deref();
    let result = match args.action {
        BreakerAction::Status => request(&addr, "GET", "/breaker", None, token).await,
        BreakerAction::Reset => {
            let body = args.target.as_ref().map(|t| serde_json::json!({ "target": t }).to_string());
            request(&addr, "POST", "/breaker/reset", body.as_deref(), token).await
        }
    };
    match result {
        Ok((200, body)) => {
            println!("{}", body.trim());
            exit::CLEAN
        }
        Ok((status, body)) => {
            eprintln!("error: the service at {addr} answered {status}: {}", body.trim());
            exit::USAGE
        }
        Err(e) => {
            eprintln!("error: no service answering at {addr} (admin.listen): {e}");
            exit::UNREACHABLE
        }
    }
}
