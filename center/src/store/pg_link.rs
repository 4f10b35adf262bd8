//! How the center reaches its PostgreSQL store: the link's security. The store
//! holds the election's keys and every batch, so a database reached over the
//! network is reached over TLS 1.3 only, its certificate verified against the CA
//! named in `PGSSLROOTCERT` (libpq's variable), and the server's name checked.
//! Only a database on this machine (a Unix socket, or a loopback address) may be
//! reached without TLS. There is no switch that turns this off: `sslmode=disable`
//! is refused for a database over the network.
//!
//! The decision ([`link_for`]) is pure: the parsed URL and the CA file's path in,
//! plain or TLS (or why neither) out.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use postgres::config::{Host, SslMode};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::{CenterError, Result};

/// Environment variable naming the CA certificate(s), PEM, that signed the
/// database server's certificate (as libpq reads it).
pub const ROOT_CERT_ENV: &str = "PGSSLROOTCERT";

/// How to reach the database.
pub enum Link {
    /// Without TLS: only to this machine.
    Plain,
    /// TLS 1.3, the server's certificate verified against these roots.
    Tls(MakeRustlsConnect),
}

/// Whether every host `config` names is on this machine.
pub fn is_local(config: &postgres::Config) -> bool {
    let hosts_local = config.get_hosts().iter().all(|h| match h {
        Host::Unix(_) => true,
        Host::Tcp(name) => {
            name == "localhost"
                || name
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
    });
    hosts_local && config.get_hostaddrs().iter().all(|ip| ip.is_loopback())
}

/// The link to the database `config` names, with the CA file `roots` (from
/// [`ROOT_CERT_ENV`]) if given. Over the network TLS is required (a URL's
/// `prefer`, the default, becomes `require`); on this machine TLS is used when
/// the URL asks for it or a CA is given.
pub fn link_for(config: &mut postgres::Config, roots: Option<&Path>) -> Result<Link> {
    let local = is_local(config);
    let refuse = |detail: String| Err(CenterError::Postgres { detail });
    if config.get_ssl_mode() == SslMode::Disable {
        if local {
            return Ok(Link::Plain);
        }
        return refuse(
            "the store's database is reached over the network: TLS is required there (remove sslmode=disable)".into(),
        );
    }
    if !local {
        config.ssl_mode(SslMode::Require);
    }
    match roots {
        Some(path) => Ok(Link::Tls(MakeRustlsConnect::new(client_config(path)?))),
        None if local && config.get_ssl_mode() == SslMode::Prefer => Ok(Link::Plain),
        None => refuse(format!(
            "TLS to the store's database needs the CA certificate that signed the server's: set {ROOT_CERT_ENV} to its PEM file"
        )),
    }
}

/// `url` with libpq's verifying modes (`sslmode=verify-full`, `verify-ca`), which
/// the client library does not know, read as `require`: this link verifies the
/// server's certificate and name whenever it uses TLS.
pub fn with_known_sslmode(url: &str) -> std::borrow::Cow<'_, str> {
    if url.contains("sslmode=verify-") {
        url.replace("sslmode=verify-full", "sslmode=require")
            .replace("sslmode=verify-ca", "sslmode=require")
            .into()
    } else {
        url.into()
    }
}

/// The link to `config`'s database, the CA file taken from [`ROOT_CERT_ENV`].
pub fn link_from_env(config: &mut postgres::Config) -> Result<Link> {
    let roots: Option<PathBuf> = std::env::var_os(ROOT_CERT_ENV).map(PathBuf::from);
    link_for(config, roots.as_deref())
}

/// TLS 1.3 with the certificates of the PEM file at `path` as the only roots.
fn client_config(path: &Path) -> Result<rustls::ClientConfig> {
    let bad = |detail: String| CenterError::Postgres {
        detail: format!("{ROOT_CERT_ENV}={}: {detail}", path.display()),
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no certificate in it".into()));
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| bad(format!("not a usable CA certificate: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> postgres::Config {
        url.parse().expect("a URL")
    }

    fn ca_file(dir: &Path) -> PathBuf {
        let ca = pollsync_proto::ElectionCa::generate("test-2021", pollsync_election::Mode::Test)
            .expect("a CA");
        let path = dir.join("ca.pem");
        std::fs::write(&path, ca.cert_pem()).expect("CA file");
        path
    }

    #[test]
    fn a_database_over_the_network_is_reached_only_over_verified_tls() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = ca_file(dir.path());
        for url in [
            "postgres://u@db.example:5432/x",
            "postgres://u@10.0.0.5/x",
            "postgres://u@db.example/x?sslmode=prefer",
        ] {
            let mut c = config(url);
            let err = link_for(&mut c, None).err().map(|e| e.to_string());
            assert!(
                err.as_deref().is_some_and(|e| e.contains(ROOT_CERT_ENV)),
                "{url}: {err:?}"
            );
            let mut c = config(url);
            assert!(
                matches!(link_for(&mut c, Some(&ca)), Ok(Link::Tls(_))),
                "{url}"
            );
            assert_eq!(
                c.get_ssl_mode(),
                SslMode::Require,
                "{url}: prefer becomes require"
            );
        }
        let mut c = config("postgres://u@db.example/x?sslmode=disable");
        let err = link_for(&mut c, Some(&ca)).err().map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("TLS is required")),
            "{err:?}"
        );
    }

    #[test]
    fn libpq_verifying_modes_are_read_as_require() {
        for url in [
            "postgres://u@db.example/x?sslmode=verify-full",
            "postgres://u@db.example/x?sslmode=verify-ca&application_name=c",
        ] {
            let c = config(&with_known_sslmode(url));
            assert_eq!(c.get_ssl_mode(), SslMode::Require, "{url}");
        }
        assert_eq!(with_known_sslmode("postgres://u@h/x"), "postgres://u@h/x");
    }

    #[test]
    fn a_database_on_this_machine_may_be_reached_without_tls() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = ca_file(dir.path());
        for url in [
            "postgres://u@127.0.0.1:5432/x",
            "postgres://u@localhost/x",
            "postgres://u@[::1]/x",
            "postgres://u@%2Fvar%2Frun%2Fpostgresql/x",
            "postgres://u@127.0.0.1/x?sslmode=disable",
        ] {
            let mut c = config(url);
            assert!(is_local(&c), "{url}");
            assert!(matches!(link_for(&mut c, None), Ok(Link::Plain)), "{url}");
        }
        // Asked for, TLS is verified here too.
        let mut c = config("postgres://u@127.0.0.1/x?sslmode=require");
        assert!(link_for(&mut c, None).is_err());
        let mut c = config("postgres://u@127.0.0.1/x?sslmode=require");
        assert!(matches!(link_for(&mut c, Some(&ca)), Ok(Link::Tls(_))));
        // A file without a certificate is named.
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").expect("file");
        let mut c = config("postgres://u@db.example/x");
        let err = link_for(&mut c, Some(&empty)).err().map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("empty.pem") && e.contains("no certificate")),
            "{err:?}"
        );
    }
}
