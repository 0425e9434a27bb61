//! Password hashing: argon2id with OWASP's parameters for new hashes; imported bcrypt hashes
//! (passlib `$2b$`/`$2a$`) verify and are flagged for rehashing. Hashing runs on threads of its
//! own, at a lower scheduling priority (nice 10), behind two semaphores: one bounds the work in
//! progress, one bounds the queue, so a login flood gets quick 503s and the API's other requests
//! keep their latency while hashes run.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context;
use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::Semaphore;
use zeroize::{Zeroize, Zeroizing};

use crate::error::{AppError, Result};

/// OWASP Password Storage Cheat Sheet: argon2id, m = 19 MiB, t = 2, p = 1.
pub const M_COST_KIB: u32 = 19_456;
pub const T_COST: u32 = 2;
pub const P_COST: u32 = 1;

fn argon2() -> Argon2<'static> {
    let params =
        Params::new(M_COST_KIB, T_COST, P_COST, None).expect("OWASP argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The outcome of checking a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Mismatch,
    /// `rehash`: the stored hash is bcrypt or weaker than the current argon2id parameters.
    Match {
        rehash: bool,
    },
}

type Job = Box<dyn FnOnce() + Send>;

/// The argon2 working memory the hashing threads keep between hashes (19 MiB each): allocating
/// it afresh for every hash cost ~4 900 page faults each time. Once no hash has been asked for
/// during the idle-release time, all of it is returned to the system.
struct Kept {
    idle_release: std::time::Duration,
    state: std::sync::Mutex<KeptState>,
}

struct KeptState {
    free: Vec<Vec<Block>>,
    last_used: std::time::Instant,
}

