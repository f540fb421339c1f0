//! Configuration: the TOML schema (contract sections 8 and 9 plus the project's own keys,
//! each with a default), loaded once into typed values.
//!
//! [`Config::parse`] reports every problem at once, each with its key path: unknown keys,
//! wrong types, and values that parse but make no sense. Addresses and secrets can be
//! overridden from the environment ([`env`]); secrets never appear in `Debug` output.

mod env;
mod key;
mod sections;
mod validate;

pub use env::{apply_env_overrides, redact_url};
pub use key::*;
pub use sections::*;

use serde::de::DeserializeOwned;
use thiserror::Error;

/// Every problem found in one configuration file.
#[derive(Debug, Error)]
#[error("invalid configuration in {source_name}:\n  - {}", problems.join("\n  - "))]
pub struct ConfigError {
    pub source_name: String,
    pub problems: Vec<String>,
}

impl Config {
    /// Parses TOML text, applies environment overrides from `env`, and validates.
    /// `source_name` names the file in error messages.
    pub fn parse(text: &str, source_name: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let fail = |problems| ConfigError { source_name: source_name.to_string(), problems };
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| fail(vec![e.to_string()]))?;
        let mut problems = Vec::new();
        let mut config = Config {
            mysql: section(&mut table, "mysql", &mut problems),
            repair: section(&mut table, "repair", &mut problems),
            retry: section(&mut table, "retry", &mut problems),
            full: section(&mut table, "full", &mut problems),
            targets: Vec::new(),
            bus: section(&mut table, "bus", &mut problems),
            kafka: section(&mut table, "kafka", &mut problems),
            triggers: section(&mut table, "triggers", &mut problems),
            handler: section(&mut table, "handler", &mut problems),
            admin: section(&mut table, "admin", &mut problems),
            hbase_emulator: section(&mut table, "hbase_emulator", &mut problems),
            verifier: section(&mut table, "verifier", &mut problems),
            key_activities: section(&mut table, "key_activities", &mut problems),
        };
        let targets_given = table.contains_key("targets");
        match table.remove("targets") {
            None => {}
            Some(toml::Value::Array(items)) => {
                for (i, item) in items.into_iter().enumerate() {
                    if let Some(t) = parse_value::<TargetConfig>(item, &format!("targets[{i}]"), &mut problems) {
                        config.targets.push(t);
                    }
                }
            }
            Some(_) => problems.push("`targets` must be an array of tables ([[targets]])".into()),
        }
        for key in table.keys() {
            problems.push(format!("unknown key `{key}`"));
        }
        if let Err(e) = apply_env_overrides(&mut config, env) {
            problems.push(e);
        }
        problems.extend(
            validate::validate(&config)
                .into_iter()
                .filter(|p| !(targets_given && p.starts_with("`targets`: at least one"))),
        );
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(fail(problems))
        }
    }

    /// Reads and parses a file with the process environment.
    pub fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            source_name: name.clone(),
            problems: vec![format!("cannot read the file: {e}")],
        })?;
        Config::parse(&text, &name, &|k| std::env::var(k).ok())
    }
}

fn section<T: DeserializeOwned + Default>(table: &mut toml::Table, key: &str, problems: &mut Vec<String>) -> T {
    match table.remove(key) {
        None => T::default(),
        Some(value) => parse_value(value, key, problems).unwrap_or_default(),
    }
}

/// Deserializes one value, recording unknown keys and type errors with their full key
/// paths under `prefix`. After a type error the offending key is set aside and parsing
/// runs again, so one pass reports every problem of the section, not just the first.
fn parse_value<T: DeserializeOwned>(mut value: toml::Value, prefix: &str, problems: &mut Vec<String>) -> Option<T> {
    let mut failed = false;
    for _ in 0..32 {
        let mut unknown = Vec::new();
        let result = {
            let mut record = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
            let de = serde_ignored::Deserializer::new(value.clone(), &mut record);
            serde_path_to_error::deserialize::<_, T>(de)
        };
        let error = match result {
            Ok(v) => {
                for path in unknown {
                    problems.push(format!("unknown key `{prefix}.{path}`"));
                }
                return (!failed).then_some(v);
            }
            Err(e) => e,
        };
        failed = true;
        let path = error.path().to_string();
        let at = if path == "." { prefix.to_string() } else { format!("{prefix}.{path}") };
        let message = error.inner().to_string().replace('\n', " ");
        problems.push(format!("`{at}`: {}", message.trim()));
        // Set the offending top-level key aside and look for more problems.
        let first = path.split(['.', '[']).next().unwrap_or_default().to_string();
        let removed = !first.is_empty() && value.as_table_mut().is_some_and(|t| t.remove(&first).is_some());
        match removed {
            true => {}
            false => {
                for path in unknown {
                    problems.push(format!("unknown key `{prefix}.{path}`"));
                }
                return None;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests;
