//! The master key file: where it lives, creating it on first start, recovering from
//! an interrupted rotation, and rotating it.
//!
//! Rotation writes the new key to `<key file>.new` first, then re-seals every LMv1
//! key in one transaction, then renames the new file over the old. A crash between
//! the commit and the rename leaves a store sealed under `<key file>.new`, which the
//! next start recognises (by the store's check value) and finishes.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use keygate_store::{MasterKey, SqliteStore, Store, StoreError};

/// The key file: the one given, or `keygate.key` beside `keygate.db`.
pub fn key_path(given: Option<&Path>, database_url: &str) -> PathBuf {
    let db = keygate_store::sqlite::sqlite_path(database_url).unwrap_or(database_url);
    given.map_or_else(|| Path::new(db).with_extension("key"), Path::to_path_buf)
}

/// Opens a PostgreSQL store. Every node must use the same master key, so it must be
/// given: keygate never creates one silently here.
pub async fn open_pg(
    url: &str,
    given: Option<&Path>,
    max_connections: u32,
) -> Result<keygate_store::PgStore> {
    let Some(path) = given else {
        bail!(
            "with PostgreSQL the master key must be given with --master-key-file (or KEYGATE_MASTER_KEY_FILE), \
             the same file on every node (64 hex characters, mode 0600)"
        );
    };
    if !path.exists() {
        bail!("the master key file {} does not exist", path.display());
    }
    // A short wait for a connection: with the database unreachable, requests answer 503 fast.
    let open = |key| {
        keygate_store::PgStore::open(
            url,
            key,
            max_connections,
            std::time::Duration::from_millis(1500),
        )
    };
    open_with_recovery(path, MasterKey::load(path)?, false, open)
        .await
        .context("could not open the PostgreSQL database")
}

/// Fails, saying so, when the folder a SQLite file should be in does not exist (which
/// would otherwise surface as whichever file keygate tried to create first).
pub fn check_folder(db_path: &str) -> Result<()> {
    if let Some(dir) = Path::new(db_path)
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        && !dir.is_dir()
    {
        bail!(
            "the folder {} for the database {db_path} does not exist; create it (mkdir -p {}) or point --database-url elsewhere",
            dir.display(),
            dir.display()
        );
    }
    Ok(())
}

/// Takes the lock that lets one server serve a SQLite file (`<file>.lock`, an
/// exclusive `flock` held for the life of the returned file); a second server on the
/// same file is refused with a message saying why. A separate file is locked, not the
/// database: on NFS `flock` falls back to the byte-range locks SQLite itself takes.
pub fn lock_for_serving(db_path: &str) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut lock = Path::new(db_path).as_os_str().to_owned();
    lock.push(".lock");
    let lock = PathBuf::from(lock);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock)
        .with_context(|| format!("could not open the lock file {}", lock.display()))?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(rustix::io::Errno::WOULDBLOCK) => bail!(
            "another keygate server is already serving {db_path} (it holds {}): one SQLite database has one server.              Stop the other one, or use PostgreSQL for several nodes (docs/operations.md)",
            lock.display()
        ),
        Err(e) => Err(e).with_context(|| format!("could not lock {}", lock.display())),
    }
}

fn pending_path(key_path: &Path) -> PathBuf {
    let mut s = key_path.as_os_str().to_owned();
    s.push(".new");
    PathBuf::from(s)
}

/// Opens the SQLite store with its master key, creating the key file if none was
/// given and none exists yet. Without `create` (every command but `serve` and
/// `init`), a database that does not exist is an error naming the path looked for.
pub async fn open_store(db_path: &str, given: Option<&Path>, create: bool) -> Result<SqliteStore> {
    let key_path = given.map_or_else(
        || Path::new(db_path).with_extension("key"),
        Path::to_path_buf,
    );
    let db_exists = Path::new(db_path).exists();
    check_folder(db_path)?;
    if !create && !db_exists {
        let shown = std::path::absolute(db_path).unwrap_or_else(|_| PathBuf::from(db_path));
        bail!(
            "no keygate database at {}: run this where the server's database is, or point --database-url (KEYGATE_DATABASE_URL) at it; `keygate init` creates a new one",
            shown.display()
        );
    }
    if given.is_none() && key_path.exists() && !db_exists {
        // The key file is made together with the database: the database it belonged
        // to is gone. Starting would create an empty one with a new admin, silently.
        bail!(
            "the database {db_path} does not exist, but the master key file {} made with it does: \
             the database may have been deleted or moved. Restore it (or point --database-url at it); \
             to start afresh on purpose, move {} away first",
            key_path.display(),
            key_path.display()
        );
    }
    let (key, created) = if key_path.exists() {
        (MasterKey::load(&key_path)?, false)
    } else if given.is_some() {
        bail!("the master key file {} does not exist", key_path.display());
    } else {
        let key = MasterKey::generate()?;
        key.write_new_file(&key_path)?;
        tracing::info!(path = %key_path.display(), "created a new master key file (mode 0600); back it up");
        (key, true)
    };
    open_with_recovery(&key_path, key, created, |key| {
        SqliteStore::open(db_path, key)
    })
    .await
    .with_context(|| format!("could not open the SQLite database at {db_path}"))
}

/// Opens a store with `key`. If the store says the key is not its own and an
/// interrupted rotation left `<key file>.new` that is, finishes that rotation. A key
/// file created just now for a store that turns out to have another key is removed.
async fn open_with_recovery<T, F, Fut>(
    key_path: &Path,
    key: MasterKey,
    created: bool,
    open: F,
) -> Result<T>
where
    F: Fn(MasterKey) -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    match open(key).await {
        Ok(store) => Ok(store),
        Err(StoreError::MasterKey(msg)) => {
            let pending = pending_path(key_path);
            if pending.exists()
                && let Ok(new) = MasterKey::load(&pending)
                && let Ok(store) = open(new).await
            {
                std::fs::rename(&pending, key_path).with_context(|| {
                    format!(
                        "could not finish the interrupted master-key rotation ({})",
                        pending.display()
                    )
                })?;
                tracing::warn!(path = %key_path.display(), "finished an interrupted master-key rotation");
                return Ok(store);
            }
            if created {
                // Not the key this store was set up with: do not leave a stray file behind.
                let _ = std::fs::remove_file(key_path);
            }
            bail!("{msg}")
        }
        Err(e) => Err(e.into()),
    }
}

/// Re-seals every LMv1 key under a new master key and replaces the key file.
pub async fn rotate<S: Store>(
    store: &S,
    database_url: &str,
    given: Option<&Path>,
) -> Result<usize> {
    let key_path = key_path(given, database_url);
    let pending = pending_path(&key_path);
    let new = MasterKey::generate()?;
    new.write_new_file(&pending).with_context(|| {
        format!(
            "remove {} if a previous rotation was abandoned",
            pending.display()
        )
    })?;
    let n = match store.rotate_master_key(&new).await {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&pending);
            return Err(e.into());
        }
    };
    std::fs::rename(&pending, &key_path).with_context(|| {
        format!(
            "the store now uses {}; move it to {}",
            pending.display(),
            key_path.display()
        )
    })?;
    if let Some(dir) = key_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Make the rename itself durable.
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(n)
}
