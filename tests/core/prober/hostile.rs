//! Hostile targets: endless bodies and headers, dripping responses, gzip bombs.

use super::*;

// ---------------------------------------------------------------- hostile targets

/// What a hostile target does after reading the request head.
#[derive(Clone)]
enum Hostile {
    /// 200 without a length, then body bytes until the client goes away.
    EndlessBody,
    /// The response, one byte every `every`, forever.
    Drip(Duration),
    /// A status line, then header lines forever.
    EndlessHeaders,
    /// 200 with `Content-Encoding: gzip` and this body, then the connection is held open.
    Gzip(Arc<Vec<u8>>),
    /// Without waiting for a request, 200 and an endless body to every connection.
    StreamAtOnce,
}

/// One connection of a hostile target, once the client went away.
#[derive(Clone, Copy, Debug)]
struct Finished {
    /// Bytes written after the request head.
    sent: usize,
    /// From the response's first byte until a write failed.
    lasted: Duration,
}

struct HostileTarget {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    finished: Arc<Mutex<Vec<Finished>>>,
    accept: JoinHandle<()>,
}

impl Drop for HostileTarget {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl HostileTarget {
    async fn start(kind: Hostile) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let finished: Arc<Mutex<Vec<Finished>>> = Arc::default();
        let accepted = Arc::new(AtomicUsize::new(0));
        let (record, count) = (finished.clone(), accepted.clone());
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let (kind, record) = (kind.clone(), record.clone());
                tokio::spawn(async move {
                    if let Some(done) = misbehave(stream, kind).await {
                        record.lock().unwrap().push(done);
                    }
                });
            }
        });
        Self { addr, accepted, finished, accept }
    }

    /// Waits for the first connection the client gave up on.
    async fn first_finished(&self) -> Finished {
        let deadline = Instant::now() + SOON;
        loop {
            if let Some(done) = self.finished.lock().unwrap().first() {
                return *done;
            }
            assert!(Instant::now() < deadline, "the client never let go of the connection");
            sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn misbehave(mut stream: TcpStream, kind: Hostile) -> Option<Finished> {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !matches!(kind, Hostile::StreamAtOnce) && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let started = Instant::now();
    let mut sent = 0;
    async fn send_counted(
        stream: &mut TcpStream,
        data: Vec<u8>,
        sent: &mut usize,
    ) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt;
        stream.write_all(&data).await?;
        *sent += data.len();
        Ok(())
    }
    macro_rules! send {
        ($stream:expr, $data:expr) => {
            send_counted($stream, $data, &mut sent)
        };
    }
    let failed = match kind {
        Hostile::EndlessBody | Hostile::StreamAtOnce => {
            let mut result =
                send!(&mut stream, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n".to_vec())
                    .await;
            while result.is_ok() {
                result = send!(&mut stream, vec![b'x'; 64 * 1024]).await;
            }
            result
        }
        Hostile::Drip(every) => {
            let response = b"HTTP/1.1 200 OK\r\n"
                .iter()
                .copied()
                .chain(b"X-Drip: 1\r\n".iter().copied().cycle());
            let mut result = Ok(());
            for byte in response {
                result = send!(&mut stream, vec![byte]).await;
                if result.is_err() {
                    break;
                }
                sleep(every).await;
            }
            result
        }
        Hostile::EndlessHeaders => {
            let mut result = send!(&mut stream, b"HTTP/1.1 200 OK\r\n".to_vec()).await;
            let line = format!("X-Filler: {}\r\n", "a".repeat(1000)).into_bytes();
            while result.is_ok() {
                result = send!(&mut stream, line.clone()).await;
            }
            result
        }
        Hostile::Gzip(body) => {
            let head =
                b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Type: text/html\r\n\r\n";
            let mut result = send!(&mut stream, head.to_vec()).await;
            if result.is_ok() {
                result = send!(&mut stream, body.to_vec()).await;
            }
            // Held open: only the client can end it. Reading sees it go.
            while result.is_ok() {
                result = match stream.read(&mut buf).await {
                    Ok(0) => Err(std::io::ErrorKind::UnexpectedEof.into()),
                    Ok(_) => Ok(()),
                    Err(e) => Err(e),
                };
            }
            result
        }
    };
    failed.err().map(|_| Finished { sent, lasted: started.elapsed() })
}

fn hostile_check(name: &str, addr: SocketAddr, search: bool, timeout: Duration) -> Check {
    let mut check = http_check(name, addr, "/");
    if search {
        check = with_search(check);
    }
    check.interval = Duration::from_millis(500);
    check.timeout = timeout;
    check
}

/// Finding 8: a pass or fail is decided by the status line; the body is not read.
#[tokio::test]
async fn an_endless_body_is_not_read_when_the_status_decides() {
    let target = HostileTarget::start(Hostile::EndlessBody).await;
    let timeout = Duration::from_secs(4);
    let h = Harness::new();
    h.set(&[hostile_check("endless", target.addr, false, timeout)]);
    let state = h.wait_reason("endless", "StatusCode200").await;
    assert!(state.latency.unwrap().total_ms < timeout.as_secs_f64() * 1000.0 / 2.0, "{state:?}");
    let done = target.first_finished().await;
    eprintln!("endless body, no search string: {done:?}");
    // What the socket buffers swallow, not a body streamed until the timeout.
    assert!(done.sent < 32 << 20, "{done:?}");
    assert!(done.lasted < timeout / 2, "{done:?}");
}

/// Finding 8 as it shows in a running server: the idle connection kept to notice a
/// target going away must not read a target that streams to every connection.
#[tokio::test]
async fn a_target_that_streams_to_every_connection_is_not_read_forever() {
    let target = HostileTarget::start(Hostile::StreamAtOnce).await;
    let h = Harness::new();
    let mut check = hostile_check("streams", target.addr, false, Duration::from_secs(2));
    check.interval = Duration::from_millis(300);
    h.set(&[check]);
    h.wait_state("streams", "three passing probes", |s| s.consecutive_successes >= 3).await;
    // Every connection, the watch connection included, is let go of.
    let deadline = Instant::now() + SOON;
    loop {
        let finished = target.finished.lock().unwrap().len();
        if finished >= 2 && finished == target.accepted.load(Ordering::SeqCst) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{finished} of {} connections ended",
            target.accepted.load(Ordering::SeqCst)
        );
        sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(h.metric("failoverdns_probe_watch_connections"), 0.0);
    assert_eq!(
        h.metric("failoverdns_probe_early_total"),
        0.0,
        "unsolicited data is no sign of death"
    );
    assert!(h.state("streams").unwrap().healthy);
    for done in target.finished.lock().unwrap().iter() {
        assert!(done.sent < 32 << 20, "{done:?}");
    }
}

#[tokio::test]
async fn an_endless_body_is_read_only_up_to_the_search_window() {
    let target = HostileTarget::start(Hostile::EndlessBody).await;
    let timeout = Duration::from_secs(4);
    let mut h = Harness::new();
    h.set(&[hostile_check("endless-search", target.addr, true, timeout)]);
    let update = h.next_update().await;
    assert_update(&update, "endless-search", false, "SearchStringNotFound");
    assert!(update.health.latency.unwrap().total_ms < timeout.as_secs_f64() * 1000.0 / 2.0);
    let done = target.first_finished().await;
    eprintln!("endless body, search string: {done:?}");
    assert!(done.sent < 32 << 20, "{done:?}");
    assert!(done.lasted < timeout / 2, "{done:?}");
}

#[tokio::test]
async fn a_dripping_response_ends_at_the_check_timeout() {
    let timeout = Duration::from_secs(1);
    for search in [false, true] {
        let target = HostileTarget::start(Hostile::Drip(Duration::from_millis(50))).await;
        let name = if search { "drip-search" } else { "drip" };
        let mut h = Harness::new();
        h.set(&[hostile_check(name, target.addr, search, timeout)]);
        let update = h.next_update().await;
        assert_update(&update, name, false, "Timeout");
        let total = update.health.latency.unwrap().total_ms;
        eprintln!("{name}: verdict after {total:.0} ms");
        // The timeout bounds the whole probe; the slack is scheduling, not the target.
        assert!(total < timeout.as_secs_f64() * 1000.0 + 1500.0, "{total} ms");
        target.first_finished().await;
    }
}

#[tokio::test]
async fn endless_response_headers_are_an_invalid_response() {
    let target = HostileTarget::start(Hostile::EndlessHeaders).await;
    let timeout = Duration::from_secs(4);
    let mut h = Harness::new();
    h.set(&[hostile_check("headers", target.addr, false, timeout)]);
    let update = h.next_update().await;
    assert_update(&update, "headers", false, "InvalidHttpResponse");
    assert!(update.health.message.contains("too large"), "{}", update.health.message);
    let done = target.first_finished().await;
    eprintln!("endless headers: {done:?}");
    assert!(done.sent < 32 << 20, "{done:?}");
    assert!(done.lasted < timeout / 2, "{done:?}");
}

#[tokio::test]
async fn a_gzip_bomb_is_decoded_only_up_to_the_search_window() {
    // 64 MiB of zeros in 64 KiB: the needle, if any, after the window or at the start.
    let mut zeros = vec![0u8; 64 << 20];
    let bomb = Arc::new(gzip(&zeros));
    zeros[..NEEDLE.len()].copy_from_slice(NEEDLE.as_bytes());
    let found = Arc::new(gzip(&zeros));
    drop(zeros);
    eprintln!("gzip bomb: {} bytes for 64 MiB", bomb.len());
    let timeout = Duration::from_secs(4);
    let (bomb_target, found_target) = (
        HostileTarget::start(Hostile::Gzip(bomb)).await,
        HostileTarget::start(Hostile::Gzip(found)).await,
    );
    let h = Harness::new();
    h.set(&[
        hostile_check("bomb", bomb_target.addr, true, timeout),
        hostile_check("found", found_target.addr, true, timeout),
    ]);
    let state = h.wait_reason("bomb", "SearchStringNotFound").await;
    assert!(state.latency.unwrap().total_ms < timeout.as_secs_f64() * 1000.0 / 2.0, "{state:?}");
    let state = h.wait_reason("found", "StatusCode200").await;
    assert!(state.message.contains("search string found"), "{state:?}");
    // The client hung up without waiting for the rest of the stream.
    assert!(bomb_target.first_finished().await.lasted < timeout / 2);
}
