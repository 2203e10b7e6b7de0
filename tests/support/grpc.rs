//! A gRPC server on loopback for the GRPC checks: tonic-health's own health service
//! (the standard `grpc.health.v1.Health`) served over HTTP/2 by hyper, cleartext or
//! TLS with a self-signed certificate, or a gRPC server without the health service.
//! It runs on a runtime and thread of its own, so sync tests (the real binary) and
//! async ones use it alike; dropping it stops it, every connection included.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// What the server serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrpcKind {
    /// The standard health service; the whole server starts SERVING.
    Health,
    /// A gRPC server without the health service: every call is UNIMPLEMENTED.
    NoHealth,
}

pub struct GrpcTarget {
    pub addr: SocketAddr,
    reporter: HealthReporter,
    runtime: Option<tokio::runtime::Runtime>,
    accept: Option<JoinHandle<()>>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    connections: Arc<AtomicUsize>,
    /// Every TLS handshake's SNI.
    snis: Arc<Mutex<Vec<Option<String>>>>,
    /// Every call's `:authority` and path.
    calls: Arc<Mutex<Vec<(String, String)>>>,
}

impl GrpcTarget {
    /// A cleartext server with the health service on a free loopback port.
    pub fn start() -> GrpcTarget {
        Self::start_on("127.0.0.1:0".parse().unwrap(), GrpcKind::Health, false)
    }

    /// `tls`: TLS with a fresh self-signed certificate for `grpc.example.test`,
    /// offering `h2` by ALPN.
    pub fn start_on(addr: SocketAddr, kind: GrpcKind, tls: bool) -> GrpcTarget {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = std::net::TcpListener::bind(addr).expect("bind the gRPC target");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (reporter, health) = tonic_health::server::health_reporter();
        let acceptor = tls.then(self_signed_h2_acceptor);
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let connections = Arc::new(AtomicUsize::new(0));
        let snis: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
        let calls: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let (c, n, s, seen) = (conns.clone(), connections.clone(), snis.clone(), calls.clone());
        let accept = runtime.spawn(async move {
            let listener = TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                n.fetch_add(1, Ordering::SeqCst);
                let (health, acceptor, s, seen) =
                    (health.clone(), acceptor.clone(), s.clone(), seen.clone());
                let conn = tokio::spawn(async move {
                    match acceptor {
                        Some(acceptor) => {
                            let Ok(tls) = acceptor.accept(stream).await else { return };
                            s.lock()
                                .unwrap()
                                .push(tls.get_ref().1.server_name().map(str::to_owned));
                            serve(tls, kind, health, seen).await
                        }
                        None => serve(stream, kind, health, seen).await,
                    }
                });
                c.lock().unwrap().push(conn);
            }
        });
        GrpcTarget {
            addr,
            reporter,
            runtime: Some(runtime),
            accept: Some(accept),
            conns,
            connections,
            snis,
            calls,
        }
    }

    /// Sets what the health service answers for `service` ("" is the whole server);
    /// returns once the server answers so.
    pub fn set(&self, service: &str, status: ServingStatus) {
        let (done, wait) = std::sync::mpsc::channel();
        let (reporter, service) = (self.reporter.clone(), service.to_owned());
        self.runtime.as_ref().unwrap().spawn(async move {
            reporter.set_service_status(service, status).await;
            let _ = done.send(());
        });
        wait.recv_timeout(Duration::from_secs(10)).expect("the health status is set");
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn snis(&self) -> Vec<Option<String>> {
        self.snis.lock().unwrap().clone()
    }

    /// Every call's `:authority` and path, in order.
    pub fn calls(&self) -> Vec<(String, String)> {
        self.calls.lock().unwrap().clone()
    }

    /// Stops listening, then closes every connection, as a dying process would.
    pub fn kill(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
        }
        // The listener closes as its aborted task is dropped, on the server's thread.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(self.addr).is_ok() {
            assert!(std::time::Instant::now() < deadline, "the killed target still listens");
            std::thread::sleep(Duration::from_millis(5));
        }
        for conn in self.conns.lock().unwrap().drain(..) {
            conn.abort();
        }
    }
}

impl Drop for GrpcTarget {
    fn drop(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
        }
        for conn in self.conns.lock().unwrap().drain(..) {
            conn.abort();
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

async fn serve<S, H>(io: S, kind: GrpcKind, health: H, calls: Arc<Mutex<Vec<(String, String)>>>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: tower_service::Service<
            Request<hyper::body::Incoming>,
            Response = Response<tonic::body::Body>,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    H::Future: Send + 'static,
{
    let record = move |request: &Request<hyper::body::Incoming>| {
        let authority = request.uri().authority().map(|a| a.to_string()).unwrap_or_default();
        calls.lock().unwrap().push((authority, request.uri().path().to_owned()));
    };
    let builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    match kind {
        GrpcKind::Health => {
            let service = hyper::service::service_fn(move |request| {
                record(&request);
                let mut health = health.clone();
                async move { tower_service::Service::call(&mut health, request).await }
            });
            let _ = builder.serve_connection(TokioIo::new(io), service).await;
        }
        GrpcKind::NoHealth => {
            let service = hyper::service::service_fn(move |request| {
                record(&request);
                async { Ok::<_, Infallible>(unimplemented_response()) }
            });
            let _ = builder.serve_connection(TokioIo::new(io), service).await;
        }
    }
}

/// What a gRPC server answers for a service it does not have (trailers-only).
fn unimplemented_response() -> Response<Empty<Bytes>> {
    Response::builder()
        .header("content-type", "application/grpc")
        .header("grpc-status", "12")
        .header("grpc-message", "unknown service grpc.health.v1.Health")
        .body(Empty::new())
        .unwrap()
}

/// A TLS acceptor with a fresh self-signed certificate (untrusted by anyone) that
/// offers `h2` by ALPN, as gRPC servers do.
fn self_signed_h2_acceptor() -> tokio_rustls::TlsAcceptor {
    let cert = rcgen::generate_simple_self_signed(vec!["grpc.example.test".to_string()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}
