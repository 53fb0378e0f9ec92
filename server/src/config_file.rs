//! The configuration file (`--config FILE`, TOML) and the order of the layers: a flag beats
//! its environment variable, which beats the file, which beats the default.
//!
//! The file layer knows no option by name. Its keys are the long flag names (`udp`,
//! `public-ip`, `workers`; `public_ip` is accepted too), and each value is handed to the same
//! clap parser as the flag would be, so that every option of [`Config`], present or added
//! later, can be set in the file, with the same validation. A key whose option already came
//! from the command line or the environment is left out. The one table that is not a flag is
//! `[keys]`: API key = secret, as many as needed ([`Config::api_keys_from_file`]).
//!
//! ```toml
//! udp = "0.0.0.0:3478"
//! public-ip = "203.0.113.7"
//! workers = 2
//!
//! [keys]
//! APIdev = "a long random secret"
//! ```

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, CommandFactory, FromArgMatches};

use crate::config::{Config, Layers};

/// Options (by long name) that make no sense in the file: the file itself and the one-shot
/// actions.
const NOT_IN_FILE: [&str; 4] = ["config", "print-config", "help", "version"];

/// The table of API keys.
const KEYS_TABLE: &str = "keys";

/// What [`Config::print_config`] writes instead of a secret.
pub const REDACTED: &str = "<redacted>";

/// Why the configuration could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    /// A flag or environment variable was wrong, or help or the version was asked for
    /// (`clap::Error::exit` prints it with the right exit code).
    Args(clap::Error),
    /// The configuration file could not be read or has a wrong key or value.
    File { path: PathBuf, message: String },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Args(error) => write!(f, "{error}"),
            Self::File { path, message } => write!(f, "{}: {message}", path.display()),
        }
    }
}

impl std::error::Error for LoadError {}

fn file_error(path: &Path, message: impl Into<String>) -> LoadError {
    LoadError::File {
        path: path.to_owned(),
        message: message.into(),
    }
}

impl Config {
    /// The configuration from the process's arguments, environment and `--config` file.
    pub fn load() -> Result<Config, LoadError> {
        Self::load_from(std::env::args_os())
    }

