//! The `MAILTRAIL_*` environment as a source of configuration. A variable names a key by its
//! path, sections joined by `__`: `MAILTRAIL_HTTP_LISTEN` is `http_listen`,
//! `MAILTRAIL_OUTBOUND__RETRY__FIRST_DELAY` is `outbound.retry.first_delay`. Any of them may
//! instead end in `_FILE` and name a file holding the value (the container secrets
//! convention). What a variable names is not decided here: the configuration's types decide,
//! and [`Environment::holding`] says which variable a complaint about a key is about.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Read;

use figment::value::{Dict, Value};
use figment::{Metadata, Profile, Provider};

use super::Problem;

const PREFIX: &str = "MAILTRAIL_";

/// `MAILTRAIL_*` variables that are not configuration keys: `--config`'s file, the log
/// filter, the master key itself (read by `secret_key::load`), the API key the README's
/// examples keep in `MAILTRAIL_KEY`, and those the test suites read (they are in a
/// developer's environment when the binary runs).
const NOT_SETTINGS: [&str; 7] = [
    "config",
    "log",
    "secret_key",
    "key",
    "long_tests",
    "schemathesis",
    "axe",
];

/// `MAILTRAIL_TEST_*`: the test suites' own variables and the binary's test hooks (the
/// `test-hooks` feature). No key starts with `test`.
const TEST_VARIABLES: &str = "test_";

fn is_setting(key: &str) -> bool {
    !NOT_SETTINGS.contains(&key) && !key.starts_with(TEST_VARIABLES)
}

/// The older `domain=host:port,…` form of `outbound.routes`, kept working.
const LEGACY_ROUTES: &str = "outbound_routes";

/// The one key whose own name ends in `_file`: `MAILTRAIL_SECRET_KEY_FILE` is that key, not
/// `MAILTRAIL_SECRET_KEY` read from a file. Both mean "the master key is in this file".
const KEY_ENDING_IN_FILE: &str = "secret_key_file";

/// The master key variable `secret_key_file` competes with.
const SECRET_KEY: &str = "secret_key";

/// Secrets, taken exactly as written: a password may look like a list, a number or `true`.
const SECRETS: [&[&str]; 4] = [
    &["database_url"],
    &["metrics_token"],
    &["outbound", "relay", "username"],
    &["outbound", "relay", "password"],
];

/// The most a `_FILE` is read: a value, not a stream (`/dev/zero` must not hang the start).
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// One variable that sets one key (or a whole table of keys).
#[derive(Debug, Clone)]
pub struct Setting {
    /// The variable as it was named: what problems are reported under.
    pub variable: String,
    /// The key it sets, lowercase: `["outbound", "helo_name"]`.
    pub path: Vec<String>,
    pub value: Value,
}

/// The configuration the `MAILTRAIL_*` variables hold, and what was wrong with them before
/// any key was looked at.
#[derive(Debug, Default)]
pub struct Environment {
    pub settings: Vec<Setting>,
    /// From `MAILTRAIL_OUTBOUND_ROUTES`, added to `outbound.routes` over what the keys say.
    pub legacy_routes: BTreeMap<String, String>,
    pub problems: Vec<Problem>,
}

impl Environment {
    /// This process's environment.
    pub fn from_process() -> Self {
        Self::read(std::env::vars_os())
    }

