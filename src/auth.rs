//! Who may do what: bearer tokens with roles, and the rules that say which calls and which
//! sessions each role reaches. Transport-free: the gRPC layer reads the `authorization`
//! header and hands the token here; the core's errors say what is missing.
//!
//! Tokens are stored as their SHA-256 digests, never as the tokens. A token is 32 random
//! bytes (256 bits), so a plain digest is enough: there is nothing to brute-force that a
//! slow password hash would protect. Looking a digest up in a map does not leak the token
//! through timing either: an attacker controls the token, not its digest.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::Error;

/// What a token may do.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Analyse frames and signals, open sessions, and explain, calibrate, clock-sync, list
    /// and export one's own sessions.
    Stream,
    /// List, get and export every recording.
    Read,
    /// Everything: delete recordings, clock offsets and explanations of any session, and
    /// the server's file paths in GetServerInfo.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Stream => "stream",
            Role::Read => "read",
            Role::Admin => "admin",
        }
    }
}

/// One token in the config (`[[auth.tokens]]`) or in `auth.tokens_file`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// Who holds it (a lab PC, a person); sessions opened with the token belong to this name.
    pub name: String,
    /// SHA-256 of the token, 64 hex digits (`affectd token new` prints it).
    pub sha256: String,
    pub roles: Vec<Role>,
}

/// The `[auth]` table. No tokens (the default): authentication is off, and every caller
/// may do everything; `affectd serve` then refuses to listen beyond loopback unless told
/// `--insecure`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub tokens: Vec<TokenEntry>,
    /// A TOML file with more `[[tokens]]` entries (kept apart from the config, e.g. with
    /// tighter permissions); empty = none.
    pub tokens_file: PathBuf,
}

/// The caller of one request, as authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's name; None when authentication is off.
    pub name: Option<String>,
    roles: BTreeSet<Role>,
    /// Authentication is off: everything is allowed, and sessions belong to nobody.
    open: bool,
}

impl Principal {
    /// The caller when authentication is off.
    pub fn open() -> Principal {
        Principal {
            name: None,
            roles: [Role::Stream, Role::Read, Role::Admin].into(),
            open: true,
        }
    }

    pub fn has(&self, role: Role) -> bool {
        self.open || self.roles.contains(&role) || self.roles.contains(&Role::Admin)
    }

    pub fn is_admin(&self) -> bool {
        self.has(Role::Admin)
    }

    /// The owner a session opened by this caller gets.
    pub fn owner(&self) -> Option<String> {
        self.name.clone()
    }

    /// PERMISSION_DENIED unless the caller has `role`; `what` names the call.
    pub fn require(&self, role: Role, what: &str) -> Result<(), Error> {
        if self.has(role) {
            return Ok(());
        }
        Err(self.denied(format!("{what} needs the `{}` role", role.as_str())))
    }

    /// Whether the caller may act on a session owned by `owner`: admins on any session;
    /// with `role` Read, readers on any recording; otherwise holders of `stream` on their
    /// own sessions only. A session opened without authentication belongs to nobody, so
    /// once tokens are on only admins and readers reach it.
    pub fn require_session(
        &self,
        role: Role,
        owner: Option<&str>,
        session_id: &str,
        what: &str,
    ) -> Result<(), Error> {
        if self.is_admin() || (role == Role::Read && self.has(Role::Read)) {
            return Ok(());
        }
        // Owners act on their sessions through their `stream` role.
        self.require(Role::Stream, what)?;
        if owner.is_some() && owner == self.name.as_deref() {
            return Ok(());
        }
        Err(self.denied(format!(
            "{what}: session `{session_id}` was opened by another token; only its owner or an `admin` token may"
        )))
    }

    /// Whether the caller sees every recording, or only its own.
    pub fn reads_all(&self) -> bool {
        self.has(Role::Read)
    }

    fn denied(&self, message: String) -> Error {
        let roles: Vec<_> = self.roles.iter().map(|r| r.as_str()).collect();
        Error::PermissionDenied(format!(
            "{message} (token `{}` has roles [{}]; roles are set in the config's [[auth.tokens]])",
            self.name.as_deref().unwrap_or("?"),
            roles.join(", ")
        ))
    }
}

