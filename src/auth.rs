//! Authentication between swarmcc and swarmccd: the pre-shared key, its file, the
//! handshake's MACs and the running MACs over a request and a reply. Cryptography and
//! files only; the messages are `protocol::auth`, the conversation is `client::remote`
//! and `server::serve`, and the bytes reach a [`Transcript`] through `conn`'s tap.
//!
//! Everything is HMAC-SHA256 with the pre-shared key `K` and the two 32-byte nonces
//! `ns` (server's) and `nc` (client's):
//!
//! ```text
//! client proof   HMAC(K, "swarmcc-auth-1 client"  ‖ ns ‖ nc)
//! server proof   HMAC(K, "swarmcc-auth-1 server"  ‖ ns ‖ nc)
//! session key S  HMAC(K, "swarmcc-auth-1 session" ‖ ns ‖ nc)
//! request MAC    HMAC(S, every request byte as sent)
//! reply MAC      HMAC(S, every reply byte as sent)
//! ```
//!
//! Both nonces enter every MAC, so neither side can be made to replay a recorded
//! conversation, and a request or reply of one session is worthless in another.
//! MACs are compared in constant time (`hmac`'s `verify_slice`).
//!
//! Key file: hexadecimal text (whitespace ignored), at least 64 digits (32 bytes);
//! only its owner may have access (mode 0600 or stricter), as ssh insists for its keys.
//! `swarmccd --gen-auth-key FILE` writes one from 32 random bytes.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Shortest key accepted, in bytes.
pub const MIN_KEY_LEN: usize = 32;
/// Bytes of randomness `--gen-auth-key` writes.
pub const GENERATED_KEY_LEN: usize = 32;
/// A key file larger than this is not a key file.
const MAX_KEY_FILE: u64 = 4096;

const CLIENT_LABEL: &[u8] = b"swarmcc-auth-1 client";
const SERVER_LABEL: &[u8] = b"swarmcc-auth-1 server";
const SESSION_LABEL: &[u8] = b"swarmcc-auth-1 session";

/// The pre-shared key. Its bytes never appear in `Debug` output, and are overwritten
/// when it is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(Vec<u8>);

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({} bytes)", self.0.len())
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        for b in self.0.iter_mut() {
            // Volatile so that the compiler cannot drop the stores as dead.
            // SAFETY: `b` is a valid, exclusive reference to one byte.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

impl Key {
    /// A key from raw bytes; at least [`MIN_KEY_LEN`] of them.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Key, String> {
        if bytes.len() < MIN_KEY_LEN {
            return Err(format!(
                "the key has {} bytes; at least {MIN_KEY_LEN} are needed",
                bytes.len()
            ));
        }
        Ok(Key(bytes))
    }

    /// A key from a key file's text: hex digits, whitespace ignored.
    pub fn from_hex(text: &str) -> Result<Key, String> {
        let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        if let Some(bad) = digits.iter().find(|b| !b.is_ascii_hexdigit()) {
            return Err(format!(
                "not a hexadecimal key (found {:?}); create one with swarmccd --gen-auth-key",
                char::from(*bad)
            ));
        }
        if !digits.len().is_multiple_of(2) {
            return Err(format!(
                "odd number of hex digits ({}): a byte is cut in half",
                digits.len()
            ));
        }
        let bytes: Vec<u8> = digits
            .chunks(2)
            .map(|pair| (hex_value(pair[0]) << 4) | hex_value(pair[1]))
            .collect();
        Key::from_bytes(bytes).map_err(|e| {
            format!(
                "{e} ({} hex digits); create one with swarmccd --gen-auth-key",
                digits.len()
            )
        })
    }

    fn mac(&self, label: &[u8], ns: &[u8; 32], nc: &[u8; 32]) -> HmacSha256 {
        let mut m = keyed(&self.0);
        m.update(label);
        m.update(ns);
        m.update(nc);
        m
    }

    /// What the client sends in `SWRS` to prove it holds the key.
    pub fn client_proof(&self, ns: &[u8; 32], nc: &[u8; 32]) -> [u8; 32] {
        self.mac(CLIENT_LABEL, ns, nc)
            .finalize()
            .into_bytes()
            .into()
    }

    /// The server's check of `SWRS` (constant time).
    pub fn verify_client_proof(&self, ns: &[u8; 32], nc: &[u8; 32], mac: &[u8]) -> bool {
        self.mac(CLIENT_LABEL, ns, nc).verify_slice(mac).is_ok()
    }

    /// What the server sends in `SWOK` to prove it holds the key too.
    pub fn server_proof(&self, ns: &[u8; 32], nc: &[u8; 32]) -> [u8; 32] {
        self.mac(SERVER_LABEL, ns, nc)
            .finalize()
            .into_bytes()
            .into()
    }

    /// The client's check of `SWOK` (constant time).
    pub fn verify_server_proof(&self, ns: &[u8; 32], nc: &[u8; 32], mac: &[u8]) -> bool {
        self.mac(SERVER_LABEL, ns, nc).verify_slice(mac).is_ok()
    }

    /// The session key both sides derive once the handshake succeeded.
    pub fn session(&self, ns: &[u8; 32], nc: &[u8; 32]) -> Session {
        Session(
            self.mac(SESSION_LABEL, ns, nc)
                .finalize()
                .into_bytes()
                .into(),
        )
    }
}