    /// The settings among `vars`; other variables are left alone.
    pub fn read(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Self {
        let vars: Vec<(String, OsString)> = vars
            .into_iter()
            .filter_map(|(name, value)| Some((name.into_string().ok()?, value)))
            .filter(|(name, _)| name.starts_with(PREFIX))
            .collect();
        let is_set = |key: &str| vars.iter().any(|(name, _)| key_of(name) == key);
        let mut environment = Self::default();
        for (name, value) in &vars {
            let key = key_of(name);
            if !is_setting(&key) {
                continue;
            }
            if key == KEY_ENDING_IN_FILE && is_set(SECRET_KEY) {
                environment.problems.push(Problem::error(
                    name,
                    format!("{PREFIX}SECRET_KEY is set too: give the key or its file, not both"),
                ));
                continue;
            }
            let read = match key
                .strip_suffix("_file")
                .filter(|_| key != KEY_ENDING_IN_FILE)
            {
                Some(base) => from_file(name, base, value, is_set(base)),
                None => from_value(name, &key, value),
            };
            match read {
                Ok((key, text)) => environment.add(name, &key, &text),
                Err(problem) => environment.problems.push(problem),
            }
        }
        environment
    }

    /// Takes in `variable`'s text as the key `key`.
    fn add(&mut self, variable: &str, key: &str, text: &str) {
        if key == LEGACY_ROUTES {
            match parse_routes(variable, text) {
                Ok(routes) => self.legacy_routes.extend(routes),
                Err(problem) => self.problems.push(problem),
            }
            return;
        }
        let path: Vec<String> = key.split("__").map(str::to_owned).collect();
        if path.iter().any(String::is_empty) {
            self.problems.push(Problem::error(
                variable,
                "names no setting: sections are joined by exactly two underscores \
                 (MAILTRAIL_OUTBOUND__HELO_NAME)",
            ));
            return;
        }
        let value = parse(&path, text);
        self.settings.push(Setting {
            variable: variable.to_owned(),
            path,
            value,
        });
    }

    /// The variable that set the value at `path`, or inside it, or the table around it: the
    /// one a complaint about `path` is about.
    pub fn holding(&self, path: &[String]) -> Option<&str> {
        self.settings
            .iter()
            .find(|setting| {
                let deeper = path.starts_with(&setting.path)
                    && contains(&setting.value, &path[setting.path.len()..]);
                deeper || setting.path.starts_with(path)
            })
            .map(|setting| setting.variable.as_str())
    }

    /// Leaves `variable` out from now on.
    pub fn remove(&mut self, variable: &str) {
        self.settings.retain(|setting| setting.variable != variable);
    }

    /// The settings as one nested table; a deeper key set beside a table that holds it wins.
    fn dict(&self) -> Dict {
        let mut settings: Vec<&Setting> = self.settings.iter().collect();
        settings.sort_by_key(|setting| setting.path.len());
        let mut dict = Dict::new();
        for setting in settings {
            insert(&mut dict, &setting.path, setting.value.clone());
        }
        dict
    }
}

impl Provider for Environment {
    fn metadata(&self) -> Metadata {
        Metadata::named("MAILTRAIL_* environment variables")
    }

    fn data(&self) -> Result<figment::value::Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict()))
    }
}

/// `MAILTRAIL_OUTBOUND__HELO_NAME` → `outbound__helo_name`.
fn key_of(name: &str) -> String {
    name[PREFIX.len()..].to_lowercase()
}

/// The key and text of a plain variable.
fn from_value(name: &str, key: &str, value: &OsString) -> Result<(String, String), Problem> {
    let text = value
        .to_str()
        .ok_or_else(|| Problem::error(name, "is not valid UTF-8"))?;
    Ok((key.to_owned(), text.to_owned()))
}

/// The key and text of `NAME_FILE`: the file's contents without their trailing newlines.
/// The contents are never put in a problem, only the path.
fn from_file(
    name: &str,
    base: &str,
    value: &OsString,
    plain_is_set: bool,
) -> Result<(String, String), Problem> {
    // The name as given, less its `_FILE` (whatever its case; `get` never splits a character).
    let plain = name.get(..name.len() - "_FILE".len()).unwrap_or(name);
    if !is_setting(base) {
        return Err(Problem::error(
            name,
            format!("{plain} is not a setting, so it cannot come from a file"),
        ));
    }
    if plain_is_set {
        return Err(Problem::error(
            name,
            format!("{plain} is set too: give the value or the file, not both"),
        ));
    }
    let path = std::path::Path::new(value);
    let unreadable =
        |why: String| Problem::error(name, format!("cannot read {}: {why}", path.display()));
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| unreadable(e.to_string()))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(unreadable(format!(
            "it is larger than {} KiB",
            MAX_FILE_BYTES / 1024
        )));
    }
    let text = String::from_utf8(bytes).map_err(|_| unreadable("it is not UTF-8 text".into()))?;
    Ok((
        base.to_owned(),
        text.trim_end_matches(['\n', '\r']).to_owned(),
    ))
}

/// A value as the key at `path` receives it. Text that starts with `[` or `{` is a list or a
/// table in figment's syntax (`[127.0.0.1:53, 127.0.0.1:5353]`, `{"a.test" = "…"}`); any
/// other text stays text, and becomes a number, a boolean or a duration where the key wants
/// one. Secrets always stay text.
fn parse(path: &[String], text: &str) -> Value {
    let is_secret = SECRETS.iter().any(|secret| secret == &path);
    if !is_secret
        && text.trim_start().starts_with(['[', '{'])
        && let Ok(value @ (Value::Array(..) | Value::Dict(..))) = text.parse::<Value>()
    {
        return value;
    }
    Value::from(text)
}

/// Whether `value` has something at `path` inside it.
fn contains(value: &Value, path: &[String]) -> bool {
    match path {
        [] => true,
        [first, rest @ ..] => match value {
            Value::Dict(_, dict) => dict.get(first).is_some_and(|inner| contains(inner, rest)),
            _ => false,
        },
    }
}

