//! The client's identity toward RouterOS: the private key from `--rds-key-file`, the login name
//! (user plus console options) and the public-key login itself.
//!
//! RouterOS reads options appended to the user name after a `+` (`admin+cet512w`: no colours,
//! dumb terminal, no auto-detection, 512 columns), which keeps `print` output free of escape
//! codes and most line wrapping. RSA keys sign with SHA-2 (`rsa-sha2-512` or `rsa-sha2-256`),
//! never with SHA-1.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use russh::client::{AuthResult, Handle};
use russh::keys::{Algorithm, HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey};

use super::error::TransportError;
use super::handler::ClientHandler;
use super::host_key::fingerprint;

/// Why the client key could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read.
    #[error("cannot read the RDS client key {path}: {detail}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        detail: String,
    },
    /// The key is protected by a passphrase.
    #[error(
        "the RDS client key {path} is encrypted with a passphrase; the gateway cannot prompt for \
         one: store an unencrypted copy in the Secret (ssh-keygen -p -N '' -f <file>)"
    )]
    Encrypted {
        /// The file.
        path: String,
    },
    /// The text is not an OpenSSH private key.
    #[error(
        "the RDS client key {path} is not an OpenSSH private key (-----BEGIN OPENSSH PRIVATE \
         KEY-----): {detail}"
    )]
    Invalid {
        /// The file.
        path: String,
        /// The parser's message.
        detail: String,
    },
    /// A key type RouterOS does not take for user logins.
    #[error("the RDS client key {path} is a {algorithm} key; use an ed25519 or RSA key")]
    Unsupported {
        /// The file.
        path: String,
        /// The key's algorithm.
        algorithm: String,
    },
}

/// The private key the gateway logs in with.
#[derive(Clone)]
pub struct ClientKey {
    key: Arc<PrivateKey>,
    source: String,
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientKey")
            .field("source", &self.source)
            .field("algorithm", &self.key.algorithm().as_str())
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

impl ClientKey {
    /// Reads an OpenSSH private key file.
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| KeyError::Read {
            path: shown.clone(),
            detail: e.to_string(),
        })?;
        Self::from_openssh(&text, &shown)
    }

    /// Parses OpenSSH private key text; `source` names it in errors.
    pub fn from_openssh(text: &str, source: &str) -> Result<Self, KeyError> {
        let key = PrivateKey::from_openssh(text.trim()).map_err(|e| KeyError::Invalid {
            path: source.to_string(),
            detail: e.to_string(),
        })?;
        Self::from_private_key(key, source)
    }

    /// Uses a key already in memory.
    pub fn from_private_key(key: PrivateKey, source: &str) -> Result<Self, KeyError> {
        if key.is_encrypted() {
            return Err(KeyError::Encrypted {
                path: source.to_string(),
            });
        }
        match key.algorithm() {
            Algorithm::Ed25519 | Algorithm::Rsa { .. } => {}
            other => {
                return Err(KeyError::Unsupported {
                    path: source.to_string(),
                    algorithm: other.as_str().to_string(),
                });
            }
        }
        Ok(ClientKey {
            key: Arc::new(key),
            source: source.to_string(),
        })
    }

    /// The public half (what goes into `/user ssh-keys` on the RDS).
    pub fn public_key(&self) -> &PublicKey {
        self.key.public_key()
    }

    /// `SHA256:...` of the public half.
    pub fn fingerprint(&self) -> String {
        fingerprint(self.key.public_key())
    }

    /// True for RSA keys (which need a signature hash choice).
    pub fn is_rsa(&self) -> bool {
        matches!(self.key.algorithm(), Algorithm::Rsa { .. })
    }
}

/// The SSH login name: `user` or `user+options` (a leading `+` in `console_options` is
/// accepted; empty options give the bare user).
pub fn login_name(user: &str, console_options: &str) -> String {
    let options = console_options.trim().trim_start_matches('+');
    if options.is_empty() {
        user.to_string()
    } else {
        format!("{user}+{options}")
    }
}

/// The RSA signature hash to use given what the server announced (`server-sig-algs`):
/// its best SHA-2 choice, and SHA-256 when it announced nothing or only SHA-1.
pub fn rsa_hash(announced: Option<Option<HashAlg>>) -> HashAlg {
    match announced {
        Some(Some(h)) => h,
        Some(None) | None => HashAlg::Sha256,
    }
}

