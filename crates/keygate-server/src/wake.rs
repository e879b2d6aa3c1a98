//! The wake-up socket beside a SQLite database (`keygate.db.sock`).
//!
//! The admin CLI writes to the database directly, and a running server learns of
//! its changes from the change log, which it polls (every 500 ms by default). So
//! that a token made with `keygate token create` works as soon as the command
//! returns, the CLI also connects to this socket after its write: the server reads
//! the change log at once and answers only when its index holds the change. Unknown
//! tokens still cost no database read on the verify path; the read happens once,
//! when the CLI asks.
//!
//! The socket is the owner's alone (mode 0600), each connection is served in turn
//! under a short deadline, and the worst a connection can do is make the server read
//! the change log early.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use keygate_auth::Verifier;
use keygate_store::Store;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::state::Clock;

/// What the CLI sends: "read the change log".
const ASK: u8 = b'c';
/// What the server answers once its index is current.
const DONE: u8 = b'k';
/// How long the server gives one connection.
const SERVE_DEADLINE: Duration = Duration::from_secs(2);

/// The socket for a SQLite database file: its path with `.sock` appended.
pub fn socket_path(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(".sock");
    PathBuf::from(s)
}

/// Asks a server on `socket` to read the change log now, and waits (at most
/// `timeout`) until it has. Returns whether a server answered; no server is not an
/// error (it reads the change log when it starts).
pub fn notify(socket: &Path, timeout: Duration) -> bool {
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(socket) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    let mut reply = [0u8; 1];
    s.write_all(&[ASK]).is_ok() && s.read_exact(&mut reply).is_ok() && reply[0] == DONE
}

/// Binds the socket, replacing a stale one; `None` (with a warning) when it cannot
/// be bound, in which case the CLI's changes arrive by polling as before.
pub(crate) fn bind(path: &Path) -> Option<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt as _;
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        tracing::warn!(path = %path.display(), "another server answers on the wake-up socket; admin CLI changes reach this one by polling");
        return None;
    }
    let _ = std::fs::remove_file(path);
    match tokio::net::UnixListener::bind(path) {
        Ok(l) => {
            if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
                tracing::warn!(error = %e, "could not make the wake-up socket private");
                let _ = std::fs::remove_file(path);
                return None;
            }
            Some(l)
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "could not open the wake-up socket; admin CLI changes arrive by polling");
            None
        }
    }
}

/// Serves the socket until `stop`, then removes it.
pub(crate) async fn serve<S: Store>(
    listener: tokio::net::UnixListener,
    path: PathBuf,
    verifier: Verifier,
    store: S,
    clock: Clock,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let conn = tokio::select! {
            c = listener.accept() => c,
            _ = stop.changed() => break,
        };
        let Ok((mut conn, _)) = conn else {
            continue;
        };
        // In turn, not spawned: a burst of connections costs one catch-up each, never
        // a task each.
        let _ = tokio::time::timeout(SERVE_DEADLINE, async {
            let mut ask = [0u8; 1];
            if conn.read_exact(&mut ask).await.is_err() || ask[0] != ASK {
                return;
            }
            match verifier.catch_up(&store).await {
                Ok(_) => {
                    verifier.confirm(clock.now_millis());
                    let _ = conn.write_all(&[DONE]).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the change log for the admin CLI")
                }
            }
        })
        .await;
    }
    let _ = std::fs::remove_file(&path);
}
