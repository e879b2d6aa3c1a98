//! The database file on disk: created private, and checked before every commit to be
//! the file this process opened and still writable.

use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use crate::error::{Result, StoreError};
use crate::health::Fault;

/// Creates `path` with mode 0600 if it does not exist; an existing database (and its
/// WAL and shared-memory files) readable by others is tightened to 0600, with a
/// warning, since it holds password hashes, token digests and sealed keys.
pub(super) fn create_private(path: &Path) -> Result<()> {
    let io = |e: std::io::Error| {
        StoreError::Database(sqlx::Error::Configuration(
            format!("cannot create the database file {}: {e}", path.display()).into(),
        ))
    };
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    for p in [
        path.to_path_buf(),
        sidecar(path, "-wal"),
        sidecar(path, "-shm"),
    ] {
        let Ok(meta) = std::fs::metadata(&p) else {
            continue;
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
            tracing::warn!(path = %p.display(), was = format!("{mode:o}"), "tightened the database file to mode 0600");
        }
    }
    Ok(())
}

fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Below this much free space on the database's file system, readiness reports the
/// disk full: SQLite may still fit a small write into pages it holds, but the next
/// one that needs a new page fails.
const MIN_FREE_BYTES: u64 = 1024 * 1024;

/// Which file was opened: its path and identity (device and inode).
#[derive(Debug)]
pub(super) struct DbFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl DbFile {
    /// The file at `path`, as it is now.
    pub(super) fn opened(path: &Path) -> Result<Self> {
        let meta = std::fs::metadata(path).map_err(|_| StoreError::Degraded(Fault::FileGone))?;
        Ok(Self {
            path: path.to_path_buf(),
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    /// Fails when the path no longer names the opened file (deleted, moved or replaced)
    /// or the file cannot be written (a read-only mount, a write-protected file).
    pub(super) fn check(&self) -> Result<()> {
        match std::fs::metadata(&self.path) {
            Ok(m) if m.dev() == self.dev && m.ino() == self.ino => {}
            _ => return Err(StoreError::Degraded(Fault::FileGone)),
        }
        match rustix::fs::access(&self.path, rustix::fs::Access::WRITE_OK) {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::ROFS | rustix::io::Errno::ACCESS | rustix::io::Errno::PERM) => {
                Err(StoreError::Degraded(Fault::ReadOnly))
            }
            Err(_) => Err(StoreError::Degraded(Fault::Io)),
        }
    }
}

impl DbFile {
    /// Fails when the database's file system is mounted read-only or has less than
    /// [`MIN_FREE_BYTES`] free (for this process: root may use reserved blocks).
    pub(super) fn space(&self) -> Result<()> {
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let v = rustix::fs::statvfs(dir).map_err(|_| StoreError::Degraded(Fault::Io))?;
        if v.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY) {
            return Err(StoreError::Degraded(Fault::ReadOnly));
        }
        let blocks = if rustix::process::geteuid().is_root() {
            v.f_bfree
        } else {
            v.f_bavail
        };
        if blocks.saturating_mul(v.f_frsize) < MIN_FREE_BYTES {
            return Err(StoreError::Degraded(Fault::DiskFull));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_or_deleted_file_is_noticed_and_new_files_are_private() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("k.db");
        create_private(&path).unwrap_or_else(|e| panic!("{e}"));
        let mode = std::fs::metadata(&path)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0);
        assert_eq!(mode, 0o600);
        let f = DbFile::opened(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(f.check().is_ok());
        std::fs::rename(&path, dir.path().join("moved.db")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&path, b"").unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            f.check(),
            Err(StoreError::Degraded(Fault::FileGone))
        ));
        std::fs::remove_file(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            f.check(),
            Err(StoreError::Degraded(Fault::FileGone))
        ));
    }
}
