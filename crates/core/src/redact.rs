//! What may appear in logs in place of personal data.

use sha2::{Digest, Sha256};

/// A stable, non-reversible stand-in for an e-mail address: the first 16 hex
/// digits of its SHA-256, enough to correlate log lines of one user.
pub fn email_hash(email: &str) -> String {
    let digest = Sha256::digest(email.trim().to_lowercase().as_bytes());
    format!("sha256:{}", &hex::encode(digest)[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_stable_case_insensitive_and_hides_the_address() {
        let a = email_hash("Alice@Example.com");
        assert_eq!(a, email_hash("alice@example.com"));
        assert!(!a.contains("alice"));
        assert!(!a.contains('@'));
        assert_eq!(a.len(), "sha256:".len() + 16);
    }
}