/// Puts `value` at `path` in `dict`, making the tables on the way.
fn insert(dict: &mut Dict, path: &[String], value: Value) {
    match path {
        [] => {}
        [last] => {
            dict.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = dict
                .entry(first.clone())
                .or_insert_with(|| Value::from(Dict::new()));
            if !matches!(entry, Value::Dict(..)) {
                *entry = Value::from(Dict::new());
            }
            if let Value::Dict(_, inner) = entry {
                insert(inner, rest, value);
            }
        }
    }
}

/// `example.test=127.0.0.1:2526,other.test=[::1]:25`: recipient domain → `host:port`.
fn parse_routes(variable: &str, text: &str) -> Result<BTreeMap<String, String>, Problem> {
    text.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let (domain, target) = entry.split_once('=').ok_or_else(|| {
                Problem::error(variable, format!("'{entry}' is not domain=host:port"))
            })?;
            Ok((domain.trim().to_lowercase(), target.trim().to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(vars: &[(&str, &str)]) -> Environment {
        Environment::read(
            vars.iter()
                .map(|(name, value)| (OsString::from(name), OsString::from(value))),
        )
    }

    fn paths(environment: &Environment) -> Vec<String> {
        environment
            .settings
            .iter()
            .map(|setting| setting.path.join("."))
            .collect()
    }

    #[test]
    fn variables_name_keys_by_path_with_double_underscores() {
        let environment = read(&[
            ("MAILTRAIL_HTTP_LISTEN", "127.0.0.1:1"),
            ("MAILTRAIL_OUTBOUND__HELO_NAME", "mx.shop.test"),
            ("MAILTRAIL_OUTBOUND__RETRY__FIRST_DELAY", "5m"),
            ("MAILTRAIL_CONFIG", "mailtrail.toml"),
            ("MAILTRAIL_LOG", "debug"),
            ("MAILTRAIL_SECRET_KEY", "00"),
            ("MAILTRAIL_TEST_SEED", "7"),
            ("MAILTRAIL_TEST_PANIC_DELIVERY", "1"),
            ("MAILTRAIL_KEY", "mt_an-api-key"),
            ("MAILTRAIL_AXE", "/opt/axe.min.js"),
            ("HOME", "/root"),
        ]);
        assert_eq!(
            paths(&environment),
            [
                "http_listen",
                "outbound.helo_name",
                "outbound.retry.first_delay"
            ]
        );
        assert!(
            environment.problems.is_empty(),
            "{:?}",
            environment.problems
        );
    }

    #[test]
    fn lists_and_tables_are_parsed_and_everything_else_stays_text() {
        let environment = read(&[
            ("MAILTRAIL_DNS_SERVERS", "[127.0.0.1:53, 127.0.0.1:5353]"),
            (
                "MAILTRAIL_OUTBOUND__ROUTES",
                "{\"a.test\" = \"127.0.0.1:25\"}",
            ),
            ("MAILTRAIL_OUTBOUND__SESSIONS", "12"),
            ("MAILTRAIL_OUTBOUND__HELO_NAME", "\"quoted\""),
            ("MAILTRAIL_METRICS_TOKEN", "[not-a-list]"),
            ("MAILTRAIL_OUTBOUND__RELAY__PASSWORD", "true"),
        ]);
        let value = |path: &str| {
            let setting = environment
                .settings
                .iter()
                .find(|s| s.path.join(".") == path)
                .unwrap();
            setting.value.clone()
        };
        assert!(matches!(value("dns_servers"), Value::Array(_, ref a) if a.len() == 2));
        assert!(
            matches!(value("outbound.routes"), Value::Dict(_, ref d) if d.contains_key("a.test"))
        );
        assert_eq!(value("outbound.sessions").as_str(), Some("12"));
        assert_eq!(value("outbound.helo_name").as_str(), Some("\"quoted\""));
        assert_eq!(value("metrics_token").as_str(), Some("[not-a-list]"));
        assert_eq!(value("outbound.relay.password").as_str(), Some("true"));
    }

    #[test]
    fn a_file_variable_holds_the_value_without_its_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "s3cret {with} \"quotes\"\n\n").unwrap();
        let environment = read(&[("MAILTRAIL_METRICS_TOKEN_FILE", token.to_str().unwrap())]);
        assert_eq!(paths(&environment), ["metrics_token"]);
        assert_eq!(
            environment.settings[0].value.as_str(),
            Some("s3cret {with} \"quotes\"")
        );
        assert_eq!(
            environment.settings[0].variable,
            "MAILTRAIL_METRICS_TOKEN_FILE"
        );
    }

    #[test]
    fn secret_key_file_is_a_key_of_its_own() {
        let environment = read(&[("MAILTRAIL_SECRET_KEY_FILE", "/run/secrets/key")]);
        assert_eq!(paths(&environment), ["secret_key_file"]);
        assert_eq!(
            environment.settings[0].value.as_str(),
            Some("/run/secrets/key")
        );
    }

    #[test]
    fn file_variables_that_cannot_be_used_are_problems_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let missing = missing.to_str().unwrap();
        let secret = dir.path().join("password");
        std::fs::write(&secret, "hunter2\n").unwrap();
        let secret = secret.to_str().unwrap();
        let problems = |vars: &[(&str, &str)]| {
            let environment = read(vars);
            let from_files = environment
                .settings
                .iter()
                .filter(|s| s.variable.ends_with("_FILE"));
            assert_eq!(from_files.count(), 0, "{:?}", environment.settings);
            environment.problems
        };

        let both = problems(&[
            ("MAILTRAIL_OUTBOUND__RELAY__PASSWORD", "x"),
            ("MAILTRAIL_OUTBOUND__RELAY__PASSWORD_FILE", secret),
        ]);
        assert_eq!(both.len(), 1, "{both:?}");
        assert_eq!(both[0].path, "MAILTRAIL_OUTBOUND__RELAY__PASSWORD_FILE");
        assert!(
            both[0]
                .message
                .contains("MAILTRAIL_OUTBOUND__RELAY__PASSWORD is set too")
        );

        let key_twice = problems(&[
            ("MAILTRAIL_SECRET_KEY", "00"),
            ("MAILTRAIL_SECRET_KEY_FILE", secret),
        ]);
        assert_eq!(key_twice[0].path, "MAILTRAIL_SECRET_KEY_FILE");
        assert!(
            key_twice[0]
                .message
                .contains("MAILTRAIL_SECRET_KEY is set too")
        );

        let unreadable = problems(&[("MAILTRAIL_DATABASE_URL_FILE", missing)]);
        assert_eq!(unreadable[0].path, "MAILTRAIL_DATABASE_URL_FILE");
        assert!(unreadable[0].message.contains(missing), "{unreadable:?}");

        let folder = problems(&[("MAILTRAIL_METRICS_TOKEN_FILE", dir.path().to_str().unwrap())]);
        assert!(folder[0].message.starts_with("cannot read"), "{folder:?}");

        let endless = problems(&[("MAILTRAIL_METRICS_TOKEN_FILE", "/dev/zero")]);
        assert!(
            endless[0].message.contains("larger than 64 KiB"),
            "{endless:?}"
        );

        let not_a_setting = problems(&[("MAILTRAIL_LOG_FILE", secret)]);
        assert!(
            not_a_setting[0]
                .message
                .contains("MAILTRAIL_LOG is not a setting")
        );

        let empty_part = problems(&[("MAILTRAIL_OUTBOUND__", "x")]);
        assert!(
            empty_part[0].message.contains("two underscores"),
            "{empty_part:?}"
        );
        // Never the contents, whatever went wrong.
        for problem in [both, key_twice, unreadable, not_a_setting].concat() {
            assert!(!problem.message.contains("hunter2"), "{problem:?}");
        }
    }

    #[test]
    fn legacy_routes_keep_working() {
        let environment = read(&[(
            "MAILTRAIL_OUTBOUND_ROUTES",
            "a.test=127.0.0.1:2526, B.test=[::1]:25",
        )]);
        assert_eq!(environment.legacy_routes["a.test"], "127.0.0.1:2526");
        assert_eq!(environment.legacy_routes["b.test"], "[::1]:25");
        let broken = read(&[("MAILTRAIL_OUTBOUND_ROUTES", "a.test")]);
        assert_eq!(broken.problems[0].path, "MAILTRAIL_OUTBOUND_ROUTES");
    }

    #[test]
    fn a_complaint_about_a_key_finds_the_variable_that_set_it() {
        let environment = read(&[
            ("MAILTRAIL_OUTBOUND__HELO_NAM", "x"),
            ("MAILTRAIL_INBOUND", "{hostnam = \"x\"}"),
            ("MAILTRAIL_OUTBOUND__RELAY__PASSWORD", "x"),
        ]);
        let path = |p: &str| p.split('.').map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(
            environment.holding(&path("outbound.helo_nam")),
            Some("MAILTRAIL_OUTBOUND__HELO_NAM")
        );
        assert_eq!(
            environment.holding(&path("inbound.hostnam")),
            Some("MAILTRAIL_INBOUND")
        );
        // Missing `address` is about the table the password made.
        assert_eq!(
            environment.holding(&path("outbound.relay")),
            Some("MAILTRAIL_OUTBOUND__RELAY__PASSWORD")
        );
        assert_eq!(environment.holding(&path("inbound.max_errors")), None);
        assert_eq!(environment.holding(&path("outbound.sessions")), None);
    }
}
