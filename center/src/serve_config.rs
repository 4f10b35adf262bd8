//! `center serve --config FILE`: the serve options read from a TOML file (the keys
//! are the long options' names with `_` for `-`; `deploy/center.toml` is a commented
//! example). An option given on the command line wins over the file; what neither
//! gives takes the built-in default.

use std::path::{Path, PathBuf};

use pollsync_proto::fsutil::{BoundedReadError, read_at_most};
use serde::Deserialize;

use crate::logging::LogFormat;

/// Largest configuration file read.
pub const MAX_CONFIG_BYTES: u64 = 64 * 1024;
/// Where stations connect when neither the command line nor the file says.
pub const DEFAULT_GRPC: &str = "127.0.0.1:7443";
/// Where operators connect when neither the command line nor the file says.
pub const DEFAULT_HTTP: &str = "127.0.0.1:7480";

/// The options of `center serve`, each absent when not given: on the command line
/// (their help is these comments) and in the configuration file alike.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct ServeOptions {
    /// Address to listen on for stations (port 0 picks a free one; the address
    /// is printed as `gRPC listening on ADDR`). Default 127.0.0.1:7443.
    #[arg(long, value_name = "HOST:PORT")]
    pub grpc: Option<String>,
    /// Address of the operators' dashboard and API (printed as `HTTP listening
    /// on ADDR`). Beyond loopback an access token is required: set
    /// POLLSYNC_HTTP_TOKEN or pass --http-token-file. Default 127.0.0.1:7480.
    #[arg(long, value_name = "HOST:PORT")]
    pub http: Option<String>,
    /// File holding the operators' bearer token (at least 16 characters).
    #[arg(long, value_name = "FILE")]
    pub http_token_file: Option<PathBuf>,
    /// Most connections to the gRPC port at once (default: sized from the
    /// descriptor limit, which the center raises at start where it can).
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Most connections still in their TLS handshake at once (default: sized
    /// from the descriptor limit).
    #[arg(long, value_name = "N")]
    pub max_handshakes: Option<usize>,
    /// A host name operators use to reach the dashboard (repeatable), beside
    /// the advertised hosts, the bound address and loopback names; requests
    /// naming any other Host are refused (DNS rebinding).
    #[arg(long, value_name = "NAME")]
    #[serde(default)]
    pub http_host: Vec<String>,
    /// How log events are written to stderr: `human` (one line per event, the
    /// default) or `json` (one object per line). `RUST_LOG` chooses what is
    /// logged (default `info`).
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
}

/// Why a configuration file was not used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: {source}")]
    Read {
        /// The file as given.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is over the size limit.
    #[error("{file}: {bytes} bytes; a serve configuration is at most {max} bytes")]
    TooLarge {
        /// The file as given.
        file: PathBuf,
        /// Its size, in bytes.
        bytes: u64,
        /// Largest size accepted, in bytes.
        max: u64,
    },
    /// The file is not UTF-8 text or not a valid serve configuration.
    #[error("{file}: {reason}")]
    Invalid {
        /// The file as given.
        file: PathBuf,
        /// What is wrong, with the line and key when known.
        reason: String,
    },
}

impl ServeOptions {
    /// Reads `file` (bounded in size; unknown keys and wrong types are refused,
    /// naming the key).
    pub fn read(file: &Path) -> Result<ServeOptions, ConfigError> {
        let raw = read_at_most(file, MAX_CONFIG_BYTES).map_err(|e| match e {
            BoundedReadError::Io(source) => ConfigError::Read {
                file: file.to_path_buf(),
                source,
            },
            BoundedReadError::TooLarge { bytes } => ConfigError::TooLarge {
                file: file.to_path_buf(),
                bytes,
                max: MAX_CONFIG_BYTES,
            },
        })?;
        let text = String::from_utf8(raw).map_err(|_| ConfigError::Invalid {
            file: file.to_path_buf(),
            reason: "not UTF-8 text".into(),
        })?;
        toml::from_str(&text).map_err(|e| {
            let line = e.span().map_or(0, |span| {
                1 + text.as_bytes()[..span.start.min(text.len())]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count()
            });
            ConfigError::Invalid {
                file: file.to_path_buf(),
                reason: format!(
                    "line {line}: {}",
                    pollsync_proto::limits::escape_text(
                        e.message(),
                        pollsync_proto::limits::MAX_DETAIL_CHARS
                    )
                ),
            }
        })
    }