/// The key of one authenticated connection, for the request and reply MACs.
pub struct Session([u8; 32]);

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Session(..)")
    }
}

impl Session {
    /// A running MAC over a request or a reply.
    pub fn transcript(&self) -> Transcript {
        Transcript(keyed(&self.0))
    }
}

/// A running HMAC over the bytes of one direction of a conversation.
#[derive(Clone)]
pub struct Transcript(HmacSha256);

impl fmt::Debug for Transcript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Transcript(..)")
    }
}

impl Transcript {
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The MAC of everything fed so far.
    pub fn finish(self) -> [u8; 32] {
        self.0.finalize().into_bytes().into()
    }

    /// Whether `mac` is the MAC of everything fed so far (constant time; a MAC of the
    /// wrong length never matches).
    pub fn verify(self, mac: &[u8]) -> bool {
        self.0.verify_slice(mac).is_ok()
    }
}

fn keyed(key: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length")
}

fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit - b'A' + 10,
    }
}

/// 32 bytes from the operating system's random source, for a nonce.
pub fn nonce() -> Result<[u8; 32], String> {
    let mut n = [0u8; 32];
    getrandom::fill(&mut n).map_err(|e| format!("no random numbers from the system: {e}"))?;
    Ok(n)
}

/// Reads a key file, refusing one that others may read (or write), one that is not a
/// regular file, and one whose key is too short. Every error names the file.
pub fn load_key_file(path: &Path) -> Result<Key, String> {
    let shown = path.display();
    let mut file =
        File::open(path).map_err(|e| format!("cannot read auth key file {shown}: {e}"))?;
    // The checks use the opened file, so that they apply to what is read.
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read auth key file {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("auth key file {shown} is not a regular file"));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "auth key file {shown} is accessible by group or others (mode {mode:04o}); \
             run chmod 600 {shown}"
        ));
    }
    if meta.len() > MAX_KEY_FILE {
        return Err(format!(
            "auth key file {shown} is larger than {MAX_KEY_FILE} bytes: not a key file"
        ));
    }
    let mut text = String::new();
    Read::by_ref(&mut file)
        .take(MAX_KEY_FILE)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read auth key file {shown}: {e}"))?;
    Key::from_hex(&text).map_err(|e| format!("auth key file {shown}: {e}"))
}