/// Logs in with the key. `user` (without options) is what errors name.
pub(crate) async fn authenticate(
    handle: &mut Handle<ClientHandler>,
    login: &str,
    user: &str,
    key: &ClientKey,
    address: &str,
) -> Result<(), TransportError> {
    let hash = if key.is_rsa() {
        let announced = handle.best_supported_rsa_hash().await.unwrap_or(None);
        if matches!(announced, Some(None)) {
            tracing::warn!(
                rds.address = %address,
                "the RDS announces only ssh-rsa (SHA-1) signatures; trying rsa-sha2-256 anyway"
            );
        }
        Some(rsa_hash(announced))
    } else {
        None
    };
    let signer = PrivateKeyWithHashAlg::new(key.key.clone(), hash);
    match handle.authenticate_publickey(login, signer).await {
        Ok(AuthResult::Success) => Ok(()),
        Ok(AuthResult::Failure { .. }) => Err(TransportError::AuthFailed {
            user: user.to_string(),
        }),
        Err(e) => Err(TransportError::Protocol {
            address: address.to_string(),
            detail: format!("public-key login as {login} failed: {e}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    // Generated with `ssh-keygen -t ed25519 -N secret` for this test only.
    const ENCRYPTED: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAACmFlczI1Ni1jdHIAAAAGYmNyeXB0AAAAGAAAABBFIje3Z4
FW4Ml8drjsmiH1AAAAAgAAAAEAAAAzAAAAC3NzaC1lZDI1NTE5AAAAIKBJ/pVvqpKJtkyf
vLlglRTsqbakFmwiXL8/gPxHxWEmAAAAkOfM+H5DCrYyg2mtJ277rea3O402Yv3078PQr6
zi7CZ612rPp0/kfqo+qQcLglXlZvo2IxZHlCY6FqArueEh3vTqZnzFSDh6X1kaSjFyOY3U
oi4kdwoIEqjwbcCG2mN5DaQTUrjm8pOuh0+YIvsErSUwoqbhmWhC1goLyqfhKHNfoM1/L0
wqHiHQJBC1kZEqQw==
-----END OPENSSH PRIVATE KEY-----
";

    #[test]
    fn login_names() {
        assert_eq!(login_name("admin", "cet512w"), "admin+cet512w");
        assert_eq!(login_name("admin", "+cet512w"), "admin+cet512w");
        assert_eq!(login_name("admin", ""), "admin");
        assert_eq!(login_name("admin", "  "), "admin");
    }

    #[test]
    fn rsa_hash_prefers_what_the_server_announces() {
        assert_eq!(rsa_hash(Some(Some(HashAlg::Sha512))), HashAlg::Sha512);
        assert_eq!(rsa_hash(Some(Some(HashAlg::Sha256))), HashAlg::Sha256);
        assert_eq!(rsa_hash(Some(None)), HashAlg::Sha256);
        assert_eq!(rsa_hash(None), HashAlg::Sha256);
    }

    #[test]
    fn encrypted_key_is_a_clear_error() {
        let err = ClientKey::from_openssh(ENCRYPTED, "/etc/rds/id").unwrap_err();
        assert_eq!(
            err,
            KeyError::Encrypted {
                path: "/etc/rds/id".into()
            }
        );
        assert!(err.to_string().contains("passphrase"));
    }

    #[test]
    fn ed25519_round_trip_through_a_file() {
        let key = PrivateKey::random(&mut rand::rng(), Algorithm::Ed25519).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id_ed25519");
        std::fs::write(
            &path,
            key.to_openssh(russh::keys::ssh_key::LineEnding::LF)
                .unwrap()
                .as_bytes(),
        )
        .unwrap();
        let loaded = ClientKey::from_file(&path).unwrap();
        assert_eq!(loaded.public_key().key_data(), key.public_key().key_data());
        assert!(!loaded.is_rsa());
        let debug = format!("{loaded:?}");
        assert!(debug.contains("SHA256:"));
        assert!(!debug.contains("PRIVATE"));
    }

    #[test]
    fn unreadable_garbage_and_unsupported_keys() {
        let missing = ClientKey::from_file(Path::new("/nonexistent/rds-key")).unwrap_err();
        assert!(
            matches!(missing, KeyError::Read { ref path, .. } if path == "/nonexistent/rds-key")
        );
        let garbage = ClientKey::from_openssh("not a key", "k").unwrap_err();
        assert!(matches!(garbage, KeyError::Invalid { .. }));
        let ecdsa = PrivateKey::random(
            &mut rand::rng(),
            Algorithm::Ecdsa {
                curve: russh::keys::EcdsaCurve::NistP256,
            },
        )
        .unwrap();
        let err = ClientKey::from_private_key(ecdsa, "k").unwrap_err();
        assert!(matches!(err, KeyError::Unsupported { .. }), "{err:?}");
    }
}