    /// These options over `file`'s: each given here wins; host names add up.
    pub fn over(self, file: ServeOptions) -> ServeOptions {
        let mut http_host = file.http_host;
        http_host.extend(self.http_host);
        ServeOptions {
            grpc: self.grpc.or(file.grpc),
            http: self.http.or(file.http),
            http_token_file: self.http_token_file.or(file.http_token_file),
            max_connections: self.max_connections.or(file.max_connections),
            max_handshakes: self.max_handshakes.or(file.max_handshakes),
            http_host,
            log_format: self.log_format.or(file.log_format),
        }
    }

    /// The log format (human unless given).
    pub fn log_format(&self) -> LogFormat {
        self.log_format.unwrap_or_default()
    }

    /// The gRPC address to listen on.
    pub fn grpc(&self) -> &str {
        self.grpc.as_deref().unwrap_or(DEFAULT_GRPC)
    }

    /// The operators' HTTP address to listen on.
    pub fn http(&self) -> &str {
        self.http.as_deref().unwrap_or(DEFAULT_HTTP)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("center.toml");
        std::fs::write(&path, text).expect("write");
        (dir, path)
    }

    #[test]
    fn the_example_in_deploy_reads_and_the_command_line_wins() {
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/center.toml");
        let file = ServeOptions::read(Path::new(example)).expect("the example reads");
        assert_eq!(file.grpc(), "0.0.0.0:7443");
        assert!(file.http_token_file.is_some());
        let cli = ServeOptions {
            grpc: Some("127.0.0.1:9000".into()),
            http_host: vec!["wall.example".into()],
            ..Default::default()
        };
        let both = cli.over(file.clone());
        assert_eq!(both.grpc(), "127.0.0.1:9000");
        assert_eq!(both.http(), file.http());
        assert_eq!(both.http_token_file, file.http_token_file);
        assert_eq!(
            both.http_host.last().map(String::as_str),
            Some("wall.example")
        );
        assert_eq!(ServeOptions::default().grpc(), DEFAULT_GRPC);
        assert_eq!(file.log_format(), LogFormat::Human, "commented out there");
    }

    #[test]
    fn logs_are_for_people_unless_json_is_asked_for() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            options: ServeOptions,
        }
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))
                .map(|c| c.options)
        };
        let none = parse(&[]).expect("no options");
        assert_eq!(none.log_format, None);
        assert_eq!(none.log_format(), LogFormat::Human);
        let json = parse(&["--log-format", "json"]).expect("json");
        assert_eq!(json.log_format(), LogFormat::Json);
        assert_eq!(
            parse(&["--log-format", "human"])
                .expect("human")
                .log_format(),
            LogFormat::Human
        );
        assert!(parse(&["--log-format", "xml"]).is_err());
        let (_d, path) = write("log_format = \"json\"\n");
        let file = ServeOptions::read(&path).expect("reads");
        assert_eq!(file.log_format(), LogFormat::Json);
        assert_eq!(
            ServeOptions::default().over(file.clone()).log_format(),
            LogFormat::Json
        );
        assert_eq!(json.over(file).log_format(), LogFormat::Json);
        let human = parse(&["--log-format", "human"]).expect("human");
        let (_d, path) = write("log_format = \"json\"\n");
        let file = ServeOptions::read(&path).expect("reads");
        assert_eq!(
            human.over(file).log_format(),
            LogFormat::Human,
            "the command line wins"
        );
        let (_d, path) = write("log_format = \"xml\"\n");
        assert!(ServeOptions::read(&path).is_err());
    }

    #[test]
    fn a_bad_file_is_refused_naming_the_key() {
        let (_d, path) = write("grpc = \"0.0.0.0:7443\"\nmax_conections = 10\n");
        let e = ServeOptions::read(&path).unwrap_err().to_string();
        assert!(
            e.contains("center.toml") && e.contains("max_conections"),
            "{e}"
        );
        let (_d, path) = write("max_connections = \"many\"\n");
        let e = ServeOptions::read(&path).unwrap_err().to_string();
        assert!(e.contains("center.toml"), "{e}");
        let (_d, path) = write(&"#".repeat(MAX_CONFIG_BYTES as usize + 1));
        assert!(matches!(
            ServeOptions::read(&path),
            Err(ConfigError::TooLarge { .. })
        ));
        assert!(matches!(
            ServeOptions::read(Path::new("/nonexistent/center.toml")),
            Err(ConfigError::Read { .. })
        ));
    }
}