impl Kept {
    fn new(idle_release: std::time::Duration) -> Self {
        Kept {
            idle_release,
            state: std::sync::Mutex::new(KeptState {
                free: Vec::new(),
                last_used: std::time::Instant::now(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, KeptState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Memory for one hash: a kept buffer, or an empty one that `derive` grows.
    fn take(&self) -> Vec<Block> {
        self.lock().free.pop().unwrap_or_default()
    }

    /// Keeps `memory` (already zeroed by `derive`) for the next hash.
    fn put(&self, memory: Vec<Block>) {
        let mut state = self.lock();
        state.last_used = std::time::Instant::now();
        if !memory.is_empty() {
            state.free.push(memory);
        }
    }

    /// Bytes kept between hashes.
    fn bytes(&self) -> usize {
        self.lock()
            .free
            .iter()
            .map(|m| m.len() * size_of::<Block>())
            .sum()
    }

    /// How long a hashing thread waits for a job before it checks whether the memory is due.
    fn wait(&self) -> std::time::Duration {
        let state = self.lock();
        if state.free.is_empty() {
            self.idle_release
        } else {
            self.idle_release
                .saturating_sub(state.last_used.elapsed())
                .max(std::time::Duration::from_millis(10))
        }
    }

    /// Returns the kept memory to the system when no hash has run for the idle-release time;
    /// true when it did.
    fn release_if_idle(&self) -> bool {
        let released = {
            let mut state = self.lock();
            if state.free.is_empty() || state.last_used.elapsed() < self.idle_release {
                return false;
            }
            std::mem::take(&mut state.free)
        };
        // Each buffer is far above the mmap threshold (`main::keep_memory_small`): freeing it
        // unmaps it. The trim gives back what the other threads' arenas hold free as well.
        drop(released);
        trim_heap();
        true
    }
}

/// Returns free heap memory of every malloc arena to the system (glibc's `malloc_trim`).
#[allow(unsafe_code)]
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory held by the allocator; it has no
    // memory-safety preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// `n` threads that run hashing jobs at nice 10: under load, requests that need no hash are
/// scheduled first, and a hash takes the core when it is free. With `kept`, each job runs in
/// kept memory, and the thread waiting for the next job returns it once the queue is idle.
fn hashing_threads(
    n: usize,
    kept: Option<Arc<Kept>>,
) -> anyhow::Result<std::sync::mpsc::Sender<Job>> {
    use std::sync::mpsc::RecvTimeoutError;
    let (tx, rx) = std::sync::mpsc::channel::<Job>();
    let rx = Arc::new(std::sync::Mutex::new(rx));
    for i in 0..n {
        let rx = rx.clone();
        let kept = kept.clone();
        std::thread::Builder::new()
            .name(format!("imangor-hash-{i}"))
            .spawn(move || {
                lower_priority();
                loop {
                    let job = {
                        let rx = rx.lock().unwrap_or_else(|e| e.into_inner());
                        match &kept {
                            Some(kept) => rx.recv_timeout(kept.wait()),
                            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                        }
                    };
                    match (job, &kept) {
                        (Ok(job), Some(kept)) => {
                            // The job gives it back (`Hasher::run`) before it answers.
                            MEMORY.set(Some(kept.take()));
                            job();
                        }
                        (Ok(job), None) => job(),
                        (Err(RecvTimeoutError::Timeout), Some(kept)) => {
                            kept.release_if_idle();
                        }
                        (Err(RecvTimeoutError::Timeout), None) => {}
                        (Err(RecvTimeoutError::Disconnected), _) => return,
                    }
                }
            })
            .context("starting a password-hashing thread")?;
    }
    Ok(tx)
}

#[allow(unsafe_code)]
fn lower_priority() {
    // On Linux a thread has its own nice value; PRIO_PROCESS with 0 names the calling thread.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: setpriority changes this thread's scheduling priority only.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}

/// How long a hashing job waits for a place in a full queue before it is shed (503).
pub const SHED_AFTER: std::time::Duration = std::time::Duration::from_millis(250);

pub struct Hasher {
    running: Arc<Semaphore>,
    admitted: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    /// The hashing threads' queue (they end when the `Hasher` is dropped).
    jobs: std::sync::Mutex<std::sync::mpsc::Sender<Job>>,
    /// How long each hash or verification took (the `password_hash_duration_seconds` metric).
    timings: Arc<std::sync::Mutex<crate::infra::metrics::Histogram>>,
    /// Verified when the account does not exist, so that an unknown email costs the same as a wrong password.
    dummy: String,
    /// The working memory kept between hashes; `None` when every hash allocates its own.
    kept: Option<Arc<Kept>>,
}

impl Hasher {
    /// `concurrency` hashing threads, `queue` jobs admitted beyond them; the threads keep their
    /// argon2 memory between hashes and return it once no hash has run for `idle_release`
    /// (zero: nothing is kept).
    pub fn new(
        concurrency: usize,
        queue: usize,
        idle_release: std::time::Duration,
    ) -> anyhow::Result<Self> {
        let dummy = hash_blocking(&crate::auth::random_token(24)?)?;
        let kept = (!idle_release.is_zero()).then(|| Arc::new(Kept::new(idle_release)));
        Ok(Self {
            running: Arc::new(Semaphore::new(concurrency)),
            admitted: Arc::new(Semaphore::new(concurrency + queue)),
            waiting: Arc::new(AtomicUsize::new(0)),
            jobs: std::sync::Mutex::new(hashing_threads(concurrency, kept.clone())?),
            timings: Arc::default(),
            dummy,
            kept,
        })
    }

    /// Bytes of argon2 working memory kept between hashes (not counting hashes running now).
    pub fn kept_bytes(&self) -> usize {
        self.kept.as_ref().map_or(0, |k| k.bytes())
    }

    /// Jobs admitted and not yet finished (queued or running).
    pub fn depth(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// The durations of hashes and verifications so far.
    pub fn timings(&self) -> crate::infra::metrics::Histogram {
        self.timings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    async fn run<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        // Over capacity, a job waits a moment for a place in the queue, then is shed: a flood of
        // logins costs a timer per connection instead of a full answer every few microseconds,
        // which kept the core from serving everyone else.
        let admitted = match self.admitted.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => tokio::time::timeout(SHED_AFTER, self.admitted.clone().acquire_owned())
                .await
                .map_err(|_| AppError::Busy { retry_after_s: 1 })?
                .map_err(|e| AppError::Internal(e.into()))?,
        };
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let waiting = self.waiting.clone();
        let _done = scopeguard(move || {
            waiting.fetch_sub(1, Ordering::Relaxed);
        });
        let running = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| AppError::Internal(e.into()))?;
        let timings = self.timings.clone();
        let kept = self.kept.clone();
        let (done, result) = tokio::sync::oneshot::channel();
        let task: Job = Box::new(move || {
            let started = std::time::Instant::now();
            let out = job();
            if let (Some(kept), Some(memory)) = (&kept, MEMORY.take()) {
                kept.put(memory);
            }
            timings
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .observe(started.elapsed());
            drop(running);
            drop(admitted);
            let _ = done.send(out);
        });
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(task)
            .map_err(|_| AppError::Internal(anyhow::anyhow!("the hashing threads have stopped")))?;
        result
            .await
            .context("password hashing task failed")
            .map_err(AppError::Internal)
    }

    /// A new argon2id hash (PHC string) of `password`.
    pub async fn hash(&self, password: &str) -> Result<String> {
        let pw = Zeroizing::new(password.to_owned());
        self.run(move || hash_blocking(&pw))
            .await?
            .map_err(AppError::Internal)
    }

    /// Checks `password` against `stored`, or against a dummy hash when there is no account.
    pub async fn verify(&self, password: &str, stored: Option<String>) -> Result<Verdict> {
        let pw = Zeroizing::new(password.to_owned());
        let (stored, real) = match stored {
            Some(h) => (h, true),
            None => (self.dummy.clone(), false),
        };
        let verdict = self.run(move || verify_blocking(&pw, &stored)).await?;
        Ok(if real { verdict } else { Verdict::Mismatch })
    }
}

std::thread_local! {
    /// The argon2 working memory of the hash running on this thread, taken from `Kept` for the
    /// job and given back after it. `None` where no memory is kept (other threads, or an idle
    /// release of zero), which allocate per hash.
    static MEMORY: std::cell::RefCell<Option<Vec<Block>>> = const { std::cell::RefCell::new(None) };
}

/// Argon2 of `password` and `salt` into `out`. On a hashing thread, parameters up to the
/// current memory cost run in the thread's kept memory, zeroed after use; anything else (an
/// imported hash asking for more, a hash at start-up) allocates its own.
fn derive(a: &Argon2<'_>, password: &[u8], salt: &[u8], out: &mut [u8]) -> argon2::Result<()> {
    let blocks = a.params().block_count();
    MEMORY.with_borrow_mut(|kept| match kept {
        Some(memory) if blocks <= M_COST_KIB as usize => {
            if memory.len() < blocks {
                memory.resize(blocks, Block::new());
            }
            let result =
                a.hash_password_into_with_memory(password, salt, out, &mut memory[..blocks]);
            memory[..blocks].iter_mut().for_each(Zeroize::zeroize);
            result
        }
        _ => a.hash_password_into(password, salt, out),
    })
}

fn hash_blocking(password: &str) -> anyhow::Result<String> {
    let a = argon2();
    let salt = argon2::password_hash::try_generate_salt()
        .map_err(|e| anyhow::anyhow!("no randomness for a salt: {e}"))?;
    let mut out = Zeroizing::new([0u8; Params::DEFAULT_OUTPUT_LEN]);
    derive(&a, password.as_bytes(), &salt, out.as_mut_slice())
        .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(a.params())
            .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?,
        salt: Some(Salt::new(&salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?),
        hash: Some(Output::new(out.as_slice()).map_err(|e| anyhow::anyhow!("output: {e}"))?),
    };
    Ok(phc.to_string())
}

/// The highest bcrypt cost verified: passlib's default is 12; each step doubles the work, and a
/// stored hash of cost 31 (a tampered import) would hold a hashing thread for hours per attempt.
pub const MAX_BCRYPT_COST: u32 = 15;

/// The cost of a bcrypt hash (`$2b$12$...`), when it has the bcrypt shape.
pub fn bcrypt_cost(stored: &str) -> Option<u32> {
    let rest = stored
        .strip_prefix("$2b$")
        .or_else(|| stored.strip_prefix("$2a$"))
        .or_else(|| stored.strip_prefix("$2y$"))?;
    let (cost, _) = rest.split_once('$')?;
    (cost.len() == 2).then(|| cost.parse().ok()).flatten()
}

fn verify_blocking(password: &str, stored: &str) -> Verdict {
    if stored.starts_with("$2b$") || stored.starts_with("$2a$") || stored.starts_with("$2y$") {
        if bcrypt_cost(stored).is_none_or(|c| c > MAX_BCRYPT_COST) {
            return Verdict::Mismatch;
        }
        // bcrypt reads only the first 72 bytes: accepted for imported hashes once, then replaced by argon2id.
        return match bcrypt::verify(password.as_bytes(), stored) {
            Ok(true) => Verdict::Match { rehash: true },
            _ => Verdict::Mismatch,
        };
    }
    match verify_argon2(password.as_bytes(), stored) {
        Some(parsed) => Verdict::Match {
            rehash: weaker_than_current(&parsed),
        },
        None => Verdict::Mismatch,
    }
}

/// The parsed PHC string when `password` matches it (the algorithm, version and parameters
/// are the stored ones; the comparison is constant time); `None` when it does not or is unusable.
fn verify_argon2(password: &[u8], stored: &str) -> Option<PasswordHash> {
    let parsed = PasswordHash::new(stored).ok()?;
    let (salt, expected) = (parsed.salt.as_ref()?, parsed.hash.as_ref()?);
    let algorithm = Algorithm::try_from(parsed.algorithm.as_str()).ok()?;
    let version = match parsed.version {
        Some(v) => Version::try_from(v).ok()?,
        None => Version::default(),
    };
    let a = Argon2::new(algorithm, version, Params::try_from(&parsed).ok()?);
    let mut out = Zeroizing::new([0u8; Output::MAX_LENGTH]);
    let out = out.get_mut(..expected.len())?;
    derive(&a, password, salt, out).ok()?;
    (Output::new(out).ok()? == *expected).then_some(parsed)
}

fn weaker_than_current(h: &PasswordHash) -> bool {
    let param = |name: &str| h.params.get_decimal(name).unwrap_or(0);
    h.algorithm.as_str() != "argon2id"
        || param("m") < M_COST_KIB
        || param("t") < T_COST
        || param("p") < P_COST
}

/// Runs `f` when dropped (also when the future holding it is cancelled).
fn scopeguard<F: FnOnce()>(f: F) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};

    const IDLE: std::time::Duration = std::time::Duration::from_secs(30);

    #[tokio::test]
    async fn new_hashes_are_argon2id_with_owasp_parameters_and_salted() {
        let h = Hasher::new(1, 4, IDLE).unwrap();
        let a = h.hash("correct horse battery staple").await.unwrap();
        let b = h.hash("correct horse battery staple").await.unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "salted");
        assert_eq!(
            h.verify("correct horse battery staple", Some(a.clone()))
                .await
                .unwrap(),
            Verdict::Match { rehash: false }
        );
        assert_eq!(
            h.verify("Correct horse battery staple", Some(a))
                .await
                .unwrap(),
            Verdict::Mismatch
        );
    }

    #[tokio::test]
    async fn bcrypt_hashes_verify_and_ask_for_a_rehash() {
        let h = Hasher::new(1, 4, IDLE).unwrap();
        let b = bcrypt::hash("imported secret pw", 4).unwrap();
        assert!(b.starts_with("$2b$"));
        assert_eq!(
            h.verify("imported secret pw", Some(b.clone()))
                .await
                .unwrap(),
            Verdict::Match { rehash: true }
        );
        assert_eq!(
            h.verify("imported secret px", Some(b)).await.unwrap(),
            Verdict::Mismatch
        );
    }

    #[tokio::test]
    async fn weaker_argon2_parameters_ask_for_a_rehash() {
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8, 1, 1, None).unwrap(),
        )
        .hash_password(b"some long password")
        .unwrap()
        .to_string();
        let h = Hasher::new(1, 4, IDLE).unwrap();
        assert_eq!(
            h.verify("some long password", Some(weak)).await.unwrap(),
            Verdict::Match { rehash: true }
        );
    }

