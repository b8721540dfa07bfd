//! Small pieces every source's configuration needs: where a secret comes from, and how a problem names its key.

use std::path::PathBuf;

use secrecy::SecretString;

/// A problem in one source's configuration, naming the TOML key so the server can point at its line and column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigIssue {
    /// The key inside the source's table, such as `bind_password_file`.
    pub key: String,
    /// What is wrong, without the secret itself.
    pub message: String,
}

impl ConfigIssue {
    /// A problem with `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigIssue {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Reads a secret named by a `<name>_file` or `<name>_env` key (exactly one of them), so that secrets never sit
/// inline in a config file. A trailing newline in the file is dropped, as `echo secret > file` leaves one.
pub fn read_secret(name: &str, file: Option<&PathBuf>, env: Option<&str>) -> Result<SecretString, ConfigIssue> {
    match (file, env) {
        (Some(_), Some(_)) => Err(ConfigIssue::new(
            format!("{name}_file"),
            format!("set only one of `{name}_file` and `{name}_env`"),
        )),
        (None, None) => Err(ConfigIssue::new(
            format!("{name}_file"),
            format!("missing secret: set `{name}_file` or `{name}_env`"),
        )),
        (Some(path), None) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigIssue::new(
                    format!("{name}_file"),
                    format!("cannot read secret file {}: {}", path.display(), e.kind()),
                )
            })?;
            let text = text.strip_suffix('\n').unwrap_or(&text);
            let text = text.strip_suffix('\r').unwrap_or(text);
            non_empty(name, "_file", text)
        }
        (None, Some(var)) => match std::env::var(var) {
            Ok(v) => non_empty(name, "_env", &v),
            Err(_) => Err(ConfigIssue::new(
                format!("{name}_env"),
                format!("missing secret: environment variable `{var}` is not set"),
            )),
        },
    }
}

fn non_empty(name: &str, suffix: &str, value: &str) -> Result<SecretString, ConfigIssue> {
    if value.is_empty() {
        return Err(ConfigIssue::new(format!("{name}{suffix}"), "the secret is empty"));
    }
    Ok(SecretString::from(value.to_owned()))
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn file_secrets_drop_one_trailing_newline() {
        let dir = std::env::temp_dir().join(format!("vestibule-core-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("s");
        std::fs::write(&path, "hunter2 \n").expect("write");
        let s = read_secret("bind_password", Some(&path), None).expect("read");
        assert_eq!(s.expose_secret(), "hunter2 ");
    }

    #[test]
    fn missing_and_double_secrets_name_the_key() {
        let e = read_secret("client_secret", None, None).expect_err("none");
        assert_eq!(e.key, "client_secret_file");
        let p = PathBuf::from("/nonexistent/vestibule");
        let e = read_secret("client_secret", Some(&p), Some("X")).expect_err("both");
        assert!(e.message.contains("only one"));
        let e = read_secret("client_secret", None, Some("VESTIBULE_SURELY_UNSET_VAR")).expect_err("unset");
        assert_eq!(e.key, "client_secret_env");
        assert!(!e.message.contains("hunter"));
    }
}
