//! The page-token decoder, through the public pagination entry point (a
//! token is decoded before it is compared with the list it is used on).

use paycore_projections::{PageRequest, account_transactions_as_of};

use crate::world::world;

const ITEMS: usize = 300;

/// Page token harness. Byte 0: bit 0 clear, the rest is hex-encoded into
/// the token here (so mutations reach the token's binary decoding); set,
/// the rest is the token text itself (lossy UTF-8). Byte 1 is the page size
/// (1–100, as the edge validates it). A token that gives a page is
/// followed once more.
pub fn token(data: &[u8]) {
    let [mode, size, rest @ ..] = data else {
        return;
    };
    let token = if mode & 1 == 0 {
        hex::encode(rest)
    } else {
        String::from_utf8_lossy(rest).into_owned()
    };
    let world = world();
    let items = [(); ITEMS];
    let size = usize::from(*size % 100) + 1;
    let mut request = PageRequest {
        size,
        token: Some(token),
    };
    for _ in 0..2 {
        let Ok(page) = account_transactions_as_of(world.project, world.accounts[0], &request, &items) else {
            return;
        };
        assert!(page.items.len() <= size, "a page holds at most its size");
        request.token = page.next_token;
        if request.token.is_none() {
            return;
        }
    }
}

pub fn seeds() -> Vec<Vec<u8>> {
    let world = world();
    let items = [(); ITEMS];
    let mut seeds = Vec::new();
    for size in [1usize, 10, 100] {
        let request = PageRequest { size, token: None };
        if let Ok(page) = account_transactions_as_of(world.project, world.accounts[0], &request, &items)
            && let Some(token) = page.next_token
        {
            if let Ok(bytes) = hex::decode(&token) {
                let mut seed = vec![0, size as u8 - 1];
                seed.extend_from_slice(&bytes);
                seeds.push(seed);
            }
            let mut seed = vec![1, size as u8 - 1];
            seed.extend_from_slice(token.as_bytes());
            seeds.push(seed);
        }
    }
    seeds
}