/// The server's tokens, by digest.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    by_digest: HashMap<[u8; 32], Principal>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    #[serde(default)]
    tokens: Vec<TokenEntry>,
}

impl Tokens {
    /// The config's tokens and those of its tokens file. Errors name the entry and the key.
    pub fn load(config: &AuthConfig) -> Result<Tokens, String> {
        let mut entries: Vec<(String, TokenEntry)> = config
            .tokens
            .iter()
            .map(|t| ("auth.tokens".to_string(), t.clone()))
            .collect();
        if !config.tokens_file.as_os_str().is_empty() {
            let path = &config.tokens_file;
            entries.extend(
                read_tokens_file(path)?
                    .into_iter()
                    .map(|t| (format!("auth.tokens_file {}", path.display()), t)),
            );
        }
        let mut tokens = Tokens::default();
        let mut names = BTreeSet::new();
        for (source, entry) in entries {
            let digest = parse_digest(&entry.sha256)
                .map_err(|m| format!("{source}: token `{}`: sha256 {m}", entry.name))?;
            if entry.name.is_empty() {
                return Err(format!("{source}: a token has an empty name"));
            }
            if entry.roles.is_empty() {
                return Err(format!(
                    "{source}: token `{}` has no roles; give it some of stream, read, admin",
                    entry.name
                ));
            }
            if !names.insert(entry.name.clone()) {
                return Err(format!(
                    "{source}: the token name `{}` is used twice; sessions belong to a name, so names must differ",
                    entry.name
                ));
            }
            let principal = Principal {
                name: Some(entry.name.clone()),
                roles: entry.roles.iter().copied().collect(),
                open: false,
            };
            if tokens.by_digest.insert(digest, principal).is_some() {
                return Err(format!(
                    "{source}: token `{}` has the same sha256 as another token",
                    entry.name
                ));
            }
        }
        Ok(tokens)
    }

    /// Whether any token is configured (authentication on).
    pub fn enabled(&self) -> bool {
        !self.by_digest.is_empty()
    }

    /// The caller of a request whose `authorization` header is `header` (None: absent).
    pub fn authenticate(&self, header: Option<&str>) -> Result<Principal, Error> {
        if !self.enabled() {
            return Ok(Principal::open());
        }
        let header = header.ok_or_else(|| {
            Error::Unauthenticated(
                "this server requires a token: send the metadata `authorization: Bearer <token>`"
                    .into(),
            )
        })?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| {
                Error::Unauthenticated(
                    "the authorization metadata must read `Bearer <token>`".into(),
                )
            })?
            .trim();
        self.by_digest
            .get(&digest(token))
            .cloned()
            .ok_or_else(|| Error::Unauthenticated("the token is not known to this server".into()))
    }
}

fn read_tokens_file(path: &Path) -> Result<Vec<TokenEntry>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("auth.tokens_file: cannot read {}: {e}", path.display()))?;
    let file: TokensFile =
        toml::from_str(&text).map_err(|e| format!("auth.tokens_file {}: {e}", path.display()))?;
    Ok(file.tokens)
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn parse_digest(hex_digest: &str) -> Result<[u8; 32], String> {
    let bytes = hex::decode(hex_digest.trim())
        .map_err(|e| format!("is not hexadecimal ({e}); it must be 64 hex digits"))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("has {} bytes; it must be 32 (64 hex digits)", b.len()))
}

