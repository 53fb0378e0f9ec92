//! HTTPS for the `sluice` binary: the certificate from `--tls-cert`/`--tls-key` (re-read on
//! SIGHUP) or one made at start for `--tls-self-signed`.

use std::collections::BTreeSet;
use std::net::IpAddr;

use anyhow::Context as _;
use signaling::TlsAcceptorHandle;

use crate::config::Config;

/// The certificate the HTTP port serves, or None for plain HTTP.
pub fn tls_from_config(config: &Config) -> anyhow::Result<Option<TlsAcceptorHandle>> {
    if let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) {
        let handle = TlsAcceptorHandle::from_pem_files(cert, key)
            .context("loading the TLS certificate (--tls-cert, --tls-key)")?;
        return Ok(Some(handle));
    }
    if !config.tls_self_signed {
        return Ok(None);
    }
    let names = self_signed_names(config);
    let handle = TlsAcceptorHandle::self_signed(&names)
        .context("generating the self-signed certificate (--tls-self-signed)")?;
    Ok(Some(handle))
}

/// Warns, once the server is up, that a `--tls-self-signed` certificate is in use: what it
/// covers, its fingerprint to check in the browser, and what to use instead.
pub fn warn_if_self_signed(config: &Config, handle: &TlsAcceptorHandle) {
    if !config.tls_self_signed || handle.files().is_some() {
        return;
    }
    tracing::warn!(
        fingerprint = %handle.fingerprint(),
        "WARNING: --tls-self-signed: serving a certificate made just now for {}. Browsers will \
         warn that the connection is not private until you accept it (check that it shows {}); \
         it is for trials on a LAN. For a public server use --tls-cert and --tls-key (for \
         example Let's Encrypt's files).",
        self_signed_names(config).join(", "),
        handle.fingerprint()
    );
}

/// localhost and loopback, this machine's host name and interface addresses, the HTTP
/// address it binds and the public address it announces.
pub fn self_signed_names(config: &Config) -> Vec<String> {
    let mut addresses: BTreeSet<IpAddr> = [
        IpAddr::from(std::net::Ipv4Addr::LOCALHOST),
        IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
    ]
    .into_iter()
    .collect();
    // Link-local addresses need a zone, which a URL to them rarely carries.
    addresses.extend(
        crate::candidates::interface_ips()
            .into_iter()
            .filter(|ip| !matches!(ip, IpAddr::V6(v6) if v6.is_unicast_link_local())),
    );
    for ip in std::iter::once(config.http.ip()).chain(config.public_ip.iter().copied()) {
        if !ip.is_unspecified() {
            addresses.insert(ip);
        }
    }
    let mut names = vec!["localhost".to_owned()];
    if let Some(host) = nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .filter(|name| !name.is_empty() && name != "localhost")
    {
        names.push(host);
    }
    names.extend(addresses.iter().map(IpAddr::to_string));
    names
}

/// Re-reads the certificate files on every SIGHUP from now on; a bad new file is reported
/// and the certificate in force stays. Does nothing for a certificate not read from files.
/// Call it within the runtime, before saying the server is up, so that no SIGHUP arrives
/// while it still has its default action (to end the process).
pub fn spawn_reload_on_sighup(handle: TlsAcceptorHandle) {
    #[cfg(unix)]
    {
        if handle.files().is_none() {
            return;
        }
        let mut hangups =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                Ok(signal) => signal,
                Err(error) => {
                    tracing::error!(
                        "cannot listen for SIGHUP, the certificate will not reload: {error}"
                    );
                    return;
                }
            };
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                match handle.reload() {
                    Ok(_) => tracing::info!(
                        fingerprint = %handle.fingerprint(),
                        "SIGHUP: TLS certificate reloaded"
                    ),
                    Err(error) => tracing::error!(
                        "SIGHUP: TLS certificate NOT reloaded, the one in force stays: {error}"
                    ),
                }
            }
        });
    }
    #[cfg(not(unix))]
    let _ = handle;
}