    #[tokio::test]
    async fn hashes_interoperate_with_the_argon2_crates_own_hasher_and_verifier() {
        let h = Hasher::new(1, 4, IDLE).unwrap();
        let ours = h.hash("interop passphrase 1").await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            argon2()
                .verify_password(b"interop passphrase 1", &parsed)
                .is_ok()
        );
        assert!(
            argon2()
                .verify_password(b"interop passphrase 2", &parsed)
                .is_err()
        );
        let theirs = argon2()
            .hash_password(b"interop passphrase 1")
            .unwrap()
            .to_string();
        assert_eq!(
            h.verify("interop passphrase 1", Some(theirs.clone()))
                .await
                .unwrap(),
            Verdict::Match { rehash: false }
        );
        assert_eq!(
            h.verify("interop passphrase 2", Some(theirs))
                .await
                .unwrap(),
            Verdict::Mismatch
        );
    }

    #[tokio::test]
    async fn a_stored_hash_asking_for_more_memory_than_is_kept_still_verifies() {
        let strong = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(M_COST_KIB + 1024, 1, 1, None).unwrap(),
        )
        .hash_password(b"a stronger stored hash")
        .unwrap()
        .to_string();
        let h = Hasher::new(1, 4, IDLE).unwrap();
        assert!(matches!(
            h.verify("a stronger stored hash", Some(strong.clone()))
                .await
                .unwrap(),
            Verdict::Match { .. }
        ));
        assert_eq!(
            h.verify("a stronger stored hasH", Some(strong))
                .await
                .unwrap(),
            Verdict::Mismatch
        );
    }

    #[test]
    fn kept_memory_is_reused_and_zeroed_after_each_hash() {
        MEMORY.set(Some(Vec::new()));
        let mut out = [0u8; 32];
        derive(&argon2(), b"password in memory", b"saltsaltsalt", &mut out).unwrap();
        let first = out;
        MEMORY.with_borrow(|m| {
            let m = m.as_ref().unwrap();
            assert_eq!(m.len(), M_COST_KIB as usize, "kept at the current cost");
            let zero = Block::new();
            assert!(m.iter().all(|b| b.as_ref() == zero.as_ref()), "zeroed");
        });
        derive(&argon2(), b"password in memory", b"saltsaltsalt", &mut out).unwrap();
        assert_eq!(
            out, first,
            "the same input gives the same hash in reused memory"
        );
        MEMORY.set(None);
    }

    #[tokio::test]
    async fn kept_memory_is_returned_once_the_queue_has_been_idle_for_the_setting() {
        // Kept while hashes come; returned after the idle time; kept again by the next hash.
        let h = Hasher::new(1, 4, std::time::Duration::from_millis(200)).unwrap();
        h.hash("a login").await.unwrap();
        let one = M_COST_KIB as usize * 1024;
        assert_eq!(h.kept_bytes(), one, "kept right after a hash");
        let released = async {
            while h.kept_bytes() != 0 {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), released)
            .await
            .expect("released once idle");
        h.hash("another login").await.unwrap();
        assert_eq!(h.kept_bytes(), one, "kept again by the next hash");
    }

    #[test]
    fn kept_memory_stays_while_hashes_come_and_goes_when_they_stop() {
        let kept = Kept::new(std::time::Duration::from_secs(60));
        assert!(!kept.release_if_idle(), "nothing kept, nothing released");
        kept.put(vec![Block::new(); 8]);
        assert_eq!(kept.bytes(), 8 * 1024);
        assert!(!kept.release_if_idle(), "used just now");
        assert!(kept.wait() > std::time::Duration::from_secs(50));
        let mut state = kept.lock();
        let Some(long_ago) = state
            .last_used
            .checked_sub(std::time::Duration::from_secs(61))
        else {
            return; // a monotonic clock younger than a minute (just booted): nothing to test
        };
        state.last_used = long_ago;
        drop(state);
        assert_eq!(kept.wait(), std::time::Duration::from_millis(10), "due");
        assert!(kept.release_if_idle());
        assert_eq!(kept.bytes(), 0);
        assert_eq!(kept.wait(), std::time::Duration::from_secs(60));
    }

    #[tokio::test]
    async fn with_an_idle_release_of_zero_nothing_is_kept() {
        let h = Hasher::new(1, 4, std::time::Duration::ZERO).unwrap();
        let stored = h.hash("kept nowhere").await.unwrap();
        assert_eq!(
            h.verify("kept nowhere", Some(stored)).await.unwrap(),
            Verdict::Match { rehash: false }
        );
        assert_eq!(h.kept_bytes(), 0);
    }

    #[tokio::test]
    async fn unknown_accounts_never_match_and_a_full_queue_is_busy() {
        let h = Hasher::new(1, 0, IDLE).unwrap();
        assert_eq!(h.verify("anything", None).await.unwrap(), Verdict::Mismatch);
        let held = h.admitted.clone().try_acquire_owned().unwrap();
        let started = std::time::Instant::now();
        assert!(matches!(
            h.hash("whatever").await,
            Err(AppError::Busy { .. })
        ));
        assert!(
            started.elapsed() >= SHED_AFTER,
            "shed after waiting for a place"
        );
        // A place that frees up within the wait is taken.
        tokio::spawn(async move {
            tokio::time::sleep(SHED_AFTER / 5).await;
            drop(held);
        });
        assert!(h.hash("whatever").await.is_ok());
    }

    #[test]
    fn a_bcrypt_hash_above_the_cost_cap_is_refused_without_being_computed() {
        // Cost 31 would take hours: refused at once, as a mismatch.
        let slow = "$2b$31$rwrZzrmuV8EmfOieUp/uyOT50hUbRzwwOOGzNLRDm9pPR.hshqSuC";
        let started = std::time::Instant::now();
        assert!(matches!(
            verify_blocking("whatever", slow),
            Verdict::Mismatch
        ));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert_eq!(bcrypt_cost(slow), Some(31));
        assert_eq!(bcrypt_cost("$2b$12$abc"), Some(12));
        assert_eq!(bcrypt_cost("$2b$1$abc"), None);
        assert_eq!(bcrypt_cost("$argon2id$v=19$m=19456"), None);
        // A cost at the cap still verifies.
        let ok = bcrypt::hash("right", 4).unwrap();
        assert!(matches!(
            verify_blocking("right", &ok),
            Verdict::Match { rehash: true }
        ));
    }
}
