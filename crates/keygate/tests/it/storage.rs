//! Storage faults under a running server on the embedded SQLite store, for real: a
//! small tmpfs the test mounts itself and fills, a database file made immutable or
//! deleted. A failed write is answered 503 with the reason, never poisons later writes,
//! readiness says so while it lasts, and nothing is acknowledged that would be lost.

use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::StatusCode;
use serde_json::json;

use super::support::*;

/// A tmpfs of `size_kib` mounted on a fresh directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None`, after a loud line, where this machine does not let the test mount.
    fn mount(size_kib: u64) -> Option<Self> {
        let dir = tempfile::tempdir().expect("mount point");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_kib}k,mode=0700")])
            .arg("tmpfs")
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED a storage-fault test: cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN) ***\n"
            );
            return None;
        }
        Some(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Fills the file system holding `dir` until it has no space left; returns the file.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write as _;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).expect("filler");
    let block = vec![0u8; 4096];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
    path
}

async fn readyz(s: &Server) -> Resp {
    send(s.client.get(format!("http://{}/readyz", s.addr))).await
}

/// Creates a user with a note large enough that each create needs new pages.
async fn create_user(s: &Server, n: usize) -> Resp {
    s.post(
        &s.admin_token,
        "/setting/admins",
        json!({
            "username": format!("u{n}"),
            "email": format!("u{n}@example.com"),
            "roles": [{"id": READONLY}],
            "note": "n".repeat(1000),
        }),
    )
    .await
}

#[tokio::test]
async fn a_full_disk_is_503_and_writes_succeed_again_once_space_is_back() {
    let Some(fs) = Tmpfs::mount(3 * 1024) else {
        return;
    };
    let dir = tempfile::tempdir_in(fs.path()).expect("dir");
    let Some(s) = Server::start_at(dir, test_config()).await else {
        return;
    };
    let owner = s.user("ingest", &[DATAINGESTION]).await;
    let (token_id, token) = s.token_for(owner, "to revoke").await;
    let filler = fill(fs.path());

    // Writes until the disk says no (a few may still fit in pages SQLite holds).
    let mut refused = None;
    for n in 0..400 {
        let r = create_user(&s, n).await;
        if r.status != StatusCode::OK {
            refused = Some(r);
            break;
        }
    }
    let refused = refused.expect("a write was refused once the disk was full");
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        refused.text
    );
    assert!(refused.message().contains("disk"), "{}", refused.text);
    assert!(refused.headers.contains_key("retry-after"));
    let r = readyz(&s).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert!(r.text.contains("full"), "{}", r.text);
    // More, while the disk stays full: refused the same way (never 500), or stored
    // when SQLite finds room in pages it already holds.
    for n in 1000..1010 {
        let r = create_user(&s, n).await;
        assert!(
            matches!(r.status, StatusCode::SERVICE_UNAVAILABLE | StatusCode::OK),
            "{}",
            r.text
        );
    }

    // Space back: every write goes through again, the revocation included.
    std::fs::remove_file(filler).expect("free the space");
    for n in 2000..2030 {
        let r = create_user(&s, n).await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "write {n} after space came back: {}",
            r.text
        );
    }
    let r = s
        .patch(
            &s.admin_token,
            &format!("/setting/admins/{owner}/apitokens/{token_id}"),
            json!({"status": 1}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = s.get(&token, &format!("/setting/admins/{owner}")).await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "the revoked token is refused"
    );
    let r = readyz(&s).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn an_unwritable_database_file_is_refused_consistently_until_it_is_writable() {
    let Some(fs) = Tmpfs::mount(8 * 1024) else {
        return;
    };
    let dir = tempfile::tempdir_in(fs.path()).expect("dir");
    let db = dir.path().join("keygate.db");
    let Some(s) = Server::start_at(dir, test_config()).await else {
        return;
    };
    assert_eq!(create_user(&s, 1).await.status, StatusCode::OK);
    let chattr = |flag: &str| {
        Command::new("chattr")
            .arg(flag)
            .arg(&db)
            .status()
            .is_ok_and(|st| st.success())
    };
    if !chattr("+i") {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "\n*** SKIPPED the read-only database test: chattr +i is not available here ***\n"
        );
        return;
    }
    // Open connections could still write to the file; keygate refuses anyway, every time.
    for n in 2..8 {
        let r = create_user(&s, n).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
        assert!(r.message().contains("read-only"), "{}", r.text);
    }
    let r = readyz(&s).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert!(chattr("-i"));
    for n in 10..20 {
        assert_eq!(create_user(&s, n).await.status, StatusCode::OK);
    }
    assert_eq!(readyz(&s).await.status, StatusCode::OK);
    let users = s.get(&s.admin_token, "/setting/admins?size=1000").await;
    let names: Vec<&str> = users.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|u| u["username"].as_str())
        .collect();
    assert!(
        !names.contains(&"u2"),
        "nothing refused was stored: {names:?}"
    );
    assert!(names.contains(&"u1") && names.contains(&"u10"));
}

#[tokio::test]
async fn writes_into_a_deleted_database_file_are_refused_and_nothing_acknowledged_is_lost() {
    let Some(s) = Server::start().await else {
        return;
    };
    assert_eq!(create_user(&s, 1).await.status, StatusCode::OK);
    let Db::Sqlite(db) = s.db.clone() else {
        unreachable!("the storage tests run on SQLite")
    };
    std::fs::remove_file(&db).expect("delete the database file");
    for n in 2..6 {
        let r = create_user(&s, n).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
        assert!(r.message().contains("deleted"), "{}", r.text);
    }
    let r = readyz(&s).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert!(r.text.contains("deleted"), "{}", r.text);
    // The server keeps verifying from memory meanwhile (it refuses only changes).
    let r = s.get(&s.admin_token, "/setting/admins/1").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[test]
fn start_refuses_a_missing_database_whose_master_key_file_exists() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("keygate.db");
    let url = format!("sqlite://{}", db.display());
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_keygate"))
            .args(args)
            .env("KEYGATE_DATABASE_URL", &url)
            .output()
            .expect("keygate runs")
    };
    let out = run(&["init"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_file(&db).expect("lose the database");
    let _ = std::fs::remove_file(dir.path().join("keygate.db-wal"));
    let _ = std::fs::remove_file(dir.path().join("keygate.db-shm"));
    let out = run(&["init"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started on an empty database: {err}");
    assert!(
        err.contains("does not exist") && err.contains("keygate.key"),
        "{err}"
    );
    assert!(!db.exists(), "no empty database was created");
}

#[tokio::test]
async fn the_database_and_its_wal_are_readable_by_the_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let Some(s) = Server::start().await else {
        return;
    };
    assert_eq!(create_user(&s, 1).await.status, StatusCode::OK);
    let Db::Sqlite(db) = s.db.clone() else {
        unreachable!("the storage tests run on SQLite")
    };
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", db.display()));
        let mode = std::fs::metadata(&p).expect("file").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} has mode {mode:o}", p.display());
    }
    // A database created more widely readable is tightened when keygate opens it.
    let s_dir = tempfile::tempdir().expect("dir");
    let loose = s_dir.path().join("loose.db");
    std::fs::write(&loose, b"").expect("file");
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let key = keygate_store::MasterKey::generate().expect("key");
    let _store = keygate_store::SqliteStore::open(loose.to_str().expect("path"), key)
        .await
        .expect("open");
    let mode = std::fs::metadata(&loose)
        .expect("file")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
}
