//! The `sluice` binary with HTTPS: `--tls-cert`/`--tls-key` serve the files' certificate,
//! SIGHUP re-reads them (a bad new file keeps the one in force and the process running), and
//! `--tls-self-signed` starts with a warning; the startup line shows an https:// URL.

#[path = "support/binary.rs"]
mod binary;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use binary::Sluice;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    der: CertificateDer<'static>,
}

impl Ca {
    fn new() -> anyhow::Result<Self> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate()?;
        let der = params.self_signed(&key)?.der().clone();
        Ok(Self {
            issuer: Issuer::new(params, key),
            der,
        })
    }

    /// Writes a new localhost certificate and key to the two files; returns the certificate.
    fn write_leaf(&self, cert: &Path, key: &Path) -> anyhow::Result<CertificateDer<'static>> {
        let params = CertificateParams::new(vec!["localhost".to_owned()])?;
        let key_pair = KeyPair::generate()?;
        let leaf = params.signed_by(&key_pair, &self.issuer)?;
        std::fs::write(cert, leaf.pem())?;
        std::fs::write(key, key_pair.serialize_pem())?;
        Ok(leaf.der().clone())
    }

    fn connector(&self) -> anyhow::Result<TlsConnector> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone())?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(TlsConnector::from(Arc::new(config)))
    }
}

/// Runs `sluice` with `args`; returns it and the address in its https:// startup line.
fn start(args: &[&str]) -> anyhow::Result<(Sluice, SocketAddr, String)> {
    let server = Sluice::start(args, &[])?;
    anyhow::ensure!(
        server.first_line.contains("https://"),
        "no https:// address in {:?}",
        server.first_line
    );
    let address = server.address.parse()?;
    let first = server.first_line.clone();
    Ok((server, address, first))
}

/// The certificate served to a new connection, and its /healthz status.
async fn served(
    connector: &TlsConnector,
    addr: SocketAddr,
) -> anyhow::Result<(CertificateDer<'static>, String)> {
    let tcp = TcpStream::connect(addr).await?;
    let mut tls = tokio::time::timeout(
        Duration::from_secs(5),
        connector.connect(ServerName::try_from("localhost")?, tcp),
    )
    .await??;
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first().cloned())
        .ok_or_else(|| anyhow::anyhow!("no certificate"))?;
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut answer)).await??;
    let status = String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    Ok((leaf, status))
}

/// Stops the server with SIGTERM; returns its log lines after the startup line.
fn stop(server: Sluice) -> anyhow::Result<String> {
    let (_, lines) = server.stop()?;
    Ok(lines.join("\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_files_and_a_bad_file_keeps_the_old() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("sluice-https-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (cert, key) = (dir.join("fullchain.pem"), dir.join("privkey.pem"));
    let ca = Ca::new()?;
    let first = ca.write_leaf(&cert, &key)?;
    let (child, addr, line) = start(&[
        "--tls-cert",
        cert.to_str().unwrap_or_default(),
        "--tls-key",
        key.to_str().unwrap_or_default(),
    ])?;
    anyhow::ensure!(line.contains("web app on https://"), "{line}");
    let connector = ca.connector()?;
    let (leaf, status) = served(&connector, addr).await?;
    anyhow::ensure!(leaf == first, "the files' certificate is served");
    anyhow::ensure!(status.starts_with("HTTP/1.1 200"), "{status}");

    // Plain HTTP to the port gets no HTTP response.
    let mut plain = TcpStream::connect(addr).await?;
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await?;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut answer)).await?;
    anyhow::ensure!(!answer.starts_with(b"HTTP/"), "{answer:?}");

    let renewed = ca.write_leaf(&cert, &key)?;
    child.signal("HUP")?;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (leaf, status) = served(&connector, addr).await?;
        anyhow::ensure!(status.starts_with("HTTP/1.1 200"), "{status}");
        if leaf == renewed {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "SIGHUP did not reload the certificate"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\ncut off")?;
    child.signal("HUP")?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (leaf, status) = served(&connector, addr).await?;
    anyhow::ensure!(leaf == renewed, "a bad file keeps the certificate in force");
    anyhow::ensure!(status.starts_with("HTTP/1.1 200"), "{status}");

    let stderr = stop(child)?;
    anyhow::ensure!(stderr.contains("TLS certificate reloaded"), "{stderr}");
    anyhow::ensure!(stderr.contains("NOT reloaded"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Accepts whatever certificate the server shows (checking only that the handshake is
/// signed with its key) and keeps it, to compare with the fingerprint `sluice` printed.
#[derive(Debug)]
struct Recorder {
    seen: std::sync::Mutex<Option<CertificateDer<'static>>>,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl rustls::client::danger::ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        *self
            .seen
            .lock()
            .map_err(|_| rustls::Error::General("poisoned".into()))? =
            Some(end_entity.clone().into_owned());
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_signed_starts_on_https_with_a_warning_and_the_fingerprint() -> anyhow::Result<()> {
    let (child, addr, line) = start(&["--tls-self-signed"])?;
    anyhow::ensure!(line.contains("https://"), "{line}");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let recorder = Arc::new(Recorder {
        seen: std::sync::Mutex::new(None),
        algorithms: provider.signature_verification_algorithms,
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone())
        .with_no_client_auth();
    let (_, status) = served(&TlsConnector::from(Arc::new(config)), addr).await?;
    anyhow::ensure!(status.starts_with("HTTP/1.1 200"), "{status}");
    let seen = recorder
        .seen
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone()
        .ok_or_else(|| anyhow::anyhow!("no certificate seen"))?;
    let fingerprint = rtc_core::dtls::Fingerprint::of_certificate_der(&seen).to_string();

    let stderr = stop(child)?;
    anyhow::ensure!(
        stderr.contains("WARNING") && stderr.contains("LAN"),
        "{stderr}"
    );
    anyhow::ensure!(
        stderr.contains("localhost") && stderr.contains("127.0.0.1"),
        "{stderr}"
    );
    anyhow::ensure!(
        stderr.contains(&fingerprint),
        "the warning shows the served certificate's {fingerprint}: {stderr}"
    );
    Ok(())
}
