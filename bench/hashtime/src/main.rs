//! `imangor-hashtime M_KIB T P N`: verifies a password N times with argon2id (after one warm-up)
//! the way the server's hashing threads do (`src/auth/password.rs`): the stored PHC string's
//! salt and parameters, in working memory kept from one hash to the next and zeroed after each.
//! Prints JSON with the median and minimum seconds of one hash. Run it pinned to the server's core.

use std::time::Instant;

use argon2::password_hash::PasswordHasher;
use argon2::password_hash::phc::{Output, PasswordHash};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use zeroize::Zeroize;

fn main() {
    let a: Vec<u64> = std::env::args()
        .skip(1)
        .map(|s| s.parse().expect("usage: imangor-hashtime M_KIB T P N"))
        .collect();
    let [m, t, p, n] = a[..] else {
        panic!("usage: imangor-hashtime M_KIB T P N")
    };
    let params = Params::new(m as u32, t as u32, p as u32, None).expect("valid argon2 parameters");
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let password = b"benchmark passphrase 1";
    // A login verifies against a stored PHC string: one full hash with the stored salt.
    let stored = argon2.hash_password(password).expect("hashing").to_string();
    let parsed = PasswordHash::new(&stored).expect("own PHC string parses");
    let (salt, expected) = (parsed.salt.unwrap(), parsed.hash.unwrap());
    let mut memory = vec![Block::new(); argon2.params().block_count()];
    let mut verify = || {
        let mut out = [0u8; 32];
        argon2
            .hash_password_into_with_memory(password, &salt, &mut out, &mut memory[..])
            .expect("hashing");
        memory.iter_mut().for_each(Zeroize::zeroize);
        assert!(Output::new(&out).unwrap() == expected, "password verifies");
    };
    verify();
    let mut times = Vec::new();
    for _ in 0..n {
        let t0 = Instant::now();
        verify();
        times.push(t0.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{{\"m_kib\": {m}, \"t\": {t}, \"p\": {p}, \"n\": {n}, \"median_s\": {:.6}, \"min_s\": {:.6}}}",
        times[times.len() / 2],
        times[0]
    );
}
