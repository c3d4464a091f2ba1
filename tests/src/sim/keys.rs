//! SSH keys: the simulator's host key (loaded, or generated once and kept under `.rds-sim/` so a
//! restart keeps the pinned key), the `authorized_keys` check, and client key pairs for tests.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::authorized_keys::AuthorizedKeys;
use russh::keys::{Algorithm, HashAlg, PrivateKey, PublicKey};

use super::error::SimError;
use super::state::Paths;

fn key_error(path: &Path, detail: impl ToString) -> SimError {
    SimError::Key {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    }
}

/// Writes `text` to a new or truncated file readable only by its owner.
fn write_private(path: &Path, text: &str) -> Result<(), SimError> {
    let io = |source| SimError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)
}

/// The OpenSSH public line of a key (`ssh-ed25519 AAAA... comment`).
pub fn public_line(key: &PublicKey) -> Result<String, SimError> {
    key.to_openssh()
        .map_err(|e| key_error(Path::new("<public key>"), e))
}

/// The host key: `explicit` when given; otherwise `<root>/.rds-sim/host_key`, generated (ed25519)
/// the first time. `host_key.pub` beside it always holds the public line.
pub fn host_key(paths: &Paths, explicit: Option<&Path>) -> Result<PrivateKey, SimError> {
    let key = match explicit {
        Some(path) => read_private(path)?,
        None => {
            let path = paths.host_key();
            if path.exists() {
                read_private(&path)?
            } else {
                let mut key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519)
                    .map_err(|e| key_error(&path, e))?;
                key.set_comment("rds-sim host key");
                let text = key
                    .to_openssh(LineEnding::LF)
                    .map_err(|e| key_error(&path, e))?;
                write_private(&path, &text)?;
                key
            }
        }
    };
    let pub_path = paths.host_key_pub();
    let line = public_line(key.public_key())?;
    fs::write(&pub_path, format!("{line}\n")).map_err(|source| SimError::Io {
        path: pub_path,
        source,
    })?;
    Ok(key)
}

fn read_private(path: &Path) -> Result<PrivateKey, SimError> {
    let text = fs::read_to_string(path).map_err(|source| SimError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let key = PrivateKey::from_openssh(&text).map_err(|e| key_error(path, e))?;
    if key.is_encrypted() {
        return Err(key_error(path, "encrypted keys are not supported"));
    }
    Ok(key)
}

/// The keys of an `authorized_keys` file (options are ignored; unreadable lines are skipped).
pub fn authorized(path: &Path) -> Result<Vec<PublicKey>, SimError> {
    let text = fs::read_to_string(path).map_err(|source| SimError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(AuthorizedKeys::new(&text)
        .filter_map(|entry| match entry {
            Ok(e) => Some(e.public_key().clone()),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "skipping an authorized_keys line");
                None
            }
        })
        .collect())
}

/// Whether a login signature algorithm is accepted: ed25519, ECDSA, and RSA only with SHA-2
/// (`rsa-sha2-256`/`rsa-sha2-512`), never SHA-1 `ssh-rsa`.
pub fn algorithm_allowed(algorithm: &Algorithm) -> bool {
    match algorithm {
        Algorithm::Ed25519 | Algorithm::Ecdsa { .. } => true,
        Algorithm::Rsa { hash } => matches!(hash, Some(HashAlg::Sha256 | HashAlg::Sha512)),
        _ => false,
    }
}

/// True when `key` is in `allowed` (compared by key material, not comment).
pub fn is_authorized(allowed: &[PublicKey], key: &PublicKey) -> bool {
    allowed.iter().any(|k| k.key_data() == key.key_data())
}

/// Generates an ed25519 client key pair for tests: writes the OpenSSH private key to `path`
/// (mode 0600) and the public line to `<path>.pub`, and returns the public line for an
/// `authorized_keys` file.
pub fn generate_client_key(path: &Path) -> Result<String, SimError> {
    let mut key =
        PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).map_err(|e| key_error(path, e))?;
    key.set_comment("rds-sim test client");
    let text = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| key_error(path, e))?;
    write_private(path, &text)?;
    let line = public_line(key.public_key())?;
    let mut pub_path = path.as_os_str().to_owned();
    pub_path.push(".pub");
    fs::write(&pub_path, format!("{line}\n")).map_err(|source| SimError::Io {
        path: pub_path.into(),
        source,
    })?;
    Ok(line)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn host_key_is_generated_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        fs::create_dir_all(paths.meta()).unwrap();
        let first = host_key(&paths, None).unwrap();
        let second = host_key(&paths, None).unwrap();
        assert_eq!(
            first.public_key().key_data(),
            second.public_key().key_data()
        );
        let line = fs::read_to_string(paths.host_key_pub()).unwrap();
        assert!(line.starts_with("ssh-ed25519 "), "{line}");
        let parsed = PublicKey::from_openssh(line.trim()).unwrap();
        assert_eq!(parsed.key_data(), first.public_key().key_data());
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(paths.host_key()).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "private key readable by others");
    }

    #[test]
    fn explicit_host_key_and_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        fs::create_dir_all(paths.meta()).unwrap();
        let key_path = dir.path().join("my_key");
        let line = generate_client_key(&key_path).unwrap();
        let key = host_key(&paths, Some(&key_path)).unwrap();
        assert_eq!(public_line(key.public_key()).unwrap(), line);
        fs::write(dir.path().join("junk"), "not a key").unwrap();
        assert!(matches!(
            host_key(&paths, Some(&dir.path().join("junk"))),
            Err(SimError::Key { .. })
        ));
    }

    #[test]
    fn authorized_keys_match_by_key_material() {
        let dir = tempfile::tempdir().unwrap();
        let a = generate_client_key(&dir.path().join("a")).unwrap();
        let b = generate_client_key(&dir.path().join("b")).unwrap();
        let file = dir.path().join("authorized_keys");
        fs::write(&file, format!("# comment\n\nno-pty {a}\ngarbage line\n")).unwrap();
        let allowed = authorized(&file).unwrap();
        assert_eq!(allowed.len(), 1);
        let mut a_key = PublicKey::from_openssh(&a).unwrap();
        a_key.set_comment("another comment");
        assert!(is_authorized(&allowed, &a_key));
        assert!(!is_authorized(
            &allowed,
            &PublicKey::from_openssh(&b).unwrap()
        ));
    }

    #[test]
    fn signature_algorithms() {
        assert!(algorithm_allowed(&Algorithm::Ed25519));
        assert!(algorithm_allowed(&Algorithm::Rsa {
            hash: Some(HashAlg::Sha512)
        }));
        assert!(algorithm_allowed(&Algorithm::Rsa {
            hash: Some(HashAlg::Sha256)
        }));
        assert!(!algorithm_allowed(&Algorithm::Rsa { hash: None }));
    }
}
