//! The evaluator process against slow HTTP clients (issue 16 at reduced
//! size): 100 connections trickling a request header at one byte a second
//! are closed at `web.header_read_timeout`, silent ones too, while
//! `/-/healthy` keeps answering; an idle keep-alive connection is closed
//! at `web.idle_timeout`.
//!
//! Every wait polls against a deadline, so a broken build fails instead of
//! hanging.

#![allow(clippy::unwrap_used)] // a panic is how a test reports failure

use crate::support as common;
use crate::support::process::write_vigil_files;

use std::net::SocketAddr;
use std::time::Duration;

use common::process::{log_of, start_evaluator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vigil_testkit::{free_port, wait_for_http};

/// Sends a request header one byte a second until the server closes the
/// connection; returns how many bytes went out.
async fn trickle(addr: SocketAddr) -> usize {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let header = b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nX-Slow: ".repeat(100);
    let mut buf = [0u8; 256];
    for (sent, byte) in header.iter().enumerate() {
        if stream.write_all(&[*byte]).await.is_err() {
            return sent;
        }
        tokio::select! {
            _ = stream.read(&mut buf) => return sent + 1,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    panic!("the evaluator never closed a connection trickling its header");
}

/// Opens a connection and sends nothing; returns once the server closed it.
async fn silent(addr: SocketAddr) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 256];
    let _ = stream.read(&mut buf).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_http_clients_are_disconnected_while_health_answers() {
    let _alone = crate::support::alone().await;
    let dir = tempfile::tempdir().unwrap();
    let listen = free_port();
    let config = write_vigil_files(
        dir.path(),
        "groups: []\n",
        &format!(
            "rule_files: [rules.yaml]\nweb: {{listen: '127.0.0.1:{listen}', header_read_timeout: 2s, idle_timeout: 3s, max_connections: 200}}\n"
        ),
    );
    let _evaluator = start_evaluator(&config, dir.path(), "evaluator.log", None);
    wait_for_http(
        &format!("http://127.0.0.1:{listen}/-/healthy"),
        Duration::from_secs(60),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}; log:\n{}", log_of(dir.path())));
    let addr: SocketAddr = format!("127.0.0.1:{listen}").parse().unwrap();

    let slow: Vec<_> = (0..100).map(|_| tokio::spawn(trickle(addr))).collect();
    let quiet: Vec<_> = (0..20).map(|_| tokio::spawn(silent(addr))).collect();
    // An idle keep-alive client: one request, then nothing.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));

    // Health answers next to them (its own connection each time).
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    for _ in 0..10 {
        let response = client
            .get(format!("http://127.0.0.1:{listen}/-/healthy"))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    for client in slow {
        let sent = tokio::time::timeout(Duration::from_secs(60), client)
            .await
            .expect("every trickling client is disconnected (hang guard)")
            .unwrap();
        assert!(sent < 30, "disconnected only after {sent} bytes");
    }
    for client in quiet {
        tokio::time::timeout(Duration::from_secs(60), client)
            .await
            .expect("every silent client is disconnected (hang guard)")
            .unwrap();
    }
    let n = tokio::time::timeout(Duration::from_secs(60), idle.read(&mut buf))
        .await
        .expect("the idle keep-alive connection is closed (hang guard)")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without a further answer");
    assert!(client
        .get(format!("http://127.0.0.1:{listen}/-/healthy"))
        .send()
        .await
        .unwrap()
        .status()
        .is_success());
}
