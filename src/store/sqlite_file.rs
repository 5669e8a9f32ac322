//! The embedded database is for the server's user alone: it holds every
//! patient record and (unless `JWT_SECRET` is set) the token-signing secret,
//! with which anyone who reads it can forge a token for any account.
//!
//! - A new database file is created here, owner-only (0600), before SQLite
//!   opens it; SQLite gives its `-wal` and `-shm` files the database
//!   file's permissions, whatever the umask.
//! - An existing database file (or `-wal`/`-shm` file) that other users may
//!   read or write is refused: the server does not start, and says which
//!   file and how to fix it. Warning and starting anyway would leave the
//!   data and the secret open for as long as nobody reads the log; the fix
//!   is one `chmod`.

use std::path::{Path, PathBuf};

/// The file an `sqlite:` URL names, and whether SQLite may create it; `None`
/// for an in-memory database.
fn database_file(url: &str) -> Option<(PathBuf, bool)> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
    let mut create = false;
    for (key, value) in form_urlencoded::parse(params.as_bytes()) {
        match (&*key, &*value) {
            ("mode", "memory") => return None,
            ("mode", "rwc") => create = true,
            _ => {}
        }
    }
    if database.is_empty() || database == ":memory:" {
        return None;
    }
    // As sqlx reads it: percent-decoded (for `?` or `#` in a file name).
    let path = percent_encoding::percent_decode_str(database)
        .decode_utf8()
        .ok()?;
    Some((PathBuf::from(path.as_ref()), create))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Creates the database file of `url` owner-only when it is missing (and
/// may be created), and refuses one that other users may read or write.
/// Does nothing for PostgreSQL and in-memory databases.
pub fn protect(url: &str) -> Result<(), String> {
    let Some((path, create)) = database_file(url) else {
        return Ok(());
    };
    imp::protect(&path, create)
}

#[cfg(unix)]
mod imp {
    use std::fs::OpenOptions;
    use std::io::ErrorKind;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    use std::path::Path;

    use super::with_suffix;

    /// Read or write for the group or for others.
    const SHARED: u32 = 0o066;

    pub fn protect(path: &Path, create: bool) -> Result<(), String> {
        if create {
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
            {
                Ok(_) => {
                    tracing::info!(path = %path.display(), "database file created, readable by its owner only");
                }
                // Already there (or created meanwhile by another instance):
                // checked below like any existing file.
                Err(err) if err.kind() == ErrorKind::AlreadyExists => {}
                Err(err) => {
                    return Err(format!(
                        "cannot create the database file {}: {err}",
                        path.display()
                    ));
                }
            }
        }
        for file in [
            path.to_path_buf(),
            with_suffix(path, "-wal"),
            with_suffix(path, "-shm"),
        ] {
            let mode = match std::fs::metadata(&file) {
                Ok(meta) => meta.permissions().mode(),
                // Missing: SQLite says so (or creates it) when it opens it.
                Err(err) if err.kind() == ErrorKind::NotFound => continue,
                Err(err) => {
                    return Err(format!("cannot read {}: {err}", file.display()));
                }
            };
            if mode & SHARED != 0 {
                return Err(format!(
                    "the database file {file} may be read or written by other users \
                     (mode {mode:04o}); it holds every patient record and the \
                     token-signing secret. Make it private with `chmod 600 {file}` \
                     (and the same for its -wal and -shm files), and consider the \
                     signing secret exposed (see docs/security.md).",
                    file = file.display(),
                    mode = mode & 0o7777,
                ));
            }
        }
        Ok(())
    }
}

#[cfg(not(unix))]
mod imp {
    pub fn protect(_path: &std::path::Path, _create: bool) -> Result<(), String> {
        Ok(())
    }
}

/// This process's queue for writing to the SQLite file `db` is on (see
/// `store::begin_write`). One per file, so that every pool on the same file
/// shares it.
pub(super) fn write_gate(
    db: &sea_orm::DatabaseConnection,
) -> std::sync::Arc<tokio::sync::Mutex<()>> {
    use std::collections::HashMap;
    use std::sync::{Arc, LazyLock, Mutex, PoisonError};
    static GATES: LazyLock<Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>> =
        LazyLock::new(Default::default);
    let file = db
        .get_sqlite_connection_pool()
        .connect_options()
        .get_filename()
        .to_path_buf();
    GATES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(file)
        .or_default()
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_of_an_sqlite_url_is_found_as_sqlx_reads_it() {
        assert_eq!(
            database_file("sqlite://healthcare.sqlite3?mode=rwc"),
            Some((PathBuf::from("healthcare.sqlite3"), true))
        );
        assert_eq!(
            database_file("sqlite:///var/lib/hc/db%3F1.sqlite3"),
            Some((PathBuf::from("/var/lib/hc/db?1.sqlite3"), false))
        );
        assert_eq!(database_file("sqlite::memory:"), None);
        assert_eq!(database_file("sqlite://:memory:"), None);
        assert_eq!(database_file("sqlite://x.db?mode=memory"), None);
        assert_eq!(database_file("postgres://u@h/db"), None);
    }
}
