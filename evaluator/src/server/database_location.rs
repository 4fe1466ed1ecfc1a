//! Where the history database is: relative SQLite URLs written in
//! `vigil.yaml` (or in its `storage.database_url_file`) are anchored at the
//! config file's directory, like every other path in the file, and
//! `check config` says where the database ended up and why.
//!
//! `DATABASE_URL` from the environment is taken as given: a relative SQLite
//! path there is relative to the working directory, as for any path typed on
//! a command line.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where `storage.database_url` came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrlSource {
    /// The `DATABASE_URL` environment variable, taken as given.
    Environment,
    /// `storage.database_url_file`, the file named here.
    File(PathBuf),
    /// `storage.database_url` in the config file.
    Config,
    /// Not configured: the default `sqlite://vigil.db` next to the config.
    Default,
}

impl fmt::Display for DatabaseUrlSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseUrlSource::Environment => {
                f.write_str("from DATABASE_URL; a relative path there is relative to the working directory")
            }
            DatabaseUrlSource::File(file) => write!(
                f,
                "from storage.database_url_file {}; a relative path there is relative to the config file",
                file.display()
            ),
            DatabaseUrlSource::Config => f.write_str(
                "from storage.database_url; a relative path there is relative to the config file",
            ),
            DatabaseUrlSource::Default => f.write_str(
                "the default sqlite://vigil.db, next to the config file; set storage.database_url to change it",
            ),
        }
    }
}

/// The file and query of a SQLite URL (`sqlite://FILE?QUERY`,
/// `sqlite:FILE?QUERY`), or `None` for other URLs.
fn sqlite_parts(url: &str) -> Option<(&str, Option<&str>)> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    Some(match rest.split_once('?') {
        Some((file, query)) => (file, Some(query)),
        None => (rest, None),
    })
}

/// True for a SQLite URL that names no file: `sqlite::memory:`,
/// `sqlite://:memory:`, `?mode=memory`.
fn is_in_memory(file: &str, query: Option<&str>) -> bool {
    file.is_empty()
        || file == ":memory:"
        || query.is_some_and(|q| q.split('&').any(|pair| pair == "mode=memory"))
}

/// `url` with a relative SQLite file anchored at `dir` (made absolute, so
/// that the URL means the same file whatever the working directory).
/// Absolute SQLite paths, in-memory databases and other databases are
/// returned unchanged; the query (`?mode=ro`, ...) is kept.
pub fn anchor_sqlite_url(url: &str, dir: &Path) -> String {
    let Some((file, query)) = sqlite_parts(url) else {
        return url.to_string();
    };
    if is_in_memory(file, query) || Path::new(file).is_absolute() {
        return url.to_string();
    }
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    // sqlx percent-decodes the file part, so the directory's own `%`, `?`
    // and `#` must be encoded; the file part is kept as the user wrote it.
    let dir = dir
        .to_string_lossy()
        .trim_end_matches('/')
        .replace('%', "%25")
        .replace('?', "%3F")
        .replace('#', "%23");
    let file = file.strip_prefix("./").unwrap_or(file);
    match query {
        Some(query) => format!("sqlite://{dir}/{file}?{query}"),
        None => format!("sqlite://{dir}/{file}"),
    }
}

/// What `check config` prints for the database at `url` (password hidden):
/// the absolute file of a SQLite database (relative paths resolved against
/// the working directory, as SQLite will), or the URL of any other.
pub fn describe_database(url: &str) -> String {
    match sqlite_parts(url) {
        Some((file, query)) if is_in_memory(file, query) => {
            "SQLite in memory (nothing is kept across restarts)".to_string()
        }
        Some((file, _)) => {
            let path = Path::new(file);
            let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
            format!("SQLite file {}", path.display())
        }
        None => crate::history::db::redact(url),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_sqlite_files_are_anchored_at_the_config_directory() {
        let dir = Path::new("/etc/vigil");
        for (written, anchored) in [
            ("sqlite://vigil.db", "sqlite:///etc/vigil/vigil.db"),
            ("sqlite:vigil.db", "sqlite:///etc/vigil/vigil.db"),
            (
                "sqlite://./data/vigil.db",
                "sqlite:///etc/vigil/data/vigil.db",
            ),
            ("sqlite://../vigil.db", "sqlite:///etc/vigil/../vigil.db"),
            (
                "sqlite://vigil.db?mode=rwc",
                "sqlite:///etc/vigil/vigil.db?mode=rwc",
            ),
            (
                "sqlite:vigil.db?mode=ro",
                "sqlite:///etc/vigil/vigil.db?mode=ro",
            ),
        ] {
            assert_eq!(anchor_sqlite_url(written, dir), anchored, "{written}");
        }
    }

    #[test]
    fn absolute_in_memory_and_other_urls_are_unchanged() {
        let dir = Path::new("/etc/vigil");
        for url in [
            "sqlite:///var/lib/vigil/vigil.db",
            "sqlite:/var/lib/vigil/vigil.db",
            "sqlite:///var/lib/vigil/vigil.db?mode=ro",
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite://vigil.db?mode=memory",
            "postgres://vigil@db/vigil",
            "postgresql://vigil:secret@db/vigil?sslmode=require",
        ] {
            assert_eq!(anchor_sqlite_url(url, dir), url);
        }
    }

    #[test]
    fn a_relative_config_directory_is_made_absolute() -> std::io::Result<()> {
        let anchored = anchor_sqlite_url("sqlite://vigil.db", Path::new("conf"));
        let expected = std::env::current_dir()?.join("conf/vigil.db");
        assert_eq!(anchored, format!("sqlite://{}", expected.display()));
        Ok(())
    }

    #[test]
    fn special_characters_of_the_directory_are_percent_encoded() {
        assert_eq!(
            anchor_sqlite_url("sqlite://vigil.db", Path::new("/srv/a?b#c%d")),
            "sqlite:///srv/a%3Fb%23c%25d/vigil.db"
        );
    }

    #[test]
    fn description_names_the_file_or_hides_the_password() -> std::io::Result<()> {
        assert_eq!(
            describe_database("sqlite:///var/lib/vigil/vigil.db?mode=rwc"),
            "SQLite file /var/lib/vigil/vigil.db"
        );
        let cwd = std::env::current_dir()?;
        assert_eq!(
            describe_database("sqlite://here.db"),
            format!("SQLite file {}", cwd.join("here.db").display())
        );
        assert!(describe_database("sqlite::memory:").starts_with("SQLite in memory"));
        assert_eq!(
            describe_database("postgres://vigil:secret@db/vigil"),
            "postgres://vigil:***@db/vigil"
        );
        Ok(())
    }
}
