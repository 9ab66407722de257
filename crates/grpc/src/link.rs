//! Links to the hosted pages: a resource's ID and a token, an HMAC of the
//! ID under the deployment's server secret (`SideStorage::fingerprint_secret`)
//! with a context label per kind of page, so only whoever was given the URL
//! can use it, every server of a deployment accepts it, a token of one page
//! opens no other, and nothing new is stored.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Bytes of the HMAC a link carries (128 bits, 32 hex digits).
pub(crate) const TOKEN_BYTES: usize = 16;

/// The MAC of `resource`'s link to the page `context` names.
pub(crate) fn mac(server_secret: &[u8; 32], context: &[u8], resource: &str) -> [u8; TOKEN_BYTES] {
    // HMAC takes keys of any length; this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(server_secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC-SHA256 accepts a 32-byte key"),
    };
    mac.update(context);
    mac.update(resource.as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut token = [0u8; TOKEN_BYTES];
    token.copy_from_slice(&digest[..TOKEN_BYTES]);
    token
}

/// The token of `resource`'s link, as the URL carries it.
pub(crate) fn token(server_secret: &[u8; 32], context: &[u8], resource: &str) -> String {
    hex::encode(mac(server_secret, context, resource))
}

/// Whether `token` is the token of `resource`'s link (in constant time).
pub(crate) fn is_genuine(server_secret: &[u8; 32], context: &[u8], resource: &str, token: &str) -> bool {
    let expected = mac(server_secret, context, resource);
    hex::decode(token).is_ok_and(|given| bool::from(given.ct_eq(&expected)))
}