    /// The configuration from `args` (the first is the program name), the environment and
    /// the `--config` file they (or `SLUICE_CONFIG`) name.
    pub fn load_from<I, T>(args: I) -> Result<Config, LoadError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let command = Config::command();
        let first = command
            .clone()
            .try_get_matches_from(&args)
            .map_err(LoadError::Args)?;
        let Some(path) = first.get_one::<PathBuf>("config").cloned() else {
            return finish(first, Layers::default());
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| file_error(&path, format!("cannot be read: {e}")))?;
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| file_error(&path, format!("is not valid TOML: {e}")))?;

        let mut layers = Layers::default();
        let mut file_args: Vec<OsString> = Vec::new();
        for (key, value) in &table {
            if key == KEYS_TABLE {
                layers.api_keys = api_keys(&path, value)?;
                continue;
            }
            let long = key.replace('_', "-");
            let arg = command
                .get_arguments()
                .filter(|arg| arg.get_long() == Some(long.as_str()))
                .find(|_| !NOT_IN_FILE.contains(&long.as_str()))
                .ok_or_else(|| file_error(&path, format!("unknown key `{key}`")))?;
            let given = first.value_source(arg.get_id().as_str());
            if matches!(
                given,
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            ) {
                continue;
            }
            let arguments = arguments_for(&long, arg.get_action(), value)
                .map_err(|why| file_error(&path, format!("key `{key}`: {why}")))?;
            file_args.extend(arguments);
            layers.from_file.push(long);
        }

        // The file's values go right after the program name, before any subcommand.
        let mut all = Vec::with_capacity(args.len() + file_args.len());
        all.extend(args.first().cloned());
        all.extend(file_args);
        all.extend(args.iter().skip(1).cloned());
        let matches = command
            .try_get_matches_from(&all)
            .map_err(|error| blame_file(&path, &layers.from_file, error))?;
        finish(matches, layers)
    }

    /// The configuration in force as a TOML file that `--config` accepts, with where each
    /// value came from; secrets are replaced by `<redacted>`.
    pub fn print_config(&self) -> String {
        let mut text = String::from("# The configuration in force (sluice --print-config).\n");
        let Some(matches) = &self.layers.matches else {
            return text;
        };
        for arg in Config::command().get_arguments() {
            let id = arg.get_id().as_str();
            let Some(long) = arg.get_long() else {
                continue;
            };
            if NOT_IN_FILE.contains(&long) || arg.is_hide_set() {
                continue;
            }
            if let Some(help) = arg.get_help() {
                let help = help.to_string();
                let first = help.split(". ").next().unwrap_or_default();
                text.push_str(&format!("\n# {}\n", first.trim_end_matches('.')));
            }
            let raw: Vec<String> = matches
                .get_raw(id)
                .map(|values| {
                    values
                        .map(|value| value.to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            let source = match matches.value_source(id) {
                Some(_) if self.layers.from_file.iter().any(|f| f == long) => "file",
                Some(ValueSource::CommandLine) => "flag",
                Some(ValueSource::EnvVariable) => "environment",
                Some(ValueSource::DefaultValue) => "default",
                Some(_) | None => "not set",
            };
            if raw.is_empty() {
                text.push_str(&format!("# {long} is not set\n"));
                continue;
            }
            let secret = is_secret(long);
            let to_value = |raw: &String| -> toml::Value {
                if secret {
                    toml::Value::String(REDACTED.to_owned())
                } else if long == "ice-server" {
                    toml::Value::String(redact_ice_credential(raw))
                } else if !arg.get_action().takes_values() {
                    toml::Value::Boolean(raw == "true")
                } else if let Ok(number) = raw.parse::<i64>() {
                    toml::Value::Integer(number)
                } else {
                    toml::Value::String(raw.clone())
                }
            };
            let value = match (arg.get_action(), raw.as_slice()) {
                (ArgAction::Append, _) => toml::Value::Array(raw.iter().map(to_value).collect()),
                (_, [one]) => to_value(one),
                _ => toml::Value::Array(raw.iter().map(to_value).collect()),
            };
            text.push_str(&format!("{long} = {value} # {source}\n"));
        }
        if !self.layers.api_keys.is_empty() {
            text.push_str("\n# API keys and their secrets.\n[keys]\n");
            for (key, _) in &self.layers.api_keys {
                let key = toml::Value::String(key.clone());
                text.push_str(&format!("{key} = \"{REDACTED}\"\n"));
            }
        }
        text
    }
}

/// An `--ice-server` value with its TURN credential (`;credential=...`) redacted.
fn redact_ice_credential(value: &str) -> String {
    value
        .split(';')
        .map(|part| match part.trim().split_once('=') {
            Some(("credential", _)) => format!("credential={REDACTED}"),
            _ => part.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// Whether an option's value must not be printed.
fn is_secret(long: &str) -> bool {
    ["secret", "password", "token"]
        .iter()
        .any(|word| long.contains(word))
}

fn finish(matches: ArgMatches, mut layers: Layers) -> Result<Config, LoadError> {
    let mut config = Config::from_arg_matches(&matches).map_err(LoadError::Args)?;
    layers.matches = Some(matches);
    config.layers = layers;
    Ok(config)
}

/// The `[keys]` table: API key = secret.
fn api_keys(path: &Path, value: &toml::Value) -> Result<Vec<(String, String)>, LoadError> {
    let toml::Value::Table(table) = value else {
        return Err(file_error(
            path,
            "key `keys`: expected a table of API key = secret",
        ));
    };
    table
        .iter()
        .map(|(key, secret)| match secret {
            toml::Value::String(secret) if !key.is_empty() && !secret.is_empty() => {
                Ok((key.clone(), secret.clone()))
            }
            _ => Err(file_error(
                path,
                format!("key `keys.{key}`: expected a non-empty secret string"),
            )),
        })
        .collect()
}

/// The command-line arguments that give option `long` the file's `value`.
fn arguments_for(
    long: &str,
    action: &ArgAction,
    value: &toml::Value,
) -> Result<Vec<OsString>, String> {
    if !action.takes_values() {
        return match value {
            toml::Value::Boolean(true) => Ok(vec![format!("--{long}").into()]),
            toml::Value::Boolean(false) => Ok(Vec::new()),
            _ => Err("expected true or false".to_owned()),
        };
    }
    let values = match value {
        toml::Value::Array(items) if matches!(action, ArgAction::Append) => {
            items.iter().map(scalar).collect::<Result<Vec<_>, _>>()?
        }
        toml::Value::Array(_) => return Err("expected one value, not a list".to_owned()),
        other => vec![scalar(other)?],
    };
    // `--name=value`, so that a value starting with `-` is not taken for a flag.
    Ok(values
        .into_iter()
        .map(|v| format!("--{long}={v}").into())
        .collect())
}

/// One TOML value as the text a flag would carry.
fn scalar(value: &toml::Value) -> Result<String, String> {
    match value {
        toml::Value::String(text) => Ok(text.clone()),
        toml::Value::Integer(number) => Ok(number.to_string()),
        toml::Value::Float(number) => Ok(number.to_string()),
        toml::Value::Boolean(switch) => Ok(switch.to_string()),
        toml::Value::Datetime(at) => Ok(at.to_string()),
        toml::Value::Array(_) | toml::Value::Table(_) => {
            Err("expected a value, not a list or table".to_owned())
        }
    }
}

/// Turns a parse error caused by a value from the file into an error naming the file and
/// the key.
fn blame_file(path: &Path, from_file: &[String], error: clap::Error) -> LoadError {
    use clap::error::{ContextKind, ContextValue};
    let flag = match error.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(flag)) => flag.clone(),
        _ => String::new(),
    };
    let long: String = flag
        .trim_start_matches('-')
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    let rendered = error.to_string();
    let reason = rendered
        .lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .to_owned();
    match from_file.iter().find(|key| **key == long) {
        Some(key) => file_error(path, format!("key `{key}`: {reason}")),
        None if from_file.is_empty() => LoadError::Args(error),
        None => file_error(path, reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sluice-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn load(args: &[&str]) -> Result<Config, LoadError> {
        let mut all = vec!["sluice"];
        all.extend_from_slice(args);
        Config::load_from(all)
    }

    #[test]
    fn the_file_overrides_defaults_and_flags_override_the_file() {
        let path = file(
            "layers.toml",
            "udp = \"127.0.0.1:4000\"\npublic_ip = \"203.0.113.7\"\nworkers = 3\ngso = false\n",
        );
        let path = path.to_str().unwrap();
        let config = load(&["--config", path]).unwrap();
        assert_eq!(config.udp, "127.0.0.1:4000".parse().unwrap());
        assert_eq!(config.public_ip, [IpAddrV4([203, 0, 113, 7])]);
        assert_eq!(config.worker_count(), 3);
        assert_eq!(config.gso, Some(false));
        assert_eq!(config.http, "0.0.0.0:8080".parse().unwrap(), "default");

        let config = load(&[
            "--config",
            path,
            "--workers",
            "5",
            "--udp",
            "127.0.0.1:5000",
        ])
        .unwrap();
        assert_eq!(config.worker_count(), 5, "the flag wins over the file");
        assert_eq!(config.udp.port(), 5000);
        assert_eq!(config.public_ip, [IpAddrV4([203, 0, 113, 7])]);
        assert_eq!(config.layers.from_file, ["public-ip", "gso"]);
    }

    #[allow(non_snake_case)]
    fn IpAddrV4(octets: [u8; 4]) -> std::net::IpAddr {
        std::net::IpAddr::from(octets)
    }

    #[test]
    fn an_unknown_key_is_an_error_naming_it() {
        let path = file("unknown.toml", "udp = \"127.0.0.1:4000\"\nwrokers = 2\n");
        let error = load(&["--config", path.to_str().unwrap()]).unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, LoadError::File { .. }), "{text}");
        assert!(text.contains("unknown key `wrokers`"), "{text}");
        assert!(text.contains("unknown.toml"), "{text}");

        let path = file("config-key.toml", "config = \"other.toml\"\n");
        let text = load(&["--config", path.to_str().unwrap()])
            .unwrap_err()
            .to_string();
        assert!(text.contains("unknown key `config`"), "{text}");
    }

    #[test]
    fn a_bad_value_is_an_error_naming_the_key_and_the_file() {
        for (text, key) in [
            ("udp = \"not-an-address\"\n", "udp"),
            ("workers = 0\n", "workers"),
            ("gso = \"maybe\"\n", "gso"),
            ("print-config = 3\n", "print-config"),
            ("workers = [1, 2]\n", "workers"),
            ("[keys]\nAPIx = 5\n", "keys.APIx"),
        ] {
            let path = file("bad.toml", text);
            let error = load(&["--config", path.to_str().unwrap()]).unwrap_err();
            let message = error.to_string();
            assert!(matches!(error, LoadError::File { .. }), "{message}");
            assert!(message.contains("bad.toml"), "{message}");
            assert!(
                message.contains(&format!("key `{key}`")),
                "{text}: {message}"
            );
        }
        let path = file("broken.toml", "udp = \n");
        let message = load(&["--config", path.to_str().unwrap()])
            .unwrap_err()
            .to_string();
        assert!(message.contains("not valid TOML"), "{message}");
        let missing = load(&["--config", "/nonexistent/sluice.toml"]).unwrap_err();
        assert!(missing.to_string().contains("cannot be read"), "{missing}");
    }

    #[test]
    fn several_api_keys_come_from_the_keys_table() {
        let path = file(
            "keys.toml",
            "workers = 1\n[keys]\nAPIone = \"secret-one\"\nAPItwo = \"secret-two\"\n",
        );
        let config = load(&["--config", path.to_str().unwrap()]).unwrap();
        assert_eq!(
            config.api_keys_from_file(),
            [
                ("APIone".to_owned(), "secret-one".to_owned()),
                ("APItwo".to_owned(), "secret-two".to_owned())
            ]
        );
        let printed = config.print_config();
        assert!(!printed.contains("secret-one"), "{printed}");
        assert!(!format!("{config:?}").contains("secret-one"));
        assert!(printed.contains("\"APIone\" = \"<redacted>\""), "{printed}");
    }

    #[test]
    fn the_printed_configuration_reparses_as_a_config_file() {
        let path = file(
            "print.toml",
            "public-ip = \"203.0.113.7\"\nworkers = 2\n[keys]\nAPIk = \"s\"\n",
        );
        let config = load(&[
            "--config",
            path.to_str().unwrap(),
            "--udp",
            "127.0.0.1:4999",
            "--log-format",
            "json",
        ])
        .unwrap();
        let printed = config.print_config();
        assert!(
            printed.contains("udp = \"127.0.0.1:4999\" # flag"),
            "{printed}"
        );
        assert!(
            printed.contains("public-ip = [\"203.0.113.7\"] # file"),
            "{printed}"
        );
        assert!(printed.contains("workers = 2 # file"), "{printed}");
        assert!(
            printed.contains("http = \"0.0.0.0:8080\" # default"),
            "{printed}"
        );
        assert!(
            printed.contains("log-format = \"json\" # flag"),
            "{printed}"
        );
        assert!(!printed.contains("\nconfig ="), "{printed}");

        let again = file("printed.toml", &printed);
        let reloaded = load(&["--config", again.to_str().unwrap()]).unwrap();
        assert_eq!(reloaded.udp, config.udp);
        assert_eq!(reloaded.public_ip, config.public_ip);
        assert_eq!(reloaded.workers, config.workers);
        assert_eq!(reloaded.http, config.http);
        assert_eq!(reloaded.log_format, config.log_format);
        assert_eq!(reloaded.api_keys_from_file().len(), 1);
    }

    #[test]
    fn turn_credentials_are_not_printed() {
        let config = load(&[
            "--ice-server",
            "turn:turn.example.org:3478;username=u;credential=hush-hush",
        ])
        .unwrap();
        let printed = config.print_config();
        assert!(!printed.contains("hush-hush"), "{printed}");
        assert!(
            printed.contains("username=u;credential=<redacted>"),
            "{printed}"
        );
    }

    /// The shipped example names every option, and uncommented it is a valid file.
    #[test]
    fn the_example_file_covers_every_option_and_loads_uncommented() {
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/sluice.example.toml");
        let text = std::fs::read_to_string(example).unwrap();
        let is_setting = |line: &str| {
            line == "[keys]"
                || line.split_once(" = ").is_some_and(|(key, _)| {
                    key.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                        && key
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                })
        };
        let uncommented: String = text
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(setting) if is_setting(setting) => format!("{setting}\n"),
                _ => format!("{line}\n"),
            })
            .collect();
        for arg in Config::command().get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if NOT_IN_FILE.contains(&long) || arg.is_hide_set() {
                continue;
            }
            assert!(
                uncommented
                    .lines()
                    .any(|l| l.starts_with(&format!("{long} = "))),
                "docs/sluice.example.toml does not show `{long}`"
            );
        }
        let path = file("example.toml", &uncommented);
        let config = load(&["--config", path.to_str().unwrap()]).unwrap();
        assert_eq!(config.api_keys_from_file().len(), 1);
        assert_eq!(
            config.public_ip,
            [
                IpAddrV4([203, 0, 113, 7]),
                "2001:db8::7".parse::<std::net::IpAddr>().unwrap()
            ]
        );
    }

    #[test]
    fn without_a_file_the_flags_and_defaults_apply() {
        let config = load(&["--workers", "4"]).unwrap();
        assert_eq!(config.worker_count(), 4);
        assert!(config.api_keys_from_file().is_empty());
        assert!(matches!(
            load(&["--workers", "zero"]),
            Err(LoadError::Args(_))
        ));
    }
}
