//! The credentials file: `$XDG_CONFIG_HOME/keygate/credentials.toml` (or
//! `~/.config/keygate/credentials.toml`), one table per named profile:
//!
//! ```toml
//! [profiles.default]
//! server = "https://keygate.example.com"
//! token = "kgt..."
//! ```
//!
//! The file holds tokens in the clear (as `gh`, `aws` and `docker` keep theirs), so it
//! is created with mode 0600 in a 0700 folder, refused when others can read it, and
//! replaced atomically (a new file renamed over the old) so an interrupted write
//! never leaves half a file.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::ClientError;

/// The profile used when none is named.
pub const DEFAULT_PROFILE: &str = "default";

/// One server and the token to use there.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// The server's base URL (`https://host:port`).
    pub server: String,
    /// The bearer token.
    pub token: String,
    /// A PEM file of the certificate authority that signed the server's certificate,
    /// when it is not one the system trusts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
}

impl fmt::Debug for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Profile")
            .field("server", &self.server)
            .field("token", &keygate_core::token::mask(&self.token))
            .field("ca_cert", &self.ca_cert)
            .finish()
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct FileContents {
    #[serde(default)]
    profiles: BTreeMap<String, Profile>,
}

/// The credentials file, loaded.
#[derive(Debug)]
pub struct Credentials {
    path: PathBuf,
    contents: FileContents,
}

/// Checks a profile name: letters, digits, `-` and `_`, 1 to 64 of them.
pub fn check_profile_name(name: &str) -> Result<(), ClientError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ClientError::ProfileName)
    }
}

impl Credentials {
    /// Where the file lives: under `$XDG_CONFIG_HOME` when that is an absolute path
    /// (the XDG rule), else under `$HOME/.config`.
    pub fn default_path() -> Result<PathBuf, ClientError> {
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| {
                std::env::var_os("HOME")
                    .map(PathBuf::from)
                    .filter(|p| p.is_absolute())
                    .map(|h| h.join(".config"))
            })
            .ok_or(ClientError::NoConfigDir)?;
        Ok(base.join("keygate").join("credentials.toml"))
    }

    /// Reads the file at `path`; a missing file is an empty one.
    pub fn load(path: &Path) -> Result<Self, ClientError> {
        let file_err = |what, source| ClientError::File {
            what,
            path: path.to_owned(),
            source,
        };
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self {
                    path: path.to_owned(),
                    contents: FileContents::default(),
                });
            }
            Err(e) => return Err(file_err("cannot read", e)),
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(ClientError::Permissions {
                path: path.to_owned(),
                mode,
            });
        }
        let text = std::fs::read_to_string(path).map_err(|e| file_err("cannot read", e))?;
        let contents: FileContents = toml::from_str(&text).map_err(|e| ClientError::Corrupt {
            path: path.to_owned(),
            // The message alone: the parser's snippet of the line could show a token.
            reason: e.message().to_owned(),
        })?;
        Ok(Self {
            path: path.to_owned(),
            contents,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The profile called `name`, if there is one.
    pub fn profile(&self, name: &str) -> Option<&Profile> {
        self.contents.profiles.get(name)
    }

    /// The names of all profiles, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.contents.profiles.keys().map(String::as_str)
    }

    /// Adds or replaces a profile (saved by [`Credentials::save`]).
    pub fn set(&mut self, name: &str, profile: Profile) {
        self.contents.profiles.insert(name.to_owned(), profile);
    }

    /// Removes a profile; says whether there was one.
    pub fn remove(&mut self, name: &str) -> bool {
        self.contents.profiles.remove(name).is_some()
    }

    /// Writes the file: a new file with mode 0600 beside it, flushed to disk, then
    /// renamed over the old one.
    pub fn save(&self) -> Result<(), ClientError> {
        let file_err = |what, path: &Path, source| ClientError::File {
            what,
            path: path.to_owned(),
            source,
        };
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| file_err("cannot create the folder", dir, e))?;
        let text = toml::to_string(&self.contents).map_err(|e| ClientError::Corrupt {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        let mut tmp = self.path.as_os_str().to_owned();
        tmp.push(format!(".{}.tmp", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let written = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(b"# keygate client credentials: keep this file private (mode 0600).\n")?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(file_err("cannot write", &self.path, e));
        }
        // Make the rename itself durable.
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn profile(server: &str) -> Profile {
        Profile {
            server: server.to_owned(),
            token: "kgtAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA123456".to_owned(),
            ca_cert: None,
        }
    }

    #[test]
    fn profiles_round_trip_in_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keygate").join("credentials.toml");
        let mut c = Credentials::load(&path).unwrap();
        assert_eq!(c.names().count(), 0);
        c.set("default", profile("http://a"));
        c.set("staging", profile("https://b"));
        c.save().unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        let mut c = Credentials::load(&path).unwrap();
        assert_eq!(c.profile("staging").unwrap().server, "https://b");
        assert!(c.remove("default"));
        assert!(!c.remove("default"));
        c.save().unwrap();
        let c = Credentials::load(&path).unwrap();
        assert_eq!(c.names().collect::<Vec<_>>(), ["staging"]);
        // No temporary file is left behind.
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
    }

    #[test]
    fn a_file_others_can_read_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.toml");
        std::fs::write(
            &path,
            "[profiles.default]\nserver = \"http://a\"\ntoken = \"x\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Credentials::load(&path).unwrap_err();
        assert!(
            matches!(e, ClientError::Permissions { mode: 0o644, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("chmod 600"), "{e}");
    }

    #[test]
    fn a_broken_file_is_reported_without_quoting_its_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials.toml");
        std::fs::write(
            &path,
            "[profiles.default]\ntoken = \"kgtSECRETSECRET\nserver=1\n",
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = Credentials::load(&path).unwrap_err();
        assert!(matches!(e, ClientError::Corrupt { .. }), "{e}");
        assert!(!e.to_string().contains("SECRET"), "{e}");
    }

    #[test]
    fn the_debug_form_masks_the_token() {
        let p = profile("http://a");
        assert!(!format!("{p:?}").contains(&p.token[7..45]));
    }

    #[test]
    fn profile_names_are_checked() {
        assert!(check_profile_name("prod-eu_1").is_ok());
        for bad in ["", "a b", "../x", &"x".repeat(65)] {
            assert!(check_profile_name(bad).is_err(), "{bad}");
        }
    }
}
