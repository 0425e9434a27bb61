//! `imangor-hashtime M_KIB T P N`: hashes a password N times with argon2id (after one warm-up),
//! the way the server's login path does, and prints JSON with the median and minimum seconds
//! of one hash. Run it pinned to the server's core.

use std::time::Instant;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

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
    let mut times = Vec::new();
    for _ in 0..n {
        let t0 = Instant::now();
        argon2.verify_password(password, &parsed).expect("password verifies");
        times.push(t0.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    println!(
        "{{\"m_kib\": {m}, \"t\": {t}, \"p\": {p}, \"n\": {n}, \"median_s\": {:.6}, \"min_s\": {:.6}}}",
        times[times.len() / 2],
        times[0]
    );
}
