//! The configuration file: `--config FILE` (or `FORMICA_CONFIG`) names a TOML file whose keys
//! are `serve`'s and `demo`'s long options (`listen = "0.0.0.0:8080"`, `database-url = ...`,
//! `pay-timeout-minutes = 30`). A value on the command line wins over the environment, which
//! wins over the file, which wins over the built-in default.

use anyhow::{Context, bail};
use clap::Command;

/// The subcommands the file configures.
const CONFIGURED: [&str; 2] = ["serve", "demo"];

/// The file named by `--config FILE`, `--config=FILE` or `FORMICA_CONFIG`, if any.
pub fn path(args: &[String]) -> Option<String> {
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "--config" {
            return args.next().cloned();
        }
        if let Some(path) = arg.strip_prefix("--config=") {
            return Some(path.to_owned());
        }
    }
    std::env::var("FORMICA_CONFIG").ok()
}

/// `command` with the file's values as the defaults of the options they name. A key that
/// names no option is an error, so that a typo is not silently ignored.
pub fn apply(mut command: Command, file: &str) -> anyhow::Result<Command> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
    let table: toml::Table = toml::from_str(&text).with_context(|| format!("parsing {file}"))?;
    for (key, value) in table {
        let id = key.replace('-', "_");
        let value = match value {
            toml::Value::String(text) => text,
            toml::Value::Integer(number) => number.to_string(),
            toml::Value::Boolean(flag) => flag.to_string(),
            other => bail!("{file}: {key} must be a string, integer or boolean, not {other}"),
        };
        let mut known = false;
        for name in CONFIGURED {
            let sub = command
                .find_subcommand(name)
                .expect("serve and demo are subcommands");
            if sub.get_arguments().any(|arg| arg.get_id() == id.as_str()) {
                known = true;
                // Parsed once at start: the leak is a few bytes per key, for the process.
                let value: &'static str = Box::leak(value.clone().into_boxed_str());
                let id = id.clone();
                command = command.mut_subcommand(name, move |sub| {
                    sub.mut_arg(id, move |arg| arg.default_value(value))
                });
            }
        }
        if !known {
            bail!("{file}: {key} is not an option of formica serve or demo");
        }
    }
    Ok(command)
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches};

    use crate::Cli;

    fn parse(file: &str, args: &[&str]) -> anyhow::Result<Cli> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("formica.toml");
        std::fs::write(&path, file)?;
        let command = super::apply(Cli::command(), path.to_str().expect("a UTF-8 path"))?;
        let matches = command.try_get_matches_from(args)?;
        Ok(Cli::from_arg_matches(&matches)?)
    }

    #[test]
    fn the_file_sets_defaults_and_the_command_line_wins() {
        let file = "listen = \"127.0.0.1:9999\"\npay-timeout-minutes = 30\n";
        let cli = parse(file, &["formica", "serve"]).expect("parses");
        let crate::Command::Serve(args) = cli.command else {
            panic!("serve")
        };
        assert_eq!(args.listen.port(), 9999);
        assert_eq!(args.rules.pay_timeout_minutes, 30);
        let cli = parse(file, &["formica", "serve", "--listen", "127.0.0.1:7000"]).expect("parses");
        let crate::Command::Serve(args) = cli.command else {
            panic!("serve")
        };
        assert_eq!(args.listen.port(), 7000);
    }

    #[test]
    fn an_unknown_key_is_an_error() {
        let error = parse("pay-timeout = 3\n", &["formica", "serve"]).expect_err("refused");
        assert!(error.to_string().contains("pay-timeout"), "{error}");
    }
}