/// A new random token and its digest, for `affectd token new`. 256 bits from the operating
/// system's generator (through uuid's v4, which reads getrandom), hex-encoded.
pub fn new_token() -> (String, String) {
    let mut bytes = Vec::with_capacity(32);
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    // A v4 UUID fixes 6 of its 128 bits; 244 random bits remain in the two, which is plenty.
    let token = format!("affectd_{}", hex::encode(bytes));
    let sha = hex::encode(digest(&token));
    (token, sha)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(entries: &[(&str, &str, &[Role])]) -> Tokens {
        Tokens::load(&AuthConfig {
            tokens: entries
                .iter()
                .map(|(name, token, roles)| TokenEntry {
                    name: name.to_string(),
                    sha256: hex::encode(digest(token)),
                    roles: roles.to_vec(),
                })
                .collect(),
            tokens_file: PathBuf::new(),
        })
        .unwrap()
    }

    #[test]
    fn without_tokens_everyone_may_do_everything() {
        let t = Tokens::default();
        let p = t.authenticate(None).unwrap();
        assert!(p.is_admin());
        assert!(p.require_session(Role::Stream, None, "s", "x").is_ok());
        assert_eq!(p.owner(), None);
    }

    #[test]
    fn tokens_are_checked_and_carry_their_roles() {
        let t = tokens(&[
            ("pc1", "secret-1", &[Role::Stream]),
            ("ra", "secret-2", &[Role::Read]),
        ]);
        assert!(matches!(
            t.authenticate(None),
            Err(Error::Unauthenticated(_))
        ));
        assert!(matches!(
            t.authenticate(Some("Bearer nope")),
            Err(Error::Unauthenticated(_))
        ));
        assert!(matches!(
            t.authenticate(Some("secret-1")),
            Err(Error::Unauthenticated(_))
        ));
        let pc1 = t.authenticate(Some("Bearer secret-1")).unwrap();
        assert_eq!(pc1.owner().as_deref(), Some("pc1"));
        assert!(pc1.require(Role::Stream, "AnalyzeFrame").is_ok());
        let denied = pc1.require(Role::Read, "ListSessions").unwrap_err();
        assert!(matches!(denied, Error::PermissionDenied(_)));
        assert!(denied.message().contains("`read` role"), "{denied}");
        // Own sessions only.
        assert!(
            pc1.require_session(Role::Stream, Some("pc1"), "s", "Explain")
                .is_ok()
        );
        assert!(
            pc1.require_session(Role::Stream, Some("pc2"), "s", "Explain")
                .is_err()
        );
        assert!(
            pc1.require_session(Role::Stream, None, "s", "Explain")
                .is_err()
        );
        assert!(
            pc1.require_session(Role::Read, Some("pc1"), "s", "Export")
                .is_ok()
        );
        assert!(
            pc1.require_session(Role::Read, Some("pc2"), "s", "Export")
                .is_err()
        );
        // Readers read every recording but cannot stream or delete.
        let ra = t.authenticate(Some("Bearer secret-2")).unwrap();
        assert!(
            ra.require_session(Role::Read, Some("pc1"), "s", "Export")
                .is_ok()
        );
        assert!(
            ra.require_session(Role::Stream, Some("pc1"), "s", "Explain")
                .is_err()
        );
        assert!(ra.require(Role::Stream, "Stream").is_err());
        assert!(ra.require(Role::Admin, "DeleteSession").is_err());
    }

    #[test]
    fn bad_token_entries_are_refused_with_the_key() {
        let bad = |sha256: &str, roles: Vec<Role>| {
            Tokens::load(&AuthConfig {
                tokens: vec![TokenEntry {
                    name: "x".into(),
                    sha256: sha256.into(),
                    roles,
                }],
                tokens_file: PathBuf::new(),
            })
            .unwrap_err()
        };
        assert!(bad("abc", vec![Role::Read]).contains("sha256"));
        assert!(bad(&"ab".repeat(31), vec![Role::Read]).contains("32"));
        assert!(bad(&"ab".repeat(32), vec![]).contains("no roles"));
        let missing = Tokens::load(&AuthConfig {
            tokens: vec![],
            tokens_file: "/nonexistent/tokens.toml".into(),
        })
        .unwrap_err();
        assert!(missing.contains("auth.tokens_file"), "{missing}");
    }

    #[test]
    fn new_tokens_differ_and_match_their_digest() {
        let (a, sha_a) = new_token();
        let (b, _) = new_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), "affectd_".len() + 64);
        let t = Tokens::load(&AuthConfig {
            tokens: vec![TokenEntry {
                name: "n".into(),
                sha256: sha_a,
                roles: vec![Role::Admin],
            }],
            tokens_file: PathBuf::new(),
        })
        .unwrap();
        assert!(
            t.authenticate(Some(&format!("Bearer {a}")))
                .unwrap()
                .is_admin()
        );
        assert!(t.authenticate(Some(&format!("Bearer {b}"))).is_err());
    }
}