/// Writes a new random key to `path` (mode 0600), never replacing an existing file.
pub fn generate_key_file(path: &Path) -> Result<(), String> {
    let shown = path.display();
    let mut bytes = [0u8; GENERATED_KEY_LEN];
    getrandom::fill(&mut bytes).map_err(|e| format!("no random numbers from the system: {e}"))?;
    let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    bytes.fill(0);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => {
                format!("{shown} already exists; not overwriting a key (remove it first)")
            }
            _ => format!("cannot create {shown}: {e}"),
        })?;
    file.write_all(format!("{text}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {shown}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn hmac_sha256_known_answer_rfc4231_case_2() {
        let mut t = Transcript(keyed(b"Jefe"));
        // Fed in two pieces: the tap sees a stream in arbitrary chunks.
        t.update(b"what do ya want ");
        t.update(b"for nothing?");
        let want = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        assert_eq!(hex(&t.clone().finish()), want);
        assert!(t.verify(&unhex(want)));
    }

    fn unhex(h: &str) -> Vec<u8> {
        h.as_bytes()
            .chunks(2)
            .map(|p| (hex_value(p[0]) << 4) | hex_value(p[1]))
            .collect()
    }

    #[test]
    fn verification_is_exact() {
        let mut t = Transcript(keyed(b"Jefe"));
        t.update(b"what do ya want for nothing?");
        let good = t.clone().finish();
        assert!(t.clone().verify(&good));
        // One flipped bit, and a prefix of the right MAC (which a naive comparison of
        // the shorter length would accept), both fail: verify_slice checks all 32.
        let mut bad = good;
        bad[31] ^= 1;
        assert!(!t.clone().verify(&bad));
        assert!(!t.clone().verify(&good[..16]));
        assert!(!t.verify(&[]));
    }

    #[test]
    fn handshake_macs_bind_key_role_and_nonces() {
        let k = Key::from_bytes(vec![7u8; 32]).unwrap();
        let other = Key::from_bytes(vec![8u8; 32]).unwrap();
        let (ns, nc) = ([1u8; 32], [2u8; 32]);
        let proof = k.client_proof(&ns, &nc);
        assert!(k.verify_client_proof(&ns, &nc, &proof));
        assert!(!other.verify_client_proof(&ns, &nc, &proof));
        assert!(!k.verify_client_proof(&nc, &ns, &proof), "nonces swapped");
        assert!(!k.verify_client_proof(&[3u8; 32], &nc, &proof), "new nonce");
        // A client's proof is not a server's: a rogue server cannot echo it back.
        assert!(!k.verify_server_proof(&ns, &nc, &proof));
        let sproof = k.server_proof(&ns, &nc);
        assert!(k.verify_server_proof(&ns, &nc, &sproof));
        assert_ne!(proof, sproof);
        // The session key is neither, and the same on both sides.
        let mut a = k.session(&ns, &nc).transcript();
        let mut b = k.session(&ns, &nc).transcript();
        a.update(b"DIST00000001");
        b.update(b"DIST00000001");
        let mac = a.finish();
        assert!(b.clone().verify(&mac));
        assert_ne!(mac, proof);
        assert_ne!(mac, sproof);
        let mut c = k.session(&ns, &[9u8; 32]).transcript();
        c.update(b"DIST00000001");
        assert!(!c.verify(&mac), "another session's MAC");
        assert_eq!(format!("{k:?}"), "Key(32 bytes)");
    }

    #[test]
    fn nonces_differ() {
        assert_ne!(nonce().unwrap(), nonce().unwrap());
    }

    #[test]
    fn hex_keys() {
        let k = Key::from_hex(&format!("{}\n", "aB".repeat(32))).unwrap();
        assert_eq!(k.0, vec![0xab; 32]);
        let k = Key::from_hex(&format!("  {} \n {}\n", "01".repeat(20), "ff".repeat(20))).unwrap();
        assert_eq!(k.0.len(), 40);
        assert!(Key::from_hex(&"ab".repeat(31))
            .unwrap_err()
            .contains("31 bytes"));
        assert!(Key::from_hex(&"ab".repeat(40)[1..])
            .unwrap_err()
            .contains("odd"));
        assert!(Key::from_hex(&format!("{}zz", "ab".repeat(40)))
            .unwrap_err()
            .contains("'z'"));
        assert!(Key::from_hex("").is_err());
    }

    #[test]
    fn key_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.key");
        generate_key_file(&path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim().len(), 64);
        let key = load_key_file(&path).unwrap();
        assert_eq!(key.0.len(), 32);
        // Never overwritten.
        let e = generate_key_file(&path).unwrap_err();
        assert!(e.contains("already exists"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        // Others may not read it.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load_key_file(&path).unwrap_err();
        assert!(
            e.contains(&path.display().to_string()) && e.contains("0644"),
            "{e}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(load_key_file(&path).is_ok());
        // Missing, and too short: the message names the file.
        let missing = dir.path().join("nope.key");
        let e = load_key_file(&missing).unwrap_err();
        assert!(e.contains("nope.key"), "{e}");
        let short = dir.path().join("short.key");
        std::fs::write(&short, "abcd\n").unwrap();
        std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = load_key_file(&short).unwrap_err();
        assert!(e.contains("short.key") && e.contains("at least 32"), "{e}");
        // A directory is not a key file.
        let e = load_key_file(dir.path()).unwrap_err();
        assert!(
            e.contains("not a regular file") || e.contains("mode"),
            "{e}"
        );
    }
}
