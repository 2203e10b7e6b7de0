//! TLS for HTTPS and GRPC probes: a real handshake whose certificate is not validated
//! (Route 53 does not validate either), while the handshake signatures are still
//! verified so the peer must hold the key of the certificate it presents.
//!
//! The provider is passed explicitly (`builder_with_provider`), so nothing here
//! depends on a process-level default `CryptoProvider`; tonic comes without its
//! transport, so no other TLS stack or provider is linked in for GRPC checks.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

/// The client configurations the probes share.
#[derive(Clone)]
pub struct TlsClients {
    /// HTTPS probes: HTTP/1.1, no ALPN (as before GRPC existed).
    pub https: Arc<ClientConfig>,
    /// GRPC probes: offers `h2` by ALPN, which gRPC servers require over TLS.
    pub h2: Arc<ClientConfig>,
}

impl TlsClients {
    pub fn new() -> Self {
        let https = client_config();
        let mut h2 = (*https).clone();
        h2.alpn_protocols = vec![b"h2".to_vec()];
        Self { https, h2: Arc::new(h2) }
    }
}

/// The client configuration shared by every HTTPS probe.
fn client_config() -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        Arc::new(AnyCertificate { algorithms: provider.signature_verification_algorithms });
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Arc::new(config)
}

/// Accepts any certificate chain; delegates signature checks to the provider.
#[derive(Debug)]
struct AnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
