//! Content digests as REAPI names blobs: the lowercase hex sha256 of the bytes and
//! their length. Every blob swarmcc reads back is checked against its digest here, so
//! that a corrupt or substituted blob is never written as an object.

use prost::Message;
use sha2::{Digest as _, Sha256};

use super::proto::build::bazel::remote::execution::v2::Digest;

/// The digest of `bytes`.
pub fn of(bytes: &[u8]) -> Digest {
    let hash = Sha256::digest(bytes);
    let mut hex = String::with_capacity(64);
    for b in hash {
        hex.push_str(&format!("{b:02x}"));
    }
    Digest {
        hash: hex,
        size_bytes: bytes.len() as i64,
    }
}

/// A message in its wire form, with that form's digest (REAPI digests messages by
/// their serialized bytes).
pub fn of_message<M: Message>(message: &M) -> (Digest, Vec<u8>) {
    let bytes = message.encode_to_vec();
    (of(&bytes), bytes)
}

/// Checks that `bytes` are the blob `digest` names.
pub fn verify(digest: &Digest, bytes: &[u8]) -> Result<(), String> {
    let got = of(bytes);
    if got.hash == digest.hash && got.size_bytes == digest.size_bytes {
        Ok(())
    } else {
        Err(format!(
            "blob {}/{} read back as {}/{}",
            digest.hash, digest.size_bytes, got.hash, got.size_bytes
        ))
    }
}

/// `hash/size`, as logs and ByteStream resource names write a digest.
pub fn show(digest: &Digest) -> String {
    format!("{}/{}", digest.hash, digest.size_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_sha256_hex_and_length() {
        let d = of(b"");
        assert_eq!(
            d.hash,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(d.size_bytes, 0);
        assert_eq!(of(b"abc").size_bytes, 3);
        assert!(verify(&of(b"abc"), b"abc").is_ok());
        let err = verify(&of(b"abc"), b"abd").unwrap_err();
        assert!(err.contains("read back as"), "{err}");
        assert!(verify(&of(b"abc"), b"abcd").is_err());
    }
}
